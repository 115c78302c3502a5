//! One-time passwords (issue 19): codes sent with an AUTHENTICATION template, for the
//! insurer's systems (`/api/v1/otp`, in [`crate::http::otp`]) and for the chat's identity check
//! (`identity.verify_otp`, a code to the policy's registered mobile).
//!
//! A code is drawn from the operating system's CSPRNG and never stored, logged or shown:
//! - the `otps` row keeps only `HMAC-SHA256(key, id ":" code)`, compared in constant time;
//! - the outbox row that carries it to the sender keeps it sealed (XChaCha20-Poly1305 under
//!   a key derived from the same secret, bound to the OTP's id), opened only when the sender
//!   renders the template ([`crate::messaging::composer::Purpose::Otp`]); the console's
//!   transcript shows "code hidden".
//!
//! A code is usable once, until it expires (`otp.ttl_minutes`), with `otp.max_attempts`
//! tries: each try is counted by a conditional UPDATE before the comparison, so concurrent
//! guesses (on any instance) cannot exceed the cap. Sends are limited per phone number and
//! per purpose ([`RateLimited`] with the time until the oldest counted code leaves its window).
//!
//! Time comes from a [`Clock`] (tests move it with a `ManualClock`).

use std::sync::Arc;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;

use crate::clock::Clock;
pub use crate::codes::{CodeKey, SealedCode, new_code};
use crate::config::otp::OtpSettings;
use crate::consent::AddressHasher;
use crate::engine::templates_file::Category;
use crate::messaging::composer::{self, ComposeError, Composer, Intent, Queued, TemplateChoice};
use crate::messaging::outbox;
use crate::messaging::templates;
use crate::store::entities::{contact, otp as otp_row, outbox as outbox_row};

/// The purpose recorded for codes the chat's identity check sends (not one the API accepts
/// unless `otp.purposes` lists it).
pub const CHAT_PURPOSE: &str = "chat_identity";

/// The UTILITY template that tells a policy's owner someone asked for a code in the chat.
pub const ACCESS_NOTICE_TEMPLATE: &str = "otp_access_notice";

/// Where a code was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Api,
    Chat,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Api => "api",
            Origin::Chat => "chat",
        }
    }
}

/// The stored state of a code (expiry is read from `expires_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Pending,
    Verified,
    Locked,
}

impl RowState {
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Pending => "pending",
            RowState::Verified => "verified",
            RowState::Locked => "locked",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "verified" => RowState::Verified,
            "locked" => RowState::Locked,
            _ => RowState::Pending,
        }
    }
}

/// A fresh OTP id: `otp_` and 32 hex characters (122 random bits).
fn new_id() -> String {
    format!("otp_{}", uuid::Uuid::new_v4().simple())
}

/// One-time passwords as configured: keys, settings and the clock.
#[derive(Clone)]
pub struct Otp {
    pub settings: Arc<OtpSettings>,
    key: CodeKey,
    hasher: AddressHasher,
    composer: Composer,
    clock: Arc<dyn Clock>,
    /// The language of a code when the request names none.
    default_language: String,
}

impl std::fmt::Debug for Otp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otp").finish_non_exhaustive()
    }
}

/// Why no code was sent.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Too many codes for this number or this purpose; retry after this many seconds.
    #[error("{0}")]
    RateLimited(RateLimited),
    /// The authentication template cannot be sent in this language.
    #[error("{0}")]
    Template(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A send refused by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// `phone number` or `purpose`.
    pub scope: &'static str,
    pub retry_after_secs: u64,
}

impl std::fmt::Display for RateLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too many codes for this {}; retry in {} s",
            self.scope, self.retry_after_secs
        )
    }
}

/// What to send a code for.
#[derive(Debug, Clone)]
pub struct IssueRequest<'a> {
    pub purpose: &'a str,
    /// The recipient's number, normalised (see [`crate::phone::PhoneNumber::parse`]).
    pub phone: &'a str,
    /// `None`: the recipient's conversation language, else the default language.
    pub language: Option<&'a str>,
    pub origin: Origin,
    /// The chat path: the contact who asked and the policy it asked for.
    pub requester: Option<(i64, &'a str)>,
    /// The API's Idempotency-Key and the hash of its request body.
    pub idempotency: Option<(&'a str, &'a str)>,
    /// The business number the code leaves from (checked to be configured); `None`: from the
    /// chat, the number the requester is writing to; else the one the recipient last wrote
    /// to, else the deployment's first.
    pub number: Option<&'a str>,
}

