//! The processing pipeline: after ingest commits, each new inbound message is handed to the
//! dialogue layer one at a time per contact, in WhatsApp timestamp order, without blocking other
//! contacts. The database is the queue (`processed_at IS NULL`), so a crash or restart loses
//! nothing: a sweep picks up whatever is pending. A lease keeps two instances sharing
//! PostgreSQL from processing the same contact at once: there, a transaction-scoped advisory
//! lock per contact, taken by the batch's transaction and gone with its commit (or with the
//! connection of a crashed instance); on SQLite, whose one writer needs no lock, the contact
//! row's lease columns. The console's hand-off actions and the dialogue timer take the same
//! lock ([`lease`]) in the transaction that changes the conversation, so none of them saves
//! over another's change. The handler's writes and the "processed" mark commit in one
//! transaction, so a message is processed exactly once.
//!
//! Contacts with work wait in a queue; a few processors (one on SQLite, which has one writer)
//! each take a batch of them and handle the next message of every contact in the batch in one
//! transaction: the leases, the pending messages, the "processed" marks and the releases are
//! one statement each for the whole batch, and the batch commits once. A contact with more
//! messages goes back to the end of the queue, so one busy contact cannot starve the others.
//! When a handler fails, the batch is rolled back and its contacts are processed one by one,
//! so the failure is charged to its own message only.
//!
//! The handler reads what it needs for the whole batch first ([`MessageHandler::prefetch`])
//! and writes what it can for the whole batch last ([`MessageHandler::finish`]); replies it
//! decides may go at once are handed to this instance's sender after the commit
//! ([`handoff`](crate::messaging::handover)) unless the contact has earlier rows queued.
//!
//! A media message is handled only once its file was fetched (or given up on): until its
//! `media_files` row exists the contact is released without it, the
//! [`MediaFetcher`](crate::media::MediaFetcher) downloads outside any transaction, and
//! notifies the contact when done. Other contacts go on meanwhile; this contact's later
//! messages wait behind the file, in order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, FromQueryResult, QueryFilter, QuerySelect, Statement,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::media::MediaFetcher;
use crate::media::fetch::MediaRequest;
use crate::messaging::handover::{FreshBatch, Handoff};
use crate::metrics::Metrics;
use crate::store::entities::outbox::State as OutboxState;
use crate::store::entities::{consent_log, contact, conversation, flow_hop, inbound_message};
use crate::store::lease::ReleaseLease;
use crate::store::{self, WriteTxn, begin_write, now_ms};
use crate::whatsapp::inbound::MessageContent;

/// How long a contact lease lasts; renewed for every message, so only a crashed instance's
/// lease ever expires.
const LEASE_MS: i64 = 30_000;
/// Attempts before a message whose handler keeps failing is set aside (with its error kept),
/// so that one poison message cannot block the contact forever.
const MAX_ATTEMPTS: i32 = 3;
/// Contacts handled per transaction at most. Bigger batches cost fewer statements per message
/// but hold SQLite's one writer longer, which the webhook acknowledgements wait behind
/// (`cargo bench --bench load`, SQLite, 3,500/s offered, one session: 16 answered 2,340/s,
/// 32 answered 3,380/s with acks p99 55 ms, 64 fell to 1,330/s: its batches hand the sender
/// more contacts at once than it has sends in flight, their decisions go stale and take the
/// slower claim path).
const MAX_BATCH: usize = 32;
/// [`MAX_BATCH`] on PostgreSQL, whose writers run side by side: a longer batch holds up no
/// acknowledgement there, and it costs PostgreSQL's own backends (a third of the two cores at
/// saturation) fewer statements per message (`cargo bench --bench load`, 8,000/s offered:
/// 5,215–5,344 replies/s and 10.3–10.5 s of backend CPU, against 5,048–5,159 and 11.4–11.5 s
/// with 32, acks p99 alike).
const PG_MAX_BATCH: usize = 64;
/// Processors on PostgreSQL (SQLite has one writer, so one processor): a few batches in
/// flight, leaving most of the pool to the webhook ingest, the sender and the console.
const PG_PROCESSORS: usize = 4;

