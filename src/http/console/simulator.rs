//! The simulator for flow authors (sandbox mode only): a phone-like chat at `/simulator`. What
//! the author types goes through the real `POST /webhook` path, signed with the sandbox secret
//! server-side; the bot's replies are read back from the sandbox's fake Cloud API, so the page
//! shows exactly what would have been sent. Displayed replies are acknowledged with
//! `delivered` and `read` status webhooks, as a phone would, which produces the ticks.
//!
//! A photo or PDF attached on the page (issue 18) is put in the fake Cloud API as a phone
//! uploads it, and the webhook carries only its media id: the pipeline then resolves and
//! downloads it from the fake's media endpoints like any real file.
//!
//! Outside sandbox mode every simulator route answers 404. The JSON routes need a JSON body,
//! which a cross-site form cannot send without a CORS preflight that is never granted; the
//! attach route (multipart, which a form could send) needs the `X-Simulator` header for the
//! same reason.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Request, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::error::{ConsoleError, Result};
use super::transcript::inbound_text;
use crate::engine::Conversation;
use crate::http::AppState;
use crate::phone::PhoneNumber;
use crate::store::begin_write;
use crate::store::entities::{contact, inbound_message, message_status};
use crate::whatsapp::fake::{FakeCloudApi, RequestKind};
use crate::whatsapp::inbound::MessageContent;
use crate::whatsapp::signature;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/simulator", get(page))
        .route("/simulator/send", post(send))
        .route("/simulator/messages", get(messages))
        .route("/simulator/ack", post(ack))
        .route("/simulator/window", post(close_window))
        .route("/simulator/language", post(language))
        .route(
            "/simulator/attach",
            post(attach).layer(axum::extract::DefaultBodyLimit::max(ATTACH_MAX_BYTES)),
        )
}

/// Largest file the simulator takes: a phone's photos and ordinary PDFs (the media limits
/// then apply as to any file).
const ATTACH_MAX_BYTES: usize = 20 * 1024 * 1024;

/// `POST /simulator/attach` (multipart: `phone`, `file`, optional `caption`): sends the file as
/// an image (JPEG, PNG, WebP) or a document (anything else) from the simulated phone.
async fn attach(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    mut form: axum::extract::Multipart,
) -> Result<Response> {
    let fake = fake(&state)?;
    if !headers.contains_key("x-simulator") {
        return Err(ConsoleError::Conflict(
            "Attach from the simulator page (the X-Simulator header is missing).".into(),
        ));
    }
    let mut phone = None;
    let mut caption = None;
    let mut file: Option<(Vec<u8>, String, Option<String>)> = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ConsoleError::Conflict(format!("The upload is malformed: {e}.")))?
    {
        match field.name() {
            Some("phone") => phone = field.text().await.ok(),
            Some("caption") => caption = field.text().await.ok().filter(|c| !c.is_empty()),
            Some("file") => {
                let mime = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let name = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.map_err(|e| {
                    ConsoleError::Conflict(format!("The file could not be read: {e}."))
                })?;
                file = Some((bytes.to_vec(), mime, name));
            }
            _ => {}
        }
    }
    let phone = digits(phone.as_deref().unwrap_or_default())?;
    let Some((bytes, mime, name)) = file.filter(|(b, _, _)| !b.is_empty()) else {
        return Err(ConsoleError::Conflict(
            "Choose a photo or a PDF to attach.".into(),
        ));
    };
    let kind = if matches!(mime.as_str(), "image/jpeg" | "image/png" | "image/webp") {
        "image"
    } else {
        "document"
    };
    let media_id = fake.add_media(bytes, &mime);
    let mut media = json!({ "id": media_id, "mime_type": mime });
    if let Some(c) = caption {
        media["caption"] = json!(c);
    }
    if kind == "document"
        && let Some(n) = name
    {
        media["filename"] = json!(n);
    }
    let message = json!({
        "from": phone, "id": format!("wamid.SIM{}", uuid::Uuid::new_v4().simple()),
        "timestamp": chrono::Utc::now().timestamp().to_string(), "type": kind, kind: media,
    });
    post_message(&state, &phone, message).await
}

fn fake(state: &AppState) -> Result<&FakeCloudApi> {
    state.sandbox.as_ref().ok_or(ConsoleError::Unavailable)
}

