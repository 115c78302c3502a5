//! The background task `serve` runs: the daily premium-reminder run, the "remind me later"
//! rows, the paced campaigns, and holding reminder and campaign rows during the quiet hours.
//! Every instance runs it; the leases and unique keys make the work happen once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::premium::{self, Reminders};
use super::{Clock, campaigns, hold_for_quiet_hours};

/// How often campaigns are topped up: small enough that a campaign's messages leave evenly.
const TICK: Duration = Duration::from_millis(100);
/// How often the reminder run is looked at (a finished day costs one query).
const REMINDER_EVERY: Duration = Duration::from_secs(30);

/// The worker's parts.
#[derive(Clone)]
pub struct Worker {
    pub db: DatabaseConnection,
    pub reminders: Reminders,
    pub clock: Arc<dyn Clock>,
    /// Wakes the sender after rows were queued.
    pub wake: Arc<Notify>,
}

/// A token bucket per campaign, in real time (the clock only decides *whether* to send).
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Worker {
    /// Runs until `stop` is cancelled. Errors are logged and retried on the next tick: the
    /// keys make a retry safe.
    pub async fn run(self, stop: CancellationToken) {
        let mut buckets: HashMap<i64, Bucket> = HashMap::new();
        let mut last_reminder_check: Option<Instant> = None;
        let mut finished_day: Option<NaiveDate> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(TICK) => {}
            }
            let now = self.clock.now();
            let settings = &self.reminders.settings;
            if let Some(end) = settings.quiet().end_after(now, settings.offset()) {
                // Nothing is queued at night; what waits in the outbox waits for morning.
                buckets.clear();
                if last_reminder_check.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_reminder_check = Some(Instant::now());
                    if let Err(e) =
                        hold_for_quiet_hours(&self.db, end, now.timestamp_millis()).await
                    {
                        tracing::warn!(error = %e, "cannot hold messages for the quiet hours");
                    }
                }
                continue;
            }
            if settings.enabled && last_reminder_check.is_none_or(|t| t.elapsed() >= REMINDER_EVERY)
            {
                last_reminder_check = Some(Instant::now());
                match premium::due_date_at(settings, now) {
                    Ok(today) if finished_day != Some(today) => {
                        match premium::run_day(&self.db, &self.reminders, today, now).await {
                            Ok(report) => {
                                if report.queued > 0 {
                                    self.wake.notify_one();
                                }
                                if !report.not_ours {
                                    finished_day = Some(today);
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "premium reminder run failed"),
                        }
                    }
                    Ok(today) => {
                        match premium::send_later(&self.db, &self.reminders, today, now).await {
                            Ok((q, _)) if q > 0 => self.wake.notify_one(),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "remind-later reminders failed"),
                        }
                    }
                    Err(_) => {}
                }
            }
            if let Err(e) = self.campaigns(&mut buckets, now.timestamp_millis()).await {
                tracing::warn!(error = %e, "campaign step failed");
            }
        }
    }

    async fn campaigns(
        &self,
        buckets: &mut HashMap<i64, Bucket>,
        now_ms: i64,
    ) -> Result<(), super::ReminderError> {
        let due = campaigns::due(&self.db, now_ms).await?;
        buckets.retain(|id, _| due.iter().any(|c| c.id == *id));
        for c in due {
            if !campaigns::lease(&self.db, c.id, &self.reminders.instance_id, now_ms).await? {
                buckets.remove(&c.id);
                continue;
            }
            let rate = f64::from(c.rate_per_second.max(1));
            let bucket = buckets.entry(c.id).or_insert(Bucket {
                tokens: 1.0,
                at: Instant::now(),
            });
            let t = Instant::now();
            // Up to two seconds of tokens, so a tick delayed by a busy database (SQLite's one
            // writer) is made up instead of lost; at most half a second's worth per tick, so
            // the catch-up is spread out (the sender's global rate stays the hard ceiling).
            bucket.tokens = (bucket.tokens + rate * t.duration_since(bucket.at).as_secs_f64())
                .min((2.0 * rate).max(1.0));
            bucket.at = t;
            let allowed = bucket.tokens.min((rate / 2.0).max(1.0)).floor() as u64;
            if allowed == 0 {
                continue;
            }
            let queued =
                campaigns::queue_next(&self.db, &self.reminders.composer, &c, allowed, now_ms)
                    .await?;
            bucket.tokens -= queued as f64;
            if queued > 0 {
                self.wake.notify_one();
            }
        }
        Ok(())
    }
}
