//! The OTP routes under `/api/v1` (bearer token like the rest of the API, see
//! [`super::api`]):
//!
//! - `POST /api/v1/otp` with an `Idempotency-Key`: `{ phone | policy_number, purpose,
//!   language? }` → `202 { otp_id, expires_at }`. The code goes with the AUTHENTICATION
//!   template to the number given or to the policy's registered mobile. A repeat with the same
//!   key and body gets the first answer and sends nothing; the same key with another body is
//!   refused. Past a limit: `429` with `Retry-After`.
//! - `POST /api/v1/otp/{otp_id}/verify` `{ code }` → `{ result: verified | wrong | expired |
//!   locked | already_used, attempts_left }`.
//! - `GET /api/v1/otp/{otp_id}` → where the code is (`queued | sent | delivered | read |
//!   undeliverable | verified | expired | locked`), with Meta's error code when undeliverable.
//!
//! An unknown `otp_id` is `404 {"error": "not found"}`, the same for every id. Bad requests
//! are `422` listing every problem by field. Without `otp.secret` (outside sandbox mode) every
//! route answers 503 saying so.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use super::api::{ApiBody, ApiError, ApiPath, ApiRoutes, ErrorBody, FieldProblem, authorize};
use super::notifications::{idempotency_key, target};
use crate::messaging::composer::Queued;
use crate::notifications::{NoRecipient, Target, recipient};
use crate::otp::{IssueError, IssueRequest, Origin, Otp, Status};
use crate::store::begin_write;
use crate::store::entities::otp as otp_row;

/// The OTP operations, registered like every `/api/v1` route (and so checked against
/// `src/http/otp.openapi.yaml`).
pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(Method::POST, "/api/v1/otp", create)
        .route(Method::GET, "/api/v1/otp/{otp_id}", status)
        .route(Method::POST, "/api/v1/otp/{otp_id}/verify", verify)
}

/// The 404 of every unknown `otp_id`: the same words whatever the id, so nothing is learnt
/// about other codes.
const NOT_FOUND: &str = "no such one-time password";

/// The body of `POST /api/v1/otp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    policy_number: Option<String>,
    purpose: String,
    #[serde(default)]
    language: Option<String>,
    /// The business number the code leaves from (a configured phone number id).
    #[serde(default)]
    number: Option<String>,
}

/// The body of `POST /api/v1/otp/{otp_id}/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    code: String,
}

fn otp_of(state: &AppState) -> Result<&Otp, ApiError> {
    state.otp.as_deref().ok_or(ApiError::Unavailable(
        "one-time passwords are off: set INSUREBOT_OTP_SECRET (otp.secret)",
    ))
}

fn body_problem(e: &serde_json::Error) -> FieldProblem {
    FieldProblem::new("body", format!("is not a valid request: {e}"))
}

/// The request's own problems (before any lookup), and its target when it has one.
fn validate(otp: &Otp, req: &CreateRequest) -> (Vec<FieldProblem>, Option<Target>) {
    let mut problems = Vec::new();
    if !otp.knows_purpose(&req.purpose) {
        problems.push(FieldProblem::new(
            "purpose",
            format!(
                "unknown purpose '{}': one of {}",
                req.purpose,
                otp.settings.purposes.join(", ")
            ),
        ));
    }
    if let Some(language) = &req.language
        && (language.is_empty()
            || language.len() > 16
            || !language
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        problems.push(FieldProblem::new(
            "language",
            "is not a language code such as en, hi or ta",
        ));
    }
    let target = target(
        req.policy_number.as_deref(),
        req.phone.as_deref(),
        &mut problems,
    );
    (problems, target)
}

/// The answer to a code that was queued (or recorded as undeliverable at once).
fn created_answer(id: &str, expires_at: i64) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "otp_id": id, "expires_at": expires_at })),
    )
        .into_response()
}

fn too_many(limit: crate::otp::RateLimited) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(ErrorBody {
            error: limit.to_string(),
            problems: Vec::new(),
        }),
    )
        .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(limit.retry_after_secs),
    );
    response
}

/// A repeat of an accepted request: the first answer, or 422 for another body.
fn replay(row: &otp_row::Model, hash: &str) -> Result<Response, ApiError> {
    if row.request_hash.as_deref() != Some(hash) {
        return Err(ApiError::Invalid(vec![FieldProblem::new(
            "Idempotency-Key",
            "was already used with a different request body",
        )]));
    }
    Ok(created_answer(&row.id, row.expires_at))
}

