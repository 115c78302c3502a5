//! The outbox table's queries: enqueue inside the caller's transaction, claim due rows with a
//! lease (so two instances never send the same row), record each attempt's result, and link
//! delivery statuses to rows by wamid (or, for a send whose answer never came, by the row the
//! status names in its callback data).
//!
//! A row holds the composer's intent (both the free-form body and the template fallback), not
//! a finished message: the sender decides again at the moment of sending.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    Iterable, QueryFilter, QueryOrder, QuerySelect,
};

use crate::store::entities::outbox::{Reason, State};
use crate::store::entities::{message_status, outbox};
use crate::store::lease::ReleaseLease;
use crate::store::{begin_write, now_ms};
use crate::whatsapp::client::WINDOW_CLOSED_CODES;

/// How long a claimed row stays leased to one sender. It covers the wait for a rate-limit
/// token plus one request timeout; a crashed instance's rows are taken over after it.
const LEASE_MS: i64 = 30_000;

/// A new outbox row.
#[derive(Debug, Clone)]
pub struct NewRow<'a> {
    pub contact_id: i64,
    pub in_reply_to: Option<i64>,
    pub purpose: &'a str,
    /// The serialised intent.
    pub payload: String,
    /// `Some((reason, detail))` records the row as `skipped` at once.
    pub skipped: Option<(Reason, String)>,
    /// The business number it leaves from; `None`: the deployment's first.
    pub phone_number_id: Option<String>,
}

/// Inserts a row in the caller's transaction; returns its id.
///
/// # Errors
/// Database errors.
pub async fn insert<C: ConnectionTrait>(db: &C, row: NewRow<'_>) -> Result<i64, DbErr> {
    let mut row = unstored(row, None, now_ms());
    insert_all(db, std::iter::once(&mut row)).await?;
    Ok(row.id)
}

/// The row `row` would be stored as, not stored (its id is 0): queued and leased to
/// `lease_owner` (a sender that will have the row in memory, see [`handoff`](super::handoff))
/// when given. [`insert_all`] stores such rows.
pub fn unstored(row: NewRow<'_>, lease_owner: Option<&str>, now: i64) -> outbox::Model {
    let (state, reason, detail) = match row.skipped {
        Some((reason, detail)) => (State::Skipped, Some(reason), Some(detail)),
        None => (State::Queued, None, None),
    };
    outbox::Model {
        id: 0,
        contact_id: row.contact_id,
        in_reply_to: row.in_reply_to,
        payload: row.payload,
        state: state.to_owned(),
        attempts: 0,
        next_attempt_at: now,
        lease_owner: lease_owner.map(str::to_owned),
        lease_until: lease_owner.map(|_| now + LEASE_MS),
        wamid: None,
        error_code: None,
        last_error: detail,
        created_at: now,
        updated_at: now,
        sent_at: None,
        purpose: row.purpose.to_owned(),
        reason,
        sent_as: None,
        fallback: false,
        delivery_status: None,
        delivery_rank: 0,
        delivery_at: None,
        delivery_error_code: None,
        delivery_error: None,
        phone_number_id: row.phone_number_id,
    }
}

/// Rows per INSERT in [`insert_all`] at most (25 parameters each: well under SQLite's and
/// PostgreSQL's parameter limits).
const INSERT_CHUNK: usize = 128;

