//! `GET /webhook` answers Meta's verification handshake; `POST /webhook` checks the signature
//! over the raw bytes, parses the envelope leniently, stores what it carried, and answers 200
//! only after the commit. New messages are then handed to the pipeline.
//!
//! A POST without a well-formed signature header is refused before its body is read, and a
//! webhook the database cannot take within `webhook.store_timeout_ms` is answered 503 with
//! `Retry-After`, so that Meta redelivers it instead of holding a connection for the outage.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::ingest::store::IngestError;
use crate::metrics::Metrics;
use crate::whatsapp::inbound::{WebhookEvents, parse_webhook_with};
use crate::whatsapp::signature::{self, SignatureError};

const SIGNATURE_HEADER: &str = "x-hub-signature-256";

pub fn router(
    max_body_bytes: usize,
    bench_baseline: bool,
    metrics: Arc<Metrics>,
) -> Router<AppState> {
    let signed_only = middleware::from_fn_with_state(metrics, signed_only);
    let mut router = Router::new().route(
        "/webhook",
        get(verify).post(receive.layer(signed_only.clone())),
    );
    if bench_baseline {
        router = router.route(
            "/bench/baseline",
            axum::routing::post(baseline.layer(signed_only)),
        );
    }
    router.layer(DefaultBodyLimit::max(max_body_bytes))
}

/// Refuses a POST whose signature header is missing (401) or not of the form
/// `sha256=<64 hex digits>` (403, as a wrong one) before anything reads its body: such a
/// request can never be accepted, and reading it first let unsigned clients make the server
/// hold megabytes each (60 concurrent 3 MB bodies: 74 → 218 MB). The digest itself is checked
/// by the handler, over the whole body.
async fn signed_only(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(SIGNATURE_HEADER)
        .map(HeaderValue::as_bytes);
    match signature::parse_header(header) {
        Ok(_) => next.run(request).await,
        Err(e) => {
            let (status, outcome) = signature_outcome(e);
            Metrics::count(&metrics.webhooks, outcome);
            tracing::warn!(reason = %e, "webhook signature refused before reading the body");
            reject(status, &e.to_string())
        }
    }
}

/// The status and the metric's outcome label of a refused signature.
fn signature_outcome(e: SignatureError) -> (StatusCode, &'static str) {
    match e {
        SignatureError::Missing => (StatusCode::UNAUTHORIZED, "missing_signature"),
        SignatureError::Malformed | SignatureError::Mismatch => {
            (StatusCode::FORBIDDEN, "bad_signature")
        }
    }
}

/// The load benchmark's ceiling: the same body limit and signature check as the webhook, and
/// nothing else.
async fn baseline(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = headers.get(SIGNATURE_HEADER).map(HeaderValue::as_bytes);
    match signature::verify(
        state.secrets.app_secret.expose_secret().as_bytes(),
        &body,
        header,
    ) {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::FORBIDDEN,
    }
}

/// The handshake: 200 with the raw `hub.challenge` when mode and token match, 403 otherwise.
async fn verify(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mode = query.get("hub.mode").map(String::as_str);
    let token = query
        .get("hub.verify_token")
        .map(String::as_bytes)
        .unwrap_or_default();
    let expected = state.secrets.verify_token.expose_secret().as_bytes();
    let token_ok: bool = token.ct_eq(expected).into();
    match (mode, token_ok, query.get("hub.challenge")) {
        (Some("subscribe"), true, Some(challenge)) => {
            (StatusCode::OK, challenge.clone()).into_response()
        }
        _ => {
            tracing::warn!("webhook verification refused");
            (StatusCode::FORBIDDEN, "verification failed").into_response()
        }
    }
}

