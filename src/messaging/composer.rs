//! The composer: the one entry point for everything that leaves insurebot.
//!
//! Callers (the dialogue runner, agents, notifications, campaigns) say what they want to send
//! as an [`Intent`]: a free-form body for an open 24-hour window and/or an approved template for
//! a closed one. [`queue`] stores the intent in the outbox inside the caller's transaction;
//! nothing is sent here. The sender calls [`decide`] again at the moment of sending, because
//! the window may close (and a template may be paused) between queueing and sending:
//!
//! - window open → the free-form body (or the template when there is no free-form body);
//! - window closed → the template, if it is APPROVED and its parameters fit;
//! - otherwise nothing, and the row records why (`window_closed_no_template`,
//!   `template_not_approved`, …) in state `skipped`: visible, never silently lost.
//!
//! The window is 24 hours from the contact's last inbound message to the business number the
//! row leaves from (`contact_windows`: Meta keeps one window per user and business number, so
//! a message to the claims line opens nothing for the sales line), minus a configurable
//! safety margin. Every decision then passes the consent gate
//! ([`consent_gate`], rules in [`crate::messaging::gate`]); a refusal is recorded on the row
//! with a `consent_*` reason, never sent.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::handover::{FreshBatch, FreshRow};
use super::outbox;
use super::templates::{self, TemplateInfo};
use crate::config::{MessagingSettings, Settings};
use crate::consent::{ConsentPolicy, ConsentState};
use crate::messaging::gate::{self, GateInput, Verdict};
use crate::store::entities::outbox::Reason;
use crate::store::entities::{contact, contact_window, inbound_message};
use crate::store::now_ms;
use crate::whatsapp::outbound::{LimitError, OutboundBody, OutboundMessage, Recipient};

/// The customer service window (reference §4.1).
pub const WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// What a caller wants to send to one contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub contact_id: i64,
    /// The inbound message this answers (marked read once the answer is sent).
    pub in_reply_to: Option<i64>,
    pub purpose: Purpose,
    /// Inside the window: text, reply buttons or a list.
    pub free_form: Option<OutboundBody>,
    /// Outside it: the approved template the flow state, notification kind or agent chose.
    pub template: Option<TemplateChoice>,
}

/// Why a message is sent; the consent gate and the API read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "purpose", rename_all = "snake_case")]
pub enum Purpose {
    /// An answer to the contact's own message (the dialogue engine).
    Reply,
    /// A proactive notice (claim update, premium due). `essential` lets the consent gate pass
    /// it to a contact who opted out.
    Notification {
        kind: String,
        essential: bool,
    },
    /// A human agent's message.
    Agent,
    Campaign {
        campaign_id: i64,
    },
    /// A one-time password the person asked for ([`crate::otp`]): an AUTHENTICATION template
    /// whose code travels sealed here and is opened only when the template is rendered, so
    /// the outbox never holds it in clear. Consent does not stop it.
    Otp {
        otp_id: String,
        code: crate::codes::SealedCode,
    },
}

impl Purpose {
    /// The label stored in `outbox.purpose`.
    pub fn label(&self) -> &'static str {
        match self {
            Purpose::Reply => "reply",
            Purpose::Notification { .. } => "notification",
            Purpose::Agent => "agent",
            Purpose::Campaign { .. } => "campaign",
            Purpose::Otp { .. } => "otp",
        }
    }
}

/// A template fallback: the registry supplies category, parameter names and buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateChoice {
    pub name: String,
    /// The contact's language (`en`, `hi`, `ta`); `hi_IN` and `hi` match each other.
    pub language: String,
    /// Body parameters in the template's order, already rendered for people.
    pub params: Vec<String>,
}

/// What [`queue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// Queued as outbox row `id`; the sender decides again when it sends.
    Row(i64),
    /// Nothing can go right now; recorded as outbox row `row` in state `skipped` with
    /// `reason` (e.g. `window_closed_no_template`, `template_not_approved`).
    Skipped { row: i64, reason: Reason },
}