/// A stored inbound message ready for the dialogue layer.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    pub id: i64,
    pub wamid: String,
    pub contact_id: i64,
    /// WhatsApp's timestamp, Unix ms.
    pub sent_at: i64,
    /// The business number the message came to (`None`: the webhook named none); replies
    /// leave from it.
    pub phone_number_id: Option<String>,
    pub content: MessageContent,
    /// The contact as leased for this message, when the pipeline read it already (handlers
    /// read it themselves otherwise).
    pub contact: Option<contact::Model>,
    /// Where replies that may go out at once are handed to this instance's sender after the
    /// commit; `None` when the contact has earlier rows queued (its replies wait behind them).
    pub fresh: Option<FreshBatch>,
    /// What the handler read for the whole batch in [`MessageHandler::prefetch`]; `None`: it
    /// reads for this message alone.
    pub prefetched: Option<Prefetched>,
}

/// What the flow runner reads for every message, read for a batch at once (one query each
/// instead of one per message), and the conversation it writes, written for the batch at
/// once in [`MessageHandler::finish`]. A batch holds one message per contact, so nothing
/// another message of the batch writes can change what was read.
#[derive(Debug, Clone, Default)]
pub struct Prefetched {
    /// The contact's stored conversation, if any.
    pub conversation: Option<conversation::Model>,
    /// The consent log entries that apply to the contact, oldest first.
    pub consent: Vec<consent_log::Model>,
    /// The conversation row to store once the batch's messages are handled.
    pub save: Arc<Mutex<Option<conversation::ActiveModel>>>,
    /// The flow hops to store with the batch's others.
    pub hops: Arc<Mutex<Vec<flow_hop::ActiveModel>>>,
}

/// A boxed future, so handlers can be trait objects (futures-util's, which every module that
/// needs one takes from there rather than from here).
pub use futures_util::future::BoxFuture;

/// Decides what to do with one inbound message. Its database writes go through `txn`, which
/// commits together with the message's "processed" mark, or not at all.
pub trait MessageHandler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        message: &'a PendingMessage,
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Runs before the batch's transaction opens, with the contacts about to be handled: the
    /// place for slow calls (an understanding service) whose answers `handle` then reads,
    /// so no transaction is held open across them. The default does nothing.
    fn before_batch<'a>(
        &'a self,
        _db: &'a DatabaseConnection,
        _contacts: &'a [i64],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Reads, for a whole batch, what [`handle`](Self::handle) would read for each message,
    /// into [`PendingMessage::prefetched`]; called in the batch's transaction first. The
    /// default reads nothing.
    fn prefetch<'a>(
        &'a self,
        _txn: &'a DatabaseTransaction,
        _messages: &'a mut [PendingMessage],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Writes what [`handle`](Self::handle) left for the whole batch (see [`Prefetched`]);
    /// called in the batch's transaction after the last message. The default writes nothing.
    fn finish<'a>(
        &'a self,
        _txn: &'a DatabaseTransaction,
        _messages: &'a [PendingMessage],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Hands pending messages to the handler. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    handler: Arc<dyn MessageHandler>,
    metrics: Arc<Metrics>,
    instance_id: String,
    ready: Mutex<Ready>,
    /// Wakes a processor when a contact joins the queue.
    work: Notify,
    /// Wakes the sender after a handler's writes (usually replies in the outbox) commit.
    outbox_ready: Arc<Notify>,
    /// Takes the replies decided "send now" to the sender after the commit.
    handoff: Handoff,
    /// Tells the processors to stop once their current batch has committed.
    stop: CancellationToken,
    /// The processors, joined by [`Pipeline::stop`].
    processors: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Contacts per batch at most: [`MAX_BATCH`], or [`PG_MAX_BATCH`] on PostgreSQL.
    max_batch: usize,
    /// Fetches inbound media before its message is handled; `None`: media messages are
    /// handled at once, without a file (tools and tests of other parts).
    media: Option<Arc<MediaFetcher>>,
}

