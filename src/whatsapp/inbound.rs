//! Lenient parser for the Cloud API webhook envelope (`POST /webhook` bodies).
//!
//! Owns the mapping from Meta's JSON (`entry[] → changes[] → value`) to typed events: inbound
//! messages, delivery statuses, marketing preferences, template status changes and contact
//! profiles. Reference: `whatsapp-cloud-api.md` §2.
//!
//! The parser is deliberately lenient. Meta adds message types and webhook fields without
//! notice and redelivers for up to 7 days; a 4xx for a payload we merely don't understand only
//! causes retries and lost messages. So the only errors are "not JSON" and "not a webhook
//! envelope at all"; everything else is kept (`MessageContent::Other`, `unhandled_fields`) or,
//! when it cannot be used (no message id, no timestamp), dropped with a reason in `skipped`.
//! Reasons name JSON paths only, never values, because they end up in logs and values carry
//! phone numbers and message text.
//!
//! The parser works on `serde_json::Value` rather than derived structs: a derived struct fails
//! the whole body on one odd field, while walking the tree lets each item fail alone.
//!
//! It is also where content that cannot be stored as sent is dealt with, the same way on
//! SQLite and PostgreSQL (see [`ParseOptions`] and [`Correction`]): a NUL character (U+0000,
//! which PostgreSQL's text cannot hold) in any string of the envelope becomes U+FFFD; an item
//! whose id is longer than `max_id_bytes` (an index cannot hold it) is refused alone; and a
//! timestamp that is not positive, overflows, or lies further ahead of the receive time than
//! the clocks' allowed skew is replaced by the receive time, so that it cannot open or hold
//! the 24-hour window. Each of these is listed in `WebhookEvents::corrections`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a webhook body was rejected; the `Display` text is meant for the 400 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is not valid JSON (the string is serde_json's position-only message).
    #[error("webhook body is not valid JSON: {0}")]
    NotJson(String),
    /// Valid JSON, but without the `object` string and `entry` array of every Meta webhook.
    #[error("webhook body is not a WhatsApp webhook envelope: {0}")]
    NotWhatsAppEnvelope(String),
}

/// Everything one webhook POST carried, flattened across `entry[]` and `changes[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvents {
    /// Inbound messages from users (`field: "messages"`, `value.messages[]`), in body order.
    pub messages: Vec<InboundMessage>,
    /// Delivery status updates for messages we sent (`value.statuses[]`).
    pub statuses: Vec<StatusUpdate>,
    /// Marketing stop/resume events (`field: "user_preferences"`).
    pub user_preferences: Vec<UserPreference>,
    /// Template review/quality state changes (`field: "message_template_status_update"`).
    pub template_status_updates: Vec<TemplateStatusUpdate>,
    /// Sender profiles from `value.contacts[]` (name, phone, BSUID).
    pub contacts: Vec<ContactProfile>,
    /// Value-level `errors[]` (e.g. 131000 "Unsupported webhook payload"), kept for operators.
    pub errors: Vec<ErrorDetail>,
    /// `changes[].field` values that were received but are not processed (e.g. `account_update`).
    pub unhandled_fields: Vec<String>,
    /// Human-readable reasons for items that were dropped, e.g. `entry[0].changes[0].messages[2]: no id`.
    pub skipped: Vec<String>,
    /// Items refused and timestamps replaced because they could not be stored as sent, each
    /// with where it was (see [`Correction`]).
    pub corrections: Vec<Corrected>,
    /// Strings of the envelope (values or keys) whose NUL characters were replaced by U+FFFD.
    pub nul_replaced: usize,
}

/// What the parser holds an envelope to: the limits from `[webhook]` and when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Longest id kept (a wamid, a sender's phone number or BSUID), in bytes: an item with a
    /// longer one is refused. Ids are unique keys, and PostgreSQL's btree index refuses an
    /// entry over ~2.7 KB, which would refuse the whole transaction.
    pub max_id_bytes: usize,
    /// How far ahead of `received_at` a timestamp may be (the clocks' skew), in milliseconds.
    pub max_ahead_ms: i64,
    /// When the webhook arrived, Unix milliseconds.
    pub received_at: i64,
}

/// `webhook.max_id_bytes` unless configured: Meta's wamids are ~60 bytes, BSUIDs ~30.
pub const DEFAULT_MAX_ID_BYTES: usize = 512;
/// `webhook.max_timestamp_ahead_secs` unless configured.
pub const DEFAULT_MAX_TIMESTAMP_AHEAD_SECS: u64 = 300;

impl ParseOptions {
    /// The default limits, for an envelope received at `received_at` (Unix ms).
    pub fn received_at(received_at: i64) -> Self {
        Self {
            max_id_bytes: DEFAULT_MAX_ID_BYTES,
            max_ahead_ms: DEFAULT_MAX_TIMESTAMP_AHEAD_SECS as i64 * 1000,
            received_at,
        }
    }

    /// Meta's timestamp (Unix seconds) in milliseconds, or why it cannot be used.
    ///
    /// # Errors
    /// The [`Correction`] saying why; the caller uses the receive time instead.
    pub fn event_time(&self, seconds: i64) -> Result<i64, Correction> {
        if seconds <= 0 {
            return Err(Correction::TimeNotPositive);
        }
        let ms = seconds
            .checked_mul(1000)
            .filter(|ms| chrono::DateTime::from_timestamp_millis(*ms).is_some())
            .ok_or(Correction::TimeOutOfRange)?;
        if ms > self.received_at.saturating_add(self.max_ahead_ms) {
            return Err(Correction::TimeAhead);
        }
        Ok(ms)
    }
}

/// Why an item was refused, or a value replaced, although the rest of its envelope was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// A message's id is longer than `max_id_bytes`: the message is refused.
    MessageIdTooLong,
    /// A status's message id is longer than `max_id_bytes`: the status is refused.
    StatusIdTooLong,
    /// A sender's phone number or BSUID (in a message or a contact profile) is longer than
    /// `max_id_bytes`: the message or profile is refused.
    SenderIdTooLong,
    /// A zero or negative timestamp: the receive time is used.
    TimeNotPositive,
    /// A timestamp beyond what milliseconds can count: the receive time is used.
    TimeOutOfRange,
    /// A timestamp further ahead of the receive time than the allowed skew: the receive time
    /// is used.
    TimeAhead,
}

impl Correction {
    /// The metric label and log text.
    pub fn as_str(self) -> &'static str {
        match self {
            Correction::MessageIdTooLong => "message_id_too_long",
            Correction::StatusIdTooLong => "status_id_too_long",
            Correction::SenderIdTooLong => "sender_id_too_long",
            Correction::TimeNotPositive => "time_not_positive",
            Correction::TimeOutOfRange => "time_out_of_range",
            Correction::TimeAhead => "time_ahead",
        }
    }

    /// Whether the item was refused (not stored), rather than stored with a value replaced.
    pub fn refuses_item(self) -> bool {
        matches!(
            self,
            Correction::MessageIdTooLong
                | Correction::StatusIdTooLong
                | Correction::SenderIdTooLong
        )
    }
}

