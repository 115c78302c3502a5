//! Sandbox-mode helpers: `GET /sandbox/messages` lists what the bot "sent" to the built-in fake
//! Cloud API, so a newcomer sees replies without any WhatsApp account. Outside sandbox mode the
//! route answers 404 (the fake does not exist there).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/sandbox/messages", get(messages))
}

async fn messages(State(state): State<AppState>) -> Response {
    match &state.sandbox {
        Some(fake) => Json(fake.received()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "not in sandbox mode"})),
        )
            .into_response(),
    }
}