/// The contacts with work, and those being processed.
#[derive(Default)]
struct Ready {
    /// Waiting for a processor, oldest first.
    queue: VecDeque<i64>,
    queued: HashSet<i64>,
    /// In a batch right now: not queued again until it ends.
    in_flight: HashSet<i64>,
    /// Notified while in flight: queued again when its batch ends.
    again: HashSet<i64>,
}

/// How one contact's turn in a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Nothing more pending (or a failed message waits for the sweep's retry).
    Done,
    /// Another message waits: back to the queue.
    More,
    /// Another instance holds the contact; the sweep retries after its lease.
    LeasedElsewhere,
}

/// Why a batch did not commit.
enum BatchError {
    /// A handler failed: `contact_id`'s message `row`; the batch was rolled back.
    Handler {
        contact_id: i64,
        row: Box<inbound_message::Model>,
        error: anyhow::Error,
    },
    Db(DbErr),
}

impl From<DbErr> for BatchError {
    fn from(e: DbErr) -> Self {
        BatchError::Db(e)
    }
}

impl Pipeline {
    /// Starts the processors on the current runtime.
    pub fn new(
        db: DatabaseConnection,
        handler: Arc<dyn MessageHandler>,
        metrics: Arc<Metrics>,
        instance_id: String,
        outbox_ready: Arc<Notify>,
        handoff: Handoff,
        media: Option<Arc<MediaFetcher>>,
    ) -> Self {
        let sqlite = db.get_database_backend() == sea_orm::DbBackend::Sqlite;
        let processors = if sqlite { 1 } else { PG_PROCESSORS };
        let pipeline = Self {
            inner: Arc::new(Inner {
                db,
                handler,
                metrics,
                instance_id,
                ready: Mutex::new(Ready::default()),
                work: Notify::new(),
                outbox_ready,
                handoff,
                stop: CancellationToken::new(),
                processors: Mutex::new(Vec::with_capacity(processors)),
                max_batch: if sqlite { MAX_BATCH } else { PG_MAX_BATCH },
                media,
            }),
        };
        let handles = (0..processors)
            .map(|_| {
                crate::store::spawn_writer(&pipeline.inner.db, pipeline.clone().run_processor())
            })
            .collect();
        *pipeline
            .inner
            .processors
            .lock()
            .expect("pipeline processors") = handles;
        pipeline
    }

    /// Stops the processors and waits for them: a batch in progress commits (its replies go
    /// to the sender, or back to the outbox if the sender has stopped) and nothing new starts.
    /// Called at shutdown before the pool closes: a processor left running would go on
    /// processing beside the next instance on the same database, and the rows it handed over
    /// after that instance had released its predecessor's leases waited for the lease to end.
    pub async fn stop(&self) {
        self.inner.stop.cancel();
        let processors =
            std::mem::take(&mut *self.inner.processors.lock().expect("pipeline processors"));
        for processor in processors {
            if let Err(e) = processor.await {
                tracing::warn!(error = %e, "a pipeline processor ended abnormally");
            }
        }
        // A contact with more messages keeps its lease between batches; handed back, the
        // next instance (or another one) goes on with it at once instead of after the lease.
        if let Err(e) = self.release_held_leases().await {
            tracing::warn!(error = %e, "contact leases not given back; they end after their lease");
        }
    }

    /// Gives back every contact lease this instance holds (SQLite; PostgreSQL's locks end
    /// with their transaction).
    async fn release_held_leases(&self) -> Result<(), DbErr> {
        let db = &self.inner.db;
        if db.get_database_backend() == DbBackend::Postgres {
            return Ok(());
        }
        let txn = begin_write(db).await?;
        contact::Entity::update_many()
            .release_lease()
            .filter(contact::Column::LeaseOwner.eq(self.inner.instance_id.clone()))
            .exec(&txn)
            .await?;
        txn.commit().await
    }

    /// Says that `contact_id` may have pending messages. Returns at once.
    pub fn notify(&self, contact_id: i64) {
        let mut ready = self.inner.ready.lock().expect("pipeline lock");
        if ready.in_flight.contains(&contact_id) {
            ready.again.insert(contact_id);
        } else if ready.queued.insert(contact_id) {
            ready.queue.push_back(contact_id);
            drop(ready);
            self.inner.work.notify_one();
        }
    }

