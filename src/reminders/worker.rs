//! The background task `serve` runs: the daily premium-reminder run, the "remind me later"
//! rows, the paced campaigns, and holding reminder and campaign rows during the quiet hours.
//! Every instance runs it; the leases and unique keys make the work happen once.
//!
//! Reminders and campaigns are two loops, so a long daily scan (seconds over a million
//! premiums) never stalls a campaign's pace.
//!
//! A campaign is paced against an absolute schedule ([`Pace`]): message `n` is due at
//! `start + n / rate`. The runner queues what is due, in batches of at most [`BATCH`] worth of
//! messages, and goes straight on while it is behind. Sleeping a fixed tick between batches
//! and adding what each tick allowed would lose every late wake-up and every batch's own
//! transaction time; against a fixed line, lateness only makes the next batch bigger.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::premium::{self, Reminders};
use super::{ReminderError, campaigns, hold_for_quiet_hours};
use crate::clock::Clock;

/// How often the loops look for work when nothing is owed (new or resumed campaigns, the
/// quiet hours).
const TICK: Duration = Duration::from_millis(100);
/// How long the campaign loop waits between batches while on schedule: at 500/s, batches of
/// about 25. Shorter means more transactions for the same messages; longer, burstier sends
/// (the sender spreads a batch at its own rate either way).
const STEP: Duration = Duration::from_millis(50);
/// The most one transaction queues, in time of the campaign's rate: a pause or a cancel takes
/// effect within it, and SQLite's one writer is not held for long.
const BATCH: Duration = Duration::from_millis(200);
/// How far a campaign may fall behind its schedule (a stalled database, a stopped process)
/// and still catch up; beyond it the schedule restarts, rather than a long backlog going out
/// at the sender's ceiling.
const MAX_BEHIND: Duration = Duration::from_secs(2);
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

/// Where one campaign is on its schedule in this instance, in real time (the clock only
/// decides *whether* to send: quiet hours, start times).
#[derive(Debug, Clone)]
struct Pace {
    /// Message 0 was due here.
    anchor: Instant,
    /// Messages queued since `anchor` (composer refusals use none of the rate).
    queued: u64,
    /// Messages per second.
    rate: f64,
    /// When this instance last took or renewed the campaign's lease.
    leased_at: Instant,
}

impl Pace {
    fn new(rate: u32, now: Instant) -> Self {
        Pace {
            anchor: now,
            queued: 0,
            rate: f64::from(rate.max(1)),
            leased_at: now,
        }
    }

    /// Messages due by `now` and not queued yet. A campaign more than [`MAX_BEHIND`] late
    /// restarts its schedule that far back: the time it lost beyond that is forgiven, not
    /// made up in a burst.
    fn owed(&mut self, now: Instant) -> u64 {
        let owed = self.due_by(now).saturating_sub(self.queued);
        let most = (MAX_BEHIND.as_secs_f64() * self.rate).ceil() as u64;
        if owed <= most {
            return owed;
        }
        self.anchor = now.checked_sub(MAX_BEHIND).unwrap_or(now);
        let due = self.due_by(now);
        self.queued = due.saturating_sub(most);
        due - self.queued
    }

    /// Message `n` is due at `anchor + n / rate`, so `floor(elapsed * rate) + 1` are due.
    fn due_by(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.anchor).as_secs_f64();
        (elapsed * self.rate).floor() as u64 + 1
    }

    /// The most one transaction queues at this rate.
    fn batch(&self) -> u64 {
        ((BATCH.as_secs_f64() * self.rate).ceil() as u64).max(1)
    }
}

impl Worker {
    /// Runs until `stop` is cancelled. Errors are logged and retried on the next round: the
    /// keys make a retry safe.
    pub async fn run(self, stop: CancellationToken) {
        tokio::join!(
            self.clone().reminder_loop(stop.clone()),
            self.campaign_loop(stop)
        );
    }

