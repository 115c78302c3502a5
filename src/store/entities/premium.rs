//! One premium instalment of a policy, keyed by (policy number, due date).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "premiums")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub policy_number: String,
    /// `YYYY-MM-DD`.
    pub due_date: String,
    /// Paise.
    pub amount: i64,
    /// `due` or `paid`.
    pub status: String,
    pub paid_date: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
