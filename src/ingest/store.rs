//! Durable, idempotent ingest of webhooks: contacts, inbound messages (unique on wamid),
//! delivery statuses (never moving backwards) and each contact's window start, on any number
//! and per business number (never moving back), all in one transaction so a webhook is answered 200 only once everything it carried
//! is committed. Statuses also move the outbox row that sent the wamid, template status
//! updates change the template registry at once, and Meta's marketing stop/resume notices
//! (`user_preferences`) go into the consent log.
//!
//! [`IngestQueue`] is the group commit in front of it: webhooks that arrive while a batch is
//! being written wait for the next one, which stores them all in a single transaction. Under
//! load that replaces one transaction (and one turn of SQLite's write gate) per webhook by one
//! per batch; when a batch fails, its webhooks are stored one by one so that a single bad one
//! cannot refuse the others. A batch holds at most [`PART_ITEMS`] items, and an envelope with
//! more (Meta may send thousands of messages in one) is stored in parts of that size, one
//! transaction each, so that the webhooks arriving meanwhile are stored between two parts
//! instead of waiting for the whole envelope. It is acknowledged once its last part is
//! committed; should a part fail, Meta's redelivery finds the parts before it already stored
//! (every statement here is idempotent) and the pipeline's sweep processes their messages.
//!
//! Every statement stays within both backends' limits whatever the envelope: at most
//! [`SENDERS_PER_STATEMENT`] pairs in the senders' `VALUES` list and [`INSERT_CHUNK`] rows
//! per INSERT, far below SQLite's 32,766 and PostgreSQL's 65,535 bind parameters.

use prometheus_client::metrics::gauge::Gauge;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
};

use crate::consent::{self, AddressHasher};
use crate::messaging::{outbox, templates};
use crate::store::entities::{contact, inbound_message, message_status};
use crate::whatsapp::client::WINDOW_CLOSED_CODES;
use crate::whatsapp::inbound::{
    ContactProfile, DeliveryStatus, InboundMessage, StatusUpdate, WebhookEvents,
};

/// What one webhook changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// Contacts that received at least one message never seen before (to hand to the pipeline).
    pub contacts_with_new_messages: Vec<i64>,
    pub new_messages: usize,
    /// Messages whose wamid was already stored: redeliveries, changed nothing.
    pub duplicate_messages: usize,
    /// Statuses that moved a message forward.
    pub statuses_applied: usize,
    /// Statuses that were repeats or arrived after a later one.
    pub statuses_ignored: usize,
    /// Template registry rows whose status changed.
    pub templates_updated: u64,
    /// Outbox rows queued again for their template fallback after an asynchronous 131047.
    pub fallbacks_queued: usize,
    /// Marketing stop/resume notices added to the consent log (redeliveries excluded).
    pub consent_changes: usize,
}

/// Stores everything `events` carries in one transaction.
///
/// # Errors
/// Any database error; nothing is committed then, and the webhook must not be acknowledged.
pub async fn ingest(
    db: &DatabaseConnection,
    events: &WebhookEvents,
    hasher: &AddressHasher,
    now_ms: i64,
) -> Result<IngestReport, DbErr> {
    let mut reports = ingest_many(db, &[events], hasher, now_ms).await?;
    Ok(reports.pop().unwrap_or_default())
}

/// Stores several webhooks in one transaction; one report per webhook, in order.
///
/// # Errors
/// Any database error; nothing is committed then, and none of the webhooks may be
/// acknowledged.
pub async fn ingest_many(
    db: &DatabaseConnection,
    batch: &[&WebhookEvents],
    hasher: &AddressHasher,
    now_ms: i64,
) -> Result<Vec<IngestReport>, DbErr> {
    let txn = crate::store::begin_write_urgent(db).await?;
    let mut known = KnownContacts::prefetch(&txn, batch, now_ms).await?;
    let mut windows = WindowStarts::default();
    let mut messages = NewMessages::default();
    let mut reports = Vec::with_capacity(batch.len());
    for (at, events) in batch.iter().enumerate() {
        let mut batch = Batch {
            known: &mut known,
            windows: &mut windows,
            messages: &mut messages,
            webhook: at,
        };
        reports.push(store_events(&txn, events, hasher, &mut batch, now_ms).await?);
    }
    messages.insert(&txn, &mut reports).await?;
    windows.write(&txn, &known.window_written, now_ms).await?;
    windows.write_numbers(&txn).await?;
    let time = txn.commit_timed().await?;
    // Where an acknowledgement's time goes: waiting for the database's writer, or writing.
    tracing::debug!(
        webhooks = batch.len(),
        gate_wait_us = time.waited_us(),
        held_us = time.held_us(),
        "webhook batch committed"
    );
    Ok(reports)
}

/// What a batch's webhooks gather for statements that cover the whole batch.
struct Batch<'a> {
    known: &'a mut KnownContacts,
    windows: &'a mut WindowStarts,
    messages: &'a mut NewMessages,
    /// The webhook being stored (its index in the batch).
    webhook: usize,
}

