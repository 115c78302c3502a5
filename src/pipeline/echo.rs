//! The echo handler: answers every message with what it understood. It is the dialogue layer
//! until the flow engine takes over, a diagnostic for operators (`dialogue = "echo"`), and the
//! handler the pipeline tests use to observe order and exactly-once processing end to end.

use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};

use super::{BoxFuture, MessageHandler, PendingMessage};
use crate::messaging::outbox;
use crate::store::entities::contact;
use crate::whatsapp::inbound::MessageContent;
use crate::whatsapp::outbound::{OutboundBody, OutboundMessage, Recipient};

/// Replies `echo: <what was received>` to each message.
pub struct EchoHandler;

impl MessageHandler for EchoHandler {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        message: &'a PendingMessage,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let contact = contact::Entity::find_by_id(message.contact_id)
                .one(txn)
                .await?
                .ok_or(DbErr::RecordNotFound(format!(
                    "contact {}",
                    message.contact_id
                )))?;
            let to = match (contact.wa_id, contact.user_id) {
                (Some(phone), _) => Recipient::Phone(phone),
                (None, Some(user_id)) => Recipient::UserId(user_id),
                (None, None) => anyhow::bail!("contact {} has no address", contact.id),
            };
            let reply = OutboundMessage {
                to,
                body: OutboundBody::Text {
                    body: describe(&message.content),
                    preview_url: false,
                },
                reply_to: None,
                callback_data: Some(format!("inbound:{}", message.id)),
            };
            outbox::enqueue(txn, message.contact_id, Some(message.id), &reply).await?;
            Ok(())
        })
    }
}

/// A one-line description of what was received.
pub fn describe(content: &MessageContent) -> String {
    match content {
        MessageContent::Text { body } => format!("echo: {body}"),
        MessageContent::ButtonReply { id, .. } => format!("echo: button {id}"),
        MessageContent::ListReply { id, .. } => format!("echo: list {id}"),
        MessageContent::TemplateButton { payload, .. } => {
            format!("echo: template button {payload}")
        }
        other => format!("echo: [{}]", other.type_name()),
    }
}
