//! A fake WhatsApp Cloud API that answers like Meta, over real HTTP.
//!
//! Used two ways: in sandbox mode (no access token configured) the server runs it in-process
//! on an ephemeral port and points its [`CloudApiClient`](super::client::CloudApiClient) at
//! it; integration tests start it on port 0 and read what arrived through
//! `GET /_fake/requests`. It is a fake rather than a mock: it checks the bearer token is
//! present, re-parses the wire JSON with [`OutboundMessage::from_wire`] and applies the same
//! limits as the client (never trusting the caller), answers Meta's exact success and error
//! shapes, and can be scripted to fail (`POST /_fake/script`) so retry and fallback paths are
//! exercised end to end.
//!
//! Routes:
//! - `POST /{version}/{phone_number_id}/messages`: sends and mark-as-read (§3).
//! - `GET /{version}/{waba_id}/message_templates`: the template list with Graph paging
//!   (`limit`, `after`); by default the templates the shipped flows name, APPROVED in en, hi
//!   and ta, in every WABA. `POST /_fake/templates` replaces the list (a JSON array of Graph
//!   template objects); [`FakeCloudApi::set_waba_templates`] gives one WABA a list of its own.
//! - `GET /_fake/requests`: every accepted request, in arrival order, as JSON.
//! - `POST /_fake/script`: add a [`FailureRule`] (JSON body).
//! - `POST /_fake/reset`: forget requests and rules.
//! - `POST /_fake/latency`: `{"ms": 250}` answers every `/messages` request that long after it
//!   arrived (a realistic round trip; kept across resets). Sandbox mode sets it from
//!   `whatsapp.sandbox_latency_ms`.
//!
//! It speaks HTTP/1.1 and HTTP/2 without TLS (h2c, prior knowledge) on the same port, so the
//! client's HTTP/2 path is tried against it (`whatsapp.h2c`).
//! - The media endpoints (metadata, download, upload, delete): see [`media`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::outbound::{OutboundBody, OutboundMessage, Recipient};

pub mod media;
pub use media::MediaFault;

/// The Graph API version in [`FakeServer::base_url`]; the fake accepts any version in paths.
pub const FAKE_API_VERSION: &str = "v23.0";

/// A fake Cloud API; clones share state.
#[derive(Clone, Default)]
pub struct FakeCloudApi {
    state: Arc<Mutex<FakeState>>,
    /// The round trip every `/messages` answer waits, in ms (outside `state`: a reset keeps it).
    latency_ms: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Default)]
struct FakeState {
    received: Vec<ReceivedRequest>,
    rules: Vec<ActiveRule>,
    /// Every POST to `/messages`, including refused ones.
    attempts: u64,
    seq: u64,
    /// The template list; `None` means [`default_templates`].
    templates: Option<Vec<Value>>,
    /// Lists of WABAs that have their own (others answer `templates`).
    waba_templates: std::collections::HashMap<String, Vec<Value>>,
    /// The WABA of each template list read from its first page, in arrival order.
    template_lists: Vec<String>,
    /// Files by media id: inbound ones tests added, and uploads.
    media: std::collections::HashMap<String, media::StoredMedia>,
    seq_media: u64,
    media_faults: Vec<MediaFault>,
    /// Downloads answered with the file's bytes.
    media_downloads: u64,
    /// Uploads accepted (`POST /{phone_number_id}/media`).
    media_uploads: u64,
}

struct ActiveRule {
    rule: FailureRule,
    /// Only used by `FailureRule::Rate`; seeded from the rule so runs repeat exactly.
    rng: StdRng,
}

/// One request the fake accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedRequest {
    /// 1-based arrival number among accepted requests.
    pub seq: u64,
    /// The Graph version in the path, e.g. `v23.0`.
    pub version: String,
    pub phone_number_id: String,
    pub kind: RequestKind,
    /// The JSON body exactly as received.
    pub body: Value,
    /// The wamid the fake assigned (sends only).
    pub wamid: Option<String>,
    pub received_at: DateTime<Utc>,
    /// The HTTP version it came over, e.g. `HTTP/2.0` (h2c) or `HTTP/1.1`.
    #[serde(default)]
    pub http_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Send,
    MarkRead,
}