/// The batch's senders by phone number, found with one statement up front instead of one per
/// message (the common case: a contact writing again), and the ones not found created with
/// one more (a new conversation), instead of three statements per new contact.
#[derive(Default)]
struct KnownContacts {
    by_phone: std::collections::HashMap<String, contact::Model>,
    /// The window starts these statements already wrote, by contact id: [`WindowStarts`]
    /// writes only what they did not cover.
    window_written: std::collections::HashMap<i64, i64>,
}

impl KnownContacts {
    /// Finds the batch's senders by phone number and moves their window starts in the same
    /// statement (`UPDATE … RETURNING`: one round trip instead of a SELECT now and an UPDATE
    /// at the end), then creates the ones not found.
    async fn prefetch<C: ConnectionTrait>(
        db: &C,
        batch: &[&WebhookEvents],
        now_ms: i64,
    ) -> Result<Self, DbErr> {
        // One entry per sender: the newest message time of its number in the batch. (Which
        // order the UPDATE locks the rows in is its plan's; should two instances' batches ever
        // deadlock, PostgreSQL fails one, and its webhooks are stored one by one.)
        let mut latest: std::collections::BTreeMap<&str, i64> = Default::default();
        for message in batch.iter().flat_map(|events| &events.messages) {
            if let Some(phone) = message.from.as_deref() {
                let at = message.sent_at;
                latest
                    .entry(phone)
                    .and_modify(|t| *t = std::cmp::max(*t, at))
                    .or_insert(at);
            }
        }
        if latest.is_empty() {
            return Ok(Self::default());
        }
        let found = Self::update_senders(db, &latest, now_ms).await?;
        let mut known = Self::default();
        for contact in found {
            known.saw_window(&contact, &latest);
            known.remember(contact);
        }
        known.create_missing(db, batch, &latest, now_ms).await?;
        Ok(known)
    }

    /// `UPDATE … FROM` the batch's (phone number, newest message time) pairs: each sender's
    /// window start moves to its newest message, never back (a late redelivery of an older
    /// one), and the senders come back. A join, not `wa_id IN (…)` with a CASE per number:
    /// PostgreSQL's generic plan for that scanned the whole table comparing every row with
    /// every number (40 ms a batch at 7,500 contacts, the ingest's slowest statement), where
    /// the join probes the phone-number index or hashes the pairs.
    ///
    /// The pairs are a `VALUES` list, in statements of at most [`SENDERS_PER_STATEMENT`]: a
    /// `SELECT … UNION ALL SELECT …` per pair, as before, stopped SQLite at 500 terms ("too
    /// many terms in compound SELECT") and cost PostgreSQL seconds of planning (EXPLAIN
    /// ANALYZE of 4,000 pairs: planning 43 s, execution 0.4 s; as `VALUES`, 5,000 pairs: 12 ms
    /// and 125 ms).
    async fn update_senders<C: ConnectionTrait>(
        db: &C,
        latest: &std::collections::BTreeMap<&str, i64>,
        now_ms: i64,
    ) -> Result<Vec<contact::Model>, DbErr> {
        use sea_orm::{FromQueryResult, IdenStatic, Iterable, Statement};
        let backend = db.get_database_backend();
        let placeholder = |n| crate::store::placeholder(backend, n);
        let returning: Vec<String> = contact::Column::iter()
            .map(|c| format!("contacts.{}", c.as_str()))
            .collect();
        let latest: Vec<(&str, i64)> = latest.iter().map(|(p, at)| (*p, *at)).collect();
        let mut found = Vec::with_capacity(latest.len());
        for chunk in latest.chunks(SENDERS_PER_STATEMENT) {
            // `column1`, `column2`: the names both backends give a VALUES list's columns
            // (SQLite cannot rename them in the alias).
            let pairs: Vec<String> = (0..chunk.len())
                .map(|i| format!("({}, {})", placeholder(2 * i + 2), placeholder(2 * i + 3)))
                .collect();
            let sql = format!(
                "UPDATE contacts SET \
                   last_inbound_at = CASE WHEN contacts.last_inbound_at IS NULL \
                     OR contacts.last_inbound_at < latest.column2 THEN latest.column2 \
                     ELSE contacts.last_inbound_at END, \
                   updated_at = {now} \
                 FROM (VALUES {pairs}) AS latest \
                 WHERE contacts.wa_id = latest.column1 \
                 RETURNING {returning}",
                now = placeholder(1),
                pairs = pairs.join(", "),
                returning = returning.join(", "),
            );
            let values = std::iter::once(now_ms.into()).chain(
                chunk
                    .iter()
                    .flat_map(|(phone, at)| [(*phone).into(), (*at).into()]),
            );
            for row in db
                .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?
            {
                found.push(contact::Model::from_query_result(&row, "")?);
            }
        }
        Ok(found)
    }

    /// Keeps `contact` for the batch's later messages from the same number.
    fn remember(&mut self, contact: contact::Model) {
        if let Some(phone) = contact.wa_id.clone() {
            self.by_phone.insert(phone, contact);
        }
    }

    /// Notes that `contact`'s window start was written for the batch's newest message from its
    /// phone number.
    fn saw_window(
        &mut self,
        contact: &contact::Model,
        latest: &std::collections::BTreeMap<&str, i64>,
    ) {
        if let Some(at) = contact.wa_id.as_deref().and_then(|p| latest.get(p)) {
            self.window_written.insert(contact.id, *at);
        }
    }