/// One [`Correction`] and the JSON path of its item (never a value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corrected {
    pub path: String,
    pub correction: Correction,
}

/// One inbound user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// The `wamid.…` id; the dedupe key for redelivered webhooks.
    pub id: String,
    /// The business number that received it (`value.metadata.phone_number_id`).
    pub phone_number_id: Option<String>,
    /// Sender phone digits; absent for users who adopted a username.
    pub from: Option<String>,
    /// Sender business-scoped user id (BSUID), e.g. `US.13491208655302741918`.
    pub from_user_id: Option<String>,
    /// When it was sent, Unix milliseconds: Meta's `timestamp` (Unix seconds on the wire), or
    /// the receive time when that was unusable (see [`ParseOptions::event_time`]).
    pub sent_at: i64,
    /// What the message says, by type.
    pub content: MessageContent,
    /// `context.id`: the message this one replies to (quote or template button tap).
    pub context_message_id: Option<String>,
    /// The message object exactly as received, for audit and for fields not modelled here.
    pub raw: Value,
}

/// The kind of a media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    /// `voice` is true for a recorded voice note, false for an attached audio file.
    Audio {
        voice: bool,
    },
    Document,
    Sticker,
}

impl MediaKind {
    /// The wire type name (`image`, `audio`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio { .. } => "audio",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        }
    }
}

/// The typed content of an inbound message (§2.3).
///
/// A known type whose payload object is missing or lacks its essential part (a text without
/// `body`, an image without `id`) becomes `Other { kind }` with the wire type name, so callers
/// never see half-filled content; `InboundMessage::raw` still has everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageContent {
    Text {
        body: String,
    },
    Media {
        kind: MediaKind,
        id: String,
        mime_type: Option<String>,
        caption: Option<String>,
        filename: Option<String>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    /// Shared contact cards; only the count is kept (the cards are personal data of third parties).
    Contacts {
        count: usize,
    },
    /// `emoji: None` means the user removed their reaction.
    Reaction {
        message_id: String,
        emoji: Option<String>,
    },
    ButtonReply {
        id: String,
        title: String,
    },
    ListReply {
        id: String,
        title: String,
        description: Option<String>,
    },
    /// A WhatsApp Flows submission (`interactive.nfm_reply`); `response_json` is a JSON string.
    FlowReply {
        name: Option<String>,
        response_json: String,
    },
    /// A tap on a template quick-reply button (wire type `button`).
    TemplateButton {
        payload: String,
        text: String,
    },
    Order {
        catalog_id: Option<String>,
        item_count: usize,
    },
    /// Number or identity changes; `new_wa_id` is the user's new phone number when it changed.
    System {
        kind: String,
        body: Option<String>,
        new_wa_id: Option<String>,
    },
    /// The user opened the chat for the first time.
    RequestWelcome,
    /// Meta could not render the message for us (`unsupported`, legacy `unknown`).
    Unsupported {
        error_code: Option<i64>,
        kind: Option<String>,
    },
    /// A type (or interactive sub-type) this parser does not know, or a malformed known one.
    Other {
        kind: String,
    },
}

impl MessageContent {
    /// The message-level wire `type` (so all interactive replies answer `interactive`).
    ///
    /// `Unsupported` answers `unsupported` for both `unsupported` and the legacy `unknown`,
    /// which Meta documents as the same thing.
    pub fn type_name(&self) -> &str {
        match self {
            MessageContent::Text { .. } => "text",
            MessageContent::Media { kind, .. } => kind.as_str(),
            MessageContent::Location { .. } => "location",
            MessageContent::Contacts { .. } => "contacts",
            MessageContent::Reaction { .. } => "reaction",
            MessageContent::ButtonReply { .. }
            | MessageContent::ListReply { .. }
            | MessageContent::FlowReply { .. } => "interactive",
            MessageContent::TemplateButton { .. } => "button",
            MessageContent::Order { .. } => "order",
            MessageContent::System { .. } => "system",
            MessageContent::RequestWelcome => "request_welcome",
            MessageContent::Unsupported { .. } => "unsupported",
            MessageContent::Other { kind } => kind,
        }
    }
}

/// A delivery status for a message we sent (§2.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// The wamid of our outbound message.
    pub message_id: String,
    pub status: DeliveryStatus,
    /// Unix milliseconds, checked as [`InboundMessage::sent_at`] is.
    pub status_at: i64,
    /// Recipient phone digits; absent when we sent to a BSUID.
    pub recipient_id: Option<String>,
    pub recipient_user_id: Option<String>,
    /// Why a `failed` status failed (empty otherwise).
    pub errors: Vec<ErrorDetail>,
    /// Echo of the `biz_opaque_callback_data` we sent, to correlate with our outbox row.
    pub biz_opaque_callback_data: Option<String>,
}

/// The delivery state of an outbound message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    /// A voice note was played.
    Played,
    Failed,
    /// A status value Meta added after this was written.
    Other(String),
}

impl DeliveryStatus {
    /// The wire value (`sent`, `delivered`, …).
    pub fn as_str(&self) -> &str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Played => "played",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Other(s) => s,
        }
    }

    /// Parses a wire value; unknown values are kept as `Other` (case-insensitive match).
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "played" => DeliveryStatus::Played,
            "failed" => DeliveryStatus::Failed,
            _ => DeliveryStatus::Other(s.to_owned()),
        }
    }

    /// Monotonic order so a stored status never moves backwards: apply an update only when its
    /// rank is higher than the stored one.
    ///
    /// Statuses arrive out of order (a `read` before its `delivered`), so "latest wins" would
    /// regress. `Played` implies `Read`, which implies `Delivered`. `Failed` ranks highest
    /// because it is terminal: Meta sends it instead of, not after, delivery, and a late
    /// `sent` must not hide a failure. `Other` ranks 0 so an unknown status never overwrites a
    /// known one (it is still visible in the raw webhook).
    pub fn rank(&self) -> i32 {
        match self {
            DeliveryStatus::Other(_) => 0,
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered => 2,
            DeliveryStatus::Read => 3,
            DeliveryStatus::Played => 4,
            DeliveryStatus::Failed => 5,
        }
    }
}

impl From<String> for DeliveryStatus {
    fn from(s: String) -> Self {
        DeliveryStatus::parse(&s)
    }
}

impl From<DeliveryStatus> for String {
    fn from(s: DeliveryStatus) -> Self {
        s.as_str().to_owned()
    }
}

/// One Graph error object as it appears in webhooks (`errors[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: i64,
    pub title: Option<String>,
    pub message: Option<String>,
    /// `error_data.details`: Meta says to branch on `code` + this, not on titles.
    pub details: Option<String>,
}