/// A scripted misbehaviour. Rules are checked in the order they were added; the first error
/// rule that fires answers the request, and the first delay rule with requests left delays it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureRule {
    /// The next `count` requests fail with `error`.
    Next { count: u32, error: ScriptedError },
    /// Each request fails with `error` with probability `rate` (0..=1), drawn from an RNG
    /// seeded with `seed`, so a test sees the same sequence every run. Lasts until reset.
    Rate {
        rate: f64,
        error: ScriptedError,
        #[serde(default)]
        seed: u64,
    },
    /// The next `count` requests are accepted and recorded, then answered after `delay_ms`:
    /// the "Meta sent it but the answer never arrived" case that makes client timeouts.
    Delay { count: u32, delay_ms: u64 },
}

/// The Graph error a scripted failure answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedError {
    pub http_status: u16,
    pub code: i64,
    #[serde(default)]
    pub subcode: Option<i64>,
    /// Defaults to `(#<code>) Scripted failure`.
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    /// Sent as a `Retry-After` header (seconds).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

impl ScriptedError {
    /// A Graph error with this HTTP status and code and nothing else.
    pub fn new(http_status: u16, code: i64) -> Self {
        ScriptedError {
            http_status,
            code,
            subcode: None,
            message: None,
            details: None,
            retry_after_secs: None,
        }
    }

    /// Adds a `Retry-After: <secs>` header.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
}

impl FakeCloudApi {
    pub fn new() -> Self {
        Self::default()
    }

    /// The fake's routes (see the module doc), ready to serve.
    pub fn router(&self) -> Router {
        Router::new()
            // One parameter name per position: the router refuses two names for one segment.
            .route("/{version}/{node_id}/messages", post(messages))
            .route(
                "/{version}/{node_id}/message_templates",
                get(message_templates),
            )
            .route(
                "/{version}/{node_id}",
                // Any other method is an unknown route (404), as before this route existed:
                // a client with a base URL missing its version must not read it as a 405.
                get(media::metadata)
                    .delete(media::delete)
                    .fallback(|| async { StatusCode::NOT_FOUND }),
            )
            .route(
                "/{version}/{node_id}/media",
                // Meta takes files up to 100 MB; axum's default body limit is 2 MB.
                post(media::upload).layer(axum::extract::DefaultBodyLimit::max(
                    media::MAX_UPLOAD_BYTES + 64 * 1024,
                )),
            )
            .route("/_fake/media/{media_id}", get(media::download))
            .route("/_fake/templates", post(replace_templates))
            .route("/_fake/requests", get(requests))
            .route("/_fake/script", post(script))
            .route("/_fake/reset", post(reset))
            .route("/_fake/latency", post(set_latency))
            .with_state(self.clone())
    }

