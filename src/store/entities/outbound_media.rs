//! One file sent to a contact (a policy schedule, an agent's attachment): what erasure and
//! retention find the contact's sent files by (see `media::uploads`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbound_media")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub contact_id: i64,
    /// `policy_document` or `agent`.
    pub source: String,
    /// `image` or `document`.
    pub kind: String,
    /// Lower-case hex SHA-256 of the bytes, the media store's key.
    pub sha256: String,
    pub mime_type: String,
    pub filename: Option<String>,
    pub size_bytes: i64,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