/// A marketing-messages stop/resume event (§6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPreference {
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
    /// e.g. `marketing_messages`.
    pub category: String,
    /// `stop` or `resume`.
    pub value: String,
    /// Unix milliseconds, checked as [`InboundMessage::sent_at`] is.
    pub occurred_at: i64,
    /// Meta's sentence, e.g. "User requested to stop marketing messages" (kept as the proof).
    pub detail: Option<String>,
}

/// A template review or state change (§4.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateStatusUpdate {
    /// `APPROVED`, `REJECTED`, `PAUSED`, …
    pub event: String,
    /// The template id (a number on the wire, kept as a string).
    pub template_id: Option<String>,
    pub name: String,
    pub language: Option<String>,
    pub reason: Option<String>,
    pub category: Option<String>,
    /// The WhatsApp Business Account the template belongs to (the webhook entry's id).
    pub waba_id: Option<String>,
}

/// A user profile from `value.contacts[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactProfile {
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
    /// The WhatsApp profile name (user-chosen, not verified).
    pub name: Option<String>,
}

/// Parses a webhook body received now, with the default limits.
///
/// # Errors
/// As [`parse_webhook_with`].
pub fn parse_webhook(body: &[u8]) -> Result<WebhookEvents, EnvelopeError> {
    let now = chrono::Utc::now().timestamp_millis();
    parse_webhook_with(body, &ParseOptions::received_at(now))
}

/// Parses a webhook body.
///
/// # Errors
/// Only when the body is not JSON, or is JSON without an `object` string and an `entry` array.
/// Anything inside the envelope that cannot be used is reported in `WebhookEvents::skipped`,
/// and what could not be kept as sent in `WebhookEvents::corrections`.
pub fn parse_webhook_with(
    body: &[u8],
    options: &ParseOptions,
) -> Result<WebhookEvents, EnvelopeError> {
    let mut root: Value =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    // Once, over the whole tree, so that no string escapes it, `raw` included.
    let nul_replaced = replace_nul(&mut root);
    let Some(root) = root.as_object() else {
        return Err(EnvelopeError::NotWhatsAppEnvelope(
            "top level is not a JSON object".into(),
        ));
    };
    if !root.get("object").is_some_and(Value::is_string) {
        return Err(EnvelopeError::NotWhatsAppEnvelope(
            "missing \"object\" string".into(),
        ));
    }
    let Some(entries) = root.get("entry").and_then(Value::as_array) else {
        return Err(EnvelopeError::NotWhatsAppEnvelope(
            "missing \"entry\" array".into(),
        ));
    };

    let mut events = WebhookEvents {
        nul_replaced,
        ..WebhookEvents::default()
    };
    for (ei, entry) in entries.iter().enumerate() {
        let path = format!("entry[{ei}]");
        let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
            events.skipped.push(format!("{path}: no changes array"));
            continue;
        };
        let templates_before = events.template_status_updates.len();
        for (ci, change) in changes.iter().enumerate() {
            parse_change(
                change,
                &format!("{path}.changes[{ci}]"),
                options,
                &mut events,
            );
        }
        // A template status update's entry is its WhatsApp Business Account.
        let waba = entry
            .get("id")
            .and_then(string_like)
            .filter(|s| !s.is_empty());
        for t in &mut events.template_status_updates[templates_before..] {
            t.waba_id.clone_from(&waba);
        }
    }
    Ok(events)
}

/// Replaces every NUL character in the strings and keys of `v` by U+FFFD (the replacement
/// character, so that the change shows and two ids never merge as they could if it were
/// dropped); returns how many strings changed.
fn replace_nul(v: &mut Value) -> usize {
    fn in_string(s: &mut String) -> usize {
        if s.contains('\0') {
            *s = s.replace('\0', "\u{FFFD}");
            1
        } else {
            0
        }
    }
    match v {
        Value::String(s) => in_string(s),
        Value::Array(items) => items.iter_mut().map(replace_nul).sum(),
        Value::Object(map) => {
            let mut changed = 0;
            if map.keys().any(|k| k.contains('\0')) {
                for (mut key, value) in std::mem::take(map) {
                    changed += in_string(&mut key);
                    map.insert(key, value);
                }
            }
            changed + map.values_mut().map(replace_nul).sum::<usize>()
        }
        _ => 0,
    }
}

/// Why an item of the envelope was not kept.
enum Dropped {
    /// It cannot be used (no id, no timestamp): listed in `skipped` with this reason.
    Unusable(&'static str),
    /// It could be used but not stored: listed in `corrections`.
    Refused(Correction),
}

impl From<&'static str> for Dropped {
    fn from(reason: &'static str) -> Self {
        Dropped::Unusable(reason)
    }
}

impl WebhookEvents {
    /// Notes why the item at `path` was not kept.
    fn drop_item(&mut self, path: String, why: Dropped) {
        match why {
            Dropped::Unusable(reason) => self.skipped.push(format!("{path}: {reason}")),
            Dropped::Refused(correction) => self.corrections.push(Corrected { path, correction }),
        }
    }

    /// The item's time in Unix ms: Meta's `timestamp`, or the receive time when that cannot be
    /// used (noted in `corrections`).
    fn event_time(
        &mut self,
        item: &Value,
        path: &str,
        options: &ParseOptions,
    ) -> Result<i64, Dropped> {
        let seconds = item
            .get("timestamp")
            .and_then(unix_seconds)
            .ok_or("no usable timestamp")?;
        Ok(options.event_time(seconds).unwrap_or_else(|correction| {
            self.corrections.push(Corrected {
                path: format!("{path}.timestamp"),
                correction,
            });
            options.received_at
        }))
    }
}

/// `Err` when `id` is longer than the limit.
fn check_id(id: Option<&str>, options: &ParseOptions, too_long: Correction) -> Result<(), Dropped> {
    match id {
        Some(id) if id.len() > options.max_id_bytes => Err(Dropped::Refused(too_long)),
        _ => Ok(()),
    }
}

