//! The rows of an import: each CSV record read cell by cell ([`Cells`], collecting every error
//! with its line and column), and the valid rows as they are written (`policies`,
//! `policyholders`, `claims`, `premiums` columns).

use chrono::NaiveDate;
use serde::Serialize;

use super::{RowError, model};

/// One valid policy row with its holder, as written. The serialised field names are the
/// `policies` columns (the PostgreSQL writer sends rows as JSON objects).
#[derive(Serialize)]
pub(super) struct PolicyRow {
    #[serde(skip)]
    pub(super) line: u64,
    #[serde(skip)]
    pub(super) holder_name: String,
    #[serde(skip)]
    pub(super) dob: String,
    pub(super) policy_number: String,
    pub(super) customer_id: String,
    pub(super) mobile: Option<String>,
    pub(super) product: String,
    pub(super) plan: String,
    pub(super) status: String,
    pub(super) sum_assured: i64,
    pub(super) start_date: String,
    pub(super) end_date: Option<String>,
    pub(super) document_url: Option<String>,
    /// The business number (phone number id) the policy belongs to.
    pub(super) number: Option<String>,
}

/// One policyholder as written (the `policyholders` columns).
#[derive(Serialize)]
pub(super) struct HolderRow<'a> {
    pub(super) customer_id: &'a str,
    pub(super) name: &'a str,
    pub(super) dob: &'a str,
}

/// One valid claim row (the `claims` columns).
#[derive(Serialize)]
pub(super) struct ClaimRow {
    #[serde(skip)]
    pub(super) line: u64,
    pub(super) claim_number: String,
    pub(super) policy_number: String,
    pub(super) stage: String,
    pub(super) pending_documents: i32,
    pub(super) claim_amount: Option<i64>,
    pub(super) filed_date: String,
    pub(super) updated_date: String,
}

/// One valid premium instalment row (the `premiums` columns).
#[derive(Serialize)]
pub(super) struct PremiumRow {
    #[serde(skip)]
    pub(super) line: u64,
    pub(super) policy_number: String,
    pub(super) due_date: String,
    pub(super) amount: i64,
    pub(super) status: String,
    pub(super) paid_date: Option<String>,
}

/// A row that refers to a policy (claims and premiums must refer to an imported one).
pub(super) trait ChildRow {
    fn line(&self) -> u64;
    fn policy_number(&self) -> &str;
}

impl ChildRow for ClaimRow {
    fn line(&self) -> u64 {
        self.line
    }
    fn policy_number(&self) -> &str {
        &self.policy_number
    }
}

impl ChildRow for PremiumRow {
    fn line(&self) -> u64 {
        self.line
    }
    fn policy_number(&self) -> &str {
        &self.policy_number
    }
}

/// The cells of one row, by column name, collecting errors as they are read.
pub(super) struct Cells<'a> {
    pub(super) header: &'a [String],
    pub(super) record: &'a csv::StringRecord,
    pub(super) line: u64,
    pub(super) errors: Vec<RowError>,
}

impl Cells<'_> {
    pub(super) fn raw(&self, column: &str) -> &str {
        self.header
            .iter()
            .position(|h| h == column)
            .and_then(|i| self.record.get(i))
            .unwrap_or("")
    }

    pub(super) fn fail(&mut self, column: &str, reason: impl Into<String>) {
        self.errors.push(RowError {
            line: self.line,
            column: Some(column.to_owned()),
            reason: reason.into(),
        });
    }

    pub(super) fn text(&mut self, column: &str, max: usize) -> String {
        let v = self.raw(column).to_owned();
        if v.is_empty() {
            self.fail(column, "is empty");
        } else if v.chars().count() > max {
            self.fail(column, format!("is longer than {max} characters"));
        }
        v
    }

    pub(super) fn optional(&self, column: &str) -> Option<String> {
        Some(self.raw(column).to_owned()).filter(|v| !v.is_empty())
    }

    pub(super) fn date(&mut self, column: &str, shift: chrono::Duration) -> Option<NaiveDate> {
        let v = self.raw(column).to_owned();
        if v.is_empty() {
            self.fail(column, "is empty");
            return None;
        }
        match model::parse_date(&v) {
            Some(d) => Some(d + shift),
            None => {
                self.fail(
                    column,
                    format!("'{v}' is not a date (use YYYY-MM-DD or DD/MM/YYYY)"),
                );
                None
            }
        }
    }

    pub(super) fn optional_date(
        &mut self,
        column: &str,
        shift: chrono::Duration,
    ) -> Option<NaiveDate> {
        if self.raw(column).is_empty() {
            None
        } else {
            self.date(column, shift)
        }
    }

    pub(super) fn amount(&mut self, column: &str) -> Option<i64> {
        let v = self.raw(column).to_owned();
        let parsed = model::parse_amount_paise(&v);
        if parsed.is_none() {
            self.fail(
                column,
                format!("'{v}' is not an amount in rupees (e.g. 125000 or 12500.50)"),
            );
        }
        parsed
    }

    pub(super) fn one_of(&mut self, column: &str, allowed: &[&str]) -> String {
        let v = self.raw(column).to_lowercase().replace([' ', '-'], "_");
        if !allowed.contains(&v.as_str()) {
            let shown = self.raw(column).to_owned();
            self.fail(
                column,
                format!("'{shown}' is not one of {}", allowed.join(", ")),
            );
        }
        v
    }
}
