//! One outbound message, persisted before any HTTP call.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub contact_id: i64,
    pub in_reply_to: Option<i64>,
    /// The composer's `StoredIntent` as JSON: the free-form body and the template fallback, so
    /// the sender can decide again at send time. (Rows written before the composer hold a
    /// plain `OutboundMessage`, which the sender still understands.)
    pub payload: String,
    /// `queued`, `sent`, `failed` (permanent error), `dead` (attempts exhausted) or `skipped`
    /// (nothing could be sent; `reason` says why).
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub wamid: Option<String>,
    pub error_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
    /// `reply`, `notification`, `agent` or `campaign`.
    pub purpose: String,
    /// Machine-readable reason for `failed`/`dead`/`skipped`, e.g. `window_closed_no_template`.
    pub reason: Option<String>,
    /// What went out: `free_form` or `template`.
    pub sent_as: Option<String>,
    /// The 131047 template fallback has been taken (at most once).
    pub fallback: bool,
    /// Furthest delivery status from the status webhooks (`sent` … `failed`).
    pub delivery_status: Option<String>,
    pub delivery_rank: i32,
    pub delivery_at: Option<i64>,
    pub delivery_error_code: Option<i64>,
    pub delivery_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
