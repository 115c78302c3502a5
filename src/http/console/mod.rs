//! The agent console and the flow simulator, served by insurebot itself: server-rendered tera
//! pages embedded in the binary (no CDN, no build step), live updates over server-sent events,
//! charts as inline SVG.
//!
//! # Layout
//! - [`access`]: who may open which conversation; the log of every transcript reading.
//! - [`auth`]: agents, roles, password hashing, sessions, CSRF, login limiting.
//! - (`insurebot agent add` is [`crate::cli::agent`].)
//! - [`handoff`]: take / transfer / close, feeding `AgentJoined` / `AgentReleased` to the engine.
//! - [`reply`]: the functions through which agent messages (text, template, file) reach the
//!   outbox.
//! - [`attach`]: an agent's file attachment, streamed into the media store and checked.
//! - [`known`]: "what the bot knows", the conversation's slots as masked, labelled values.
//! - [`pages`]: the queue and conversation pages, their fragments and event streams.
//! - [`transcript`]: inbound and outbound rows as one timeline with delivery ticks.
//! - [`media`]: the photos and documents policyholders sent, under the transcript's access rule.
//! - [`dashboard`]: the supervisor's numbers and their SVG charts.
//! - [`flows`]: each flow as a diagram with its live funnel.
//! - [`campaigns`]: campaign progress and results; supervisors start, pause, resume, cancel.
//! - [`simulator`]: the phone-like chat for flow authors (sandbox mode only).
//! - [`headers`]: the security headers (CSP, framing, HSTS over HTTPS) on every response.
//! - (Office hours are [`crate::config::hours`].)
//! - [`error`]: [`ConsoleError`], the layer's one error type.

pub mod access;
pub mod attach;
pub mod auth;
pub mod campaigns;
pub mod dashboard;
pub mod error;
pub mod flows;
pub mod handoff;
pub mod headers;
pub mod known;
pub mod media;
pub mod pages;
pub mod reply;
pub mod simulator;
pub mod transcript;

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::{get, post};

pub use error::{ConsoleError, Result};

use crate::config::ConsoleSettings;
use crate::config::hours::OfficeHours;
use crate::dialogue::flows::FlowStore;
use crate::http::AppState;

/// What the console needs beyond the database: its templates, the office hours and, when the
/// flow engine answers, the live flows (to tell the engine about agents).
pub struct Console {
    tera: tera::Tera,
    pub hours: OfficeHours,
    pub flows: Option<Arc<FlowStore>>,
    /// Language of a conversation the engine has not seen yet.
    pub default_language: String,
    /// Cancelled when the server starts shutting down: open event streams end, otherwise an
    /// open console tab would hold graceful shutdown forever.
    pub closing: tokio_util::sync::CancellationToken,
    /// The bound on password checks running at once (`console.login_max_concurrent_hashes`).
    pub password_gate: auth::PasswordGate,
}

/// The templates, embedded so the binary is all an operator deploys.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("login.html", include_str!("templates/login.html")),
    ("queue.html", include_str!("templates/queue.html")),
    ("queue_rows.html", include_str!("templates/queue_rows.html")),
    (
        "conversation.html",
        include_str!("templates/conversation.html"),
    ),
    ("transcript.html", include_str!("templates/transcript.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("flows.html", include_str!("templates/flows.html")),
    ("flow.html", include_str!("templates/flow.html")),
    ("views.html", include_str!("templates/views.html")),
    ("simulator.html", include_str!("templates/simulator.html")),
    ("campaigns.html", include_str!("templates/campaigns.html")),
    (
        "campaign_rows.html",
        include_str!("templates/campaign_rows.html"),
    ),
    ("campaign.html", include_str!("templates/campaign.html")),
    (
        "campaign_live.html",
        include_str!("templates/campaign_live.html"),
    ),
];

/// Files under `/console/static/`: name, content type, content.
const STATIC_FILES: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("templates/console.css"),
    ),
    ("queue.js", JS, include_str!("static/queue.js")),
    (
        "conversation.js",
        JS,
        include_str!("static/conversation.js"),
    ),
    ("campaigns.js", JS, include_str!("static/campaigns.js")),
    ("campaign.js", JS, include_str!("static/campaign.js")),
    ("simulator.js", JS, include_str!("static/simulator.js")),
];
const JS: &str = "text/javascript; charset=utf-8";

