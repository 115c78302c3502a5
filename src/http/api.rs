//! The HTTP API under `/api/v1`, for the insurer's systems and operators. Every call needs
//! `Authorization: Bearer <INSUREBOT_API_TOKEN>`; without a configured token the API refuses
//! everything. Wrong tokens are throttled per client address ([`guard`], `[api]` settings).
//!
//! - `GET /api/v1/outbox/{id}`: one outbound message: state, attempts, the reason it ended
//!   without delivery, what went out (free-form or template), the wamid and the delivery
//!   status from Meta's status webhooks.
//! - `POST /api/v1/consent`, `GET /api/v1/consent/{phone}`, `DELETE /api/v1/contacts/{phone}`:
//!   consent and erasure, in [`super::consent`].
//! - `POST /api/v1/notifications`, `GET /api/v1/notifications/{id}`: notifications from the
//!   insurer's systems (with an `Idempotency-Key`), in [`super::notifications`].

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{AppState, throttle};
use crate::messaging::outbox;
use crate::metrics::Metrics;
use crate::store::entities::outbox as outbox_row;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/outbox/{id}", get(outbox_status))
}

/// The API's failures; internals are logged, never returned.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("the API is disabled: set INSUREBOT_API_TOKEN")]
    Disabled,
    #[error("not found")]
    NotFound,
    /// The request breaks the endpoint's rules; every problem is listed with its field.
    #[error("invalid request")]
    Invalid(Vec<FieldProblem>),
    /// A part the request needs is switched off or not answering; the message says which.
    #[error("{0}")]
    Unavailable(&'static str),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::Disabled => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Db(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// One validation problem: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    pub fn new(field: &str, problem: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            problem: problem.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Invalid(problems) = &self {
            return (
                self.status_code(),
                Json(json!({ "error": "invalid request", "problems": problems })),
            )
                .into_response();
        }
        let message = match &self {
            ApiError::Db(e) => {
                tracing::error!(error = %e, "API database error");
                "temporarily unavailable".to_owned()
            }
            other => other.to_string(),
        };
        let mut resp = (self.status_code(), Json(json!({ "error": message }))).into_response();
        if self.status_code() == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.settings.api_token else {
        return Err(ApiError::Disabled);
    };
    if bearer_matches(headers, expected) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// True when the request carries `Authorization: Bearer <expected>` (compared in constant time).
pub(crate) fn bearer_matches(headers: &HeaderMap, expected: &SecretString) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    given
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into()
}

/// In front of every `/api/v1` route: an address past its allowance of wrong tokens gets 429
/// with `Retry-After` (its token is not even compared, see [`super::throttle`]); a wrong token
/// is counted against its address and answered 401, or 429 once past the allowance. Runs
/// before the handlers read any body. The handlers still call [`authorize`] themselves.
pub(crate) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.settings.api_token else {
        // Disabled: every handler refuses, and there is no token to guess.
        return next.run(request).await;
    };
    // Requests not served through `into_make_service_with_connect_info` (router tests) have
    // no address: they share one allowance.
    let addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    if let Some(wait) = state.api_throttle.refused_for(addr) {
        Metrics::count(&state.metrics.api_refusals, "throttled");
        return too_many_failures(wait);
    }
    if bearer_matches(request.headers(), expected) {
        return next.run(request).await;
    }
    match state.api_throttle.failed(addr) {
        None => {
            Metrics::count(&state.metrics.api_refusals, "unauthorized");
            ApiError::Unauthorized.into_response()
        }
        Some(wait) => {
            Metrics::count(&state.metrics.api_refusals, "throttled");
            tracing::warn!(
                retry_after_secs = throttle::retry_after_secs(wait),
                "API: too many wrong tokens from one address; refusing it for a while"
            );
            too_many_failures(wait)
        }
    }
}

fn too_many_failures(wait: std::time::Duration) -> Response {
    let secs = throttle::retry_after_secs(wait);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({
            "error": format!("too many wrong API tokens from this address; retry in {secs} s")
        })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    response
}

/// What `GET /api/v1/outbox/{id}` answers.
#[derive(Debug, Serialize)]
pub struct OutboxView {
    pub id: i64,
    pub contact_id: i64,
    pub purpose: String,
    /// queued | sent | failed | dead | skipped
    pub state: String,
    pub attempts: i32,
    /// free_form | template, once sent.
    pub sent_as: Option<String>,
    /// Why it ended without delivery (e.g. window_closed_no_template, undeliverable).
    pub reason: Option<String>,
    pub error_code: Option<i64>,
    pub last_error: Option<String>,
    /// The 131047 template fallback was taken.
    pub fallback: bool,
    pub wamid: Option<String>,
    pub delivery: Option<DeliveryView>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct DeliveryView {
    /// sent | delivered | read | played | failed
    pub status: String,
    pub at: Option<i64>,
    pub error_code: Option<i64>,
    pub error: Option<String>,
}

impl From<outbox_row::Model> for OutboxView {
    fn from(r: outbox_row::Model) -> Self {
        let queued = r.state == outbox::state::QUEUED;
        OutboxView {
            delivery: r.delivery_status.map(|status| DeliveryView {
                status,
                at: r.delivery_at,
                error_code: r.delivery_error_code,
                error: r.delivery_error,
            }),
            id: r.id,
            contact_id: r.contact_id,
            purpose: r.purpose,
            state: r.state,
            attempts: r.attempts,
            sent_as: r.sent_as,
            reason: r.reason,
            error_code: r.error_code,
            last_error: r.last_error,
            fallback: r.fallback,
            wamid: r.wamid,
            created_at: r.created_at,
            updated_at: r.updated_at,
            sent_at: r.sent_at,
            next_attempt_at: queued.then_some(r.next_attempt_at),
        }
    }
}

async fn outbox_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<OutboxView>, ApiError> {
    authorize(&state, &headers)?;
    let row = outbox::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(row.into()))
}
