//! What an agent says goes out through the composer and the outbox like everything else.

use sea_orm::{ConnectionTrait, DbErr};

use crate::media::uploads::{self, SentFile, StoredFile};
use crate::messaging::composer::{
    self, ComposeError, Composer, Intent, Purpose, Queued, TemplateChoice,
};
use crate::store::entities::contact;
use crate::store::now_ms;
use crate::whatsapp::outbound::{OutboundBody, OutboundFile};

/// Longest agent message (WhatsApp's text body limit).
pub const MAX_CHARS: usize = crate::whatsapp::outbound::TEXT_BODY_MAX;

/// Queues an agent's free-text reply to `contact` through the composer, in the caller's
/// transaction; returns the outbox row id. The composer decides again at send time, so a reply
/// typed just before the window closes is recorded as skipped rather than refused by Meta.
///
/// # Errors
/// A text over the limit, an unknown contact, or a database error.
pub async fn send_agent_text<C: ConnectionTrait>(
    txn: &C,
    composer: &Composer,
    contact: &contact::Model,
    text: &str,
) -> Result<i64, DbErr> {
    let intent = Intent {
        contact_id: contact.id,
        in_reply_to: None,
        purpose: Purpose::Agent,
        free_form: Some(OutboundBody::Text {
            body: text.to_owned(),
            preview_url: text.contains("https://"),
        }),
        template: None,
    };
    match composer::queue(txn, composer, intent).await {
        Ok(Queued::Row(id) | Queued::Skipped { row: id, .. }) => Ok(id),
        Err(ComposeError::Db(e)) => Err(e),
        Err(e) => Err(DbErr::Custom(format!("agent reply refused: {e}"))),
    }
}

/// Queues a file an agent attached (already in the media store and checked against
/// WhatsApp's limits) and records it as the contact's file, in the caller's transaction;
/// returns the outbox row id.
///
/// # Errors
/// An unknown contact or a database error.
pub async fn send_agent_file<C: ConnectionTrait>(
    txn: &C,
    composer: &Composer,
    contact: &contact::Model,
    file: &StoredFile,
    filename: Option<String>,
    caption: Option<String>,
) -> Result<i64, DbErr> {
    uploads::record(
        txn,
        &SentFile {
            contact_id: contact.id,
            source: "agent",
            kind: file.kind,
            stored: &file.stored,
            mime_type: &file.mime_type,
            filename: filename.as_deref(),
        },
        now_ms(),
    )
    .await?;
    let intent = Intent {
        contact_id: contact.id,
        in_reply_to: None,
        purpose: Purpose::Agent,
        free_form: Some(OutboundBody::Media {
            kind: file.kind,
            file: OutboundFile::Stored {
                sha256: file.stored.sha256.clone(),
                mime_type: file.mime_type.clone(),
                size: file.stored.size,
            },
            filename,
            caption,
        }),
        template: None,
    };
    match composer::queue(txn, composer, intent).await {
        Ok(Queued::Row(id) | Queued::Skipped { row: id, .. }) => Ok(id),
        Err(ComposeError::Db(e)) => Err(e),
        Err(e) => Err(DbErr::Custom(format!("agent attachment refused: {e}"))),
    }
}

/// Queues an approved template chosen by an agent (the only way to write once the window has
/// closed), through the composer; returns the outbox row id.
///
/// # Errors
/// An unknown contact or a database error; a template the registry refuses is recorded as a
/// skipped row with its reason, like any other.
pub async fn send_agent_template<C: ConnectionTrait>(
    txn: &C,
    composer: &Composer,
    contact: &contact::Model,
    name: &str,
    language: &str,
    params: Vec<String>,
) -> Result<i64, DbErr> {
    let intent = Intent {
        contact_id: contact.id,
        in_reply_to: None,
        purpose: Purpose::Agent,
        free_form: None,
        template: Some(TemplateChoice {
            name: name.to_owned(),
            language: language.to_owned(),
            params,
        }),
    };
    match composer::queue(txn, composer, intent).await {
        Ok(Queued::Row(id) | Queued::Skipped { row: id, .. }) => Ok(id),
        Err(ComposeError::Db(e)) => Err(e),
        Err(e) => Err(DbErr::Custom(format!("agent template refused: {e}"))),
    }
}
