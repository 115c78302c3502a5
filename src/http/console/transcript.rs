//! One contact's conversation as a timeline: inbound messages and outbox rows, oldest first,
//! each outbound line with its delivery tick (queued, sent, delivered, read, or failed with
//! the reason WhatsApp gave) so a failure is never invisible (field notes, pain point 14).
//!
//! Links in the bot's lines are not shown: a pay link is a bearer token for paying that
//! premium (and carries the full policy number), a document link may carry an access token;
//! the agent sees `[link not shown]` where the policyholder saw the link.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;

use super::local_time;
use crate::config::hours::OfficeHours;
use crate::messaging::composer::{Purpose, StoredIntent};
use crate::store::entities::outbox::State as OutboxState;
use crate::store::entities::{inbound_message, media_file, message_status, outbox};
use crate::whatsapp::inbound::MessageContent;
use crate::whatsapp::outbound::{OutboundBody, OutboundMediaKind};

/// One line of the transcript.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// Unix ms, for ordering.
    pub at: i64,
    /// Local time for people.
    pub when: String,
    /// `contact`, `bot` or `agent`.
    pub from: &'static str,
    pub text: String,
    /// Buttons or list rows offered with the message.
    pub choices: Vec<String>,
    /// `queued`, `sent`, `delivered`, `read`, `failed` (outbound only).
    pub tick: Option<String>,
    /// Why it failed, as WhatsApp or the sender said.
    pub failure: Option<String>,
    /// The stored file of an inbound photo or document, shown through the console's
    /// authenticated media route.
    pub media: Option<LineMedia>,
}

/// A stored inbound file on a transcript line.
#[derive(Debug, Clone, Serialize)]
pub struct LineMedia {
    /// `/console/conversations/{contact}/media/{id}`.
    pub url: String,
    /// Shown as a thumbnail (an image) or as a link (anything else).
    pub thumbnail: bool,
    pub kind: &'static str,
}

/// The newest `limit` lines of a contact's conversation, oldest first.
///
/// # Errors
/// Database errors.
pub async fn load(
    db: &DatabaseConnection,
    hours: &OfficeHours,
    contact_id: i64,
    limit: usize,
) -> Result<Vec<Line>, DbErr> {
    let inbound = inbound_message::Entity::find()
        .filter(inbound_message::Column::ContactId.eq(contact_id))
        .order_by_desc(inbound_message::Column::Id)
        .all(db)
        .await?;
    let outbound = outbox::Entity::find()
        .filter(outbox::Column::ContactId.eq(contact_id))
        .order_by_desc(outbox::Column::Id)
        .all(db)
        .await?;
    let wamids: Vec<String> = outbound.iter().filter_map(|r| r.wamid.clone()).collect();
    let statuses: HashMap<String, message_status::Model> = if wamids.is_empty() {
        HashMap::new()
    } else {
        message_status::Entity::find()
            .filter(message_status::Column::Wamid.is_in(wamids))
            .all(db)
            .await?
            .into_iter()
            .map(|s| (s.wamid.clone(), s))
            .collect()
    };
    let shown: Vec<i64> = inbound.iter().take(limit).map(|r| r.id).collect();
    let files: HashMap<i64, media_file::Model> = crate::media::fetch::outcomes(db, &shown)
        .await?
        .into_iter()
        .filter(|f| f.state == crate::store::entities::media_file::State::Stored)
        .map(|f| (f.inbound_message_id, f))
        .collect();
    let mut lines: Vec<Line> = inbound
        .iter()
        .take(limit)
        .map(|row| {
            let content: Option<MessageContent> = row
                .content
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok());
            Line {
                at: row.sent_at,
                when: local_time(hours, row.sent_at),
                from: "contact",
                text: content
                    .as_ref()
                    .map_or_else(|| format!("[{} message]", row.msg_type), inbound_text),
                choices: Vec::new(),
                tick: None,
                failure: None,
                media: files.get(&row.id).map(|f| LineMedia {
                    url: format!("/console/conversations/{contact_id}/media/{}", f.id),
                    thumbnail: f.mime_type.as_deref().is_some_and(is_inline_image),
                    kind: if f.kind == "image" { "photo" } else { "file" },
                }),
            }
        })
        .collect();
    for row in outbound.iter().take(limit) {
        let intent = StoredIntent::from_payload(&row.payload).ok();
        let (text, choices) = match intent.as_ref() {
            Some(StoredIntent {
                free_form: Some(body),
                ..
            }) => outbound_text(body),
            // A one-time password's code is sealed in the row and never shown.
            Some(StoredIntent {
                purpose: Purpose::Otp { .. },
                template: Some(t),
                ..
            }) => (format!("[template {}: code hidden]", t.name), Vec::new()),
            Some(StoredIntent {
                template: Some(t), ..
            }) => (
                format!("[template {}: {}]", t.name, t.params.join(", ")),
                Vec::new(),
            ),
            _ => ("[message]".to_owned(), Vec::new()),
        };
        let from = match intent.as_ref().map(|i| &i.purpose) {
            Some(Purpose::Agent) => "agent",
            _ => "bot",
        };
        // What an agent typed is theirs to see; what the bot sent may hold a pay link.
        let text = if from == "bot" {
            hide_links(&text)
        } else {
            text
        };
        let (tick, failure) = tick_of(row, &statuses);
        lines.push(Line {
            at: row.created_at,
            when: local_time(hours, row.created_at),
            from,
            text,
            choices,
            tick: Some(tick),
            failure,
            media: None,
        });
    }
    lines.sort_by_key(|l| l.at);
    let skip = lines.len().saturating_sub(limit);
    Ok(lines.split_off(skip))
}

