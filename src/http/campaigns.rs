//! `/api/v1/campaigns` (bearer token, like the rest of `/api/v1`):
//!
//! - `GET /api/v1/campaigns`: every campaign with its report;
//! - `POST /api/v1/campaigns`: create one in `draft` from a [`NewCampaign`] (a CSV text or a
//!   contact filter); `422` lists invalid CSV rows (or pass `skip_invalid: true`);
//! - `GET /api/v1/campaigns/{id}`: progress and results ([`CampaignReport`]);
//! - `POST /api/v1/campaigns/{id}/{start|pause|resume|cancel}`.
//!
//! Failures answer in the API's one error body ([`ApiError`]).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;

use crate::http::AppState;
use crate::http::api::{ApiError, ApiJson, ApiPath, ApiRoutes, FieldProblem, authorize};
use crate::reminders::ReminderError;
use crate::reminders::campaigns::{self, CampaignReport, NewCampaign};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(Method::GET, "/api/v1/campaigns", list)
        .route(Method::POST, "/api/v1/campaigns", create)
        .route(Method::GET, "/api/v1/campaigns/{id}", report)
        .route(Method::POST, "/api/v1/campaigns/{id}/{action}", act)
}

/// What `POST /api/v1/campaigns/{id}/{action}` does; another word is a 422 naming `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start,
    Pause,
    Resume,
    Cancel,
}

impl Action {
    /// Parsed here rather than by serde in the path: axum's error for an unknown variant does
    /// not say which parameter it was.
    fn parse(word: &str) -> Result<Self, ApiError> {
        match word {
            "start" => Ok(Action::Start),
            "pause" => Ok(Action::Pause),
            "resume" => Ok(Action::Resume),
            "cancel" => Ok(Action::Cancel),
            _ => Err(ApiError::invalid(
                "action",
                "unknown action: start, pause, resume or cancel",
            )),
        }
    }
}

/// The path of an action call.
#[derive(Debug, Deserialize)]
struct ActionPath {
    id: i64,
    action: String,
}

/// A campaign failure as the API's error: unknown campaign 404, wrong state 409, invalid
/// input (CSV rows included, one problem per row) 422, the rest 503 and logged.
impl From<ReminderError> for ApiError {
    fn from(e: ReminderError) -> Self {
        match e {
            ReminderError::UnknownCampaign(_) => ApiError::NotFound(e.to_string()),
            ReminderError::WrongState { .. } => ApiError::Conflict(e.to_string()),
            ReminderError::Invalid(field, problem) => ApiError::invalid(field, problem),
            ReminderError::Rows(rows) => ApiError::Invalid(
                rows.iter()
                    .map(|row| FieldProblem::new("audience.csv", row.to_string()))
                    .collect(),
            ),
            ReminderError::Db(e) => ApiError::Db(e),
            // Both get better by themselves: a retry finds the contacts, the store answers.
            ReminderError::ContactsMissing(_) | ReminderError::Compose(_) => {
                tracing::error!(error.cause_chain = ?e, error.message = %e, "API request failed");
                ApiError::Unavailable("temporarily unavailable")
            }
        }
    }
}

type Result<T, E = ApiError> = std::result::Result<T, E>;

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<CampaignReport>>> {
    authorize(&state, &headers)?;
    let all = campaigns::list(&state.db).await?;
    Ok(Json(campaigns::reports(&state.db, all).await?))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(new): ApiJson<NewCampaign>,
) -> Result<(StatusCode, Json<campaigns::Created>)> {
    authorize(&state, &headers)?;
    let mut problems = Vec::new();
    super::notifications::business_number(&state.settings, new.number.as_deref(), &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let waba = state.settings.waba_of(new.number.as_deref());
    let created = campaigns::create(
        &state.db,
        &state.settings.campaigns,
        &waba,
        new,
        chrono::Utc::now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CampaignReport>> {
    authorize(&state, &headers)?;
    Ok(Json(campaigns::campaign_report(&state.db, id).await?))
}

async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(ActionPath { id, action }): ApiPath<ActionPath>,
) -> Result<Json<CampaignReport>> {
    authorize(&state, &headers)?;
    let action = Action::parse(&action)?;
    let now = chrono::Utc::now();
    match action {
        Action::Start => campaigns::start(&state.db, id, now).await?,
        Action::Pause => campaigns::pause(&state.db, id, now).await?,
        Action::Resume => campaigns::resume(&state.db, id, now).await?,
        Action::Cancel => campaigns::cancel(&state.db, id, now).await?,
    }
    Ok(Json(campaigns::campaign_report(&state.db, id).await?))
}
