//! `POST /api/v1/notifications` and `GET /api/v1/notifications/{id}` (issue 5, part 4): the
//! insurer's systems ask insurebot to tell a policyholder about a claim update, a premium due
//! or an issued policy. Bearer token like the rest of `/api/v1`.
//!
//! Each kind maps to a template of the registry (used outside the 24-hour window) and a
//! free-form text (used inside it); both are handed to [`composer::queue`], which decides
//! window, template and consent, now and again at send time. Whether the notification is
//! essential (may reach a contact who opted out) is the template's registry flag, never the
//! caller's word.
//!
//! A notification for a policy goes to the mobile registered on it, read through the configured
//! policy source (the embedded tables or the insurer's own API, the same
//! [`PolicySource`](crate::insurer::PolicySource) the flow actions use), before any transaction
//! starts: a slow insurer API never holds a database transaction or SQLite's write gate. When
//! that API fails the answer is 503 and nothing is stored under the key, so the caller retries.
//!
//! The request must carry an `Idempotency-Key` (1–128 printable ASCII characters). The key,
//! a hash of the body and the answer are stored in `notification_requests` in the same
//! transaction as the outbox row: a repeat with the same key and body gets the first answer
//! (same status, same body) and queues nothing; the same key with another body is refused
//! with 422. The key is unique, so concurrent repeats queue once.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use super::api::{
    ApiBody, ApiError, ApiPath, ApiRoutes, FieldProblem, OutboxView, authorize, from_value,
    parse_json,
};
use crate::engine::i18n::{I18n, display_string};
use crate::insurer::SourceError;
use crate::messaging::composer::{self, ComposeError, Intent, Purpose, Queued, TemplateChoice};
use crate::messaging::{outbox, templates};
use crate::phone::PhoneNumber;
use crate::privacy::mask;
use crate::store::entities::{conversation, notification_request};
use crate::store::{begin_write, now_ms};
use crate::whatsapp::outbound::OutboundBody;

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(Method::POST, "/api/v1/notifications", create)
        .route(Method::GET, "/api/v1/notifications/{id}", status)
}

/// The header that makes a notification request safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The longest `Idempotency-Key` accepted.
pub const MAX_KEY_LEN: usize = 128;

/// One notification kind: its template, the `data` fields that become the template's
/// parameters (in order) and the free-form text for inside the window.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub name: &'static str,
    pub template: &'static str,
    pub fields: &'static [&'static str],
    /// The free-form text's message id in `locales/<lang>/notifications.ftl` (the fields are
    /// its arguments), rendered in the contact's language.
    pub message: &'static str,
    /// The English text with `{field}` placeholders, used when no locale is loaded (the echo
    /// handler loads none).
    pub text: &'static str,
}

/// The kinds the API accepts.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "claim_update",
        template: "claim_status_update",
        fields: &["claim_number", "claim_stage"],
        message: "notify-claim-update",
        text: "Your claim {claim_number} is now: {claim_stage}.",
    },
    Kind {
        name: "premium_due",
        template: "premium_due_reminder",
        fields: &["policy_number", "premium_amount", "due_date"],
        message: "notify-premium-due",
        text: "The premium of {premium_amount} for policy {policy_number} is due on {due_date}.",
    },
    Kind {
        name: "policy_issued",
        // Its own template: `policy_summary` answers a lookup (Menu button only), this one
        // announces a new policy and offers its document.
        template: "policy_issued",
        fields: &["policy_number", "plan", "policy_status"],
        message: "notify-policy-issued",
        text: "Your policy {policy_number} ({plan}) has been issued and is {policy_status}.",
    },
];

/// The body of `POST /api/v1/notifications`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationRequest {
    kind: String,
    #[serde(default)]
    policy_number: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    data: Map<String, Value>,
}

/// Who a notification (or a one-time password) goes to.
#[derive(Debug)]
pub(crate) enum Target {
    Policy(String),
    Phone(String),
}

/// A validated request.
#[derive(Debug)]
struct Validated {
    kind: &'static Kind,
    target: Target,
    params: Vec<String>,
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

fn validate(req: &NotificationRequest) -> Result<Validated, Vec<FieldProblem>> {
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
        }),
        _ => Err(problems),
    }
}

/// The built-in English text (policy numbers masked, as in every chat message).
fn render_text(kind: &Kind, params: &[String]) -> String {
    let mut text = kind.text.to_owned();
    for (field, value) in kind.fields.iter().zip(params) {
        text = text.replace(&format!("{{{field}}}"), &display_string(field, value));
    }
    text
}

