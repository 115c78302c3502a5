//! Consent and compliance (DESIGN.md invariant 3): who agreed to what, and what may therefore
//! be sent.
//!
//! - The **consent log** (`consent_log`) is append-only: every change with its scope, source,
//!   the exact text shown or sent, and when it happened. A contact's consent is *derived* from
//!   it ([`ConsentState::fold`]), so there is no second copy to drift from the audit trail.
//! - Every entry carries a one-way keyed hash of the contact's address ([`AddressHasher`],
//!   HMAC-SHA256 with `privacy.hash_key`). Consent is looked up by contact id *or* by that hash,
//!   so an opt-out survives erasure of the contact ([`erasure`]) and applies to a number that
//!   opted out (e.g. through the API) before it ever wrote to us.
//! - The consent gate the composer calls at queue time and again at send time is
//!   [`crate::messaging::gate`], beside the composer.
//!
//! Sources: `keyword` (STOP/START), `button` (the opt-in prompt), `user_preferences` (Meta's
//! marketing stop/resume), `api`, `agent`, `error_131050` (Meta refused a marketing message).

pub mod erasure;

use std::collections::HashMap;

use hmac::{KeyInit, Mac};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;

use crate::config::Settings;
use crate::store::entities::{consent_log, contact};
use crate::whatsapp::inbound::UserPreference;

type HmacSha256 = hmac::Hmac<Sha256>;

/// A consent change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    OptIn,
    OptOut,
}

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything: an opt-out stops all but essential messages; an opt-in (API only) covers
    /// service, reminders and marketing.
    All,
    /// Policy and claim updates.
    Service,
    /// Premium and renewal reminders.
    Reminders,
    /// Offers and campaigns.
    Marketing,
}

/// How a change reached insurebot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Keyword,
    Button,
    UserPreferences,
    Api,
    Agent,
    Error131050,
}

macro_rules! names {
    ($t:ty { $($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            /// The value stored in `consent_log`.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            /// Parses a stored or requested value.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
        }
    };
}
names!(Change { OptIn = "opt_in", OptOut = "opt_out" });
names!(Scope { All = "all", Service = "service", Reminders = "reminders", Marketing = "marketing" });
names!(Source {
    Keyword = "keyword",
    Button = "button",
    UserPreferences = "user_preferences",
    Api = "api",
    Agent = "agent",
    Error131050 = "error_131050",
});

/// The one-way keyed hash of an address (phone number or BSUID). Keyed, because phone
/// numbers are few enough that a plain hash could be reversed by trying them all.
#[derive(Clone)]
pub struct AddressHasher {
    key: SecretString,
}

impl std::fmt::Debug for AddressHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressHasher(***)")
    }
}

impl AddressHasher {
    pub fn new(key: SecretString) -> Self {
        Self { key }
    }