/// Why an intent could not even be queued: a bug in the caller, not a WhatsApp rule.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("an intent needs a free-form body, a template, or both")]
    Empty,
    #[error("templates go in `template`, not in `free_form`")]
    TemplateAsFreeForm,
    #[error("the free-form message breaks a Cloud API limit: {0}")]
    Invalid(#[from] LimitError),
    #[error("contact {0} does not exist")]
    UnknownContact(i64),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What the outbox row stores: both alternatives, so the decision can be made again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredIntent {
    pub purpose: Purpose,
    pub free_form: Option<OutboundBody>,
    pub template: Option<TemplateChoice>,
}

impl StoredIntent {
    /// Reads an outbox payload. Rows written before the composer hold a finished
    /// `OutboundMessage`; its body is taken as the free-form alternative.
    ///
    /// # Errors
    /// When the payload is neither shape.
    pub fn from_payload(payload: &str) -> Result<Self, serde_json::Error> {
        match serde_json::from_str::<StoredIntent>(payload) {
            Ok(intent) => Ok(intent),
            Err(e) => match serde_json::from_str::<OutboundMessage>(payload) {
                Ok(legacy) if !matches!(legacy.body, OutboundBody::Template { .. }) => {
                    Ok(StoredIntent {
                        purpose: Purpose::Reply,
                        free_form: Some(legacy.body),
                        template: None,
                    })
                }
                _ => Err(e),
            },
        }
    }
}

/// The composer's policy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Composer {
    /// The window closes this long before the 24 hours are up.
    pub window_margin_ms: i64,
    /// What the consent gate applies (and the key of the address hash).
    pub consent: Arc<ConsentPolicy>,
    /// Opens the sealed codes of [`Purpose::Otp`] messages; `None` when one-time passwords
    /// are off (such a message is then skipped).
    pub codes: Option<crate::codes::CodeKey>,
    /// Whose templates a row may use: each business number's WhatsApp Business Account by
    /// phone number id; a row naming no number (or one not listed) uses `default_waba`, the
    /// first number's.
    pub wabas: Arc<HashMap<String, String>>,
    pub default_waba: String,
    /// The deployment's first business number: whose window a row naming no number is
    /// decided by. `None` ([`Composer::new`], tests and benches with one number): the
    /// contact's newest message to any number.
    pub first_number: Option<String>,
}

impl Composer {
    /// The window settings with the default consent policy (sandbox hash key): for tests and
    /// benches. The server uses [`Composer::from_settings`].
    pub fn new(settings: &MessagingSettings) -> Self {
        Composer {
            window_margin_ms: i64::try_from(settings.window_margin_secs)
                .unwrap_or(i64::MAX / 2_000)
                .saturating_mul(1000),
            consent: Arc::new(ConsentPolicy::default()),
            codes: None,
            wabas: Arc::default(),
            default_waba: String::new(),
            first_number: None,
        }
    }

    /// The composer as configured: window margin, consent settings and hash key.
    pub fn from_settings(settings: &Settings) -> Self {
        Composer {
            consent: Arc::new(ConsentPolicy::from_settings(settings)),
            codes: settings
                .otp
                .key(settings.sandbox())
                .map(|secret| crate::codes::CodeKey::new(&secret)),
            wabas: Arc::new(
                settings
                    .numbers()
                    .into_iter()
                    .map(|n| (n.phone_number_id, n.waba_id))
                    .collect(),
            ),
            default_waba: settings.numbers().swap_remove(0).waba_id,
            first_number: Some(settings.first_number_id().to_owned()),
            ..Composer::new(&settings.messaging)
        }
    }

    /// The WhatsApp Business Account whose templates a row leaving from `number` may use.
    pub fn waba_of(&self, number: Option<&str>) -> &str {
        number
            .and_then(|n| self.wabas.get(n))
            .unwrap_or(&self.default_waba)
    }

    /// Whether free-form messages may go at `now` (Unix ms) to a contact whose last inbound
    /// message is `last_inbound_at`.
    pub fn window_open(&self, last_inbound_at: Option<i64>, now: i64) -> bool {
        self.window_closes_at(last_inbound_at)
            .is_some_and(|end| now < end)
    }

