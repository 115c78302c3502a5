//! The embedded source: policies, claims and premiums in insurebot's own tables, filled by
//! `insurebot import` (see [`super::import`]). It reads through its own pool rather than the
//! caller's transaction: the data is read-only here, and SQLite's WAL lets these reads run
//! beside the dialogue runner's write transaction. The two writes (a claim filed in the chat,
//! documents for a claim) go through the runner's transaction instead: SQLite has one writer.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
};

use crate::store::entities::{claim, policy, policyholder, premium};
use futures_util::future::BoxFuture;

use super::model::{Claim, ClaimFile, NewClaim, Policy, Premium};
use super::source::{
    DOCUMENT_MAX_BYTES, DocumentFile, PolicySource, SourceError, claim_letter_filename,
    document_filename,
};

/// Where claim letters live inside `insurer.documents_dir`: `claims/<claim number>.pdf`.
pub const CLAIM_LETTERS_DIR: &str = "claims";

/// Reads the embedded tables.
#[derive(Clone)]
pub struct EmbeddedSource {
    db: DatabaseConnection,
    /// `insurer.documents_dir`: policy schedules named after the policy number, and claim
    /// letters in its `claims/` folder named after the claim number.
    documents_dir: Option<PathBuf>,
}

impl EmbeddedSource {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            documents_dir: None,
        }
    }

    /// This source with policy schedules from `dir` (`<policy number>.pdf`) and claim
    /// letters from `dir/claims/` (`<claim number>.pdf`).
    #[must_use]
    pub fn with_documents_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.documents_dir = dir;
        self
    }

    /// A PDF of `insurer.documents_dir` (or of its `subdir`), `None` when there is none;
    /// `what` names it in errors (never the path: it holds a policy or claim number).
    async fn read_document(
        &self,
        subdir: Option<&'static str>,
        filename: String,
        what: &'static str,
    ) -> Result<Option<DocumentFile>, SourceError> {
        let Some(dir) = &self.documents_dir else {
            return Ok(None);
        };
        let dir = match subdir {
            Some(sub) => dir.join(sub),
            None => dir.clone(),
        };
        let path = dir.join(&filename);
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if !meta.is_file() || meta.len() > DOCUMENT_MAX_BYTES {
                return Err(std::io::Error::other(format!(
                    "not a file of at most {DOCUMENT_MAX_BYTES} bytes"
                )));
            }
            std::fs::read(&path).map(Some)
        })
        .await
        .map_err(|e| SourceError::Corrupt(format!("{what} read: {e}")))?;
        match read {
            Ok(Some(bytes)) => Ok(Some(DocumentFile {
                bytes: bytes.into(),
                mime_type: "application/pdf".into(),
                filename,
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(SourceError::Corrupt(format!(
                "{what} in insurer.documents_dir unreadable: {}",
                e.kind()
            ))),
        }
    }

    async fn with_holders(&self, rows: Vec<policy::Model>) -> Result<Vec<Policy>, SourceError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = rows.iter().map(|p| p.customer_id.clone()).collect();
        let holders: HashMap<String, policyholder::Model> = policyholder::Entity::find()
            .filter(policyholder::Column::CustomerId.is_in(ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|h| (h.customer_id.clone(), h))
            .collect();
        rows.into_iter()
            .map(|p| {
                let holder = holders
                    .get(&p.customer_id)
                    .ok_or_else(|| SourceError::Corrupt("policy without policyholder".into()))?;
                to_policy(p, holder)
            })
            .collect()
    }
}

impl PolicySource for EmbeddedSource {
    fn intimate_claim<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        claim: &'a NewClaim,
    ) -> BoxFuture<'a, Result<Claim, SourceError>> {
        Box::pin(self.new_claim(txn, claim))
    }

    fn attach_documents<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        claim_number: &'a str,
        files: &'a [ClaimFile],
        today: NaiveDate,
    ) -> BoxFuture<'a, Result<bool, SourceError>> {
        Box::pin(self.add_documents(txn, claim_number, files, today))
    }

    fn policy_document<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<DocumentFile>, SourceError>> {
        // The number is normalised (letters, digits, `-`, `/`) and `/` is replaced: the name
        // cannot leave the directory.
        let filename = document_filename(policy_number);
        Box::pin(self.read_document(None, filename, "policy document"))
    }

    fn claim_letter<'a>(
        &'a self,
        claim_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<DocumentFile>, SourceError>> {
        let filename = claim_letter_filename(claim_number);
        Box::pin(async move {
            match filename {
                Some(filename) => {
                    self.read_document(Some(CLAIM_LETTERS_DIR), filename, "claim letter")
                        .await
                }
                None => Ok(None),
            }
        })
    }

    fn policies_for_mobile<'a>(
        &'a self,
        mobile: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Policy>, SourceError>> {
        Box::pin(async move {
            let rows = policy::Entity::find()
                .filter(policy::Column::Mobile.eq(mobile))
                .order_by_asc(policy::Column::PolicyNumber)
                .all(&self.db)
                .await?;
            self.with_holders(rows).await
        })
    }

    fn policy<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<Policy>, SourceError>> {
        Box::pin(async move {
            let rows = policy::Entity::find()
                .filter(policy::Column::PolicyNumber.eq(policy_number))
                .all(&self.db)
                .await?;
            Ok(self.with_holders(rows).await?.into_iter().next())
        })
    }

    fn claim<'a>(
        &'a self,
        claim_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<Claim>, SourceError>> {
        Box::pin(async move {
            claim::Entity::find()
                .filter(claim::Column::ClaimNumber.eq(claim_number))
                .one(&self.db)
                .await?
                .map(to_claim)
                .transpose()
        })
    }

    fn claims<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Claim>, SourceError>> {
        Box::pin(async move {
            claim::Entity::find()
                .filter(claim::Column::PolicyNumber.eq(policy_number))
                .order_by_asc(claim::Column::FiledDate)
                .all(&self.db)
                .await?
                .into_iter()
                .map(to_claim)
                .collect()
        })
    }

    fn premiums<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Premium>, SourceError>> {
        Box::pin(async move {
            premium::Entity::find()
                .filter(premium::Column::PolicyNumber.eq(policy_number))
                .order_by_asc(premium::Column::DueDate)
                .all(&self.db)
                .await?
                .into_iter()
                .map(to_premium)
                .collect()
        })
    }
}

