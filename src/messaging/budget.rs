//! The business number's sending rate shared by every instance that sends from it, so that two
//! or three instances together stay within `messaging.rate_per_second` (each instance's own
//! [`pacing`](super::pacing) only knows its own requests: together they sent twice the rate,
//! and Meta answers 130429 and may lower the tier).
//!
//! Two stores, no new service required:
//! - **PostgreSQL** (the `rate_slots` table): a ring of `rate` rows per number. A take claims
//!   the rows whose last start is at least a window old (`FOR UPDATE SKIP LOCKED`, so
//!   instances do not queue on each other's rows) and writes its own start there. Each row
//!   holds one start per window, so no window holds more than `rate` starts, whichever
//!   instances made them. One statement per take: it answers the rows it took, or, when none
//!   was free, how long until the oldest is.
//! - **Redis** (`redis_url`): a sorted set of the last window's starts and a script that
//!   drops the old ones and adds new ones only while fewer than `rate` remain: one round
//!   trip per take.
//!
//! Both count time by the store's clock, one clock for every instance.
//!
//! **One take at a time per instance.** The sends waiting for the budget queue on a fair lock;
//! only the first asks the store, for itself and (a few of) the ones queued behind it, and
//! when nothing is free it sleeps until the oldest start leaves the window, then asks again.
//! Every waiter asking on its own, they all woke together when the oldest start aged out, and
//! all but one asked in vain: dozens of statements per start, on the database the pipeline
//! needs, which made every take slow (see below).
//!
//! **A slow take records a later start.** The request starts when the take's answer is back,
//! after the store wrote its start: the time between (the answer's way back, this process's
//! scheduler) moves the recorded start later once it exceeds a few milliseconds (after the
//! fact, in the background: the slot cannot be taken again for a window anyway), so a slow
//! store makes the limit stricter, never looser. Not the whole round trip: the time before the
//! store wrote the start (waiting for a pooled connection, the way there) moves nothing, and
//! counting it cost a slot's worth of time on every slow take. The instance bounds the
//! store's clock against its own from each take: the store wrote its start after the take was
//! asked, so the store's clock is at most `start − asked` ahead; the tightest such bound of
//! the last second (plus a millisecond for clock drift) puts the answer's arrival on the
//! store's clock, late rather than early. What is left, the time between the answer and the
//! arrival at Meta, the window's margin (`messaging.rate_window_margin_ms`) covers as it does
//! for one instance.
//!
//! When the store cannot be reached the request goes on under the instance's own limits
//! (logged): a store outage must not stop every reply, and Meta's 130429 is retried.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio::time::Instant;

/// The start time in microseconds by PostgreSQL's clock (`now()` would be the transaction's
/// start; each statement here is its own transaction anyway, but `clock_timestamp` says so).
const PG_NOW_US: &str = "(extract(epoch from clock_timestamp()) * 1000000)::bigint";

/// A start recorded this long before its request really started is moved later (see the
/// module doc): a quarter of the default window margin.
const SLOW_TAKE: Duration = Duration::from_millis(5);

/// A start taken for a waiter that has not used it this long after the take was asked (it
/// gave up waiting) is left unused: one used later than this would be recorded too early to
/// move reliably before its slot could be taken again.
const SPARE_FOR: Duration = Duration::from_millis(100);

/// How long a bound of the store's clock is trusted before a new take's own bound replaces
/// it, and what the two clocks may drift apart meanwhile (500 ppm, an NTP slew at its fastest,
/// is half a millisecond a second).
const CLOCK_BOUND_FOR: Duration = Duration::from_secs(1);
const CLOCK_DRIFT_US: i64 = 1_000;

/// Takes a start for each of up to `ARGV[4]` members (`ARGV[3]:i`) while fewer than the limit
/// remain in the window: `{taken, now}`, or `{0, µs until the oldest leaves the window}`.
const REDIS_TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local free = limit - redis.call('ZCARD', KEYS[1])
local n = math.min(free, tonumber(ARGV[4]))
if n > 0 then
  for i = 1, n do
    redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. i)
  end
  redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
  return {n, now}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(oldest[2]) + window - now)}
