//! Identity state of contacts: which policies a contact is verified for (and since when), and
//! failed date-of-birth and one-time-password checks with the lockouts they lead to, counted twice: per contact, and
//! per policy number whichever contacts the guesses come from (one WhatsApp number per guess
//! would otherwise get around the first). Lockouts that follow one another last longer
//! ([`LockoutRules`]). Every function runs on the caller's connection or transaction, so the
//! dialogue runner's writes and these commit together.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder,
};

use crate::config::InsurerSettings;
use crate::store::entities::{identity_attempt, identity_policy_attempt, identity_verification};

/// How a contact proved it may see a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Its WhatsApp number is the one registered on the policy.
    RegisteredNumber,
    /// It answered the policy number and the holder's date of birth.
    Dob,
    /// It typed the one-time password sent to the mobile registered on the policy.
    Otp,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::RegisteredNumber => "registered_number",
            Method::Dob => "dob",
            Method::Otp => "otp",
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

/// How failures lead to lockouts and how lockouts escalate (from `[insurer]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutRules {
    /// Failures in a row that lock.
    pub max_failures: u32,
    /// How long the first lockout of a series lasts, then the next ones (the last repeating),
    /// in ms. Never empty.
    pub steps_ms: Vec<i64>,
    /// A lockout that ended longer ago than this ends its series, and failures further apart
    /// than this are not in a row (ms).
    pub reset_ms: i64,
}

fn minutes_ms(minutes: u64) -> i64 {
    i64::try_from(minutes)
        .unwrap_or(i64::MAX)
        .saturating_mul(60_000)
}

impl LockoutRules {
    /// The rules per contact (`max_failed_attempts`).
    pub fn per_contact(settings: &InsurerSettings) -> Self {
        Self::with_max(settings, settings.max_failed_attempts)
    }

    /// The rules per policy number (`max_failed_attempts_per_policy`).
    pub fn per_policy(settings: &InsurerSettings) -> Self {
        Self::with_max(settings, settings.max_failed_attempts_per_policy)
    }

    fn with_max(settings: &InsurerSettings, max_failures: u32) -> Self {
        let steps_ms = std::iter::once(settings.lockout_minutes)
            .chain(settings.repeat_lockout_minutes.iter().copied())
            .map(minutes_ms)
            .collect();
        Self {
            max_failures: max_failures.max(1),
            steps_ms,
            reset_ms: minutes_ms(settings.lockout_reset_hours.saturating_mul(60)),
        }
    }

    /// The lockout starting at `now_ms` after `previous` lockouts of which the last ends (or
    /// ended) at `last_until`: its number in the series and its end.
    fn next_lockout(&self, previous: i32, last_until: Option<i64>, now_ms: i64) -> (i32, i64) {
        let series_goes_on =
            previous > 0 && last_until.is_some_and(|until| now_ms - until < self.reset_ms);
        let number = if series_goes_on {
            previous.saturating_add(1)
        } else {
            1
        };
        let step = usize::try_from(number - 1).unwrap_or(0);
        let duration = self
            .steps_ms
            .get(step)
            .or(self.steps_ms.last())
            .copied()
            .unwrap_or(30 * 60_000);
        (number, now_ms.saturating_add(duration))
    }

