//! `[otp]` settings: the key codes are hashed and sealed with, the authentication template,
//! code length, lifetime, attempts, purposes and the send limits.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::env::{EnvSection, Var};
use crate::config::{ConfigError, invalid};

/// The key used in sandbox mode when `otp.secret` is not set; public on purpose, like
/// [`crate::config::SANDBOX_APP_SECRET`]. Outside sandbox mode without `otp.secret` the OTP
/// API and the chat's code check are switched off.
pub const SANDBOX_OTP_SECRET: &str = "insurebot-sandbox-otp-secret";

/// `[otp]`: one-time passwords (issue 19).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtpSettings {
    /// Key of the HMAC codes are stored as, and of the seal that carries a code to the sender
    /// (at least 16 characters). The same on every instance; changing it invalidates the codes
    /// not yet used. Unset outside sandbox mode: one-time passwords are off.
    pub secret: Option<SecretString>,
    /// The AUTHENTICATION template of the registry that carries the code.
    pub template: String,
    /// Digits per code (4–10).
    pub code_length: u32,
    /// Minutes a code stays usable (1–90, as Meta's `code_expiration_minutes`).
    pub ttl_minutes: u32,
    /// Wrong codes before the code is locked (1–20).
    pub max_attempts: u32,
    /// The purposes the API accepts (`login`, `policy_change`, …): the insurer's own words,
    /// kept with each code and counted by the per-purpose limit.
    pub purposes: Vec<String>,
    /// At most this many codes per phone number in `per_phone_window_minutes`.
    pub per_phone_max: u32,
    pub per_phone_window_minutes: u32,
    /// At most this many codes per purpose (all numbers together) in
    /// `per_purpose_window_minutes`: a brake on a caller sending codes in bulk.
    pub per_purpose_max: u32,
    pub per_purpose_window_minutes: u32,
}

impl Default for OtpSettings {
    fn default() -> Self {
        Self {
            secret: None,
            template: "otp_code".into(),
            code_length: 6,
            ttl_minutes: 10,
            max_attempts: 5,
            purposes: vec![
                "login".into(),
                "policy_change".into(),
                "claim_payout".into(),
            ],
            per_phone_max: 3,
            per_phone_window_minutes: 15,
            per_purpose_max: 1_000,
            per_purpose_window_minutes: 60,
        }
    }
}

impl OtpSettings {
    /// The key codes are hashed and sealed with: `otp.secret`, the sandbox's public key in
    /// sandbox mode, or `None` (one-time passwords off).
    pub fn key(&self, sandbox: bool) -> Option<SecretString> {
        match &self.secret {
            Some(secret) => Some(secret.clone()),
            None if sandbox => Some(SecretString::from(SANDBOX_OTP_SECRET)),
            None => None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self
            .secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().len() < 16)
        {
            return Err(invalid(
                "INSUREBOT_OTP_SECRET",
                "must have at least 16 characters",
            ));
        }
        if self.template.is_empty() {
            return Err(invalid("INSUREBOT_OTP_TEMPLATE", "must name a template"));
        }
        if !(4..=10).contains(&self.code_length) {
            return Err(invalid(
                "INSUREBOT_OTP_CODE_LENGTH",
                "must be between 4 and 10 digits",
            ));
        }
        if !(1..=90).contains(&self.ttl_minutes) {
            return Err(invalid(
                "INSUREBOT_OTP_TTL_MINUTES",
                "must be between 1 and 90 (Meta's limit for an authentication template)",
            ));
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(invalid(
                "INSUREBOT_OTP_MAX_ATTEMPTS",
                "must be between 1 and 20",
            ));
        }
        if let Some(bad) = self.purposes.iter().find(|p| !is_purpose_name(p)) {
            return Err(invalid(
                "INSUREBOT_OTP_PURPOSES",
                format!("'{bad}' is not a purpose name (a-z, 0-9 and _, up to 64 characters)"),
            ));
        }
        for (key, value) in [
            ("INSUREBOT_OTP_PER_PHONE_MAX", self.per_phone_max),
            (
                "INSUREBOT_OTP_PER_PHONE_WINDOW_MINUTES",
                self.per_phone_window_minutes,
            ),
            ("INSUREBOT_OTP_PER_PURPOSE_MAX", self.per_purpose_max),
            (
                "INSUREBOT_OTP_PER_PURPOSE_WINDOW_MINUTES",
                self.per_purpose_window_minutes,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}

impl EnvSection for OtpSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "SECRET" => self.secret = var.secret(),
            "TEMPLATE" => self.template = var.text().trim().to_owned(),
            "CODE_LENGTH" => self.code_length = var.parse()?,
            "TTL_MINUTES" => self.ttl_minutes = var.parse()?,
            "MAX_ATTEMPTS" => self.max_attempts = var.parse()?,
            "PURPOSES" => self.purposes = var.list()?,
            "PER_PHONE_MAX" => self.per_phone_max = var.parse()?,
            "PER_PHONE_WINDOW_MINUTES" => self.per_phone_window_minutes = var.parse()?,
            "PER_PURPOSE_MAX" => self.per_purpose_max = var.parse()?,
            "PER_PURPOSE_WINDOW_MINUTES" => self.per_purpose_window_minutes = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A purpose as stored: lower-case letters, digits and `_`, 1–64 characters.
pub fn is_purpose_name(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