/// A code sent (queued for the sender).
#[derive(Debug, Clone)]
pub struct Issued {
    pub id: String,
    pub expires_at: i64,
    pub queued: Queued,
    pub contact_id: i64,
}

/// The outcome of trying a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyOutcome {
    Verified,
    Wrong,
    Expired,
    Locked,
    AlreadyUsed,
}

impl VerifyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyOutcome::Verified => "verified",
            VerifyOutcome::Wrong => "wrong",
            VerifyOutcome::Expired => "expired",
            VerifyOutcome::Locked => "locked",
            VerifyOutcome::AlreadyUsed => "already_used",
        }
    }
}

/// A try and what is left of the code's attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub outcome: VerifyOutcome,
    pub attempts_left: u32,
    pub row: otp_row::Model,
}

/// Where a code is, as `GET /api/v1/otp/{id}` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for the sender.
    Queued,
    Sent,
    Delivered,
    Read,
    /// WhatsApp could not deliver it (the number is not on WhatsApp, 131026 and the like, or
    /// nothing could be sent): the insurer should fall back to SMS.
    Undeliverable,
    Verified,
    Expired,
    /// Too many wrong codes.
    Locked,
}

impl Otp {
    /// One-time passwords as `settings` configure them; `None` when they are off (no
    /// `otp.secret` outside sandbox mode).
    pub fn from_settings(
        settings: &crate::config::Settings,
        clock: Arc<dyn Clock>,
    ) -> Option<Self> {
        let secret = settings.otp.key(settings.sandbox())?;
        Some(Self {
            settings: Arc::new(settings.otp.clone()),
            key: CodeKey::new(&secret),
            hasher: AddressHasher::new(settings.hash_key()),
            composer: Composer::from_settings(settings),
            clock,
            default_language: settings.dialogue.default_language.clone(),
        })
    }

    /// Replaces the clock (tests).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    /// Now, in Unix ms, by this service's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// The key codes are hashed and sealed with (the composer opens seals with it).
    pub fn key(&self) -> &CodeKey {
        &self.key
    }

    /// The composer codes are queued with (it holds the key that opens them at send time).
    pub fn composer(&self) -> &Composer {
        &self.composer
    }

    /// Whether the API accepts `purpose`.
    pub fn knows_purpose(&self, purpose: &str) -> bool {
        self.settings.purposes.iter().any(|p| p == purpose)
    }

    /// The registry's authentication template in `language`, as the WABA of `number` (`None`:
    /// the first number) has it, if it can be sent; otherwise why not.
    ///
    /// # Errors
    /// Database errors.
    pub async fn template_problem<C: ConnectionTrait>(
        &self,
        db: &C,
        number: Option<&str>,
        language: &str,
    ) -> Result<Option<String>, DbErr> {
        let name = &self.settings.template;
        let waba = self.composer.waba_of(number);
        Ok(match templates::lookup(db, waba, name, language).await? {
            None => Some(format!(
                "the authentication template '{name}' is not in the registry for language '{language}'{}",
                if waba.is_empty() {
                    String::new()
                } else {
                    format!(" in WABA {waba}")
                }
            )),
            Some(t) if t.category != Category::Authentication.as_str() => Some(format!(
                "template '{name}' is {}, not AUTHENTICATION",
                t.category
            )),
            Some(t) if !t.is_approved() => Some(format!(
                "template '{name}' ({}) is {}, not APPROVED",
                t.language, t.status
            )),
            Some(_) => None,
        })
    }

    /// The first limit `phone_hash` and `purpose` are past at `now`, if any.
    async fn limited<C: ConnectionTrait>(
        &self,
        db: &C,
        phone_hash: &str,
        purpose: &str,
        now: i64,
    ) -> Result<Option<RateLimited>, DbErr> {
        let s = &self.settings;
        let checks = [
            (
                "phone number",
                otp_row::Column::PhoneHash.eq(phone_hash),
                s.per_phone_max,
                s.per_phone_window_minutes,
            ),
            (
                "purpose",
                otp_row::Column::Purpose.eq(purpose),
                s.per_purpose_max,
                s.per_purpose_window_minutes,
            ),
        ];
        for (scope, filter, max, window_minutes) in checks {
            let window = i64::from(window_minutes) * 60_000;
            let recent = otp_row::Entity::find()
                .filter(filter)
                .filter(otp_row::Column::CreatedAt.gt(now - window))
                .order_by_desc(otp_row::Column::CreatedAt)
                .limit(u64::from(max))
                .all(db)
                .await?;
            if recent.len() >= max as usize {
                // Free again when the oldest of the `max` latest leaves the window.
                let oldest = recent.last().map_or(now, |r| r.created_at);
                let wait_ms = std::cmp::max(oldest + window - now, 1);
                return Ok(Some(RateLimited {
                    scope,
                    retry_after_secs: u64::try_from(wait_ms).unwrap_or(1).div_ceil(1000),
                }));
            }
        }
        Ok(None)
    }