    /// When free-form messages stop going (Unix ms): 24 hours after the last inbound message,
    /// minus the safety margin. `None` when the contact never wrote.
    pub fn window_closes_at(&self, last_inbound_at: Option<i64>) -> Option<i64> {
        last_inbound_at.map(|t| t + WINDOW_MS - self.window_margin_ms)
    }
}

/// The outcome of a decision: a concrete message, or nothing and why.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Send {
        message: OutboundMessage,
        /// `free_form` or `template`.
        sent_as: &'static str,
        /// Boxed: the registry entry is large and most decisions are free-form.
        template: Option<Box<TemplateInfo>>,
    },
    Skip {
        reason: Reason,
        detail: String,
    },
}

/// Where a decision is taken: what the consent gate needs beyond the intent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecideContext<'a> {
    /// The inbound message this answers (a reply to what the contact just sent may reach a
    /// contact who opted out).
    pub in_reply_to: Option<i64>,
    /// The outbox row being sent; `None` at queue time (the marketing cap counts the rows
    /// queued before it).
    pub row_id: Option<i64>,
    /// The contact's consent as the caller read it in the same transaction (the pipeline
    /// reads it for a whole batch); `None`: the gate reads the log.
    pub consent: Option<&'a ConsentState>,
    /// The business number the row leaves from (`None`: the deployment's first): its window
    /// decides between free-form text and the template, and the template must be approved in
    /// its WABA.
    pub number: Option<&'a str>,
    /// When the contact is known to have written to `number` (the answered message's
    /// WhatsApp time, read with it): the window there started no earlier, so while that time
    /// keeps it open no read is needed. `None`: the window start is read.
    pub written_at: Option<i64>,
}

/// THE CONSENT GATE. It is called for every decision, at queue time and again at send time
/// (consent may change in between), with the contact, the intent, the template when one was
/// chosen (its category and the insurer's `essential` flag), and the context. The rules are in
/// [`crate::messaging::gate`].
///
/// # Errors
/// Database errors.
pub async fn consent_gate<C: ConnectionTrait>(
    db: &C,
    composer: &Composer,
    contact: &contact::Model,
    intent: &StoredIntent,
    template: Option<&TemplateInfo>,
    context: DecideContext<'_>,
    now: i64,
) -> Result<Verdict, DbErr> {
    gate::check(
        db,
        composer,
        GateInput {
            contact,
            purpose: &intent.purpose,
            template,
            fallback: intent.template.as_ref(),
            in_reply_to: context.in_reply_to,
            row_id: context.row_id,
            known_state: context.consent,
            now,
        },
    )
    .await
}

/// Stores `intent` in the outbox inside the caller's transaction `db`. Nothing is sent here;
/// the caller wakes the sender after its commit (the pipeline does).
///
/// When nothing could go even now (window closed with no usable template, consent refused),
/// the row is stored as `skipped` with the reason and [`Queued::Skipped`] is returned.
///
/// # Errors
/// [`ComposeError`] for a malformed intent or an unknown contact; database errors.
#[tracing::instrument(name = "composer.queue", skip_all, fields(contact_id = intent.contact_id, purpose = intent.purpose.label()))]
pub async fn queue<C: ConnectionTrait>(
    db: &C,
    composer: &Composer,
    intent: Intent,
) -> Result<Queued, ComposeError> {
    queue_from(db, composer, intent, None).await
}

/// [`queue`] for a caller that has just read the contact (inside the same transaction), so
/// that it is not read again.
///
/// # Errors
/// As [`queue`]; [`ComposeError::UnknownContact`] when `contact` is not the intent's.
pub async fn queue_to<C: ConnectionTrait>(
    db: &C,
    composer: &Composer,
    intent: Intent,
    contact: &contact::Model,
) -> Result<Queued, ComposeError> {
    let prepared = prepare(db, composer, intent, contact, None, Line::LookUp).await?;
    store(db, prepared.row).await
}

/// [`queue`] from the business number `number` when the caller chose one (a notification or
/// a one-time password naming its line) instead of the one the contact last wrote to. The
/// caller checks that `number` is configured.
///
/// # Errors
/// As [`queue`].
pub async fn queue_from<C: ConnectionTrait>(
    db: &C,
    composer: &Composer,
    intent: Intent,
    number: Option<&str>,
) -> Result<Queued, ComposeError> {
    let contact = contact::Entity::find_by_id(intent.contact_id)
        .one(db)
        .await?
        .ok_or(ComposeError::UnknownContact(intent.contact_id))?;
    let line = number.map_or(Line::LookUp, Line::Chosen);
    let prepared = prepare(db, composer, intent, &contact, None, line).await?;
    store(db, prepared.row).await
}

