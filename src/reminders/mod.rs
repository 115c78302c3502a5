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
//! - time comes from a [`Clock`](crate::clock::Clock), so tests move it.
//!
//! # Layout
//! (The settings `[reminders]` and `[campaigns]` are in [`crate::config::reminders`]; the HTTP
//! API in [`crate::http::campaigns`]; the CLI in [`crate::cli::reminders`].)
//! - [`premium`]: the daily scan over premiums and the "remind me later" rows.
//! - [`campaigns`]: create (CSV or contact filter), start/pause/resume/cancel, the paced
//!   runner and [`campaigns::campaign_report`] (for the API, the CLI and the console).
//! - [`worker`]: the background task `serve` runs.

pub mod campaigns;
pub mod premium;
pub mod worker;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

pub use campaigns::campaign_report;

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
        state: crate::store::entities::campaign::State,
        action: &'static str,
    },
    /// The field of the request it is about (`template`, `audience.csv`), and the problem.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// Contacts just created for a batch's mobiles could not be read back; nothing of the
    /// batch was recorded, and the next run tries it again.
    #[error(
        "{0} contact(s) created for this batch could not be read back; the next run retries the batch"
    )]
    ContactsMissing(usize),
    /// The CSV audience has invalid rows; nothing was created.
    #[error("the audience has {} invalid row(s)", .0.len())]
    Rows(Vec<campaigns::RowError>),
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
                .and_where(campaign_recipient::Column::State.eq(campaign_recipient::State::Queued))
                .and_where(campaign_recipient::Column::QueuedAt.gt(now_ms - 3 * 86_400_000))
                .to_owned(),
        )
        .to_owned();
    let held = outbox::Entity::update_many()
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(quiet_end_ms))
        .filter(outbox::Column::State.eq(outbox::State::Queued))
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
