//! What an agent says goes out through the outbox like everything else.

use sea_orm::{ConnectionTrait, DbErr};

use crate::dialogue::recipient;
use crate::messaging::outbox;
use crate::store::entities::contact;
use crate::whatsapp::outbound::{OutboundBody, OutboundMessage};

/// Longest agent message (WhatsApp's text body limit).
pub const MAX_CHARS: usize = crate::whatsapp::outbound::TEXT_BODY_MAX;

/// Queues an agent's free-text reply to `contact` in the caller's transaction; returns the
/// outbox row id. The only place the console writes to the outbox: when the composer replaces
/// `outbox::enqueue`, this is the one call to change.
///
/// # Errors
/// A contact without an address, a text over the limit, or a database error.
pub async fn send_agent_text<C: ConnectionTrait>(
    txn: &C,
    contact: &contact::Model,
    text: &str,
) -> Result<i64, DbErr> {
    let to = recipient(contact)
        .ok_or_else(|| DbErr::Custom(format!("contact {} has no address", contact.id)))?;
    let message = OutboundMessage {
        to,
        body: OutboundBody::Text {
            body: text.to_owned(),
            preview_url: text.contains("https://"),
        },
        reply_to: None,
        callback_data: Some("agent".to_owned()),
    };
    message
        .validate()
        .map_err(|e| DbErr::Custom(format!("agent reply breaks a WhatsApp limit: {e}")))?;
    outbox::enqueue(txn, contact.id, None, &message).await
}
