//! The append-only consent audit log. Rows are inserted, never updated.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consent_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub contact_id: Option<i64>,
    /// One-way hash of the contact's address, kept after erasure.
    pub address_hash: Option<String>,
    /// `opt_out` or `opt_in`.
    pub change: String,
    /// `all`, `service` or `marketing`.
    pub scope: String,
    /// `keyword`, `button`, `user_preferences`, `api`, `agent` or `error_131050`.
    pub source: String,
    /// The exact text the contact was shown or sent.
    pub shown_text: Option<String>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
