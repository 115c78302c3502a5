//! A file sent in the chat for a claim (issue 18): the claim, who sent it, and the media
//! store's key; erasure and the media purge read these rows too.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "claim_documents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub claim_number: String,
    pub contact_id: i64,
    /// Lower-case hex SHA-256 of the bytes, the media store's key.
    pub sha256: String,
    /// The type detected from the bytes.
    pub mime_type: String,
    /// `image` or `document`.
    pub kind: String,
    pub file_name: Option<String>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
