//! The HTTP API under `/api/v1`, for the insurer's systems and operators. Every call needs
//! `Authorization: Bearer <INSUREBOT_API_TOKEN>`; without a configured token the API refuses
//! everything. Wrong tokens are throttled per client address ([`guard`], `[api]` settings).
//! Its contract is `api.openapi.yaml` beside this file, served at `GET /api/v1/openapi.json`
//! (see [`super::openapi`]).
//!
//! This module owns what every route shares: the registry the routes are added through
//! ([`ApiRoutes`], so the list the OpenAPI test checks is the router itself), the one error
//! body ([`ApiError`] → [`ErrorBody`]) and the extractors whose rejections answer in that
//! body ([`ApiPath`], [`ApiBody`], [`ApiJson`]) instead of axum's plain-text ones.
//!
//! - `GET /api/v1/outbox/{id}`: one outbound message: state, attempts, the reason it ended
//!   without delivery, what went out (free-form or template), the wamid and the delivery
//!   status from Meta's status webhooks.
//! - `POST /api/v1/consent`, `GET /api/v1/consent/{phone}`, `DELETE /api/v1/contacts/{phone}`:
//!   consent and erasure, in [`super::consent`].
//! - `POST /api/v1/notifications`, `GET /api/v1/notifications/{id}`: notifications from the
//!   insurer's systems (with an `Idempotency-Key`), in [`super::notifications`].
//! - `/api/v1/campaigns…`: in [`crate::http::campaigns`].

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, RawPathParams, Request,
    State,
};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::{AppState, throttle};
use crate::messaging::outbox;
use crate::metrics::Metrics;
use crate::store::entities::outbox as outbox_row;

pub fn routes() -> ApiRoutes {
    ApiRoutes::new().route(Method::GET, "/api/v1/outbox/{id}", outbox_status)
}

/// The largest request body any `/api/v1` call takes (a campaign's CSV is the largest);
/// more is refused with 413 before it is read further. axum's own default, made explicit so
/// the OpenAPI document can state it and the 413 has the API's error body.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// `Authorization: Bearer <INSUREBOT_API_TOKEN>`, behind [`guard`].
    Bearer,
    /// Anyone (the OpenAPI document itself: it is in the repository).
    Public,
}

/// One `/api/v1` operation as the router serves it, named as the OpenAPI document names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Upper case, as HTTP writes it (`GET`); `GET` routes answer `HEAD` too.
    pub method: Method,
    /// The path template with `{name}` parameters, as in the document's `paths`.
    pub path: &'static str,
    pub access: Access,
}

/// The `/api/v1` routes and the list of what they serve, built together: a route reaches the
/// router only through [`ApiRoutes::route`] or [`ApiRoutes::public`], each of which also
/// lists it, so [`ApiRoutes::operations`] cannot drift from what is served (the OpenAPI test
/// compares it with the document).
#[derive(Default)]
pub struct ApiRoutes {
    guarded: Router<AppState>,
    public: Router<AppState>,
    operations: Vec<Operation>,
}

impl ApiRoutes {
    pub fn new() -> Self {
        Self::default()
    }

    /// `method` on `path` behind the bearer token (a `GET` answers `HEAD` too).
    ///
    /// # Panics
    /// For a method axum cannot route (`CONNECT` and extensions), or a method and path added
    /// twice: both are mistakes in the route list, found by any test that builds the router.
    pub fn route<H, T>(self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(method, path, Access::Bearer, handler)
    }

    /// `method` on `path` for anyone (see [`ApiRoutes::route`]).
    pub fn public<H, T>(self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(method, path, Access::Public, handler)
    }

    fn add<H, T>(mut self, method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        // axum merges methods registered one by one on a path, and panics on a repeat.
        let route = on(filter, handler);
        match access {
            Access::Bearer => self.guarded = self.guarded.route(path, route),
            Access::Public => self.public = self.public.route(path, route),
        }
        self.operations.push(Operation {
            method,
            path,
            access,
        });
        self
    }

