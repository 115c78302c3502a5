//! The processing pipeline: after ingest commits, each new inbound message is handed to the
//! dialogue layer one at a time per contact, in WhatsApp timestamp order, without blocking other
//! contacts. The database is the queue (`processed_at IS NULL`), so a crash or restart loses
//! nothing: a sweep picks up whatever is pending. A lease on the contact row keeps two instances
//! sharing PostgreSQL from processing the same contact at once. The handler's writes and the
//! "processed" mark commit in one transaction, so a message is processed exactly once.

pub mod echo;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::entities::{contact, inbound_message};
use crate::store::{WriteTxn, begin_write, now_ms};
use crate::whatsapp::inbound::MessageContent;

/// How long a contact lease lasts; renewed for every message, so only a crashed instance's
/// lease ever expires.
const LEASE_MS: i64 = 30_000;
/// Attempts before a message whose handler keeps failing is set aside (with its error kept),
/// so that one poison message cannot block the contact forever.
const MAX_ATTEMPTS: i32 = 3;
/// Processing transactions at once on PostgreSQL: half the pool, leaving the rest to the
/// webhook ingest, the sender and the console.
const PG_PROCESSING_SLOTS: usize = 8;

/// A stored inbound message ready for the dialogue layer.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    pub id: i64,
    pub wamid: String,
    pub contact_id: i64,
    /// WhatsApp's timestamp, Unix ms.
    pub sent_at: i64,
    pub content: MessageContent,
}

/// A boxed future, so handlers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Decides what to do with one inbound message. Its database writes go through `txn`, which
/// commits together with the message's "processed" mark, or not at all.
pub trait MessageHandler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        message: &'a PendingMessage,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
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
    /// Contacts with a drain task running in this instance.
    active: Mutex<HashSet<i64>>,
    /// Contacts notified while their drain task was running: it must look again.
    again: Mutex<HashSet<i64>>,
    /// Wakes the sender after a handler's writes (usually replies in the outbox) commit.
    outbox_ready: Arc<Notify>,
    /// Processing transactions open at once. SQLite has one writer: with one drain task per
    /// contact queued at its write gate, the webhook ingest and the sender would wait behind
    /// every one of them; a single permit keeps one processing transaction in that queue.
    processing_slots: tokio::sync::Semaphore,
}

impl Pipeline {
    pub fn new(
        db: DatabaseConnection,
        handler: Arc<dyn MessageHandler>,
        metrics: Arc<Metrics>,
        instance_id: String,
        outbox_ready: Arc<Notify>,
    ) -> Self {
        let db_is_sqlite = db.get_database_backend() == sea_orm::DbBackend::Sqlite;
        Self {
            inner: Arc::new(Inner {
                db,
                handler,
                metrics,
                instance_id,
                active: Mutex::new(HashSet::new()),
                again: Mutex::new(HashSet::new()),
                outbox_ready,
                processing_slots: tokio::sync::Semaphore::new(if db_is_sqlite {
                    1
                } else {
                    PG_PROCESSING_SLOTS
                }),
            }),
        }
    }

