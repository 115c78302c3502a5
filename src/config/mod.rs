//! Settings: built-in defaults, then an optional `insurebot.toml`, then `INSUREBOT_*`
//! environment variables. Everything is validated once at start-up; a wrong value stops the
//! server with one line that names the key and the problem. Secrets are `SecretString`s and
//! never appear in `Debug` output or logs.
//!
//! # Layout
//! - this file: [`Settings`] and its sections, their defaults, loading (`load`,
//!   `from_sources`) and the defaults that follow other values.
//! - `env`: the `INSUREBOT_*` variable table, one small table per section.
//! - `validate`: the range and consistency checks, run once after loading.
//! - [`numbers`]: the list of business numbers (`[[whatsapp.numbers]]`).
//! - [`reminders`], [`otp`], [`media`]: the sections of those features, kept here so the
//!   settings depend on nothing above them (the features import their settings, not the reverse).

mod env;
pub mod hours;
pub mod media;
pub mod numbers;
pub mod otp;
pub mod reminders;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// The app secret used to sign webhooks in sandbox mode when none is configured. It is public
/// on purpose: sandbox mode talks to a fake Cloud API, and the simulator and `curl` users need
/// to sign their test webhooks with something documented.
pub const SANDBOX_APP_SECRET: &str = "insurebot-sandbox-secret";
/// The verify token accepted in sandbox mode when none is configured.
pub const SANDBOX_VERIFY_TOKEN: &str = "insurebot-sandbox-verify";

/// A configuration problem, always naming the key (`INSUREBOT_LISTEN` or `listen` in the file).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

pub(crate) fn invalid(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Which component answers inbound messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialogueMode {
    /// The flow engine, driven by `flows/` and `locales/` (the default).
    Flows,
    /// Echo every message back (a diagnostic handler that also drives the pipeline tests).
    Echo,
}

/// All settings of one insurebot instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `sqlite://insurebot.db?mode=rwc` (default) or `postgres://user@host/db`.
    pub database_url: DatabaseUrl,
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Run pending migrations when the server starts.
    pub auto_migrate: bool,
    /// Mark inbound messages as read when the bot answers them.
    pub mark_read: bool,
    /// `redis://host:6379`: the instances share the number's sending rate through this Redis
    /// instead of the database (see `messaging.shared_rate`). Secret: it may hold a password.
    pub redis_url: Option<SecretString>,
    pub dialogue: DialogueSettings,
    pub log: LogSettings,
    pub whatsapp: WhatsAppSettings,
    pub webhook: WebhookSettings,
    pub outbox: OutboxSettings,
    pub console: ConsoleSettings,
    pub insurer: InsurerSettings,
    pub messaging: MessagingSettings,
    pub consent: ConsentSettings,
    pub privacy: PrivacySettings,
    /// `[reminders]`: the premium-reminder scheduler (see [`reminders`]).
    pub reminders: reminders::RemindersSettings,
    /// `[campaigns]`: broadcasts.
    pub campaigns: reminders::CampaignSettings,
    /// Bearer token of the HTTP API (`/api/v1/...`); without one the API refuses every call.
    pub api_token: Option<SecretString>,
    /// `[api]`: how wrong API tokens are throttled.
    pub api: ApiSettings,
    /// `[metrics]`: who may read `/metrics`, and where.
    pub metrics: MetricsSettings,
    /// `[otp]`: one-time passwords (see [`otp`]).
    pub otp: otp::OtpSettings,
    /// `[media]`: the media store and inbound downloads (see [`media`]).
    pub media: media::MediaSettings,
    /// `[nlu]`: an optional external understanding service (see `crate::nlu`).
    pub nlu: NluSettings,
}

/// An external understanding service (Rasa's `POST /model/parse` or one speaking its
/// shape), asked what free text means before the built-in matcher. Off without a `url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NluSettings {
    /// Full URL of the parse endpoint, e.g. `http://rasa:5005/model/parse`; unset: off.
    pub url: Option<String>,
    /// Timeout of one request, in milliseconds: the policyholder is waiting, and the
    /// built-in matcher answers when it passes.
    pub timeout_ms: u64,
    /// Consecutive failed calls that open the circuit.
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls, in milliseconds.
    pub breaker_cooldown_ms: u64,
}

impl Default for NluSettings {
    fn default() -> Self {
        Self {
            url: None,
            timeout_ms: 300,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
        }
    }
}

/// Throttling of wrong API tokens, per client address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Wrong tokens one client address may send per minute (as a burst, then refilled evenly);
    /// past it the address is answered 429 with `Retry-After` for every API call.
    pub max_failures_per_minute: u32,
    /// Client addresses whose failures are remembered at most (IPv6 counted per /64), which
    /// bounds the throttle's memory; when all are in use, a wrong token from a new address is
    /// answered 429 at once.
    pub max_tracked_addresses: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            max_failures_per_minute: 10,
            max_tracked_addresses: 10_000,
        }
    }
}