async fn page(State(state): State<AppState>) -> Result<Html<String>> {
    fake(&state)?;
    let mut ctx = tera::Context::new();
    let languages: Vec<String> = match &state.console.flows {
        Some(flows) => flows
            .current()
            .i18n()
            .languages()
            .map(str::to_owned)
            .collect(),
        None => vec![state.settings.dialogue.default_language.clone()],
    };
    ctx.insert("languages", &languages);
    ctx.insert(
        "default_language",
        &state.settings.dialogue.default_language,
    );
    // The sample policyholder, so "Policy details" finds policies without asking for a number.
    ctx.insert("default_phone", crate::insurer::sample::SANDBOX_CONTACT);
    state.console.render("simulator.html", &ctx)
}

/// What the author did on the simulated phone.
#[derive(Debug, Deserialize)]
pub struct SendRequest {
    pub phone: String,
    /// `text`, `button` or `list`.
    pub kind: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub id: String,
}

async fn send(State(state): State<AppState>, Json(req): Json<SendRequest>) -> Result<Response> {
    fake(&state)?;
    let phone = digits(&req.phone)?;
    let wamid = format!("wamid.SIM{}", uuid::Uuid::new_v4().simple());
    let ts = chrono::Utc::now().timestamp().to_string();
    let message = match req.kind.as_str() {
        "button" => json!({
            "from": phone, "id": wamid, "timestamp": ts, "type": "interactive",
            "interactive": { "type": "button_reply", "button_reply": { "id": req.id, "title": req.text } }
        }),
        "list" => json!({
            "from": phone, "id": wamid, "timestamp": ts, "type": "interactive",
            "interactive": { "type": "list_reply", "list_reply": { "id": req.id, "title": req.text } }
        }),
        _ => json!({
            "from": phone, "id": wamid, "timestamp": ts, "type": "text", "text": { "body": req.text }
        }),
    };
    post_message(&state, &phone, message).await
}

#[derive(Debug, Deserialize)]
pub struct PhoneQuery {
    pub phone: String,
}

