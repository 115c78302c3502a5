//! The insurer domain as the flow actions see it, whichever source holds the data: policies,
//! claims and premium instalments, plus the normalisation of what people and exports type
//! (phone numbers, policy and claim numbers, amounts, dates). No IO here.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::engine::media_slot::MediaRef;
use crate::engine::vocabulary::CLOSED_CLAIM_STAGES;
use crate::money::Paise;

/// One policy with the identity details of its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub policy_number: String,
    pub holder_name: String,
    pub holder_dob: NaiveDate,
    /// The WhatsApp number registered on the policy, digits with country code.
    #[serde(default)]
    pub mobile: Option<String>,
    pub product: String,
    pub plan: String,
    pub status: String,
    pub sum_assured_paise: i64,
    pub start_date: NaiveDate,
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
    #[serde(default)]
    pub document_url: Option<String>,
    /// The business number (phone number id) the policy belongs to: reminders and
    /// notifications about it leave from there. `None`: the deployment's usual choice.
    #[serde(default)]
    pub number: Option<String>,
}

/// One claim on a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub claim_number: String,
    pub policy_number: String,
    pub stage: String,
    pub pending_documents: u32,
    #[serde(default)]
    pub claim_amount_paise: Option<i64>,
    pub filed_date: NaiveDate,
    pub updated_date: NaiveDate,
}

/// A claim to register: the first notice of loss as the chat collected it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewClaim {
    pub policy_number: String,
    /// One of `engine::vocabulary::LOSS_TYPES`.
    pub loss_type: String,
    pub loss_date: NaiveDate,
    /// The policyholder's own words.
    pub description: String,
    /// Today in the insurer's calendar.
    pub filed_date: NaiveDate,
    pub files: Vec<ClaimFile>,
    /// The contact filing it (kept by the embedded tables; never sent to an insurer API).
    #[serde(skip)]
    pub contact_id: i64,
}

/// A file for a claim: the media store's reference, the contact who sent it (erasure finds
/// the embedded `claim_documents` rows by it) and, for the HTTP source, the signed link the
/// insurer's system fetches it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimFile {
    #[serde(flatten)]
    pub file: MediaRef,
    #[serde(skip)]
    pub contact_id: i64,
    /// Absolute URL, valid until `link_expires_at` (see `insurer::file_links`).
    pub url: String,
    /// RFC 3339.
    pub link_expires_at: String,
}

/// One premium instalment of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Premium {
    pub policy_number: String,
    pub due_date: NaiveDate,
    pub amount_paise: i64,
    /// `due` or `paid`.
    pub status: String,
    #[serde(default)]
    pub paid_date: Option<NaiveDate>,
}

impl Claim {
    /// True while the claim is still being worked on.
    pub fn is_open(&self) -> bool {
        !CLOSED_CLAIM_STAGES.contains(&self.stage.as_str())
    }
}

/// A policy number as stored: trimmed and upper case; letters, digits, `/` and `-` only.
pub fn normalize_policy_number(raw: &str) -> Option<String> {
    let s = raw.trim().to_uppercase();
    let ok = (4..=30).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '/' || c == '-');
    ok.then_some(s)
}

/// A claim number as stored: `CLM-123456` (people also type `clm123456`).
pub fn normalize_claim_number(raw: &str) -> Option<String> {
    let s = raw.trim().to_uppercase();
    let digits = s.strip_prefix("CLM")?;
    let digits = digits.strip_prefix('-').unwrap_or(digits);
    (digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| format!("CLM-{digits}"))
}

/// Rupees as exports write them (`125000`, `1,25,000.50`, `₹ 12500`) to paise.
pub fn parse_amount_paise(raw: &str) -> Option<i64> {
    Paise::parse(raw).map(Paise::get)
}

/// A date as exports and people write it (`2026-01-15`, `15/01/2026`, `15 Jan 2026`; the day
/// always first, never the US order).
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    crate::engine::runtime::parse_date(raw)
}

/// How a status or stage code reads in a message: `documents_pending` → `Documents pending`.
pub fn label(code: &str) -> String {
    let spaced = code.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_and_claim_numbers_are_normalised() {
        assert_eq!(
            normalize_policy_number(" h-2024/00123 ").as_deref(),
            Some("H-2024/00123")
        );
        assert_eq!(normalize_policy_number("12 34"), None);
        assert_eq!(normalize_policy_number("' OR 1=1"), None);
        assert_eq!(
            normalize_claim_number("clm123456").as_deref(),
            Some("CLM-123456")
        );
        assert_eq!(
            normalize_claim_number("CLM-123456").as_deref(),
            Some("CLM-123456")
        );
        assert_eq!(normalize_claim_number("CLM-12345"), None);
        assert_eq!(normalize_claim_number("123456"), None);
    }

    #[test]
    fn amounts_are_parsed_to_paise() {
        assert_eq!(parse_amount_paise("125000"), Some(12_500_000));
        assert_eq!(parse_amount_paise("1,25,000.5"), Some(12_500_050));
        assert_eq!(parse_amount_paise("₹ 12,500.75"), Some(1_250_075));
        assert_eq!(parse_amount_paise("12.345"), None);
        assert_eq!(parse_amount_paise("-5"), None);
        assert_eq!(parse_amount_paise(""), None);
        assert_eq!(parse_amount_paise("abc"), None);
    }

    #[test]
    fn codes_read_as_labels() {
        assert_eq!(label("documents_pending"), "Documents pending");
        assert_eq!(label("active"), "Active");
    }
}