    /// Inserts a contact for each phone number of the batch not known yet, as its first
    /// message there names it. ON CONFLICT DO NOTHING (on any unique key) leaves alone a number
    /// whose contact another transaction creates meanwhile, or whose BSUID already has a row:
    /// those are not returned, and [`upsert_contact`] finds and completes them per message.
    async fn create_missing<C: ConnectionTrait>(
        &mut self,
        db: &C,
        batch: &[&WebhookEvents],
        latest: &std::collections::BTreeMap<&str, i64>,
        now_ms: i64,
    ) -> Result<(), DbErr> {
        let mut new: Vec<(&str, contact::ActiveModel)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for events in batch {
            for message in &events.messages {
                let identity = Identity::of(message, &events.contacts);
                let Some(phone) = identity.wa_id else {
                    continue;
                };
                if self.by_phone.contains_key(phone) || !seen.insert(phone) {
                    continue;
                }
                new.push((phone, identity.new_row(latest.get(phone).copied(), now_ms)));
            }
        }
        // In one order everywhere: two transactions creating the same contacts (two
        // instances) wait for each other instead of deadlocking.
        new.sort_unstable_by_key(|(phone, _)| *phone);
        for chunk in new.chunks(INSERT_CHUNK) {
            let rows = chunk.iter().map(|(_, row)| row.clone());
            let inserted = contact::Entity::insert_many(rows)
                .on_conflict(OnConflict::new().do_nothing().to_owned())
                .try_insert()
                .exec_with_returning_many(db)
                .await?;
            if let sea_orm::TryInsertResult::Inserted(rows) = inserted {
                for contact in rows {
                    self.saw_window(&contact, latest);
                    self.remember(contact);
                }
            }
        }
        Ok(())
    }
}

/// Who sent a message, as the message and its webhook's contact profiles say.
struct Identity<'a> {
    wa_id: Option<&'a str>,
    user_id: Option<&'a str>,
    name: Option<String>,
}

impl<'a> Identity<'a> {
    fn of(message: &'a InboundMessage, profiles: &'a [ContactProfile]) -> Self {
        let wa_id = message.from.as_deref();
        let user_id = message.from_user_id.as_deref();
        let profile = profiles.iter().find(|p| {
            (wa_id.is_some() && p.wa_id.as_deref() == wa_id)
                || (user_id.is_some() && p.user_id.as_deref() == user_id)
        });
        Self {
            wa_id,
            user_id: user_id.or_else(|| profile.and_then(|p| p.user_id.as_deref())),
            name: profile.and_then(|p| p.name.clone()),
        }
    }

    /// The contact row a first message from this sender creates, with its window start if
    /// known.
    fn new_row(&self, last_inbound_at: Option<i64>, now_ms: i64) -> contact::ActiveModel {
        contact::ActiveModel {
            id: NotSet,
            wa_id: Set(self.wa_id.map(str::to_owned)),
            user_id: Set(self.user_id.map(str::to_owned)),
            profile_name: Set(self.name.clone()),
            last_inbound_at: Set(last_inbound_at),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(now_ms),
            updated_at: Set(now_ms),
        }
    }
}

/// The batch's new inbound messages, inserted together at the end: one multi-row INSERT that
/// skips known wamids and returns the ones it stored.
#[derive(Default)]
struct NewMessages {
    /// (webhook index, contact, row), in arrival order.
    rows: Vec<(usize, i64, inbound_message::ActiveModel)>,
}

/// Messages per INSERT at most (12 parameters each: well under SQLite's and PostgreSQL's
/// parameter limits).
const INSERT_CHUNK: usize = 256;

/// Senders per statement that moves window starts at most (2 parameters each).
const SENDERS_PER_STATEMENT: usize = 1000;

impl NewMessages {
    /// Inserts the rows and counts them in their webhooks' reports as new or duplicate.
    async fn insert<C: ConnectionTrait>(
        &mut self,
        db: &C,
        reports: &mut [IngestReport],
    ) -> Result<(), DbErr> {
        let mut stored = std::collections::HashSet::new();
        for chunk in self.rows.chunks(INSERT_CHUNK) {
            // The unique key on wamid is the deduplication: atomic, unlike a check-then-insert.
            let mut insert = sea_orm::sea_query::Query::insert();
            insert
                .into_table(inbound_message::Entity)
                .columns(INSERTED_COLUMNS)
                .on_conflict(
                    OnConflict::column(inbound_message::Column::Wamid)
                        .do_nothing()
                        .to_owned(),
                )
                .returning_col(inbound_message::Column::Wamid);
            for (_, _, row) in chunk {
                insert.values_panic(INSERTED_COLUMNS.iter().map(|c| {
                    row.get(*c)
                        .into_value()
                        .expect("every inserted column is set")
                        .into()
                }));
            }
            let statement = db.get_database_backend().build(&insert);
            for returned in db.query_all_raw(statement).await? {
                stored.insert(returned.try_get::<String>("", "wamid")?);
            }
        }
        for (webhook, contact_id, row) in self.rows.drain(..) {
            let report = &mut reports[webhook];
            // The first of two copies in one batch is the one stored.
            let wamid = row.wamid.as_ref();
            if stored.remove(wamid) {
                report.new_messages += 1;
                if !report.contacts_with_new_messages.contains(&contact_id) {
                    report.contacts_with_new_messages.push(contact_id);
                }
            } else {
                report.duplicate_messages += 1;
            }
        }
        Ok(())
    }
}

