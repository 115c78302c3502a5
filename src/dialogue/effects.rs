//! What the engine's effects do at the edge: a reply becomes the composer's intent (the
//! interactive body inside the window, the template fallback outside it), an action's file is
//! recorded and sent, a consent change is appended to the log with what the contact saw, a
//! message the bot could not place is kept for the dashboard. Also the two translations the
//! runner and its tools share: an inbound message into an engine [`Event`], a [`Reply`] into
//! a Cloud API body.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::{FlowRunner, Turn};
use crate::consent::{self, Change, NewEntry, Scope, Source};
use crate::engine::media_slot::{FileKind, MediaRef};
use crate::engine::{Choices, ConsentChange, ConsentScope, Event, Reply};
use crate::messaging::composer::{
    self, Composer, Intent, PipelineQueued, Purpose, Queued, StoredIntent, TemplateChoice,
};
use crate::store::entities::outbox;
use crate::store::now_ms;
use crate::whatsapp::inbound::MessageContent;
use crate::whatsapp::outbound::{self as wa, OutboundBody};

/// The fluent id of the after-hours hand-off notice (in every locale's `flows.ftl`).
pub const AFTER_HOURS_MESSAGE: &str = "handoff-after-hours";

/// The engine event for an inbound message; `None` for what needs no answer (reactions,
/// system notices).
pub fn event_for(content: &MessageContent) -> Option<Event> {
    Some(match content {
        MessageContent::Text { body } => Event::Text(body.clone()),
        MessageContent::ButtonReply { id, title } => Event::Button {
            id: id.clone(),
            title: title.clone(),
        },
        MessageContent::ListReply { id, .. } => Event::ListRow { id: id.clone() },
        // A template's quick-reply tap is a button for the flow (e.g. "Pay now" on a reminder).
        MessageContent::TemplateButton { payload, text } => Event::Button {
            id: payload.clone(),
            title: text.clone(),
        },
        // The file itself is added by the runner once its `media_files` row says it was kept.
        MessageContent::Media { .. } => Event::Media(None),
        MessageContent::Reaction { .. }
        | MessageContent::System { .. }
        | MessageContent::RequestWelcome => return None,
        MessageContent::Location { .. }
        | MessageContent::Contacts { .. }
        | MessageContent::Order { .. }
        | MessageContent::FlowReply { .. }
        | MessageContent::Unsupported { .. }
        | MessageContent::Other { .. } => Event::Unsupported,
    })
}

/// The Cloud API body for an engine reply: text, reply buttons or a list.
pub fn body_for(reply: &Reply) -> OutboundBody {
    match &reply.choices {
        None => OutboundBody::Text {
            body: reply.body.clone(),
            preview_url: reply.body.contains("https://"),
        },
        Some(Choices::Buttons(buttons)) => OutboundBody::Buttons {
            header: reply.header.clone(),
            body: reply.body.clone(),
            footer: reply.footer.clone(),
            buttons: buttons
                .iter()
                .map(|b| wa::ReplyButton {
                    id: b.id.clone(),
                    title: b.title.clone(),
                })
                .collect(),
        },
        Some(Choices::List(list)) => OutboundBody::List {
            header: reply.header.clone(),
            body: reply.body.clone(),
            footer: reply.footer.clone(),
            button_label: list.button.clone(),
            sections: list
                .sections
                .iter()
                .map(|s| wa::ListSection {
                    title: s.title.clone(),
                    rows: s
                        .rows
                        .iter()
                        .map(|r| wa::ListRow {
                            id: r.id.clone(),
                            title: r.title.clone(),
                            description: r.description.clone(),
                        })
                        .collect(),
                })
                .collect(),
        },
    }
}

/// Hands an engine reply to the composer: the interactive or text body while the 24-hour
/// window is open, the state's template fallback once it has closed (decided again when sent).
pub(super) async fn queue_reply(
    turn: &Turn<'_>,
    composer: &Composer,
    reply: &Reply,
) -> anyhow::Result<()> {
    queue_body(turn, composer, reply, body_for(reply)).await
}

