//! The one interface flow actions read insurer data through, whichever system holds it: the
//! embedded tables ([`super::embedded::EmbeddedSource`]) or the insurer's REST API
//! ([`super::http::HttpSource`]). A source answers questions; it never decides who may see
//! the answer (that is [`super::Insurer`]'s job). Two writes exist, both from the chat: a new
//! claim (first notice of loss) and documents for a claim (issue 18).

use chrono::NaiveDate;
use futures_util::future::BoxFuture;
use sea_orm::DatabaseTransaction;

use super::model::{Claim, ClaimFile, NewClaim, Policy, Premium};

/// Why a source could not answer. Messages carry no personal data: they are logged.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("stored insurer data is invalid: {0}")]
    Corrupt(String),
    #[error("insurer API did not answer in time")]
    Timeout,
    #[error("insurer API unreachable")]
    Unreachable,
    #[error("insurer API answered HTTP {0}")]
    Status(u16),
    #[error("insurer API answered something unreadable: {0}")]
    Garbage(String),
    #[error("insurer API is failing; calls are paused (circuit open)")]
    CircuitOpen,
}

impl SourceError {
    /// Worth another try soon: the call may succeed if repeated (reads only).
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Timeout | SourceError::Unreachable => true,
            SourceError::Status(code) => *code == 429 || *code >= 500,
            _ => false,
        }
    }
}

/// Read access to policies, claims and premium schedules. Object-safe (boxed futures), so the
/// app holds an `Arc<dyn PolicySource>` chosen by configuration.
pub trait PolicySource: Send + Sync + 'static {
    /// Policies whose registered mobile number is `mobile` (digits with country code).
    fn policies_for_mobile<'a>(
        &'a self,
        mobile: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Policy>, SourceError>>;

    /// One policy by its (normalised) number.
    fn policy<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<Policy>, SourceError>>;

    /// One claim by its (normalised) number, `CLM-123456`.
    fn claim<'a>(
        &'a self,
        claim_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<Claim>, SourceError>>;

    /// The claims on one policy.
    fn claims<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Claim>, SourceError>>;

    /// The premium schedule of one policy, oldest instalment first.
    fn premiums<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Premium>, SourceError>>;

    /// Registers a new claim with its files and returns it (with its new number). `txn` is
    /// the dialogue turn's transaction: the embedded tables are written in it, so the claim
    /// commits with the conversation that confirmed it (SQLite has one writer, and a second
    /// connection would wait for this one).
    fn intimate_claim<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        claim: &'a NewClaim,
    ) -> BoxFuture<'a, Result<Claim, SourceError>>;

    /// Adds files to an existing claim on `today` (the insurer's calendar); `false` when there
    /// is no such claim.
    fn attach_documents<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        claim_number: &'a str,
        files: &'a [ClaimFile],
        today: NaiveDate,
    ) -> BoxFuture<'a, Result<bool, SourceError>>;

    /// The policy schedule file of one policy, when the source holds one (issue 18). The
    /// default holds none: `policy.document` then answers with the link, as before.
    fn policy_document<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<DocumentFile>, SourceError>> {
        let _ = policy_number;
        Box::pin(async { Ok(None) })
    }

    /// The insurer's letter on one claim (e.g. the settlement letter), when the source holds
    /// one; `claim.status` sends it in the chat. The default holds none.
    fn claim_letter<'a>(
        &'a self,
        claim_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<DocumentFile>, SourceError>> {
        let _ = claim_number;
        Box::pin(async { Ok(None) })
    }
}

/// A policy's document as a source holds it. Policy schedules are a few hundred kilobytes, so
/// the bytes are held in memory; sources refuse anything over [`DOCUMENT_MAX_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentFile {
    pub bytes: bytes::Bytes,
    /// As the source declares it (a file's extension, the API's `Content-Type`); checked
    /// against the types WhatsApp accepts before anything is sent.
    pub mime_type: String,
    /// The name the policyholder sees, e.g. `LIC00012345678.pdf`.
    pub filename: String,
}

/// The largest document a source returns: WhatsApp's document limit.
pub const DOCUMENT_MAX_BYTES: u64 = 100 * 1024 * 1024;

/// The file name of a policy's schedule: the policy number (a `/` in it becomes `_`) and `.pdf`.
pub fn document_filename(policy_number: &str) -> String {
    format!("{}.pdf", policy_number.replace('/', "_"))
}

/// The file name of a claim's letter: the claim number and `.pdf`; `None` for a number that
/// is not only letters, digits and `-` (it names a file, and must not leave its directory).
pub fn claim_letter_filename(claim_number: &str) -> Option<String> {
    (!claim_number.is_empty()
        && claim_number
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    .then(|| format!("{claim_number}.pdf"))
}