/// The columns a new inbound message is inserted with (all but the generated id).
const INSERTED_COLUMNS: [inbound_message::Column; 11] = [
    inbound_message::Column::Wamid,
    inbound_message::Column::ContactId,
    inbound_message::Column::PhoneNumberId,
    inbound_message::Column::MsgType,
    inbound_message::Column::Content,
    inbound_message::Column::Raw,
    inbound_message::Column::SentAt,
    inbound_message::Column::ReceivedAt,
    inbound_message::Column::ProcessedAt,
    inbound_message::Column::Attempts,
    inbound_message::Column::LastError,
];

/// The latest message time seen per contact in a batch, and per contact and business number
/// (the window Meta keeps): each is written once per batch, not once per message.
#[derive(Default)]
struct WindowStarts {
    by_contact: std::collections::BTreeMap<i64, i64>,
    by_number: std::collections::BTreeMap<(i64, String), i64>,
}

impl WindowStarts {
    fn saw(&mut self, contact_id: i64, number: Option<&str>, sent_at_ms: i64) {
        let later = |latest: &mut i64| *latest = std::cmp::max(*latest, sent_at_ms);
        self.by_contact
            .entry(contact_id)
            .and_modify(later)
            .or_insert(sent_at_ms);
        // A message naming no number (never from Meta; the webhook gives such a message the
        // deployment's first) opens no number's window.
        if let Some(number) = number {
            self.by_number
                .entry((contact_id, number.to_owned()))
                .and_modify(later)
                .or_insert(sent_at_ms);
        }
    }

    /// One upsert per [`INSERT_CHUNK`] (contact, number) pairs: each window starts at the
    /// newest message to its number, never moving back (a late redelivery of an older one).
    async fn write_numbers<C: ConnectionTrait>(&mut self, db: &C) -> Result<(), DbErr> {
        use crate::store::entities::contact_window::{Column, Entity};
        let due: Vec<((i64, String), i64)> =
            std::mem::take(&mut self.by_number).into_iter().collect();
        for chunk in due.chunks(INSERT_CHUNK) {
            let mut insert = sea_orm::sea_query::Query::insert();
            insert
                .into_table(Entity)
                .columns([Column::ContactId, Column::PhoneNumberId, Column::LastInboundAt])
                .on_conflict(
                    OnConflict::columns([Column::ContactId, Column::PhoneNumberId])
                        .value(
                            Column::LastInboundAt,
                            Expr::cust(
                                "CASE WHEN excluded.last_inbound_at > contact_windows.last_inbound_at \
                                 THEN excluded.last_inbound_at ELSE contact_windows.last_inbound_at END",
                            ),
                        )
                        .to_owned(),
                );
            for ((contact_id, number), at) in chunk {
                insert.values_panic([(*contact_id).into(), number.clone().into(), (*at).into()]);
            }
            db.execute(&insert).await?;
        }
        Ok(())
    }

    /// One UPDATE per [`SENDERS_PER_STATEMENT`] contacts (each contact's time by CASE), for
    /// the senders the batch's first statement did not cover (those found by BSUID).
    async fn write<C: ConnectionTrait>(
        &mut self,
        db: &C,
        written: &std::collections::HashMap<i64, i64>,
        now_ms: i64,
    ) -> Result<(), DbErr> {
        // What the batch's first statement already wrote (the senders known by phone number).
        let due: Vec<(i64, i64)> = std::mem::take(&mut self.by_contact)
            .into_iter()
            .filter(|(id, at)| written.get(id).is_none_or(|done| at > done))
            .collect();
        for chunk in due.chunks(SENDERS_PER_STATEMENT) {
            let Some(latest) = crate::store::case_by(contact::Column::Id, chunk.iter().copied())
            else {
                continue;
            };
            let latest: Expr = latest.into();
            contact::Entity::update_many()
                .col_expr(contact::Column::LastInboundAt, latest.clone())
                .col_expr(contact::Column::UpdatedAt, Expr::value(now_ms))
                .filter(contact::Column::Id.is_in(chunk.iter().map(|(id, _)| *id)))
                // A late redelivery of an older message never moves the window start back.
                .filter(
                    Expr::col(contact::Column::LastInboundAt)
                        .is_null()
                        .or(Expr::col(contact::Column::LastInboundAt).lt(latest)),
                )
                .exec(db)
                .await?;
        }
        Ok(())
    }
}