async fn messages(
    State(state): State<AppState>,
    Query(q): Query<PhoneQuery>,
) -> Result<Json<Value>> {
    let fake = fake(&state)?;
    let phone = digits(&q.phone)?;
    let sent: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Send && r.body["to"].as_str() == Some(phone.as_str()))
        .collect();
    let wamids: Vec<String> = sent.iter().filter_map(|r| r.wamid.clone()).collect();
    let statuses = if wamids.is_empty() {
        Vec::new()
    } else {
        message_status::Entity::find()
            .filter(message_status::Column::Wamid.is_in(wamids))
            .all(&state.db)
            .await?
    };
    let list: Vec<Value> = sent
        .iter()
        .map(|r| {
            let status = r
                .wamid
                .as_ref()
                .and_then(|w| statuses.iter().find(|s| &s.wamid == w))
                .map_or("sent", |s| s.status.as_str());
            json!({
                "seq": r.seq, "wamid": r.wamid, "body": r.body, "status": status,
                "at": r.received_at.timestamp_millis(),
            })
        })
        .collect();
    let contact = contact::Entity::find()
        .filter(contact::Column::WaId.eq(phone.clone()))
        .one(&state.db)
        .await?;
    // The number's own messages, from the store: the page shows both sides of a conversation
    // it did not type itself (after switching numbers, or reloading).
    let inbound: Vec<Value> = match &contact {
        Some(c) => inbound_message::Entity::find()
            .filter(inbound_message::Column::ContactId.eq(c.id))
            .order_by_asc(inbound_message::Column::Id)
            .all(&state.db)
            .await?
            .iter()
            .map(|row| {
                let text = row
                    .content
                    .as_deref()
                    .and_then(|c| serde_json::from_str::<MessageContent>(c).ok())
                    .map_or_else(
                        || format!("[{} message]", row.msg_type),
                        |c| inbound_text(&c),
                    );
                json!({ "wamid": row.wamid, "at": row.received_at, "text": text })
            })
            .collect(),
        None => Vec::new(),
    };
    // The simulator writes to the deployment's first number: that window is the one its
    // messages open; every number's is listed (Meta keeps one per user and business number).
    let now = crate::store::now_ms();
    let first = state.settings.first_number_id().to_owned();
    let mut window_open = false;
    let mut windows = Vec::new();
    if let Some(c) = &contact {
        for (number, start) in crate::messaging::composer::windows_of(&state.db, c.id).await? {
            let open = state.composer.window_open(Some(start), now);
            window_open |= open && number == first;
            windows.push(json!({
                "number": state.settings.number_label(&number), "open": open,
                "simulated": number == first,
            }));
        }
    }
    Ok(Json(
        json!({ "messages": list, "inbound": inbound, "window_open": window_open, "windows": windows }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct AckRequest {
    pub phone: String,
    pub wamid: String,
    /// `delivered` or `read`.
    pub status: String,
}

async fn ack(State(state): State<AppState>, Json(req): Json<AckRequest>) -> Result<Response> {
    fake(&state)?;
    let phone = digits(&req.phone)?;
    let status = if req.status == "read" {
        "read"
    } else {
        "delivered"
    };
    let body = envelope(
        &state,
        json!({
            "statuses": [{
                "id": req.wamid, "status": status,
                "timestamp": chrono::Utc::now().timestamp().to_string(), "recipient_id": phone
            }]
        }),
    );
    post_webhook(&state, body).await
}

async fn close_window(
    State(state): State<AppState>,
    Json(req): Json<PhoneQuery>,
) -> Result<Response> {
    fake(&state)?;
    let phone = digits(&req.phone)?;
    let contact = find_contact(&state, &phone).await?;
    super::pages::move_window_back(&state.db, contact.id, 25).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
pub struct LanguageRequest {
    pub phone: String,
    pub language: String,
}

async fn language(
    State(state): State<AppState>,
    Json(req): Json<LanguageRequest>,
) -> Result<Response> {
    fake(&state)?;
    let phone = digits(&req.phone)?;
    let contact = find_contact(&state, &phone).await?;
    let txn = begin_write(&state.db).await?;
    let mut conversation = crate::dialogue::load(&txn, contact.id)
        .await?
        .unwrap_or_else(|| Conversation::new(&req.language));
    conversation.language = req.language.clone();
    crate::dialogue::save(&txn, contact.id, &conversation).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn find_contact(state: &AppState, phone: &str) -> Result<contact::Model> {
    contact::Entity::find()
        .filter(contact::Column::WaId.eq(phone.to_owned()))
        .one(&state.db)
        .await?
        .ok_or_else(|| ConsoleError::Conflict("Send a message first.".into()))
}

/// A number typed into the simulator, read as people write Indian mobiles.
fn digits(phone: &str) -> Result<String> {
    PhoneNumber::from_export(phone)
        .map(PhoneNumber::into_string)
        .map_err(|e| ConsoleError::Conflict(format!("The phone number {e}.")))
}

/// Sends one message from the simulated phone through the webhook.
async fn post_message(state: &AppState, phone: &str, message: Value) -> Result<Response> {
    let body = envelope(
        state,
        json!({
            "contacts": [{ "profile": { "name": "Simulator" }, "wa_id": phone }],
            "messages": [message],
        }),
    );
    post_webhook(state, body).await
}

fn envelope(state: &AppState, value: Value) -> String {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({
        "display_phone_number": "15550000000",
        "phone_number_id": state.settings.first_number_id(),
    });
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "sandbox", "changes": [{ "field": "messages", "value": value }] }]
    })
    .to_string()
}

/// Sends a signed webhook through the real webhook route, in process.
async fn post_webhook(state: &AppState, body: String) -> Result<Response> {
    let sig = signature::sign(
        state.secrets.app_secret.expose_secret().as_bytes(),
        body.as_bytes(),
    );
    let request = Request::post("/webhook")
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sig)
        .body(Body::from(body))
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    // The simulator never needs the load-benchmark baseline endpoint.
    let response = crate::http::webhook::router(
        state.settings.webhook.max_body_bytes,
        false,
        state.metrics.clone(),
    )
    .with_state(state.clone())
    .oneshot(request)
    .await
    .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("webhook: {e}")))?;
    Ok((
        response.status(),
        Json(json!({ "accepted": response.status().is_success() })),
    )
        .into_response())
}