";

/// Where the instances of one deployment share the number's rate.
pub struct SharedBudget {
    store: Store,
    /// The first waiter's place (a fair lock): the starts it took for the waiters behind it,
    /// and what it knows of the store's clock.
    head: tokio::sync::Mutex<Head>,
    /// Waiters queued behind the head: how many starts it asks for at once.
    queued: AtomicUsize,
    /// The most starts one take asks for: a tenth of the rate, so one instance does not take
    /// a whole window's starts at once, and at least one.
    batch: u32,
}

enum Store {
    Postgres {
        db: DatabaseConnection,
        number: String,
        limit: u32,
        window_us: i64,
    },
    Redis {
        conn: redis::aio::ConnectionManager,
        key: String,
        limit: u32,
        window_us: i64,
        script: redis::Script,
        /// Members of the sorted set must differ: this instance's prefix and a counter.
        member_prefix: String,
        seq: AtomicU64,
    },
}

/// What the head of the queue keeps between takes.
#[derive(Default)]
struct Head {
    /// Starts taken for the waiters behind the head, oldest first.
    spare: VecDeque<Start>,
    clock: ClockBound,
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Redis URL may hold a password: only the kind is shown.
        f.write_str(match self.store {
            Store::Postgres { .. } => "SharedBudget::Postgres",
            Store::Redis { .. } => "SharedBudget::Redis",
        })
    }
}

impl SharedBudget {
    fn new(store: Store, limit: u32) -> Self {
        SharedBudget {
            store,
            head: tokio::sync::Mutex::new(Head::default()),
            queued: AtomicUsize::new(0),
            batch: (limit / 10).max(1),
        }
    }

    /// The budget of `number` at `limit` requests per `window` in PostgreSQL; creates the
    /// number's slots that are missing (other instances may have created them).
    ///
    /// # Errors
    /// Database errors.
    pub async fn postgres(
        db: DatabaseConnection,
        number: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Self, DbErr> {
        let limit = limit.max(1);
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO rate_slots (number, slot, started_us) \
             SELECT $1, s, 0 FROM generate_series(0, $2 - 1) AS s ON CONFLICT DO NOTHING",
            [
                number.into(),
                i32::try_from(limit).unwrap_or(i32::MAX).into(),
            ],
        ))
        .await?;
        let store = Store::Postgres {
            db,
            number: number.to_owned(),
            limit,
            window_us: micros(window),
        };
        Ok(Self::new(store, limit))
    }

    /// The budget of `number` at `limit` requests per `window` in the Redis at `url`.
    ///
    /// # Errors
    /// When the URL is malformed or Redis cannot be reached.
    pub async fn redis(
        url: &str,
        number: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new(client).await?;
        let limit = limit.max(1);
        let store = Store::Redis {
            conn,
            key: format!("insurebot:rate:{number}"),
            limit,
            window_us: micros(window),
            script: redis::Script::new(REDIS_TAKE),
            member_prefix: uuid::Uuid::new_v4().simple().to_string(),
            seq: AtomicU64::new(0),
        };
        Ok(Self::new(store, limit))
    }

    /// Waits until one more request may start across all instances, and counts it.
    pub async fn ready(&self) {
        let queued = Queued::enter(&self.queued);
        let mut head = self.head.lock().await;
        drop(queued);
        let head = &mut *head;
        while let Some(start) = head.spare.pop_front() {
            // Older: its waiter gave up (a cancelled send), and the start goes unused.
            if start.asked.elapsed() < SPARE_FOR {
                self.started(&mut head.clock, start);
                return;
            }
        }
        loop {
            let want = u32::try_from(self.queued.load(Ordering::SeqCst))
                .unwrap_or(u32::MAX)
                .saturating_add(1)
                .min(self.batch);
            let asked = Instant::now();
            match self.store.try_take(want).await {
                Ok(Taken::Started(stamps)) => {
                    let mut starts = stamps.into_iter().map(|(slot, stamp_us)| Start {
                        slot,
                        stamp_us,
                        asked,
                    });
                    let Some(first) = starts.next() else {
                        continue;
                    };
                    head.spare.extend(starts);
                    self.started(&mut head.clock, first);
                    return;
                }
                Ok(Taken::Wait(wait)) => tokio::time::sleep(wait).await,
                Err(e) => {
                    tracing::warn!(error = %e, "the shared rate budget cannot be reached: this request goes under the instance's own limit");
                    return;
                }
            }
        }
    }

    /// The request of `start` starts now: moves its recorded start later if it was recorded
    /// too early (see the module doc).
    fn started(&self, clock: &mut ClockBound, start: Start) {
        let late = clock.late_by(start.asked, Instant::now(), start.stamp_us);
        if late > SLOW_TAKE {
            self.store.move_start_later(start.slot, late);
        }
    }
}

