//! Failed verification attempts and the lockout of one contact.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "identity_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub contact_id: i64,
    /// Consecutive failures since the last success or lockout.
    pub failed_count: i32,
    pub last_failed_at: Option<i64>,
    pub locked_until: Option<i64>,
    /// Lockouts in the current series (see `insurer.repeat_lockout_minutes`).
    pub lockouts: i32,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
