//! One accepted `POST /api/v1/notifications`, unique on its `Idempotency-Key`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_requests")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub idempotency_key: String,
    /// SHA-256 (hex) of the request body.
    pub request_hash: String,
    pub kind: String,
    pub outbox_id: Option<i64>,
    /// The first answer's HTTP status and JSON body, returned again to repeats.
    pub status_code: i32,
    pub response: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