/// The free-form text in `language` from the live locales, else in English, else the kind's
/// built-in text.
fn free_form_text(i18n: Option<&I18n>, kind: &Kind, params: &[String], language: &str) -> String {
    let Some(i18n) = i18n else {
        return render_text(kind, params);
    };
    let slots: BTreeMap<String, Value> = kind
        .fields
        .iter()
        .zip(params)
        .map(|(field, value)| ((*field).to_owned(), json!(value)))
        .collect();
    [language, "en"]
        .into_iter()
        .find(|lang| i18n.has(lang, kind.message))
        .map_or_else(
            || render_text(kind, params),
            // Data values (a policy status) read in that language, as in the bot's replies.
            |lang| i18n.render_lossy(lang, kind.message, Some(&i18n.args_in(lang, &slots))),
        )
}

/// The stored answer for `key`, if any: a repeat gets it back; another body gets 422.
fn replay(row: &notification_request::Model, hash: &str) -> Result<Response, ApiError> {
    if row.request_hash != hash {
        return Err(ApiError::Invalid(vec![FieldProblem::new(
            "Idempotency-Key",
            "was already used with a different request body",
        )]));
    }
    let status = u16::try_from(row.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::ACCEPTED);
    let body: Value = serde_json::from_str(&row.response).unwrap_or(Value::Null);
    Ok((status, Json(body)).into_response())
}

