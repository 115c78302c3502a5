//! `POST /console/conversations/{contact}/attach`: an agent sends a file (a PDF, a photo) in
//! a conversation they hold while the 24-hour window is open, under the same rules as a text
//! reply. The file streams into the media store (memory does not grow with its size), its type
//! is read from its bytes (an "invoice.pdf" that is an executable is refused), WhatsApp's
//! limits are checked before anything is queued, and it is recorded as the contact's file
//! (erasure and retention delete it). The sender uploads it and sends the media message.

use axum::extract::{Multipart, Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::CurrentAgent;
use super::error::{ConsoleError, Result};
use super::{access, pages};
use crate::http::AppState;
use crate::media::uploads;
use crate::store::begin_write;
use crate::whatsapp::inbound::MediaKind;
use crate::whatsapp::outbound::limits::{validate_file, validate_filename};
use crate::whatsapp::outbound::{DOCUMENT_MAX_BYTES, MEDIA_CAPTION_MAX, OutboundMediaKind};

/// The request body limit of the route: the largest document plus the form around it.
pub const BODY_LIMIT: usize = DOCUMENT_MAX_BYTES as usize + 64 * 1024;
/// Bytes kept from the start of the file to read its type from.
const HEAD_BYTES: usize = 8192;

/// The multipart form: `csrf` first (checked before any byte of the file is kept), then
/// `file` (its part's file name is what the policyholder sees) and an optional `caption`.
pub async fn attach(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(contact_id): Path<i64>,
    mut form: Multipart,
) -> Result<Response> {
    access::check_contact(&state.db, &agent, contact_id).await?;
    let contact = pages::may_write_free_form(&state, &agent, contact_id).await?;
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        ConsoleError::Invalid(format!("The form could not be read: {e}"))
    };
    let mut csrf_ok = false;
    let mut caption: Option<String> = None;
    let mut file: Option<(uploads::StoredFile, String)> = None;
    while let Some(mut field) = form.next_field().await.map_err(unreadable)? {
        match field.name().unwrap_or_default() {
            "csrf" => {
                let token = field.text().await.map_err(unreadable)?;
                agent.check_csrf(Some(&token))?;
                csrf_ok = true;
            }
            "caption" => {
                let text = field.text().await.map_err(unreadable)?;
                let text = text.trim();
                if text.chars().count() > MEDIA_CAPTION_MAX {
                    return Err(ConsoleError::Invalid(format!(
                        "caption: {} characters, the limit is {MEDIA_CAPTION_MAX}.",
                        text.chars().count()
                    )));
                }
                caption = (!text.is_empty()).then(|| text.to_owned());
            }
            "file" if !csrf_ok => return Err(ConsoleError::Csrf),
            "file" => {
                // A browser sends the bare name; anything before a path separator is dropped.
                let name = field
                    .file_name()
                    .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).trim().to_owned())
                    .unwrap_or_default();
                validate_filename("file name", &name)
                    .map_err(|e| ConsoleError::Invalid(format!("{e}.")))?;
                let declared = field.content_type().map(str::to_owned);
                let mut upload = state.media.upload();
                let mut head = Vec::with_capacity(HEAD_BYTES);
                loop {
                    let chunk = match field.chunk().await {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => break,
                        Err(e) => {
                            upload.abort().await;
                            return Err(unreadable(e));
                        }
                    };
                    if upload.size() + chunk.len() as u64 > DOCUMENT_MAX_BYTES {
                        upload.abort().await;
                        return Err(ConsoleError::TooLarge(format!(
                            "file: larger than WhatsApp's {} MB limit for documents.",
                            DOCUMENT_MAX_BYTES / (1024 * 1024)
                        )));
                    }
                    let room = HEAD_BYTES.saturating_sub(head.len());
                    head.extend_from_slice(&chunk[..room.min(chunk.len())]);
                    if let Err(e) = upload.write(chunk).await {
                        upload.abort().await;
                        return Err(e.into());
                    }
                }
                let size = upload.size();
                let Some((kind, mime_type)) = sniff(&head, declared.as_deref()) else {
                    upload.abort().await;
                    return Err(ConsoleError::Invalid(format!(
                        "file: not a type WhatsApp delivers; send a photo (JPEG, PNG) or a document ({}).",
                        "PDF, text, Word, Excel, PowerPoint"
                    )));
                };
                if let Err(e) = validate_file(kind, &mime_type, size) {
                    upload.abort().await;
                    return Err(if e.field.ends_with(".size") && size > 0 {
                        ConsoleError::TooLarge(format!("{e}."))
                    } else {
                        ConsoleError::Invalid(format!("{e}."))
                    });
                }
                let stored = upload.finish(None).await?.ok_or_else(|| {
                    ConsoleError::Internal(anyhow::anyhow!("the media store did not keep the file"))
                })?;
                file = Some((
                    uploads::StoredFile {
                        kind,
                        stored,
                        mime_type,
                    },
                    name,
                ));
            }
            _ => {}
        }
    }
    if !csrf_ok {
        return Err(ConsoleError::Csrf);
    }
    let Some((file, name)) = file else {
        return Err(ConsoleError::Invalid("file: choose a file to send.".into()));
    };
    let filename = (file.kind == OutboundMediaKind::Document).then_some(name);
    let txn = begin_write(&state.db).await?;
    super::reply::send_agent_file(&txn, &state.composer, &contact, &file, filename, caption)
        .await?;
    txn.commit().await?;
    tracing::info!(
        contact_id,
        agent_id = agent.id,
        kind = file.kind.as_str(),
        size = file.stored.size,
        "agent attachment queued"
    );
    Ok(Redirect::to(&format!("/console/conversations/{contact_id}")).into_response())
}

/// What a file is, from its first bytes: a JPEG or PNG goes as a photo, anything WhatsApp
/// takes as a document as one; `None` for the rest (executables, scripts, unknown binaries).
fn sniff(head: &[u8], declared: Option<&str>) -> Option<(OutboundMediaKind, String)> {
    if let Some(image) = crate::media::fetch::detect_type(&MediaKind::Image, head, declared) {
        return Some((OutboundMediaKind::Image, image));
    }
    let mime = crate::media::fetch::detect_type(&MediaKind::Document, head, declared)?;
    OutboundMediaKind::Document
        .accepted_types()
        .contains(&mime.as_str())
        .then_some((OutboundMediaKind::Document, mime))
}