/// What [`queue_from_pipeline`] did with an intent.
#[derive(Debug)]
pub enum PipelineQueued {
    /// Decided "send free-form now" and added to the batch's handover; its row is stored with
    /// the batch's others ([`FreshBatch::store`]) before the pipeline's transaction commits.
    HandedOver,
    /// Stored in the outbox, as by [`queue_to`].
    Queued(Queued),
}

/// [`queue_to`] for the pipeline: with `fresh`, a row that may go out free-form now is leased
/// to this instance's sender and added to the batch, which stores it with the batch's other
/// such rows and hands it over in memory once the caller's transaction commits (see
/// [`handoff`](super::handoff)); any other row is queued as usual. The string is the wamid of
/// the message being answered, marked read once sent. `consent` is the contact's consent as
/// read in the caller's transaction, if it has it; `line` the number the row leaves from.
///
/// # Errors
/// As [`queue_to`].
pub async fn queue_from_pipeline<C: ConnectionTrait>(
    db: &C,
    composer: &Composer,
    intent: Intent,
    contact: &contact::Model,
    fresh: Option<(&FreshBatch, Option<String>)>,
    consent: Option<&ConsentState>,
    line: Line<'_>,
) -> Result<PipelineQueued, ComposeError> {
    let Prepared {
        stored,
        decision,
        row,
        decided_at,
    } = prepare(db, composer, intent, contact, consent, line).await?;
    if let Some((fresh, answered_wamid)) = fresh {
        // Only the free-form answer inside the window is handed over: a template may be
        // marketing, whose cap counts the rows queued before this one, and is decided again
        // when sent.
        if let Decision::Send {
            message,
            sent_as: sent_as @ "free_form",
            template,
        } = decision
        {
            fresh.push(FreshRow {
                row: outbox::unstored(row, Some(fresh.lease_owner()), now_ms()),
                contact: contact.clone(),
                intent: stored,
                message,
                sent_as,
                template,
                answered_wamid,
                decided_at,
            });
            return Ok(PipelineQueued::HandedOver);
        }
        if row.skipped.is_none() {
            fresh.queued_for_claim();
        }
    }
    store(db, row).await.map(PipelineQueued::Queued)
}

/// An intent checked and decided, with its outbox row built but not stored.
struct Prepared {
    stored: StoredIntent,
    decision: Decision,
    row: outbox::NewRow<'static>,
    decided_at: i64,
}

/// The business number an outbox row leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// The one the caller chose (a notification or a one-time password naming its line).
    Chosen(&'a str),
    /// The one the answered message came to, as the caller read it with the message: the
    /// pipeline has the row in hand, so no second read per reply. `number` `None`: the
    /// webhook named no number (the row leaves from the deployment's first). `sent_at` is the
    /// message's WhatsApp time (Unix ms): the window on its number started no earlier. Only for
    /// an intent whose `in_reply_to` is that message.
    Answered {
        number: Option<&'a str>,
        sent_at: i64,
    },
    /// Read: the answered message's, else the contact's latest ([`number_written_to`]).
    LookUp,
}