/// Access to the Prometheus metrics.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Bearer token `/metrics` requires; without one it is open to whoever reaches it.
    pub token: Option<SecretString>,
    /// Serve `/metrics` on this address (e.g. an internal interface) instead of `listen`;
    /// without one it is served on `listen` beside the webhook.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialogueSettings {
    /// Which component answers inbound messages.
    pub handler: DialogueMode,
    /// Directory of the flow files (`*.yaml`).
    pub flows_dir: PathBuf,
    /// Directory of the fluent files (`<lang>/*.ftl`).
    pub locales_dir: PathBuf,
    /// Language of a new conversation until the contact picks one.
    pub default_language: String,
    /// Misunderstood messages in a row before an agent is offered.
    pub misunderstood_limit: u32,
    /// Minutes of silence after which a conversation restarts at the menu.
    pub idle_restart_minutes: u32,
    /// Reload flows when their files change (checked every 2 s) and on SIGHUP.
    pub watch: bool,
    /// Minutes a policyholder may wait for an agent before the bot takes the conversation back
    /// and says no agent is free (checked every 30 s). Only the console's office hours count:
    /// nobody could have answered while the office was closed.
    pub agent_wait_minutes: u32,
    /// Minutes (office hours) after which a conversation an agent took, with nothing from the
    /// policyholder or the agent since, is closed and back with the bot; 0: never.
    pub agent_idle_close_minutes: u32,
    /// Minutes (office hours) a policyholder's message may wait for an answer from the agent
    /// who has the conversation before it goes back to the queue for any agent; 0: never.
    pub agent_reply_minutes: u32,
}