    /// Both sets of routes together.
    pub fn merge(mut self, other: ApiRoutes) -> Self {
        self.guarded = self.guarded.merge(other.guarded);
        self.public = self.public.merge(other.public);
        self.operations.extend(other.operations);
        self
    }

    /// Every operation served, sorted by path and method.
    pub fn operations(&self) -> Vec<Operation> {
        let mut all = self.operations.clone();
        all.sort_by(|a, b| (a.path, a.method.as_str()).cmp(&(b.path, b.method.as_str())));
        all
    }

    /// The router: bearer routes behind [`guard`], a 405 in the API's error body for a method
    /// a path does not serve, and the body limit.
    pub fn into_router(self, state: AppState) -> Router<AppState> {
        let guarded = self
            .guarded
            .route_layer(axum::middleware::from_fn_with_state(state, guard));
        guarded
            .merge(self.public)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The API's failures; internals are logged, never returned. Every one answers with an
/// [`ErrorBody`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("the API is disabled: set INSUREBOT_API_TOKEN")]
    Disabled,
    /// What was not found, for the caller (personal data masked).
    #[error("{0}")]
    NotFound(String),
    /// The resource is in a state that does not allow the call.
    #[error("{0}")]
    Conflict(String),
    #[error("this path does not serve this method (see the Allow header)")]
    MethodNotAllowed,
    #[error("the request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The request breaks the endpoint's rules; every problem is listed with its field.
    #[error("invalid request")]
    Invalid(Vec<FieldProblem>),
    #[error("too many wrong API tokens from this address; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    /// A part the request needs is switched off or not answering (one-time passwords without
    /// a secret, the insurer's API); the message says which.
    #[error("{0}")]
    Unavailable(&'static str),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::Disabled => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Db(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A 422 with one problem.
    pub fn invalid(field: &str, problem: impl Into<String>) -> Self {
        ApiError::Invalid(vec![FieldProblem::new(field, problem)])
    }
}

/// The body of every error answer of `/api/v1` (schema `Error` in the OpenAPI document):
/// what went wrong in a sentence, and for a 422 every problem with the field it is about
/// (empty otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub error: String,
    pub problems: Vec<FieldProblem>,
}

/// One validation problem: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// Dotted path into the JSON body (`proof.text`, `audience.csv`), a path parameter
    /// (`id`), a header (`Idempotency-Key`), or `body` for the body as a whole.
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
        let status = self.status_code();
        let extra_header = match &self {
            ApiError::Unauthorized | ApiError::Disabled => Some((
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            )),
            ApiError::Throttled { retry_after_secs } => Some((
                header::RETRY_AFTER,
                header::HeaderValue::from(*retry_after_secs),
            )),
            _ => None,
        };
        let body = match self {
            ApiError::Invalid(problems) => ErrorBody {
                error: "invalid request".to_owned(),
                problems,
            },
            ApiError::Db(e) => {
                // The same fields as the console's failures, so one query finds both.
                tracing::error!(error.cause_chain = ?e, error.message = %e, "API request failed");
                ErrorBody {
                    error: "temporarily unavailable".to_owned(),
                    problems: Vec::new(),
                }
            }
            other => ErrorBody {
                error: other.to_string(),
                problems: Vec::new(),
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if let Some((name, value)) = extra_header {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

/// A path parameter, deserialized like axum's [`Path`]; one that does not parse is a 422
/// naming the parameter (axum answers 400 in plain text).
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                // A lone parameter (`Path<i64>`) fails without its name: take it from the route.
                let only = RawPathParams::from_request_parts(parts, state)
                    .await
                    .ok()
                    .and_then(|params| match params.iter().collect::<Vec<_>>()[..] {
                        [(name, _)] => Some(name.to_owned()),
                        _ => None,
                    });
                Err(ApiError::Invalid(vec![path_problem(e.into_kind(), only)]))
            }
            Err(other) => Err(ApiError::invalid("path", other.body_text())),
        }
    }
}