    /// Hex HMAC-SHA256 of the normalised address: a phone number's digits only (so
    /// `+91 98123 45678` and `919812345678` agree), a BSUID as it is.
    pub fn hash(&self, address: &str) -> String {
        let normalised = normalise_address(address);
        let mut mac = HmacSha256::new_from_slice(self.key.expose_secret().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(normalised.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Hashes of every address a contact has (phone and BSUID): consent recorded under
    /// either applies.
    pub fn contact_hashes(&self, contact: &contact::Model) -> Vec<String> {
        [contact.wa_id.as_deref(), contact.user_id.as_deref()]
            .into_iter()
            .flatten()
            .map(|a| self.hash(a))
            .collect()
    }

    /// The hash stored on a new log entry: the phone number's when known, else the BSUID's
    /// (the address messages go to, see `composer::recipient`).
    pub fn primary_hash(&self, contact: &contact::Model) -> Option<String> {
        contact
            .wa_id
            .as_deref()
            .or(contact.user_id.as_deref())
            .map(|a| self.hash(a))
    }
}

fn normalise_address(address: &str) -> String {
    let trimmed = address.trim();
    let phone_like = trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'));
    if phone_like {
        trimmed.chars().filter(char::is_ascii_digit).collect()
    } else {
        trimmed.to_owned()
    }
}

/// The consent policy the composer and the runner apply: settings plus the hash key.
#[derive(Debug, Clone)]
pub struct ConsentPolicy {
    pub hasher: AddressHasher,
    /// Non-essential notifications need a recorded opt-in (not merely "unknown").
    pub require_opt_in: bool,
    /// Marketing messages per contact per `marketing_cap_ms`.
    pub marketing_cap: u32,
    pub marketing_cap_ms: i64,
    /// Notification kinds in the reminders scope.
    pub reminder_kinds: Vec<String>,
}

impl ConsentPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        let c = &settings.consent;
        Self {
            hasher: AddressHasher::new(settings.hash_key()),
            require_opt_in: c.require_opt_in,
            marketing_cap: c.marketing_cap,
            marketing_cap_ms: i64::from(c.marketing_cap_days) * 24 * 3_600_000,
            reminder_kinds: c.reminder_kinds.clone(),
        }
    }
}

impl Default for ConsentPolicy {
    /// The default settings with the sandbox hash key (tests and benches).
    fn default() -> Self {
        Self::from_settings(&Settings::default())
    }
}

/// A contact's consent, derived from the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConsentState {
    /// `None`: never said; `Some(true)`: opted in; `Some(false)`: opted out.
    pub service: Option<bool>,
    pub reminders: Option<bool>,
    pub marketing: Option<bool>,
    /// The contact stopped marketing in WhatsApp itself (`user_preferences` stop or a 131050)
    /// and has not resumed there: Meta would refuse marketing whatever we recorded.
    pub marketing_stopped_on_whatsapp: bool,
    /// When the last opt-out of everything was recorded (Unix ms).
    pub opted_out_at: Option<i64>,
    /// How many log entries the state was derived from.
    pub entries: usize,
}

/// The summary used by the API and the property test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Unknown,
    OptedIn,
    OptedOut,
}

impl ConsentState {
    /// Applies log entries in the order they were recorded.
    pub fn fold<'a>(entries: impl IntoIterator<Item = &'a consent_log::Model>) -> Self {
        let mut state = ConsentState::default();
        for e in entries {
            let (Some(change), Some(scope)) = (Change::parse(&e.change), Scope::parse(&e.scope))
            else {
                // A value this version does not know: never guess in the permissive direction.
                tracing::warn!(
                    entry = e.id,
                    "consent log entry with an unknown value ignored"
                );
                continue;
            };
            state.apply(change, scope, Source::parse(&e.source), e.created_at);
        }
        state
    }

    /// One change.
    pub fn apply(&mut self, change: Change, scope: Scope, source: Option<Source>, at: i64) {
        self.entries += 1;
        let on = change == Change::OptIn;
        match scope {
            Scope::All => {
                self.service = Some(on);
                self.reminders = Some(on);
                self.marketing = Some(on);
                if !on {
                    self.opted_out_at = Some(at);
                }
            }
            Scope::Service => self.service = Some(on),
            Scope::Reminders => self.reminders = Some(on),
            // WhatsApp's own stop/resume is a separate switch: "resume" lifts Meta's block but
            // is not an opt-in to this insurer's offers.
            Scope::Marketing
                if matches!(source, Some(Source::UserPreferences | Source::Error131050)) =>
            {
                self.marketing_stopped_on_whatsapp = !on;
            }
            Scope::Marketing => self.marketing = Some(on),
        }
    }

    /// `opted_out` when service and reminders are both stopped and marketing is not on;
    /// `opted_in` when any scope is on; `unknown` otherwise (nothing said, or only a partial
    /// opt-out, which the per-scope fields show).
    pub fn status(&self) -> Status {
        if self.opted_out() {
            Status::OptedOut
        } else if [self.service, self.reminders, self.marketing].contains(&Some(true)) {
            Status::OptedIn
        } else {
            Status::Unknown
        }
    }

    /// Whether everything non-essential is stopped (STOP, or an opt-out of every scope).
    pub fn opted_out(&self) -> bool {
        self.service == Some(false) && self.reminders == Some(false) && self.marketing != Some(true)
    }

    /// Marketing needs an explicit opt-in and no stop in WhatsApp.
    pub fn allows_marketing(&self) -> bool {
        self.marketing == Some(true) && !self.marketing_stopped_on_whatsapp
    }
}

