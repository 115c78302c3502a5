//! A claim of the embedded insurer data, keyed by its claim number.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "claims")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub claim_number: String,
    pub policy_number: String,
    pub stage: String,
    pub pending_documents: i32,
    /// Paise.
    pub claim_amount: Option<i64>,
    /// `YYYY-MM-DD`.
    pub filed_date: String,
    pub updated_date: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