/// Stores the rows of `rows` not stored yet (id 0, from [`unstored`]) with one multi-row
/// INSERT per chunk instead of one per row, and sets their ids. A contact's rows go out in id
/// order, and the database numbers the rows of one INSERT in the order they are given; what
/// RETURNING lists comes in no promised order, so each contact's rows take its returned ids
/// in ascending order.
///
/// # Errors
/// Database errors (nothing is stored then, with the caller's transaction).
pub async fn insert_all<'a, C: ConnectionTrait>(
    db: &C,
    rows: impl IntoIterator<Item = &'a mut outbox::Model>,
) -> Result<(), DbErr> {
    let mut rows: Vec<&mut outbox::Model> = rows.into_iter().filter(|r| r.id == 0).collect();
    let columns: Vec<outbox::Column> = outbox::Column::iter()
        .filter(|c| !matches!(c, outbox::Column::Id))
        .collect();
    for chunk in rows.chunks_mut(INSERT_CHUNK) {
        let mut insert = Query::insert();
        insert
            .into_table(outbox::Entity)
            .columns(columns.iter().copied())
            .returning(Query::returning().columns([outbox::Column::Id, outbox::Column::ContactId]));
        for row in chunk.iter() {
            let active: outbox::ActiveModel = (**row).clone().into();
            insert.values_panic(columns.iter().map(|c| {
                active
                    .get(*c)
                    .into_value()
                    .expect("every inserted column is set")
                    .into()
            }));
        }
        let statement = db.get_database_backend().build(&insert);
        let mut ids: HashMap<i64, Vec<i64>> = HashMap::new();
        for returned in db.query_all_raw(statement).await? {
            let contact_id: i64 = returned.try_get("", "contact_id")?;
            ids.entry(contact_id)
                .or_default()
                .push(returned.try_get("", "id")?);
        }
        // Largest first, so that `pop` hands out the smallest.
        ids.values_mut()
            .for_each(|v| v.sort_unstable_by(|a, b| b.cmp(a)));
        for row in chunk.iter_mut() {
            row.id = ids
                .get_mut(&row.contact_id)
                .and_then(Vec::pop)
                .ok_or_else(|| {
                    DbErr::Custom(
                        "the outbox INSERT returned fewer rows than it was given".to_owned(),
                    )
                })?;
        }
    }
    Ok(())
}

/// Gives back the leases `lease_owner` holds on the queued rows `ids`, so that the next claim
/// (of any instance) takes them and decides them again.
///
/// # Errors
/// Database errors; the leases then expire.
pub async fn release_leases(
    db: &DatabaseConnection,
    ids: &[i64],
    lease_owner: &str,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    let txn = begin_write(db).await?;
    outbox::Entity::update_many()
        .release_lease()
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .filter(outbox::Column::LeaseOwner.eq(lease_owner.to_owned()))
        .filter(outbox::Column::State.eq(State::Queued))
        .exec(&*txn)
        .await?;
    txn.commit().await
}

/// Leases up to `limit` due rows, at most one per contact: the oldest queued row of each
/// contact, so a contact's messages go out in order and a row waiting for a retry (or for the
/// per-recipient pace) holds back the ones queued after it.
///
/// Three statements, no explicit transaction: the candidates, one conditional UPDATE that
/// leases them under a token unique to this call (another instance may have taken some in
/// between; the UPDATE's conditions skip those), and a SELECT of what this token got, retried
/// through a database outage while the lease lasts.
///
/// # Errors
/// Database errors.
pub async fn claim_due(
    db: &DatabaseConnection,
    owner: &str,
    limit: u64,
) -> Result<Vec<outbox::Model>, DbErr> {
    let now = now_ms();
    let earlier = Alias::new("earlier");
    let earlier_queued = Query::select()
        .expr(Expr::val(1))
        .from_as(outbox::Entity, earlier.clone())
        .and_where(
            Expr::col((earlier.clone(), outbox::Column::ContactId))
                .equals((outbox::Entity, outbox::Column::ContactId)),
        )
        .and_where(Expr::col((earlier.clone(), outbox::Column::State)).eq(State::Queued))
        .and_where(
            Expr::col((earlier, outbox::Column::Id))
                .lt(Expr::col((outbox::Entity, outbox::Column::Id))),
        )
        .to_owned();
    let free = || {
        outbox::Column::LeaseUntil
            .is_null()
            .or(outbox::Column::LeaseUntil.lt(now))
    };
    let candidates: Vec<i64> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Id)
        // A literal, not a parameter: so that PostgreSQL's plan can use the partial index of
        // queued rows in id order (`idx_outbox_queued`).
        .filter(Expr::cust(format!(
            r#""outbox"."state" = '{}'"#,
            State::Queued
        )))
        .filter(outbox::Column::NextAttemptAt.lte(now))
        .filter(free())
        .filter(Expr::exists(earlier_queued).not())
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let token = format!("{owner}/{}", uuid::Uuid::new_v4().simple());
    let lease_until = now + LEASE_MS;
    let txn = begin_write(db).await?;
    outbox::Entity::update_many()
        .col_expr(outbox::Column::LeaseOwner, Expr::value(token.clone()))
        .col_expr(outbox::Column::LeaseUntil, Expr::value(lease_until))
        .filter(outbox::Column::Id.is_in(candidates.iter().copied()))
        .filter(outbox::Column::State.eq(State::Queued))
        .filter(free())
        .exec(&*txn)
        .await?;
    let committed = txn.commit().await;
    // From here the rows may be leased to `token`, even when COMMIT reported an error (the
    // connection can die after committing). Find them while the lease lasts: given up on, they
    // would sit leased to nobody until it expires, and their contacts' replies wait behind them.
    let leased = retry_while_leased(
        lease_until - LEASE_MARGIN_MS,
        "reading claimed rows",
        || {
            outbox::Entity::find()
                // By primary key: lease_owner has no index, and the outbox keeps its history.
                .filter(outbox::Column::Id.is_in(candidates.iter().copied()))
                .filter(outbox::Column::LeaseOwner.eq(token.clone()))
                .order_by_asc(outbox::Column::Id)
                .all(db)
        },
    )
    .await?;
    match committed {
        Err(e) if leased.is_empty() => Err(e),
        _ => Ok(leased),
    }
}

