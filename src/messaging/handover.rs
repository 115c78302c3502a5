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
//! outbox and decided again when claimed, like every other row. So that this stays the
//! exception, the pipeline hands over only as much as the sender has room for: a batch
//! reserves room for its replies before it is processed ([`Handoff::reserve`]), and the room
//! goes back as the rows start sending; while the sender is behind, messages wait unprocessed.
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

/// Room for rows handed over and not yet started by the sender: about one second of sending at
/// the configured rate (they start as fast as the rate lets them, so none waits longer than
/// [`FRESH_FOR_MS`] while the sender keeps up), at least [`ROOM_PER_SEND`] per send for up to
/// 64 in flight (the room of a slow number), at most that per send `max_in_flight` allows.
/// A pipeline batch reserves room for its messages before it starts ([`Handoff::reserve`],
/// no connection held while it waits): when the sender cannot keep up, processing slows to its
/// pace and the messages wait in the database, in order, instead of as replies in memory that
/// go stale and take the outbox's slower claim path. Unbounded, this collapsed: at 3,500/s
/// offered on PostgreSQL (more than the machine answers) replies piled up, went stale, and
/// every later reply of their contacts queued behind them for the claim, which sent ~400/s
/// (`cargo bench --bench load`: 650 answered/s, e2e p50 33 s; bounded: 3,100/s, 1.4 s).
pub fn room_for(rate_per_second: u32, max_in_flight: usize) -> usize {
    let cap = max_in_flight.max(1);
    (rate_per_second as usize)
        .max(ROOM_PER_SEND * cap.min(64))
        .min(ROOM_PER_SEND * cap)
}

/// Room per send in flight (see [`room_for`]).
const ROOM_PER_SEND: usize = 2;

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

/// Rows handed over together, and the room they took ([`Handoff::make_room`] gives it back).
pub type Handover = (Vec<FreshRow>, u32);

/// Room reserved by a pipeline batch; given back when dropped, unless handed over with rows.
#[derive(Debug)]
pub struct Room(tokio::sync::OwnedSemaphorePermit);

/// The channel from the pipeline to the sender of the same instance. Cheap to clone.
#[derive(Clone)]
pub struct Handoff {
    tx: mpsc::UnboundedSender<Handover>,
    rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Handover>>>>,
    lease_owner: Arc<str>,
    /// Rows that may wait for the sender (see [`ROOM_PER_SEND`]).
    room: Arc<tokio::sync::Semaphore>,
    room_size: u32,
}

impl Handoff {
    /// A handoff for the instance `instance_id`, whose sender sends `rate_per_second` with
    /// up to `max_in_flight` sends in flight.
    pub fn new(instance_id: &str, rate_per_second: u32, max_in_flight: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let room_size = room_for(rate_per_second, max_in_flight);
        // Within what tokio's semaphore holds (usize::MAX >> 3) on any platform.
        let room_size = u32::try_from(room_size).unwrap_or(u32::MAX >> 3);
        Self {
            room: Arc::new(tokio::sync::Semaphore::new(room_size as usize)),
            room_size,
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

    /// Waits until there is room for the replies to `messages` messages (one each; all the
    /// room for more than that); `None` once the sender has stopped.
    pub async fn reserve(&self, messages: usize) -> Option<Room> {
        let wanted =
            u32::try_from(messages.max(1)).map_or(self.room_size, |n| n.min(self.room_size));
        self.room
            .clone()
            .acquire_many_owned(wanted)
            .await
            .ok()
            .map(Room)
    }

    /// Hands the rows of a committed transaction to the sender, in the room the batch
    /// reserved (room it did not use goes back at once; replies beyond it go along). Without a
    /// sender (it has stopped) the rows go back to the outbox, where any instance's claim
    /// takes them.
    pub async fn deliver(&self, batch: FreshBatch, room: Option<Room>, db: &DatabaseConnection) {
        let rows = std::mem::take(&mut *batch.rows.lock().expect("fresh rows"));
        if rows.is_empty() {
            return;
        }
        let Some(Room(mut room)) = room else {
            return self.release(db, rows).await;
        };
        let unused = room.num_permits().saturating_sub(rows.len());
        drop(room.split(unused));
        let taken = u32::try_from(room.num_permits()).unwrap_or(self.room_size);
        // Given back by the sender as the rows start, not when this permit drops.
        room.forget();
        if let Err(refused) = self.tx.send((rows, taken)) {
            self.make_room(taken);
            self.release(db, refused.0.0).await;
        }
    }

    /// Gives back the room of handed-over rows the sender has started.
    pub fn make_room(&self, room: u32) {
        self.room.add_permits(room as usize);
    }

    /// Refuses further handovers (the sender is stopping): [`reserve`](Self::reserve) stops
    /// waiting, and [`deliver`](Self::deliver) gives the rows back to the outbox.
    pub fn close(&self) {
        self.room.close();
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
    pub fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<Handover>> {
        self.rx.lock().expect("handoff receiver").take()
    }
}