async fn find_key<C: sea_orm::ConnectionTrait>(
    db: &C,
    key: &str,
) -> Result<Option<otp_row::Model>, DbErr> {
    otp_row::Entity::find()
        .filter(otp_row::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let otp = otp_of(&state)?;
    let mut problems = Vec::new();
    let key = idempotency_key(&headers).map_err(|p| problems.push(p)).ok();
    let parsed = serde_json::from_slice::<Value>(&body).and_then(|v| {
        let request: CreateRequest = serde_json::from_value(v.clone())?;
        Ok((request, v))
    });
    let (request, canonical) = match parsed {
        Ok(ok) => ok,
        Err(e) => {
            problems.push(body_problem(&e));
            return Err(ApiError::Invalid(problems));
        }
    };
    let (own, target) = validate(otp, &request);
    problems.extend(own);
    let number = super::notifications::business_number(
        &state.settings,
        request.number.as_deref(),
        &mut problems,
    );
    let hash = hex::encode(Sha256::digest(canonical.to_string().as_bytes()));
    if let Some(key) = &key
        && let Some(row) = find_key(&state.db, key).await?
    {
        return replay(&row, &hash);
    }
    // The policy's registered mobile, read before any transaction (a slow insurer API must
    // not hold one); its problems are listed with the others.
    let addressee = match &target {
        None => None,
        Some(target) => match recipient(&state.insurer, target).await {
            Ok(addressee) => Some(addressee),
            Err(NoRecipient::UnknownPolicy(_)) => {
                problems.push(FieldProblem::new(
                    "policy_number",
                    "no policy has this number",
                ));
                None
            }
            Err(NoRecipient::NoMobile) => {
                problems.push(FieldProblem::new(
                    "policy_number",
                    "the policy has no registered mobile number",
                ));
                None
            }
            Err(NoRecipient::SourceDown(e)) => {
                // SourceError messages carry no personal data.
                tracing::warn!(error = %e, "OTP: the policy source did not answer");
                return Err(ApiError::Unavailable(
                    "the policy data source is not answering; retry with the same Idempotency-Key",
                ));
            }
        },
    };
    // Naming none: the policy's line when it names a policy that has one. The template is
    // checked in the WABA of the number the code will leave from.
    let number = number.or_else(|| addressee.as_ref().and_then(|a| a.line.clone()));
    if let Some(language) = &request.language
        && problems.iter().all(|p| p.field != "language")
        && let Some(problem) = otp
            .template_problem(&state.db, number.as_deref(), language)
            .await?
    {
        problems.push(FieldProblem::new("language", problem));
    }
    let (Some(key), Some(addressee), true) = (key, addressee, problems.is_empty()) else {
        return Err(ApiError::Invalid(problems));
    };

    let txn = begin_write(&state.db).await?;
    // A concurrent request with the same key committed first: its answer.
    if let Some(row) = find_key(&txn, &key).await? {
        txn.rollback().await?;
        return replay(&row, &hash);
    }
    let issued = otp
        .issue(
            &txn,
            IssueRequest {
                purpose: &request.purpose,
                phone: &addressee.phone,
                language: request.language.as_deref(),
                origin: Origin::Api,
                requester: None,
                idempotency: Some((&key, &hash)),
                number: number.as_deref(),
            },
        )
        .await;
    let issued = match issued {
        Ok(issued) => issued,
        Err(IssueError::RateLimited(limit)) => {
            txn.rollback().await?;
            return Ok(too_many(limit));
        }
        Err(IssueError::Template(problem)) => {
            txn.rollback().await?;
            return Err(ApiError::Invalid(vec![FieldProblem::new(
                "language", problem,
            )]));
        }
        Err(IssueError::Db(e)) => {
            drop(txn);
            // The same key, inserted by a concurrent request that committed while ours
            // waited on the unique index: answer with theirs.
            if let Some(row) = find_key(&state.db, &key).await? {
                return replay(&row, &hash);
            }
            return Err(e.into());
        }
    };
    match txn.commit().await {
        Ok(()) => {}
        // The same key, committed by a concurrent request between our check and our insert:
        // the unique index refused ours; answer with theirs.
        Err(e) => {
            if let Some(row) = find_key(&state.db, &key).await? {
                return replay(&row, &hash);
            }
            return Err(e.into());
        }
    }
    if matches!(issued.queued, Queued::Row(_)) {
        state.pipeline.notify(issued.contact_id);
    }
    Ok(created_answer(&issued.id, issued.expires_at))
}

/// An OTP id as given: anything else is answered like an unknown id.
fn plausible_id(id: &str) -> bool {
    id.len() <= 64 && id.starts_with("otp_")
}

async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(otp_id): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let otp = otp_of(&state)?;
    let request: VerifyRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::Invalid(vec![body_problem(&e)]))?;
    if !plausible_id(&otp_id) {
        return Err(ApiError::NotFound(NOT_FOUND.into()));
    }
    if request.code.trim().is_empty() {
        return Err(ApiError::Invalid(vec![FieldProblem::new(
            "code", "is empty",
        )]));
    }
    let txn = begin_write(&state.db).await?;
    let result = otp.verify(&txn, &otp_id, &request.code).await?;
    txn.commit().await?;
    let v = result.ok_or(ApiError::NotFound(NOT_FOUND.into()))?;
    Ok(Json(json!({
        "otp_id": v.row.id,
        "result": v.outcome.as_str(),
        "attempts_left": v.attempts_left,
    }))
    .into_response())
}

async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(otp_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let otp = otp_of(&state)?;
    if !plausible_id(&otp_id) {
        return Err(ApiError::NotFound(NOT_FOUND.into()));
    }
    let row = otp_row::Entity::find_by_id(otp_id)
        .one(&state.db)
        .await?
        .ok_or(ApiError::NotFound(NOT_FOUND.into()))?;
    let (status, message) = otp.status(&state.db, &row).await?;
    let error_code = match status {
        Status::Undeliverable => message
            .as_ref()
            .and_then(|m| m.delivery_error_code.or(m.error_code)),
        _ => None,
    };
    let reason = match status {
        Status::Undeliverable => message.as_ref().and_then(|m| m.reason),
        _ => None,
    };
    Ok(Json(json!({
        "otp_id": row.id,
        "purpose": row.purpose,
        "status": status,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "verified_at": row.verified_at,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "error_code": error_code,
        "reason": reason,
    }))
    .into_response())
}
