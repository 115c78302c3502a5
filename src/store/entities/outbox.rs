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
    pub state: State,
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
    /// The business number it leaves from (see [`crate::whatsapp::numbers`]); `None`: the
    /// deployment's first.
    pub phone_number_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::text_enum! {
    /// An outbox row's state, stored as its lower-case name (the column is text: no migration).
    pub enum State {
        /// Waiting for the sender (a first attempt, a retry or the template fallback).
        Queued = "queued",
        Sent = "sent",
        /// A permanent error: the reason is kept on the row.
        Failed = "failed",
        /// Every attempt failed with a temporary error: dead-lettered, never silently dropped.
        Dead = "dead",
        /// Nothing could be sent (e.g. the window closed and there is no template): decided, with
        /// the reason on the row, so it is visible rather than lost.
        Skipped = "skipped",
    }
}

/// Machine-readable reasons recorded in `outbox.reason`.
pub mod reason {
    /// The window is closed and the intent has no template fallback.
    pub const WINDOW_CLOSED_NO_TEMPLATE: &str = "window_closed_no_template";
    /// The template exists but is PAUSED, DISABLED, REJECTED, … (or Meta said 132015/132016).
    pub const TEMPLATE_NOT_APPROVED: &str = "template_not_approved";
    /// The registry does not know the template in any close language.
    pub const TEMPLATE_UNKNOWN: &str = "template_unknown";
    /// The caller gave a different number of parameters than the template has.
    pub const TEMPLATE_PARAMS: &str = "template_params";
    /// Meta answered 131047 again after the template fallback had been taken.
    pub const WINDOW_CLOSED: &str = "window_closed";
    /// The consent gate refused.
    pub const CONSENT: &str = "consent";
    /// The contact has neither a phone number nor a BSUID.
    pub const NO_ADDRESS: &str = "no_address";
    /// Attempts exhausted on temporary errors.
    pub const ATTEMPTS_EXHAUSTED: &str = "attempts_exhausted";
    /// The row's payload cannot be read.
    pub const UNREADABLE: &str = "unreadable_payload";
    /// The contact's personal data was erased before the row went (also on campaign rows).
    pub const ERASED: &str = "erased";
    /// A one-time password whose sealed code cannot be opened (`otp.secret` unset or changed).
    pub const OTP_SEALED: &str = "otp_sealed";
    /// A queued row withdrawn by cancelling its campaign.
    pub const CAMPAIGN_CANCELLED: &str = "campaign_cancelled";
    /// A media message but no media store to upload its file from.
    pub const NO_MEDIA_STORE: &str = "no_media_store";
    /// A media message whose file left the media store (erased) before it went.
    pub const MEDIA_GONE: &str = "media_gone";
    /// Meta refused the upload of a media message's file.
    pub const UPLOAD_REFUSED: &str = "upload_refused";
    /// The row's business number is no longer configured (it is never sent from another).
    pub const NUMBER_NOT_CONFIGURED: &str = "number_not_configured";
}