impl Console {
    /// Compiles the embedded templates.
    ///
    /// # Errors
    /// A template that does not parse (a bug caught by every test that starts the app).
    pub fn new(
        hours: OfficeHours,
        flows: Option<Arc<FlowStore>>,
        default_language: String,
        password_gate: auth::PasswordGate,
    ) -> anyhow::Result<Self> {
        let mut tera = tera::Tera::default();
        tera.add_raw_templates(TEMPLATES.to_vec())
            .map_err(|e| anyhow::anyhow!("console templates: {e:?}"))?;
        Ok(Self {
            tera,
            hours,
            flows,
            default_language,
            closing: tokio_util::sync::CancellationToken::new(),
            password_gate,
        })
    }

    /// Renders a page; a render error becomes one 500 path.
    ///
    /// # Errors
    /// [`ConsoleError::Internal`] when the template fails.
    pub fn render(&self, name: &str, ctx: &tera::Context) -> Result<Html<String>> {
        self.tera
            .render(name, ctx)
            .map(Html)
            .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("rendering {name}: {e:?}")))
    }
}

/// Every console and simulator route, behind the security headers layer.
pub fn router(settings: &ConsoleSettings) -> Router<AppState> {
    let security = headers::SecurityHeaders::from_settings(settings);
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/queue") }))
        .route("/console/static/{file}", get(static_file))
        .route("/console/login", get(auth::login_page).post(auth::login))
        .route("/console/logout", post(auth::logout))
        .route("/console/queue", get(pages::queue))
        .route("/console/queue/rows", get(pages::queue_rows))
        .route("/console/queue/events", get(pages::queue_events))
        .route("/console/handoffs/{id}/take", post(pages::take))
        .route("/console/handoffs/{id}/transfer", post(pages::transfer))
        .route("/console/handoffs/{id}/close", post(pages::close))
        .route("/console/conversations/{contact}", get(pages::conversation))
        .route(
            "/console/conversations/{contact}/transcript",
            get(pages::transcript),
        )
        .route(
            "/console/conversations/{contact}/events",
            get(pages::conversation_events),
        )
        .route("/console/conversations/{contact}/reply", post(pages::reply))
        .route(
            "/console/conversations/{contact}/attach",
            post(attach::attach).layer(axum::extract::DefaultBodyLimit::max(attach::BODY_LIMIT)),
        )
        .route(
            "/console/conversations/{contact}/media/{media}",
            get(media::file),
        )
        .route(
            "/console/conversations/{contact}/template",
            post(pages::send_template),
        )
        .route("/console/dashboard", get(dashboard::page))
        .route("/console/flows", get(flows::list))
        .route("/console/flows/{id}", get(flows::page))
        .route("/console/views", get(access::view_log))
        .route("/console/campaigns", get(campaigns::list))
        .route("/console/campaigns/rows", get(campaigns::list_rows))
        .route("/console/campaigns/{id}", get(campaigns::page))
        .route("/console/campaigns/{id}/live", get(campaigns::live))
        .route("/console/campaigns/{id}/{action}", post(campaigns::act))
        .merge(simulator::router())
        .layer(axum::middleware::from_fn(move |request, next| {
            security.clone().apply(request, next)
        }))
}

/// `GET /console/static/{file}`: the stylesheet and the pages' scripts (no inline script:
/// the Content-Security-Policy allows scripts from this origin only).
async fn static_file(Path(file): Path<String>) -> Result<impl IntoResponse> {
    let (content_type, body) = STATIC_FILES
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, t, b)| (*t, *b))
        .ok_or(ConsoleError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    ))
}

