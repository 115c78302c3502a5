//! The `INSUREBOT_*` environment table: which variable sets which setting, and how its text
//! becomes the setting's type.
//!
//! A variable is `INSUREBOT_<SECTION>_<KEY>`, the TOML table and key in capitals
//! (`[outbox] max_attempts` is `INSUREBOT_OUTBOX_MAX_ATTEMPTS`); the few top-level keys have
//! no section. [`Settings::apply_env`] routes a variable to its section, and each section's
//! [`EnvSection`] table sets the field; a name no table knows is logged once and ignored, so a
//! typo shows without stopping the server. The feature sections ([`super::reminders`],
//! [`super::otp`], [`super::media`]) keep their tables beside their settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::{
    ApiSettings, ConfigError, ConsentSettings, ConsoleSettings, DatabaseUrl, DialogueSettings,
    InsurerSettings, LogSettings, MessagingSettings, MetricsSettings, NluSettings, OutboxSettings,
    PrivacySettings, Settings, WebhookSettings, WhatsAppSettings, invalid,
};

/// One `INSUREBOT_*` variable: its full name, which every error names, and its text.
pub(crate) struct Var<'a> {
    key: &'a str,
    value: &'a str,
}

impl Var<'_> {
    /// The value parsed with `FromStr` (surrounding blanks ignored).
    ///
    /// # Errors
    /// The variable's name, the value and the parser's complaint.
    pub(crate) fn parse<T: std::str::FromStr>(&self) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        parse(self.key, self.value)
    }

    /// The value as one of an enum's names (`json`, `http`), the same names the file takes.
    pub(crate) fn parse_enum<T: for<'de> Deserialize<'de>>(&self) -> Result<T, ConfigError> {
        use serde::de::value::{Error, StrDeserializer};
        T::deserialize(StrDeserializer::<Error>::new(self.value.trim()))
            .map_err(|e| invalid(self.key, e.to_string()))
    }

    /// A comma-separated value as a list; blank items are skipped, so `15, 7,` is `[15, 7]`.
    pub(crate) fn list<T: std::str::FromStr>(&self) -> Result<Vec<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.value
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse(self.key, s))
            .collect()
    }

    /// The value as it is.
    pub(crate) fn text(&self) -> String {
        self.value.to_owned()
    }

    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from(self.value)
    }

    /// The value as a secret, which `Debug` and the logs never show.
    pub(crate) fn secret(&self) -> Option<SecretString> {
        Some(SecretString::from(self.value.to_owned()))
    }
}

/// `value` parsed with `FromStr`, an error naming `key` when it does not parse.
pub(crate) fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| invalid(key, format!("'{value}' is not valid: {e}")))
}

/// A settings section that takes its `INSUREBOT_<SECTION>_*` variables.
pub(crate) trait EnvSection {
    /// Sets the setting `name` names (the variable without `INSUREBOT_<SECTION>_`).
    ///
    /// # Errors
    /// A value that does not parse, naming the variable. `Ok(false)`: the section has no
    /// setting of that name.
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError>;
}

impl Settings {
    /// Applies every `INSUREBOT_*` variable of `env` over the defaults and the file.
    pub(super) fn apply_env(&mut self, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        for (key, value) in env {
            let Some(name) = key.strip_prefix("INSUREBOT_") else {
                continue;
            };
            // Variables for the test harness and config-file selection are not settings.
            if name.starts_with("TEST_") || name == "CONFIG" {
                continue;
            }
            if !self.set_env(name, &Var { key, value })? {
                tracing::warn!(variable = %key, "unknown INSUREBOT_ variable ignored");
            }
        }
        Ok(())
    }
}

impl EnvSection for Settings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "DATABASE_URL" => self.database_url = DatabaseUrl(var.text()),
            "LISTEN" => self.listen = var.parse()?,
            "AUTO_MIGRATE" => self.auto_migrate = var.parse()?,
            "MARK_READ" => self.mark_read = var.parse()?,
            "REDIS_URL" => self.redis_url = var.secret(),
            // A top-level key although its name starts like the `[api]` section's.
            "API_TOKEN" => self.api_token = var.secret(),
            _ => {
                let Some((section, rest)) = name.split_once('_') else {
                    return Ok(false);
                };
                let section: &mut dyn EnvSection = match section {
                    "DIALOGUE" => &mut self.dialogue,
                    "LOG" => &mut self.log,
                    "WHATSAPP" => &mut self.whatsapp,
                    "WEBHOOK" => &mut self.webhook,
                    "OUTBOX" => &mut self.outbox,
                    "CONSOLE" => &mut self.console,
                    "INSURER" => &mut self.insurer,
                    "MESSAGING" => &mut self.messaging,
                    "CONSENT" => &mut self.consent,
                    "PRIVACY" => &mut self.privacy,
                    "REMINDERS" => &mut self.reminders,
                    "CAMPAIGNS" => &mut self.campaigns,
                    "API" => &mut self.api,
                    "METRICS" => &mut self.metrics,
                    "OTP" => &mut self.otp,
                    "MEDIA" => &mut self.media,
                    "NLU" => &mut self.nlu,
                    _ => return Ok(false),
                };
                return section.set_env(rest, var);
            }
        }
        Ok(true)
    }
}