/// Queues `body` for `reply` (whose template, if any, is the fallback).
async fn queue_body(
    turn: &Turn<'_>,
    composer: &Composer,
    reply: &Reply,
    body: OutboundBody,
) -> anyhow::Result<()> {
    let intent = Intent {
        contact_id: turn.contact.id,
        in_reply_to: turn.inbound_id,
        purpose: Purpose::Reply,
        free_form: Some(body),
        template: reply.template.as_ref().map(|t| TemplateChoice {
            name: t.name.clone(),
            language: t.language.clone(),
            params: t.params.clone(),
        }),
    };
    let fresh = turn
        .fresh
        .map(|(fresh, answered)| (fresh, Some(answered.to_owned())));
    let consent = turn.consent.lock().expect("turn consent").clone();
    let queued = composer::queue_from_pipeline(
        turn.txn,
        composer,
        intent,
        turn.contact,
        fresh,
        consent.as_ref(),
        turn.line,
    )
    .await;
    match queued {
        Ok(PipelineQueued::HandedOver | PipelineQueued::Queued(Queued::Row(_))) => Ok(()),
        Ok(PipelineQueued::Queued(Queued::Skipped { reason, .. })) => {
            tracing::info!(message_id = %reply.message_id, %reason, "reply not sent");
            Ok(())
        }
        // The engine renders within WhatsApp's limits; a violation is a bug worth an error.
        Err(e) => Err(anyhow::anyhow!(
            "reply '{}' cannot be queued: {e}",
            reply.message_id
        )),
    }
}

/// Sends an action's file (`policy.document`'s schedule) before the flow's next words, and
/// records it as the contact's (erasure and retention find it by that row). Free-form only:
/// a file goes inside the window or not at all.
pub(super) async fn queue_attachment(
    turn: &Turn<'_>,
    composer: &Composer,
    file: &crate::insurer::Attachment,
    caption: Option<String>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    use crate::whatsapp::outbound::{OutboundFile, OutboundMediaKind};
    crate::media::uploads::record(
        turn.txn,
        &crate::media::uploads::SentFile {
            contact_id: turn.contact.id,
            source: file.source,
            kind: file.kind,
            stored: &file.stored,
            mime_type: &file.mime_type,
            filename: Some(&file.filename),
        },
        now.timestamp_millis(),
    )
    .await?;
    let body = OutboundBody::Media {
        kind: file.kind,
        file: OutboundFile::Stored {
            sha256: file.stored.sha256.clone(),
            mime_type: file.mime_type.clone(),
            size: file.stored.size,
        },
        filename: (file.kind == OutboundMediaKind::Document).then(|| file.filename.clone()),
        caption: caption.map(|c| {
            // A caption is capped by WhatsApp; a long plan name must not fail the turn.
            c.chars().take(wa::MEDIA_CAPTION_MAX).collect()
        }),
    };
    let reply = Reply {
        message_id: file.source.to_owned(),
        body: String::new(),
        header: None,
        footer: None,
        choices: None,
        template: None,
    };
    queue_body(turn, composer, &reply, body).await
}

/// Sends a `send_files:` state's files before its words: each as an image or a document
/// message by its kind, from the media store, recorded as the contact's (source `flow`) like
/// an action's file. A file no longer stored (erased meanwhile), of a kind WhatsApp cannot
/// take as a message, or outside WhatsApp's limits is left out and logged (by kind, never
/// its name); outside the window the composer records each one as skipped, with why.
pub(super) async fn queue_files(
    turn: &Turn<'_>,
    composer: &Composer,
    store: Option<&crate::media::MediaStore>,
    files: &[MediaRef],
    caption: Option<String>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    use crate::whatsapp::outbound::OutboundMediaKind;
    let Some(store) = store else {
        tracing::warn!(
            files = files.len(),
            "a flow sends files but no media store is configured; none sent"
        );
        return Ok(());
    };
    for file in files {
        let kind = match file.kind {
            FileKind::Image => OutboundMediaKind::Image,
            FileKind::Document => OutboundMediaKind::Document,
            other => {
                tracing::warn!(
                    kind = other.as_str(),
                    "a flow's file of this kind cannot be sent; left out"
                );
                continue;
            }
        };
        let Some(size) = store.size(&file.sha256).await? else {
            tracing::warn!(
                kind = kind.as_str(),
                "a flow's file is no longer in the media store; left out"
            );
            continue;
        };
        let filename = file
            .file_name
            .clone()
            .unwrap_or_else(|| default_filename(&file.mime));
        let checked = wa::limits::validate_file(kind, &file.mime, size).and_then(|()| {
            if kind == OutboundMediaKind::Document {
                wa::limits::validate_filename("document.filename", &filename)
            } else {
                Ok(())
            }
        });
        if let Err(e) = checked {
            tracing::warn!(error = %e, "a flow's file is outside WhatsApp's limits; left out");
            continue;
        }
        let attachment = crate::insurer::Attachment {
            kind,
            stored: crate::media::store::Stored {
                sha256: file.sha256.clone(),
                size,
            },
            mime_type: file.mime.clone(),
            filename,
            caption: None,
            source: FLOW_FILE_SOURCE,
        };
        queue_attachment(turn, composer, &attachment, caption.clone(), now).await?;
    }
    Ok(())
}