    /// Whether failures up to `last_failed_at` still count as in a row at `now_ms`.
    fn still_in_a_row(&self, last_failed_at: Option<i64>, now_ms: i64) -> bool {
        last_failed_at.is_some_and(|at| now_ms - at < self.reset_ms)
    }
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

/// Counts a failed attempt of the contact; the `max_failures`-th in a row locks it out for
/// the next step of its series of lockouts and starts the count again (so the next lockout
/// takes another `max_failures` failures). The dialogue runner handles one contact at a time,
/// so a read and a write suffice here (policies, shared by contacts, see
/// [`reserve_policy_check`]).
///
/// # Errors
/// Database errors.
pub async fn record_failure<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    now_ms: i64,
    rules: &LockoutRules,
) -> Result<Failure, DbErr> {
    let row = identity_attempt::Entity::find_by_id(contact_id)
        .one(db)
        .await?;
    let previous = row
        .as_ref()
        .filter(|a| rules.still_in_a_row(a.last_failed_at, now_ms))
        .map_or(0, |a| u32::try_from(a.failed_count).unwrap_or(0));
    let (lockouts, last_until) = row
        .as_ref()
        .map_or((0, None), |a| (a.lockouts, a.locked_until));
    let failures = previous + 1;
    let (count, lockouts, locked_until, outcome) = if failures >= rules.max_failures {
        let (number, until) = rules.next_lockout(lockouts, last_until, now_ms);
        (0, number, Some(until), Failure::LockedOut(until))
    } else {
        // The last lockout's end stays: the next lockout's length depends on it.
        (failures, lockouts, last_until, Failure::Counted(failures))
    };
    let row = identity_attempt::ActiveModel {
        contact_id: Set(contact_id),
        failed_count: Set(i32::try_from(count).unwrap_or(i32::MAX)),
        last_failed_at: Set(Some(now_ms)),
        locked_until: Set(locked_until),
        lockouts: Set(lockouts),
        updated_at: Set(now_ms),
    };
    identity_attempt::Entity::insert(row)
        .on_conflict(
            OnConflict::column(identity_attempt::Column::ContactId)
                .update_columns([
                    identity_attempt::Column::FailedCount,
                    identity_attempt::Column::LastFailedAt,
                    identity_attempt::Column::LockedUntil,
                    identity_attempt::Column::Lockouts,
                    identity_attempt::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(outcome)
}

/// Clears the contact's failure count after a success (its series of lockouts ends only with
/// time: a success between guesses must not make the next lockout short again).
///
/// # Errors
/// Database errors.
pub async fn clear_failures<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    now_ms: i64,
) -> Result<(), DbErr> {
    identity_attempt::Entity::update_many()
        .col_expr(identity_attempt::Column::FailedCount, Expr::value(0))
        .col_expr(identity_attempt::Column::UpdatedAt, Expr::value(now_ms))
        .filter(identity_attempt::Column::ContactId.eq(contact_id))
        .exec(db)
        .await?;
    Ok(())
}

/// A date-of-birth check against a policy number, counted before it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyCheck {
    /// The check may be made; it is the `n`-th in a row (failures and checks under way).
    Reserved { policy_number: String, n: u32 },
    /// The policy's verification by date of birth is locked until then (ms), or the checks
    /// allowed before a lockout are all under way.
    Locked(i64),
}

/// Counts a check against `policy_number` before it is made, in one conditional UPDATE, so
/// however many contacts try at once (on any instance) at most `max_failures` checks are made
/// before the lockout: each reserves a place in the count, and once they are all taken the
/// policy answers locked. Settle every reservation with [`settle_policy_check`]; one never
/// settled (a crash) counts as a failure until the count is reset.
///
/// # Errors
/// Database errors.
pub async fn reserve_policy_check<C: ConnectionTrait>(
    db: &C,
    policy_number: &str,
    now_ms: i64,
    rules: &LockoutRules,
) -> Result<PolicyCheck, DbErr> {
    use identity_policy_attempt::{Column, Entity};
    use sea_orm::sea_query::ExprTrait;
    let row = identity_policy_attempt::ActiveModel {
        policy_number: Set(policy_number.to_owned()),
        failed_count: Set(0),
        last_failed_at: Set(None),
        locked_until: Set(None),
        lockouts: Set(0),
        updated_at: Set(now_ms),
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::column(Column::PolicyNumber)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    let not_locked = Condition::any()
        .add(Column::LockedUntil.is_null())
        .add(Column::LockedUntil.lte(now_ms));
    // Failures too far apart are not in a row: start again from zero.
    Entity::update_many()
        .col_expr(Column::FailedCount, Expr::value(0))
        .filter(Column::PolicyNumber.eq(policy_number))
        .filter(Column::LastFailedAt.lte(now_ms - rules.reset_ms))
        .filter(not_locked.clone())
        .exec(db)
        .await?;
    let max = i32::try_from(rules.max_failures).unwrap_or(i32::MAX);
    let reserved = Entity::update_many()
        .col_expr(Column::FailedCount, Expr::col(Column::FailedCount).add(1))
        .col_expr(Column::LastFailedAt, Expr::value(now_ms))
        .col_expr(Column::UpdatedAt, Expr::value(now_ms))
        .filter(Column::PolicyNumber.eq(policy_number))
        .filter(Column::FailedCount.lt(max))
        .filter(not_locked)
        .exec(db)
        .await?
        .rows_affected;
    let row = Entity::find_by_id(policy_number.to_owned()).one(db).await?;
    if reserved == 0 {
        let until = row.and_then(|r| r.locked_until).filter(|u| *u > now_ms);
        return Ok(PolicyCheck::Locked(until.unwrap_or(now_ms)));
    }
    let n = row.map_or(1, |r| u32::try_from(r.failed_count).unwrap_or(1));
    Ok(PolicyCheck::Reserved {
        policy_number: policy_number.to_owned(),
        n,
    })
}

/// Settles a reserved check: a success clears the policy's count; a failure stays counted,
/// and the one that reached `max_failures` locks the policy for the next step of its series.
/// Returns what the failure led to (`None` after a success).
///
/// # Errors
/// Database errors.
pub async fn settle_policy_check<C: ConnectionTrait>(
    db: &C,
    reservation: &PolicyCheck,
    succeeded: bool,
    now_ms: i64,
    rules: &LockoutRules,
) -> Result<Option<Failure>, DbErr> {
    use identity_policy_attempt::{Column, Entity};
    let PolicyCheck::Reserved { policy_number, n } = reservation else {
        return Ok(None);
    };
    if succeeded {
        Entity::update_many()
            .col_expr(Column::FailedCount, Expr::value(0))
            .col_expr(Column::UpdatedAt, Expr::value(now_ms))
            .filter(Column::PolicyNumber.eq(policy_number.as_str()))
            .exec(db)
            .await?;
        return Ok(None);
    }
    if *n < rules.max_failures {
        return Ok(Some(Failure::Counted(*n)));
    }
    // Only the check that took the last place gets here: the others were refused.
    let row = Entity::find_by_id(policy_number.clone()).one(db).await?;
    let (previous, last_until) = row.map_or((0, None), |r| (r.lockouts, r.locked_until));
    let (number, until) = rules.next_lockout(previous, last_until, now_ms);
    Entity::update_many()
        .col_expr(Column::FailedCount, Expr::value(0))
        .col_expr(Column::LockedUntil, Expr::value(until))
        .col_expr(Column::Lockouts, Expr::value(number))
        .col_expr(Column::UpdatedAt, Expr::value(now_ms))
        .filter(Column::PolicyNumber.eq(policy_number.as_str()))
        .exec(db)
        .await?;
    Ok(Some(Failure::LockedOut(until)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> LockoutRules {
        LockoutRules::per_contact(&InsurerSettings::default())
    }

    #[test]
    fn lockouts_in_a_series_last_longer_and_the_last_step_repeats() {
        let r = rules();
        let min = 60_000;
        assert_eq!(r.next_lockout(0, None, 0), (1, 30 * min));
        // The first ended 10 minutes ago: the second lasts 2 hours, the third 24, then 24.
        assert_eq!(r.next_lockout(1, Some(0), 10 * min), (2, 130 * min));
        assert_eq!(r.next_lockout(2, Some(0), 10 * min), (3, 1450 * min));
        assert_eq!(r.next_lockout(7, Some(0), 10 * min), (8, 1450 * min));
        // A lockout that ended a day ago or more ends its series.
        assert_eq!(r.next_lockout(3, Some(0), 1440 * min), (1, 1470 * min));
    }

    #[test]
    fn without_repeat_steps_every_lockout_lasts_the_first() {
        let r = LockoutRules::per_policy(&InsurerSettings {
            repeat_lockout_minutes: Vec::new(),
            ..InsurerSettings::default()
        });
        assert_eq!(r.max_failures, 5);
        assert_eq!(r.next_lockout(4, Some(0), 1), (5, 1 + 30 * 60_000));
    }
}
