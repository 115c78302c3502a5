//! The HTTP surface: every route and layer in one place: the webhook, health and metrics, the
//! API under `/api/v1` ([`api`], [`campaigns`], [`consent`], [`notifications`], [`otp`]), the
//! sandbox, the signed claim file links for the insurer ([`claim_files`]), and the agents' console ([`console`], whose routes are listed in
//! [`console::router`]).

pub mod api;
pub mod campaigns;
pub mod claim_files;
pub mod consent;
pub mod console;
pub mod health;
pub mod notifications;
pub mod openapi;
pub mod otp;
pub mod sandbox;
pub mod throttle;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, MatchedPath};
use axum::http::{HeaderName, Request, StatusCode};
use sea_orm::DatabaseConnection;
use secrecy::SecretString;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::ingest::pipeline::Pipeline;
use crate::insurer::Insurer;
use crate::messaging::composer::Composer;
use crate::metrics::Metrics;
use crate::whatsapp::fake::FakeCloudApi;
use console::Console;

/// What every handler can reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub pipeline: Pipeline,
    /// Webhooks are stored through it, several per transaction under load.
    pub ingest: crate::ingest::store::IngestQueue,
    pub secrets: Arc<WebhookSecrets>,
    /// The built-in fake Cloud API, in sandbox mode only.
    pub sandbox: Option<FakeCloudApi>,
    /// The agent console's templates, office hours and live flows.
    pub console: Arc<Console>,
    /// The configured policy source (embedded tables or the insurer's API), shared with the
    /// flow actions so both see the same data and the HTTP source's one circuit breaker.
    pub insurer: Arc<Insurer>,
    /// Wrong API tokens per client address (see [`throttle`]).
    pub api_throttle: Arc<throttle::FailureThrottle>,
    /// The one way out for every message (the window, consent, templates), as the flow
    /// runner uses it; handlers that queue or show what may be sent take it from here.
    pub composer: Composer,
    /// One-time passwords; `None` when off (no `otp.secret` outside sandbox mode).
    pub otp: Option<Arc<crate::otp::Otp>>,
    /// Where inbound photos and documents are kept (the console shows them, erasure and
    /// retention delete them).
    pub media: crate::media::MediaStore,
}

/// The two secrets the webhook checks requests against.
pub struct WebhookSecrets {
    /// Key of the `X-Hub-Signature-256` HMAC.
    pub app_secret: SecretString,
    /// Token of the verification handshake.
    pub verify_token: SecretString,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole router with its layers.
pub fn router(state: AppState) -> Router {
    let api = api_routes().into_router(state.clone());
    // `/metrics` is here unless it has a listener of its own ([`metrics_router`]).
    let metrics_here = state.settings.metrics.listen.is_none();
    Router::new()
        .route("/", axum::routing::get(home))
        .merge(webhook::router(
            state.settings.webhook.max_body_bytes,
            state.settings.webhook.bench_baseline,
            state.metrics.clone(),
        ))
        .merge(health::router(metrics_here))
        .merge(api)
        .merge(sandbox::router())
        .merge(claim_files::router())
        .merge(console::router(&state.settings.console))
        .fallback(not_found)
        .with_state(state)
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or(request.uri().path(), MatchedPath::as_str);
                let request_id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // Health probes are frequent and boring: keep them at debug.
                if route.ends_with("z") || route == "/metrics" {
                    tracing::debug_span!("http.request", http.method = %request.method(), http.route = %route, request_id)
                } else {
                    tracing::info_span!("http.request", http.method = %request.method(), http.route = %route, request_id)
                }
            })
            .on_failure(log_failure),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
}

/// Every `/api/v1` operation. Routes join the API only here, through [`api::ApiRoutes`], so
/// `api_routes().operations()` is what is served (the OpenAPI test compares it with the
/// document).
pub fn api_routes() -> api::ApiRoutes {
    api::ApiRoutes::new()
        .public(
            axum::http::Method::GET,
            "/api/v1/openapi.json",
            openapi::serve,
        )
        .merge(api::routes())
        .merge(notifications::routes())
        .merge(consent::routes())
        .merge(crate::http::campaigns::routes())
        .merge(otp::routes())
}

/// A path nothing serves: under `/api/` a 404 in the API's error body (a client reads one
/// shape), elsewhere an empty 404 as before.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        api::ApiError::NotFound("no such API path: see /api/v1/openapi.json".into()).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// `/metrics` alone, for its own listener (`metrics.listen`).
pub fn metrics_router(state: AppState) -> Router {
    health::metrics_only().with_state(state)
}

/// `GET /`: somewhere useful instead of an empty 404, the simulator in sandbox mode (where
/// a newcomer starts), the agent console otherwise.
async fn home(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Redirect {
    if state.sandbox.is_some() {
        axum::response::Redirect::to("/simulator")
    } else {
        axum::response::Redirect::to("/console")
    }
}

/// Logs a failed response. A 503 is a refusal the handler chose and explained (an overload
/// shed, the database away) and is counted in the metrics: at debug, so that an overload does
/// not also flood the log with a line per refused webhook. Any other failure is an error.
fn log_failure(failure: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let latency_ms = latency.as_millis();
    match failure {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(latency_ms, "response refused: 503 Service Unavailable");
        }
        other => tracing::error!(classification = %other, latency_ms, "response failed"),
    }
}