/// The problem of a path parameter that does not parse. The value itself is not repeated: the
/// caller has it, and a path may carry a phone number into someone's logs.
fn path_problem(kind: ErrorKind, only_parameter: Option<String>) -> FieldProblem {
    match kind {
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => FieldProblem::new(&key, format!("must be {}", type_words(expected_type))),
        ErrorKind::ParseError { expected_type, .. } => FieldProblem::new(
            only_parameter.as_deref().unwrap_or("path"),
            format!("must be {}", type_words(expected_type)),
        ),
        ErrorKind::DeserializeError { key, message, .. } => FieldProblem::new(&key, message),
        ErrorKind::InvalidUtf8InPathParam { key } => {
            FieldProblem::new(&key, "is not valid UTF-8 once percent-decoded")
        }
        other => FieldProblem::new("path", other.to_string()),
    }
}

fn type_words(rust_type: &str) -> &'static str {
    match rust_type {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            "a whole number in range"
        }
        _ => "of the documented type",
    }
}

/// The raw request body, at most [`MAX_BODY_BYTES`] (413 in the API's error body beyond).
pub struct ApiBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(ApiBody)
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge
                } else {
                    ApiError::invalid("body", "could not be read")
                }
            })
    }
}

/// A JSON body of type `T`, read whatever its `Content-Type` says (as the API always has); a
/// body that does not fit `T` is a 422 naming the field (`audience.kind`) or `body`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let ApiBody(bytes) = ApiBody::from_request(request, state).await?;
        parse_json(&bytes)
            .map(ApiJson)
            .map_err(|p| ApiError::Invalid(vec![p]))
    }
}

/// `bytes` as JSON of type `T`, or the problem with the field it is in.
///
/// # Errors
/// Not JSON, or not the shape of `T`: the problem names the dotted path of the value that did
/// not fit, `body` for the whole.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FieldProblem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(field_problem)?;
    deserializer
        .end()
        .map_err(|e| FieldProblem::new("body", e.to_string()))?;
    Ok(value)
}

/// `value` as a `T`, or the problem with the field it is in (as [`parse_json`]).
///
/// # Errors
/// `value` does not have the shape of `T`.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, FieldProblem> {
    serde_path_to_error::deserialize(value).map_err(field_problem)
}

fn field_problem(e: serde_path_to_error::Error<serde_json::Error>) -> FieldProblem {
    let path = e.path().to_string();
    // A syntax error is the body's, wherever the parser stopped (its path may end in `?`).
    let whole = path == "." || !e.inner().is_data();
    let field = if whole { "body" } else { path.as_str() };
    FieldProblem::new(field, e.inner().to_string())
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

/// In front of every bearer `/api/v1` route: an address past its allowance of wrong tokens
/// gets 429 with `Retry-After` (its token is not even compared, see [`super::throttle`]); a
/// wrong token is counted against its address and answered 401, or 429 once past the
/// allowance. Runs before the handlers read any body. The handlers still call [`authorize`]
/// themselves.
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
    ApiError::Throttled {
        retry_after_secs: throttle::retry_after_secs(wait),
    }
    .into_response()
}

/// What `GET /api/v1/outbox/{id}` answers.
#[derive(Debug, Serialize)]
pub struct OutboxView {
    pub id: i64,
    pub contact_id: i64,
    pub purpose: String,
    /// queued | sent | failed | dead | skipped
    pub state: outbox_row::State,
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
        let queued = r.state == outbox_row::State::Queued;
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
            reason: r.reason.map(|reason| reason.to_string()),
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
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<OutboxView>, ApiError> {
    authorize(&state, &headers)?;
    let row = outbox::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no outbox message {id}")))?;
    Ok(Json(row.into()))
}