    /// A new fake serving on a free loopback port: the fake, to script and to read, and its
    /// server.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start() -> std::io::Result<(FakeCloudApi, FakeServer)> {
        let fake = FakeCloudApi::new();
        let server = fake
            .clone()
            .spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await?;
        Ok((fake, server))
    }

    /// Binds `addr` (port 0 picks a free port) and serves in a background task until the
    /// returned handle is dropped or shut down.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn spawn(self, addr: SocketAddr) -> std::io::Result<FakeServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let mut local = listener.local_addr()?;
        if local.ip().is_unspecified() {
            local.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let (tx, rx) = oneshot::channel::<()>();
        let app = self.router();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error.message = %e, "fake Cloud API stopped with an error");
            }
        });
        tracing::debug!(%local, "fake Cloud API listening");
        Ok(FakeServer {
            base_url: format!("http://{local}/{FAKE_API_VERSION}"),
            addr: local,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Every accepted send and mark-read, in arrival order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.lock().received.clone()
    }

    /// How many accepted requests of `kind` arrived so far, without copying them: for a
    /// caller that polls until a number is reached (a copy of thousands of JSON bodies per
    /// poll would compete with the server it measures).
    pub fn received_count(&self, kind: RequestKind) -> usize {
        self.lock()
            .received
            .iter()
            .filter(|r| r.kind == kind)
            .count()
    }

    /// How many requests reached `/messages`, including refused and failed ones.
    pub fn attempts(&self) -> u64 {
        self.lock().attempts
    }

    /// Adds a failure rule; a `Rate` outside 0..=1 is clamped.
    pub fn script(&self, mut rule: FailureRule) {
        let seed = match &mut rule {
            FailureRule::Rate { rate, seed, .. } => {
                *rate = if rate.is_nan() {
                    0.0
                } else {
                    rate.clamp(0.0, 1.0)
                };
                *seed
            }
            _ => 0,
        };
        self.lock().rules.push(ActiveRule {
            rule,
            rng: StdRng::seed_from_u64(seed),
        });
    }

    /// The template list `GET …/message_templates` answers with.
    pub fn templates(&self) -> Vec<Value> {
        self.lock()
            .templates
            .clone()
            .unwrap_or_else(default_templates)
    }

    /// Replaces the template list (Graph template objects).
    pub fn set_templates(&self, templates: Vec<Value>) {
        self.lock().templates = Some(templates);
    }

    /// Gives the WABA `waba_id` a template list of its own (Graph template objects): the same
    /// template may be approved in one WABA and not in another.
    pub fn set_waba_templates(&self, waba_id: &str, templates: Vec<Value>) {
        self.lock()
            .waba_templates
            .insert(waba_id.to_owned(), templates);
    }

    /// The template list `GET /{waba_id}/message_templates` answers with.
    pub fn templates_of(&self, waba_id: &str) -> Vec<Value> {
        let own = self.lock().waba_templates.get(waba_id).cloned();
        own.unwrap_or_else(|| self.templates())
    }

    /// The WABA of every template list read so far (once per list, not per page), in order.
    pub fn template_lists_read(&self) -> Vec<String> {
        self.lock().template_lists.clone()
    }

    /// Changes the status of one listed template (every language when `language` is `None`).
    pub fn set_template_status(&self, name: &str, language: Option<&str>, status: &str) {
        let mut list = self.templates();
        for t in &mut list {
            if t["name"] == name && language.is_none_or(|l| t["language"] == l) {
                t["status"] = json!(status);
            }
        }
        self.set_templates(list);
    }

    /// Answers every `/messages` request `latency` after it arrived (recorded on arrival).
    pub fn set_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.latency_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The round trip set by [`set_latency`](Self::set_latency).
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Forgets recorded requests, attempts and rules.
    pub fn reset(&self) {
        *self.lock() = FakeState::default();
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panic while holding the lock (only possible in a test) must not hide later state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides which scripted error and delay apply to this request, consuming counts.
    fn take_script(&self) -> (Option<ScriptedError>, Option<Duration>) {
        let mut st = self.lock();
        st.attempts += 1;
        let mut error = None;
        let mut delay = None;
        for active in &mut st.rules {
            match &mut active.rule {
                FailureRule::Next { count, error: e } if error.is_none() && *count > 0 => {
                    *count -= 1;
                    error = Some(e.clone());
                }
                // The roll happens only when no earlier rule fired, so a rate rule's
                // sequence depends only on the requests it actually judged.
                FailureRule::Rate { rate, error: e, .. }
                    if error.is_none() && active.rng.random_bool(*rate) =>
                {
                    error = Some(e.clone());
                }
                FailureRule::Delay { count, delay_ms } if delay.is_none() && *count > 0 => {
                    *count -= 1;
                    delay = Some(Duration::from_millis(*delay_ms));
                }
                _ => {}
            }
        }
        st.rules.retain(|a| match a.rule {
            FailureRule::Next { count, .. } | FailureRule::Delay { count, .. } => count > 0,
            FailureRule::Rate { .. } => true,
        });
        (error, delay)
    }

    fn record(
        &self,
        (version, phone_number_id): (String, String),
        http_version: axum::http::Version,
        kind: RequestKind,
        body: Value,
        wamid: Option<String>,
    ) {
        let mut st = self.lock();
        st.seq += 1;
        let seq = st.seq;
        st.received.push(ReceivedRequest {
            seq,
            version,
            phone_number_id,
            kind,
            body,
            wamid,
            received_at: Utc::now(),
            http_version: format!("{http_version:?}"),
        });
    }
}

/// A running fake; stops when dropped or on [`FakeServer::shutdown`].
#[derive(Debug)]
pub struct FakeServer {
    /// Base URL including the version, e.g. `http://127.0.0.1:41234/v23.0`.
    pub base_url: String,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Meta's error envelope (§3.6).
fn graph_error(
    http_status: u16,
    code: i64,
    subcode: Option<i64>,
    message: &str,
    details: Option<&str>,
    retry_after: Option<u64>,
) -> Response {
    let mut err = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": format!("AFake{}", uuid::Uuid::new_v4().simple()),
    });
    if let Some(s) = subcode {
        err["error_subcode"] = json!(s);
    }
    if let Some(d) = details {
        err["error_data"] = json!({ "messaging_product": "whatsapp", "details": d });
    }
    let status = StatusCode::from_u16(http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, axum::Json(json!({ "error": err }))).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn invalid_parameter(details: &str) -> Response {
    graph_error(
        400,
        100,
        None,
        "(#100) Invalid parameter",
        Some(details),
        None,
    )
}

fn has_bearer_token(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| !t.trim().is_empty())
}

