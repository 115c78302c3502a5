//! Operations endpoints: `/healthz` (the process is alive), `/readyz` (the database answers and
//! its schema is current) and `/metrics` (Prometheus text format; behind `metrics.token` when
//! one is set, and on `metrics.listen` instead of the main port when that is set).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::DatabaseConnection;
use serde_json::json;

use super::AppState;
use crate::config::Settings;
use crate::metrics::Metrics;

/// Health and readiness, and `/metrics` when `with_metrics` (it is not when `metrics.listen`
/// gives it an address of its own).
pub fn router(with_metrics: bool) -> Router<AppState> {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready));
    if with_metrics {
        router.merge(metrics_only())
    } else {
        router
    }
}

/// `/metrics` alone.
pub fn metrics_only() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn ready(State(db): State<DatabaseConnection>) -> impl IntoResponse {
    if let Err(e) = db.ping().await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "database unreachable"})),
        );
    }
    match crate::store::pending_migrations(&db).await {
        Ok(0) => (StatusCode::OK, Json(json!({"ready": true}))),
        Ok(n) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"ready": false, "reason": format!("{n} migrations pending; run `insurebot migrate`")}),
            ),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: cannot read migrations");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"ready": false, "reason": "cannot read migration state"})),
            )
        }
    }
}

/// The metrics in the Prometheus text format; with `metrics.token` set, only for
/// `Authorization: Bearer <token>` (401 otherwise).
async fn metrics(
    State(metrics): State<Arc<Metrics>>,
    State(settings): State<Arc<Settings>>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = &settings.metrics.token
        && !super::api::bearer_matches(&headers, token)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "metrics need Authorization: Bearer <metrics.token>\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response()
}
