//! Validation of the loaded settings: every value's own range, and the values that must agree
//! with each other, checked once at start-up. The first wrong value stops the server with one
//! line naming its `INSUREBOT_*` variable (the file key is the same name in lower case) and the
//! problem. The feature sections ([`super::reminders`], [`super::otp`], [`super::media`]) check
//! their own values; this file calls them in turn.

use secrecy::{ExposeSecret, SecretString};

use super::{
    ConfigError, ConsoleSettings, InsurerSettings, MessagingSettings, NluSettings,
    PolicySourceKind, Settings, hours, invalid,
};

const AT_LEAST_ONE: &str = "must be at least 1";
const ABOVE_ZERO: &str = "must be greater than 0";

/// One check of a table: the variable it names, whether the value is wrong, and the problem.
type Check<'a> = (&'a str, bool, &'a str);

/// The first wrong value of `checks`, in their order, as the error naming its variable.
fn first_wrong(checks: &[Check<'_>]) -> Result<(), ConfigError> {
    match checks.iter().find(|(_, wrong, _)| *wrong) {
        Some((key, _, problem)) => Err(invalid(key, *problem)),
        None => Ok(()),
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// A secret shorter than 16 characters (a key that short could be guessed); `None` is not.
fn is_short(secret: Option<&SecretString>) -> bool {
    secret.is_some_and(|s| s.expose_secret().len() < 16)
}

/// A token shorter than 16 characters once its blanks are trimmed.
fn is_short_token(token: Option<&SecretString>) -> bool {
    token.is_some_and(|t| t.expose_secret().trim().len() < 16)
}

fn is_missing(secret: Option<&SecretString>) -> bool {
    secret.is_none_or(|s| s.expose_secret().is_empty())
}

impl Settings {
    /// Checks every value, in a fixed order, so the same wrong file always names the same key.
    ///
    /// # Errors
    /// The first wrong value, naming its variable and the problem.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.check_addresses()?;
        self.check_production()?;
        self.check_numbers()?;
        self.check_limits()?;
        check_console(&self.console)?;
        self.insurer.validate()?;
        self.reminders.validate()?;
        self.campaigns.validate()?;
        self.otp.validate()?;
        self.media.validate()?;
        check_messaging(&self.messaging)?;
        check_nlu(&self.nlu)?;
        first_wrong(&[(
            "INSUREBOT_API_TOKEN",
            is_short_token(self.api_token.as_ref()),
            "must have at least 16 characters (or be unset to disable the API)",
        )])?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_err() {
            return Err(invalid(
                "INSUREBOT_LOG_FILTER",
                format!("'{}' is not a valid filter directive", self.log.filter),
            ));
        }
        Ok(())
    }

    /// Where the server connects: the database and the Cloud API.
    fn check_addresses(&self) -> Result<(), ConfigError> {
        let url = self.database_url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "INSUREBOT_DATABASE_URL",
                format!(
                    "must start with sqlite: or postgres:// (got scheme '{}')",
                    url.split(':').next().unwrap_or("")
                ),
            ));
        }
        let wa = &self.whatsapp;
        first_wrong(&[
            (
                "INSUREBOT_WHATSAPP_API_BASE",
                !is_http_url(&wa.api_base),
                "must be an http(s) URL such as https://graph.facebook.com/v23.0",
            ),
            (
                "INSUREBOT_WHATSAPP_PHONE_NUMBER_ID",
                wa.phone_number_id.is_empty()
                    || !wa.phone_number_id.chars().all(|c| c.is_ascii_digit()),
                "must be the numeric phone number id from WhatsApp Manager",
            ),
        ])
    }

    /// With an access token the server talks to Meta, so the sandbox's public secrets must
    /// all be replaced by the operator's own.
    fn check_production(&self) -> Result<(), ConfigError> {
        let wa = &self.whatsapp;
        let Some(token) = &wa.access_token else {
            return Ok(());
        };
        first_wrong(&[
            (
                "INSUREBOT_WHATSAPP_ACCESS_TOKEN",
                token.expose_secret().trim().is_empty(),
                "is empty; unset it for sandbox mode",
            ),
            // Outside sandbox mode the webhook must be checked with the real secret.
            (
                "INSUREBOT_WHATSAPP_APP_SECRET",
                is_missing(wa.app_secret.as_ref()),
                "is required when an access token is set",
            ),
            (
                "INSUREBOT_WHATSAPP_VERIFY_TOKEN",
                is_missing(wa.verify_token.as_ref()),
                "is required when an access token is set",
            ),
            // A public default key would make the hash of a phone number guessable.
            (
                "INSUREBOT_PRIVACY_HASH_KEY",
                self.privacy.hash_key.is_none(),
                "is required when an access token is set (at least 16 characters; never change it)",
            ),
            // A key of the process's own would break every link at a restart and differ
            // between instances; the sandbox's public key would let anyone forge one.
            (
                "INSUREBOT_INSURER_PAY_LINK_SECRET",
                self.insurer.pay_link_secret.is_none(),
                "(insurer.pay_link_secret) is required when an access token is set: the key \
                 the payment page checks link tokens with, at least 16 characters",
            ),
        ])
    }

    /// Privacy, consent, the webhook, the API, metrics, the dialogue and the outbox: each
    /// value in its range.
    fn check_limits(&self) -> Result<(), ConfigError> {
        let (webhook, dialogue, outbox) = (&self.webhook, &self.dialogue, &self.outbox);
        first_wrong(&[
            (
                "INSUREBOT_PRIVACY_HASH_KEY",
                is_short(self.privacy.hash_key.as_ref()),
                "must have at least 16 characters",
            ),
            (
                "INSUREBOT_PRIVACY_RETENTION_INTERVAL_MINUTES",
                self.privacy.retention_interval_minutes == 0,
                AT_LEAST_ONE,
            ),
            (
                "INSUREBOT_CONSENT_MARKETING_CAP_DAYS",
                self.consent.marketing_cap_days == 0,
                AT_LEAST_ONE,
            ),
            (
                "INSUREBOT_WHATSAPP_REQUEST_TIMEOUT_MS",
                self.whatsapp.request_timeout_ms == 0,
                ABOVE_ZERO,
            ),
            (
                "INSUREBOT_WEBHOOK_MAX_BODY_BYTES",
                webhook.max_body_bytes < 1024,
                "must be at least 1024",
            ),
            (
                "INSUREBOT_WEBHOOK_MAX_QUEUED",
                webhook.max_queued == 0,
                AT_LEAST_ONE,
            ),
            (
                "INSUREBOT_WEBHOOK_STORE_TIMEOUT_MS",
                webhook.store_timeout_ms == 0,
                ABOVE_ZERO,
            ),
            (
                "INSUREBOT_API_MAX_FAILURES_PER_MINUTE",
                self.api.max_failures_per_minute == 0,
                AT_LEAST_ONE,
            ),
            (
                "INSUREBOT_API_MAX_TRACKED_ADDRESSES",
                self.api.max_tracked_addresses == 0,
                AT_LEAST_ONE,
            ),
            (
                "INSUREBOT_METRICS_TOKEN",
                is_short_token(self.metrics.token.as_ref()),
                "must have at least 16 characters (or be unset to leave /metrics open)",
            ),
            (
                "INSUREBOT_METRICS_LISTEN",
                self.metrics
                    .listen
                    .is_some_and(|m| m == self.listen && m.port() != 0),
                "must differ from listen (unset it to serve /metrics there)",
            ),
            // Meta's wamids are ~60 bytes; PostgreSQL refuses index entries over ~2.7 KB.
            (
                "INSUREBOT_WEBHOOK_MAX_ID_BYTES",
                !(64..=2048).contains(&webhook.max_id_bytes),
                "must be between 64 and 2048",
            ),
            (
                "INSUREBOT_WEBHOOK_MAX_TIMESTAMP_AHEAD_SECS",
                webhook.max_timestamp_ahead_secs > 86_400,
                "must be at most 86400 (a day): a timestamp further ahead would hold the \
                 24-hour window open",
            ),
            (
                "INSUREBOT_DIALOGUE_MISUNDERSTOOD_LIMIT",
                dialogue.misunderstood_limit == 0,
                AT_LEAST_ONE,
            ),
            (
                "INSUREBOT_DIALOGUE_AGENT_WAIT_MINUTES",
                dialogue.agent_wait_minutes == 0,
                AT_LEAST_ONE,
            ),
            (
                "INSUREBOT_DIALOGUE_IDLE_RESTART_MINUTES",
                dialogue.idle_restart_minutes == 0,
                AT_LEAST_ONE,
            ),
            (
                "INSUREBOT_OUTBOX_MAX_ATTEMPTS",
                outbox.max_attempts == 0,
                AT_LEAST_ONE,
            ),
        ])?;
        if outbox.retry_base_ms > outbox.retry_max_ms {
            return Err(invalid(
                "INSUREBOT_OUTBOX_RETRY_BASE_MS",
                format!(
                    "({}) must not exceed INSUREBOT_OUTBOX_RETRY_MAX_MS ({})",
                    outbox.retry_base_ms, outbox.retry_max_ms
                ),
            ));
        }
        Ok(())
    }
}

