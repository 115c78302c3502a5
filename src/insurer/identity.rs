//! Identity state of contacts: which policies a contact is verified for (and since when), and
//! failed date-of-birth checks with the lockout they lead to. Every function runs on the
//! caller's connection or transaction, so the dialogue runner's writes and these commit
//! together.

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use crate::store::entities::{identity_attempt, identity_verification};

/// How a contact proved it may see a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Its WhatsApp number is the one registered on the policy.
    RegisteredNumber,
    /// It answered the policy number and the holder's date of birth.
    Dob,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::RegisteredNumber => "registered_number",
            Method::Dob => "dob",
        }
    }
}

/// Policy numbers the contact is verified for at `now_ms`, sorted.
///
/// # Errors
/// Database errors.
pub async fn verified_policies<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Vec<String>, DbErr> {
    Ok(identity_verification::Entity::find()
        .filter(identity_verification::Column::ContactId.eq(contact_id))
        .filter(identity_verification::Column::VerifiedAt.gt(now_ms - ttl_ms))
        .filter(identity_verification::Column::VerifiedAt.lte(now_ms))
        .order_by_asc(identity_verification::Column::PolicyNumber)
        .all(db)
        .await?
        .into_iter()
        .map(|v| v.policy_number)
        .collect())
}

/// True when the contact is verified for `policy_number` at `now_ms`.
///
/// # Errors
/// Database errors.
pub async fn is_verified<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    policy_number: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool, DbErr> {
    Ok(identity_verification::Entity::find()
        .filter(identity_verification::Column::ContactId.eq(contact_id))
        .filter(identity_verification::Column::PolicyNumber.eq(policy_number))
        .filter(identity_verification::Column::VerifiedAt.gt(now_ms - ttl_ms))
        .filter(identity_verification::Column::VerifiedAt.lte(now_ms))
        .one(db)
        .await?
        .is_some())
}

/// Records (or renews) a verification.
///
/// # Errors
/// Database errors.
pub async fn record_verification<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    policy_number: &str,
    method: Method,
    now_ms: i64,
) -> Result<(), DbErr> {
    let row = identity_verification::ActiveModel {
        contact_id: Set(contact_id),
        policy_number: Set(policy_number.to_owned()),
        method: Set(method.as_str().to_owned()),
        verified_at: Set(now_ms),
    };
    identity_verification::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                identity_verification::Column::ContactId,
                identity_verification::Column::PolicyNumber,
            ])
            .update_columns([
                identity_verification::Column::Method,
                identity_verification::Column::VerifiedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Forgets every verification of the contact (e.g. when its session ends).
///
/// # Errors
/// Database errors.
pub async fn forget<C: ConnectionTrait>(db: &C, contact_id: i64) -> Result<(), DbErr> {
    identity_verification::Entity::delete_many()
        .filter(identity_verification::Column::ContactId.eq(contact_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Until when the contact is locked out, if it is at `now_ms`.
///
/// # Errors
/// Database errors.
pub async fn locked_until<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    now_ms: i64,
) -> Result<Option<i64>, DbErr> {
    Ok(identity_attempt::Entity::find_by_id(contact_id)
        .one(db)
        .await?
        .and_then(|a| a.locked_until)
        .filter(|until| *until > now_ms))
}

/// What one failed attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Still allowed to try; this many failures in a row so far.
    Counted(u32),
    /// This failure reached the limit: locked until the given time (ms).
    LockedOut(i64),
}

/// Counts a failed attempt; the `max`-th in a row locks the contact out for `lockout_ms` and
/// starts the count again (so the next lockout takes another `max` failures).
///
/// # Errors
/// Database errors.
pub async fn record_failure<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    now_ms: i64,
    max: u32,
    lockout_ms: i64,
) -> Result<Failure, DbErr> {
    let previous = identity_attempt::Entity::find_by_id(contact_id)
        .one(db)
        .await?
        .map_or(0, |a| u32::try_from(a.failed_count).unwrap_or(0));
    let failures = previous + 1;
    let (count, locked_until, outcome) = if failures >= max {
        let until = now_ms + lockout_ms;
        (0, Some(until), Failure::LockedOut(until))
    } else {
        (failures, None, Failure::Counted(failures))
    };
    upsert_attempts(db, contact_id, count, Some(now_ms), locked_until, now_ms).await?;
    Ok(outcome)
}

/// Clears the failure count after a success.
///
/// # Errors
/// Database errors.
pub async fn clear_failures<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    now_ms: i64,
) -> Result<(), DbErr> {
    identity_attempt::Entity::update_many()
        .col_expr(
            identity_attempt::Column::FailedCount,
            sea_orm::sea_query::Expr::value(0),
        )
        .col_expr(
            identity_attempt::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now_ms),
        )
        .filter(identity_attempt::Column::ContactId.eq(contact_id))
        .exec(db)
        .await?;
    Ok(())
}

async fn upsert_attempts<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    failed_count: u32,
    last_failed_at: Option<i64>,
    locked_until: Option<i64>,
    now_ms: i64,
) -> Result<(), DbErr> {
    let row = identity_attempt::ActiveModel {
        contact_id: Set(contact_id),
        failed_count: Set(i32::try_from(failed_count).unwrap_or(i32::MAX)),
        last_failed_at: Set(last_failed_at),
        locked_until: Set(locked_until),
        updated_at: Set(now_ms),
    };
    identity_attempt::Entity::insert(row)
        .on_conflict(
            OnConflict::column(identity_attempt::Column::ContactId)
                .update_columns([
                    identity_attempt::Column::FailedCount,
                    identity_attempt::Column::LastFailedAt,
                    identity_attempt::Column::LockedUntil,
                    identity_attempt::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}
