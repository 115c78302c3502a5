//! `GET /console/conversations/{contact}/media/{id}`: a photo or document a policyholder
//! sent, for a console user who may read that conversation (the transcript's rule, see
//! [`access`](super::access)). Each view is recorded in the transcript view log before the
//! file is sent, so a view that could not be recorded is not shown.
//!
//! Only JPEG, PNG and WebP images are served inline (the transcript's thumbnails); every other
//! type is a download (`Content-Disposition: attachment`, `nosniff`), so nothing a
//! policyholder sent is ever rendered as a page on the console's origin.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sea_orm::EntityTrait;

use super::access::{self, Reading};
use super::auth::CurrentAgent;
use super::error::{ConsoleError, Result};
use super::transcript::is_inline_image;
use crate::http::AppState;
use crate::store::entities::media_file;
use crate::store::entities::media_file::State as FileState;

/// Streams the file from the media store.
///
/// # Errors
/// [`ConsoleError::NotYours`] under the transcript's rule, [`ConsoleError::NotFound`] for a
/// file that is not this contact's or not stored; store and database errors.
pub async fn file(
    State(app): State<AppState>,
    agent: CurrentAgent,
    Path((contact_id, media_id)): Path<(i64, i64)>,
) -> Result<Response> {
    access::check_contact(&app.db, &agent, contact_id).await?;
    let row = media_file::Entity::find_by_id(media_id)
        .one(&app.db)
        .await?
        // Another contact's file is "not found" even to a supervisor who may read both: the
        // URL names the conversation whose rule was checked.
        .filter(|r| r.contact_id == contact_id && r.state == FileState::Stored)
        .ok_or(ConsoleError::NotFound)?;
    let sha256 = row.sha256.as_deref().ok_or(ConsoleError::NotFound)?;
    access::record_view(
        &app.db,
        &agent,
        contact_id,
        Reading::Refresh,
        app.settings.console.view_log_merge_minutes,
    )
    .await?;
    tracing::info!(
        agent_id = agent.id,
        contact_id,
        media_id,
        kind = %row.kind,
        "media file viewed"
    );
    let (size, stream) = app.media.get(sha256).await?;
    let mime = row
        .mime_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    let disposition = if is_inline_image(mime) {
        "inline".to_owned()
    } else {
        // No file name from the sender (it may name the person); the kind and the row id.
        format!("attachment; filename=\"{}-{media_id}\"", row.kind)
    };
    Ok(file_response(size, stream, mime, &disposition))
}

/// A stored file as a response: its type and length, never cached, never sniffed into
/// something else, with `disposition` (the console's transcript and the claim file links
/// serve files the same way).
pub(crate) fn file_response(
    size: u64,
    stream: futures_util::stream::BoxStream<'static, anyhow::Result<axum::body::Bytes>>,
    mime: &str,
    disposition: &str,
) -> Response {
    let mut resp = Body::from_stream(stream).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(disposition).unwrap_or(HeaderValue::from_static("attachment")),
    );
    resp
}