async fn store_events(
    txn: &crate::store::WriteTxn,
    events: &WebhookEvents,
    hasher: &AddressHasher,
    batch: &mut Batch<'_>,
    now_ms: i64,
) -> Result<IngestReport, DbErr> {
    let mut report = IngestReport::default();
    for message in &events.messages {
        let Some(contact_id) =
            upsert_contact(txn, message, &events.contacts, batch.known, now_ms).await?
        else {
            // parse_webhook never yields a message without any identity; be defensive anyway.
            tracing::warn!(wamid = %message.id, "message without sender identity skipped");
            continue;
        };
        let row = new_message(contact_id, message, now_ms)?;
        batch.messages.rows.push((batch.webhook, contact_id, row));
        batch.windows.saw(
            contact_id,
            message.phone_number_id.as_deref(),
            message.sent_at,
        );
    }
    for status in &events.statuses {
        if apply_status(txn, status, now_ms).await? {
            report.statuses_applied += 1;
        } else {
            report.statuses_ignored += 1;
        }
        // Meta may report 131047 only asynchronously, as a failed status: the row takes its
        // template fallback then, exactly as for a synchronous 131047.
        if status.status == DeliveryStatus::Failed
            && status
                .errors
                .iter()
                .any(|e| WINDOW_CLOSED_CODES.contains(&e.code))
            && outbox::queue_fallback(txn, &status.message_id).await?
        {
            report.fallbacks_queued += 1;
        }
    }
    for update in &events.template_status_updates {
        report.templates_updated += templates::apply_status_update(txn, update, now_ms).await?;
    }
    for pref in &events.user_preferences {
        if consent::record_user_preference(txn, hasher, pref, now_ms).await? {
            report.consent_changes += 1;
        }
    }
    Ok(report)
}

/// Finds or creates the sender's contact and fills in whichever identity was missing.
async fn upsert_contact<C: ConnectionTrait>(
    db: &C,
    message: &InboundMessage,
    profiles: &[ContactProfile],
    known: &mut KnownContacts,
    now_ms: i64,
) -> Result<Option<i64>, DbErr> {
    let identity = Identity::of(message, profiles);
    let (wa_id, user_id) = (identity.wa_id, identity.user_id);
    if wa_id.is_none() && user_id.is_none() {
        return Ok(None);
    }
    let name = identity.name.clone();

    let cached = wa_id.and_then(|phone| known.by_phone.get(phone)).cloned();
    let existing = match cached {
        Some(contact) => Some(contact),
        None => find_contact(db, wa_id, user_id).await?,
    };
    if let Some(existing) = existing {
        let fill_wa = existing.wa_id.is_none() && wa_id.is_some();
        let fill_user = existing.user_id.is_none() && user_id.is_some();
        let new_name = name.is_some() && existing.profile_name != name;
        if fill_wa || fill_user || new_name {
            let mut update = contact::ActiveModel {
                id: Set(existing.id),
                ..Default::default()
            };
            if fill_wa {
                update.wa_id = Set(wa_id.map(str::to_owned));
            }
            if fill_user {
                update.user_id = Set(user_id.map(str::to_owned));
            }
            if new_name {
                update.profile_name = Set(name);
            }
            update.updated_at = Set(now_ms);
            let updated = contact::Entity::update(update).exec(db).await?;
            known.remember(updated);
        } else {
            known.remember(existing.clone());
        }
        return Ok(Some(existing.id));
    }

    // ON CONFLICT DO NOTHING (on any unique key) makes a concurrent first message from the same
    // contact, on another connection or instance, wait and then find the row instead of failing.
    let row = identity.new_row(None, now_ms);
    contact::Entity::insert(row)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    let created = find_contact(db, wa_id, user_id).await?;
    Ok(created.map(|c| {
        let id = c.id;
        known.remember(c);
        id
    }))
}

async fn find_contact<C: ConnectionTrait>(
    db: &C,
    wa_id: Option<&str>,
    user_id: Option<&str>,
) -> Result<Option<contact::Model>, DbErr> {
    // The phone number wins when both match different rows: it is what the insurer registered.
    if let Some(wa_id) = wa_id
        && let Some(found) = contact::Entity::find()
            .filter(contact::Column::WaId.eq(wa_id))
            .one(db)
            .await?
    {
        return Ok(Some(found));
    }
    match user_id {
        Some(user_id) => {
            contact::Entity::find()
                .filter(contact::Column::UserId.eq(user_id))
                .one(db)
                .await
        }
        None => Ok(None),
    }
}

/// The row a new inbound message is stored as.
fn new_message(
    contact_id: i64,
    message: &InboundMessage,
    now_ms: i64,
) -> Result<inbound_message::ActiveModel, DbErr> {
    let content =
        serde_json::to_string(&message.content).map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(inbound_message::ActiveModel {
        id: NotSet,
        wamid: Set(message.id.clone()),
        contact_id: Set(contact_id),
        phone_number_id: Set(message.phone_number_id.clone()),
        msg_type: Set(message.content.type_name().to_owned()),
        content: Set(Some(content)),
        raw: Set(Some(message.raw.to_string())),
        sent_at: Set(message.sent_at),
        received_at: Set(now_ms),
        processed_at: Set(None),
        attempts: Set(0),
        last_error: Set(None),
    })
}