async fn find_key<C: ConnectionTrait>(
    db: &C,
    key: &str,
) -> Result<Option<notification_request::Model>, DbErr> {
    notification_request::Entity::find()
        .filter(notification_request::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
}

/// Why the recipient of a notification is not known.
pub(crate) enum NoRecipient {
    /// 404: no policy with this number in the source.
    UnknownPolicy(String),
    /// 422: the policy has no (valid) registered mobile number.
    NoMobile,
    /// 503: the policy source did not answer (database, or the insurer's API).
    SourceDown(SourceError),
}

/// The phone number a notification goes to: the one given, or the mobile registered on the
/// policy in the configured source.
pub(crate) async fn recipient(state: &AppState, target: &Target) -> Result<String, NoRecipient> {
    let number = match target {
        Target::Phone(phone) => return Ok(phone.clone()),
        Target::Policy(number) => number,
    };
    let policy = state
        .insurer
        .source()
        .policy(number)
        .await
        .map_err(NoRecipient::SourceDown)?
        .ok_or_else(|| NoRecipient::UnknownPolicy(number.clone()))?;
    policy
        .mobile
        .as_deref()
        // The insurer's systems store mobiles as their exports do (often without +91).
        .and_then(|m| PhoneNumber::from_export(m).ok())
        .map(PhoneNumber::into_string)
        .ok_or(NoRecipient::NoMobile)
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
    let validated = validate(&request);
    if let Err(p) = &validated {
        problems.extend(p.iter().cloned());
    }
    let (Ok(key), Ok(v)) = (key, validated) else {
        return Err(ApiError::Invalid(problems));
    };
    let hash = hex::encode(Sha256::digest(canonical.to_string().as_bytes()));

    if let Some(row) = find_key(&state.db, &key).await? {
        return replay(&row, &hash);
    }
    let phone = match recipient(&state, &v.target).await {
        Ok(phone) => phone,
        Err(NoRecipient::UnknownPolicy(number)) => {
            // The caller sent the number, but the answer may end up in its logs: masked.
            return Err(ApiError::NotFound(format!(
                "policy {} not found",
                mask(&number)
            )));
        }
        Err(NoRecipient::NoMobile) => {
            return Err(ApiError::Invalid(vec![FieldProblem::new(
                "policy_number",
                "the policy has no registered mobile number",
            )]));
        }
        Err(NoRecipient::SourceDown(e)) => {
            // SourceError messages carry no personal data.
            tracing::warn!(error = %e, "notification: the policy source did not answer");
            return Err(ApiError::Unavailable(
                "the policy data source is not answering; retry with the same Idempotency-Key",
            ));
        }
    };
    let now = now_ms();
    let txn = begin_write(&state.db).await?;
    // Claim the key first: a concurrent request with the same key waits here (PostgreSQL) or
    // behind the write gate (SQLite), then finds the committed answer.
    let claimed = notification_request::Entity::insert(notification_request::ActiveModel {
        id: NotSet,
        idempotency_key: Set(key.clone()),
        request_hash: Set(hash.clone()),
        kind: Set(v.kind.name.to_owned()),
        outbox_id: Set(None),
        status_code: Set(0),
        response: Set(String::new()),
        created_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(notification_request::Column::IdempotencyKey)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    if claimed == 0 {
        txn.rollback().await?;
        let row = find_key(&state.db, &key)
            .await?
            .ok_or_else(|| DbErr::Custom("idempotency row vanished".into()))?;
        return replay(&row, &hash);
    }
    let row = find_key(&txn, &key)
        .await?
        .ok_or_else(|| DbErr::Custom("idempotency row vanished".into()))?;

    let contact_id = crate::store::contacts::contact_for_phone(&txn, &phone, now).await?;
    let language = conversation::Entity::find()
        .filter(conversation::Column::ContactId.eq(contact_id))
        .one(&txn)
        .await?
        .map_or_else(
            || state.settings.dialogue.default_language.clone(),
            |c| c.language,
        );
    // The registry's flag decides whether this may reach a contact who opted out.
    let essential = templates::lookup(&txn, v.kind.template, &language)
        .await?
        .is_some_and(|t| t.essential);
    let composer = &state.composer;
    // The flows' live locales (reloaded with the flows); none with the echo handler.
    let flows = state.console.flows.as_ref().map(|store| store.current());
    let intent = Intent {
        contact_id,
        in_reply_to: None,
        purpose: Purpose::Notification {
            kind: v.kind.name.to_owned(),
            essential,
        },
        free_form: Some(OutboundBody::Text {
            body: free_form_text(
                flows.as_ref().map(|set| set.i18n()),
                v.kind,
                &v.params,
                &language,
            ),
            preview_url: false,
        }),
        template: Some(TemplateChoice {
            name: v.kind.template.to_owned(),
            language,
            params: v.params.clone(),
        }),
    };
    let queued = match composer::queue(&txn, composer, intent).await {
        Ok(q) => q,
        Err(ComposeError::Invalid(e)) => {
            txn.rollback().await?;
            return Err(ApiError::Invalid(vec![FieldProblem::new(
                "data",
                format!("makes a message WhatsApp refuses: {e}"),
            )]));
        }
        Err(ComposeError::Db(e)) => return Err(e.into()),
        Err(e) => return Err(DbErr::Custom(e.to_string()).into()),
    };
    let (outbox_id, answer) = match &queued {
        Queued::Row(id) => (
            *id,
            json!({ "notification_id": row.id, "outbox_id": id, "state": "queued" }),
        ),
        Queued::Skipped { row: id, reason } => (
            *id,
            json!({ "notification_id": row.id, "outbox_id": id, "state": "skipped", "reason": reason }),
        ),
    };
    notification_request::Entity::update(notification_request::ActiveModel {
        id: Set(row.id),
        outbox_id: Set(Some(outbox_id)),
        status_code: Set(i32::from(StatusCode::ACCEPTED.as_u16())),
        response: Set(answer.to_string()),
        ..Default::default()
    })
    .exec(&txn)
    .await?;
    txn.commit().await?;
    if matches!(queued, Queued::Row(_)) {
        state.pipeline.notify(contact_id);
    }
    tracing::info!(
        notification_id = row.id,
        outbox_id,
        kind = v.kind.name,
        "notification queued"
    );
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let missing = || ApiError::NotFound(format!("no notification {id}"));
    let row = notification_request::Entity::find_by_id(id)
        .one(&state.db)
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
    fn every_kind_has_as_many_placeholders_as_fields() {
        for kind in KINDS {
            for field in kind.fields {
                assert!(kind.text.contains(&format!("{{{field}}}")), "{}", kind.name);
            }
        }
        let text = render_text(&KINDS[0], &["CLM-1".into(), "approved".into()]);
        assert_eq!(text, "Your claim CLM-1 is now: approved.");
    }

    #[test]
    fn every_kind_has_its_text_in_every_shipped_language_and_its_own_template() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let (i18n, problems) = I18n::load(&root.join("locales"));
        assert!(problems.is_empty(), "{problems:?}");
        let registry =
            crate::engine::templates_file::load_file(&root.join("flows/templates/templates.yaml"))
                .unwrap();
        let params: Vec<String> = vec!["H-2023/100245".into(), "Arogya Plus".into(), "x".into()];
        for kind in KINDS {
            let def = registry
                .iter()
                .find(|d| d.name == kind.template)
                .unwrap_or_else(|| {
                    panic!("{}: template {} in the registry", kind.name, kind.template)
                });
            assert_eq!(def.params, kind.fields, "{}", kind.name);
            for lang in ["en", "hi", "ta"] {
                assert!(i18n.has(lang, kind.message), "{lang}: {}", kind.message);
                assert!(def.languages.iter().any(|l| l == lang), "{}", kind.template);
                let text = free_form_text(Some(&i18n), kind, &params, lang);
                assert!(!text.contains('{'), "{lang}: {text}");
            }
        }
        let templates: std::collections::HashSet<&str> = KINDS.iter().map(|k| k.template).collect();
        assert_eq!(
            templates.len(),
            KINDS.len(),
            "each kind has a template of its own"
        );
        let issued = KINDS.iter().find(|k| k.name == "policy_issued").unwrap();
        assert_eq!(
            free_form_text(Some(&i18n), issued, &params, "hi"),
            "आपकी पॉलिसी ••••0245 (Arogya Plus) जारी हो गई है और अभी x है।"
        );
        assert_eq!(
            free_form_text(None, issued, &params, "hi"),
            "Your policy ••••0245 (Arogya Plus) has been issued and is x.",
            "without locales: the built-in English text"
        );
    }

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