/// Checks `intent` for `contact` and decides it as of now. Its row leaves from `line`.
async fn prepare<C: ConnectionTrait>(
    db: &C,
    composer: &Composer,
    intent: Intent,
    contact: &contact::Model,
    consent: Option<&ConsentState>,
    line: Line<'_>,
) -> Result<Prepared, ComposeError> {
    if intent.free_form.is_none() && intent.template.is_none() {
        return Err(ComposeError::Empty);
    }
    if matches!(intent.free_form, Some(OutboundBody::Template { .. })) {
        return Err(ComposeError::TemplateAsFreeForm);
    }
    if contact.id != intent.contact_id {
        return Err(ComposeError::UnknownContact(intent.contact_id));
    }
    let stored = StoredIntent {
        purpose: intent.purpose,
        free_form: intent.free_form,
        template: intent.template,
    };
    // A free-form body that breaks a limit is the caller's bug; say so now, not at send time.
    if let (Some(body), Some(to)) = (&stored.free_form, recipient(contact)) {
        OutboundMessage {
            to,
            body: body.clone(),
            reply_to: None,
            callback_data: None,
        }
        .validate()?;
    }
    let (phone_number_id, written_at) = match line {
        Line::Chosen(number) => (Some(number.to_owned()), None),
        Line::Answered { number, sent_at } => (number.map(str::to_owned), Some(sent_at)),
        Line::LookUp => (
            number_written_to(db, intent.in_reply_to, contact.id).await?,
            None,
        ),
    };
    let context = DecideContext {
        in_reply_to: intent.in_reply_to,
        row_id: None,
        consent,
        number: phone_number_id.as_deref(),
        written_at,
    };
    let decided_at = now_ms();
    let decision = decide_for(db, composer, contact, &stored, context, false, decided_at).await?;
    let skipped = match &decision {
        Decision::Skip { reason, detail } => Some((*reason, detail.clone())),
        Decision::Send { .. } => None,
    };
    let row = outbox::NewRow {
        contact_id: contact.id,
        in_reply_to: intent.in_reply_to,
        purpose: stored.purpose.label(),
        payload: serde_json::to_string(&stored).map_err(|e| DbErr::Custom(e.to_string()))?,
        skipped,
        phone_number_id,
    };
    Ok(Prepared {
        stored,
        decision,
        row,
        decided_at,
    })
}

/// The business number a message to `contact_id` leaves from when its caller chose none: the one the message it
/// answers came to, else the one the contact last wrote to; `None` (they never wrote, or the
/// webhook named no number): the deployment's first.
pub async fn number_written_to<C: ConnectionTrait>(
    db: &C,
    in_reply_to: Option<i64>,
    contact_id: i64,
) -> Result<Option<String>, DbErr> {
    let query = inbound_message::Entity::find()
        .select_only()
        .column(inbound_message::Column::PhoneNumberId);
    let query = match in_reply_to {
        Some(id) => query.filter(inbound_message::Column::Id.eq(id)),
        None => query
            .filter(inbound_message::Column::ContactId.eq(contact_id))
            .order_by_desc(inbound_message::Column::Id),
    };
    Ok(query
        .into_tuple::<Option<String>>()
        .one(db)
        .await?
        .flatten())
}

/// [`number_written_to`] for several contacts at once (the console's queue): each contact's
/// id and the number its latest message came to; a contact who never wrote (or whose webhook
/// named no number) is left out.
///
/// # Errors
/// Database errors.
pub async fn numbers_written_to<C: ConnectionTrait>(
    db: &C,
    contact_ids: &[i64],
) -> Result<HashMap<i64, String>, DbErr> {
    if contact_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let latest = Query::select()
        .expr(inbound_message::Column::Id.max())
        .from(inbound_message::Entity)
        .and_where(inbound_message::Column::ContactId.is_in(contact_ids.iter().copied()))
        .group_by_col(inbound_message::Column::ContactId)
        .to_owned();
    let found = inbound_message::Entity::find()
        .select_only()
        .column(inbound_message::Column::ContactId)
        .column(inbound_message::Column::PhoneNumberId)
        .filter(inbound_message::Column::Id.in_subquery(latest))
        .into_tuple::<(i64, Option<String>)>()
        .all(db)
        .await?;
    Ok(found
        .into_iter()
        .filter_map(|(contact, number)| Some((contact, number?)))
        .collect())
}

