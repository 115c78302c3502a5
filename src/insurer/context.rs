//! What an agent sees about a policyholder beside the transcript: the policies the contact is
//! verified for right now, their open claims and the premiums not yet paid. Only verified
//! policies appear, the same rule as the bot's own answers, and policy numbers are masked.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use serde_json::json;

use crate::engine::i18n::display_value;
use crate::engine::vocabulary::CLOSED_CLAIM_STAGES;
use crate::money::Paise;
use crate::store::entities::{claim, identity_verification, policy, premium};

/// The agent's view of one policyholder's insurance.
#[derive(Debug, Default, Serialize)]
pub struct ContactContext {
    pub policies: Vec<PolicyLine>,
    pub open_claims: Vec<ClaimLine>,
    pub premiums_due: Vec<PremiumLine>,
}

#[derive(Debug, Serialize)]
pub struct PolicyLine {
    pub policy: String,
    pub plan: String,
    pub status: String,
}

#[derive(Debug, Serialize)]
pub struct ClaimLine {
    pub claim_number: String,
    pub policy: String,
    pub stage: String,
    pub pending_documents: i32,
}

#[derive(Debug, Serialize)]
pub struct PremiumLine {
    pub policy: String,
    pub amount: String,
    pub due_date: String,
}

/// The context of `contact_id` from the embedded tables: policies verified within
/// `ttl_minutes` before `now_ms`.
///
/// # Errors
/// Database errors.
pub async fn for_contact<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    now_ms: i64,
    ttl_minutes: u64,
) -> Result<ContactContext, DbErr> {
    let since = now_ms - i64::try_from(ttl_minutes).unwrap_or(30) * 60_000;
    let mut numbers: Vec<String> = identity_verification::Entity::find()
        .filter(identity_verification::Column::ContactId.eq(contact_id))
        .filter(identity_verification::Column::VerifiedAt.gte(since))
        .all(db)
        .await?
        .into_iter()
        .map(|v| v.policy_number)
        .collect();
    numbers.sort();
    numbers.dedup();
    if numbers.is_empty() {
        return Ok(ContactContext::default());
    }
    let mask = |n: &str| display_value("policy_number", &json!(n)).unwrap_or_else(|| "••••".into());
    let policies = policy::Entity::find()
        .filter(policy::Column::PolicyNumber.is_in(numbers.clone()))
        .order_by_asc(policy::Column::PolicyNumber)
        .all(db)
        .await?
        .into_iter()
        .map(|p| PolicyLine {
            policy: mask(&p.policy_number),
            plan: p.plan,
            status: p.status,
        })
        .collect();
    let open_claims = claim::Entity::find()
        .filter(claim::Column::PolicyNumber.is_in(numbers.clone()))
        // The same rule as the policyholder's own "my open claims" (`Claim::is_open`).
        .filter(claim::Column::Stage.is_not_in(CLOSED_CLAIM_STAGES.iter().copied()))
        .order_by_desc(claim::Column::UpdatedDate)
        .all(db)
        .await?
        .into_iter()
        .map(|c| ClaimLine {
            claim_number: c.claim_number,
            policy: mask(&c.policy_number),
            stage: c.stage.replace('_', " "),
            pending_documents: c.pending_documents,
        })
        .collect();
    let premiums_due = premium::Entity::find()
        .filter(premium::Column::PolicyNumber.is_in(numbers))
        .filter(premium::Column::Status.ne("paid"))
        .order_by_asc(premium::Column::DueDate)
        .all(db)
        .await?
        .into_iter()
        .map(|p| PremiumLine {
            policy: mask(&p.policy_number),
            // The table holds paise; the bot says the same amount through the same type.
            amount: Paise::new(p.amount).to_string(),
            due_date: display_value("due_date", &json!(p.due_date)).unwrap_or(p.due_date),
        })
        .collect();
    Ok(ContactContext {
        policies,
        open_claims,
        premiums_due,
    })
}