/// Records a status unless the message already has one at least as far along, and moves the
/// outbox row that sent the wamid the same way; true when it moved forward.
async fn apply_status<C: ConnectionTrait>(
    db: &C,
    status: &StatusUpdate,
    now_ms: i64,
) -> Result<bool, DbErr> {
    let error = status.errors.first();
    let model = message_status::Model {
        wamid: status.message_id.clone(),
        status: status.status.as_str().to_owned(),
        rank: status.status.rank(),
        status_at: status.status_at,
        error_code: error.map(|e| e.code),
        error_title: error.and_then(|e| e.title.clone().or_else(|| e.message.clone())),
        error_details: error.and_then(|e| e.details.clone()),
        updated_at: now_ms,
    };
    // reset_all: every column is written, as for a new row.
    let row = message_status::ActiveModel::from(model.clone()).reset_all();
    let excluded = Alias::new("excluded");
    let affected = message_status::Entity::insert(row)
        .on_conflict(
            OnConflict::column(message_status::Column::Wamid)
                .update_columns([
                    message_status::Column::Status,
                    message_status::Column::Rank,
                    message_status::Column::StatusAt,
                    message_status::Column::ErrorCode,
                    message_status::Column::ErrorTitle,
                    message_status::Column::ErrorDetails,
                    message_status::Column::UpdatedAt,
                ])
                .action_and_where(
                    Expr::col((message_status::Entity, message_status::Column::Rank))
                        .lt(Expr::col((excluded, message_status::Column::Rank))),
                )
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    if affected == 1 && !outbox::apply_delivery(db, &model).await? {
        // No row carries the wamid yet. Either the send's answer is still being recorded
        // (the row picks the status up then), or the send got no answer in time although
        // Meta took it: the status names its row, which is then not sent again.
        let row = status
            .biz_opaque_callback_data
            .as_deref()
            .and_then(outbox::row_of_callback);
        if let Some(row_id) = row
            && outbox::confirm_unanswered(db, row_id, &model.wamid, now_ms).await?
        {
            outbox::apply_delivery(db, &model).await?;
        }
    }
    Ok(affected == 1)
}

/// The furthest status recorded for an outbound wamid.
///
/// # Errors
/// Database errors.
pub async fn status_of(
    db: &DatabaseConnection,
    wamid: &str,
) -> Result<Option<message_status::Model>, DbErr> {
    message_status::Entity::find_by_id(wamid.to_owned())
        .one(db)
        .await
}

/// Webhooks written per transaction at most: big enough to absorb a burst, small enough that
/// one batch's transaction stays short.
const MAX_BATCH: usize = 128;

/// Items (messages, statuses, marketing notices, template updates) written per transaction
/// at most, unless a single webhook has more (see the module doc): small enough that a webhook
/// arriving behind a full batch is acknowledged within a fraction of a second (`cargo bench
/// --bench load` with `LOAD_ENVELOPE=5000`), big enough that a 5,000-message envelope is
/// stored in a few transactions.
pub const PART_ITEMS: usize = 500;

/// What a webhook asks the ingest to write.
fn items(events: &WebhookEvents) -> usize {
    events.messages.len()
        + events.statuses.len()
        + events.user_preferences.len()
        + events.template_status_updates.len()
}

/// `events`' items in parts of at most `max`, in order, each with the contact profiles its
/// messages are matched with ([`Identity::of`] picks the same one from the part's as from
/// all); what is left is the envelope without its items, to [`join`] them back to.
fn split(mut events: WebhookEvents, max: usize) -> (WebhookEvents, Vec<WebhookEvents>) {
    fn with_room(parts: &mut Vec<WebhookEvents>, max: usize) -> &mut WebhookEvents {
        if parts.last().is_none_or(|p| items(p) >= max) {
            parts.push(WebhookEvents::default());
        }
        parts.last_mut().expect("a part with room")
    }
    let mut parts = Vec::new();
    for m in std::mem::take(&mut events.messages) {
        with_room(&mut parts, max).messages.push(m);
    }
    for s in std::mem::take(&mut events.statuses) {
        with_room(&mut parts, max).statuses.push(s);
    }
    for p in std::mem::take(&mut events.user_preferences) {
        with_room(&mut parts, max).user_preferences.push(p);
    }
    for t in std::mem::take(&mut events.template_status_updates) {
        with_room(&mut parts, max).template_status_updates.push(t);
    }
    // The first profile naming each phone number and each BSUID: a message's profile is the
    // first that names its number or its BSUID.
    let mut first: std::collections::HashMap<&str, usize> = Default::default();
    for (i, p) in events.contacts.iter().enumerate() {
        for id in [p.wa_id.as_deref(), p.user_id.as_deref()]
            .into_iter()
            .flatten()
        {
            first.entry(id).or_insert(i);
        }
    }
    for part in &mut parts {
        let mut wanted: Vec<usize> = part
            .messages
            .iter()
            .filter_map(|m| {
                let by_phone = m.from.as_deref().and_then(|id| first.get(id));
                let by_user = m.from_user_id.as_deref().and_then(|id| first.get(id));
                by_phone.into_iter().chain(by_user).min().copied()
            })
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        part.contacts = wanted.iter().map(|i| events.contacts[*i].clone()).collect();
    }
    (events, parts)
}

/// The envelope `split` took apart, whole again.
fn join(mut envelope: WebhookEvents, parts: Vec<WebhookEvents>) -> WebhookEvents {
    for part in parts {
        envelope.messages.extend(part.messages);
        envelope.statuses.extend(part.statuses);
        envelope.user_preferences.extend(part.user_preferences);
        envelope
            .template_status_updates
            .extend(part.template_status_updates);
    }
    envelope
}

impl IngestReport {
    /// Adds what another part of the same envelope changed.
    fn add(&mut self, other: IngestReport) {
        for id in other.contacts_with_new_messages {
            if !self.contacts_with_new_messages.contains(&id) {
                self.contacts_with_new_messages.push(id);
            }
        }
        self.new_messages += other.new_messages;
        self.duplicate_messages += other.duplicate_messages;
        self.statuses_applied += other.statuses_applied;
        self.statuses_ignored += other.statuses_ignored;
        self.templates_updated += other.templates_updated;
        self.fallbacks_queued += other.fallbacks_queued;
        self.consent_changes += other.consent_changes;
    }
}

/// One webhook waiting for its batch.
struct QueuedWebhook {
    events: WebhookEvents,
    done: tokio::sync::oneshot::Sender<(WebhookEvents, Result<IngestReport, DbErr>)>,
}

/// The group commit of webhooks (see the module doc). Cheap to clone; the writer task ends
/// when the last clone is dropped.
#[derive(Clone)]
pub struct IngestQueue {
    tx: tokio::sync::mpsc::UnboundedSender<QueuedWebhook>,
    /// Webhooks queued or being written right now (exported as
    /// `insurebot_webhooks_waiting`).
    waiting: Gauge,
    max_waiting: usize,
    /// How long one webhook, or one part of a big one, waits for its commit.
    store_timeout: std::time::Duration,
}

/// Why a webhook was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// As many webhooks as allowed already wait to be stored: refused at once, so that an
    /// overload costs Meta a redelivery instead of costing the server its memory.
    #[error("{waiting} webhooks are already waiting to be stored (limit {limit})")]
    Overloaded { waiting: usize, limit: usize },
    #[error("the ingest writer has stopped")]
    Stopped,
    /// The database did not take the webhook (or one of its parts) within
    /// `webhook.store_timeout_ms`: down, unreachable or locked by another process.
    #[error("the database did not answer within {limit_ms} ms; retry later")]
    TimedOut { limit_ms: u128 },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Counts a webhook as waiting until it is dropped (stored, refused, or its request gone).
struct Waiting(Gauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl IngestQueue {
    /// Starts the writer task; at most `max_waiting` webhooks wait for it at once, counted in
    /// `waiting`, each (or each part of a big one) for at most `store_timeout`.
    pub fn start(
        db: DatabaseConnection,
        hasher: AddressHasher,
        max_waiting: usize,
        waiting: Gauge,
        store_timeout: std::time::Duration,
    ) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        crate::store::spawn_writer(&db.clone(), write_batches(db, hasher, rx));
        Self {
            tx,
            waiting,
            max_waiting,
            store_timeout,
        }
    }

    /// As [`Self::start`], writing through a PostgreSQL connection of its own (see
    /// [`store::connect_ingest`](crate::store::connect_ingest)) from a thread of its own, which
    /// ends with the queue. At 1,000 webhooks/s on this 2-core machine the writer on the shared
    /// runtime waited for a turn after each of a batch's four or five round trips (acks p99
    /// 27-72 ms, `cargo bench --bench load`, README "Load benchmark").
    ///
    /// # Errors
    /// When the connection cannot be opened.
    pub async fn start_own_connection(
        url: crate::config::DatabaseUrl,
        acquire_timeout: std::time::Duration,
        hasher: AddressHasher,
        max_waiting: usize,
        waiting: Gauge,
        store_timeout: std::time::Duration,
    ) -> Result<Self, DbErr> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (connected, is_connected) = tokio::sync::oneshot::channel();
        crate::store::run_on_own_thread("ingest-writer", move || async move {
            match crate::store::connect_ingest(&url, acquire_timeout).await {
                Ok(db) => {
                    let _ = connected.send(Ok(()));
                    write_batches(db, hasher, rx).await;
                }
                Err(e) => {
                    let _ = connected.send(Err(e));
                }
            }
        });
        is_connected
            .await
            .map_err(|_| DbErr::Custom("the ingest writer's thread ended".to_owned()))??;
        Ok(Self {
            tx,
            waiting,
            max_waiting,
            store_timeout,
        })
    }

    /// [`IngestError::Overloaded`] when a webhook now would find the queue full: asked before
    /// a webhook is parsed, so that past saturation a refusal (and Meta's redeliveries of it)
    /// costs little of the CPU the queue needs to drain. [`Self::ingest`] checks again.
    ///
    /// # Errors
    /// [`IngestError::Overloaded`].
    pub fn has_room(&self) -> Result<(), IngestError> {
        self.room_beside(usize::try_from(self.waiting.get()).unwrap_or(0))
    }

    /// [`IngestError::Overloaded`] when `waiting` webhooks fill the queue.
    fn room_beside(&self, waiting: usize) -> Result<(), IngestError> {
        if waiting >= self.max_waiting {
            return Err(IngestError::Overloaded {
                waiting,
                limit: self.max_waiting,
            });
        }
        Ok(())
    }

    /// Stores `events` with whatever other webhooks are waiting, and gives them back with the
    /// report once committed; an envelope of more than [`PART_ITEMS`] items in parts, one
    /// after the other, so that the webhooks arriving meanwhile are stored between them.
    ///
    /// # Errors
    /// [`IngestError::Overloaded`] at once when the queue is full; the database error that
    /// kept this webhook (or one of its parts) from being stored.
    pub async fn ingest(
        &self,
        events: WebhookEvents,
    ) -> (WebhookEvents, Result<IngestReport, IngestError>) {
        let before = usize::try_from(self.waiting.inc()).unwrap_or(0);
        let _waiting = Waiting(self.waiting.clone());
        if let Err(refused) = self.room_beside(before) {
            return (events, Err(refused));
        }
        if items(&events) <= PART_ITEMS {
            return self.store(events).await;
        }
        let (envelope, parts) = split(events, PART_ITEMS);
        let mut report = IngestReport::default();
        let mut stored = Vec::with_capacity(parts.len());
        let mut parts = parts.into_iter();
        while let Some(part) = parts.next() {
            let (part, result) = self.store(part).await;
            stored.push(part);
            match result {
                Ok(part_report) => report.add(part_report),
                Err(e) => {
                    stored.extend(parts);
                    return (join(envelope, stored), Err(e));
                }
            }
        }
        (join(envelope, stored), Ok(report))
    }

    /// Queues `events` for the writer and waits for its commit, at most `store_timeout`: the
    /// limit is per part, so that a big envelope stored part after part (each in well under
    /// the limit) is not refused for its size, while a database that does not answer is
    /// noticed within the limit. Dropping the wait withdraws the part from the writer's queue;
    /// one the writer had already started may still commit, and its redelivery is then a
    /// duplicate, acknowledged.
    async fn store(
        &self,
        events: WebhookEvents,
    ) -> (WebhookEvents, Result<IngestReport, IngestError>) {
        let (done, result) = tokio::sync::oneshot::channel();
        if let Err(refused) = self.tx.send(QueuedWebhook { events, done }) {
            return (refused.0.events, Err(IngestError::Stopped));
        }
        match tokio::time::timeout(self.store_timeout, result).await {
            Ok(Ok((events, stored))) => (events, stored.map_err(IngestError::from)),
            // Only when the runtime is shutting down; the webhook is not acknowledged.
            Ok(Err(_)) => (WebhookEvents::default(), Err(IngestError::Stopped)),
            // The part's events stay with the writer, which drops them unstored; the caller
            // answers 503 and needs none of them.
            Err(_) => (
                WebhookEvents::default(),
                Err(IngestError::TimedOut {
                    limit_ms: self.store_timeout.as_millis(),
                }),
            ),
        }
    }
}