impl Default for DialogueSettings {
    fn default() -> Self {
        Self {
            handler: DialogueMode::Flows,
            flows_dir: PathBuf::from("flows"),
            locales_dir: PathBuf::from("locales"),
            default_language: "en".into(),
            misunderstood_limit: 3,
            idle_restart_minutes: 30,
            watch: true,
            agent_wait_minutes: 240,
            agent_idle_close_minutes: 480,
            agent_reply_minutes: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive, e.g. `info,insurebot=debug`.
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsAppSettings {
    /// App secret (App Dashboard → Settings → Basic) used to check `X-Hub-Signature-256`.
    pub app_secret: Option<SecretString>,
    /// The verify token typed into the App Dashboard's webhook configuration.
    pub verify_token: Option<SecretString>,
    /// A system-user access token. Without one the server runs in sandbox mode.
    pub access_token: Option<SecretString>,
    /// The business phone number id messages are sent from.
    pub phone_number_id: String,
    /// Graph API base URL including its version.
    pub api_base: String,
    /// Timeout of one Cloud API request, in milliseconds.
    pub request_timeout_ms: u64,
    /// The WhatsApp Business Account id, needed by `insurebot templates sync` and by the
    /// periodic sync of `serve`.
    pub waba_id: Option<String>,
    /// Seconds between template syncs while serving (with `waba_id` set; 0: never). Status
    /// webhooks move a template at once; the sync catches what a missed webhook or an edit in
    /// WhatsApp Manager left out.
    pub template_sync_secs: u64,
    /// Speak HTTP/2 without TLS (prior knowledge) to an `http://` `api_base`: for a stand-in
    /// that speaks h2c. An `https://` base negotiates HTTP/2 by ALPN whatever this says, and
    /// falls back to HTTP/1.1 keep-alive when the server does not offer it.
    pub h2c: bool,
    /// Sandbox mode only: the built-in fake Cloud API answers each request after this many
    /// milliseconds, to try the sender against a realistic round trip (250 ms from India).
    pub sandbox_latency_ms: u64,
    /// Several business numbers in one deployment (`[[whatsapp.numbers]]`, see
    /// [`numbers`]); empty: the one number above.
    pub numbers: Vec<numbers::NumberSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Largest webhook body accepted, in bytes (larger → 413).
    pub max_body_bytes: usize,
    /// Serve `POST /bench/baseline`, which only checks the signature and answers 200: the
    /// ceiling the load benchmark compares the real webhook with. Off in production.
    pub bench_baseline: bool,
    /// Webhooks waiting to be stored at most; past it a webhook is answered 503 at once (Meta
    /// delivers it again later) instead of queueing in memory without bound under overload.
    pub max_queued: usize,
    /// How long a webhook waits for the database to store it, in milliseconds; past it (the
    /// database down, unreachable or locked) it is answered 503 with `Retry-After` and Meta
    /// delivers it again.
    pub store_timeout_ms: u64,
    /// Longest id a webhook item may carry (a wamid, a sender's phone number or BSUID), in
    /// bytes; an item with a longer one is refused alone (logged, counted in
    /// `insurebot_webhook_items_refused_total`) and the rest of the webhook stored. At most
    /// 2048: PostgreSQL's index entries cannot be much longer.
    pub max_id_bytes: usize,
    /// How far ahead of the receive time a webhook's timestamp may be (the clocks' skew), in
    /// seconds. A timestamp further ahead, zero, negative or out of range is replaced by the
    /// receive time (counted in `insurebot_webhook_values_replaced_total`), so that it
    /// cannot open or hold the 24-hour window.
    pub max_timestamp_ahead_secs: u64,
}

impl WebhookSettings {
    /// What the parser holds an envelope received at `received_at` (Unix ms) to.
    pub fn parse_options(&self, received_at: i64) -> crate::whatsapp::inbound::ParseOptions {
        crate::whatsapp::inbound::ParseOptions {
            max_id_bytes: self.max_id_bytes,
            // Validated to at most a day: no overflow.
            max_ahead_ms: self.max_timestamp_ahead_secs as i64 * 1000,
            received_at,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Attempts before a message is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles on each attempt, with jitter.
    pub retry_base_ms: u64,
    /// Longest delay between two attempts, in milliseconds.
    pub retry_max_ms: u64,
    /// How long a send that timed out waits before it is sent again, in milliseconds. Meta may
    /// have taken it (the request arrived, the answer did not): a status webhook naming its
    /// row in `biz_opaque_callback_data` within this time marks the row sent, and it is not
    /// sent twice.
    pub unconfirmed_wait_ms: u64,
}

/// The agent console: sessions, login limiting and office hours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// Mark the session cookie `Secure` (set when the console is served over HTTPS, directly
    /// or behind a TLS-terminating proxy). A request seen with `X-Forwarded-Proto: https`
    /// gets a `Secure` cookie either way.
    pub secure_cookies: bool,
    /// How long a login lasts, in hours.
    pub session_hours: u32,
    /// Failed logins for one email within `login_window_minutes` before it is refused.
    pub login_max_failures: u32,
    /// Failed logins from one client address within the window before it is refused.
    pub login_max_failures_per_ip: u32,
    /// The window the failures are counted in, in minutes.
    pub login_window_minutes: u32,
    /// Password hashes (argon2id: about 19 MB and one core each) run at once; a login beyond
    /// them is answered 503 with `Retry-After` at once instead of queueing memory.
    pub login_max_concurrent_hashes: u32,
    /// Days the team answers: `mon-fri`, `mon-sat`, `mon-sun` or a list like `mon,wed,fri`.
    pub office_days: String,
    /// Opening time, `HH:MM` local time.
    pub office_open: String,
    /// Closing time, `HH:MM` local time.
    pub office_close: String,
    /// Local time's offset from UTC (`+05:30` is Asia/Kolkata). A fixed offset rather than a
    /// time-zone name: India has no daylight saving, and it spares the tz database in the binary.
    pub utc_offset: String,
    /// The time-zone label shown to policyholders next to the office hours.
    pub timezone_label: String,
    /// The transcript view log: an open conversation page's live refreshes of the transcript
    /// count into the reader's latest sitting while it is younger than this many minutes;
    /// after that a refresh starts a new one (0: every refresh is a row of its own). Opening
    /// the page always starts one.
    pub view_log_merge_minutes: u32,
    /// Send `Strict-Transport-Security` on console pages. HTTPS is also recognised by
    /// `secure_cookies` or `X-Forwarded-Proto: https`; this only sets the max-age (0: never).
    pub hsts_max_age_secs: u32,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            session_hours: 12,
            login_max_failures: 5,
            login_max_failures_per_ip: 20,
            login_window_minutes: 15,
            login_max_concurrent_hashes: 2,
            office_days: "mon-sat".into(),
            office_open: "09:00".into(),
            office_close: "18:00".into(),
            utc_offset: "+05:30".into(),
            timezone_label: "IST".into(),
            view_log_merge_minutes: 30,
            hsts_max_age_secs: 31_536_000,
        }
    }
}

/// Where policies, claims and premiums come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicySourceKind {
    /// insurebot's own tables, filled by `insurebot import`.
    Embedded,
    /// The insurer's REST API (`[insurer.http]`).
    Http,
}

/// `[insurer]`: the policy data source, identity checks and payment links.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InsurerSettings {
    /// `embedded` (imported CSV files) or `http` (the insurer's API).
    pub source: PolicySourceKind,
    /// How long a verification lasts, in minutes.
    pub verification_ttl_minutes: u64,
    /// Failed date-of-birth checks in a row before the contact is locked out.
    pub max_failed_attempts: u32,
    /// Failed date-of-birth checks in a row against one policy number, from any contacts,
    /// before that policy's verification by date of birth is locked (guesses spread over
    /// many WhatsApp numbers).
    pub max_failed_attempts_per_policy: u32,
    /// How long a lockout lasts, in minutes (the first one; see `repeat_lockout_minutes`).
    pub lockout_minutes: u64,
    /// How long the lockouts after the first last, in minutes, in order; the last value
    /// repeats. A lockout counts as a repeat while the previous one ended less than
    /// `lockout_reset_hours` ago. Empty: every lockout lasts `lockout_minutes`.
    pub repeat_lockout_minutes: Vec<u64>,
    /// Hours without a lockout (and failures counted in a row) after which a contact or
    /// policy starts again from the first lockout and from zero failures.
    pub lockout_reset_hours: u64,
    /// A premium counts as due when unpaid and due within this many days (or overdue).
    pub premium_due_window_days: u32,
    /// "Remind me later" reminds this many days before the due date (tomorrow at the earliest).
    pub remind_days_before: u32,
    /// Offset of the insurer's calendar from UTC in minutes (India: 330); decides "today".
    pub utc_offset_minutes: i32,
    /// Payment link pattern: `{policy_number}` and `{token}` (optionally `{amount}`, `{due_date}`).
    pub pay_link_url: String,
    /// HMAC key the payment page checks link tokens with (at least 16 characters).
    pub pay_link_secret: Option<SecretString>,
    /// How long a payment link stays valid, in hours.
    pub pay_link_ttl_hours: u64,
    /// Policy schedules of the embedded source: a directory of files named after the policy
    /// number (`LIC00012345678.pdf`); `policy.document` sends the file as a WhatsApp document.
    /// `None`: no files, the document link (if any) is sent as text.
    pub documents_dir: Option<std::path::PathBuf>,
    pub http: InsurerHttpSettings,
}