    /// Draws a code, stores its hash and queues it for `req.phone` with the authentication
    /// template, all in the caller's transaction `db`. Consent does not stop it: the person
    /// asked for the code (the composer lets [`composer::Purpose::Otp`] through).
    ///
    /// # Errors
    /// [`IssueError::RateLimited`], [`IssueError::Template`], database errors.
    pub async fn issue<C: ConnectionTrait>(
        &self,
        db: &C,
        req: IssueRequest<'_>,
    ) -> Result<Issued, IssueError> {
        let now = self.now_ms();
        let contact_id = crate::store::contacts::contact_for_phone(db, req.phone, now).await?;
        // One sender per number at a time (PostgreSQL; SQLite writers are serialised anyway),
        // so two concurrent requests cannot both pass the limit.
        contact::Entity::find_by_id(contact_id)
            .lock_exclusive()
            .one(db)
            .await?;
        let phone_hash = self.hasher.hash(req.phone);
        if let Some(limit) = self.limited(db, &phone_hash, req.purpose, now).await? {
            return Err(IssueError::RateLimited(limit));
        }
        let language = match req.language {
            Some(l) => l.to_owned(),
            None => crate::store::entities::conversation::Entity::find()
                .filter(crate::store::entities::conversation::Column::ContactId.eq(contact_id))
                .one(db)
                .await?
                .map_or_else(|| self.default_language.clone(), |c| c.language),
        };
        // The number it leaves from, before the template check: the template must be approved
        // in that number's WABA, not the first number's.
        let number = match (req.number, req.requester) {
            (Some(number), _) => Some(number.to_owned()),
            // Asked in a chat: the code answers that chat, so it leaves from the line the
            // requester is writing to, wherever the owner last wrote.
            (None, Some((requester, _))) => {
                composer::number_written_to(db, None, requester).await?
            }
            (None, None) => None,
        };
        if let Some(problem) = self
            .template_problem(db, number.as_deref(), &language)
            .await?
        {
            return Err(IssueError::Template(problem));
        }
        let id = new_id();
        let code = new_code(self.settings.code_length);
        let expires_at = now + i64::from(self.settings.ttl_minutes) * 60_000;
        let row = otp_row::ActiveModel {
            id: Set(id.clone()),
            purpose: Set(req.purpose.to_owned()),
            phone_hash: Set(phone_hash),
            contact_id: Set(contact_id),
            code_hash: Set(self.key.hash(&id, &code)),
            state: Set(RowState::Pending.as_str().to_owned()),
            attempts: Set(0),
            max_attempts: Set(i32::try_from(self.settings.max_attempts).unwrap_or(5)),
            created_at: Set(now),
            expires_at: Set(expires_at),
            verified_at: Set(None),
            outbox_id: Set(None),
            origin: Set(req.origin.as_str().to_owned()),
            requester_contact_id: Set(req.requester.map(|(c, _)| c)),
            policy_number: Set(req.requester.map(|(_, p)| p.to_owned())),
            idempotency_key: Set(req.idempotency.map(|(k, _)| k.to_owned())),
            request_hash: Set(req.idempotency.map(|(_, h)| h.to_owned())),
        };
        otp_row::Entity::insert(row)
            .exec_without_returning(db)
            .await?;
        if let (Origin::Chat, Some((_, policy))) = (req.origin, req.requester) {
            self.tell_owner(db, contact_id, &language, policy, number.as_deref())
                .await?;
        }
        let intent = Intent {
            contact_id,
            in_reply_to: None,
            purpose: composer::Purpose::Otp {
                otp_id: id.clone(),
                code: self.key.seal(&id, &code),
            },
            free_form: None,
            template: Some(TemplateChoice {
                name: self.settings.template.clone(),
                language,
                // The code travels sealed in the purpose, never as a plain parameter.
                params: Vec::new(),
            }),
        };
        let queued = match composer::queue_from(db, &self.composer, intent, number.as_deref()).await
        {
            Ok(q) => q,
            Err(ComposeError::Db(e)) => return Err(e.into()),
            Err(e) => return Err(DbErr::Custom(e.to_string()).into()),
        };
        let outbox_id = match &queued {
            Queued::Row(id) | Queued::Skipped { row: id, .. } => *id,
        };
        otp_row::Entity::update_many()
            .col_expr(otp_row::Column::OutboxId, Expr::value(outbox_id))
            .filter(otp_row::Column::Id.eq(id.as_str()))
            .exec(db)
            .await?;
        tracing::info!(otp_id = %id, outbox_id, purpose = req.purpose, origin = req.origin.as_str(), "one-time password queued");
        Ok(Issued {
            id,
            expires_at,
            queued,
            contact_id,
        })
    }

