//! One inbound media message's fetched file, or why it could not be fetched (see `media`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "media_files")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub inbound_message_id: i64,
    pub contact_id: i64,
    /// `image`, `audio`, `video`, `document` or `sticker`.
    pub kind: String,
    pub state: State,
    /// A [`crate::media::Failure`] name when failed.
    pub failure: Option<String>,
    /// Lower-case hex SHA-256 of the bytes, the store's key, when stored.
    pub sha256: Option<String>,
    /// The type detected from the bytes.
    pub mime_type: Option<String>,
    pub size_bytes: Option<i64>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::text_enum! {
    /// Whether the file was kept, stored as its lower-case name (text column: no migration).
    pub enum State {
        /// In the media store under `sha256`.
        Stored = "stored",
        /// Not kept; `failure` says why.
        Failed = "failed",
    }
}