/// The external understanding service: a URL it can be called at, a timeout, a breaker.
fn check_nlu(nlu: &NluSettings) -> Result<(), ConfigError> {
    if let Some(url) = &nlu.url
        && (!is_http_url(url) || reqwest::Url::parse(url).is_err())
    {
        return Err(invalid(
            "INSUREBOT_NLU_URL",
            format!("'{url}' is not an http(s) URL (e.g. http://rasa:5005/model/parse)"),
        ));
    }
    first_wrong(&[
        ("INSUREBOT_NLU_TIMEOUT_MS", nlu.timeout_ms == 0, ABOVE_ZERO),
        (
            "INSUREBOT_NLU_BREAKER_FAILURES",
            nlu.breaker_failures == 0,
            ABOVE_ZERO,
        ),
    ])
}

/// The console's sessions, login throttle and office hours.
fn check_console(console: &ConsoleSettings) -> Result<(), ConfigError> {
    first_wrong(&[
        (
            "INSUREBOT_CONSOLE_SESSION_HOURS",
            console.session_hours == 0,
            AT_LEAST_ONE,
        ),
        (
            "INSUREBOT_CONSOLE_LOGIN_MAX_FAILURES",
            console.login_max_failures == 0 || console.login_max_failures_per_ip == 0,
            "must be at least 1 (per email and per address)",
        ),
        (
            "INSUREBOT_CONSOLE_LOGIN_WINDOW_MINUTES",
            console.login_window_minutes == 0,
            AT_LEAST_ONE,
        ),
        (
            "INSUREBOT_CONSOLE_LOGIN_MAX_CONCURRENT_HASHES",
            !(1..=64).contains(&console.login_max_concurrent_hashes),
            "must be between 1 and 64 (each hash holds about 19 MB)",
        ),
    ])?;
    hours::OfficeHours::from_settings(console).map_err(|(key, problem)| invalid(key, problem))?;
    Ok(())
}

