//! The append-only consent audit log. Rows are inserted, never updated (erasure only detaches
//! the contact, see [`crate::consent::erasure`]).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consent_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub contact_id: Option<i64>,
    /// One-way keyed hash (HMAC-SHA256) of the contact's address, kept after erasure.
    pub address_hash: Option<String>,
    /// `opt_out` or `opt_in`.
    pub change: String,
    /// `all`, `service`, `reminders` or `marketing`.
    pub scope: String,
    /// `keyword`, `button`, `user_preferences`, `api`, `agent` or `error_131050`.
    pub source: String,
    /// The exact text the contact was shown or sent.
    pub shown_text: Option<String>,
    pub created_at: i64,
    /// When the consent was given according to its source (Unix ms), when it says.
    pub occurred_at: Option<i64>,
    /// Where the proof comes from (a form, an agent, Meta's notice).
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