/// Claim numbers tried before giving up on finding a free one (a million numbers; a clash
/// is rare until the table is large, and then the insurer's API should number claims).
const CLAIM_NUMBER_ATTEMPTS: usize = 20;

/// A random claim number in the imported format, `CLM-` and six digits.
fn random_claim_number() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 900_000 + 100_000;
    format!("CLM-{n}")
}

impl EmbeddedSource {
    async fn new_claim(
        &self,
        txn: &DatabaseTransaction,
        c: &NewClaim,
    ) -> Result<Claim, SourceError> {
        let mut number = None;
        for _ in 0..CLAIM_NUMBER_ATTEMPTS {
            let candidate = random_claim_number();
            let taken = claim::Entity::find()
                .filter(claim::Column::ClaimNumber.eq(candidate.as_str()))
                .one(txn)
                .await?
                .is_some();
            if !taken {
                number = Some(candidate);
                break;
            }
        }
        let number =
            number.ok_or_else(|| SourceError::Corrupt("no free claim number found".into()))?;
        let now = crate::store::now_ms();
        let filed = c.filed_date.to_string();
        let row = claim::ActiveModel {
            id: NotSet,
            claim_number: Set(number.clone()),
            policy_number: Set(c.policy_number.clone()),
            stage: Set("intimated".to_owned()),
            pending_documents: Set(0),
            claim_amount: Set(None),
            filed_date: Set(filed.clone()),
            updated_date: Set(filed),
            loss_type: Set(Some(c.loss_type.clone())),
            loss_date: Set(Some(c.loss_date.to_string())),
            description: Set(Some(c.description.clone())),
            intimated_by_contact_id: Set(Some(c.contact_id)),
            created_at: Set(now),
            updated_at: Set(now),
        };
        to_claim(row.insert(txn).await?)
    }

    async fn add_documents(
        &self,
        txn: &DatabaseTransaction,
        claim_number: &str,
        files: &[ClaimFile],
        today: NaiveDate,
    ) -> Result<bool, SourceError> {
        let Some(found) = claim::Entity::find()
            .filter(claim::Column::ClaimNumber.eq(claim_number))
            .one(txn)
            .await?
        else {
            return Ok(false);
        };
        // Each file counts against what is pending: the claims team still reviews them, and
        // can ask again (an import sets the count back).
        let sent = i32::try_from(files.len()).unwrap_or(i32::MAX);
        let pending = (found.pending_documents - sent).max(0);
        let mut row: claim::ActiveModel = found.into();
        row.pending_documents = Set(pending);
        row.updated_date = Set(today.to_string());
        row.updated_at = Set(crate::store::now_ms());
        row.update(txn).await?;
        Ok(true)
    }
}

fn date(value: &str, column: &str) -> Result<NaiveDate, SourceError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| SourceError::Corrupt(format!("{column} is not a YYYY-MM-DD date")))
}

fn to_policy(p: policy::Model, holder: &policyholder::Model) -> Result<Policy, SourceError> {
    Ok(Policy {
        holder_name: holder.name.clone(),
        holder_dob: date(&holder.dob, "policyholders.dob")?,
        start_date: date(&p.start_date, "policies.start_date")?,
        end_date: p
            .end_date
            .as_deref()
            .map(|d| date(d, "policies.end_date"))
            .transpose()?,
        policy_number: p.policy_number,
        mobile: p.mobile,
        product: p.product,
        plan: p.plan,
        status: p.status,
        sum_assured_paise: p.sum_assured,
        document_url: p.document_url,
        number: p.number,
    })
}

fn to_claim(c: claim::Model) -> Result<Claim, SourceError> {
    Ok(Claim {
        filed_date: date(&c.filed_date, "claims.filed_date")?,
        updated_date: date(&c.updated_date, "claims.updated_date")?,
        pending_documents: u32::try_from(c.pending_documents).unwrap_or(0),
        claim_number: c.claim_number,
        policy_number: c.policy_number,
        stage: c.stage,
        claim_amount_paise: c.claim_amount,
    })
}

fn to_premium(p: premium::Model) -> Result<Premium, SourceError> {
    Ok(Premium {
        due_date: date(&p.due_date, "premiums.due_date")?,
        paid_date: p
            .paid_date
            .as_deref()
            .map(|d| date(d, "premiums.paid_date"))
            .transpose()?,
        policy_number: p.policy_number,
        amount_paise: p.amount,
        status: p.status,
    })
}