fn parse_change(change: &Value, path: &str, options: &ParseOptions, events: &mut WebhookEvents) {
    let Some(field) = change.get("field").and_then(Value::as_str) else {
        events.skipped.push(format!("{path}: no field"));
        return;
    };
    let Some(value) = change.get("value").and_then(Value::as_object) else {
        events.skipped.push(format!("{path}: no value object"));
        return;
    };

    // Contacts and value-level errors can ride along with any field; collect them everywhere.
    for (i, contact) in array(value, "contacts").enumerate() {
        let profile = ContactProfile {
            wa_id: string(contact, "wa_id"),
            user_id: string(contact, "user_id"),
            name: contact
                .get("profile")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        let ids = check_id(
            profile.wa_id.as_deref(),
            options,
            Correction::SenderIdTooLong,
        )
        .and(check_id(
            profile.user_id.as_deref(),
            options,
            Correction::SenderIdTooLong,
        ));
        match ids {
            Ok(()) => events.contacts.push(profile),
            Err(why) => events.drop_item(format!("{path}.value.contacts[{i}]"), why),
        }
    }
    events.errors.extend(error_details(
        value.get("errors"),
        &format!("{path}.value.errors"),
        &mut events.skipped,
    ));

    match field {
        "messages" => {
            let phone_number_id = value
                .get("metadata")
                .and_then(|m| m.get("phone_number_id"))
                .and_then(string_like);
            for (i, msg) in array(value, "messages").enumerate() {
                let path = format!("{path}.value.messages[{i}]");
                match parse_message(msg, phone_number_id.as_deref(), &path, options, events) {
                    Ok(m) => events.messages.push(m),
                    Err(why) => events.drop_item(path, why),
                }
            }
            for (i, st) in array(value, "statuses").enumerate() {
                let path = format!("{path}.value.statuses[{i}]");
                match parse_status(st, &path, options, events) {
                    Ok(s) => events.statuses.push(s),
                    Err(why) => events.drop_item(path, why),
                }
            }
        }
        "user_preferences" => {
            for (i, pref) in array(value, "user_preferences").enumerate() {
                let path = format!("{path}.value.user_preferences[{i}]");
                match parse_preference(pref, &path, options, events) {
                    Ok(p) => events.user_preferences.push(p),
                    Err(why) => events.drop_item(path, why),
                }
            }
        }
        "message_template_status_update" => match parse_template_status(value) {
            Ok(t) => events.template_status_updates.push(t),
            Err(reason) => events.skipped.push(format!("{path}.value: {reason}")),
        },
        other => events.unhandled_fields.push(other.to_owned()),
    }
}

fn parse_message(
    msg: &Value,
    phone_number_id: Option<&str>,
    path: &str,
    options: &ParseOptions,
    events: &mut WebhookEvents,
) -> Result<InboundMessage, Dropped> {
    if !msg.is_object() {
        return Err("not an object".into());
    }
    let id = non_empty(msg, "id").ok_or("no id")?;
    check_id(Some(&id), options, Correction::MessageIdTooLong)?;
    let (from, from_user_id) = (non_empty(msg, "from"), non_empty(msg, "from_user_id"));
    check_id(from.as_deref(), options, Correction::SenderIdTooLong)?;
    check_id(
        from_user_id.as_deref(),
        options,
        Correction::SenderIdTooLong,
    )?;
    let sent_at = events.event_time(msg, path, options)?;
    let kind = msg.get("type").and_then(Value::as_str).unwrap_or("");
    let content = parse_content(kind, msg, path, &mut events.skipped);
    Ok(InboundMessage {
        id,
        phone_number_id: phone_number_id.map(str::to_owned),
        from,
        from_user_id,
        sent_at,
        content,
        context_message_id: msg
            .get("context")
            .and_then(|c| c.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        raw: msg.clone(),
    })
}

fn parse_content(kind: &str, msg: &Value, path: &str, skipped: &mut Vec<String>) -> MessageContent {
    let other = || MessageContent::Other {
        kind: kind.to_owned(),
    };
    let obj = msg.get(kind);
    match kind {
        "text" => match obj.and_then(|t| t.get("body")).and_then(Value::as_str) {
            Some(body) => MessageContent::Text {
                body: body.to_owned(),
            },
            None => other(),
        },
        "image" | "video" | "audio" | "document" | "sticker" => {
            let Some(media) = obj else { return other() };
            let Some(id) = non_empty(media, "id") else {
                return other();
            };
            let kind = match kind {
                "image" => MediaKind::Image,
                "video" => MediaKind::Video,
                "audio" => MediaKind::Audio {
                    voice: media.get("voice").and_then(Value::as_bool).unwrap_or(false),
                },
                "document" => MediaKind::Document,
                _ => MediaKind::Sticker,
            };
            MessageContent::Media {
                kind,
                id,
                mime_type: string(media, "mime_type"),
                caption: string(media, "caption"),
                filename: string(media, "filename"),
            }
        }
        "location" => {
            let Some(loc) = obj else { return other() };
            let coord = |k: &str| loc.get(k).and_then(number_like).filter(|f| f.is_finite());
            match (coord("latitude"), coord("longitude")) {
                (Some(latitude), Some(longitude)) => MessageContent::Location {
                    latitude,
                    longitude,
                    name: string(loc, "name"),
                    address: string(loc, "address"),
                },
                _ => other(),
            }
        }
        "contacts" => MessageContent::Contacts {
            count: obj.and_then(Value::as_array).map_or(0, Vec::len),
        },
        "reaction" => {
            let Some(r) = obj else { return other() };
            match non_empty(r, "message_id") {
                Some(message_id) => MessageContent::Reaction {
                    message_id,
                    emoji: non_empty(r, "emoji"),
                },
                None => other(),
            }
        }
        "interactive" => parse_interactive(obj).unwrap_or_else(other),
        "button" => {
            let Some(b) = obj else { return other() };
            match string(b, "payload") {
                Some(payload) => MessageContent::TemplateButton {
                    payload,
                    text: string(b, "text").unwrap_or_default(),
                },
                None => other(),
            }
        }
        "order" => {
            let Some(o) = obj else { return other() };
            MessageContent::Order {
                catalog_id: o.get("catalog_id").and_then(string_like),
                item_count: o
                    .get("product_items")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len),
            }
        }
        "system" => {
            let Some(s) = obj else { return other() };
            MessageContent::System {
                kind: string(s, "type").unwrap_or_default(),
                body: string(s, "body"),
                // Cloud API says `wa_id`; the On-Premises API said `new_wa_id`.
                new_wa_id: non_empty(s, "wa_id").or_else(|| non_empty(s, "new_wa_id")),
            }
        }
        "request_welcome" => MessageContent::RequestWelcome,
        "unsupported" | "unknown" => {
            let errors = error_details(msg.get("errors"), &format!("{path}.errors"), skipped);
            MessageContent::Unsupported {
                error_code: errors.first().map(|e| e.code),
                kind: msg
                    .get("unsupported")
                    .and_then(|u| u.get("type"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }
        }
        _ => other(),
    }
}

fn parse_interactive(obj: Option<&Value>) -> Option<MessageContent> {
    let obj = obj?;
    let sub = obj.get("type").and_then(Value::as_str)?;
    let inner = obj.get(sub)?;
    match sub {
        "button_reply" => Some(MessageContent::ButtonReply {
            id: string(inner, "id")?,
            title: string(inner, "title").unwrap_or_default(),
        }),
        "list_reply" => Some(MessageContent::ListReply {
            id: string(inner, "id")?,
            title: string(inner, "title").unwrap_or_default(),
            description: string(inner, "description"),
        }),
        "nfm_reply" => {
            // Meta sends a JSON string; tolerate an already-decoded object rather than lose it.
            let response_json = match inner.get("response_json")? {
                Value::String(s) => s.clone(),
                v @ Value::Object(_) => v.to_string(),
                _ => return None,
            };
            Some(MessageContent::FlowReply {
                name: string(inner, "name"),
                response_json,
            })
        }
        _ => None,
    }
}

fn parse_status(
    st: &Value,
    path: &str,
    options: &ParseOptions,
    events: &mut WebhookEvents,
) -> Result<StatusUpdate, Dropped> {
    if !st.is_object() {
        return Err("not an object".into());
    }
    let message_id = non_empty(st, "id").ok_or("no id")?;
    check_id(Some(&message_id), options, Correction::StatusIdTooLong)?;
    let status = non_empty(st, "status").ok_or("no status")?;
    let status_at = events.event_time(st, path, options)?;
    Ok(StatusUpdate {
        message_id,
        status: DeliveryStatus::parse(&status),
        status_at,
        recipient_id: non_empty(st, "recipient_id"),
        recipient_user_id: non_empty(st, "recipient_user_id"),
        errors: error_details(
            st.get("errors"),
            &format!("{path}.errors"),
            &mut events.skipped,
        ),
        biz_opaque_callback_data: string(st, "biz_opaque_callback_data"),
    })
}

fn parse_preference(
    p: &Value,
    path: &str,
    options: &ParseOptions,
    events: &mut WebhookEvents,
) -> Result<UserPreference, Dropped> {
    let category = non_empty(p, "category").ok_or("no category")?;
    let value = non_empty(p, "value").ok_or("no value")?;
    Ok(UserPreference {
        wa_id: non_empty(p, "wa_id"),
        user_id: non_empty(p, "user_id"),
        category,
        value,
        detail: non_empty(p, "detail"),
        occurred_at: events.event_time(p, path, options)?,
    })
}

fn parse_template_status(v: &Map<String, Value>) -> Result<TemplateStatusUpdate, &'static str> {
    let get = |k: &str| v.get(k).and_then(string_like).filter(|s| !s.is_empty());
    Ok(TemplateStatusUpdate {
        event: get("event").ok_or("no event")?,
        template_id: get("message_template_id"),
        name: get("message_template_name").ok_or("no message_template_name")?,
        language: get("message_template_language"),
        reason: get("reason"),
        category: get("message_template_category"),
        waba_id: None,
    })
}

/// Parses a Graph `errors[]` array; entries without a numeric `code` are dropped with a reason.
fn error_details(
    errors: Option<&Value>,
    path: &str,
    skipped: &mut Vec<String>,
) -> Vec<ErrorDetail> {
    let Some(errors) = errors.and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(errors.len());
    for (i, e) in errors.iter().enumerate() {
        let Some(code) = e.get("code").and_then(Value::as_i64) else {
            skipped.push(format!("{path}[{i}]: no code"));
            continue;
        };
        out.push(ErrorDetail {
            code,
            title: string(e, "title"),
            message: string(e, "message"),
            details: e
                .get("error_data")
                .and_then(|d| d.get("details"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
    }
    out
}

/// The elements of `obj[key]` if it is an array, else nothing.
fn array<'a>(obj: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a Value> {
    obj.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter())
        .into_iter()
        .flatten()
}

fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn non_empty(v: &Value, key: &str) -> Option<String> {
    string(v, key).filter(|s| !s.is_empty())
}

/// A string, or a number rendered as a string (ids that Meta sends either way).
fn string_like(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A number, or a string holding one (location coordinates come both ways).
fn number_like(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Unix seconds from a string of digits (the usual wire form) or an integral number; one
/// beyond `i64` saturates. Whether it is a usable time is [`ParseOptions::event_time`]'s
/// question: a message with a wrong clock is still the policyholder's message.
fn unix_seconds(v: &Value) -> Option<i64> {
    let saturate = |t: i128| t.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
    match v {
        Value::String(s) => s.trim().parse::<i128>().ok().map(saturate),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(i),
            None => {
                let f = n.as_f64()?;
                // `as` saturates at the bounds of i64.
                (f.is_finite() && f.fract() == 0.0).then_some(f as i64)
            }
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/webhooks/",
                $name,
                ".json"
            ))
        };
    }

    /// When the tests' envelopes arrive: a day after the fixtures were recorded.
    const RECEIVED_AT: i64 = 1_780_086_400_000;

    fn parse(body: &str) -> WebhookEvents {
        parse_webhook_with(body.as_bytes(), &ParseOptions::received_at(RECEIVED_AT))
            .expect("fixture parses")
    }

    /// Parses a single-message fixture and returns that message, checking nothing was dropped.
    fn only_message(body: &str) -> InboundMessage {
        let ev = parse(body);
        assert!(ev.skipped.is_empty(), "skipped: {:?}", ev.skipped);
        assert_eq!(ev.messages.len(), 1);
        ev.messages.into_iter().next().unwrap()
    }

    #[test]
    fn text_message_has_ids_sender_and_body() {
        let ev = parse(fixture!("text"));
        assert!(ev.skipped.is_empty() && ev.unhandled_fields.is_empty());
        let m = &ev.messages[0];
        assert_eq!(m.id, "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhggTEXT");
        assert_eq!(m.phone_number_id.as_deref(), Some("106540352242922"));
        assert_eq!(m.from.as_deref(), Some("919812345678"));
        assert_eq!(m.from_user_id, None);
        assert_eq!(m.sent_at, 1_780_000_000_000);
        assert_eq!(m.context_message_id, None);
        assert_eq!(
            m.content,
            MessageContent::Text {
                body: "What is my premium due date?".into()
            }
        );
        assert_eq!(m.content.type_name(), "text");
        assert_eq!(m.raw["text"]["body"], "What is my premium due date?");
        assert_eq!(
            ev.contacts,
            vec![ContactProfile {
                wa_id: Some("919812345678".into()),
                user_id: Some("IN.1349120865530274191".into()),
                name: Some("Priya Sharma".into()),
            }]
        );
    }

    #[test]
    fn media_messages_keep_kind_id_mime_caption_and_filename() {
        let m = only_message(fixture!("image"));
        assert_eq!(
            m.content,
            MessageContent::Media {
                kind: MediaKind::Image,
                id: "1481932016238405".into(),
                mime_type: Some("image/jpeg".into()),
                caption: Some("Damage to the front bumper".into()),
                filename: None,
            }
        );
        let m = only_message(fixture!("video"));
        assert!(matches!(
            m.content,
            MessageContent::Media { kind: MediaKind::Video, ref id, caption: None, .. } if id == "1296553208012345"
        ));
        let m = only_message(fixture!("audio_voice"));
        assert_eq!(m.content.type_name(), "audio");
        assert!(matches!(
            m.content,
            MessageContent::Media { kind: MediaKind::Audio { voice: true }, ref mime_type, .. }
                if mime_type.as_deref() == Some("audio/ogg; codecs=opus")
        ));
        let m = only_message(fixture!("document"));
        assert_eq!(
            m.content,
            MessageContent::Media {
                kind: MediaKind::Document,
                id: "1055512345678901".into(),
                mime_type: Some("application/pdf".into()),
                caption: Some("Hospital bill".into()),
                filename: Some("hospital_bill_march.pdf".into()),
            }
        );
        let m = only_message(fixture!("sticker"));
        assert_eq!(m.content.type_name(), "sticker");
        assert!(matches!(
            m.content,
            MessageContent::Media {
                kind: MediaKind::Sticker,
                ..
            }
        ));
    }

    #[test]
    fn audio_without_voice_flag_is_not_a_voice_note() {
        let body = fixture!("audio_voice").replace("\"voice\": true", "\"voice\": false");
        let m = only_message(&body);
        assert!(matches!(
            m.content,
            MessageContent::Media {
                kind: MediaKind::Audio { voice: false },
                ..
            }
        ));
    }

    #[test]
    fn location_accepts_numbers_and_strings() {
        let m = only_message(fixture!("location_numbers"));
        assert_eq!(
            m.content,
            MessageContent::Location {
                latitude: 19.076,
                longitude: 72.8777,
                name: Some("Andheri East Garage".into()),
                address: Some("Andheri-Kurla Rd, Mumbai 400059".into()),
            }
        );
        let m = only_message(fixture!("location_strings"));
        assert_eq!(
            m.content,
            MessageContent::Location {
                latitude: 12.9716,
                longitude: 77.5946,
                name: None,
                address: None,
            }
        );
    }

    #[test]
    fn contacts_message_counts_cards() {
        let m = only_message(fixture!("contacts"));
        assert_eq!(m.content, MessageContent::Contacts { count: 2 });
    }

    #[test]
    fn reaction_and_unreact() {
        let m = only_message(fixture!("reaction"));
        assert_eq!(
            m.content,
            MessageContent::Reaction {
                message_id: "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAERgSQk9UUkVQTFkwMDAxAA==".into(),
                emoji: Some("\u{1F44D}".into()),
            }
        );
        let m = only_message(fixture!("unreact"));
        assert!(matches!(
            m.content,
            MessageContent::Reaction { emoji: None, .. }
        ));
        // Absent emoji is an un-react too.
        let body = fixture!("unreact").replace(",\n                  \"emoji\": \"\"", "");
        assert!(!body.contains("emoji"), "fixture edit did not apply");
        let m = only_message(&body);
        assert!(matches!(
            m.content,
            MessageContent::Reaction { emoji: None, .. }
        ));
    }

    #[test]
    fn interactive_replies() {
        let m = only_message(fixture!("button_reply"));
        assert_eq!(
            m.content,
            MessageContent::ButtonReply {
                id: "claim:4711:agent".into(),
                title: "Talk to agent".into()
            }
        );
        assert_eq!(m.content.type_name(), "interactive");
        assert_eq!(
            m.context_message_id.as_deref(),
            Some("wamid.HBgMOTE5ODEyMzQ1Njc4FQIAERgSQk9UQlVUVE9OUzAwMDEA")
        );
        let m = only_message(fixture!("list_reply"));
        assert_eq!(
            m.content,
            MessageContent::ListReply {
                id: "policy:MOTOR-1".into(),
                title: "Honda City 2021".into(),
                description: Some("Valid till 10/2026".into()),
            }
        );
        let m = only_message(fixture!("nfm_reply"));
        let MessageContent::FlowReply {
            name,
            response_json,
        } = &m.content
        else {
            panic!("not a flow reply: {:?}", m.content)
        };
        assert_eq!(name.as_deref(), Some("flow"));
        let v: Value = serde_json::from_str(response_json).unwrap();
        assert_eq!(v["flow_token"], "claim-intake-7f3a");
    }

    #[test]
    fn template_button_tap() {
        let m = only_message(fixture!("template_button"));
        assert_eq!(
            m.content,
            MessageContent::TemplateButton {
                payload: "renew:MOTOR-1".into(),
                text: "Renew now".into()
            }
        );
        assert_eq!(m.content.type_name(), "button");
        assert!(m.context_message_id.is_some());
    }

    #[test]
    fn order_system_and_request_welcome() {
        let m = only_message(fixture!("order"));
        assert_eq!(
            m.content,
            MessageContent::Order {
                catalog_id: Some("539741238723410".into()),
                item_count: 2
            }
        );
        let m = only_message(fixture!("system"));
        assert_eq!(
            m.content,
            MessageContent::System {
                kind: "user_changed_number".into(),
                body: Some("User A changed from 919812345615 to 919812345616".into()),
                new_wa_id: Some("919812345616".into()),
            }
        );
        let m = only_message(fixture!("request_welcome"));
        assert_eq!(m.content, MessageContent::RequestWelcome);
        assert_eq!(m.content.type_name(), "request_welcome");
    }

    #[test]
    fn unsupported_and_legacy_unknown() {
        let m = only_message(fixture!("unsupported"));
        assert_eq!(
            m.content,
            MessageContent::Unsupported {
                error_code: Some(131051),
                kind: Some("poll".into())
            }
        );
        let m = only_message(fixture!("unknown"));
        assert_eq!(
            m.content,
            MessageContent::Unsupported {
                error_code: Some(131051),
                kind: None
            }
        );
        assert_eq!(m.content.type_name(), "unsupported");
    }

    #[test]
    fn brand_new_type_is_kept_as_other() {
        let m = only_message(fixture!("new_type"));
        assert_eq!(
            m.content,
            MessageContent::Other {
                kind: "poll_vote".into()
            }
        );
        assert_eq!(m.content.type_name(), "poll_vote");
        assert_eq!(m.raw["poll_vote"]["selected_options"][0], 1);
    }

    #[test]
    fn username_user_without_phone_is_kept_with_bsuid() {
        let ev = parse(fixture!("username_only"));
        let m = &ev.messages[0];
        assert_eq!(m.from, None);
        assert_eq!(m.from_user_id.as_deref(), Some("IN.8823400917734512093"));
        assert_eq!(ev.contacts[0].wa_id, None);
        assert_eq!(
            ev.contacts[0].user_id.as_deref(),
            Some("IN.8823400917734512093")
        );
    }

    #[test]
    fn statuses_sent_delivered_read_played() {
        for (body, want) in [
            (fixture!("status_sent"), DeliveryStatus::Sent),
            (fixture!("status_delivered"), DeliveryStatus::Delivered),
            (fixture!("status_read"), DeliveryStatus::Read),
            (fixture!("status_played"), DeliveryStatus::Played),
        ] {
            let ev = parse(body);
            assert!(ev.messages.is_empty() && ev.skipped.is_empty());
            assert_eq!(ev.statuses.len(), 1);
            let s = &ev.statuses[0];
            assert_eq!(s.status, want);
            assert!(s.message_id.starts_with("wamid."));
            assert_eq!(s.status_at, 1_780_000_100_000);
            assert_eq!(s.recipient_id.as_deref(), Some("919812345678"));
            assert!(s.errors.is_empty());
        }
        let ev = parse(fixture!("status_sent"));
        assert_eq!(
            ev.statuses[0].biz_opaque_callback_data.as_deref(),
            Some("outbox:01JX7Q3M8ZK4")
        );
    }

    #[test]
    fn failed_status_carries_error_details() {
        let ev = parse(fixture!("status_failed"));
        assert!(ev.contacts.is_empty(), "failed statuses have no contacts");
        let s = &ev.statuses[0];
        assert_eq!(s.status, DeliveryStatus::Failed);
        assert_eq!(
            s.biz_opaque_callback_data.as_deref(),
            Some("outbox:01JX7Q3M8ZK6")
        );
        assert_eq!(s.errors.len(), 1);
        let e = &s.errors[0];
        assert_eq!(e.code, 131047);
        assert_eq!(e.title.as_deref(), Some("Re-engagement message"));
        assert!(e.details.as_deref().unwrap().contains("24 hours"));
    }

    #[test]
    fn batch_across_two_entries_keeps_order() {
        let ev = parse(fixture!("batch"));
        assert!(ev.skipped.is_empty());
        let ids: Vec<_> = ev.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhggBATCH1",
                "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhggBATCH2",
                "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhggBATCH3"
            ]
        );
        assert!(matches!(
            ev.messages[1].content,
            MessageContent::ButtonReply { .. }
        ));
        let st: Vec<_> = ev.statuses.iter().map(|s| s.status.clone()).collect();
        assert_eq!(st, [DeliveryStatus::Delivered, DeliveryStatus::Read]);
        assert_eq!(ev.contacts.len(), 3);
    }

    #[test]
    fn user_preferences_stop_and_resume() {
        let ev = parse(fixture!("user_preferences_stop"));
        assert_eq!(
            ev.user_preferences,
            vec![UserPreference {
                wa_id: Some("919812345626".into()),
                user_id: Some("IN.5512340987612340006".into()),
                category: "marketing_messages".into(),
                value: "stop".into(),
                occurred_at: 1_780_000_500_000,
                detail: Some("User requested to stop marketing messages".into()),
            }]
        );
        assert!(ev.unhandled_fields.is_empty());
        let ev = parse(fixture!("user_preferences_resume"));
        assert_eq!(ev.user_preferences[0].value, "resume");
        assert_eq!(ev.user_preferences[0].occurred_at, 1_780_000_600_000);
    }

    #[test]
    fn template_status_update() {
        let ev = parse(fixture!("template_status_update"));
        assert_eq!(
            ev.template_status_updates,
            vec![TemplateStatusUpdate {
                event: "APPROVED".into(),
                template_id: Some("1189423958839011".into()),
                name: "premium_due_reminder".into(),
                language: Some("en_US".into()),
                reason: Some("NONE".into()),
                category: Some("UTILITY".into()),
                waba_id: Some("102290129340398".into()),
            }]
        );
    }

    #[test]
    fn unrelated_field_is_kept_as_unhandled() {
        let ev = parse(fixture!("account_update"));
        assert_eq!(ev.unhandled_fields, ["account_update"]);
        assert!(ev.messages.is_empty() && ev.statuses.is_empty() && ev.skipped.is_empty());
    }

    #[test]
    fn messages_without_id_or_timestamp_are_skipped_with_reasons() {
        let ev = parse(fixture!("skipped_messages"));
        assert_eq!(ev.messages.len(), 1);
        assert_eq!(
            ev.messages[0].id,
            "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhggSKIPOK"
        );
        assert_eq!(
            ev.skipped,
            [
                "entry[0].changes[0].value.messages[1]: no id",
                "entry[0].changes[0].value.messages[2]: no usable timestamp"
            ]
        );
    }

    #[test]
    fn value_level_errors_are_collected_and_message_kept() {
        let ev = parse(fixture!("value_errors"));
        assert_eq!(ev.errors.len(), 1);
        assert_eq!(ev.errors[0].code, 131000);
        assert_eq!(
            ev.errors[0].details.as_deref(),
            Some("Unsupported webhook payload")
        );
        // `interactive` without its object: kept, as an opaque interactive message.
        assert_eq!(
            ev.messages[0].content,
            MessageContent::Other {
                kind: "interactive".into()
            }
        );
    }

    #[test]
    fn numeric_timestamps_are_accepted_and_garbage_is_not() {
        let body = fixture!("text").replace("\"1780000000\"", "1780000000");
        assert_eq!(only_message(&body).sent_at, 1_780_000_000_000);
        for bad in ["\"\"", "1.5", "null", "\"12abc\""] {
            let body = fixture!("text").replace("\"1780000000\"", bad);
            let ev = parse(&body);
            assert!(ev.messages.is_empty(), "timestamp {bad} was accepted");
            assert_eq!(ev.skipped.len(), 1);
        }
    }

    #[test]
    fn a_timestamp_that_cannot_be_the_sending_time_is_replaced_by_the_receive_time() {
        let options = ParseOptions::received_at(RECEIVED_AT);
        let ahead = (RECEIVED_AT + options.max_ahead_ms) / 1000;
        for (wire, expected) in [
            ("\"0\"", Some(Correction::TimeNotPositive)),
            ("-5", Some(Correction::TimeNotPositive)),
            ("\"10000000000000000\"", Some(Correction::TimeOutOfRange)),
            (
                "\"99999999999999999999999\"",
                Some(Correction::TimeOutOfRange),
            ),
            ("1e20", Some(Correction::TimeOutOfRange)),
            ("-1e20", Some(Correction::TimeNotPositive)),
            ("\"32503680000\"", Some(Correction::TimeAhead)),
            (&format!("{}", ahead + 1), Some(Correction::TimeAhead)),
            // Within the clocks' skew: Meta's time is kept.
            (&format!("{ahead}"), None),
        ] {
            let body = fixture!("text").replace("\"1780000000\"", wire);
            let ev = parse(&body);
            assert_eq!(ev.messages.len(), 1, "timestamp {wire}: {:?}", ev.skipped);
            let corrections: Vec<Correction> =
                ev.corrections.iter().map(|c| c.correction).collect();
            match expected {
                Some(c) => {
                    assert_eq!(ev.messages[0].sent_at, RECEIVED_AT, "timestamp {wire}");
                    assert_eq!(corrections, [c], "timestamp {wire}");
                    assert_eq!(
                        ev.corrections[0].path,
                        "entry[0].changes[0].value.messages[0].timestamp"
                    );
                }
                None => {
                    assert_eq!(ev.messages[0].sent_at, ahead * 1000);
                    assert!(corrections.is_empty(), "timestamp {wire}: {corrections:?}");
                }
            }
        }
    }

    #[test]
    fn nul_characters_become_u_fffd_everywhere_raw_and_keys_included() {
        let body = fixture!("text")
            .replace(
                "\"1780000000\"",
                "\"1780000000\", \"x\\u0000\": \"a\\u0000b\"",
            )
            .replace("my premium", "my\\u0000premium");
        let ev = parse(&body);
        let m = &ev.messages[0];
        assert_eq!(
            m.content,
            MessageContent::Text {
                body: "What is my\u{FFFD}premium due date?".into()
            }
        );
        assert_eq!(m.raw["x\u{FFFD}"], "a\u{FFFD}b");
        assert!(!m.raw.to_string().contains("\\u0000"));
        assert_eq!(ev.nul_replaced, 3);
    }

    #[test]
    fn an_id_longer_than_the_limit_refuses_its_item_alone() {
        let options = ParseOptions {
            max_id_bytes: 64,
            ..ParseOptions::received_at(RECEIVED_AT)
        };
        let long = "w".repeat(65);
        let parse = |body: String| parse_webhook_with(body.as_bytes(), &options).unwrap();
        let ev = parse(fixture!("batch").replacen("wamid.", &format!("wamid.{long}"), 1));
        assert_eq!(ev.corrections.len(), 1, "{:?}", ev.corrections);
        assert_eq!(ev.corrections[0].correction, Correction::MessageIdTooLong);
        assert!(!ev.corrections[0].path.contains(&long));
        assert_eq!(
            ev.messages.len(),
            parse(fixture!("batch").into()).messages.len() - 1
        );

        let ev =
            parse(fixture!("status_delivered").replacen("wamid.", &format!("wamid.{long}"), 1));
        assert_eq!(
            ev.corrections
                .iter()
                .map(|c| c.correction)
                .collect::<Vec<_>>(),
            [Correction::StatusIdTooLong]
        );
        let ev = parse(fixture!("text").replace("\"919812345678\"", &format!("\"9{long}\"")));
        assert!(ev.messages.is_empty());
        assert!(ev.contacts.is_empty());
        assert!(
            ev.corrections
                .iter()
                .all(|c| c.correction == Correction::SenderIdTooLong)
        );
        // Exactly at the limit: kept.
        let id = "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhggTEXT";
        let ev = parse(fixture!("text").replace(id, &"w".repeat(64)));
        assert!(ev.corrections.is_empty() && ev.messages.len() == 1);
        let ev = parse(fixture!("text").replace(id, &long));
        assert!(ev.messages.is_empty());
    }

    #[test]
    fn only_non_json_and_non_envelopes_are_errors() {
        assert!(matches!(
            parse_webhook(b"not json"),
            Err(EnvelopeError::NotJson(_))
        ));
        assert!(matches!(parse_webhook(b""), Err(EnvelopeError::NotJson(_))));
        for body in [
            &b"[]"[..],
            br#"{"entry": []}"#,
            br#"{"object": 1, "entry": []}"#,
            br#"{"object": "whatsapp_business_account"}"#,
            br#"{"object": "whatsapp_business_account", "entry": {}}"#,
        ] {
            let err = parse_webhook(body).unwrap_err();
            assert!(
                matches!(err, EnvelopeError::NotWhatsAppEnvelope(_)),
                "{err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with("webhook body is not a WhatsApp webhook envelope")
            );
        }
        // An empty envelope is valid and simply carries nothing.
        let ev = parse(r#"{"object": "whatsapp_business_account", "entry": []}"#);
        assert_eq!(ev, WebhookEvents::default());
    }

    #[test]
    fn odd_shapes_inside_the_envelope_are_lenient() {
        let ev = parse(
            r#"{"object":"whatsapp_business_account","entry":[
                 {"id":"1"},
                 {"id":"2","changes":[{"value":{}}, {"field":"messages"},
                   {"field":"messages","value":{"messages":"nope","statuses":[{"status":"sent"}, 7],
                     "errors":[{"title":"no code"}]}},
                   {"field":"calls","value":{}}]}]}"#,
        );
        assert!(ev.messages.is_empty() && ev.statuses.is_empty() && ev.errors.is_empty());
        assert_eq!(ev.unhandled_fields, ["calls"]);
        assert_eq!(
            ev.skipped,
            [
                "entry[0]: no changes array",
                "entry[1].changes[0]: no field",
                "entry[1].changes[1]: no value object",
                "entry[1].changes[2].value.errors[0]: no code",
                "entry[1].changes[2].value.statuses[0]: no id",
                "entry[1].changes[2].value.statuses[1]: not an object",
            ]
        );
    }

    #[test]
    fn skipped_reasons_never_contain_values() {
        let ev = parse(fixture!("skipped_messages"));
        for reason in &ev.skipped {
            assert!(!reason.contains("919812345624") && !reason.contains("no id here"));
        }
    }

    #[test]
    fn delivery_status_rank_is_monotonic_and_round_trips() {
        let order = [
            DeliveryStatus::Other("deleted".into()),
            DeliveryStatus::Sent,
            DeliveryStatus::Delivered,
            DeliveryStatus::Read,
            DeliveryStatus::Played,
            DeliveryStatus::Failed,
        ];
        for w in order.windows(2) {
            assert!(w[0].rank() < w[1].rank(), "{:?} !< {:?}", w[0], w[1]);
        }
        for s in &order {
            assert_eq!(&DeliveryStatus::parse(s.as_str()), s);
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(&serde_json::from_str::<DeliveryStatus>(&json).unwrap(), s);
        }
        assert_eq!(DeliveryStatus::parse("READ"), DeliveryStatus::Read);
    }

    #[test]
    fn events_round_trip_through_serde() {
        let ev = parse(fixture!("batch"));
        let back: WebhookEvents =
            serde_json::from_str(&serde_json::to_string(&ev).unwrap()).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn every_fixture_is_an_envelope_with_unique_message_ids() {
        let all = [
            fixture!("text"),
            fixture!("image"),
            fixture!("video"),
            fixture!("audio_voice"),
            fixture!("document"),
            fixture!("sticker"),
            fixture!("location_numbers"),
            fixture!("location_strings"),
            fixture!("contacts"),
            fixture!("reaction"),
            fixture!("unreact"),
            fixture!("button_reply"),
            fixture!("list_reply"),
            fixture!("nfm_reply"),
            fixture!("template_button"),
            fixture!("order"),
            fixture!("system"),
            fixture!("unsupported"),
            fixture!("unknown"),
            fixture!("request_welcome"),
            fixture!("new_type"),
            fixture!("username_only"),
            fixture!("status_sent"),
            fixture!("status_delivered"),
            fixture!("status_read"),
            fixture!("status_played"),
            fixture!("status_failed"),
            fixture!("batch"),
            fixture!("skipped_messages"),
            fixture!("value_errors"),
            fixture!("user_preferences_stop"),
            fixture!("user_preferences_resume"),
            fixture!("template_status_update"),
            fixture!("account_update"),
        ];
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhooks");
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            all.len(),
            "a fixture is not tested"
        );
        let mut ids = std::collections::HashSet::new();
        for body in all {
            let ev = parse(body);
            for id in ev
                .messages
                .iter()
                .map(|m| &m.id)
                .chain(ev.statuses.iter().map(|s| &s.message_id))
            {
                assert!(ids.insert(id.clone()), "duplicate id {id}");
            }
        }
    }
}