/// `[insurer.http]`: the insurer's REST API (see `src/insurer/insurer-api.openapi.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InsurerHttpSettings {
    /// Base URL, e.g. `https://api.insurer.example/chatbot/v1`.
    pub base_url: String,
    /// Bearer token sent with every request.
    pub token: Option<SecretString>,
    /// Timeout of one request, in milliseconds.
    pub timeout_ms: u64,
    /// Extra attempts of a failed read (timeouts, connection errors, 429, 5xx).
    pub retries: u32,
    /// First retry delay in milliseconds; doubles per retry, with jitter.
    pub retry_backoff_ms: u64,
    /// Consecutive failed calls that open the circuit.
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls, in milliseconds.
    pub breaker_cooldown_ms: u64,
    /// This server's public base URL as the insurer's system reaches it (e.g.
    /// `https://bot.insurer.example`): files sent for a claim reach the insurer as signed
    /// links under it (`/files/claims/…`). Empty: claims with files cannot be sent.
    pub file_link_base: String,
    /// How long a claim file link works, in minutes.
    pub file_link_ttl_minutes: u64,
}

impl Default for InsurerSettings {
    fn default() -> Self {
        Self {
            source: PolicySourceKind::Embedded,
            verification_ttl_minutes: 30,
            max_failed_attempts: 3,
            max_failed_attempts_per_policy: 5,
            lockout_minutes: 30,
            repeat_lockout_minutes: vec![120, 1440],
            lockout_reset_hours: 24,
            premium_due_window_days: 30,
            remind_days_before: 3,
            utc_offset_minutes: 330,
            pay_link_url: "https://pay.example.in/p/{policy_number}?t={token}".into(),
            pay_link_secret: None,
            pay_link_ttl_hours: 48,
            documents_dir: None,
            http: InsurerHttpSettings::default(),
        }
    }
}

impl Default for InsurerHttpSettings {
    fn default() -> Self {
        // Worst case per read: 3 attempts x 1.5 s plus ~0.3 s of backoff, under 5 s.
        Self {
            base_url: String::new(),
            token: None,
            timeout_ms: 1500,
            retries: 2,
            retry_backoff_ms: 100,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
            file_link_base: String::new(),
            // A day: long enough for an insurer's queue to get to it.
            file_link_ttl_minutes: 1440,
        }
    }
}

/// The composer and the sender: the 24-hour window, templates and pacing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagingSettings {
    /// Messages per second for the business phone number (Cloud API default 80; up to 1000
    /// after Meta's upgrade). The sender never exceeds it in any one-second window.
    pub rate_per_second: u32,
    /// The sender counts `rate_per_second` over a window this many milliseconds longer than a
    /// second, so that requests released a second apart, one of them held up on its way, still
    /// arrive a second apart. Each 10 ms costs 1% of the rate.
    pub rate_window_margin_ms: u64,
    /// Messages one contact may receive in a burst before per-recipient pacing applies.
    pub pair_burst: u32,
    /// Sustained per-recipient pace: one message per this many milliseconds (Meta's pair rate
    /// limit is about one per 6 s).
    pub pair_interval_ms: u64,
    /// The window is treated as closed this many seconds before the 24 hours are up, so a
    /// message decided at the edge is not refused with 131047 on arrival.
    pub window_margin_secs: u64,
    /// Share `rate_per_second` with every instance sending from the number (turn it on when
    /// more than one instance runs): through Redis when `redis_url` is set, else through
    /// PostgreSQL (one statement per take, one take at a time per instance; a database slow
    /// to answer costs some of the rate); SQLite serves one instance and keeps the rate in
    /// memory. Off (default): each instance holds the rate on its own, so two instances send
    /// twice it.
    pub shared_rate: bool,
    /// The most sends in flight at once: a bound, not a target. The sender keeps as many in
    /// flight as the rate needs at the Cloud API's observed latency (rate × latency, with
    /// headroom), up to this; 1,000/s at a 500 ms round trip needs about 750.
    pub max_in_flight: u32,
    /// The template registry file, loaded at start (statuses then follow sync and webhooks).
    pub templates_file: PathBuf,
}

impl Default for MessagingSettings {
    fn default() -> Self {
        Self {
            rate_per_second: 80,
            rate_window_margin_ms: 20,
            pair_burst: 20,
            pair_interval_ms: 6_000,
            window_margin_secs: 600,
            shared_rate: false,
            max_in_flight: 1000,
            templates_file: PathBuf::from("flows/templates/templates.yaml"),
        }
    }
}

/// `[consent]`: what the consent gate lets through (see `crate::consent`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentSettings {
    /// Require a recorded opt-in (service or reminders scope) before non-essential
    /// notifications; `false` lets them reach contacts whose consent is unknown (the insurer
    /// collected it with the policy). Marketing always needs a recorded marketing opt-in.
    pub require_opt_in: bool,
    /// Marketing messages (campaign sends) one contact may receive per period; 0 sends none.
    pub marketing_cap: u32,
    /// The period of `marketing_cap`, in days.
    pub marketing_cap_days: u32,
    /// Notification kinds that count as reminders (the `reminders` scope); others are service.
    pub reminder_kinds: Vec<String>,
}

impl Default for ConsentSettings {
    fn default() -> Self {
        Self {
            require_opt_in: false,
            marketing_cap: 2,
            marketing_cap_days: 7,
            reminder_kinds: vec![
                "premium_due".into(),
                "premium_reminder".into(),
                "renewal_reminder".into(),
            ],
        }
    }
}

/// `[privacy]`: erasure and retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySettings {
    /// Key of the one-way hash (HMAC-SHA256) of phone numbers kept in the consent log, so an
    /// erased contact's opt-out is still honoured. Required outside sandbox mode; never change
    /// it, or erased contacts' opt-outs can no longer be found.
    pub hash_key: Option<SecretString>,
    /// Message bodies (inbound content and raw payloads, outbound payloads) older than this
    /// many days are purged; 0 keeps them.
    pub retention_days: u32,
    /// How often the retention purge runs, in minutes.
    pub retention_interval_minutes: u32,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        Self {
            hash_key: None,
            retention_days: 0,
            retention_interval_minutes: 60,
        }
    }
}