/// When `contact`'s 24-hour window on `number` (`None`: the deployment's first) started: their
/// newest message to that number, `None` if they never wrote to it. A contact with no window
/// recorded per number (whose messages named no number: stored before numbers were kept, or
/// inserted by hand) has theirs on the deployment's first number, where a message naming no
/// number belongs; so does anyone for a composer that does not know the first number
/// ([`Composer::new`]).
///
/// # Errors
/// Database errors.
pub async fn window_start<C: ConnectionTrait>(
    db: &C,
    composer: &Composer,
    contact: &contact::Model,
    number: Option<&str>,
) -> Result<Option<i64>, DbErr> {
    // Never wrote to any number (a campaign's or reminder's usual recipient): no query.
    if contact.last_inbound_at.is_none() {
        return Ok(None);
    }
    let first = composer.first_number.as_deref();
    let Some(number) = number.or(first) else {
        return Ok(contact.last_inbound_at);
    };
    // One query for all of them (a contact writes to one or two numbers).
    let windows = windows_of(db, contact.id).await?;
    if windows.is_empty() && first.is_none_or(|f| f == number) {
        return Ok(contact.last_inbound_at);
    }
    Ok(windows
        .into_iter()
        .find(|(n, _)| n == number)
        .map(|(_, at)| at))
}

/// Every window `contact_id` has: each business number they wrote to and when the window
/// there started, the newest first (the console shows them).
///
/// # Errors
/// Database errors.
pub async fn windows_of<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
) -> Result<Vec<(String, i64)>, DbErr> {
    contact_window::Entity::find()
        .select_only()
        .column(contact_window::Column::PhoneNumberId)
        .column(contact_window::Column::LastInboundAt)
        .filter(contact_window::Column::ContactId.eq(contact_id))
        .order_by_desc(contact_window::Column::LastInboundAt)
        .into_tuple()
        .all(db)
        .await
}

/// Stores a row in the outbox (queued, or skipped with its reason).
async fn store<C: ConnectionTrait>(
    db: &C,
    row: outbox::NewRow<'static>,
) -> Result<Queued, ComposeError> {
    let skipped = row.skipped.clone();
    let id = outbox::insert(db, row).await?;
    Ok(match skipped {
        Some((reason, detail)) => {
            tracing::info!(outbox_id = id, %reason, %detail, "nothing can be sent: recorded as skipped");
            Queued::Skipped { row: id, reason }
        }
        None => Queued::Row(id),
    })
}

/// Who receives messages for `contact`: the phone number when known, else the BSUID.
pub fn recipient(contact: &contact::Model) -> Option<Recipient> {
    match (&contact.wa_id, &contact.user_id) {
        (Some(phone), _) => Some(Recipient::Phone(phone.clone())),
        (None, Some(user_id)) => Some(Recipient::UserId(user_id.clone())),
        (None, None) => None,
    }
}

/// [`decide_for`] without a context: as if queued now, answering no message.
///
/// # Errors
/// Database errors.
pub async fn decide<C: ConnectionTrait>(
    db: &C,
    composer: &Composer,
    contact: &contact::Model,
    intent: &StoredIntent,
    force_template: bool,
    now: i64,
) -> Result<Decision, DbErr> {
    decide_for(
        db,
        composer,
        contact,
        intent,
        DecideContext::default(),
        force_template,
        now,
    )
    .await
}