/// `/messages`, answered no sooner than the configured latency after the request arrived.
async fn messages(
    State(fake): State<FakeCloudApi>,
    path: Path<(String, String)>,
    http_version: axum::http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = tokio::time::Instant::now();
    let latency = fake.latency();
    let answer = answer_messages(State(fake), path, http_version, headers, body).await;
    tokio::time::sleep_until(arrived + latency).await;
    answer
}

async fn answer_messages(
    State(fake): State<FakeCloudApi>,
    Path(path): Path<(String, String)>,
    http_version: axum::http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !has_bearer_token(&headers) {
        fake.lock().attempts += 1;
        return graph_error(
            401,
            190,
            None,
            "Invalid OAuth access token - Cannot parse access token",
            None,
            None,
        );
    }
    // Scripts apply only to authenticated requests, so a test's "next N fail" is not eaten
    // by a request that would have failed anyway.
    let (scripted, delay) = fake.take_script();
    if let Some(e) = scripted {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let message = e
            .message
            .clone()
            .unwrap_or_else(|| format!("(#{}) Scripted failure", e.code));
        return graph_error(
            e.http_status,
            e.code,
            e.subcode,
            &message,
            e.details.as_deref(),
            e.retry_after_secs,
        );
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return invalid_parameter("The request body is not valid JSON.");
    };

    let (kind, wamid, answer) = if json.get("status").is_some() {
        // Mark as read (§3.5) shares the endpoint; it has `status` instead of `type`.
        let ok = json.get("messaging_product").and_then(Value::as_str) == Some("whatsapp")
            && json.get("status").and_then(Value::as_str) == Some("read")
            && json
                .get("message_id")
                .and_then(Value::as_str)
                .is_some_and(|m| !m.is_empty());
        if !ok {
            return invalid_parameter(
                "A mark-as-read request needs messaging_product, status \"read\" and message_id.",
            );
        }
        (RequestKind::MarkRead, None, json!({ "success": true }))
    } else {
        let msg = match OutboundMessage::from_wire(&json) {
            Ok(m) => m,
            Err(e) if e.problem == super::outbound::parse::MISSING_PROBLEM => {
                return graph_error(
                    400,
                    131008,
                    None,
                    "(#131008) Required parameter is missing",
                    Some(&e.to_string()),
                    None,
                );
            }
            Err(e) => return invalid_parameter(&e.to_string()),
        };
        if let Err(e) = msg.validate() {
            return invalid_parameter(&e.to_string());
        }
        // A media message must name an upload this number holds, as Meta's does: a stale or
        // made-up id is refused, so tests see an expired cache entry fail.
        if let OutboundBody::Media {
            file: super::outbound::OutboundFile::Id(id),
            ..
        } = &msg.body
            && fake.media(id).is_none()
        {
            return graph_error(
                400,
                131053,
                None,
                "(#131053) Media upload error",
                Some(&format!("Media id {id} is unknown or expired.")),
                None,
            );
        }
        let wamid = format!(
            "wamid.HBgM{}",
            uuid::Uuid::new_v4().simple().to_string().to_uppercase()
        );
        let contact = match &msg.to {
            Recipient::Phone(p) => {
                json!({ "input": p, "wa_id": p.trim_start_matches('+') })
            }
            Recipient::UserId(u) => json!({ "input": u, "user_id": u }),
        };
        let mut sent = json!({ "id": wamid });
        // Meta reports `message_status` on template sends.
        if matches!(msg.body, OutboundBody::Template { .. }) {
            sent["message_status"] = json!("accepted");
        }
        let answer = json!({
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [sent],
        });
        (RequestKind::Send, Some(wamid), answer)
    };
    // Recorded before any delay: Meta has accepted it even if the client stops waiting.
    fake.record(path, http_version, kind, json, wamid);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// The templates the shipped flows name, APPROVED in en, hi and ta, as Graph lists them.
pub fn default_templates() -> Vec<Value> {
    let bodies = [
        ("policy_summary", "Policy {{1}} ({{2}}) is {{3}}."),
        ("claim_status_update", "Your claim {{1}} is now: {{2}}."),
        (
            "premium_due_reminder",
            "The premium for policy {{1}} of {{2}} is due on {{3}}.",
        ),
        (
            "agent_unavailable",
            "Sorry, no agent could take your conversation.",
        ),
    ];
    let mut out = Vec::new();
    // The one-time-password template, listed as Meta lists an authentication template: its
    // code button is a URL button to WhatsApp's own OTP page.
    for (j, language) in ["en", "hi", "ta"].iter().enumerate() {
        out.push(json!({
            "id": format!("19{j}"),
            "name": "otp_code",
            "language": language,
            "status": "APPROVED",
            "category": "AUTHENTICATION",
            "parameter_format": "POSITIONAL",
            "components": [
                { "type": "BODY", "text": "*{{1}}* is your verification code. For your security, do not share this code." },
                { "type": "FOOTER", "text": "This code expires in 10 minutes." },
                { "type": "BUTTONS", "buttons": [{ "type": "URL", "text": "Copy code",
                  "url": "https://www.whatsapp.com/otp/code/?otp_type=COPY_CODE&code_expiration_minutes=10&code=otp{{1}}" }] }
            ]
        }));
    }
    for (i, (name, body)) in bodies.iter().enumerate() {
        for (j, language) in ["en", "hi", "ta"].iter().enumerate() {
            out.push(json!({
                "id": format!("10{i}{j}"),
                "name": name,
                "language": language,
                "status": "APPROVED",
                "category": "UTILITY",
                "parameter_format": "POSITIONAL",
                "components": [
                    { "type": "BODY", "text": body },
                    { "type": "BUTTONS", "buttons": [{ "type": "QUICK_REPLY", "text": "Menu" }] }
                ]
            }));
        }
    }
    out
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<usize>,
    after: Option<String>,
}

async fn message_templates(
    State(fake): State<FakeCloudApi>,
    Path((version, waba_id)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if !has_bearer_token(&headers) {
        return graph_error(401, 190, None, "Invalid OAuth access token", None, None);
    }
    let all = fake.templates_of(&waba_id);
    let limit = q.limit.unwrap_or(25).clamp(1, 1000);
    let start = q.after.and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
    if start == 0 {
        fake.lock().template_lists.push(waba_id.clone());
    }
    let page: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    let end = start + page.len();
    let mut body = json!({ "data": page, "paging": { "cursors": {
        "before": start.to_string(), "after": end.to_string() } } });
    if end < all.len() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        body["paging"]["next"] = json!(format!(
            "http://{host}/{version}/{waba_id}/message_templates?limit={limit}&after={end}"
        ));
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn replace_templates(State(fake): State<FakeCloudApi>, body: Bytes) -> Response {
    match serde_json::from_slice::<Vec<Value>>(&body) {
        Ok(list) => {
            fake.set_templates(list);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("not a JSON array: {e}")).into_response(),
    }
}

async fn requests(State(fake): State<FakeCloudApi>) -> axum::Json<Vec<ReceivedRequest>> {
    axum::Json(fake.received())
}

async fn script(State(fake): State<FakeCloudApi>, body: Bytes) -> Response {
    match serde_json::from_slice::<FailureRule>(&body) {
        Ok(FailureRule::Rate { rate, .. }) if !(0.0..=1.0).contains(&rate) => {
            (StatusCode::BAD_REQUEST, "rate must be between 0 and 1").into_response()
        }
        Ok(rule) => {
            fake.script(rule);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("not a FailureRule: {e}")).into_response(),
    }
}

async fn reset(State(fake): State<FakeCloudApi>) -> StatusCode {
    fake.reset();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Latency {
    ms: u64,
}

async fn set_latency(
    State(fake): State<FakeCloudApi>,
    axum::Json(latency): axum::Json<Latency>,
) -> StatusCode {
    fake.set_latency(Duration::from_millis(latency.ms));
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake on a free port (the media endpoints' tests share it).
    pub(super) async fn start() -> (FakeCloudApi, FakeServer) {
        let fake = FakeCloudApi::new();
        let server = fake
            .clone()
            .spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        (fake, server)
    }

    fn url(server: &FakeServer) -> String {
        format!("{}/106540352242922/messages", server.base_url)
    }

    async fn post(server: &FakeServer, auth: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(url(server))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    const TEXT: &str = r#"{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812345678",
        "type":"text","text":{"preview_url":false,"body":"hi"}}"#;

    #[tokio::test]
    async fn base_url_points_at_the_bound_port() {
        let (_fake, server) = start().await;
        assert_eq!(
            server.base_url,
            format!("http://127.0.0.1:{}/v23.0", server.addr.port())
        );
        assert_ne!(server.addr.port(), 0);
    }

    #[tokio::test]
    async fn success_has_meta_shape() {
        let (fake, server) = start().await;
        let (status, body) = post(&server, Some("Bearer t"), TEXT).await;
        assert_eq!(status, 200);
        let wamid = fake.received()[0].wamid.clone().unwrap();
        assert_eq!(
            body,
            json!({"messaging_product":"whatsapp",
                   "contacts":[{"input":"919812345678","wa_id":"919812345678"}],
                   "messages":[{"id": wamid}]})
        );
    }

    #[tokio::test]
    async fn missing_or_empty_bearer_token_is_graph_190() {
        let (fake, server) = start().await;
        for auth in [None, Some("Bearer "), Some("Basic dTpw")] {
            let (status, body) = post(&server, auth, TEXT).await;
            assert_eq!(status, 401, "{auth:?}");
            assert_eq!(body["error"]["code"], 190);
            assert_eq!(body["error"]["type"], "OAuthException");
        }
        assert!(fake.received().is_empty());
        assert_eq!(fake.attempts(), 3);
    }

    #[tokio::test]
    async fn bad_payloads_get_meta_400s_and_are_not_recorded() {
        let (fake, server) = start().await;
        let long_title = r#"{"messaging_product":"whatsapp","to":"919812345678","type":"interactive",
            "interactive":{"type":"button","body":{"text":"b"},"action":{"buttons":[
              {"type":"reply","reply":{"id":"a","title":"twenty-one characters"}}]}}}"#;
        let (status, body) = post(&server, Some("Bearer t"), long_title).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], 100);
        assert_eq!(
            body["error"]["error_data"]["details"],
            "buttons[0].title: 21 characters, the limit is 20"
        );

        let no_body =
            r#"{"messaging_product":"whatsapp","to":"919812345678","type":"text","text":{}}"#;
        let (status, body) = post(&server, Some("Bearer t"), no_body).await;
        assert_eq!(
            (status, body["error"]["code"].as_i64()),
            (400, Some(131008))
        );

        let (status, body) = post(&server, Some("Bearer t"), "{not json").await;
        assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(100)));

        let bad_read = r#"{"messaging_product":"whatsapp","status":"read"}"#;
        let (status, _) = post(&server, Some("Bearer t"), bad_read).await;
        assert_eq!(status, 400);

        assert!(fake.received().is_empty());
    }

    #[tokio::test]
    async fn scripting_reading_and_resetting_over_http() {
        let (fake, server) = start().await;
        let http = reqwest::Client::new();
        let root = server.base_url.trim_end_matches("/v23.0").to_owned();
        let rule = json!({"kind":"next","count":1,
            "error":{"http_status":429,"code":130429,"retry_after_secs":3}});
        let resp = http
            .post(format!("{root}/_fake/script"))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);

        let resp = http
            .post(url(&server))
            .bearer_auth("t")
            .body(TEXT)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "3");
        let (status, _) = post(&server, Some("Bearer t"), TEXT).await;
        assert_eq!(status, 200);

        let got: Vec<ReceivedRequest> = http
            .get(format!("{root}/_fake/requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got, fake.received());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].seq, 1);
        assert_eq!(got[0].body["text"]["body"], "hi");

        let bad = http
            .post(format!("{root}/_fake/script"))
            .json(&json!({"kind":"rate","rate":2.0,"error":{"http_status":500,"code":1}}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);

        let resp = http
            .post(format!("{root}/_fake/reset"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        assert!(fake.received().is_empty());
        assert_eq!(fake.attempts(), 0);
    }

    #[test]
    fn rules_fire_in_order_and_expire() {
        let fake = FakeCloudApi::new();
        fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(400, 1),
        });
        fake.script(FailureRule::Next {
            count: 2,
            error: ScriptedError::new(400, 2),
        });
        fake.script(FailureRule::Delay {
            count: 1,
            delay_ms: 5,
        });
        let codes: Vec<_> = (0..4)
            .map(|_| {
                let (e, d) = fake.take_script();
                (e.map(|e| e.code), d)
            })
            .collect();
        assert_eq!(
            codes,
            [
                (Some(1), Some(Duration::from_millis(5))),
                (Some(2), None),
                (Some(2), None),
                (None, None)
            ]
        );
        assert!(fake.lock().rules.is_empty());
    }

    #[test]
    fn rate_rules_are_clamped_and_extremes_are_exact() {
        let fake = FakeCloudApi::new();
        fake.script(FailureRule::Rate {
            rate: 7.0,
            error: ScriptedError::new(500, 1),
            seed: 1,
        });
        assert!((0..50).all(|_| fake.take_script().0.is_some()));
        fake.reset();
        fake.script(FailureRule::Rate {
            rate: 0.0,
            error: ScriptedError::new(500, 1),
            seed: 1,
        });
        assert!((0..50).all(|_| fake.take_script().0.is_none()));
    }

    #[test]
    fn failure_rules_round_trip_as_json() {
        let rule = FailureRule::Rate {
            rate: 0.25,
            error: ScriptedError::new(400, 131056).with_retry_after(4),
            seed: 9,
        };
        let json = serde_json::to_value(&rule).unwrap();
        assert_eq!(json["kind"], "rate");
        assert_eq!(json["error"]["retry_after_secs"], 4);
        assert_eq!(serde_json::from_value::<FailureRule>(json).unwrap(), rule);
        // Optional parts may be left out by hand-written scripts.
        let minimal: FailureRule = serde_json::from_str(
            r#"{"kind":"next","count":1,"error":{"http_status":500,"code":131000}}"#,
        )
        .unwrap();
        assert_eq!(
            minimal,
            FailureRule::Next {
                count: 1,
                error: ScriptedError::new(500, 131000)
            }
        );
    }
}