/// A log entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub contact_id: Option<i64>,
    pub address_hash: Option<String>,
    pub change: Change,
    pub scope: Scope,
    pub source: Source,
    /// The exact text shown to or sent by the contact (or the proof's text).
    pub shown_text: Option<String>,
    /// When it happened according to the source (Unix ms).
    pub occurred_at: Option<i64>,
    pub detail: Option<String>,
}

/// Appends one entry (inside the caller's transaction); returns its id.
///
/// # Errors
/// Database errors.
pub async fn record<C: ConnectionTrait>(db: &C, entry: NewEntry, now: i64) -> Result<i64, DbErr> {
    let row = consent_log::ActiveModel {
        id: NotSet,
        contact_id: Set(entry.contact_id),
        address_hash: Set(entry.address_hash),
        change: Set(entry.change.as_str().to_owned()),
        scope: Set(entry.scope.as_str().to_owned()),
        source: Set(entry.source.as_str().to_owned()),
        shown_text: Set(entry.shown_text),
        created_at: Set(now),
        occurred_at: Set(entry.occurred_at),
        detail: Set(entry.detail),
    };
    let id = consent_log::Entity::insert(row)
        .exec(db)
        .await?
        .last_insert_id;
    tracing::info!(
        consent_entry = id,
        contact_id = ?entry.contact_id,
        change = entry.change.as_str(),
        scope = entry.scope.as_str(),
        source = entry.source.as_str(),
        "consent recorded"
    );
    Ok(id)
}

/// The log entries that apply to `contact`: its own, and any recorded under one of its
/// addresses' hashes (before it existed, or for an erased contact with the same number).
///
/// # Errors
/// Database errors.
pub async fn entries_for_contact<C: ConnectionTrait>(
    db: &C,
    hasher: &AddressHasher,
    contact: &contact::Model,
) -> Result<Vec<consent_log::Model>, DbErr> {
    let mut entries = entries_for_contacts(db, hasher, std::slice::from_ref(contact)).await?;
    Ok(entries.remove(&contact.id).unwrap_or_default())
}

/// [`entries_for_contact`] for several contacts with one query: each contact's entries, oldest
/// first.
///
/// # Errors
/// Database errors.
pub async fn entries_for_contacts<C: ConnectionTrait>(
    db: &C,
    hasher: &AddressHasher,
    contacts: &[contact::Model],
) -> Result<HashMap<i64, Vec<consent_log::Model>>, DbErr> {
    let hashes: Vec<(i64, Vec<String>)> = contacts
        .iter()
        .map(|c| (c.id, hasher.contact_hashes(c)))
        .collect();
    let mut any =
        Condition::any().add(consent_log::Column::ContactId.is_in(contacts.iter().map(|c| c.id)));
    let all_hashes: Vec<&String> = hashes.iter().flat_map(|(_, h)| h).collect();
    if !all_hashes.is_empty() {
        any = any.add(consent_log::Column::AddressHash.is_in(all_hashes));
    }
    let entries = consent_log::Entity::find()
        .filter(any)
        .order_by_asc(consent_log::Column::Id)
        .all(db)
        .await?;
    let mut by_contact: HashMap<i64, Vec<consent_log::Model>> = HashMap::new();
    for entry in entries {
        for (id, contact_hashes) in &hashes {
            let applies = entry.contact_id == Some(*id)
                || entry
                    .address_hash
                    .as_ref()
                    .is_some_and(|h| contact_hashes.contains(h));
            if applies {
                by_contact.entry(*id).or_default().push(entry.clone());
            }
        }
    }
    Ok(by_contact)
}