/// What `outbound_media.source` records for a file a flow's `send_files:` sent.
pub const FLOW_FILE_SOURCE: &str = "flow";

/// A document's file name when its reference has none: `document` and the type's usual
/// extension.
fn default_filename(mime: &str) -> String {
    let ext = match mime {
        "application/pdf" => ".pdf",
        "text/plain" => ".txt",
        "image/jpeg" => ".jpg",
        "image/png" => ".png",
        _ => "",
    };
    format!("document{ext}")
}

/// Keeps a message the bot could not place (masked by the engine, no contact) for the
/// dashboard's "not understood" list.
pub(super) async fn record_misunderstood(
    turn: &Turn<'_>,
    text: String,
    place: String,
    language: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use crate::store::entities::misunderstood_message;
    misunderstood_message::Entity::insert(misunderstood_message::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        text: Set(text),
        place: Set(place),
        language: Set(language.to_owned()),
        at: Set(now.timestamp_millis()),
    })
    .exec(turn.txn)
    .await?;
    Ok(())
}

/// Appends the engine's consent change to the log. A keyword keeps what the contact typed;
/// a button keeps the prompt they were shown (the bot's last message, with its buttons) and
/// the answer they tapped. START restores service and reminders, never marketing.
pub(super) async fn record_consent(
    turn: &Turn<'_>,
    composer: &Composer,
    change: ConsentChange,
) -> Result<(), DbErr> {
    let changes: &[(Change, Scope)] = match change {
        ConsentChange::OptOut => &[(Change::OptOut, Scope::All)],
        ConsentChange::OptIn(ConsentScope::Service) => &[
            (Change::OptIn, Scope::Service),
            (Change::OptIn, Scope::Reminders),
        ],
        ConsentChange::OptIn(ConsentScope::Marketing) => &[(Change::OptIn, Scope::Marketing)],
        ConsentChange::OptOutOf(ConsentScope::Service) => &[
            (Change::OptOut, Scope::Service),
            (Change::OptOut, Scope::Reminders),
        ],
        ConsentChange::OptOutOf(ConsentScope::Marketing) => &[(Change::OptOut, Scope::Marketing)],
    };
    let shown_text = match turn.source {
        Source::Button => {
            let prompt = last_prompt(turn.txn, turn.contact.id).await?;
            Some(format!(
                "{}\n> {}",
                prompt.as_deref().unwrap_or("(no prompt found)"),
                turn.said.as_deref().unwrap_or("")
            ))
        }
        _ => turn.said.clone(),
    };
    let hash = composer.consent.hasher.primary_hash(turn.contact);
    for &(change, scope) in changes {
        consent::record(
            turn.txn,
            NewEntry {
                contact_id: Some(turn.contact.id),
                address_hash: hash.clone(),
                change,
                scope,
                source: turn.source,
                shown_text: shown_text.clone(),
                occurred_at: None,
                detail: None,
            },
            now_ms(),
        )
        .await?;
    }
    *turn.consent.lock().expect("turn consent") = None;
    Ok(())
}

/// The text of the bot's last message to the contact, with its buttons or list rows: what
/// they were looking at when they tapped.
async fn last_prompt<C: ConnectionTrait>(db: &C, contact_id: i64) -> Result<Option<String>, DbErr> {
    let Some(row) = outbox::Entity::find()
        .filter(outbox::Column::ContactId.eq(contact_id))
        .order_by_desc(outbox::Column::Id)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Ok(intent) = StoredIntent::from_payload(&row.payload) else {
        return Ok(None);
    };
    Ok(intent.free_form.as_ref().and_then(|body| {
        let (text, choices) = body.text_and_choices()?;
        Some(if choices.is_empty() {
            text.to_owned()
        } else {
            format!("{text} [{}]", choices.join(" | "))
        })
    }))
}

impl FlowRunner {
    /// The "we are closed, an agent replies from …" message, when a hand-off is queued outside
    /// office hours (field notes: after-hours message for agent connect).
    pub(super) fn after_hours_notice(
        &self,
        flows: &crate::engine::FlowSet,
        language: &str,
        now: DateTime<Utc>,
    ) -> Option<Reply> {
        let hours = self.office_hours.as_ref()?;
        let next = hours.next_open(now)?;
        let mut args = fluent_bundle::FluentArgs::new();
        args.set("hours", hours.describe());
        args.set("next", crate::config::hours::describe_when(next));
        let body = flows
            .i18n()
            .render_lossy(language, AFTER_HOURS_MESSAGE, Some(&args));
        Some(Reply {
            message_id: AFTER_HOURS_MESSAGE.to_owned(),
            body,
            header: None,
            footer: None,
            choices: None,
            template: None,
        })
    }
}
