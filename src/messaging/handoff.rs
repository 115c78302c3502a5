//! Replies handed from the pipeline to this instance's sender in memory, so that the common
//! case (a bot reply inside the open 24-hour window) costs no outbox claim, no second read of
//! the contact and no second consent check.
//!
//! The pipeline decides a reply in the transaction that queues it ([`composer::decide_for`]:
//! the window, the consent log as of that transaction). When the decision is "send free-form
//! now" and the contact has no earlier queued row, the row is inserted already leased to this
//! instance (under a lease owner of this run; the batch's rows with one INSERT just before
//! the commit) and, once the transaction commits, handed to the sender with its decision. The row is in the database before any HTTP call as always: a
//! crash leaves it queued and leased, and a restart or another instance takes it over after
//! the lease (or at once, [`outbox::release_own_stale_leases`]).
//!
//! A handed-over row is sent on its queue-time decision only while that decision is fresh
//! ([`FRESH_FOR_MS`]); one that waited longer (the sender was saturated) is released to the
//! outbox and decided again when claimed, like every other row.
//!
//! [`composer::decide_for`]: super::composer::decide_for
//! [`outbox::release_own_stale_leases`]: super::outbox::release_own_stale_leases

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tokio::sync::mpsc;

use super::composer::StoredIntent;
use super::outbox::{insert_all, release_leases};
use super::templates::TemplateInfo;
use crate::store::entities::{contact, outbox};
use crate::whatsapp::outbound::OutboundMessage;

/// How long a queue-time decision stands. Past it the row is decided again (the contact may
/// have opted out meanwhile, the window closed): well under the outbox lease, so a handed-over
/// row is never also claimed by another instance.
pub const FRESH_FOR_MS: i64 = 2_000;

/// The lease owner of handed-over rows is `"{instance}/fresh-{run}"`: under the instance's
/// prefix, so its next run releases them after a crash, and unique to this run, so that
/// release spares the rows this run has just handed over.
const FRESH_LEASE_PREFIX: &str = "fresh-";

/// A queued row decided "send now", with everything the sender needs.
#[derive(Debug)]
pub struct FreshRow {
    pub row: outbox::Model,
    pub contact: contact::Model,
    pub intent: StoredIntent,
    pub message: OutboundMessage,
    pub sent_as: &'static str,
    pub template: Option<Box<TemplateInfo>>,
    /// The wamid of the inbound message this answers, to mark it read once sent.
    pub answered_wamid: Option<String>,
    /// When the decision was taken, Unix ms.
    pub decided_at: i64,
}

/// The rows one pipeline transaction hands over, collected while it runs. Dropped with a
/// rolled-back transaction; given to [`Handoff::deliver`] after its commit. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FreshBatch {
    rows: Arc<Mutex<Vec<FreshRow>>>,
    lease_owner: Arc<str>,
    /// Whether the transaction also queued rows for the outbox's claim (not handed over).
    claimable: Arc<AtomicBool>,
}

impl FreshBatch {
    /// The lease owner the rows are inserted with.
    pub fn lease_owner(&self) -> &str {
        &self.lease_owner
    }

    /// Adds a row decided in the batch's transaction, not stored yet ([`store`](Self::store)).
    pub fn push(&self, row: FreshRow) {
        self.rows.lock().expect("fresh rows").push(row);
    }

    /// Stores the rows added so far, leased to this run's sender, with one INSERT for the
    /// batch instead of one per reply; in the batch's transaction, before it commits.
    ///
    /// # Errors
    /// Database errors.
    pub async fn store<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        let mut rows = std::mem::take(&mut *self.rows.lock().expect("fresh rows"));
        let stored = insert_all(db, rows.iter_mut().map(|f| &mut f.row)).await;
        let mut kept = self.rows.lock().expect("fresh rows");
        rows.append(&mut kept);
        *kept = rows;
        stored
    }

    /// Says that the transaction queued a row the sender must claim from the outbox.
    pub fn queued_for_claim(&self) {
        self.claimable.store(true, Ordering::Relaxed);
    }

    /// Whether the transaction queued rows for the claim: the sender is woken for those only,
    /// the handed-over ones reach it through the channel.
    pub fn has_rows_for_claim(&self) -> bool {
        self.claimable.load(Ordering::Relaxed)
    }
}

/// The channel from the pipeline to the sender of the same instance. Cheap to clone.
#[derive(Clone)]
pub struct Handoff {
    tx: mpsc::UnboundedSender<Vec<FreshRow>>,
    rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Vec<FreshRow>>>>>,
    lease_owner: Arc<str>,
}

impl Handoff {
    /// A handoff for the instance `instance_id`.
    pub fn new(instance_id: &str) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
            lease_owner: format!(
                "{instance_id}/{FRESH_LEASE_PREFIX}{}",
                uuid::Uuid::new_v4().simple()
            )
            .into(),
        }
    }

    /// The lease owner of this run's handed-over rows.
    pub fn lease_owner(&self) -> &str {
        &self.lease_owner
    }

    /// An empty batch for one transaction.
    pub fn batch(&self) -> FreshBatch {
        FreshBatch {
            rows: Arc::default(),
            lease_owner: self.lease_owner.clone(),
            claimable: Arc::default(),
        }
    }

    /// Hands the rows of a committed transaction to the sender. Without a sender (it has
    /// stopped) the rows go back to the outbox, where any instance's claim takes them.
    pub async fn deliver(&self, batch: FreshBatch, db: &DatabaseConnection) {
        let rows = std::mem::take(&mut *batch.rows.lock().expect("fresh rows"));
        if rows.is_empty() {
            return;
        }
        if let Err(refused) = self.tx.send(rows) {
            self.release(db, refused.0).await;
        }
    }

    /// Gives handed-over rows back to the outbox, to be claimed (and decided again) by any
    /// instance. On a database error they go out after their lease.
    pub async fn release(&self, db: &DatabaseConnection, rows: Vec<FreshRow>) {
        let ids: Vec<i64> = rows.iter().map(|f| f.row.id).collect();
        if let Err(e) = release_leases(db, &ids, &self.lease_owner).await {
            tracing::warn!(rows = ids.len(), error = %e, "could not release handed-over rows; they go out after their lease");
        }
    }

    /// The receiving end, for the one sender that runs; `None` once taken.
    pub fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<Vec<FreshRow>>> {
        self.rx.lock().expect("handoff receiver").take()
    }
}
