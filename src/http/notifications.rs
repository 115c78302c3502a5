//! `POST /api/v1/notifications` and `GET /api/v1/notifications/{id}` (issue 5, part 4): the
//! HTTP side of [`crate::notifications`]. Bearer token like the rest of `/api/v1`. This file
//! parses and validates the request (every problem listed with its field) and maps the
//! domain's errors to answers; the kinds, the recipient, the text and the idempotent queueing
//! are the domain's.
//!
//! The request must carry an `Idempotency-Key` (1–128 printable ASCII characters): a repeat
//! with the same key and body gets the first answer (same status, same body) and queues
//! nothing; the same key with another body is refused with 422. When the insurer's API does
//! not answer the answer is 503 and nothing is stored under the key, so the caller retries.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use sea_orm::DbErr;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use super::api::{
    ApiBody, ApiError, ApiPath, ApiRoutes, FieldProblem, OutboxView, authorize, from_value,
    parse_json,
};
use crate::messaging::outbox;
use crate::notifications::{KINDS, Kind, NoRecipient, Notifier, NotifyError, Request, Target};
use crate::phone::PhoneNumber;
use crate::privacy::mask;

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(Method::POST, "/api/v1/notifications", create)
        .route(Method::GET, "/api/v1/notifications/{id}", status)
}

/// The header that makes a notification request safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The longest `Idempotency-Key` accepted.
pub const MAX_KEY_LEN: usize = 128;

/// The body of `POST /api/v1/notifications`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationRequest {
    kind: String,
    #[serde(default)]
    policy_number: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    /// The business number it leaves from (a configured phone number id).
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    data: Map<String, Value>,
}

/// A validated request.
#[derive(Debug)]
struct Validated {
    kind: &'static Kind,
    target: Target,
    params: Vec<String>,
    number: Option<String>,
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<String, FieldProblem> {
    let values: Vec<_> = headers.get_all(IDEMPOTENCY_KEY).iter().collect();
    let problem = |p: &str| Err(FieldProblem::new("Idempotency-Key", p));
    match values.as_slice() {
        [] => problem("is required"),
        [one] => {
            let bytes = one.as_bytes();
            if bytes.is_empty() {
                problem("is empty")
            } else if bytes.len() > MAX_KEY_LEN {
                problem(&format!("is longer than {MAX_KEY_LEN} characters"))
            } else if !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
                problem("may contain only printable ASCII characters")
            } else {
                Ok(String::from_utf8_lossy(bytes).into_owned())
            }
        }
        _ => problem("must be given once"),
    }
}

/// The recipient named by exactly one of `policy_number` and `phone`, normalised; otherwise
/// `None` with the problem added to `problems`.
pub(crate) fn target(
    policy_number: Option<&str>,
    phone: Option<&str>,
    problems: &mut Vec<FieldProblem>,
) -> Option<Target> {
    match (policy_number, phone) {
        (Some(_), Some(_)) => {
            problems.push(FieldProblem::new(
                "policy_number",
                "give either policy_number or phone, not both",
            ));
            None
        }
        (None, None) => {
            problems.push(FieldProblem::new(
                "policy_number",
                "policy_number or phone is required",
            ));
            None
        }
        (Some(n), None) => match crate::insurer::model::normalize_policy_number(n) {
            Some(n) => Some(Target::Policy(n)),
            None => {
                problems.push(FieldProblem::new("policy_number", "is not a policy number"));
                None
            }
        },
        (None, Some(p)) => match PhoneNumber::parse(p) {
            Ok(p) => Some(Target::Phone(p.into_string())),
            Err(e) => {
                problems.push(FieldProblem::new("phone", e.to_string()));
                None
            }
        },
    }
}

/// A `data` value as a template parameter: strings and numbers; blank strings are missing.
/// A NUL character is refused: PostgreSQL's text cannot hold it, so it would fail the
/// transaction on one backend and not the other.
fn param(value: Option<&Value>) -> Option<Result<String, &'static str>> {
    match value? {
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) if s.contains('\0') => {
            Some(Err("must not contain NUL characters (U+0000)"))
        }
        Value::String(s) => Some(Ok(s.trim().to_owned())),
        Value::Number(n) => Some(Ok(n.to_string())),
        Value::Null => None,
        _ => Some(Err("must be a string or a number")),
    }
}

/// `number` when it is one of the deployment's business numbers; otherwise the problem is
/// added to `problems`.
pub(crate) fn business_number(
    settings: &crate::config::Settings,
    number: Option<&str>,
    problems: &mut Vec<FieldProblem>,
) -> Option<String> {
    let number = number?;
    if settings.serves_number(number) {
        return Some(number.to_owned());
    }
    let configured: Vec<String> = settings
        .numbers()
        .into_iter()
        .map(|n| n.phone_number_id)
        .collect();
    problems.push(FieldProblem::new(
        "number",
        format!(
            "'{number}' is not one of this deployment's business numbers ({})",
            configured.join(", ")
        ),
    ));
    None
}