    /// Tells the policy's registered owner, just before their code, that someone asked for
    /// access from the chat (the authentication template cannot say so: Meta fixes its text).
    /// A notice that cannot go (its template missing or paused) is logged, not fatal: the code
    /// itself still goes.
    async fn tell_owner<C: ConnectionTrait>(
        &self,
        db: &C,
        contact_id: i64,
        language: &str,
        policy: &str,
        number: Option<&str>,
    ) -> Result<(), IssueError> {
        let ending: String = policy
            .chars()
            .skip(policy.chars().count().saturating_sub(4))
            .collect();
        let intent = Intent {
            contact_id,
            in_reply_to: None,
            purpose: composer::Purpose::Notification {
                kind: ACCESS_NOTICE_TEMPLATE.to_owned(),
                essential: true,
            },
            free_form: None,
            template: Some(TemplateChoice {
                name: ACCESS_NOTICE_TEMPLATE.to_owned(),
                language: language.to_owned(),
                params: vec![ending],
            }),
        };
        match composer::queue_from(db, &self.composer, intent, number).await {
            Ok(_) => Ok(()),
            Err(ComposeError::Db(e)) => Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, template = ACCESS_NOTICE_TEMPLATE, "the owner's access notice cannot be sent; the code goes alone");
                Ok(())
            }
        }
    }

    /// Tries `code` against OTP `id`; `None` when there is no such OTP.
    ///
    /// # Errors
    /// Database errors.
    pub async fn verify<C: ConnectionTrait>(
        &self,
        db: &C,
        id: &str,
        code: &str,
    ) -> Result<Option<Verification>, DbErr> {
        use otp_row::{Column, Entity};
        let now = self.now_ms();
        let Some(row) = Entity::find_by_id(id.to_owned()).one(db).await? else {
            return Ok(None);
        };
        let answer = |outcome, row: otp_row::Model| {
            let left = u32::try_from(row.max_attempts - row.attempts).unwrap_or(0);
            Ok(Some(Verification {
                outcome,
                attempts_left: left,
                row,
            }))
        };
        match RowState::parse(&row.state) {
            RowState::Verified => return answer(VerifyOutcome::AlreadyUsed, row),
            RowState::Locked => return answer(VerifyOutcome::Locked, row),
            RowState::Pending if now >= row.expires_at => {
                return answer(VerifyOutcome::Expired, row);
            }
            RowState::Pending => {}
        }
        // Count the try before comparing: concurrent tries each take one of the attempts
        // left, and none is made once they are gone.
        let reserved = Entity::update_many()
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .filter(Column::Id.eq(id))
            .filter(Column::State.eq(RowState::Pending.as_str()))
            .filter(Expr::col(Column::Attempts).lt(Expr::col(Column::MaxAttempts)))
            .exec(db)
            .await?
            .rows_affected;
        if reserved == 0 {
            let row = find(db, id).await?.unwrap_or(row);
            let outcome = if RowState::parse(&row.state) == RowState::Verified {
                VerifyOutcome::AlreadyUsed
            } else {
                VerifyOutcome::Locked
            };
            return answer(outcome, row);
        }
        if self.key.matches(id, code.trim(), &row.code_hash) {
            let won = Entity::update_many()
                .col_expr(Column::State, Expr::value(RowState::Verified.as_str()))
                .col_expr(Column::VerifiedAt, Expr::value(now))
                .filter(Column::Id.eq(id))
                .filter(Column::State.eq(RowState::Pending.as_str()))
                .exec(db)
                .await?
                .rows_affected;
            let row = find(db, id).await?.unwrap_or(row);
            let outcome = if won == 1 {
                tracing::info!(otp_id = %id, "one-time password verified");
                VerifyOutcome::Verified
            } else {
                VerifyOutcome::AlreadyUsed
            };
            return answer(outcome, row);
        }
        let row = find(db, id).await?.unwrap_or(row);
        if row.attempts >= row.max_attempts {
            Entity::update_many()
                .col_expr(Column::State, Expr::value(RowState::Locked.as_str()))
                .filter(Column::Id.eq(id))
                .filter(Column::State.eq(RowState::Pending.as_str()))
                .exec(db)
                .await?;
            tracing::warn!(otp_id = %id, attempts = row.attempts, "one-time password locked after too many wrong codes");
            let row = find(db, id).await?.unwrap_or(row);
            return answer(VerifyOutcome::Locked, row);
        }
        tracing::info!(otp_id = %id, attempts = row.attempts, "wrong one-time password");
        answer(VerifyOutcome::Wrong, row)
    }

    /// Where OTP `row` is now: verified, locked, undeliverable, expired, or how far its
    /// message got.
    ///
    /// # Errors
    /// Database errors.
    pub async fn status<C: ConnectionTrait>(
        &self,
        db: &C,
        row: &otp_row::Model,
    ) -> Result<(Status, Option<outbox_row::Model>), DbErr> {
        let mut message = match row.outbox_id {
            Some(id) => outbox::get(db, id).await?,
            None => None,
        };
        // The furthest status Meta reported for the wamid: a status webhook that raced the
        // recording of the send (PostgreSQL, two transactions at once) can leave the outbox
        // row behind it.
        if let Some(m) = message.as_mut()
            && let Some(wamid) = m.wamid.clone()
            && let Some(seen) = crate::store::entities::message_status::Entity::find_by_id(wamid)
                .one(db)
                .await?
            && seen.rank > m.delivery_rank
        {
            m.delivery_status = Some(seen.status);
            m.delivery_rank = seen.rank;
            m.delivery_at = Some(seen.status_at);
            m.delivery_error_code = seen.error_code;
            m.delivery_error = seen.error_title;
        }
        Ok((status_of(row, message.as_ref(), self.now_ms()), message))
    }

    /// The OTP `id`, if it exists.
    ///
    /// # Errors
    /// Database errors.
    pub async fn get<C: ConnectionTrait>(
        &self,
        db: &C,
        id: &str,
    ) -> Result<Option<otp_row::Model>, DbErr> {
        find(db, id).await
    }

    /// How many codes `requester` asked for in the chat since `since` (ms).
    ///
    /// # Errors
    /// Database errors.
    pub async fn chat_requests_since<C: ConnectionTrait>(
        &self,
        db: &C,
        requester: i64,
        since: i64,
    ) -> Result<u64, DbErr> {
        otp_row::Entity::find()
            .filter(otp_row::Column::RequesterContactId.eq(requester))
            .filter(otp_row::Column::CreatedAt.gt(since))
            .count(db)
            .await
    }
}