impl Store {
    /// Moves the recorded start of a slow take later by `by` (see the module doc).
    fn move_start_later(&self, slot: Slot, by: Duration) {
        let by = micros(by);
        match (self, slot) {
            (Store::Postgres { db, number, .. }, Slot::Row(slot)) => {
                let (db, number) = (db.clone(), number.clone());
                tokio::spawn(async move {
                    let moved = db
                        .execute_raw(Statement::from_sql_and_values(
                            DbBackend::Postgres,
                            "UPDATE rate_slots SET started_us = started_us + $3 \
                             WHERE number = $1 AND slot = $2",
                            [number.into(), slot.into(), by.into()],
                        ))
                        .await;
                    if let Err(e) = moved {
                        tracing::debug!(error = %e, "could not move a slow take's start");
                    }
                });
            }
            (Store::Redis { conn, key, .. }, Slot::Member(member)) => {
                let (mut conn, key) = (conn.clone(), key.clone());
                tokio::spawn(async move {
                    let moved: Result<f64, _> = redis::cmd("ZINCRBY")
                        .arg(&key)
                        .arg(by)
                        .arg(&member)
                        .query_async(&mut conn)
                        .await;
                    if let Err(e) = moved {
                        tracing::debug!(error = %e, "could not move a slow take's start");
                    }
                });
            }
            _ => {}
        }
    }