async fn write_batches(
    db: DatabaseConnection,
    hasher: AddressHasher,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<QueuedWebhook>,
) {
    let mut waiting = std::collections::VecDeque::new();
    let mut received = Vec::with_capacity(MAX_BATCH);
    loop {
        if waiting.is_empty() {
            if rx.recv_many(&mut received, MAX_BATCH).await == 0 {
                return;
            }
        } else {
            // What arrived while the last batch was written, without waiting for more.
            while received.len() < MAX_BATCH
                && let Ok(queued) = rx.try_recv()
            {
                received.push(queued);
            }
        }
        waiting.extend(received.drain(..));
        let batch = next_batch(&mut waiting);
        write_batch(&db, &hasher, batch).await;
    }
}

/// The webhooks at the front of the queue that one transaction takes: up to [`MAX_BATCH`]
/// of them and [`PART_ITEMS`] items (at least one webhook, whatever its size). In arrival
/// order, so that a webhook waits behind at most one full batch.
fn next_batch(waiting: &mut std::collections::VecDeque<QueuedWebhook>) -> Vec<QueuedWebhook> {
    let mut batch = Vec::new();
    let mut total = 0;
    while let Some(next) = waiting.front() {
        let n = items(&next.events);
        if !batch.is_empty() && (batch.len() >= MAX_BATCH || total + n > PART_ITEMS) {
            break;
        }
        total += n;
        batch.extend(waiting.pop_front());
    }
    batch
}

