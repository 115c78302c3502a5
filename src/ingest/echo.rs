//! The echo handler: answers every message with what it understood. It is the dialogue layer
//! until the flow engine takes over, a diagnostic for operators (`dialogue = "echo"`), and the
//! handler the pipeline tests use to observe order and exactly-once processing end to end.

use sea_orm::DatabaseTransaction;

use super::pipeline::{BoxFuture, MessageHandler, PendingMessage};
use crate::messaging::composer::{self, Composer, Intent, Purpose};
use crate::whatsapp::inbound::MessageContent;
use crate::whatsapp::outbound::OutboundBody;

/// Replies `echo: <what was received>` to each message, through the composer like every
/// other outbound message.
pub struct EchoHandler {
    pub composer: Composer,
}

impl MessageHandler for EchoHandler {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        message: &'a PendingMessage,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let intent = Intent {
                contact_id: message.contact_id,
                in_reply_to: Some(message.id),
                purpose: Purpose::Reply,
                free_form: Some(OutboundBody::Text {
                    body: describe(&message.content),
                    preview_url: false,
                }),
                // A diagnostic has no template: a late echo is recorded as skipped.
                template: None,
            };
            match (&message.fresh, &message.contact) {
                (Some(fresh), Some(contact)) => {
                    let answered = Some(message.wamid.clone());
                    let fresh = Some((fresh, answered));
                    composer::queue_from_pipeline(
                        txn,
                        &self.composer,
                        intent,
                        contact,
                        fresh,
                        None,
                        composer::Line::Answered {
                            number: message.phone_number_id.as_deref(),
                            sent_at: message.sent_at,
                        },
                    )
                    .await?;
                }
                _ => {
                    composer::queue(txn, &self.composer, intent).await?;
                }
            }
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