impl EnvSection for NluSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "URL" => self.url = Some(var.text()).filter(|u| !u.trim().is_empty()),
            "TIMEOUT_MS" => self.timeout_ms = var.parse()?,
            "BREAKER_FAILURES" => self.breaker_failures = var.parse()?,
            "BREAKER_COOLDOWN_MS" => self.breaker_cooldown_ms = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for DialogueSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "HANDLER" => self.handler = var.parse_enum()?,
            "FLOWS_DIR" => self.flows_dir = var.path(),
            "LOCALES_DIR" => self.locales_dir = var.path(),
            "DEFAULT_LANGUAGE" => self.default_language = var.text(),
            "MISUNDERSTOOD_LIMIT" => self.misunderstood_limit = var.parse()?,
            "IDLE_RESTART_MINUTES" => self.idle_restart_minutes = var.parse()?,
            "WATCH" => self.watch = var.parse()?,
            "AGENT_WAIT_MINUTES" => self.agent_wait_minutes = var.parse()?,
            "AGENT_IDLE_CLOSE_MINUTES" => self.agent_idle_close_minutes = var.parse()?,
            "AGENT_REPLY_MINUTES" => self.agent_reply_minutes = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for LogSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "FORMAT" => self.format = var.parse_enum()?,
            "FILTER" => self.filter = var.text(),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for WhatsAppSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "APP_SECRET" => self.app_secret = var.secret(),
            "VERIFY_TOKEN" => self.verify_token = var.secret(),
            "ACCESS_TOKEN" => self.access_token = var.secret(),
            "PHONE_NUMBER_ID" => self.phone_number_id = var.text(),
            "API_BASE" => self.api_base = var.text(),
            "REQUEST_TIMEOUT_MS" => self.request_timeout_ms = var.parse()?,
            "WABA_ID" => self.waba_id = Some(var.text()),
            "TEMPLATE_SYNC_SECS" => self.template_sync_secs = var.parse()?,
            "H2C" => self.h2c = var.parse()?,
            "SANDBOX_LATENCY_MS" => self.sandbox_latency_ms = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for WebhookSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "MAX_BODY_BYTES" => self.max_body_bytes = var.parse()?,
            "BENCH_BASELINE" => self.bench_baseline = var.parse()?,
            "MAX_QUEUED" => self.max_queued = var.parse()?,
            "STORE_TIMEOUT_MS" => self.store_timeout_ms = var.parse()?,
            "MAX_ID_BYTES" => self.max_id_bytes = var.parse()?,
            "MAX_TIMESTAMP_AHEAD_SECS" => self.max_timestamp_ahead_secs = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for OutboxSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "MAX_ATTEMPTS" => self.max_attempts = var.parse()?,
            "RETRY_BASE_MS" => self.retry_base_ms = var.parse()?,
            "RETRY_MAX_MS" => self.retry_max_ms = var.parse()?,
            "UNCONFIRMED_WAIT_MS" => self.unconfirmed_wait_ms = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for ConsoleSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "SECURE_COOKIES" => self.secure_cookies = var.parse()?,
            "SESSION_HOURS" => self.session_hours = var.parse()?,
            "LOGIN_MAX_FAILURES" => self.login_max_failures = var.parse()?,
            "LOGIN_MAX_FAILURES_PER_IP" => self.login_max_failures_per_ip = var.parse()?,
            "LOGIN_WINDOW_MINUTES" => self.login_window_minutes = var.parse()?,
            "LOGIN_MAX_CONCURRENT_HASHES" => self.login_max_concurrent_hashes = var.parse()?,
            "OFFICE_DAYS" => self.office_days = var.text(),
            "OFFICE_OPEN" => self.office_open = var.text(),
            "OFFICE_CLOSE" => self.office_close = var.text(),
            "UTC_OFFSET" => self.utc_offset = var.text(),
            "TIMEZONE_LABEL" => self.timezone_label = var.text(),
            "VIEW_LOG_MERGE_MINUTES" => self.view_log_merge_minutes = var.parse()?,
            "HSTS_MAX_AGE_SECS" => self.hsts_max_age_secs = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for InsurerSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        let http = &mut self.http;
        match name {
            "SOURCE" => self.source = var.parse_enum()?,
            "VERIFICATION_TTL_MINUTES" => self.verification_ttl_minutes = var.parse()?,
            "MAX_FAILED_ATTEMPTS" => self.max_failed_attempts = var.parse()?,
            "MAX_FAILED_ATTEMPTS_PER_POLICY" => {
                self.max_failed_attempts_per_policy = var.parse()?
            }
            "LOCKOUT_MINUTES" => self.lockout_minutes = var.parse()?,
            "REPEAT_LOCKOUT_MINUTES" => self.repeat_lockout_minutes = var.list()?,
            "LOCKOUT_RESET_HOURS" => self.lockout_reset_hours = var.parse()?,
            "PREMIUM_DUE_WINDOW_DAYS" => self.premium_due_window_days = var.parse()?,
            "REMIND_DAYS_BEFORE" => self.remind_days_before = var.parse()?,
            "UTC_OFFSET_MINUTES" => self.utc_offset_minutes = var.parse()?,
            "PAY_LINK_URL" => self.pay_link_url = var.text(),
            "PAY_LINK_SECRET" => self.pay_link_secret = var.secret(),
            "PAY_LINK_TTL_HOURS" => self.pay_link_ttl_hours = var.parse()?,
            "DOCUMENTS_DIR" => {
                self.documents_dir =
                    Some(var.text().into()).filter(|_| !var.text().trim().is_empty())
            }
            "HTTP_BASE_URL" => http.base_url = var.text(),
            "HTTP_TOKEN" => http.token = var.secret(),
            "HTTP_TIMEOUT_MS" => http.timeout_ms = var.parse()?,
            "HTTP_RETRIES" => http.retries = var.parse()?,
            "HTTP_RETRY_BACKOFF_MS" => http.retry_backoff_ms = var.parse()?,
            "HTTP_BREAKER_FAILURES" => http.breaker_failures = var.parse()?,
            "HTTP_BREAKER_COOLDOWN_MS" => http.breaker_cooldown_ms = var.parse()?,
            "HTTP_FILE_LINK_BASE" => http.file_link_base = var.text(),
            "HTTP_FILE_LINK_TTL_MINUTES" => http.file_link_ttl_minutes = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for MessagingSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "RATE_PER_SECOND" => self.rate_per_second = var.parse()?,
            "RATE_WINDOW_MARGIN_MS" => self.rate_window_margin_ms = var.parse()?,
            "PAIR_BURST" => self.pair_burst = var.parse()?,
            "PAIR_INTERVAL_MS" => self.pair_interval_ms = var.parse()?,
            "WINDOW_MARGIN_SECS" => self.window_margin_secs = var.parse()?,
            "MAX_IN_FLIGHT" => self.max_in_flight = var.parse()?,
            "SHARED_RATE" => self.shared_rate = var.parse()?,
            "TEMPLATES_FILE" => self.templates_file = var.path(),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for ConsentSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "REQUIRE_OPT_IN" => self.require_opt_in = var.parse()?,
            "MARKETING_CAP" => self.marketing_cap = var.parse()?,
            "MARKETING_CAP_DAYS" => self.marketing_cap_days = var.parse()?,
            "REMINDER_KINDS" => self.reminder_kinds = var.list()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for PrivacySettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "HASH_KEY" => self.hash_key = var.secret(),
            "RETENTION_DAYS" => self.retention_days = var.parse()?,
            "RETENTION_INTERVAL_MINUTES" => self.retention_interval_minutes = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for ApiSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "MAX_FAILURES_PER_MINUTE" => self.max_failures_per_minute = var.parse()?,
            "MAX_TRACKED_ADDRESSES" => self.max_tracked_addresses = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl EnvSection for MetricsSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "TOKEN" => self.token = var.secret(),
            "LISTEN" => self.listen = Some(var.parse()?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var<'a>(key: &'a str, value: &'a str) -> Var<'a> {
        Var { key, value }
    }

    #[test]
    fn a_list_skips_blank_items_and_names_the_variable_of_a_bad_one() {
        let minutes: Vec<u64> = var("INSUREBOT_X", " 120, ,1440,").list().unwrap();
        assert_eq!(minutes, [120, 1440]);
        let kinds: Vec<String> = var("INSUREBOT_X", " a , b").list().unwrap();
        assert_eq!(kinds, ["a", "b"]);
        let err = var("INSUREBOT_X", "1,x").list::<u32>().unwrap_err();
        assert!(
            err.to_string().starts_with("INSUREBOT_X: 'x' is not valid"),
            "{err}"
        );
    }

    #[test]
    fn a_variable_is_routed_to_its_section_and_an_unknown_one_is_reported_unknown() {
        let mut s = Settings::default();
        let set = |s: &mut Settings, name: &str, value: &str| {
            let key = format!("INSUREBOT_{name}");
            s.set_env(name, &var(&key, value)).unwrap()
        };
        assert!(set(&mut s, "OUTBOX_MAX_ATTEMPTS", "3"));
        assert_eq!(s.outbox.max_attempts, 3);
        assert!(set(&mut s, "API_TOKEN", "a-token-of-16-chars"));
        assert!(s.api_token.is_some());
        assert!(set(&mut s, "API_MAX_TRACKED_ADDRESSES", "7"));
        assert_eq!(s.api.max_tracked_addresses, 7);
        assert!(set(&mut s, "MEDIA_DOWNLOAD_ATTEMPTS", "2"));
        assert_eq!(s.media.download_attempts, 2);
        assert!(!set(&mut s, "OUTBOX_MAX_ATTEMPT", "3"));
        assert!(!set(&mut s, "NOSUCHSECTION_KEY", "3"));
        assert!(!set(&mut s, "NOUNDERSCORE", "3"));
    }
}