/// The hash key used in sandbox mode when none is configured; public on purpose, like
/// [`SANDBOX_APP_SECRET`].
pub const SANDBOX_HASH_KEY: &str = "insurebot-sandbox-hash-key";

/// The payment-link key used in sandbox mode when none is configured; public on purpose, like
/// [`SANDBOX_APP_SECRET`]: sandbox links stay valid across restarts and instances, and
/// anyone can forge one. Outside sandbox mode `insurer.pay_link_secret` is required.
pub const SANDBOX_PAY_LINK_SECRET: &str = "insurebot-sandbox-pay-link-secret";

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: DatabaseUrl("sqlite://insurebot.db?mode=rwc".into()),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auto_migrate: true,
            mark_read: true,
            redis_url: None,
            dialogue: DialogueSettings::default(),
            log: LogSettings::default(),
            whatsapp: WhatsAppSettings::default(),
            webhook: WebhookSettings::default(),
            outbox: OutboxSettings::default(),
            console: ConsoleSettings::default(),
            insurer: InsurerSettings::default(),
            messaging: MessagingSettings::default(),
            consent: ConsentSettings::default(),
            privacy: PrivacySettings::default(),
            reminders: Default::default(),
            campaigns: Default::default(),
            api_token: None,
            api: ApiSettings::default(),
            metrics: MetricsSettings::default(),
            otp: Default::default(),
            media: Default::default(),
            nlu: Default::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            filter: "info".into(),
        }
    }
}

impl Default for WhatsAppSettings {
    fn default() -> Self {
        Self {
            app_secret: None,
            verify_token: None,
            access_token: None,
            phone_number_id: "100000000000001".into(),
            api_base: "https://graph.facebook.com/v23.0".into(),
            request_timeout_ms: 10_000,
            waba_id: None,
            template_sync_secs: 3_600,
            h2c: false,
            sandbox_latency_ms: 0,
            numbers: Vec::new(),
        }
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        // Meta does not document a maximum; real batches stay well under 1 MiB.
        Self {
            max_body_bytes: 3 * 1024 * 1024,
            bench_baseline: false,
            // About two seconds of traffic at 3,000 webhooks/s, a few MB of memory.
            max_queued: 5_000,
            // Acks take milliseconds (p99 ~25 ms at 3,000 webhooks/s): a second is an outage.
            store_timeout_ms: 1_000,
            max_id_bytes: crate::whatsapp::inbound::DEFAULT_MAX_ID_BYTES,
            max_timestamp_ahead_secs: crate::whatsapp::inbound::DEFAULT_MAX_TIMESTAMP_AHEAD_SECS,
        }
    }
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retry_base_ms: 500,
            retry_max_ms: 5 * 60 * 1000,
            // Meta's `sent` status usually follows its answer within seconds.
            unconfirmed_wait_ms: 30_000,
        }
    }
}

impl Settings {
    /// True when no access token is configured: outbound messages go to the built-in fake
    /// Cloud API instead of Meta.
    pub fn sandbox(&self) -> bool {
        self.whatsapp.access_token.is_none()
    }

    /// The app secret webhooks are signed with (the sandbox default in sandbox mode).
    pub fn app_secret(&self) -> SecretString {
        self.whatsapp
            .app_secret
            .clone()
            .unwrap_or_else(|| SecretString::from(SANDBOX_APP_SECRET))
    }

    /// The verify token for the webhook handshake (the sandbox default in sandbox mode).
    pub fn verify_token(&self) -> SecretString {
        self.whatsapp
            .verify_token
            .clone()
            .unwrap_or_else(|| SecretString::from(SANDBOX_VERIFY_TOKEN))
    }

    /// The key of the address hash (the sandbox default in sandbox mode).
    pub fn hash_key(&self) -> SecretString {
        self.privacy
            .hash_key
            .clone()
            .unwrap_or_else(|| SecretString::from(SANDBOX_HASH_KEY))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.whatsapp.request_timeout_ms)
    }

    /// Loads `path` (when it exists, or when it was named explicitly) and the environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first wrong key.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let default_path = Path::new("insurebot.toml");
        let file = match path {
            Some(p) => Some(read_file(p)?),
            None if default_path.exists() => Some(read_file(default_path)?),
            None => None,
        };
        Self::from_sources(file.as_deref(), &env)
    }

    /// Builds settings from a TOML text and an environment map; used by `load` and by tests.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first wrong key.
    pub fn from_sources(
        toml_text: Option<&str>,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut settings = match toml_text {
            Some(text) => toml::from_str::<Settings>(text).map_err(|e| ConfigError::File {
                path: PathBuf::from("insurebot.toml"),
                message: e.to_string().trim().replace('\n', " "),
            })?,
            None => Settings::default(),
        };
        settings.apply_env(env)?;
        let set = Explicit {
            file: toml_text.and_then(|text| toml::from_str(text).ok()),
            env,
        };
        settings.follow_set_values(&set)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Defaults that depend on another setting follow the value the operator gave it (setting
    /// only `INSUREBOT_MESSAGING_RATE_PER_SECOND=20` lowers the campaigns' rates with it); two
    /// values the operator set that contradict each other are an error naming both keys.
    /// Each value's own range is checked afterwards, in `validate`.
    fn follow_set_values(&mut self, set: &Explicit<'_>) -> Result<(), ConfigError> {
        self.campaigns.follow(&self.messaging, set)?;
        self.reminders.follow(set);
        let outbox = &mut self.outbox;
        if outbox.retry_base_ms > outbox.retry_max_ms {
            // The one the operator did not set gives way; both set is `validate`'s error.
            if !set.is_set("outbox", "retry_max_ms") {
                outbox.retry_max_ms = outbox.retry_base_ms;
            } else if !set.is_set("outbox", "retry_base_ms") {
                outbox.retry_base_ms = outbox.retry_max_ms;
            }
        }
        Ok(())
    }
}

/// Which keys the operator set, in the file or in the environment.
pub(crate) struct Explicit<'a> {
    file: Option<toml::Table>,
    env: &'a BTreeMap<String, String>,
}