/// Local time as `dd/mm HH:MM` in the office's offset.
pub fn local_time(hours: &OfficeHours, at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .map(|t| {
            t.with_timezone(&hours.offset)
                .format("%d/%m %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "-".to_owned())
}

/// `3 min`, `2 h 5 min`, `1 d 3 h`.
pub fn duration_text(ms: i64) -> String {
    let mins = (ms.max(0) / 60_000) as u64;
    match mins {
        0 => "< 1 min".to_owned(),
        m if m < 60 => format!("{m} min"),
        m if m < 24 * 60 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} d {} h", m / (24 * 60), (m / 60) % 24),
    }
}

/// What a failure or skip reason means, for the codes the sender, the consent gate and
/// Meta's status webhooks record.
pub fn reason_text(code: &str) -> Option<&'static str> {
    use crate::store::entities::outbox::Reason;
    // A status webhook's error code, said as the reason the sender gives the same code.
    let reason = match code {
        "cancelled" => return Some("not queued before the campaign was cancelled"),
        "131026" => Reason::Undeliverable,
        "131049" => Reason::EcosystemEngagementLimit,
        "131050" => Reason::MarketingStoppedByUser,
        "131048" => Reason::SpamRateLimited,
        "131030" => Reason::RecipientNotAllowed,
        "131042" => Reason::PaymentIssue,
        _ => Reason::parse(code)?,
    };
    Some(match reason {
        Reason::ConsentNoMarketingOptIn => "no marketing opt-in is recorded",
        Reason::ConsentOptedOut => "opted out of all messages",
        Reason::ConsentScopeOptedOut => "opted out of this kind of message",
        Reason::ConsentMarketingStopped => "stopped marketing messages in WhatsApp",
        Reason::ConsentMarketingCap => "marketing frequency cap reached",
        Reason::ConsentNoOptIn => "no opt-in is recorded",
        Reason::CampaignCancelled => "withdrawn from the outbox when the campaign was cancelled",
        Reason::WindowClosedNoTemplate => {
            "the 24-hour window had closed and there is no template to send instead"
        }
        Reason::WindowClosed => "the 24-hour window had closed and the template was refused too",
        Reason::UnreadablePayload => "the stored message could not be read",
        Reason::Erased => "the person's data was erased before it went",
        Reason::TemplateNotApproved => {
            "the template is not approved (paused, disabled or rejected)"
        }
        Reason::TemplateUnknown => "the template is not in the registry",
        Reason::TemplateParams => "wrong number of template parameters",
        Reason::NoAddress => "no phone number or WhatsApp id",
        Reason::AttemptsExhausted => "temporary errors until the attempts ran out",
        Reason::Undeliverable => "not deliverable (no WhatsApp, old app, or blocked)",
        Reason::EcosystemEngagementLimit => {
            "held back by Meta to keep marketing engagement healthy"
        }
        Reason::MarketingStoppedByUser => "the person stopped marketing messages",
        Reason::SpamRateLimited => "the number is rate limited for spam",
        Reason::RecipientNotAllowed => "recipient not on the allowed list (test number)",
        Reason::AccountRestricted => "the WhatsApp account is restricted",
        Reason::PaymentIssue => "a billing problem on the WhatsApp account",
        Reason::InvalidRequest => "Meta refused the request as invalid",
        Reason::NumberNotConfigured => {
            "its business number was removed from the configuration (never sent from another)"
        }
        // Shown as the code itself.
        Reason::Consent
        | Reason::OtpSealed
        | Reason::NoMediaStore
        | Reason::MediaGone
        | Reason::UploadRefused
        | Reason::InvalidMessage
        | Reason::UnconfirmedResponse
        | Reason::Transport
        | Reason::Auth
        | Reason::PermanentError => return None,
    })
}