async fn find<C: ConnectionTrait>(db: &C, id: &str) -> Result<Option<otp_row::Model>, DbErr> {
    otp_row::Entity::find_by_id(id.to_owned()).one(db).await
}

/// [`Otp::status`]'s rule: a final state first (verified, locked), then a message that
/// cannot arrive, then expiry, then the furthest delivery status.
pub fn status_of(row: &otp_row::Model, message: Option<&outbox_row::Model>, now: i64) -> Status {
    match RowState::parse(&row.state) {
        RowState::Verified => return Status::Verified,
        RowState::Locked => return Status::Locked,
        RowState::Pending => {}
    }
    let undeliverable = message.is_some_and(|m| {
        [
            outbox_row::State::Skipped,
            outbox_row::State::Dead,
            outbox_row::State::Failed,
        ]
        .contains(&m.state)
            || m.delivery_status.as_deref() == Some("failed")
    });
    if undeliverable {
        return Status::Undeliverable;
    }
    if now >= row.expires_at {
        return Status::Expired;
    }
    match message.and_then(|m| m.delivery_status.as_deref()) {
        Some("read" | "played") => Status::Read,
        Some("delivered") => Status::Delivered,
        Some(_) => Status::Sent,
        None if message.is_some_and(|m| m.state == outbox_row::State::Sent) => Status::Sent,
        None => Status::Queued,
    }
}