    /// The daily run, the "remind me later" rows, and holding queued rows at night.
    async fn reminder_loop(self, stop: CancellationToken) {
        let mut last_reminder_check: Option<Instant> = None;
        let mut last_hold: Option<Instant> = None;
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
                if last_hold.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_hold = Some(Instant::now());
                    if let Err(e) =
                        hold_for_quiet_hours(&self.db, end, now.timestamp_millis()).await
                    {
                        tracing::warn!(error = %e, "cannot hold messages for the quiet hours");
                    }
                }
                continue;
            }
            if !settings.enabled
                || last_reminder_check.is_some_and(|t| t.elapsed() < REMINDER_EVERY)
            {
                continue;
            }
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
    }

    /// The running campaigns, each on its [`Pace`].
    async fn campaign_loop(self, stop: CancellationToken) {
        let mut paces: HashMap<i64, Pace> = HashMap::new();
        let mut wait = TICK;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let now = self.clock.now();
            let settings = &self.reminders.settings;
            if settings.quiet().end_after(now, settings.offset()).is_some() {
                // A schedule resumes from the morning, not from the evening before.
                paces.clear();
                wait = TICK;
                continue;
            }
            wait = match self.campaigns(&mut paces, now.timestamp_millis()).await {
                Ok(Some(behind)) if behind => Duration::ZERO,
                Ok(Some(_)) => STEP,
                Ok(None) => TICK,
                Err(e) => {
                    tracing::warn!(error = %e, "campaign step failed");
                    TICK
                }
            };
        }
    }

    /// Queues what is due of every running campaign this instance holds. `None` when no
    /// campaign runs here; otherwise whether one is still behind its schedule (a batch took
    /// less than was owed, or the composer refused some of it).
    async fn campaigns(
        &self,
        paces: &mut HashMap<i64, Pace>,
        now_ms: i64,
    ) -> Result<Option<bool>, ReminderError> {
        // Renewing every third of the lease's life, not every round: on SQLite each renewal
        // is a write in the way of the sender's.
        let renew_after = Duration::from_millis(campaigns::LEASE_MS.unsigned_abs() / 3);
        let due = campaigns::due(&self.db, now_ms).await?;
        paces.retain(|id, _| due.iter().any(|c| c.id == *id));
        let mut ours = false;
        let mut behind = false;
        for c in due {
            let t = Instant::now();
            let leased = paces
                .get(&c.id)
                .is_some_and(|p| t.duration_since(p.leased_at) < renew_after);
            if !leased {
                if !campaigns::lease(&self.db, c.id, &self.reminders.instance_id, now_ms).await? {
                    paces.remove(&c.id);
                    continue;
                }
                let rate = u32::try_from(c.rate_per_second).unwrap_or(1);
                paces
                    .entry(c.id)
                    .or_insert_with(|| Pace::new(rate, t))
                    .leased_at = t;
            }
            let Some(pace) = paces.get_mut(&c.id) else {
                continue;
            };
            ours = true;
            let owed = pace.owed(t);
            let queued = campaigns::queue_next(
                &self.db,
                &self.reminders.composer,
                &c,
                owed.min(pace.batch()),
                now_ms,
            )
            .await? as u64;
            pace.queued += queued;
            if queued > 0 {
                self.wake.notify_one();
            }
            behind |= owed > queued;
        }
        Ok(ours.then_some(behind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_absolute_so_late_wake_ups_and_slow_batches_do_not_add_up() {
        let start = Instant::now();
        let mut pace = Pace::new(500, start);
        assert_eq!(pace.owed(start), 1, "the first message is due at once");
        // 60 s of rounds that each wake 0-40 ms late and spend 0-60 ms queueing, a batch at
        // most: the per-round losses of a tick-based pacer, here with nothing lost.
        let mut t = start;
        let mut last = start;
        let mut late = 0u64;
        while t < start + Duration::from_secs(60) {
            let owed = pace.owed(t);
            pace.queued += owed.min(pace.batch());
            last = t;
            late = (late * 7 + 13) % 41;
            t += STEP + Duration::from_millis(late + (late * 3) % 61);
        }
        // Everything due by the last round went, i.e. 500/s from the first message on.
        assert_eq!(pace.queued, pace.due_by(last));
        let secs = last.duration_since(start).as_secs_f64();
        assert_eq!(pace.queued, (secs * 500.0).floor() as u64 + 1);
    }

    #[test]
    fn a_stall_longer_than_the_catch_up_limit_is_forgiven_not_sent_in_a_burst() {
        let start = Instant::now();
        let mut pace = Pace::new(100, start);
        pace.queued = pace.owed(start);
        // One second late: all of it is still owed.
        assert_eq!(pace.owed(start + Duration::from_secs(1)), 100);
        // Ten seconds late: two seconds' worth, and the schedule goes on from there.
        let later = start + Duration::from_secs(10);
        assert_eq!(pace.owed(later), 200);
        pace.queued += 200;
        assert_eq!(pace.owed(later + Duration::from_millis(500)), 50);
    }

    #[test]
    fn a_batch_is_a_fifth_of_a_second_of_the_rate_and_never_empty() {
        let now = Instant::now();
        assert_eq!(Pace::new(500, now).batch(), 100);
        assert_eq!(Pace::new(1, now).batch(), 1);
        assert_eq!(
            Pace::new(0, now).batch(),
            1,
            "a zero rate is treated as 1/s"
        );
    }
}
