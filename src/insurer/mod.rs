//! Insurer data and who may see it: the policy/claim/premium source (embedded tables filled by
//! CSV import, or the insurer's REST API), identity verification of contacts, and the flow
//! actions of `engine::actions` that read them.
//!
//! [`Insurer::run_action`] is the only way flows reach policy data, and every action that
//! reveals some checks that the contact is verified for that very policy first (invariant 5).
//! A policy, claim or instalment the contact is not verified for is answered exactly like one
//! that does not exist, so typing other people's numbers reveals nothing, not even existence.
//!
//! # Layout
//! - [`model`]: domain types and the normalisation of typed and imported values.
//! - [`source`]: the [`PolicySource`] trait; [`embedded`] and [`http_source`] implement it.
//! - [`identity`]: verifications, failed attempts and lockouts (tables).
//! - [`actions`]: one function per flow action (`policy.document` hands the runner an
//!   [`Attachment`], the policy schedule to send as a WhatsApp document).
//! - [`paylink`]: signed, expiring payment links.
//! - [`file_links`]: signed, expiring links to claim files, for the insurer's system.
//! - [`import`]: `insurebot import policies|claims|premiums FILE.csv`.
//! - [`sample`]: the demo data set the sandbox loads.

pub mod actions;
pub mod context;
pub mod embedded;
pub mod file_links;
pub mod http_source;
pub mod identity;
pub mod import;
pub mod model;
pub mod paylink;
pub mod sample;
pub mod source;

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::ExposeSecret;

use crate::config::{InsurerSettings, PolicySourceKind};
use crate::engine::actions::Action;
use crate::store::entities::contact;

pub use embedded::EmbeddedSource;
pub use http_source::HttpSource;
pub use import::{
    ImportError, ImportKind, ImportReport, import, import_numbered, load_sample_if_empty,
};
pub use paylink::PayLinks;
pub use source::{DocumentFile, PolicySource, SourceError};

/// What an action answers: the outcome the flow branches on, and the fields merged into the
/// conversation's slots (see `engine::actions::Action::spec`).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionResult {
    pub outcome: String,
    pub data: serde_json::Value,
    /// A file the runner sends before the flow goes on (`policy.document`'s schedule).
    pub attachment: Option<Attachment>,
}

/// A file an action hands to the runner to send, already in the media store and checked
/// against WhatsApp's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub kind: crate::whatsapp::outbound::OutboundMediaKind,
    pub stored: crate::media::store::Stored,
    pub mime_type: String,
    pub filename: String,
    /// The fluent id of the caption, rendered in the conversation's language with the
    /// action's result fields as arguments.
    pub caption: Option<&'static str>,
    /// What `outbound_media.source` records: `policy_document`.
    pub source: &'static str,
}

impl ActionResult {
    /// An outcome with result fields.
    pub fn new(outcome: &str, data: serde_json::Value) -> Self {
        Self {
            outcome: outcome.to_owned(),
            data,
            attachment: None,
        }
    }

    /// An outcome without result fields.
    pub fn bare(outcome: &str) -> Self {
        Self::new(outcome, serde_json::json!({}))
    }

    /// The insurer system (or our database) failed: the flow says sorry and offers an agent.
    pub fn error() -> Self {
        Self::bare("error")
    }
}

/// Why an action could not be answered; it becomes the outcome `error`.
#[derive(Debug, thiserror::Error)]
pub enum InsurerError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// The insurer layer: a policy source plus the rules for who may see what.
#[derive(Clone)]
pub struct Insurer {
    source: Arc<dyn PolicySource>,
    settings: Arc<InsurerSettings>,
    pay_links: PayLinks,
    file_links: file_links::FileLinks,
    /// One-time passwords for `identity.verify_otp`; `None` when they are off.
    otp: Option<Arc<crate::otp::Otp>>,
    /// Where `policy.document` keeps the files it sends; `None`: links only.
    media: Option<crate::media::MediaStore>,
}

