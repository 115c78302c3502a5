//! The outbox table's queries: enqueue inside the caller's transaction, claim due rows with a
//! lease (so two instances never send the same row), and record each attempt's result.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::store::entities::outbox;
use crate::store::{begin_write, now_ms};
use crate::whatsapp::outbound::OutboundMessage;

/// Outbox row states.
pub mod state {
    pub const QUEUED: &str = "queued";
    pub const SENT: &str = "sent";
    /// A permanent error: the reason is kept on the row.
    pub const FAILED: &str = "failed";
    /// Every attempt failed with a temporary error: dead-lettered, never silently dropped.
    pub const DEAD: &str = "dead";
}

/// How long a claimed row stays leased to one sender.
const LEASE_MS: i64 = 60_000;

/// Queues `message` for `contact_id` in the caller's transaction; returns the row id.
///
/// # Errors
/// Database errors.
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    in_reply_to: Option<i64>,
    message: &OutboundMessage,
) -> Result<i64, DbErr> {
    let now = now_ms();
    let payload = serde_json::to_string(message).map_err(|e| DbErr::Custom(e.to_string()))?;
    let row = outbox::ActiveModel {
        id: NotSet,
        contact_id: Set(contact_id),
        in_reply_to: Set(in_reply_to),
        payload: Set(payload),
        state: Set(state::QUEUED.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_owner: Set(None),
        lease_until: Set(None),
        wamid: Set(None),
        error_code: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        sent_at: Set(None),
    };
    Ok(outbox::Entity::insert(row).exec(db).await?.last_insert_id)
}

/// Leases up to `limit` due rows, at most one per contact: the oldest queued row of each
/// contact, so a contact's messages go out in order and a row waiting for a retry holds back
/// the ones queued after it.
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
        .and_where(Expr::col((earlier.clone(), outbox::Column::State)).eq(state::QUEUED))
        .and_where(
            Expr::col((earlier, outbox::Column::Id))
                .lt(Expr::col((outbox::Entity, outbox::Column::Id))),
        )
        .to_owned();
    let candidates = outbox::Entity::find()
        .filter(outbox::Column::State.eq(state::QUEUED))
        .filter(outbox::Column::NextAttemptAt.lte(now))
        .filter(
            outbox::Column::LeaseUntil
                .is_null()
                .or(outbox::Column::LeaseUntil.lt(now)),
        )
        .filter(Expr::exists(earlier_queued).not())
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let txn = begin_write(db).await?;
    let mut claimed = Vec::with_capacity(candidates.len());
    for row in candidates {
        // Re-checked in the UPDATE: another instance may have leased it since the SELECT.
        let result = outbox::Entity::update_many()
            .col_expr(outbox::Column::LeaseOwner, Expr::value(owner.to_owned()))
            .col_expr(outbox::Column::LeaseUntil, Expr::value(now + LEASE_MS))
            .filter(outbox::Column::Id.eq(row.id))
            .filter(outbox::Column::State.eq(state::QUEUED))
            .filter(
                outbox::Column::LeaseUntil
                    .is_null()
                    .or(outbox::Column::LeaseUntil.lt(now)),
            )
            .exec(&txn)
            .await?;
        if result.rows_affected == 1 {
            claimed.push(row);
        }
    }
    txn.commit().await?;
    Ok(claimed)
}

/// What one send attempt ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Sent {
        wamid: String,
    },
    /// Try again at `next_attempt_at` (Unix ms).
    Retry {
        next_attempt_at: i64,
        code: Option<i64>,
        reason: String,
    },
    Failed {
        code: Option<i64>,
        reason: String,
    },
    Dead {
        code: Option<i64>,
        reason: String,
    },
}

/// Records an attempt's result on the row and releases the lease.
///
/// # Errors
/// Database errors.
pub async fn record_attempt(
    db: &DatabaseConnection,
    row: &outbox::Model,
    result: &AttemptResult,
) -> Result<(), DbErr> {
    let now = now_ms();
    let mut update = outbox::Entity::update_many()
        .col_expr(outbox::Column::Attempts, Expr::value(row.attempts + 1))
        .col_expr(outbox::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            outbox::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(outbox::Column::LeaseUntil, Expr::value(Option::<i64>::None));
    let (new_state, code, reason) = match result {
        AttemptResult::Sent { wamid } => {
            update = update
                .col_expr(outbox::Column::Wamid, Expr::value(wamid.clone()))
                .col_expr(outbox::Column::SentAt, Expr::value(now));
            (state::SENT, None, None)
        }
        AttemptResult::Retry {
            next_attempt_at,
            code,
            reason,
        } => {
            update = update.col_expr(outbox::Column::NextAttemptAt, Expr::value(*next_attempt_at));
            (state::QUEUED, *code, Some(reason))
        }
        AttemptResult::Failed { code, reason } => (state::FAILED, *code, Some(reason)),
        AttemptResult::Dead { code, reason } => (state::DEAD, *code, Some(reason)),
    };
    update = update.col_expr(outbox::Column::State, Expr::value(new_state));
    if let Some(reason) = reason {
        update = update
            .col_expr(outbox::Column::ErrorCode, Expr::value(code))
            .col_expr(outbox::Column::LastError, Expr::value(reason.clone()));
    }
    let txn = begin_write(db).await?;
    update
        .filter(outbox::Column::Id.eq(row.id))
        .exec(&txn)
        .await?;
    txn.commit().await
}

/// Rows of one contact, oldest first (for the API, the console and tests).
///
/// # Errors
/// Database errors.
pub async fn for_contact(
    db: &DatabaseConnection,
    contact_id: i64,
) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::ContactId.eq(contact_id))
        .order_by_asc(outbox::Column::Id)
        .all(db)
        .await
}