    /// Takes up to `want` starts now, or says how long until one may be free.
    async fn try_take(&self, want: u32) -> Result<Taken, String> {
        match self {
            Store::Postgres {
                db,
                number,
                limit,
                window_us,
            } => {
                // `= ANY(ARRAY(..))`: the free rows are chosen (and locked) once, not per row
                // of the UPDATE. The second part answers only when nothing was taken; it reads
                // the table as it was before this statement's UPDATE, which does not matter
                // then. A free row locked by another instance's take gives a wait ≤ 0: look
                // again shortly.
                let rows = db
                    .query_all_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        format!(
                            "WITH taken AS ( \
                               UPDATE rate_slots SET started_us = {PG_NOW_US} \
                               WHERE number = $1 AND slot = ANY(ARRAY( \
                                 SELECT slot FROM rate_slots \
                                 WHERE number = $1 AND slot < $2 \
                                   AND started_us <= {PG_NOW_US} - $3 \
                                 ORDER BY started_us LIMIT $4 FOR UPDATE SKIP LOCKED)) \
                               RETURNING slot, started_us) \
                             SELECT slot, started_us, NULL::bigint AS wait_us FROM taken \
                             UNION ALL \
                             SELECT NULL, NULL, (min(started_us) + $3 - {PG_NOW_US})::bigint \
                             FROM rate_slots WHERE number = $1 AND slot < $2 \
                               AND NOT EXISTS (SELECT 1 FROM taken)"
                        ),
                        [
                            number.clone().into(),
                            i32::try_from(*limit).unwrap_or(i32::MAX).into(),
                            (*window_us).into(),
                            i64::from(want.max(1)).into(),
                        ],
                    ))
                    .await
                    .map_err(|e| e.to_string())?;
                let mut started = Vec::new();
                let mut wait = None;
                for row in rows {
                    let slot: Option<i32> = row.try_get("", "slot").map_err(|e| e.to_string())?;
                    match slot {
                        Some(slot) => {
                            let stamp: i64 =
                                row.try_get("", "started_us").map_err(|e| e.to_string())?;
                            started.push((Slot::Row(slot), stamp));
                        }
                        None => wait = row.try_get::<Option<i64>>("", "wait_us").ok().flatten(),
                    }
                }
                if !started.is_empty() {
                    return Ok(Taken::Started(started));
                }
                let wait = wait.ok_or("the number has no rate slots")?;
                Ok(Taken::Wait(clamp_wait(wait, *window_us)))
            }
            Store::Redis {
                conn,
                key,
                limit,
                window_us,
                script,
                member_prefix,
                seq,
            } => {
                let member = format!("{member_prefix}-{}", seq.fetch_add(1, Ordering::Relaxed));
                let (taken, value): (i64, i64) = script
                    .key(key)
                    .arg(*limit)
                    .arg(*window_us)
                    .arg(&member)
                    .arg(want.max(1))
                    .invoke_async(&mut conn.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(if taken > 0 {
                    Taken::Started(
                        (1..=taken)
                            .map(|i| (Slot::Member(format!("{member}:{i}")), value))
                            .collect(),
                    )
                } else {
                    Taken::Wait(clamp_wait(value, *window_us))
                })
            }
        }
    }
}

/// A waiter counted in [`SharedBudget::queued`] until it reaches the head or gives up.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Queued(count)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a take got.
enum Taken {
    /// Starts, each recorded in its `Slot` at its time by the store's clock (µs).
    Started(Vec<(Slot, i64)>),
    /// Nothing free: look again after this.
    Wait(Duration),
}

/// Where a take's start is recorded.
enum Slot {
    Row(i32),
    Member(String),
}

/// A start taken from the store, not yet used.
struct Start {
    slot: Slot,
    /// The start the store recorded, by its clock (µs).
    stamp_us: i64,
    /// When this instance asked for it.
    asked: Instant,
}

/// An upper bound of how far the store's clock is ahead of this instance's (µs): each take
/// gives one (the store recorded its start after the take was asked), and the tightest of the
/// last [`CLOCK_BOUND_FOR`] is kept. Pure, so it is tested on its own.
#[derive(Debug)]
struct ClockBound {
    /// This instance's clock is counted from here.
    base: Instant,
    /// The bound, and when it was made.
    best: Option<(i64, Instant)>,
}

impl Default for ClockBound {
    fn default() -> Self {
        ClockBound {
            base: Instant::now(),
            best: None,
        }
    }
}

impl ClockBound {
    /// How long after its recorded start `stamp_us` (store's clock) a request asked for at
    /// `asked` really starts at `now` (this instance's clock): never less than the truth,
    /// never more than `now − asked` and the drift allowance.
    fn late_by(&mut self, asked: Instant, now: Instant, stamp_us: i64) -> Duration {
        let local_us = |t: Instant| micros(t.saturating_duration_since(self.base));
        let bound = stamp_us - local_us(asked);
        let best = match self.best {
            Some((best, made))
                if best <= bound && now.saturating_duration_since(made) < CLOCK_BOUND_FOR =>
            {
                best
            }
            _ => {
                self.best = Some((bound, now));
                bound
            }
        };
        let late_us = local_us(now) + best + CLOCK_DRIFT_US - stamp_us;
        Duration::from_micros(u64::try_from(late_us).unwrap_or(0))
    }
}

