//! The sample data set the sandbox loads (see [`super::load_sample_if_empty`]): a health, a
//! motor and a life policy for the sandbox contact `919812345678`, a few other policyholders,
//! claims in several stages, and premiums due soon, overdue and paid. The CSV files are the
//! same format `insurebot import` reads, so they double as examples for insurers.
//!
//! Dates are written as of 2026-11-26 and shifted to today when loaded. The people, numbers
//! and links are made up.

/// The sample policyholder (health, motor and life policies): the simulator's default number.
pub const SANDBOX_CONTACT: &str = "919812345678";

/// `insurebot import policies` format.
pub const POLICIES: &str = include_str!("sample/policies.csv");
/// `insurebot import claims` format.
pub const CLAIMS: &str = include_str!("sample/claims.csv");
/// `insurebot import premiums` format.
pub const PREMIUMS: &str = include_str!("sample/premiums.csv");