    /// Runs until `stop` is cancelled: every `interval`, notifies each contact with pending
    /// messages (those left by a crash, a restart, a failed attempt or another instance).
    pub async fn run_sweeper(self, interval: Duration, stop: CancellationToken) {
        loop {
            match self.contacts_with_pending().await {
                Ok(ids) => ids.into_iter().for_each(|id| self.notify(id)),
                Err(e) => tracing::warn!(error = %e, "pipeline sweep failed"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    async fn contacts_with_pending(&self) -> Result<Vec<i64>, DbErr> {
        let rows: Vec<i64> = inbound_message::Entity::find()
            .select_only()
            .column(inbound_message::Column::ContactId)
            .distinct()
            .filter(inbound_message::Column::ProcessedAt.is_null())
            .into_tuple()
            .all(&self.inner.db)
            .await?;
        Ok(rows)
    }

    /// Takes batches from the queue and processes them until [`stop`](Self::stop).
    async fn run_processor(self) {
        loop {
            let batch = tokio::select! {
                biased;
                () = self.inner.stop.cancelled() => return,
                batch = self.next_batch() => batch,
            };
            let turns = self.process(&batch).await;
            self.finish(turns);
        }
    }

    /// Waits for work, then moves up to [`MAX_BATCH`] contacts from the queue to in-flight.
    async fn next_batch(&self) -> Vec<i64> {
        loop {
            // Registered before looking, so a notify between the look and the wait is kept.
            let notified = self.inner.work.notified();
            {
                let mut ready = self.inner.ready.lock().expect("pipeline lock");
                let take = ready.queue.len().min(self.inner.max_batch);
                if take > 0 {
                    let batch: Vec<i64> = ready.queue.drain(..take).collect();
                    for id in &batch {
                        ready.queued.remove(id);
                        ready.in_flight.insert(*id);
                    }
                    if !ready.queue.is_empty() {
                        // More than one batch waits: let another processor start on it.
                        self.inner.work.notify_one();
                    }
                    return batch;
                }
            }
            notified.await;
        }
    }

    /// Ends the contacts' turns: those with more to do (or notified meanwhile) queue again.
    fn finish(&self, turns: Vec<(i64, Turn)>) {
        let mut ready = self.inner.ready.lock().expect("pipeline lock");
        let mut queued_any = false;
        for (id, turn) in turns {
            ready.in_flight.remove(&id);
            let notified = ready.again.remove(&id);
            let go_again = match turn {
                Turn::More => true,
                Turn::Done => notified,
                Turn::LeasedElsewhere => false,
            };
            if go_again && ready.queued.insert(id) {
                ready.queue.push_back(id);
                queued_any = true;
            }
        }
        drop(ready);
        if queued_any {
            self.inner.work.notify_one();
        }
    }

    /// One message of each contact in `batch`: together when all goes well, else one by one.
    async fn process(&self, batch: &[i64]) -> Vec<(i64, Turn)> {
        match self.process_batch(batch).await {
            Ok(turns) => turns,
            Err(BatchError::Handler {
                contact_id,
                row,
                error,
            }) if batch.len() == 1 => {
                let retried = match self.record_failure(&row, &error).await {
                    // Keep order: later messages wait for this one's next attempt (the sweep
                    // comes back to it); an abandoned one lets them through.
                    Ok(()) if row.attempts + 1 < MAX_ATTEMPTS => Turn::Done,
                    Ok(()) => Turn::More,
                    Err(e) => {
                        tracing::warn!(contact_id, error = %e, "could not record the failure; the sweep will retry");
                        Turn::Done
                    }
                };
                vec![(contact_id, retried)]
            }
            Err(BatchError::Handler { .. }) => {
                let mut turns = Vec::with_capacity(batch.len());
                for &contact_id in batch {
                    turns.extend(Box::pin(self.process(&[contact_id])).await);
                }
                turns
            }
            Err(BatchError::Db(e)) => {
                tracing::warn!(contacts = batch.len(), error = %e, "processing stopped; the sweep will retry");
                batch.iter().map(|&id| (id, Turn::Done)).collect()
            }
        }
    }

    /// The batch's transaction: lease the contacts, handle the oldest pending message of
    /// each, mark them processed, release the contacts that have nothing more, commit.
    async fn process_batch(&self, batch: &[i64]) -> Result<Vec<(i64, Turn)>, BatchError> {
        let owner = self.inner.instance_id.as_str();
        let db = &self.inner.db;
        // Room for the batch's replies in the sender's hands, before anything is read: while
        // the sender is behind, the messages wait here unprocessed (see `handoff`).
        let room = self.inner.handoff.reserve(batch.len()).await;
        self.inner.handler.before_batch(db, batch).await;
        let txn = begin_write(db).await?;
        let leased = lease_many(&txn, batch, owner, now_ms()).await?;
        let mut turns: Vec<(i64, Turn)> = batch
            .iter()
            .filter(|id| !leased.iter().any(|c| c.id == **id))
            .map(|&id| (id, Turn::LeasedElsewhere))
            .collect();
        let next = next_messages(&txn, &leased).await?;
        let fresh = self.inner.handoff.batch();
        let mut processed = Vec::new();
        let mut finished = Vec::new();
        let mut messages = Vec::with_capacity(leased.len());
        for contact in leased {
            let Some(NextMessage {
                row,
                more,
                behind_queued,
            }) = next.get(&contact.id)
            else {
                finished.push(contact.id);
                turns.push((contact.id, Turn::Done));
                continue;
            };
            if !more {
                finished.push(contact.id);
            }
            turns.push((contact.id, if *more { Turn::More } else { Turn::Done }));
            match to_pending(row, Some(contact)) {
                Ok(m) if *behind_queued => messages.push(m),
                Ok(m) => messages.push(PendingMessage {
                    fresh: Some(fresh.clone()),
                    ..m
                }),
                Err(reason) => mark_processed(&txn, row.id, Some(reason)).await?,
            }
        }
        if let Some(media) = &self.inner.media {
            self.set_media_aside(&txn, media, &mut messages, &mut turns, &mut finished)
                .await?;
        }
        if let Err(error) = self.inner.handler.prefetch(&txn, &mut messages).await {
            txn.rollback().await?;
            return Err(batch_failure(&messages, &next, error));
        }
        for message in &messages {
            let contact_id = message.contact_id;
            let Some(NextMessage { row, .. }) = next.get(&contact_id) else {
                continue;
            };
            let span = tracing::info_span!("process", message_id = row.id, contact_id);
            let outcome = {
                let _enter = span.enter();
                self.inner.handler.handle(&txn, message)
            }
            .await;
            if let Err(error) = outcome {
                // The rollback also undoes the batch's leases: nothing is held.
                txn.rollback().await?;
                return Err(BatchError::Handler {
                    contact_id,
                    row: Box::new(row.clone()),
                    error,
                });
            }
            processed.push(row);
        }
        if let Err(error) = self.inner.handler.finish(&txn, &messages).await {
            txn.rollback().await?;
            return Err(batch_failure(&messages, &next, error));
        }
        if let Err(error) = fresh.store(&txn).await {
            txn.rollback().await?;
            return Err(batch_failure(&messages, &next, error.into()));
        }
        let ids: Vec<i64> = processed.iter().map(|r| r.id).collect();
        mark_processed_many(&txn, &ids).await?;
        release_many(&txn, &finished, owner).await?;
        let time = txn.commit_timed().await?;
        // How long the batch held the writer (on SQLite, the time the acks wait behind it).
        tracing::debug!(
            contacts = batch.len(),
            gate_wait_us = time.waited_us(),
            held_us = time.held_us(),
            "pipeline batch committed"
        );
        // The sender claims from the outbox only what was not handed over to it.
        let claimable = fresh.has_rows_for_claim() || messages.iter().any(|m| m.fresh.is_none());
        self.inner.handoff.deliver(fresh, room, db).await;
        let now = now_ms();
        for row in &processed {
            let secs = std::cmp::max(now - row.received_at, 0) as f64 / 1000.0;
            self.inner.metrics.processing_latency.observe(secs);
        }
        if claimable {
            self.inner.outbox_ready.notify_one();
        }
        Ok(turns)
    }

    /// Takes out of the batch each media message whose file is not fetched yet, starts its
    /// fetch, and ends its contact's turn (released, not processed: the fetch notifies it).
    async fn set_media_aside(
        &self,
        txn: &WriteTxn,
        media: &Arc<MediaFetcher>,
        messages: &mut Vec<PendingMessage>,
        turns: &mut [(i64, Turn)],
        finished: &mut Vec<i64>,
    ) -> Result<(), DbErr> {
        let ids: Vec<i64> = messages
            .iter()
            .filter(|m| matches!(m.content, MessageContent::Media { .. }))
            .map(|m| m.id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let fetched: HashSet<i64> = crate::media::fetch::outcomes(txn, &ids)
            .await?
            .into_iter()
            .map(|row| row.inbound_message_id)
            .collect();
        messages.retain(|m| {
            let MessageContent::Media {
                kind,
                id,
                mime_type,
                ..
            } = &m.content
            else {
                return true;
            };
            if fetched.contains(&m.id) {
                return true;
            }
            let contact_id = m.contact_id;
            let pipeline = self.clone();
            media.start(
                MediaRequest {
                    inbound_message_id: m.id,
                    contact_id,
                    media_id: id.clone(),
                    kind: *kind,
                    declared_mime: mime_type.clone(),
                },
                move || pipeline.notify(contact_id),
            );
            for turn in turns.iter_mut().filter(|(c, _)| *c == contact_id) {
                turn.1 = Turn::Done;
            }
            if !finished.contains(&contact_id) {
                finished.push(contact_id);
            }
            false
        });
        Ok(())
    }

    async fn record_failure(
        &self,
        row: &inbound_message::Model,
        error: &anyhow::Error,
    ) -> Result<(), DbErr> {
        let attempts = row.attempts + 1;
        let give_up = attempts >= MAX_ATTEMPTS;
        tracing::error!(message_id = row.id, attempts, give_up, error = %error, "handler failed");
        Metrics::count(
            &self.inner.metrics.processing_failures,
            if give_up { "abandoned" } else { "retried" },
        );
        let txn = begin_write(&self.inner.db).await?;
        let mut update = inbound_message::Entity::update_many()
            .col_expr(inbound_message::Column::Attempts, Expr::value(attempts))
            .col_expr(
                inbound_message::Column::LastError,
                Expr::value(format!("{error:#}")),
            );
        if give_up {
            update = update.col_expr(inbound_message::Column::ProcessedAt, Expr::value(now_ms()));
        }
        update
            .filter(inbound_message::Column::Id.eq(row.id))
            .exec(&txn)
            .await?;
        txn.commit().await
    }
}

/// A failure of the batch as a whole (its reads or writes for all messages), charged to its
/// first message: the one-by-one retry then finds the message it belongs to.
fn batch_failure(
    messages: &[PendingMessage],
    next: &HashMap<i64, NextMessage>,
    error: anyhow::Error,
) -> BatchError {
    let first = messages.first().map(|m| m.contact_id);
    match first.and_then(|id| next.get(&id).map(|next| (id, &next.row))) {
        Some((contact_id, row)) => BatchError::Handler {
            contact_id,
            row: Box::new(row.clone()),
            error,
        },
        None => BatchError::Db(DbErr::Custom(format!("{error:#}"))),
    }
}

fn to_pending(
    row: &inbound_message::Model,
    contact: Option<contact::Model>,
) -> Result<PendingMessage, String> {
    let content = row
        .content
        .as_deref()
        .ok_or_else(|| "content erased before processing".to_owned())
        .and_then(|c| serde_json::from_str(c).map_err(|e| format!("unreadable content: {e}")))?;
    Ok(PendingMessage {
        id: row.id,
        wamid: row.wamid.clone(),
        contact_id: row.contact_id,
        sent_at: row.sent_at,
        phone_number_id: row.phone_number_id.clone(),
        content,
        contact,
        fresh: None,
        prefetched: None,
    })
}

async fn mark_processed(
    txn: &DatabaseTransaction,
    id: i64,
    error: Option<String>,
) -> Result<(), DbErr> {
    let mut update = inbound_message::Entity::update_many()
        .col_expr(inbound_message::Column::ProcessedAt, Expr::value(now_ms()));
    if let Some(error) = error {
        update = update.col_expr(inbound_message::Column::LastError, Expr::value(error));
    }
    update
        .filter(inbound_message::Column::Id.eq(id))
        .exec(txn)
        .await?;
    Ok(())
}

async fn mark_processed_many(txn: &WriteTxn, ids: &[i64]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    inbound_message::Entity::update_many()
        .col_expr(inbound_message::Column::ProcessedAt, Expr::value(now_ms()))
        .filter(inbound_message::Column::Id.is_in(ids.iter().copied()))
        .exec(txn)
        .await?;
    Ok(())
}

/// Takes (or renews) the lease of each contact in `ids` that no other instance holds, for
/// the rest of the caller's transaction at least, and returns those contacts as they are now.
async fn lease_many(
    txn: &WriteTxn,
    ids: &[i64],
    owner: &str,
    now: i64,
) -> Result<Vec<contact::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        return lock_many(txn, ids, owner, now).await;
    }
    contact::Entity::update_many()
        .col_expr(contact::Column::LeaseOwner, Expr::value(owner.to_owned()))
        .col_expr(contact::Column::LeaseUntil, Expr::value(now + LEASE_MS))
        .filter(contact::Column::Id.is_in(ids.iter().copied()))
        .filter(lease_free_or_mine(owner, now))
        .exec_with_returning(txn)
        .await
}

/// A contact's oldest pending message, as [`next_messages`] finds it.
struct NextMessage {
    row: inbound_message::Model,
    /// Another message of the contact waits behind this one.
    more: bool,
    /// The contact has queued outbox rows: its next replies go out after those, through the
    /// outbox's claim, not handed over at once.
    behind_queued: bool,
}

/// Each contact's oldest pending message (by WhatsApp time, then arrival), whether another
/// waits behind it, and whether the contact has queued outbox rows: one statement for the
/// whole batch. The pending messages are ranked from the partial index of unprocessed
/// messages alone (`idx_inbound_unprocessed_by_contact`); only the chosen rows are read whole.
async fn next_messages(
    txn: &WriteTxn,
    contacts: &[contact::Model],
) -> Result<HashMap<i64, NextMessage>, DbErr> {
    if contacts.is_empty() {
        return Ok(HashMap::new());
    }
    let backend = txn.get_database_backend();
    let placeholder = |n| store::placeholder(backend, n);
    let ids: Vec<String> = (0..contacts.len()).map(|i| placeholder(i + 1)).collect();
    let sql = format!(
        "SELECT m.*, ranked.pending, \
           CASE WHEN EXISTS (SELECT 1 FROM outbox \
             WHERE outbox.contact_id = m.contact_id AND outbox.state = '{queued}') \
           THEN 1 ELSE 0 END AS behind_queued \
         FROM (SELECT id, \
             ROW_NUMBER() OVER (PARTITION BY contact_id ORDER BY sent_at, id) AS position, \
             COUNT(*) OVER (PARTITION BY contact_id) AS pending \
           FROM inbound_messages \
           WHERE contact_id IN ({ids}) AND processed_at IS NULL) AS ranked \
         JOIN inbound_messages AS m ON m.id = ranked.id \
         WHERE ranked.position = 1",
        // A literal, not a parameter: SQLite compares a parameter with the partial index of
        // queued rows (`idx_outbox_queued`) by its bound value, and so compiled the statement
        // again on every run (`sqlite3Reprepare`, once per batch).
        queued = OutboxState::Queued,
        ids = ids.join(", "),
    );
    let values = contacts.iter().map(|c| c.id.into());
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    rows.iter()
        .map(|row| {
            let message = inbound_message::Model::from_query_result(row, "")?;
            let pending: i64 = row.try_get("", "pending")?;
            let behind_queued: i32 = row.try_get("", "behind_queued")?;
            Ok((
                message.contact_id,
                NextMessage {
                    row: message,
                    more: pending > 1,
                    behind_queued: behind_queued != 0,
                },
            ))
        })
        .collect()
}

/// PostgreSQL's lease: a transaction-scoped advisory lock per contact, tried without waiting
/// (a contact another transaction holds is skipped, the sweep comes back to it). Nothing is
/// written: no extra transaction, no row lock on the contact for the webhook ingest to wait
/// behind, no lease to release, and a crashed instance's locks go with its connections.
///
/// The contacts are read in a statement after the lock's, so that they and the messages read
/// next show everything the previous holder committed (READ COMMITTED, see
/// [`store::connect`](crate::store::connect)). A lease column still held by another instance
/// (one that leases with columns: an older version during a rolling upgrade) is respected.
async fn lock_many(
    txn: &WriteTxn,
    ids: &[i64],
    owner: &str,
    now: i64,
) -> Result<Vec<contact::Model>, DbErr> {
    // Over the ids given, not over the contacts table: a scan of the table could evaluate the
    // lock function on rows before the id filter, and lock contacts nobody asked for.
    let rows: Vec<String> = (0..ids.len())
        .map(|i| format!("({})", store::placeholder(DbBackend::Postgres, i + 2)))
        .collect();
    let sql = format!(
        "SELECT id FROM (VALUES {}) AS contact_lock(id) \
         WHERE pg_try_advisory_xact_lock($1, (id % 2147483647)::int4)",
        rows.join(", ")
    );
    let values =
        std::iter::once(CONTACT_LOCK_SPACE.into()).chain(ids.iter().map(|id| (*id).into()));
    let lock = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let locked: Vec<i64> = txn
        .query_all_raw(lock)
        .await?
        .iter()
        .map(|row| row.try_get::<i64>("", "id"))
        .collect::<Result<_, _>>()?;
    if locked.is_empty() {
        return Ok(Vec::new());
    }
    contact::Entity::find()
        .filter(contact::Column::Id.is_in(locked))
        .filter(lease_free_or_mine(owner, now))
        .all(txn)
        .await
}

/// The first key of the pipeline's advisory locks (PostgreSQL): the second is the contact id
/// (modulo 2^31 - 1; two contacts sharing a key only ever wait for each other's turn).
const CONTACT_LOCK_SPACE: i32 = 0x1B07;

/// Gives back the leases of `ids` held by `owner`, inside the caller's transaction; nothing
/// to do on PostgreSQL, whose locks end with the transaction.
async fn release_many(txn: &WriteTxn, ids: &[i64], owner: &str) -> Result<(), DbErr> {
    if ids.is_empty() || txn.get_database_backend() == DbBackend::Postgres {
        return Ok(());
    }
    contact::Entity::update_many()
        .release_lease()
        .filter(contact::Column::Id.is_in(ids.iter().copied()))
        .filter(contact::Column::LeaseOwner.eq(owner.to_owned()))
        .exec(txn)
        .await?;
    Ok(())
}

/// A contact whose lease is free, expired, or already `owner`'s.
fn lease_free_or_mine(owner: &str, now: i64) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(contact::Column::LeaseUntil.is_null())
        .add(contact::Column::LeaseUntil.lt(now))
        .add(contact::Column::LeaseOwner.eq(owner.to_owned()))
}

/// Takes the contact's lease for `owner` (or renews it), inside the caller's transaction;
/// false when another instance holds an unexpired one.
pub(crate) async fn lease(
    txn: &WriteTxn,
    contact_id: i64,
    owner: &str,
    now: i64,
) -> Result<bool, DbErr> {
    Ok(!lease_many(txn, &[contact_id], owner, now).await?.is_empty())
}

/// Gives the contact's lease back, inside the caller's transaction.
pub(crate) async fn release(txn: &WriteTxn, contact_id: i64, owner: &str) -> Result<(), DbErr> {
    release_many(txn, &[contact_id], owner).await
}
