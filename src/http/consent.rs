//! Consent and erasure over the API (bearer token, see [`super::api`]):
//!
//! - `POST /api/v1/consent` records an opt-in or opt-out collected elsewhere (a website form,
//!   a call centre, an agent) with its proof. An opt-in needs the proof (the exact text the
//!   person agreed to and when); an opt-out never does: it is honoured whatever comes with it.
//!   The number need not have written to us yet: the entry is kept under the number's hash and
//!   applies once it does. 201 with the entries' ids and the resulting state; 422 listing every
//!   problem with its field.
//! - `GET /api/v1/consent/{phone}`: the state and every log entry for a number.
//! - `DELETE /api/v1/contacts/{phone}`: erases the contact's personal data and answers with
//!   the receipt (counts per table); 404 when no contact has the number.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::{ApiBody, ApiError, ApiPath, ApiRoutes, FieldProblem, authorize, parse_json};
use crate::consent::erasure::{self, Receipt};
use crate::consent::{self, AddressHasher, Change, ConsentState, NewEntry, Scope, Source};
use crate::phone::PhoneNumber;
use crate::store::{begin_write, now_ms};

/// Longest proof text accepted (a consent form's wording fits comfortably).
const MAX_PROOF_TEXT: usize = 4096;
const MAX_DETAIL: usize = 500;
/// A proof timestamp may be this far in the future (clock skew between systems).
const FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(Method::POST, "/api/v1/consent", record_consent)
        .route(Method::GET, "/api/v1/consent/{phone}", consent_of)
        .route(Method::DELETE, "/api/v1/contacts/{phone}", erase_contact)
}

/// A validated `POST /api/v1/consent` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    pub phone: String,
    pub change: Change,
    pub scopes: Vec<Scope>,
    pub source: Source,
    pub proof_text: Option<String>,
    pub collected_at: Option<i64>,
    pub detail: Option<String>,
}