impl Explicit<'_> {
    /// Whether `[section] key` is in the file or `INSUREBOT_SECTION_KEY` in the environment.
    pub(crate) fn is_set(&self, section: &str, key: &str) -> bool {
        let in_file = self
            .file
            .as_ref()
            .and_then(|file| file.get(section))
            .and_then(|table| table.get(key))
            .is_some();
        let variable = format!("INSUREBOT_{section}_{key}").to_ascii_uppercase();
        in_file || self.env.contains_key(&variable)
    }
}

/// A database URL whose `Debug` hides the password (`postgres://user:***@host/db`).
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_sqlite(&self) -> bool {
        self.0.starts_with("sqlite:")
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // scheme://user:password@host → scheme://user:***@host
        let url = &self.0;
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &url[scheme_end + 3..at];
                let user = userinfo.split(':').next().unwrap_or("");
                write!(f, "\"{}{user}:***{}\"", &url[..scheme_end + 3], &url[at..])
            }
            _ => write!(f, "{url:?}"),
        }
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_sandbox_mode_on_a_local_sqlite_file() {
        let s = Settings::from_sources(None, &env(&[])).unwrap();
        assert!(s.sandbox());
        assert!(s.database_url.is_sqlite());
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = "listen = \"0.0.0.0:9000\"\n[whatsapp]\nphone_number_id = \"123\"\n";
        let s = Settings::from_sources(
            Some(file),
            &env(&[
                ("INSUREBOT_LISTEN", "127.0.0.1:7000"),
                ("INSUREBOT_OUTBOX_MAX_ATTEMPTS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(s.whatsapp.phone_number_id, "123");
        assert_eq!(s.outbox.max_attempts, 3);
    }

    #[test]
    fn a_wrong_value_names_its_key() {
        let err = Settings::from_sources(None, &env(&[("INSUREBOT_LISTEN", "nope")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("INSUREBOT_LISTEN: 'nope' is not valid"),
            "{err}"
        );
        let err =
            Settings::from_sources(None, &env(&[("INSUREBOT_LOG_FORMAT", "xml")])).unwrap_err();
        assert!(
            err.to_string().starts_with("INSUREBOT_LOG_FORMAT:"),
            "{err}"
        );
    }

    #[test]
    fn the_shipped_example_file_is_valid_and_matches_the_defaults() {
        let text = include_str!("../../insurebot.example.toml");
        let s = Settings::from_sources(Some(text), &env(&[])).unwrap();
        let d = Settings::default();
        assert_eq!(format!("{s:?}"), format!("{d:?}"));
    }

    #[test]
    fn the_understanding_service_is_off_without_a_url_and_its_settings_are_checked() {
        assert_eq!(Settings::default().nlu.url, None);
        let s = Settings::from_sources(
            None,
            &env(&[
                ("INSUREBOT_NLU_URL", "http://rasa:5005/model/parse"),
                ("INSUREBOT_NLU_TIMEOUT_MS", "250"),
            ]),
        )
        .unwrap();
        assert_eq!(s.nlu.url.as_deref(), Some("http://rasa:5005/model/parse"));
        assert_eq!(s.nlu.timeout_ms, 250);
        let err =
            Settings::from_sources(None, &env(&[("INSUREBOT_NLU_URL", "rasa:5005")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("INSUREBOT_NLU_URL: 'rasa:5005' is not an http(s) URL"),
            "{err}"
        );
        let err = Settings::from_sources(None, &env(&[("INSUREBOT_NLU_BREAKER_FAILURES", "0")]))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("INSUREBOT_NLU_BREAKER_FAILURES"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_file_key_is_an_error_with_its_name() {
        let err = Settings::from_sources(Some("lisen = \"x\""), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn production_mode_requires_the_app_secret_and_verify_token() {
        let err =
            Settings::from_sources(None, &env(&[("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "EAAG")]))
                .unwrap_err();
        assert!(
            err.to_string().starts_with("INSUREBOT_WHATSAPP_APP_SECRET"),
            "{err}"
        );
    }

    #[test]
    fn insurer_settings_come_from_the_environment_and_are_validated() {
        let s = Settings::from_sources(
            None,
            &env(&[
                ("INSUREBOT_INSURER_SOURCE", "http"),
                (
                    "INSUREBOT_INSURER_HTTP_BASE_URL",
                    "https://api.insurer.example/v1",
                ),
                ("INSUREBOT_INSURER_LOCKOUT_MINUTES", "15"),
                ("INSUREBOT_INSURER_HTTP_TOKEN", "insurer-very-secret"),
            ]),
        )
        .unwrap();
        assert_eq!(s.insurer.source, PolicySourceKind::Http);
        assert_eq!(s.insurer.lockout_minutes, 15);
        assert!(!format!("{s:?}").contains("very-secret"));
        let err = Settings::from_sources(None, &env(&[("INSUREBOT_INSURER_SOURCE", "http")]))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("INSUREBOT_INSURER_HTTP_BASE_URL"),
            "{err}"
        );
        let err = Settings::from_sources(
            None,
            &env(&[("INSUREBOT_INSURER_PAY_LINK_URL", "https://pay.example.in/p")]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("INSUREBOT_INSURER_PAY_LINK_URL"),
            "{err}"
        );
    }

    #[test]
    fn lockout_escalation_and_the_password_gate_come_from_the_environment() {
        let s = Settings::from_sources(
            None,
            &env(&[
                ("INSUREBOT_INSURER_MAX_FAILED_ATTEMPTS_PER_POLICY", "4"),
                ("INSUREBOT_INSURER_REPEAT_LOCKOUT_MINUTES", "60, 240"),
                ("INSUREBOT_INSURER_LOCKOUT_RESET_HOURS", "12"),
                ("INSUREBOT_CONSOLE_LOGIN_MAX_CONCURRENT_HASHES", "4"),
            ]),
        )
        .unwrap();
        assert_eq!(s.insurer.max_failed_attempts_per_policy, 4);
        assert_eq!(s.insurer.repeat_lockout_minutes, vec![60, 240]);
        assert_eq!(s.insurer.lockout_reset_hours, 12);
        assert_eq!(s.console.login_max_concurrent_hashes, 4);
        let defaults = Settings::from_sources(None, &env(&[])).unwrap();
        assert_eq!(defaults.insurer.repeat_lockout_minutes, vec![120, 1440]);
        assert_eq!(defaults.console.login_max_concurrent_hashes, 2);
        for (key, value) in [
            ("INSUREBOT_INSURER_REPEAT_LOCKOUT_MINUTES", "120,0"),
            ("INSUREBOT_INSURER_REPEAT_LOCKOUT_MINUTES", "two hours"),
            ("INSUREBOT_CONSOLE_LOGIN_MAX_CONCURRENT_HASHES", "0"),
            ("INSUREBOT_CONSOLE_LOGIN_MAX_CONCURRENT_HASHES", "65"),
            ("INSUREBOT_INSURER_MAX_FAILED_ATTEMPTS_PER_POLICY", "0"),
        ] {
            let err = Settings::from_sources(None, &env(&[(key, value)])).unwrap_err();
            assert!(err.to_string().starts_with(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn production_mode_requires_a_hash_key_and_consent_settings_come_from_the_environment() {
        let prod = [
            ("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "EAAG"),
            ("INSUREBOT_WHATSAPP_APP_SECRET", "app"),
            ("INSUREBOT_WHATSAPP_VERIFY_TOKEN", "verify"),
        ];
        let err = Settings::from_sources(None, &env(&prod)).unwrap_err();
        assert!(
            err.to_string().starts_with("INSUREBOT_PRIVACY_HASH_KEY"),
            "{err}"
        );
        let mut with_key = prod.to_vec();
        with_key.extend([
            ("INSUREBOT_PRIVACY_HASH_KEY", "hash-key-very-secret"),
            ("INSUREBOT_INSURER_PAY_LINK_SECRET", "pay-link-very-secret"),
            ("INSUREBOT_CONSENT_MARKETING_CAP", "1"),
            ("INSUREBOT_CONSENT_REMINDER_KINDS", "premium_due, lapse"),
            ("INSUREBOT_PRIVACY_RETENTION_DAYS", "90"),
        ]);
        let s = Settings::from_sources(None, &env(&with_key)).unwrap();
        assert_eq!(s.consent.marketing_cap, 1);
        assert_eq!(s.consent.reminder_kinds, ["premium_due", "lapse"]);
        assert_eq!(s.privacy.retention_days, 90);
        assert!(!format!("{s:?}").contains("very-secret"));
        let err =
            Settings::from_sources(None, &env(&[("INSUREBOT_CONSENT_MARKETING_CAP_DAYS", "0")]))
                .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("INSUREBOT_CONSENT_MARKETING_CAP_DAYS"),
            "{err}"
        );
    }

    #[test]
    fn production_mode_requires_a_pay_link_secret_and_the_sandbox_does_not() {
        let prod = [
            ("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "EAAG"),
            ("INSUREBOT_WHATSAPP_APP_SECRET", "app"),
            ("INSUREBOT_WHATSAPP_VERIFY_TOKEN", "verify"),
            ("INSUREBOT_PRIVACY_HASH_KEY", "hash-key-very-secret"),
        ];
        let err = Settings::from_sources(None, &env(&prod)).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("INSUREBOT_INSURER_PAY_LINK_SECRET")
                && message.contains("insurer.pay_link_secret"),
            "{err}"
        );
        let mut with_secret = prod.to_vec();
        with_secret.push(("INSUREBOT_INSURER_PAY_LINK_SECRET", "pay-link-very-secret"));
        assert!(Settings::from_sources(None, &env(&with_secret)).is_ok());
        let in_file = "[insurer]\npay_link_secret = \"pay-link-very-secret\"\n";
        assert!(Settings::from_sources(Some(in_file), &env(&prod)).is_ok());
        // The sandbox needs none.
        assert!(Settings::from_sources(None, &env(&[])).is_ok());
    }

    #[test]
    fn defaults_that_depend_on_a_set_value_follow_it() {
        // Only the number's rate: the campaigns' rates come down with it.
        let s =
            Settings::from_sources(None, &env(&[("INSUREBOT_MESSAGING_RATE_PER_SECOND", "20")]))
                .unwrap();
        assert_eq!(s.campaigns.max_rate_per_second, 15);
        assert_eq!(s.campaigns.default_rate_per_second, 15);
        // Room below the rate for a campaign rate the operator asked for.
        let s = Settings::from_sources(
            Some("[messaging]\nrate_per_second = 20\n[campaigns]\ndefault_rate_per_second = 18\n"),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(s.campaigns.max_rate_per_second, 18);
        assert_eq!(s.campaigns.default_rate_per_second, 18);
        // Untouched, the defaults are the documented ones.
        let d = Settings::from_sources(None, &env(&[])).unwrap();
        assert_eq!(d.campaigns.max_rate_per_second, 60);
        assert_eq!(d.campaigns.default_rate_per_second, 20);
        // A retry base above the default cap raises the cap; quiet hours over the default run
        // time move the run to their end; grace days past a shorter grace period drop out.
        let s = Settings::from_sources(
            None,
            &env(&[
                ("INSUREBOT_OUTBOX_RETRY_BASE_MS", "600000"),
                ("INSUREBOT_REMINDERS_QUIET_START", "08:00"),
                ("INSUREBOT_REMINDERS_QUIET_END", "11:00"),
                ("INSUREBOT_REMINDERS_GRACE_PERIOD_DAYS", "15"),
            ]),
        )
        .unwrap();
        assert_eq!(s.outbox.retry_max_ms, 600_000);
        assert_eq!(s.reminders.run_at, "11:00");
        assert_eq!(s.reminders.grace_days, [3, 10]);
    }

    #[test]
    fn set_values_that_contradict_each_other_name_both_keys() {
        let both = |pairs: &[(&str, &str)], first: &str, second: &str| {
            let err = Settings::from_sources(None, &env(pairs)).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with(first) && message.contains(second),
                "{message}"
            );
        };
        both(
            &[
                ("INSUREBOT_MESSAGING_RATE_PER_SECOND", "20"),
                ("INSUREBOT_CAMPAIGNS_MAX_RATE_PER_SECOND", "60"),
            ],
            "INSUREBOT_CAMPAIGNS_MAX_RATE_PER_SECOND",
            "INSUREBOT_MESSAGING_RATE_PER_SECOND",
        );
        // Against the default rate (80) as well: the campaign rate was set.
        both(
            &[("INSUREBOT_CAMPAIGNS_MAX_RATE_PER_SECOND", "100")],
            "INSUREBOT_CAMPAIGNS_MAX_RATE_PER_SECOND",
            "INSUREBOT_MESSAGING_RATE_PER_SECOND",
        );
        both(
            &[
                ("INSUREBOT_MESSAGING_RATE_PER_SECOND", "20"),
                ("INSUREBOT_CAMPAIGNS_DEFAULT_RATE_PER_SECOND", "30"),
            ],
            "INSUREBOT_CAMPAIGNS_DEFAULT_RATE_PER_SECOND",
            "INSUREBOT_MESSAGING_RATE_PER_SECOND",
        );
        both(
            &[
                ("INSUREBOT_CAMPAIGNS_MAX_RATE_PER_SECOND", "10"),
                ("INSUREBOT_CAMPAIGNS_DEFAULT_RATE_PER_SECOND", "30"),
            ],
            "INSUREBOT_CAMPAIGNS_DEFAULT_RATE_PER_SECOND",
            "INSUREBOT_CAMPAIGNS_MAX_RATE_PER_SECOND",
        );
        both(
            &[
                ("INSUREBOT_OUTBOX_RETRY_BASE_MS", "5000"),
                ("INSUREBOT_OUTBOX_RETRY_MAX_MS", "1000"),
            ],
            "INSUREBOT_OUTBOX_RETRY_BASE_MS",
            "INSUREBOT_OUTBOX_RETRY_MAX_MS",
        );
        both(
            &[
                ("INSUREBOT_REMINDERS_RUN_AT", "10:00"),
                // 09:30 to 09:00: the whole day but half an hour.
                ("INSUREBOT_REMINDERS_QUIET_START", "09:30"),
            ],
            "INSUREBOT_REMINDERS_RUN_AT",
            "INSUREBOT_REMINDERS_QUIET_START",
        );
        both(
            &[
                ("INSUREBOT_REMINDERS_GRACE_DAYS", "3,20"),
                ("INSUREBOT_REMINDERS_GRACE_PERIOD_DAYS", "15"),
            ],
            "INSUREBOT_REMINDERS_GRACE_DAYS",
            "INSUREBOT_REMINDERS_GRACE_PERIOD_DAYS",
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = Settings::from_sources(
            None,
            &env(&[
                ("INSUREBOT_PRIVACY_HASH_KEY", "hash-very-secret-key"),
                ("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "tok-very-secret"),
                ("INSUREBOT_WHATSAPP_APP_SECRET", "app-very-secret"),
                ("INSUREBOT_WHATSAPP_VERIFY_TOKEN", "verify-very-secret"),
                ("INSUREBOT_INSURER_PAY_LINK_SECRET", "pay-link-very-secret"),
                (
                    "INSUREBOT_DATABASE_URL",
                    "postgres://bot:db-very-secret@db/insurebot",
                ),
            ]),
        )
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("very-secret"), "{dbg}");
        assert!(!s.sandbox());
    }
}
