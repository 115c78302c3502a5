//! Failed date-of-birth checks against one policy number, from any contacts, and the lockout
//! of that policy's verification by date of birth.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "identity_policy_attempts")]
pub struct Model {
    /// Normalised; not necessarily a policy that exists.
    #[sea_orm(primary_key, auto_increment = false)]
    pub policy_number: String,
    /// Checks in a row that failed or are under way, since the last success or lockout.
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