impl ConsentRequest {
    /// Checks every field and reports every problem at once.
    ///
    /// # Errors
    /// The list of problems, each naming its field.
    pub fn parse(body: &Value, now: i64) -> Result<Self, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldProblem::new("body", "must be a JSON object")]);
        };
        for key in obj.keys() {
            if !["phone", "change", "scope", "source", "proof"].contains(&key.as_str()) {
                problems.push(FieldProblem::new(key, "unknown field"));
            }
        }
        let phone = match obj.get("phone").and_then(Value::as_str) {
            Some(p) => PhoneNumber::parse(p)
                .map(PhoneNumber::into_string)
                .map_err(|e| problems.push(FieldProblem::new("phone", e.to_string())))
                .ok(),
            None => {
                problems.push(FieldProblem::new(
                    "phone",
                    "required: the WhatsApp number with country code, e.g. \"919812345678\"",
                ));
                None
            }
        };
        let change = match obj.get("change").and_then(Value::as_str).map(Change::parse) {
            Some(Some(c)) => Some(c),
            _ => {
                problems.push(FieldProblem::new(
                    "change",
                    "required: \"opt_in\" or \"opt_out\"",
                ));
                None
            }
        };
        let scope_values: Vec<&Value> = match obj.get("scope") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(v @ Value::String(_)) => vec![v],
            _ => Vec::new(),
        };
        let mut scopes = Vec::new();
        for v in &scope_values {
            match v.as_str().and_then(Scope::parse) {
                Some(s) if !scopes.contains(&s) => scopes.push(s),
                Some(_) => {}
                None => problems.push(FieldProblem::new(
                    "scope",
                    format!("unknown scope {v}: use all, service, reminders or marketing"),
                )),
            }
        }
        if scope_values.is_empty() {
            problems.push(FieldProblem::new(
                "scope",
                "required: \"all\", \"service\", \"reminders\", \"marketing\" or a list of them",
            ));
        }
        let source = match obj.get("source") {
            None => Source::Api,
            Some(v) => match v.as_str().and_then(Source::parse) {
                Some(s @ (Source::Api | Source::Agent)) => s,
                _ => {
                    problems.push(FieldProblem::new(
                        "source",
                        "\"api\" (default) or \"agent\"",
                    ));
                    Source::Api
                }
            },
        };
        let proof = obj.get("proof");
        if proof.is_some_and(|p| !p.is_object()) {
            problems.push(FieldProblem::new("proof", "must be an object"));
        }
        let proof = proof.and_then(Value::as_object);
        // A proof's text or detail of another type would otherwise be read as absent, and an
        // opt-out (which needs neither) accepted with it.
        for key in ["text", "detail"] {
            if proof
                .and_then(|p| p.get(key))
                .is_some_and(|v| !v.is_string() && !v.is_null())
            {
                problems.push(FieldProblem::new(
                    &format!("proof.{key}"),
                    "must be a string",
                ));
            }
        }
        let proof_text = proof.and_then(|p| p.get("text")).and_then(Value::as_str);
        let proof_text = proof_text.map(str::trim).filter(|t| !t.is_empty());
        if proof_text.is_some_and(|t| t.chars().count() > MAX_PROOF_TEXT) {
            problems.push(FieldProblem::new(
                "proof.text",
                format!("at most {MAX_PROOF_TEXT} characters"),
            ));
        }
        if proof_text.is_some_and(has_nul) {
            problems.push(FieldProblem::new("proof.text", NUL_PROBLEM));
        }
        let collected_at = match proof.and_then(|p| p.get("collected_at")) {
            None | Some(Value::Null) => None,
            Some(v) => match timestamp(v) {
                Some(t) if t > now + FUTURE_SKEW_MS => {
                    problems.push(FieldProblem::new("proof.collected_at", "is in the future"));
                    None
                }
                Some(t) => Some(t),
                None => {
                    problems.push(FieldProblem::new(
                        "proof.collected_at",
                        "an RFC 3339 time (\"2026-05-01T10:00:00+05:30\") or Unix milliseconds",
                    ));
                    None
                }
            },
        };
        let detail = proof
            .and_then(|p| p.get("detail"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|d| !d.is_empty());
        if detail.is_some_and(|d| d.chars().count() > MAX_DETAIL) {
            problems.push(FieldProblem::new(
                "proof.detail",
                format!("at most {MAX_DETAIL} characters"),
            ));
        }
        if detail.is_some_and(has_nul) {
            problems.push(FieldProblem::new("proof.detail", NUL_PROBLEM));
        }
        // An opt-in is only worth what its proof is; an opt-out is honoured without one.
        if change == Some(Change::OptIn) {
            if proof_text.is_none() {
                problems.push(FieldProblem::new(
                    "proof.text",
                    "required for an opt-in: the exact text the person agreed to",
                ));
            }
            if collected_at.is_none() && !problems.iter().any(|p| p.field == "proof.collected_at") {
                problems.push(FieldProblem::new(
                    "proof.collected_at",
                    "required for an opt-in: when the person agreed",
                ));
            }
        }
        if source == Source::Agent && detail.is_none() {
            problems.push(FieldProblem::new(
                "proof.detail",
                "required when source is agent: who recorded it",
            ));
        }
        match (phone, change, problems.is_empty()) {
            (Some(phone), Some(change), true) => Ok(ConsentRequest {
                phone,
                change,
                scopes,
                source,
                proof_text: proof_text.map(str::to_owned),
                collected_at,
                detail: detail.map(str::to_owned),
            }),
            _ => Err(problems),
        }
    }
}

/// A proof is kept as given, so a NUL character (which PostgreSQL's text cannot hold) is the
/// caller's to remove, not ours to change: refused, on both backends alike.
const NUL_PROBLEM: &str = "must not contain NUL characters (U+0000)";

fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

fn timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().filter(|t| *t > 0),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    }
}

/// The state of a number plus its log, as the API shows it.
#[derive(Debug, Serialize)]
pub struct ConsentView {
    pub status: consent::Status,
    pub state: ConsentState,
    pub entries: Vec<EntryView>,
}

#[derive(Debug, Serialize)]
pub struct EntryView {
    pub id: i64,
    pub change: String,
    pub scope: String,
    pub source: String,
    pub shown_text: Option<String>,
    pub detail: Option<String>,
    pub occurred_at: Option<i64>,
    pub created_at: i64,
}

async fn view(
    db: &impl sea_orm::ConnectionTrait,
    hasher: &AddressHasher,
    phone: &str,
) -> Result<ConsentView, ApiError> {
    let entries = consent::entries_for_phone(db, hasher, phone).await?;
    let state = ConsentState::fold(&entries);
    Ok(ConsentView {
        status: state.status(),
        state,
        entries: entries
            .into_iter()
            .map(|e| EntryView {
                id: e.id,
                change: e.change,
                scope: e.scope,
                source: e.source,
                shown_text: e.shown_text,
                detail: e.detail,
                occurred_at: e.occurred_at,
                created_at: e.created_at,
            })
            .collect(),
    })
}