async fn write_batch(
    db: &DatabaseConnection,
    hasher: &AddressHasher,
    mut batch: Vec<QueuedWebhook>,
) {
    // A webhook whose request has gone (answered 503 after `webhook.store_timeout_ms`, or
    // disconnected) is not stored: Meta delivers it again, and during an outage the queue
    // would otherwise fill with copies of the same redeliveries.
    batch.retain(|queued| !queued.done.is_closed());
    if batch.is_empty() {
        return;
    }
    let now = crate::store::now_ms();
    let all: Vec<&WebhookEvents> = batch.iter().map(|q| &q.events).collect();
    match ingest_many(db, &all, hasher, now).await {
        Ok(reports) => {
            for (queued, report) in batch.drain(..).zip(reports) {
                let _ = queued.done.send((queued.events, Ok(report)));
            }
        }
        Err(e) if batch.len() > 1 => {
            tracing::warn!(error = %e, webhooks = batch.len(), "batch not stored; storing its webhooks one by one");
            for queued in batch.drain(..) {
                if queued.done.is_closed() {
                    continue;
                }
                let result = ingest(db, &queued.events, hasher, now).await;
                let _ = queued.done.send((queued.events, result));
            }
        }
        Err(e) => {
            if let Some(queued) = batch.pop() {
                let _ = queued.done.send((queued.events, Err(e)));
            }
        }
    }
}
