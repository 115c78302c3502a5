//! `/api/v1/campaigns` (bearer token, like the rest of `/api/v1`):
//!
//! - `GET /api/v1/campaigns`: every campaign with its report;
//! - `POST /api/v1/campaigns`: create one in `draft` from a [`NewCampaign`] (a CSV text or a
//!   contact filter); `422` lists invalid CSV rows (or pass `skip_invalid: true`);
//! - `GET /api/v1/campaigns/{id}`: progress and results ([`CampaignReport`]);
//! - `POST /api/v1/campaigns/{id}/{start|pause|resume|cancel}`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::ReminderError;
use super::campaigns::{self, CampaignReport, NewCampaign};
use crate::http::AppState;
use crate::http::api::{ApiError, authorize};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/campaigns", get(list).post(create))
        .route("/api/v1/campaigns/{id}", get(report))
        .route("/api/v1/campaigns/{id}/{action}", post(act))
}

/// The campaign API's failures; internals are logged, never returned.
#[derive(Debug, thiserror::Error)]
pub enum CampaignApiError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Campaign(#[from] ReminderError),
    #[error("unknown action '{0}': start, pause, resume or cancel")]
    UnknownAction(String),
}

impl IntoResponse for CampaignApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            CampaignApiError::Api(e) => return e.into_response(),
            CampaignApiError::UnknownAction(_) => {
                (StatusCode::NOT_FOUND, json!({ "error": self.to_string() }))
            }
            CampaignApiError::Campaign(e) => match e {
                ReminderError::UnknownCampaign(_) => {
                    (StatusCode::NOT_FOUND, json!({ "error": e.to_string() }))
                }
                ReminderError::WrongState { .. } => {
                    (StatusCode::CONFLICT, json!({ "error": e.to_string() }))
                }
                ReminderError::Invalid(_) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({ "error": e.to_string() }),
                ),
                ReminderError::Rows(ref rows) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({ "error": e.to_string(), "rows": rows }),
                ),
                ReminderError::Db(_) | ReminderError::Compose(_) => {
                    tracing::error!(error = %e, "campaign API failure");
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({ "error": "temporarily unavailable" }),
                    )
                }
            },
        };
        (status, Json(body)).into_response()
    }
}

type Result<T, E = CampaignApiError> = std::result::Result<T, E>;

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<CampaignReport>>> {
    authorize(&state, &headers)?;
    let all = campaigns::list(&state.db)
        .await
        .map_err(ReminderError::from)?;
    Ok(Json(
        campaigns::reports(&state.db, all)
            .await
            .map_err(ReminderError::from)?,
    ))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(new): Json<NewCampaign>,
) -> Result<(StatusCode, Json<campaigns::Created>)> {
    authorize(&state, &headers)?;
    let created = campaigns::create(
        &state.db,
        &state.settings.campaigns,
        new,
        chrono::Utc::now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<CampaignReport>> {
    authorize(&state, &headers)?;
    Ok(Json(campaigns::campaign_report(&state.db, id).await?))
}

async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
) -> Result<Json<CampaignReport>> {
    authorize(&state, &headers)?;
    let now = chrono::Utc::now();
    match action.as_str() {
        "start" => campaigns::start(&state.db, id, now).await?,
        "pause" => campaigns::pause(&state.db, id, now).await?,
        "resume" => campaigns::resume(&state.db, id, now).await?,
        "cancel" => campaigns::cancel(&state.db, id, now).await?,
        _ => return Err(CampaignApiError::UnknownAction(action)),
    }
    Ok(Json(campaigns::campaign_report(&state.db, id).await?))
}