/// A wait of `us` microseconds, at least a millisecond (no busy loop) and at most a window.
fn clamp_wait(us: i64, window_us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us.clamp(1_000, window_us.max(1_000))).unwrap_or(1_000))
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose clock is `offset_us` ahead of this instance's, seen from a take asked at
    /// `asked_ms`, recorded by the store at `stamped_ms` and used at `used_ms` (this instance's
    /// milliseconds from `base`): what `late_by` says, and the truth.
    fn take(
        clock: &mut ClockBound,
        offset_us: i64,
        (asked_ms, stamped_ms, used_ms): (u64, u64, u64),
    ) -> (Duration, Duration) {
        let at = |ms: u64| clock.base + Duration::from_millis(ms);
        let stamp_us = i64::try_from(stamped_ms).unwrap() * 1000 + offset_us;
        let said = clock.late_by(at(asked_ms), at(used_ms), stamp_us);
        (said, Duration::from_millis(used_ms - stamped_ms))
    }

    #[test]
    fn a_start_is_never_moved_by_less_than_it_was_late_nor_by_more_than_the_round_trip() {
        // Whatever the clocks' offset and however the round trip splits around the stamp.
        for offset_us in [-5_000_000, -1_500, 0, 700, 3_000_000] {
            let mut c = ClockBound::default();
            for (asked, stamped, used) in [
                (0, 1, 2),
                (10, 10, 10),
                (20, 60, 61),
                (100, 101, 180),
                (200, 240, 290),
                (300, 300, 301),
            ] {
                let (said, truth) = take(&mut c, offset_us, (asked, stamped, used));
                let round_trip = Duration::from_millis(used - asked);
                assert!(
                    said >= truth,
                    "{offset_us}: {asked}/{stamped}/{used}: {said:?}"
                );
                assert!(
                    said <= round_trip + Duration::from_micros(CLOCK_DRIFT_US as u64),
                    "{offset_us}: {asked}/{stamped}/{used}: {said:?}"
                );
            }
        }
    }

    #[test]
    fn a_take_that_waited_before_the_store_recorded_it_is_not_counted_late() {
        // A quick take bounds the clocks; then a take that waited 80 ms for a pooled
        // connection, recorded 1 ms before its answer came back: late by about 1 ms (under
        // SLOW_TAKE, so nothing moves), not by the 81 ms round trip.
        let mut c = ClockBound::default();
        take(&mut c, 42_000, (0, 0, 1));
        let (said, truth) = take(&mut c, 42_000, (10, 90, 91));
        assert_eq!(truth, Duration::from_millis(1));
        assert!(said < SLOW_TAKE, "{said:?}");
    }

    #[test]
    fn an_old_bound_of_the_clocks_is_replaced_by_a_looser_new_one() {
        // Past CLOCK_BOUND_FOR the clocks may have drifted: a tight old bound is not trusted,
        // the take's own (looser, so the start moves further) is.
        let mut c = ClockBound::default();
        take(&mut c, 0, (0, 0, 0));
        let (said, _) = take(&mut c, 0, (2_000, 2_030, 2_031));
        assert!(said >= Duration::from_millis(31), "{said:?}");
        // Within it, the tight bound stands.
        let (said, _) = take(&mut c, 0, (2_100, 2_100, 2_101));
        let (said_after, _) = take(&mut c, 0, (2_200, 2_230, 2_231));
        assert!(said <= Duration::from_millis(2), "{said:?}");
        assert!(said_after <= Duration::from_millis(2), "{said_after:?}");
    }

    #[test]
    fn a_wait_is_at_least_a_millisecond_and_at_most_a_window() {
        assert_eq!(clamp_wait(-5, 1_000_000), Duration::from_millis(1));
        assert_eq!(clamp_wait(250_000, 1_000_000), Duration::from_millis(250));
        assert_eq!(clamp_wait(9_000_000, 1_000_000), Duration::from_secs(1));
    }
}