fn validate(
    req: &NotificationRequest,
    settings: &crate::config::Settings,
) -> Result<Validated, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let kind = KINDS.iter().find(|k| k.name == req.kind);
    if kind.is_none() {
        let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        problems.push(FieldProblem::new(
            "kind",
            format!("unknown kind '{}': one of {}", req.kind, known.join(", ")),
        ));
    }
    let target = target(
        req.policy_number.as_deref(),
        req.phone.as_deref(),
        &mut problems,
    );
    let number = business_number(settings, req.number.as_deref(), &mut problems);
    let mut params = Vec::new();
    if let Some(kind) = kind {
        for field in kind.fields {
            let mut value = param(req.data.get(*field));
            // The policy number of the request fills data.policy_number when it is absent.
            if value.is_none()
                && *field == "policy_number"
                && let Some(Target::Policy(n)) = &target
            {
                value = Some(Ok(n.clone()));
            }
            match value {
                Some(Ok(v)) => params.push(v),
                Some(Err(problem)) => {
                    problems.push(FieldProblem::new(&format!("data.{field}"), problem))
                }
                None => problems.push(FieldProblem::new(&format!("data.{field}"), "is required")),
            }
        }
    }
    match (kind, target) {
        (Some(kind), Some(target)) if problems.is_empty() => Ok(Validated {
            kind,
            target,
            params,
            number,
        }),
        _ => Err(problems),
    }
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let key = idempotency_key(&headers);
    let parsed: Result<(NotificationRequest, Value), FieldProblem> =
        parse_json::<Value>(&body).and_then(|v| Ok((from_value(v.clone())?, v)));
    let mut problems = Vec::new();
    if let Err(p) = &key {
        problems.push(p.clone());
    }
    let (request, canonical) = match parsed {
        Ok(ok) => ok,
        Err(p) => {
            problems.push(p);
            return Err(ApiError::Invalid(problems));
        }
    };
    let validated = validate(&request, &state.settings);
    if let Err(p) = &validated {
        problems.extend(p.iter().cloned());
    }
    let (Ok(key), Ok(v)) = (key, validated) else {
        return Err(ApiError::Invalid(problems));
    };
    let request = Request {
        key,
        hash: hex::encode(Sha256::digest(canonical.to_string().as_bytes())),
        kind: v.kind,
        target: v.target,
        params: v.params,
        number: v.number,
    };
    let flows = state.console.flows.as_ref().map(|store| store.current());
    let notifier = Notifier {
        db: &state.db,
        insurer: &state.insurer,
        composer: &state.composer,
        pipeline: &state.pipeline,
        i18n: flows.as_ref().map(|set| set.i18n()),
        default_language: &state.settings.dialogue.default_language,
    };
    let answer = notifier.notify(&request).await.map_err(|e| match e {
        NotifyError::KeyReused => ApiError::Invalid(vec![FieldProblem::new(
            "Idempotency-Key",
            "was already used with a different request body",
        )]),
        NotifyError::NoRecipient(e) => no_recipient(e),
        NotifyError::Refused(e) => ApiError::Invalid(vec![FieldProblem::new(
            "data",
            format!("makes a message WhatsApp refuses: {e}"),
        )]),
        NotifyError::Db(e) => e.into(),
    })?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::ACCEPTED);
    Ok((status, Json(answer.body)).into_response())
}

/// The answer when a notification has no recipient.
fn no_recipient(e: NoRecipient) -> ApiError {
    match e {
        NoRecipient::UnknownPolicy(number) => {
            // The caller sent the number, but the answer may end up in its logs: masked.
            ApiError::NotFound(format!("policy {} not found", mask(&number)))
        }
        NoRecipient::NoMobile => ApiError::Invalid(vec![FieldProblem::new(
            "policy_number",
            "the policy has no registered mobile number",
        )]),
        NoRecipient::SourceDown(e) => {
            // SourceError messages carry no personal data.
            tracing::warn!(error = %e, "notification: the policy source did not answer");
            ApiError::Unavailable(
                "the policy data source is not answering; retry with the same Idempotency-Key",
            )
        }
    }
}

async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let missing = || ApiError::NotFound(format!("no notification {id}"));
    let row = crate::notifications::find(&state.db, id)
        .await?
        .ok_or_else(missing)?;
    let outbox_row = match row.outbox_id {
        Some(o) => outbox::get(&state.db, o).await?,
        None => None,
    }
    .ok_or_else(missing)?;
    let view = OutboxView::from(outbox_row);
    let mut body = serde_json::to_value(&view).map_err(|e| DbErr::Custom(e.to_string()))?;
    if let Value::Object(map) = &mut body {
        map.remove("id");
        map.insert("notification_id".into(), json!(row.id));
        map.insert("kind".into(), json!(row.kind));
        map.insert("outbox_id".into(), json!(view.id));
    }
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_file_documents_both_calls_and_every_kind() {
        let doc = crate::http::openapi::document();
        assert!(doc["paths"]["/api/v1/notifications"]["post"].is_object());
        assert!(doc["paths"]["/api/v1/notifications/{id}"]["get"].is_object());
        let kinds: Vec<&str> =
            doc["components"]["schemas"]["NotificationRequest"]["properties"]["kind"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap())
                .collect();
        assert_eq!(kinds, KINDS.iter().map(|k| k.name).collect::<Vec<_>>());
        let described = doc["paths"]["/api/v1/notifications"]["post"]["description"]
            .as_str()
            .unwrap();
        for kind in KINDS {
            assert!(described.contains(kind.template), "{}", kind.template);
        }
    }

    #[test]
    fn the_key_must_be_1_to_128_printable_characters() {
        let with = |v: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert(
                IDEMPOTENCY_KEY,
                axum::http::HeaderValue::from_bytes(v).unwrap(),
            );
            idempotency_key(&h)
        };
        assert!(idempotency_key(&HeaderMap::new()).is_err());
        assert!(with(b"").is_err());
        assert!(with(&[b'a'; 129]).is_err());
        assert_eq!(with(&[b'a'; 128]).unwrap().len(), 128);
        assert!(with(b"caf\xc3\xa9").is_err());
        assert_eq!(with(b"order 42/x").unwrap(), "order 42/x");
    }
}
