//! Business-initiated messages: premium reminders and campaigns (issue 8).
//!
//! Both only ever queue through [`crate::messaging::composer::queue`], so the 24-hour window,
//! the template registry and the consent gate (opt-out, marketing opt-in, frequency cap) decide
//! what may go, at queue time and again at send time. What this module adds is *when* and
//! *once*:
//!
//! - every message has a row with a unique key, written in the same transaction as its outbox
//!   row: `reminder_sends` (policy, due date, offset) and `campaign_recipients` (campaign,
//!   contact). A crash leaves both or neither; a restart, a second instance or a catch-up run
//!   finds the key taken and queues nothing;
//! - leases (`reminder_runs`, `campaigns.lease_*`) make one instance do the work at a time, so
//!   a campaign's rate holds across instances; they are an optimisation, the keys the guarantee;
//! - quiet hours: nothing is queued at night, and queued reminder and campaign rows still
//!   waiting in the outbox are held until morning ([`hold_for_quiet_hours`]);
//! - time comes from a [`Clock`], so tests move it.
//!
//! # Layout
//! - [`settings`]: `[reminders]` and `[campaigns]`.
//! - [`premium`]: the daily scan over premiums and the "remind me later" rows.
//! - [`campaigns`]: create (CSV or contact filter), start/pause/resume/cancel, the paced
//!   runner and [`campaigns::campaign_report`] (for the API, the CLI and the console).
//! - [`worker`]: the background task `serve` runs.
//! - [`api`]: `/api/v1/campaigns` (the CLI is `insurebot campaigns …` and
//!   `insurebot reminders run`).

pub mod api;
pub mod campaigns;
pub mod cli;
pub mod premium;
pub mod settings;
pub mod worker;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, NaiveTime, TimeZone, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

pub use campaigns::campaign_report;
pub use settings::{CampaignSettings, RemindersSettings};

use crate::messaging::composer::ComposeError;
use crate::store::entities::{campaign_recipient, outbox, reminder_send};

/// Failures of this layer (HTTP and CLI map them).
#[derive(Debug, thiserror::Error)]
pub enum ReminderError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error("campaign {0} does not exist")]
    UnknownCampaign(i64),
    #[error("campaign {id} is {state}: cannot {action}")]
    WrongState {
        id: i64,
        state: String,
        action: &'static str,
    },
    /// The field of the request it is about (`template`, `audience.csv`), and the problem.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// The CSV audience has invalid rows; nothing was created.
    #[error("the audience has {} invalid row(s)", .0.len())]
    Rows(Vec<campaigns::RowError>),
}

/// Where "now" comes from. Tests use [`ManualClock`] to move time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = at;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// Quiet hours in local time; `start > end` crosses midnight (21:00–09:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// Whether `t` (local) is quiet. `start == end` means no quiet hours.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// When the quiet hours around `now` end (Unix ms), or `None` when `now` is not quiet.
    pub fn end_after(&self, now: DateTime<Utc>, tz: FixedOffset) -> Option<i64> {
        let local = now.with_timezone(&tz);
        if !self.contains(local.time()) {
            return None;
        }
        let mut day = local.date_naive();
        if local.time() >= self.end {
            day = day.succ_opt()?;
        }
        let end = tz.from_local_datetime(&day.and_time(self.end)).single()?;
        Some(end.timestamp_millis())
    }
}

/// During quiet hours, holds every queued outbox row of a reminder or a campaign until they
/// end (`next_attempt_at` = the end), so a backlog queued in the evening does not go out at
/// night. Rows a sender has already leased are in flight and left alone. Returns how many rows
/// were held.
///
/// # Errors
/// Database errors.
pub async fn hold_for_quiet_hours<C: ConnectionTrait>(
    db: &C,
    quiet_end_ms: i64,
    now_ms: i64,
) -> Result<u64, DbErr> {
    let ours = Query::select()
        .column(reminder_send::Column::OutboxId)
        .from(reminder_send::Entity)
        .and_where(reminder_send::Column::OutboxId.is_not_null())
        .and_where(reminder_send::Column::CreatedAt.gt(now_ms - 3 * 86_400_000))
        .union(
            sea_orm::sea_query::UnionType::All,
            Query::select()
                .column(campaign_recipient::Column::OutboxId)
                .from(campaign_recipient::Entity)
                .and_where(campaign_recipient::Column::OutboxId.is_not_null())
                .and_where(campaign_recipient::Column::State.eq(campaigns::rstate::QUEUED))
                .and_where(campaign_recipient::Column::QueuedAt.gt(now_ms - 3 * 86_400_000))
                .to_owned(),
        )
        .to_owned();
    let held = outbox::Entity::update_many()
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(quiet_end_ms))
        .filter(outbox::Column::State.eq(crate::messaging::outbox::state::QUEUED))
        .filter(outbox::Column::NextAttemptAt.lt(quiet_end_ms))
        .filter(
            outbox::Column::LeaseUntil
                .is_null()
                .or(outbox::Column::LeaseUntil.lt(now_ms)),
        )
        .filter(Expr::col(outbox::Column::Id).in_subquery(ours))
        .exec(db)
        .await?;
    Ok(held.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_cross_midnight_and_end_in_the_morning() {
        let q = QuietHours {
            start: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        };
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(q.contains(t(21, 0)) && q.contains(t(23, 59)) && q.contains(t(0, 0)));
        assert!(q.contains(t(8, 59)) && !q.contains(t(9, 0)) && !q.contains(t(20, 59)));
        let ist = FixedOffset::east_opt(19_800).unwrap();
        // 22:00 IST on 1 Jan = 16:30 UTC; quiet until 09:00 IST on 2 Jan = 03:30 UTC.
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 16, 30, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2026, 1, 2, 3, 30, 0).unwrap();
        assert_eq!(q.end_after(now, ist), Some(end.timestamp_millis()));
        // 02:00 IST on 2 Jan: the same morning.
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 20, 30, 0).unwrap();
        assert_eq!(q.end_after(now, ist), Some(end.timestamp_millis()));
        let noon = Utc.with_ymd_and_hms(2026, 1, 2, 6, 30, 0).unwrap();
        assert_eq!(q.end_after(noon, ist), None);
    }
}