/// Frees the leases a previous run of this same instance (same host and address) held when it
/// died, so its queued rows go out at once after a restart instead of after the lease expiry.
/// The rows leased to `this_run` (handed over by this run's pipeline) keep theirs.
///
/// # Errors
/// Database errors.
pub async fn release_own_stale_leases(
    db: &DatabaseConnection,
    owner: &str,
    this_run: &str,
) -> Result<u64, DbErr> {
    let txn = begin_write(db).await?;
    let result = outbox::Entity::update_many()
        .release_lease()
        .filter(outbox::Column::LeaseOwner.starts_with(format!("{owner}/")))
        .filter(outbox::Column::LeaseOwner.ne(this_run.to_owned()))
        .filter(outbox::Column::State.eq(State::Queued))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(result.rows_affected)
}

/// What one send attempt (or decision) ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Sent {
        wamid: String,
        /// `free_form` or `template`.
        sent_as: &'static str,
    },
    /// Try again at `next_attempt_at` (Unix ms).
    Retry {
        next_attempt_at: i64,
        code: Option<i64>,
        reason: String,
    },
    /// Meta said the window is closed (131047): queued again, and the next attempt sends the
    /// template fallback. Taken once per row.
    Fallback { code: Option<i64>, reason: String },
    /// A permanent error.
    Failed {
        code: Option<i64>,
        reason: Reason,
        detail: String,
    },
    /// Attempts exhausted: dead-lettered.
    Dead { code: Option<i64>, reason: String },
    /// Decided at send time that nothing may go (no request was made).
    Skipped { reason: Reason, detail: String },
    /// Not an attempt: the per-recipient pace says "not before `next_attempt_at`".
    Deferred { next_attempt_at: i64 },
    /// Not an attempt: an earlier attempt, whose answer was never recorded (its sender died),
    /// reached Meta, as the status webhook that gave the row its wamid says
    /// ([`confirm_unanswered`]). Recorded sent; nothing goes again.
    Confirmed,
}

impl AttemptResult {
    /// A short label for metrics and logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            AttemptResult::Sent { .. } => "sent",
            AttemptResult::Retry { .. } => "retry",
            AttemptResult::Fallback { .. } => "fallback",
            AttemptResult::Failed { .. } => "failed",
            AttemptResult::Dead { .. } => "dead",
            AttemptResult::Skipped { .. } => "skipped",
            AttemptResult::Deferred { .. } => "deferred",
            AttemptResult::Confirmed => "confirmed",
        }
    }
}

/// Records a result on the row and releases the lease. A sent row also picks up a delivery
/// status that arrived before its wamid was recorded (Meta's `sent` webhook can beat us).
///
/// # Errors
/// Database errors.
pub async fn record_attempt(
    db: &DatabaseConnection,
    row: &outbox::Model,
    result: &AttemptResult,
) -> Result<(), DbErr> {
    record_attempts(db, &[(row, result)]).await
}