fn tick_of(
    row: &outbox::Model,
    statuses: &HashMap<String, message_status::Model>,
) -> (String, Option<String>) {
    let reason = |code: Option<i64>, text: Option<&str>| {
        let text = text.unwrap_or("unknown error");
        Some(match code {
            Some(c) => format!("{text} ({c})"),
            None => text.to_owned(),
        })
    };
    match row.state {
        OutboxState::Failed | OutboxState::Dead => (
            "failed".into(),
            reason(row.error_code, row.last_error.as_deref()),
        ),
        OutboxState::Queued => ("queued".into(), None),
        // Decided not to send (window closed without a template, consent, erasure): it never
        // reached WhatsApp, and the agent must not read it as sent.
        OutboxState::Skipped => {
            let code = row.reason.map_or("unknown", |r| r.as_str());
            let why = super::reason_text(code).map_or_else(|| code.to_owned(), str::to_owned);
            ("skipped".into(), Some(format!("Not sent: {why}")))
        }
        OutboxState::Sent => match row.wamid.as_ref().and_then(|w| statuses.get(w)) {
            Some(s) if s.status == "failed" => (
                "failed".into(),
                reason(s.error_code, s.error_title.as_deref()),
            ),
            Some(s) if s.status == "played" => ("read".into(), None),
            Some(s) => (s.status.clone(), None),
            None => ("sent".into(), None),
        },
    }
}

/// What replaces a link in the bot's lines.
pub const LINK_HIDDEN: &str = "[link not shown]";

/// Replaces every URL (a word holding `://`, from its scheme to before any closing
/// punctuation) with [`LINK_HIDDEN`], keeping the spacing and the punctuation around it.
pub fn hide_links(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|piece| {
            let word = piece.trim_end();
            let Some(sep) = word.find("://") else {
                return piece.to_owned();
            };
            let start = word[..sep]
                .char_indices()
                .rev()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
                .map_or(0, |(i, c)| i + c.len_utf8());
            let end = word
                .trim_end_matches([']', ')', '.', ',', ';', '!', '?'])
                .len()
                .max(sep + 3);
            format!("{}{LINK_HIDDEN}{}", &word[..start], &piece[end..])
        })
        .collect()
}

/// Whether a stored type is shown inline in the console (everything else is downloaded, so
/// no file a policyholder sent is ever rendered as a page on the console's origin).
pub fn is_inline_image(mime: &str) -> bool {
    matches!(mime, "image/jpeg" | "image/png" | "image/webp")
}

/// What a policyholder sent, as one line of text.
pub fn inbound_text(content: &MessageContent) -> String {
    match content {
        MessageContent::Text { body } => body.clone(),
        MessageContent::ButtonReply { title, .. } | MessageContent::ListReply { title, .. } => {
            format!("▸ {title}")
        }
        MessageContent::TemplateButton { text, .. } => format!("▸ {text}"),
        MessageContent::Media { kind, caption, .. } => match caption {
            Some(c) => format!("[{}] {c}", kind.as_str()),
            None => format!("[{}]", kind.as_str()),
        },
        MessageContent::Location { name, .. } => {
            format!("[location] {}", name.as_deref().unwrap_or(""))
        }
        MessageContent::Contacts { count } => format!("[{count} contact card(s)]"),
        MessageContent::Reaction { emoji, .. } => {
            format!("[reaction {}]", emoji.as_deref().unwrap_or("removed"))
        }
        MessageContent::FlowReply { .. } => "[form reply]".into(),
        MessageContent::Order { item_count, .. } => format!("[order, {item_count} item(s)]"),
        MessageContent::System { kind, .. } => format!("[system: {kind}]"),
        MessageContent::RequestWelcome => "[opened the chat]".into(),
        MessageContent::Unsupported { .. } => "[unsupported message]".into(),
        MessageContent::Other { .. } => "[message]".into(),
    }
}

/// What the bot or an agent sent: the text and the choices offered with it.
pub fn outbound_text(body: &OutboundBody) -> (String, Vec<String>) {
    match (body.text_and_choices(), body) {
        (Some((text, choices)), _) => (
            text.to_owned(),
            choices.into_iter().map(str::to_owned).collect(),
        ),
        (
            None,
            OutboundBody::Template {
                name, components, ..
            },
        ) => (
            format!("Template “{name}” ({} component(s))", components.len()),
            Vec::new(),
        ),
        (
            None,
            OutboundBody::Media {
                kind,
                filename,
                caption,
                ..
            },
        ) => {
            // The file's name and caption, never its bytes: enough for an agent to know what
            // the policyholder received.
            let what = match (kind, filename) {
                (OutboundMediaKind::Document, Some(name)) => format!("[document: {name}]"),
                (kind, _) => format!("[{}]", kind.as_str()),
            };
            let text = match caption {
                Some(c) => format!("{what} {c}"),
                None => what,
            };
            (text, Vec::new())
        }
        (None, _) => (String::new(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_hidden_and_the_rest_kept() {
        assert_eq!(
            hide_links("Due on 05/12.\nPay securely here: https://pay.example.in/p/H-1?t=1.2 now"),
            "Due on 05/12.\nPay securely here: [link not shown] now"
        );
        assert_eq!(
            hide_links("[template r: ••••0245, https://x/y]"),
            "[template r: ••••0245, [link not shown]]"
        );
        assert_eq!(
            hide_links("(see:https://x.in/a)."),
            "(see:[link not shown])."
        );
        assert_eq!(hide_links("no link"), "no link");
        assert_eq!(hide_links("•https://x"), "•[link not shown]");
    }
}