/// The sender's rates and windows.
fn check_messaging(m: &MessagingSettings) -> Result<(), ConfigError> {
    first_wrong(&[
        (
            "INSUREBOT_MESSAGING_RATE_PER_SECOND",
            !(1..=10_000).contains(&m.rate_per_second),
            "must be between 1 and 10000",
        ),
        (
            "INSUREBOT_MESSAGING_RATE_WINDOW_MARGIN_MS",
            m.rate_window_margin_ms > 1_000,
            "must be at most 1000 (it lengthens the one-second window)",
        ),
        (
            "INSUREBOT_MESSAGING_PAIR_BURST",
            m.pair_burst == 0,
            AT_LEAST_ONE,
        ),
        (
            "INSUREBOT_MESSAGING_PAIR_INTERVAL_MS",
            m.pair_interval_ms == 0,
            ABOVE_ZERO,
        ),
        (
            "INSUREBOT_MESSAGING_WINDOW_MARGIN_SECS",
            m.window_margin_secs >= 24 * 3600,
            "must be shorter than the 24-hour window",
        ),
        (
            "INSUREBOT_MESSAGING_MAX_IN_FLIGHT",
            m.max_in_flight == 0,
            AT_LEAST_ONE,
        ),
    ])
}

impl InsurerSettings {
    /// # Errors
    /// The first wrong `[insurer]` value, naming its variable.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let http = &self.http;
        first_wrong(&[
            (
                "INSUREBOT_INSURER_HTTP_BASE_URL",
                self.source == PolicySourceKind::Http && !is_http_url(&http.base_url),
                "must be an http(s) URL when INSUREBOT_INSURER_SOURCE is http",
            ),
            (
                "INSUREBOT_INSURER_VERIFICATION_TTL_MINUTES",
                self.verification_ttl_minutes == 0,
                ABOVE_ZERO,
            ),
            (
                "INSUREBOT_INSURER_MAX_FAILED_ATTEMPTS",
                self.max_failed_attempts == 0,
                ABOVE_ZERO,
            ),
            (
                "INSUREBOT_INSURER_MAX_FAILED_ATTEMPTS_PER_POLICY",
                self.max_failed_attempts_per_policy == 0,
                ABOVE_ZERO,
            ),
            (
                "INSUREBOT_INSURER_LOCKOUT_MINUTES",
                self.lockout_minutes == 0,
                ABOVE_ZERO,
            ),
            (
                "INSUREBOT_INSURER_LOCKOUT_RESET_HOURS",
                self.lockout_reset_hours == 0,
                ABOVE_ZERO,
            ),
            (
                "INSUREBOT_INSURER_PAY_LINK_TTL_HOURS",
                self.pay_link_ttl_hours == 0,
                ABOVE_ZERO,
            ),
            (
                "INSUREBOT_INSURER_HTTP_TIMEOUT_MS",
                http.timeout_ms == 0,
                ABOVE_ZERO,
            ),
            (
                "INSUREBOT_INSURER_HTTP_BREAKER_FAILURES",
                http.breaker_failures == 0,
                ABOVE_ZERO,
            ),
            (
                "INSUREBOT_INSURER_REPEAT_LOCKOUT_MINUTES",
                self.repeat_lockout_minutes.contains(&0),
                "every value must be greater than 0 (a list such as 120,1440)",
            ),
            (
                "INSUREBOT_INSURER_HTTP_RETRIES",
                http.retries > 5,
                "must be at most 5 (a policyholder is waiting)",
            ),
            (
                "INSUREBOT_INSURER_UTC_OFFSET_MINUTES",
                !(-720..=840).contains(&self.utc_offset_minutes),
                "must be between -720 and 840",
            ),
            (
                "INSUREBOT_INSURER_PAY_LINK_URL",
                !is_http_url(&self.pay_link_url) || !self.pay_link_url.contains("{token}"),
                "must be an http(s) URL containing {token}",
            ),
            (
                "INSUREBOT_INSURER_PAY_LINK_SECRET",
                is_short(self.pay_link_secret.as_ref()),
                "must be at least 16 characters",
            ),
        ])
    }
}