async fn record_consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    let now = now_ms();
    let value: Value = parse_json(&body).map_err(|p| ApiError::Invalid(vec![p]))?;
    let request = ConsentRequest::parse(&value, now).map_err(ApiError::Invalid)?;
    let hasher = AddressHasher::new(state.settings.hash_key());
    let txn = begin_write(&state.db).await?;
    let contact = consent::contact_by_phone(&txn, &request.phone).await?;
    let mut ids = Vec::new();
    for scope in &request.scopes {
        ids.push(
            consent::record(
                &txn,
                NewEntry {
                    contact_id: contact.as_ref().map(|c| c.id),
                    address_hash: Some(hasher.hash(&request.phone)),
                    change: request.change,
                    scope: *scope,
                    source: request.source,
                    shown_text: request.proof_text.clone(),
                    occurred_at: request.collected_at,
                    detail: request.detail.clone(),
                },
                now,
            )
            .await?,
        );
    }
    let view = view(&txn, &hasher, &request.phone).await?;
    txn.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "entries": ids, "status": view.status, "state": view.state })),
    ))
}

async fn consent_of(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(phone): ApiPath<String>,
) -> Result<Json<ConsentView>, ApiError> {
    authorize(&state, &headers)?;
    let phone = phone_in_path(&phone)?;
    let hasher = AddressHasher::new(state.settings.hash_key());
    Ok(Json(view(&state.db, &hasher, &phone).await?))
}

/// The `{phone}` of a path, as an international number.
fn phone_in_path(raw: &str) -> Result<String, ApiError> {
    PhoneNumber::parse(raw)
        .map(PhoneNumber::into_string)
        .map_err(|e| ApiError::Invalid(vec![FieldProblem::new("phone", e.to_string())]))
}

async fn erase_contact(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(phone): ApiPath<String>,
) -> Result<Json<Receipt>, ApiError> {
    authorize(&state, &headers)?;
    let phone = phone_in_path(&phone)?;
    let hasher = AddressHasher::new(state.settings.hash_key());
    erasure::erase(&state.db, &hasher, Some(&state.media), &phone, now_ms())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no contact has this number".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    #[test]
    fn an_opt_in_with_its_proof_is_accepted() {
        let r = ConsentRequest::parse(
            &json!({
                "phone": "+91 98123 45678", "change": "opt_in", "scope": ["service", "marketing"],
                "proof": { "text": "I agree to offers", "collected_at": "2026-05-01T10:00:00+05:30",
                           "detail": "web form v3" }
            }),
            NOW,
        )
        .unwrap();
        assert_eq!(r.phone, "919812345678");
        assert_eq!(r.scopes, [Scope::Service, Scope::Marketing]);
        assert_eq!(r.source, Source::Api);
        assert!(r.collected_at.is_some());
    }

    #[test]
    fn an_opt_out_needs_no_proof() {
        let r = ConsentRequest::parse(
            &json!({ "phone": "919812345678", "change": "opt_out", "scope": "all" }),
            NOW,
        )
        .unwrap();
        assert_eq!(r.scopes, [Scope::All]);
    }

    #[test]
    fn every_problem_is_listed_with_its_field() {
        let problems = ConsentRequest::parse(
            &json!({ "phone": "12", "change": "maybe", "scope": ["everything"],
                     "proof": { "collected_at": "yesterday" }, "extra": 1 }),
            NOW,
        )
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        for f in ["extra", "phone", "change", "scope", "proof.collected_at"] {
            assert!(fields.contains(&f), "{f} missing in {problems:?}");
        }
        let problems = ConsentRequest::parse(
            &json!({ "phone": "919812345678", "change": "opt_in", "scope": "marketing",
                     "proof": { "collected_at": NOW + 3_600_000 } }),
            NOW,
        )
        .unwrap_err();
        assert!(problems.iter().any(|p| p.field == "proof.text"));
        assert!(
            problems
                .iter()
                .any(|p| p.field == "proof.collected_at" && p.problem.contains("future"))
        );
    }

    #[test]
    fn a_nul_character_in_the_proof_is_a_problem_of_its_field() {
        let problems = ConsentRequest::parse(
            &json!({ "phone": "919812345678", "change": "opt_in", "scope": "marketing",
                     "proof": { "text": "I\u{0}agree", "collected_at": NOW - 1000,
                                "detail": "web\u{0}form" } }),
            NOW,
        )
        .unwrap_err();
        for field in ["proof.text", "proof.detail"] {
            assert!(
                problems
                    .iter()
                    .any(|p| p.field == field && p.problem.contains("NUL")),
                "{field}: {problems:?}"
            );
        }
    }
}
