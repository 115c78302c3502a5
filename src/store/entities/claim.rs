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
    /// What happened, for a claim filed in the chat (`engine::vocabulary::LOSS_TYPES`).
    pub loss_type: Option<String>,
    /// `YYYY-MM-DD`, for a claim filed in the chat.
    pub loss_date: Option<String>,
    /// The policyholder's own words, for a claim filed in the chat.
    pub description: Option<String>,
    /// The contact who filed it in the chat; `None` for imported claims.
    pub intimated_by_contact_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