/// The consent of `contact`.
///
/// # Errors
/// Database errors.
pub async fn state_of<C: ConnectionTrait>(
    db: &C,
    hasher: &AddressHasher,
    contact: &contact::Model,
) -> Result<ConsentState, DbErr> {
    Ok(ConsentState::fold(
        &entries_for_contact(db, hasher, contact).await?,
    ))
}

/// The contact with this phone number, if any.
///
/// # Errors
/// Database errors.
pub async fn contact_by_phone<C: ConnectionTrait>(
    db: &C,
    phone: &str,
) -> Result<Option<contact::Model>, DbErr> {
    contact::Entity::find()
        .filter(contact::Column::WaId.eq(phone))
        .one(db)
        .await
}

/// The entries for a phone number: through its contact when there is one, else by its hash
/// alone (recorded before the number wrote to us, or after it was erased).
///
/// # Errors
/// Database errors.
pub async fn entries_for_phone<C: ConnectionTrait>(
    db: &C,
    hasher: &AddressHasher,
    phone: &str,
) -> Result<Vec<consent_log::Model>, DbErr> {
    match contact_by_phone(db, phone).await? {
        Some(c) => entries_for_contact(db, hasher, &c).await,
        None => {
            consent_log::Entity::find()
                .filter(consent_log::Column::AddressHash.eq(hasher.hash(phone)))
                .order_by_asc(consent_log::Column::Id)
                .all(db)
                .await
        }
    }
}

/// Stores Meta's marketing stop/resume notice (`user_preferences`, reference §6) in the
/// webhook's transaction. Redeliveries add nothing. Returns whether an entry was added.
///
/// # Errors
/// Database errors.
pub async fn record_user_preference<C: ConnectionTrait>(
    db: &C,
    hasher: &AddressHasher,
    pref: &UserPreference,
    now: i64,
) -> Result<bool, DbErr> {
    if pref.category != "marketing_messages" {
        tracing::info!(category = %pref.category, "user_preferences category not handled");
        return Ok(false);
    }
    let change = match pref.value.as_str() {
        "stop" => Change::OptOut,
        "resume" => Change::OptIn,
        other => {
            tracing::info!(value = %other, "user_preferences value not handled");
            return Ok(false);
        }
    };
    let Some(address) = pref.wa_id.as_deref().or(pref.user_id.as_deref()) else {
        return Ok(false);
    };
    let hash = hasher.hash(address);
    let occurred_at = pref.occurred_at;
    // Meta redelivers webhooks for days: the same notice must not be logged twice.
    let seen = consent_log::Entity::find()
        .filter(consent_log::Column::AddressHash.eq(hash.clone()))
        .filter(consent_log::Column::Source.eq(Source::UserPreferences.as_str()))
        .filter(consent_log::Column::OccurredAt.eq(occurred_at))
        .filter(consent_log::Column::Change.eq(change.as_str()))
        .one(db)
        .await?;
    if seen.is_some() {
        return Ok(false);
    }
    let mut by = Condition::any();
    if let Some(wa_id) = &pref.wa_id {
        by = by.add(contact::Column::WaId.eq(normalise_address(wa_id)));
    }
    if let Some(user_id) = &pref.user_id {
        by = by.add(contact::Column::UserId.eq(user_id.clone()));
    }
    let contact = contact::Entity::find().filter(by).one(db).await?;
    record(
        db,
        NewEntry {
            contact_id: contact.map(|c| c.id),
            address_hash: Some(hash),
            change,
            scope: Scope::Marketing,
            source: Source::UserPreferences,
            shown_text: pref.detail.clone(),
            occurred_at: Some(occurred_at),
            detail: Some(format!("WhatsApp marketing_messages: {}", pref.value)),
        },
        now,
    )
    .await?;
    Ok(true)
}

