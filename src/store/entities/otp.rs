//! One one-time password sent (see `crate::otp`). The code is kept only as a keyed hash.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "otps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub purpose: String,
    /// Keyed hash of the recipient's number (as in the consent log).
    pub phone_hash: String,
    pub contact_id: i64,
    /// HMAC-SHA256(otp.secret, id ":" code), hex.
    pub code_hash: String,
    /// pending | verified | locked.
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub created_at: i64,
    pub expires_at: i64,
    pub verified_at: Option<i64>,
    pub outbox_id: Option<i64>,
    /// api | chat.
    pub origin: String,
    pub requester_contact_id: Option<i64>,
    pub policy_number: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