/// [`record_attempt`] for several rows in one transaction.
///
/// # Errors
/// Database errors; nothing is recorded then.
pub async fn record_attempts(
    db: &DatabaseConnection,
    results: &[(&outbox::Model, &AttemptResult)],
) -> Result<(), DbErr> {
    let now = now_ms();
    let txn = begin_write(db).await?;
    let mut sent = Vec::new();
    for (row, result) in results {
        match result {
            AttemptResult::Sent { wamid, sent_as } => sent.push((*row, wamid.as_str(), *sent_as)),
            _ => write_attempt(&txn, row, result, now).await?,
        }
    }
    write_sent(&txn, &sent, now).await?;
    let time = txn.commit_timed().await?;
    // As the ingest's and the pipeline's batches: how long it waited for the writer and held it.
    tracing::debug!(
        results = results.len(),
        gate_wait_us = time.waited_us(),
        held_us = time.held_us(),
        "send results committed"
    );
    Ok(())
}

/// Records sends that went through: one UPDATE for all of them (each row's wamid by CASE),
/// then the delivery statuses that arrived before their wamids were recorded (Meta's `sent`
/// webhook can beat us), one query for all; a 131047 among them queues the template fallback.
async fn write_sent<C: ConnectionTrait>(
    db: &C,
    sent: &[(&outbox::Model, &str, &'static str)],
    now: i64,
) -> Result<(), DbErr> {
    if sent.is_empty() {
        return Ok(());
    }
    // Each row's own value by CASE, the column's current one for any other row.
    let by_row = |column: outbox::Column, value: fn(&str, &'static str) -> String| {
        let values = sent
            .iter()
            .map(|(row, wamid, sent_as)| (row.id, value(wamid, sent_as)));
        crate::store::case_by(outbox::Column::Id, values)
            .expect("sent is not empty")
            .finally(Expr::col(column))
    };
    outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Attempts,
            Expr::col(outbox::Column::Attempts).add(1),
        )
        .col_expr(outbox::Column::UpdatedAt, Expr::value(now))
        .release_lease()
        .col_expr(outbox::Column::State, Expr::value(State::Sent))
        .col_expr(
            outbox::Column::Wamid,
            by_row(outbox::Column::Wamid, |wamid, _| wamid.to_owned()).into(),
        )
        .col_expr(
            outbox::Column::SentAs,
            by_row(outbox::Column::SentAs, |_, sent_as| sent_as.to_owned()).into(),
        )
        .col_expr(outbox::Column::SentAt, Expr::value(now))
        // A fallback resend starts a new message: the old wamid's statuses are history.
        .col_expr(
            outbox::Column::DeliveryStatus,
            Expr::value(Option::<String>::None),
        )
        .col_expr(outbox::Column::DeliveryRank, Expr::value(0))
        .col_expr(outbox::Column::DeliveryAt, Expr::value(Option::<i64>::None))
        .col_expr(
            outbox::Column::DeliveryErrorCode,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(
            outbox::Column::DeliveryError,
            Expr::value(Option::<String>::None),
        )
        .filter(outbox::Column::Id.is_in(sent.iter().map(|(row, _, _)| row.id)))
        .exec(db)
        .await?;
    let early = message_status::Entity::find()
        .filter(
            message_status::Column::Wamid
                .is_in(sent.iter().map(|(_, wamid, _)| (*wamid).to_owned())),
        )
        .all(db)
        .await?;
    for status in &early {
        apply_delivery(db, status).await?;
        // A 131047 that came before the send was recorded: the template fallback the ingest
        // would have queued had the row carried its wamid (it was lost before).
        if status.status == "failed"
            && status
                .error_code
                .is_some_and(|code| WINDOW_CLOSED_CODES.contains(&code))
        {
            queue_fallback(db, &status.wamid).await?;
        }
    }
    Ok(())
}

async fn write_attempt<C: ConnectionTrait>(
    db: &C,
    row: &outbox::Model,
    result: &AttemptResult,
    now: i64,
) -> Result<(), DbErr> {
    let counts = !matches!(
        result,
        AttemptResult::Deferred { .. } | AttemptResult::Skipped { .. }
    );
    let mut update = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Attempts,
            Expr::value(row.attempts + i32::from(counts)),
        )
        .col_expr(outbox::Column::UpdatedAt, Expr::value(now))
        .release_lease();
    let set_error = |u: sea_orm::UpdateMany<outbox::Entity>,
                     code: Option<i64>,
                     reason: Option<Reason>,
                     detail: &str| {
        u.col_expr(outbox::Column::ErrorCode, Expr::value(code))
            .col_expr(outbox::Column::Reason, Expr::value(reason))
            .col_expr(outbox::Column::LastError, Expr::value(detail.to_owned()))
    };
    let new_state = match result {
        AttemptResult::Sent { wamid, sent_as } => {
            return write_sent(db, &[(row, wamid.as_str(), *sent_as)], now).await;
        }
        AttemptResult::Retry {
            next_attempt_at,
            code,
            reason,
        } => {
            update = set_error(update, *code, None, reason)
                .col_expr(outbox::Column::NextAttemptAt, Expr::value(*next_attempt_at));
            State::Queued
        }
        AttemptResult::Fallback { code, reason } => {
            update = set_error(update, *code, None, reason)
                .col_expr(outbox::Column::Fallback, Expr::value(true))
                .col_expr(outbox::Column::NextAttemptAt, Expr::value(now));
            State::Queued
        }
        AttemptResult::Failed {
            code,
            reason,
            detail,
        } => {
            update = set_error(update, *code, Some(*reason), detail);
            State::Failed
        }
        AttemptResult::Dead { code, reason } => {
            update = set_error(update, *code, Some(Reason::AttemptsExhausted), reason);
            State::Dead
        }
        AttemptResult::Skipped { reason, detail } => {
            update = set_error(update, None, Some(*reason), detail);
            State::Skipped
        }
        AttemptResult::Deferred { next_attempt_at } => {
            update = update.col_expr(outbox::Column::NextAttemptAt, Expr::value(*next_attempt_at));
            State::Queued
        }
        // The attempt that reached Meta is counted here, as its sender never recorded it.
        AttemptResult::Confirmed => State::Sent,
    };
    // `taken_by_meta` in SQL: the row took the wamid from a status webhook while this attempt
    // was in flight, so Meta took an earlier or this very send, whatever this attempt ended
    // with.
    let taken = || {
        Expr::col(outbox::Column::Wamid)
            .is_not_null()
            .and(Expr::col(outbox::Column::Fallback).eq(false))
    };
    sent_if(update, taken, Expr::value(new_state), now)
        .filter(outbox::Column::Id.eq(row.id))
        .exec(db)
        .await?;
    Ok(())
}

/// Results recorded per transaction at most.
const MAX_RECORD_BATCH: usize = 128;

type RecordJob = (
    outbox::Model,
    AttemptResult,
    tokio::sync::oneshot::Sender<Result<(), DbErr>>,
);

/// Group commit of send results: the results that finish while a batch is being written go
/// into the next one, in a single transaction, instead of one transaction per send (each a
/// turn of SQLite's write gate). A failed batch is written again row by row. Cheap to clone;
/// its task ends with the last clone.
#[derive(Clone)]
pub struct ResultRecorder {
    tx: tokio::sync::mpsc::UnboundedSender<RecordJob>,
}

impl ResultRecorder {
    /// Starts the writer task on the current runtime.
    pub fn start(db: DatabaseConnection) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RecordJob>();
        let writer = db.clone();
        crate::store::spawn_writer(&writer, async move {
            let mut batch = Vec::with_capacity(MAX_RECORD_BATCH);
            while rx.recv_many(&mut batch, MAX_RECORD_BATCH).await > 0 {
                let all: Vec<_> = batch.iter().map(|(row, result, _)| (row, result)).collect();
                match record_attempts(&db, &all).await {
                    Ok(()) => {
                        for (_, _, done) in batch.drain(..) {
                            let _ = done.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, rows = batch.len(), "send results not recorded together; recording them one by one while their leases last");
                        for (row, result, done) in batch.drain(..) {
                            let recorded = record_attempt_while_leased(&db, &row, &result).await;
                            let _ = done.send(recorded);
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Records `result` on `row` (with whatever else is waiting) and releases its lease.
    ///
    /// # Errors
    /// Database errors; the row's lease then expires and it is tried again.
    pub async fn record(&self, row: outbox::Model, result: AttemptResult) -> Result<(), DbErr> {
        let (done, recorded) = tokio::sync::oneshot::channel();
        self.tx
            .send((row, result, done))
            .map_err(|_| DbErr::Custom("the result recorder has stopped".to_owned()))?;
        recorded
            .await
            .map_err(|_| DbErr::Custom("the result recorder has stopped".to_owned()))?
    }
}

/// How long before a lease ends this process stops retrying work on the leased rows, so that
/// nothing it does lands after another sender has taken them over.
const LEASE_MARGIN_MS: i64 = 5_000;

/// Runs `op` until it succeeds, pausing 100 ms (doubling up to 2 s) between tries, as long as
/// the next try would start before `give_up_at` (Unix ms); then returns its last error. For
/// work on rows this process has leased: their lease, not the outage, says how long to try.
async fn retry_while_leased<T, F, Fut>(give_up_at: i64, what: &str, mut op: F) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let next_try_at = now_ms() + i64::try_from(pause.as_millis()).unwrap_or(i64::MAX);
        if next_try_at > give_up_at {
            return Err(error);
        }
        tracing::warn!(error = %error, "{what} failed; retrying while the lease lasts");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// [`record_attempt`], retried while the database is unavailable and the row's lease (taken by
/// [`claim_due`]) has time left. Without the retries, a result lost to a short outage
/// (PostgreSQL restarting or failing over, SQLite locked by another process) would leave the
/// row leased until expiry: the contact's next replies would wait 30 s behind it, and a message
/// that had gone out would be sent a second time.
///
/// # Errors
/// The last database error, once the lease is about to end; the row then goes out again after
/// the lease (a counted duplicate when the send had succeeded).
pub async fn record_attempt_while_leased(
    db: &DatabaseConnection,
    row: &outbox::Model,
    result: &AttemptResult,
) -> Result<(), DbErr> {
    let give_up_at = row.lease_until.unwrap_or_default() - LEASE_MARGIN_MS;
    retry_while_leased(give_up_at, "recording a send result", || {
        record_attempt(db, row, result)
    })
    .await
}

/// Moves the outbox row that sent `status.wamid` to this delivery status unless it already
/// has one at least as far along (statuses arrive out of order and repeat). Returns whether a
/// row changed; `false` also when no row has the wamid (yet, or a message sent elsewhere).
///
/// # Errors
/// Database errors.
pub async fn apply_delivery<C: ConnectionTrait>(
    db: &C,
    status: &message_status::Model,
) -> Result<bool, DbErr> {
    let error = match (&status.error_title, &status.error_details) {
        (Some(t), Some(d)) => Some(format!("{t}: {d}")),
        (t, d) => t.clone().or_else(|| d.clone()),
    };
    let result = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::DeliveryStatus,
            Expr::value(status.status.clone()),
        )
        .col_expr(outbox::Column::DeliveryRank, Expr::value(status.rank))
        .col_expr(outbox::Column::DeliveryAt, Expr::value(status.status_at))
        .col_expr(
            outbox::Column::DeliveryErrorCode,
            Expr::value(status.error_code),
        )
        .col_expr(outbox::Column::DeliveryError, Expr::value(error))
        .filter(outbox::Column::Wamid.eq(status.wamid.clone()))
        .filter(outbox::Column::DeliveryRank.lt(status.rank))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Sets the row's state to sent (and its sent time to `now`) where `sent` holds, else the
/// state to `otherwise` (and the sent time as it was).
fn sent_if(
    update: sea_orm::UpdateMany<outbox::Entity>,
    sent: impl Fn() -> Expr,
    otherwise: Expr,
    now: i64,
) -> sea_orm::UpdateMany<outbox::Entity> {
    update
        .col_expr(
            outbox::Column::State,
            Expr::case(sent(), Expr::value(State::Sent))
                .finally(otherwise)
                .into(),
        )
        .col_expr(
            outbox::Column::SentAt,
            Expr::case(sent(), Expr::value(now))
                .finally(Expr::col(outbox::Column::SentAt))
                .into(),
        )
}

/// The `biz_opaque_callback_data` a send of row `row_id` carries. Meta echoes it in the
/// message's status webhooks, which ties a status to its row even when the send's answer, and
/// with it the wamid, never came ([`confirm_unanswered`]).
pub fn callback_data(row_id: i64) -> String {
    format!("outbox:{row_id}")
}

/// The row that status callback data from [`callback_data`] names.
pub fn row_of_callback(data: &str) -> Option<i64> {
    data.strip_prefix("outbox:")?.parse().ok()
}

/// A status for `wamid`, which no row carries, that names row `row_id` ([`callback_data`]):
/// Meta took a send of that row whose answer has not been recorded yet, or never came (a
/// timeout). The row takes the wamid. A row waiting for its retry (not leased) is recorded sent
/// at once; one whose attempt is still in flight is recorded sent when the attempt ends,
/// however it ends ([`write_attempt`]), so a timed-out send that Meta took is not sent again.
/// Only a queued row without a wamid that is not a template fallback: a fallback's row still
/// carries its first message's wamid, whose statuses say nothing about the fallback. Returns
/// whether the row took the wamid.
///
/// # Errors
/// Database errors.
pub async fn confirm_unanswered<C: ConnectionTrait>(
    db: &C,
    row_id: i64,
    wamid: &str,
    now: i64,
) -> Result<bool, DbErr> {
    let waiting = || Expr::col(outbox::Column::LeaseOwner).is_null();
    let update = outbox::Entity::update_many()
        .col_expr(outbox::Column::Wamid, Expr::value(wamid.to_owned()))
        .col_expr(outbox::Column::UpdatedAt, Expr::value(now));
    let result = sent_if(update, waiting, Expr::col(outbox::Column::State), now)
        .filter(outbox::Column::Id.eq(row_id))
        .filter(outbox::Column::State.eq(State::Queued))
        .filter(outbox::Column::Wamid.is_null())
        .filter(outbox::Column::Fallback.eq(false))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Whether a queued row went out already: a status webhook gave it the wamid while an attempt
/// was in flight ([`confirm_unanswered`]). A template fallback's row still carries its first
/// message's wamid, which says nothing about the fallback. [`write_attempt`] asks the same in
/// SQL, for a status that comes while the row is being sent.
pub fn taken_by_meta(row: &outbox::Model) -> bool {
    row.wamid.is_some() && !row.fallback
}

/// After an asynchronous 131047 (a `failed` status), queues the free-form row that sent
/// `wamid` again for its template fallback, once, when it has a template. Returns whether it
/// did.
///
/// # Errors
/// Database errors.
pub async fn queue_fallback<C: ConnectionTrait>(db: &C, wamid: &str) -> Result<bool, DbErr> {
    let Some(row) = outbox::Entity::find()
        .filter(outbox::Column::Wamid.eq(wamid))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let has_template = crate::messaging::composer::StoredIntent::from_payload(&row.payload)
        .is_ok_and(|i| i.template.is_some());
    if row.fallback || row.sent_as.as_deref() != Some("free_form") || !has_template {
        return Ok(false);
    }
    let now = now_ms();
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::State, Expr::value(State::Queued))
        .col_expr(outbox::Column::Fallback, Expr::value(true))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(now))
        .col_expr(outbox::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            outbox::Column::LastError,
            Expr::value("131047 reported by a status webhook: sending the template fallback"),
        )
        .filter(outbox::Column::Id.eq(row.id))
        .filter(outbox::Column::Fallback.eq(false))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// One row by id.
///
/// # Errors
/// Database errors.
pub async fn get<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<outbox::Model>, DbErr> {
    outbox::Entity::find_by_id(id).one(db).await
}

/// Rows of one contact, oldest first (for the API, the console and tests).
///
/// # Errors
/// Database errors.
pub async fn for_contact<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::ContactId.eq(contact_id))
        .order_by_asc(outbox::Column::Id)
        .all(db)
        .await
}
