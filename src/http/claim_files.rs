//! `GET /files/claims/{sha256}?expires=…&sig=…`: a file a policyholder sent for a claim, for
//! the insurer's system behind the HTTP source (issue 18). The link's signature is the
//! authentication (see [`crate::insurer::file_links`]): it names one file and an expiry, and
//! the file is served only while some claim document names it, so a link cannot reach a
//! chat photo that was never sent for a claim, nor a file erased since. Each download is
//! logged by hash and claim, never by person.
//!
//! Every refusal is a plain 403 or 404 without a reason in the body: whoever holds a bad link
//! learns nothing about which files exist. The reason is logged.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;

use super::AppState;
use crate::store::entities::claim_document;

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/files/claims/{sha256}", get(file))
}

/// The signature's parts, as the link carries them.
#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    expires: String,
    #[serde(default)]
    sig: String,
}

async fn file(
    State(app): State<AppState>,
    Path(sha256): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Response {
    let valid_hash = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !valid_hash {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Err(e) = app
        .insurer
        .file_links()
        .verify(&sha256, &q.expires, &q.sig, chrono::Utc::now())
    {
        tracing::info!(reason = %e, "claim file link refused");
        return StatusCode::FORBIDDEN.into_response();
    }
    let row = match claim_document::Entity::find()
        .filter(claim_document::Column::Sha256.eq(sha256.as_str()))
        .one(&app.db)
        .await
    {
        Ok(Some(row)) => row,
        Ok(None) => {
            tracing::info!("claim file link for a file no claim names (erased?)");
            return StatusCode::NOT_FOUND.into_response();
        }
        Err(e) => {
            tracing::error!(error.message = %e, "claim file lookup failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let (size, stream) = match app.media.get(&sha256).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error.message = %e, "claim file missing from the media store");
            return StatusCode::NOT_FOUND.into_response();
        }
    };
    tracing::info!(
        claim_document_id = row.id,
        kind = %row.kind,
        "claim file downloaded through a signed link"
    );
    // Never rendered on this origin; named by kind and row, not by the sender's file name.
    crate::http::console::media::file_response(
        size,
        stream,
        &row.mime_type,
        &format!("attachment; filename=\"{}-{}\"", row.kind, row.id),
    )
}