/// Records that Meta refused a marketing message with 131050 (the contact stopped marketing
/// in WhatsApp) unless the contact's state already says so.
///
/// # Errors
/// Database errors.
pub async fn record_marketing_refused<C: ConnectionTrait>(
    db: &C,
    hasher: &AddressHasher,
    contact: &contact::Model,
    detail: &str,
    now: i64,
) -> Result<bool, DbErr> {
    if state_of(db, hasher, contact)
        .await?
        .marketing_stopped_on_whatsapp
    {
        return Ok(false);
    }
    record(
        db,
        NewEntry {
            contact_id: Some(contact.id),
            address_hash: hasher.primary_hash(contact),
            change: Change::OptOut,
            scope: Scope::Marketing,
            source: Source::Error131050,
            shown_text: None,
            occurred_at: None,
            detail: Some(detail.chars().take(500).collect()),
        },
        now,
    )
    .await?;
    Ok(true)
}

/// Fills in the address hash of entries recorded before hashes were kept (the only update
/// the log ever gets, done by erasure so the opt-out stays findable).
pub(crate) async fn backfill_hash<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    hash: &str,
) -> Result<u64, DbErr> {
    Ok(consent_log::Entity::update_many()
        .col_expr(
            consent_log::Column::AddressHash,
            Expr::value(hash.to_owned()),
        )
        .filter(consent_log::Column::ContactId.eq(contact_id))
        .filter(consent_log::Column::AddressHash.is_null())
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(change: &str, scope: &str, source: &str, at: i64) -> consent_log::Model {
        consent_log::Model {
            id: at,
            contact_id: Some(1),
            address_hash: None,
            change: change.into(),
            scope: scope.into(),
            source: source.into(),
            shown_text: None,
            created_at: at,
            occurred_at: None,
            detail: None,
        }
    }

    #[test]
    fn the_hash_is_keyed_and_ignores_phone_formatting() {
        let a = AddressHasher::new(SecretString::from("key-one-0123456789"));
        let b = AddressHasher::new(SecretString::from("key-two-0123456789"));
        assert_eq!(a.hash("+91 98123-45678"), a.hash("919812345678"));
        assert_ne!(a.hash("919812345678"), b.hash("919812345678"));
        assert_eq!(a.hash("919812345678").len(), 64);
        assert!(!format!("{a:?}").contains("key-one"));
    }

    #[test]
    fn phones_are_validated_with_a_reason() {}

    #[test]
    fn the_state_follows_the_log_in_order() {
        assert_eq!(ConsentState::fold(&[]).status(), Status::Unknown);
        let log = [
            entry("opt_in", "marketing", "button", 1),
            entry("opt_out", "all", "keyword", 2),
        ];
        let s = ConsentState::fold(&log);
        assert!(s.opted_out() && !s.allows_marketing());
        assert_eq!(s.opted_out_at, Some(2));
        let log = [
            entry("opt_out", "all", "keyword", 1),
            entry("opt_in", "service", "keyword", 2),
            entry("opt_in", "reminders", "keyword", 3),
        ];
        let s = ConsentState::fold(&log);
        assert_eq!(s.status(), Status::OptedIn);
        assert!(!s.opted_out() && !s.allows_marketing());
    }

    #[test]
    fn whatsapp_resume_lifts_its_own_stop_but_is_not_a_marketing_opt_in() {
        let stop = entry("opt_out", "marketing", "user_preferences", 2);
        let resume = entry("opt_in", "marketing", "user_preferences", 3);
        let s = ConsentState::fold(&[stop.clone(), resume.clone()]);
        assert!(!s.allows_marketing());
        let opted = entry("opt_in", "marketing", "button", 1);
        assert!(!ConsentState::fold(&[opted.clone(), stop.clone()]).allows_marketing());
        assert!(ConsentState::fold(&[opted, stop, resume]).allows_marketing());
    }

    #[test]
    fn unknown_values_are_ignored_not_guessed() {
        let s = ConsentState::fold(&[entry("opt_in", "everything", "api", 1)]);
        assert_eq!(s.status(), Status::Unknown);
    }
}