    /// Says that `contact_id` may have pending messages. Returns at once.
    pub fn notify(&self, contact_id: i64) {
        {
            let mut active = self.inner.active.lock().expect("pipeline lock");
            if !active.insert(contact_id) {
                self.inner
                    .again
                    .lock()
                    .expect("pipeline lock")
                    .insert(contact_id);
                return;
            }
        }
        let this = self.clone();
        tokio::spawn(async move { this.drain(contact_id).await });
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

    async fn drain(&self, contact_id: i64) {
        loop {
            match self.drain_once(contact_id).await {
                Ok(DrainEnd::Done) => {}
                Ok(DrainEnd::LeasedElsewhere) => {
                    // Another instance holds the contact; the sweep retries after its lease.
                    tracing::debug!(contact_id, "contact leased by another instance");
                }
                Err(e) => {
                    tracing::warn!(contact_id, error = %e, "processing stopped; the sweep will retry")
                }
            }
            // Finish or go round again, atomically with respect to notify().
            let mut active = self.inner.active.lock().expect("pipeline lock");
            if self
                .inner
                .again
                .lock()
                .expect("pipeline lock")
                .remove(&contact_id)
            {
                continue;
            }
            active.remove(&contact_id);
            return;
        }
    }

    /// Processes the contact's pending messages, one transaction per message. Each transaction
    /// takes (or renews) the contact's lease, handles the oldest pending message, marks it
    /// processed and, when it was the last one, releases the lease: one round trip of the
    /// write lock per message instead of separate lease transactions.
    async fn drain_once(&self, contact_id: i64) -> Result<DrainEnd, DbErr> {
        let owner = self.inner.instance_id.as_str();
        loop {
            let _slot = self
                .inner
                .processing_slots
                .acquire()
                .await
                .map_err(|_| DbErr::Custom("pipeline closed".to_owned()))?;
            let txn = begin_write(&self.inner.db).await?;
            if !lease(&txn, contact_id, owner, now_ms()).await? {
                txn.rollback().await?;
                return Ok(DrainEnd::LeasedElsewhere);
            }
            // Two rows: the one to handle, and whether another waits behind it.
            let pending = inbound_message::Entity::find()
                .filter(inbound_message::Column::ContactId.eq(contact_id))
                .filter(inbound_message::Column::ProcessedAt.is_null())
                .order_by_asc(inbound_message::Column::SentAt)
                .order_by_asc(inbound_message::Column::Id)
                .limit(2)
                .all(&txn)
                .await?;
            let Some(row) = pending.first() else {
                release(&txn, contact_id, owner).await?;
                txn.commit().await?;
                return Ok(DrainEnd::Done);
            };
            let last = pending.len() == 1;
            let message = match to_pending(row) {
                Ok(m) => m,
                Err(reason) => {
                    mark_processed(&txn, row.id, Some(reason)).await?;
                    txn.commit().await?;
                    continue;
                }
            };
            let span = tracing::info_span!("process", message_id = row.id, contact_id);
            let outcome = {
                let _enter = span.enter();
                self.inner.handler.handle(&txn, &message)
            }
            .await;
            match outcome {
                Ok(()) => {
                    mark_processed(&txn, row.id, None).await?;
                    if last {
                        release(&txn, contact_id, owner).await?;
                    }
                    txn.commit().await?;
                    let secs = std::cmp::max(now_ms() - row.received_at, 0) as f64 / 1000.0;
                    self.inner.metrics.processing_latency.observe(secs);
                    self.inner.outbox_ready.notify_one();
                    if last {
                        return Ok(DrainEnd::Done);
                    }
                }
                Err(error) => {
                    // The rollback also undid this transaction's lease: nothing is held.
                    txn.rollback().await?;
                    self.record_failure(row, &error).await?;
                    if row.attempts + 1 < MAX_ATTEMPTS {
                        // Keep order: later messages wait for this one's next attempt (the
                        // sweep comes back to it).
                        return Ok(DrainEnd::Done);
                    }
                }
            }
        }
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
            .exec(&*txn)
            .await?;
        txn.commit().await
    }
}

enum DrainEnd {
    Done,
    LeasedElsewhere,
}

fn to_pending(row: &inbound_message::Model) -> Result<PendingMessage, String> {
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
        content,
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

/// Takes the contact's lease for `owner` (or renews it), inside the caller's transaction;
/// false when another instance holds an unexpired one.
pub(crate) async fn lease(
    txn: &WriteTxn,
    contact_id: i64,
    owner: &str,
    now: i64,
) -> Result<bool, DbErr> {
    let result = contact::Entity::update_many()
        .col_expr(contact::Column::LeaseOwner, Expr::value(owner.to_owned()))
        .col_expr(contact::Column::LeaseUntil, Expr::value(now + LEASE_MS))
        .filter(contact::Column::Id.eq(contact_id))
        .filter(
            contact::Column::LeaseUntil
                .is_null()
                .or(contact::Column::LeaseUntil.lt(now))
                .or(contact::Column::LeaseOwner.eq(owner.to_owned())),
        )
        .exec(txn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Gives the contact's lease back, inside the caller's transaction.
pub(crate) async fn release(txn: &WriteTxn, contact_id: i64, owner: &str) -> Result<(), DbErr> {
    contact::Entity::update_many()
        .col_expr(
            contact::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            contact::Column::LeaseUntil,
            Expr::value(Option::<i64>::None),
        )
        .filter(contact::Column::Id.eq(contact_id))
        .filter(contact::Column::LeaseOwner.eq(owner.to_owned()))
        .exec(txn)
        .await?;
    Ok(())
}
