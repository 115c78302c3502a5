//! The business number's sending rate shared by every instance that sends from it, so that two
//! or three instances together stay within `messaging.rate_per_second` (each instance's own
//! [`pacing`](super::pacing) only knows its own requests: together they sent twice the rate,
//! and Meta answers 130429 and may lower the tier).
//!
//! Two stores, no new service required:
//! - **PostgreSQL** (the `rate_slots` table): a ring of `rate` rows per number. A request takes
//!   the row whose last start is at least a window old (`FOR UPDATE SKIP LOCKED`, so
//!   instances do not queue on each other's rows) and writes its own start there. Each row
//!   holds one start per window, so no window holds more than `rate` starts, whichever
//!   instances made them. One indexed UPDATE per request.
//! - **Redis** (`redis_url`): a sorted set of the last window's starts and a script that
//!   drops the old ones and adds the new one only while fewer than `rate` remain: one round
//!   trip per request.
//!
//! Both count time by the store's clock, one clock for every instance. The request starts
//! only when the take's answer is back, up to a round trip after the store wrote its start:
//! a take that took longer than a few milliseconds moves its recorded start later by the whole
//! round trip (after the fact, in the background: the slot cannot be taken again for a window
//! anyway), so a slow store makes the limit stricter, never looser. What is left, the time
//! between the answer and the arrival at Meta, the window's margin
//! (`messaging.rate_window_margin_ms`) covers as it does for one instance.
//!
//! When the store cannot be reached the request goes on under the instance's own limits
//! (logged): a store outage must not stop every reply, and Meta's 130429 is retried.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

/// The start time in microseconds by PostgreSQL's clock (`now()` would be the transaction's
/// start; each statement here is its own transaction anyway, but `clock_timestamp` says so).
const PG_NOW_US: &str = "(extract(epoch from clock_timestamp()) * 1000000)::bigint";

/// A take slower than this moves its recorded start later (see the module doc): a quarter of
/// the default window margin.
const SLOW_TAKE: Duration = Duration::from_millis(5);

/// Drops starts older than the window, then adds this one if fewer than the limit remain (0),
/// or answers how many microseconds until the oldest leaves the window.
const REDIS_TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
";

/// Where the instances of one deployment share the number's rate.
pub enum SharedBudget {
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

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Redis URL may hold a password: only the kind is shown.
        f.write_str(match self {
            SharedBudget::Postgres { .. } => "SharedBudget::Postgres",
            SharedBudget::Redis { .. } => "SharedBudget::Redis",
        })
    }
}

impl SharedBudget {
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
        Ok(SharedBudget::Postgres {
            db,
            number: number.to_owned(),
            limit,
            window_us: micros(window),
        })
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
        Ok(SharedBudget::Redis {
            conn,
            key: format!("insurebot:rate:{number}"),
            limit: limit.max(1),
            window_us: micros(window),
            script: redis::Script::new(REDIS_TAKE),
            member_prefix: uuid::Uuid::new_v4().simple().to_string(),
            seq: AtomicU64::new(0),
        })
    }

    /// Waits until one more request may start across all instances, and counts it.
    pub async fn ready(&self) {
        loop {
            let asked = tokio::time::Instant::now();
            match self.try_take().await {
                Ok(Taken::Started(slot)) => {
                    let round_trip = asked.elapsed();
                    if round_trip > SLOW_TAKE {
                        self.move_start_later(slot, round_trip);
                    }
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

    /// Moves the recorded start of a slow take later by `by` (see the module doc).
    fn move_start_later(&self, slot: Slot, by: Duration) {
        let by = micros(by);
        match (self, slot) {
            (SharedBudget::Postgres { db, number, .. }, Slot::Row(slot)) => {
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
            (SharedBudget::Redis { conn, key, .. }, Slot::Member(member)) => {
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

    /// Takes a start now (`None`), or says how long until one may be free.
    async fn try_take(&self) -> Result<Taken, String> {
        match self {
            SharedBudget::Postgres {
                db,
                number,
                limit,
                window_us,
            } => {
                let values = || {
                    [
                        number.clone().into(),
                        i32::try_from(*limit).unwrap_or(i32::MAX).into(),
                        (*window_us).into(),
                    ]
                };
                let taken = db
                    .query_one_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        format!(
                            "UPDATE rate_slots SET started_us = {PG_NOW_US} \
                             WHERE number = $1 AND slot = ( \
                               SELECT slot FROM rate_slots \
                               WHERE number = $1 AND slot < $2 AND started_us <= {PG_NOW_US} - $3 \
                               ORDER BY started_us LIMIT 1 FOR UPDATE SKIP LOCKED) \
                             RETURNING slot"
                        ),
                        values(),
                    ))
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(row) = taken {
                    let slot: i32 = row.try_get("", "slot").map_err(|e| e.to_string())?;
                    return Ok(Taken::Started(Slot::Row(slot)));
                }
                let wait = db
                    .query_one_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        format!(
                            "SELECT (min(started_us) + $3 - {PG_NOW_US})::bigint AS wait_us \
                             FROM rate_slots WHERE number = $1 AND slot < $2"
                        ),
                        values(),
                    ))
                    .await
                    .map_err(|e| e.to_string())?
                    .and_then(|row| row.try_get::<Option<i64>>("", "wait_us").ok().flatten())
                    .ok_or("the number has no rate slots")?;
                // Free but locked by another instance's take (wait ≤ 0): look again shortly.
                Ok(Taken::Wait(clamp_wait(wait, *window_us)))
            }
            SharedBudget::Redis {
                conn,
                key,
                limit,
                window_us,
                script,
                member_prefix,
                seq,
            } => {
                let member = format!("{member_prefix}-{}", seq.fetch_add(1, Ordering::Relaxed));
                let wait: i64 = script
                    .key(key)
                    .arg(*limit)
                    .arg(*window_us)
                    .arg(&member)
                    .invoke_async(&mut conn.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(if wait > 0 {
                    Taken::Wait(clamp_wait(wait, *window_us))
                } else {
                    Taken::Started(Slot::Member(member))
                })
            }
        }
    }
}

/// What a take got.
enum Taken {
    /// A start, recorded in `Slot`.
    Started(Slot),
    /// Nothing free: look again after this.
    Wait(Duration),
}

/// Where a take's start is recorded.
enum Slot {
    Row(i32),
    Member(String),
}

/// A wait of `us` microseconds, at least a millisecond (no busy loop) and at most a window.
fn clamp_wait(us: i64, window_us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us.clamp(1_000, window_us.max(1_000))).unwrap_or(1_000))
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