/// Decides what goes to `contact` at `now`: the free-form body inside the window, the
/// template outside it (or always when `force_template`, after Meta said 131047), or nothing
/// with the reason; then the consent gate has its say.
///
/// # Errors
/// Database errors.
pub async fn decide_for<C: ConnectionTrait>(
    db: &C,
    composer: &Composer,
    contact: &contact::Model,
    intent: &StoredIntent,
    context: DecideContext<'_>,
    force_template: bool,
    now: i64,
) -> Result<Decision, DbErr> {
    let Some(to) = recipient(contact) else {
        return Ok(Decision::Skip {
            reason: Reason::NoAddress,
            detail: format!(
                "contact {} has neither a phone number nor a BSUID",
                contact.id
            ),
        });
    };
    // The ingest moves the window start on a number to its newest message, so a message the
    // contact sent to `number` that keeps the window open settles it without a read (one query
    // per reply saved in the pipeline).
    let open = !force_template
        && (context
            .written_at
            .is_some_and(|at| context.number.is_some() && composer.window_open(Some(at), now))
            || composer.window_open(
                window_start(db, composer, contact, context.number).await?,
                now,
            ));
    let (body, sent_as, template) = match (&intent.free_form, &intent.template, open) {
        (Some(body), _, true) => (body.clone(), "free_form", None),
        (_, Some(choice), _) => {
            // Only the template as approved in the WABA of the number the row leaves from:
            // another WABA's approval does not let this number send it.
            let waba = composer.waba_of(context.number);
            let Some(info) = templates::lookup(db, waba, &choice.name, &choice.language).await?
            else {
                return Ok(Decision::Skip {
                    reason: Reason::TemplateUnknown,
                    detail: if waba.is_empty() {
                        format!(
                            "template {} ({}) is not in the registry",
                            choice.name, choice.language
                        )
                    } else {
                        format!(
                            "template {} ({}) is not in the registry of WABA {waba}, the WhatsApp Business Account of the number it leaves from",
                            choice.name, choice.language
                        )
                    },
                });
            };
            // A one-time password's code is opened here, at the last moment, and lives
            // only in the message about to be sent.
            let params = match &intent.purpose {
                Purpose::Otp { otp_id, code } => {
                    match composer.codes.as_ref().and_then(|k| k.unseal(otp_id, code)) {
                        Some(code) => std::borrow::Cow::Owned(vec![code]),
                        None => {
                            return Ok(Decision::Skip {
                                reason: Reason::OtpSealed,
                                detail: "the one-time password cannot be opened: otp.secret is unset or changed since it was queued".to_owned(),
                            });
                        }
                    }
                }
                _ => std::borrow::Cow::Borrowed(choice.params.as_slice()),
            };
            match templates::render(&info, &params) {
                Ok(body) => (body, "template", Some(Box::new(info))),
                Err(refusal) => {
                    return Ok(Decision::Skip {
                        reason: refusal.code,
                        detail: refusal.detail,
                    });
                }
            }
        }
        (_, None, _) => {
            return Ok(Decision::Skip {
                reason: Reason::WindowClosedNoTemplate,
                detail: if force_template {
                    "Meta reports the 24-hour window closed and the message has no template fallback"
                        .to_owned()
                } else {
                    "the 24-hour window is closed and the message has no template fallback"
                        .to_owned()
                },
            });
        }
    };
    if let Verdict::Deny { reason, detail } = consent_gate(
        db,
        composer,
        contact,
        intent,
        template.as_deref(),
        context,
        now,
    )
    .await?
    {
        return Ok(Decision::Skip { reason, detail });
    }
    Ok(Decision::Send {
        message: OutboundMessage {
            to,
            body,
            reply_to: None,
            callback_data: None,
        },
        sent_as,
        template,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_24_hours_minus_the_margin() {
        let c = Composer {
            window_margin_ms: 10 * 60 * 1000,
            consent: Default::default(),
            codes: None,
            wabas: Default::default(),
            default_waba: String::new(),
            first_number: None,
        };
        let t = 1_700_000_000_000;
        assert!(!c.window_open(None, t));
        assert!(c.window_open(Some(t), t));
        assert!(c.window_open(Some(t), t + WINDOW_MS - 10 * 60 * 1000 - 1));
        assert!(!c.window_open(Some(t), t + WINDOW_MS - 10 * 60 * 1000));
        assert!(!c.window_open(Some(t), t + WINDOW_MS));
    }

    #[test]
    fn legacy_payloads_are_read_as_free_form_replies() {
        let legacy = OutboundMessage {
            to: Recipient::Phone("919800000001".into()),
            body: OutboundBody::Text {
                body: "echo: hi".into(),
                preview_url: false,
            },
            reply_to: None,
            callback_data: None,
        };
        let s = StoredIntent::from_payload(&serde_json::to_string(&legacy).unwrap()).unwrap();
        assert_eq!(s.purpose, Purpose::Reply);
        assert_eq!(s.free_form, Some(legacy.body));
        let round = StoredIntent {
            purpose: Purpose::Notification {
                kind: "claim_update".into(),
                essential: true,
            },
            free_form: None,
            template: Some(TemplateChoice {
                name: "claim_status_update".into(),
                language: "ta".into(),
                params: vec!["CLM-000001".into(), "Approved".into()],
            }),
        };
        let back = StoredIntent::from_payload(&serde_json::to_string(&round).unwrap()).unwrap();
        assert_eq!(back, round);
        assert!(StoredIntent::from_payload("{}").is_err());
    }
}
