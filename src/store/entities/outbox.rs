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
    pub reason: Option<Reason>,
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

super::text_enum! {
    /// Why an outbox row ended `failed`, `dead` or `skipped` (`outbox.reason`), stored as its
    /// snake_case name (the column is text: no migration). One list for every layer that
    /// decides: the composer and sender, the consent gate (`consent_*`), Meta's error classes
    /// (see `messaging::sender::permanent_reason`), campaigns and erasure.
    pub enum Reason {
        /// The window is closed and the intent has no template fallback.
        WindowClosedNoTemplate = "window_closed_no_template",
        /// The template exists but is PAUSED, DISABLED, REJECTED, … (or Meta said 132015/132016).
        TemplateNotApproved = "template_not_approved",
        /// The registry does not know the template in any close language (or Meta said 132001).
        TemplateUnknown = "template_unknown",
        /// The caller gave a different number of parameters than the template has.
        TemplateParams = "template_params",
        /// Meta answered 131047 again after the template fallback had been taken.
        WindowClosed = "window_closed",
        /// The consent gate refused.
        Consent = "consent",
        /// The contact has neither a phone number nor a BSUID.
        NoAddress = "no_address",
        /// Attempts exhausted on temporary errors.
        AttemptsExhausted = "attempts_exhausted",
        /// The row's payload cannot be read.
        UnreadablePayload = "unreadable_payload",
        /// The contact's personal data was erased before the row went (also on campaign rows).
        Erased = "erased",
        /// A one-time password whose sealed code cannot be opened (`otp.secret` unset or changed).
        OtpSealed = "otp_sealed",
        /// A queued row withdrawn by cancelling its campaign.
        CampaignCancelled = "campaign_cancelled",
        /// A media message but no media store to upload its file from.
        NoMediaStore = "no_media_store",
        /// A media message whose file left the media store (erased) before it went.
        MediaGone = "media_gone",
        /// Meta refused the upload of a media message's file.
        UploadRefused = "upload_refused",
        /// The row's business number is no longer configured (it is never sent from another).
        NumberNotConfigured = "number_not_configured",
        /// Gate: opted out of everything; not essential, not a reply to what the contact just sent.
        ConsentOptedOut = "consent_opted_out",
        /// Gate: opted out of this message's scope (service or reminders).
        ConsentScopeOptedOut = "consent_scope_opted_out",
        /// Gate: `consent.require_opt_in` and no opt-in of the scope is recorded.
        ConsentNoOptIn = "consent_no_opt_in",
        /// Gate: marketing without a recorded marketing opt-in.
        ConsentNoMarketingOptIn = "consent_no_marketing_opt_in",
        /// Gate: the contact stopped marketing in WhatsApp (user_preferences or 131050).
        ConsentMarketingStopped = "consent_marketing_stopped_on_whatsapp",
        /// Gate: the per-contact marketing frequency cap is reached.
        ConsentMarketingCap = "consent_marketing_cap",
        /// Our message broke a Cloud API rule (refused before the request).
        InvalidMessage = "invalid_message",
        /// HTTP success without a wamid: Meta probably has it; retrying would duplicate.
        UnconfirmedResponse = "unconfirmed_response",
        /// The request failed in transport, permanently.
        Transport = "transport",
        /// Meta 131026: the number cannot receive the message.
        Undeliverable = "undeliverable",
        /// Meta 131050: the user stopped marketing messages.
        MarketingStoppedByUser = "marketing_stopped_by_user",
        /// Meta 131049: held back to keep the ecosystem healthy.
        EcosystemEngagementLimit = "ecosystem_engagement_limit",
        /// Meta 131048: spam rate limit.
        SpamRateLimited = "spam_rate_limited",
        /// Meta 131030: recipient not in the allowed list (test numbers).
        RecipientNotAllowed = "recipient_not_allowed",
        /// Meta 131031, 368, 130497: the account is restricted.
        AccountRestricted = "account_restricted",
        /// Meta 131042: a payment problem on the account.
        PaymentIssue = "payment_issue",
        /// Meta 0, 10, 190, 200-299: authentication or permission.
        Auth = "auth",
        /// Meta 100, 131008, 131009: an invalid request.
        InvalidRequest = "invalid_request",
        /// Any other permanent Meta error.
        PermanentError = "permanent_error",
    }
}