async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let metrics = &state.metrics;
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let outcome = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "unreadable"
            };
            Metrics::count(&metrics.webhooks, outcome);
            return reject(status, &rejection.body_text());
        }
    };
    let header = headers.get(SIGNATURE_HEADER).map(HeaderValue::as_bytes);
    if let Err(e) = signature::verify(
        state.secrets.app_secret.expose_secret().as_bytes(),
        &body,
        header,
    ) {
        let (status, outcome) = signature_outcome(e);
        Metrics::count(&metrics.webhooks, outcome);
        tracing::warn!(reason = %e, "webhook signature refused");
        return reject(status, &e.to_string());
    }
    if let Err(e) = state.ingest.has_room() {
        return overloaded(metrics, &e);
    }
    let options = state.settings.webhook.parse_options(crate::store::now_ms());
    let mut events = match parse_webhook_with(&body, &options) {
        Ok(events) => events,
        Err(e) => {
            Metrics::count(&metrics.webhooks, "bad_envelope");
            tracing::warn!(reason = %e, "webhook body is not a WhatsApp envelope");
            return reject(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    refuse_unknown_numbers(&state.settings, metrics, &mut events);
    // A database that does not answer (down, unreachable, locked by another process) would
    // hold the request for the pool's or the lock's whole timeout, and every webhook queued
    // behind it for as long: the queue waits at most `webhook.store_timeout_ms` per part
    // (IngestError::TimedOut), then the webhook is answered 503 and Meta redelivers it.
    let queued_at = std::time::Instant::now();
    let (events, stored) = state.ingest.ingest(events).await;
    let stored_in = queued_at.elapsed();
    let report = match stored {
        Ok(report) => report,
        Err(e @ IngestError::TimedOut { .. }) => {
            // At debug like an overload: an outage would otherwise log a line per redelivery;
            // the metric counts them and the writer logs the database's error.
            Metrics::count(&metrics.webhooks, "store_timeout");
            tracing::debug!(reason = %e, "webhook refused: the database did not take it in time");
            return try_again_later(&e.to_string());
        }
        Err(e @ IngestError::Overloaded { .. }) => return overloaded(metrics, &e),
        Err(e) => {
            // Not acknowledged: Meta retries, and nothing was half-stored.
            Metrics::count(&metrics.webhooks, "store_error");
            tracing::error!(error.cause_chain = ?e, error.message = %e, "webhook could not be stored");
            return try_again_later("temporarily unable to store the webhook");
        }
    };
    Metrics::count(&metrics.webhooks, "accepted");
    metrics.inbound_messages.inc_by(report.new_messages as u64);
    metrics
        .duplicate_messages
        .inc_by(report.duplicate_messages as u64);
    metrics
        .statuses
        .get_or_create(&crate::metrics::OutcomeLabel { outcome: "applied" })
        .inc_by(report.statuses_applied as u64);
    metrics
        .statuses
        .get_or_create(&crate::metrics::OutcomeLabel { outcome: "ignored" })
        .inc_by(report.statuses_ignored as u64);
    tracing::info!(
        new = report.new_messages,
        duplicates = report.duplicate_messages,
        statuses = report.statuses_applied + report.statuses_ignored,
        skipped = events.skipped.len(),
        unhandled_fields = ?events.unhandled_fields,
        stored_in_us = stored_in.as_micros() as u64,
        "webhook stored"
    );
    for reason in &events.skipped {
        tracing::warn!(%reason, "webhook item skipped");
    }
    report_corrections(metrics, &events);
    for contact_id in &report.contacts_with_new_messages {
        state.pipeline.notify(*contact_id);
    }
    (
        StatusCode::OK,
        Json(json!({
            "new_messages": report.new_messages,
            "duplicate_messages": report.duplicate_messages,
            "statuses_applied": report.statuses_applied,
            "statuses_ignored": report.statuses_ignored,
        })),
    )
        .into_response()
}

/// Meta delivers it again later; logged at debug, counted by the metric, so that an overload
/// does not also flood the log.
fn overloaded(metrics: &Metrics, e: &IngestError) -> Response {
    Metrics::count(&metrics.webhooks, "overloaded");
    tracing::debug!(reason = %e, "webhook refused: too many waiting");
    try_again_later(&e.to_string())
}

fn reject(status: StatusCode, reason: &str) -> Response {
    (status, Json(json!({ "error": reason }))).into_response()
}

/// 503 with `Retry-After: 1`: nothing was acknowledged, deliver it again.
fn try_again_later(reason: &str) -> Response {
    let mut response = reject(StatusCode::SERVICE_UNAVAILABLE, reason);
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from_static("1"),
    );
    response
}

/// Drops the messages sent to a business number this deployment does not serve (a number of
/// the same app configured elsewhere, or removed from `[[whatsapp.numbers]]`): answering them
/// would reply from a number the policyholder did not write to. The webhook is still
/// acknowledged, so Meta does not deliver them again forever; each is logged with the business
/// number only (never the sender) and counted as `unknown_number`. A message whose webhook
/// names no number belongs to the first, and is stored as such: its reply leaves from there
/// and it opens that number's 24-hour window.
fn refuse_unknown_numbers(
    settings: &crate::config::Settings,
    metrics: &Metrics,
    events: &mut WebhookEvents,
) {
    events.messages.retain_mut(|message| {
        let Some(number) = message.phone_number_id.as_deref() else {
            message.phone_number_id = Some(settings.first_number_id().to_owned());
            return true;
        };
        if settings.serves_number(number) {
            return true;
        }
        tracing::warn!(
            phone_number_id = %number,
            "webhook message to a business number that is not configured: refused"
        );
        metrics
            .webhook_items_refused
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: "unknown_number",
            })
            .inc();
        false
    });
}

/// Logs (JSON paths only, never values) and counts what an acknowledged webhook carried that
/// could not be stored as sent.
fn report_corrections(metrics: &Metrics, events: &WebhookEvents) {
    use crate::metrics::ReasonLabel;
    for item in &events.corrections {
        let reason = item.correction.as_str();
        if item.correction.refuses_item() {
            tracing::warn!(path = %item.path, reason, "webhook item refused: it cannot be stored");
            metrics
                .webhook_items_refused
                .get_or_create(&ReasonLabel { reason })
                .inc();
        } else {
            tracing::warn!(path = %item.path, reason, "webhook timestamp replaced by the receive time");
            metrics
                .webhook_values_replaced
                .get_or_create(&ReasonLabel { reason })
                .inc();
        }
    }
    if events.nul_replaced > 0 {
        tracing::warn!(
            strings = events.nul_replaced,
            "NUL characters in the webhook replaced by U+FFFD"
        );
        metrics
            .webhook_values_replaced
            .get_or_create(&ReasonLabel {
                reason: "nul_character",
            })
            .inc_by(events.nul_replaced as u64);
    }
}