impl Insurer {
    /// An insurer layer over any source (tests pass a source of their own).
    pub fn new(source: Arc<dyn PolicySource>, settings: InsurerSettings) -> Self {
        // Configuration refuses to start without a secret outside sandbox mode, so `None` is
        // the sandbox: its fixed, documented key keeps links valid across restarts.
        let key: &[u8] = match &settings.pay_link_secret {
            Some(secret) => secret.expose_secret().as_bytes(),
            None => crate::config::SANDBOX_PAY_LINK_SECRET.as_bytes(),
        };
        let pay_links = PayLinks::new(
            settings.pay_link_url.clone(),
            key,
            chrono::Duration::hours(i64::try_from(settings.pay_link_ttl_hours).unwrap_or(48)),
        );
        let file_links = file_links::FileLinks::new(
            &settings.http.file_link_base,
            key,
            chrono::Duration::minutes(
                i64::try_from(settings.http.file_link_ttl_minutes).unwrap_or(1440),
            ),
        );
        Self {
            source,
            settings: Arc::new(settings),
            pay_links,
            file_links,
            otp: None,
            media: None,
        }
    }

    /// This layer with a media store: `policy.document` then sends the source's file itself
    /// (kept in the store, uploaded once) instead of a link.
    #[must_use]
    pub fn with_media(mut self, media: Option<crate::media::MediaStore>) -> Self {
        self.media = media;
        self
    }

    /// This layer with one-time passwords (the chat's `identity.send_otp` and
    /// `identity.verify_otp` answer `unavailable` without them).
    #[must_use]
    pub fn with_otp(mut self, otp: Option<Arc<crate::otp::Otp>>) -> Self {
        self.otp = otp;
        self
    }

    /// The source named by `[insurer] source`: the embedded tables on `db`, or the HTTP API.
    ///
    /// # Errors
    /// When the HTTP source cannot be set up (a malformed base URL).
    pub fn from_settings(
        settings: &InsurerSettings,
        db: DatabaseConnection,
    ) -> Result<Self, InsurerError> {
        let source: Arc<dyn PolicySource> = match settings.source {
            PolicySourceKind::Embedded => {
                Arc::new(EmbeddedSource::new(db).with_documents_dir(settings.documents_dir.clone()))
            }
            PolicySourceKind::Http => Arc::new(HttpSource::new(&settings.http)?),
        };
        Ok(Self::new(source, settings.clone()))
    }

    /// The policy source itself, for callers that are not flow actions and do their own
    /// authorisation (the notifications API authenticates the insurer's system, not a contact).
    pub fn source(&self) -> &dyn PolicySource {
        self.source.as_ref()
    }

    /// The claim file links this layer signs (the file route checks them with the same key).
    pub fn file_links(&self) -> &file_links::FileLinks {
        &self.file_links
    }

    /// The payment links this layer signs (a payment page checks tokens with the same key).
    pub fn pay_links(&self) -> &PayLinks {
        &self.pay_links
    }

    /// Runs the flow action named `name` (tools and tests; the runner has the [`Action`] from
    /// the flow file and calls [`Insurer::run`]); an unknown name answers `error`.
    pub async fn run_action(
        &self,
        db: &sea_orm::DatabaseTransaction,
        contact: &contact::Model,
        name: &str,
        args: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> ActionResult {
        let Some(action) = Action::from_name(name) else {
            tracing::warn!(action = %name, "unknown insurer action");
            return ActionResult::error();
        };
        self.run(db, contact, action, args, now).await
    }

    /// Runs the flow action `action` for `contact` with the conversation's `args`. Never
    /// fails: problems become the outcome `error` (logged without personal data). `db` is the
    /// runner's transaction: identity state written here commits with the turn.
    #[tracing::instrument(skip_all, fields(action = action.name(), contact_id = contact.id))]
    pub async fn run(
        &self,
        db: &sea_orm::DatabaseTransaction,
        contact: &contact::Model,
        action: Action,
        args: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> ActionResult {
        let ctx = actions::Ctx {
            insurer: self,
            db,
            contact,
            args,
            now,
        };
        ctx.run(action).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "insurer action failed");
            ActionResult::error()
        })
    }

    /// Forgets the contact's verifications (the runner calls this when a session ends).
    ///
    /// # Errors
    /// Database errors.
    pub async fn forget_verification<C: ConnectionTrait>(
        &self,
        db: &C,
        contact_id: i64,
    ) -> Result<(), sea_orm::DbErr> {
        identity::forget(db, contact_id).await
    }

    /// Today in the insurer's calendar.
    fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        let offset = FixedOffset::east_opt(self.settings.utc_offset_minutes * 60)
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
        now.with_timezone(&offset).date_naive()
    }
}
