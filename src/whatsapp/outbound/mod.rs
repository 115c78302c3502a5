//! Outbound messages: the shapes the bot sends, their documented limits, and their exact wire
//! JSON (reference `whatsapp-cloud-api.md` §3.1–3.4).
//!
//! Meta rejects a whole message when one button title is a character too long (field notes,
//! pain point 10), and it does so only at send time, when the user is waiting. So every limit
//! is checked here, before anything leaves, and the same check runs in the fake Cloud API
//! (via [`OutboundMessage::from_wire`]) so tests catch payloads we would have sent wrong.
//!
//! - this file: the types, their wire JSON ([`OutboundMessage::to_wire`]);
//! - [`limits`]: [`OutboundMessage::validate`], every documented limit;
//! - [`parse`]: [`OutboundMessage::from_wire`], reading a send body back (for the fake).
//!
//! Limits count Unicode scalar values (`chars`), not bytes: "Não" is 3 characters.
//! [`LimitError`] names the field and the size, never the text, because it is logged and the
//! text may be personal data.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub mod limits;
pub mod parse;

/// Text body limit (§3.1).
pub const TEXT_BODY_MAX: usize = 4096;
/// Interactive body limit (§3.2, §3.3).
pub const INTERACTIVE_BODY_MAX: usize = 1024;
/// Interactive header (text) and footer limit.
pub const HEADER_MAX: usize = 60;
pub const FOOTER_MAX: usize = 60;
/// Reply buttons: 1 to 3 per message, titles up to 20, ids up to 256.
pub const MAX_BUTTONS: usize = 3;
pub const BUTTON_TITLE_MAX: usize = 20;
pub const BUTTON_ID_MAX: usize = 256;
/// Lists: the menu button label, sections, rows (counted across all sections).
pub const LIST_BUTTON_LABEL_MAX: usize = 20;
pub const MAX_SECTIONS: usize = 10;
pub const MAX_ROWS: usize = 10;
pub const SECTION_TITLE_MAX: usize = 24;
pub const ROW_TITLE_MAX: usize = 24;
pub const ROW_DESCRIPTION_MAX: usize = 72;
/// Row ids are shorter than button ids (200, not 256).
pub const ROW_ID_MAX: usize = 200;
/// Template text parameter: 1024 when the template has other components, 32768 if body-only.
pub const TEMPLATE_PARAM_MAX: usize = 1024;
pub const TEMPLATE_BODY_ONLY_PARAM_MAX: usize = 32_768;
/// Template button positions are `"0"`..`"9"`.
pub const MAX_TEMPLATE_BUTTON_INDEX: u8 = 9;
/// BSUID suffix length (`CC.<≤128 alnum>`, §2.1).
pub const BSUID_SUFFIX_MAX: usize = 128;
/// E.164 numbers have at most 15 digits.
pub const PHONE_DIGITS_MAX: usize = 15;
/// `biz_opaque_callback_data` limit from Meta's send-message reference (not in §3 of our doc).
pub const CALLBACK_DATA_MAX: usize = 512;
/// Media messages (Meta's media reference, issue 18): a caption, a document's file name, and
/// the size and types each kind accepts. The file name limit is ours: Meta documents none,
/// and a name longer than a phone shows helps nobody.
pub const MEDIA_CAPTION_MAX: usize = 1024;
pub const FILENAME_MAX: usize = 240;
pub const DOCUMENT_MAX_BYTES: u64 = 100 * 1024 * 1024;
pub const IMAGE_MAX_BYTES: u64 = 5 * 1024 * 1024;
/// The document types Meta accepts (media reference, "Supported media types").
pub const DOCUMENT_TYPES: &[&str] = &[
    "application/pdf",
    "text/plain",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
];
/// The image types Meta accepts.
pub const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png"];

/// A message the bot sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    pub to: Recipient,
    pub body: OutboundBody,
    /// wamid of the message to quote (`context.message_id`).
    pub reply_to: Option<String>,
    /// Echoed back in status webhooks as `biz_opaque_callback_data` (e.g. our outbox row id).
    pub callback_data: Option<String>,
}

/// Who receives a message: a phone number (`to`) or a business-scoped user id (`recipient`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    /// E.164 digits without `+` (a leading `+` is accepted).
    Phone(String),
    /// A BSUID such as `US.13491208655302741918`, for users known only by username.
    UserId(String),
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundBody {
    Text {
        body: String,
        /// Render a preview of the first URL in `body`.
        preview_url: bool,
    },
    /// Interactive reply buttons (§3.2); `header` is a text header.
    Buttons {
        header: Option<String>,
        body: String,
        footer: Option<String>,
        buttons: Vec<ReplyButton>,
    },
    /// Interactive list (§3.3); list headers can only be text.
    List {
        header: Option<String>,
        body: String,
        footer: Option<String>,
        /// The label of the button that opens the list.
        button_label: String,
        sections: Vec<ListSection>,
    },
    /// An approved template (§3.4); the only thing that may go outside the 24-hour window.
    Template {
        name: String,
        /// e.g. `en_US`, `hi`.
        language: String,
        components: Vec<TemplateComponent>,
    },
    /// A document or an image (issue 18), with an optional caption; documents carry the file
    /// name the user sees.
    Media {
        kind: OutboundMediaKind,
        file: OutboundFile,
        /// Documents only.
        filename: Option<String>,
        caption: Option<String>,
    },
}

/// What kind of file a media message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundMediaKind {
    Image,
    Document,
}

impl OutboundMediaKind {
    /// The wire `type`: `image` or `document`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundMediaKind::Image => "image",
            OutboundMediaKind::Document => "document",
        }
    }

    /// The largest file Meta accepts for this kind.
    pub fn max_bytes(self) -> u64 {
        match self {
            OutboundMediaKind::Image => IMAGE_MAX_BYTES,
            OutboundMediaKind::Document => DOCUMENT_MAX_BYTES,
        }
    }

    /// The MIME types Meta accepts for this kind.
    pub fn accepted_types(self) -> &'static [&'static str] {
        match self {
            OutboundMediaKind::Image => IMAGE_TYPES,
            OutboundMediaKind::Document => DOCUMENT_TYPES,
        }
    }
}

/// Where a media message's file is. The outbox holds `Stored` (our copy, by hash): the media
/// id Meta gives an upload expires, so it is looked up or uploaded only when the message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundFile {
    /// An uploaded file's media id.
    Id(String),
    /// A public https link Meta fetches.
    Link(String),
    /// A file in our media store, not uploaded yet: never on the wire.
    Stored {
        /// Lower-case hex SHA-256, the media store's key.
        sha256: String,
        mime_type: String,
        size: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    /// Required when the list has more than one section.
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

/// The filled-in parts of a template send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateComponent {
    /// Header variable (text, or the media of a media header).
    Header { parameters: Vec<TemplateParameter> },
    /// Body variables, in `{{1}}`, `{{2}}` order, or named.
    Body { parameters: Vec<TemplateParameter> },
    /// The payload returned when the user taps quick-reply button `index`.
    QuickReply { index: u8, payload: String },
    /// The suffix appended to the dynamic URL of URL button `index`.
    UrlButton { index: u8, text: String },
}

/// One template variable. `name` is set for templates created with named parameters
/// (`{{customer_name}}`) and left `None` for positional ones; a component cannot mix both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateParameter {
    Text {
        name: Option<String>,
        text: String,
    },
    Currency {
        name: Option<String>,
        fallback_value: String,
        /// ISO 4217, e.g. `INR`.
        code: String,
        /// The amount times 1000 (₹1,499.50 → 1_499_500).
        amount_1000: i64,
    },
    DateTime {
        name: Option<String>,
        fallback_value: String,
    },
    /// The media of a media header.
    Media {
        kind: TemplateMediaKind,
        source: MediaSource,
        /// Only for documents: the file name shown to the user.
        filename: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateMediaKind {
    Image,
    Video,
    Document,
}

impl TemplateMediaKind {
    fn as_str(self) -> &'static str {
        match self {
            TemplateMediaKind::Image => "image",
            TemplateMediaKind::Video => "video",
            TemplateMediaKind::Document => "document",
        }
    }
}

/// Where template media comes from: a public HTTPS link or an uploaded media id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaSource {
    Link(String),
    Id(String),
}

/// A documented limit that a message breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct LimitError {
    /// The offending field, e.g. `buttons[2].title`.
    pub field: String,
    /// What is wrong with it, e.g. `23 characters, the limit is 20`.
    pub problem: String,
}

impl LimitError {
    /// A broken limit: the field and what is wrong with it (never the text itself).
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        LimitError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl OutboundBody {
    /// What a person reads of a free-form body: its text and the titles of the buttons or list
    /// rows offered with it (the console's transcript, the prompt a late tap answered).
    /// `None` for a template, whose text Meta holds.
    pub fn text_and_choices(&self) -> Option<(&str, Vec<&str>)> {
        match self {
            OutboundBody::Text { body, .. } => Some((body, Vec::new())),
            OutboundBody::Buttons { body, buttons, .. } => {
                Some((body, buttons.iter().map(|b| b.title.as_str()).collect()))
            }
            OutboundBody::List { body, sections, .. } => Some((
                body,
                sections
                    .iter()
                    .flat_map(|s| s.rows.iter().map(|r| r.title.as_str()))
                    .collect(),
            )),
            OutboundBody::Template { .. } | OutboundBody::Media { .. } => None,
        }
    }

    /// The wire `type` (`text`, `interactive`, `template`, `image`, `document`), for logs and
    /// metrics.
    pub fn type_name(&self) -> &'static str {
        match self {
            OutboundBody::Text { .. } => "text",
            OutboundBody::Buttons { .. } | OutboundBody::List { .. } => "interactive",
            OutboundBody::Template { .. } => "template",
            OutboundBody::Media { kind, .. } => kind.as_str(),
        }
    }

    /// The stored file a media body still has to be uploaded from, if any.
    pub fn stored_file(&self) -> Option<(&str, &str, u64)> {
        match self {
            OutboundBody::Media {
                file:
                    OutboundFile::Stored {
                        sha256,
                        mime_type,
                        size,
                    },
                ..
            } => Some((sha256, mime_type, *size)),
            _ => None,
        }
    }

    /// This body with its stored file replaced by the media id it was uploaded as.
    #[must_use]
    pub fn with_media_id(mut self, media_id: String) -> Self {
        if let OutboundBody::Media { file, .. } = &mut self {
            *file = OutboundFile::Id(media_id);
        }
        self
    }
}

impl OutboundMessage {
    /// The exact Cloud API request body for `POST /{phone_number_id}/messages`.
    ///
    /// Does not validate; [`crate::whatsapp::client::CloudApiClient::send`] does that first.
    pub fn to_wire(&self) -> Value {
        let mut m = Map::new();
        m.insert("messaging_product".into(), json!("whatsapp"));
        m.insert("recipient_type".into(), json!("individual"));
        match &self.to {
            Recipient::Phone(p) => m.insert("to".into(), json!(p)),
            Recipient::UserId(u) => m.insert("recipient".into(), json!(u)),
        };
        if let Some(r) = &self.reply_to {
            m.insert("context".into(), json!({ "message_id": r }));
        }
        match &self.body {
            OutboundBody::Text { body, preview_url } => {
                m.insert("type".into(), json!("text"));
                m.insert(
                    "text".into(),
                    json!({ "preview_url": preview_url, "body": body }),
                );
            }
            OutboundBody::Buttons {
                header,
                body,
                footer,
                buttons,
            } => {
                let buttons: Vec<Value> = buttons
                    .iter()
                    .map(|b| json!({ "type": "reply", "reply": { "id": b.id, "title": b.title } }))
                    .collect();
                let i = interactive(
                    "button",
                    header.as_deref(),
                    body,
                    footer.as_deref(),
                    json!({ "buttons": buttons }),
                );
                m.insert("type".into(), json!("interactive"));
                m.insert("interactive".into(), i);
            }
            OutboundBody::List {
                header,
                body,
                footer,
                button_label,
                sections,
            } => {
                let sections: Vec<Value> = sections
                    .iter()
                    .map(|s| {
                        let rows: Vec<Value> = s
                            .rows
                            .iter()
                            .map(|r| {
                                let mut row = json!({ "id": r.id, "title": r.title });
                                if let Some(d) = &r.description {
                                    row["description"] = json!(d);
                                }
                                row
                            })
                            .collect();
                        let mut sec = Map::new();
                        if let Some(t) = &s.title {
                            sec.insert("title".into(), json!(t));
                        }
                        sec.insert("rows".into(), Value::Array(rows));
                        Value::Object(sec)
                    })
                    .collect();
                let i = interactive(
                    "list",
                    header.as_deref(),
                    body,
                    footer.as_deref(),
                    json!({ "button": button_label, "sections": sections }),
                );
                m.insert("type".into(), json!("interactive"));
                m.insert("interactive".into(), i);
            }
            OutboundBody::Template {
                name,
                language,
                components,
            } => {
                let mut t = json!({ "name": name, "language": { "code": language } });
                // A template without variables is sent without `components` (Meta's
                // hello_world example); an empty array would be equally accepted.
                if !components.is_empty() {
                    t["components"] = components.iter().map(component_wire).collect();
                }
                m.insert("type".into(), json!("template"));
                m.insert("template".into(), t);
            }
            OutboundBody::Media {
                kind,
                file,
                filename,
                caption,
            } => {
                let mut media = Map::new();
                match file {
                    OutboundFile::Id(id) => media.insert("id".into(), json!(id)),
                    OutboundFile::Link(link) => media.insert("link".into(), json!(link)),
                    // Not wire material: `CloudApiClient::send` refuses it before this runs.
                    OutboundFile::Stored { .. } => None,
                };
                if let Some(c) = caption {
                    media.insert("caption".into(), json!(c));
                }
                if let Some(f) = filename {
                    media.insert("filename".into(), json!(f));
                }
                m.insert("type".into(), json!(kind.as_str()));
                m.insert(kind.as_str().into(), Value::Object(media));
            }
        }
        if let Some(c) = &self.callback_data {
            m.insert("biz_opaque_callback_data".into(), json!(c));
        }
        Value::Object(m)
    }
}

/// The mark-as-read request body (§3.5); it also marks earlier messages read.
pub fn mark_read_payload(message_id: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "status": "read", "message_id": message_id })
}

fn interactive(
    kind: &str,
    header: Option<&str>,
    body: &str,
    footer: Option<&str>,
    action: Value,
) -> Value {
    let mut i = Map::new();
    i.insert("type".into(), json!(kind));
    if let Some(h) = header {
        i.insert("header".into(), json!({ "type": "text", "text": h }));
    }
    i.insert("body".into(), json!({ "text": body }));
    if let Some(f) = footer {
        i.insert("footer".into(), json!({ "text": f }));
    }
    i.insert("action".into(), action);
    Value::Object(i)
}

fn component_wire(c: &TemplateComponent) -> Value {
    match c {
        TemplateComponent::Header { parameters } => json!({
            "type": "header",
            "parameters": parameters.iter().map(parameter_wire).collect::<Vec<_>>(),
        }),
        TemplateComponent::Body { parameters } => json!({
            "type": "body",
            "parameters": parameters.iter().map(parameter_wire).collect::<Vec<_>>(),
        }),
        TemplateComponent::QuickReply { index, payload } => json!({
            "type": "button", "sub_type": "quick_reply", "index": index.to_string(),
            "parameters": [{ "type": "payload", "payload": payload }],
        }),
        TemplateComponent::UrlButton { index, text } => json!({
            "type": "button", "sub_type": "url", "index": index.to_string(),
            "parameters": [{ "type": "text", "text": text }],
        }),
    }
}

fn parameter_wire(p: &TemplateParameter) -> Value {
    let (mut v, name) = match p {
        TemplateParameter::Text { name, text } => (json!({ "type": "text", "text": text }), name),
        TemplateParameter::Currency {
            name,
            fallback_value,
            code,
            amount_1000,
        } => (
            json!({ "type": "currency", "currency": {
                "fallback_value": fallback_value, "code": code, "amount_1000": amount_1000 } }),
            name,
        ),
        TemplateParameter::DateTime {
            name,
            fallback_value,
        } => (
            json!({ "type": "date_time", "date_time": { "fallback_value": fallback_value } }),
            name,
        ),
        TemplateParameter::Media {
            kind,
            source,
            filename,
        } => {
            let mut media = match source {
                MediaSource::Link(l) => json!({ "link": l }),
                MediaSource::Id(i) => json!({ "id": i }),
            };
            if let Some(f) = filename {
                media["filename"] = json!(f);
            }
            let mut v = Map::new();
            v.insert("type".into(), json!(kind.as_str()));
            v.insert(kind.as_str().into(), media);
            return Value::Object(v);
        }
    };
    if let Some(n) = name {
        v["parameter_name"] = json!(n);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> Recipient {
        Recipient::Phone("5511999999999".into())
    }

    fn msg(body: OutboundBody) -> OutboundMessage {
        OutboundMessage {
            to: phone(),
            body,
            reply_to: None,
            callback_data: None,
        }
    }

    fn text(body: &str) -> OutboundMessage {
        msg(OutboundBody::Text {
            body: body.into(),
            preview_url: false,
        })
    }

    fn btn(id: &str, title: &str) -> ReplyButton {
        ReplyButton {
            id: id.into(),
            title: title.into(),
        }
    }

    fn buttons(bs: Vec<ReplyButton>) -> OutboundMessage {
        msg(OutboundBody::Buttons {
            header: None,
            body: "Choose".into(),
            footer: None,
            buttons: bs,
        })
    }

    fn row(id: &str, title: &str) -> ListRow {
        ListRow {
            id: id.into(),
            title: title.into(),
            description: None,
        }
    }

    fn list(sections: Vec<ListSection>) -> OutboundMessage {
        msg(OutboundBody::List {
            header: None,
            body: "Choose".into(),
            footer: None,
            button_label: "Open".into(),
            sections,
        })
    }

    fn one_section(rows: Vec<ListRow>) -> OutboundMessage {
        list(vec![ListSection { title: None, rows }])
    }

    fn template(components: Vec<TemplateComponent>) -> OutboundMessage {
        msg(OutboundBody::Template {
            name: "renovacao_apolice".into(),
            language: "pt_BR".into(),
            components,
        })
    }

    fn ptext(t: &str) -> TemplateParameter {
        TemplateParameter::Text {
            name: None,
            text: t.into(),
        }
    }

    fn named(n: &str, t: &str) -> TemplateParameter {
        TemplateParameter::Text {
            name: Some(n.into()),
            text: t.into(),
        }
    }

    /// Asserts the message fails on `field` and returns the problem.
    #[track_caller]
    fn fails_on(m: &OutboundMessage, field: &str) -> String {
        match m.validate() {
            Err(e) => {
                assert_eq!(e.field, field, "wrong field: {e}");
                e.problem
            }
            Ok(()) => panic!("expected {field} to fail"),
        }
    }

    /// `n` characters, multi-byte on purpose so a byte count would be wrong.
    fn chars(n: usize) -> String {
        "ã".repeat(n)
    }

    #[test]
    fn text_body_limit_counts_characters() {
        assert_eq!(text(&chars(4096)).validate(), Ok(()));
        assert_eq!(
            fails_on(&text(&chars(4097)), "body"),
            "4097 characters, the limit is 4096"
        );
        assert!(fails_on(&text(""), "body").starts_with("empty"));
        assert!(fails_on(&text("  \n"), "body").starts_with("empty"));
    }

    #[test]
    fn button_count_is_one_to_three() {
        assert!(fails_on(&buttons(vec![]), "buttons").starts_with("no buttons"));
        assert_eq!(buttons(vec![btn("a", "A")]).validate(), Ok(()));
        let three = vec![btn("a", "A"), btn("b", "B"), btn("c", "C")];
        assert_eq!(buttons(three.clone()).validate(), Ok(()));
        let mut four = three;
        four.push(btn("d", "D"));
        assert_eq!(
            fails_on(&buttons(four), "buttons"),
            "4 buttons, the limit is 3"
        );
    }

    #[test]
    fn button_title_and_id_limits() {
        assert_eq!(buttons(vec![btn("a", &chars(20))]).validate(), Ok(()));
        let m = buttons(vec![btn("a", "ok"), btn("b", "x"), btn("c", &chars(23))]);
        assert_eq!(
            fails_on(&m, "buttons[2].title"),
            "23 characters, the limit is 20"
        );
        assert_eq!(
            fails_on(&buttons(vec![btn("a", &chars(21))]), "buttons[0].title"),
            "21 characters, the limit is 20"
        );
        assert!(fails_on(&buttons(vec![btn("a", "")]), "buttons[0].title").starts_with("empty"));
        assert_eq!(buttons(vec![btn(&"i".repeat(256), "A")]).validate(), Ok(()));
        fails_on(&buttons(vec![btn(&"i".repeat(257), "A")]), "buttons[0].id");
        fails_on(&buttons(vec![btn("", "A")]), "buttons[0].id");
        assert_eq!(
            fails_on(&buttons(vec![btn(" a", "A")]), "buttons[0].id"),
            "has leading or trailing spaces"
        );
    }

    #[test]
    fn duplicate_button_ids_and_titles_fail() {
        let m = buttons(vec![btn("a", "Yes"), btn("a", "No")]);
        assert_eq!(fails_on(&m, "buttons[1].id"), "duplicate button id");
        let m = buttons(vec![btn("a", "Yes"), btn("b", "No"), btn("c", "Yes")]);
        assert_eq!(fails_on(&m, "buttons[2].title"), "duplicate button title");
    }

    #[test]
    fn interactive_body_header_footer_limits() {
        let with = |header: Option<String>, body: String, footer: Option<String>| {
            msg(OutboundBody::Buttons {
                header,
                body,
                footer,
                buttons: vec![btn("a", "A")],
            })
        };
        assert_eq!(
            with(Some(chars(60)), chars(1024), Some(chars(60))).validate(),
            Ok(())
        );
        fails_on(&with(Some(chars(61)), "b".into(), None), "header");
        fails_on(&with(None, chars(1025), None), "body");
        fails_on(&with(None, String::new(), None), "body");
        fails_on(&with(None, "b".into(), Some(chars(61))), "footer");
        fails_on(&with(None, "b".into(), Some(String::new())), "footer");
    }

    #[test]
    fn list_row_and_section_limits() {
        assert_eq!(
            one_section(vec![row(&"r".repeat(200), &chars(24))]).validate(),
            Ok(())
        );
        fails_on(
            &one_section(vec![row(&"r".repeat(201), "t")]),
            "sections[0].rows[0].id",
        );
        fails_on(
            &one_section(vec![row("r", &chars(25))]),
            "sections[0].rows[0].title",
        );
        let mut r = row("r", "t");
        r.description = Some(chars(72));
        assert_eq!(one_section(vec![r.clone()]).validate(), Ok(()));
        r.description = Some(chars(73));
        fails_on(&one_section(vec![r]), "sections[0].rows[0].description");
        fails_on(&one_section(vec![]), "sections[0].rows");
        fails_on(&list(vec![]), "sections");
        let s = |t: &str, rows| ListSection {
            title: Some(t.into()),
            rows,
        };
        assert_eq!(
            list(vec![s(&chars(24), vec![row("r", "t")])]).validate(),
            Ok(())
        );
        fails_on(
            &list(vec![s(&chars(25), vec![row("r", "t")])]),
            "sections[0].title",
        );
    }

    #[test]
    fn list_button_label_limit() {
        let label = |l: String| {
            msg(OutboundBody::List {
                header: Some("Policies".into()),
                body: "Choose".into(),
                footer: None,
                button_label: l,
                sections: vec![ListSection {
                    title: None,
                    rows: vec![row("r", "t")],
                }],
            })
        };
        assert_eq!(label(chars(20)).validate(), Ok(()));
        fails_on(&label(chars(21)), "button_label");
        fails_on(&label(String::new()), "button_label");
    }

    #[test]
    fn ten_rows_across_sections_ok_eleven_fail() {
        let rows =
            |prefix: &str, n: usize| (0..n).map(|i| row(&format!("{prefix}{i}"), "t")).collect();
        let sec = |t: &str, rows| ListSection {
            title: Some(t.into()),
            rows,
        };
        assert_eq!(
            list(vec![sec("A", rows("a", 5)), sec("B", rows("b", 5))]).validate(),
            Ok(())
        );
        let m = list(vec![sec("A", rows("a", 6)), sec("B", rows("b", 5))]);
        assert_eq!(
            fails_on(&m, "sections"),
            "11 rows across all sections, the limit is 10"
        );
        // 11 sections also fail, even though rows would be counted next.
        let many: Vec<_> = (0..11)
            .map(|i| sec(&format!("S{i}"), rows(&format!("s{i}-"), 1)))
            .collect();
        assert_eq!(
            fails_on(&list(many), "sections"),
            "11 sections, the limit is 10"
        );
    }

    #[test]
    fn multi_section_lists_need_titles() {
        let m = list(vec![
            ListSection {
                title: Some("Motor".into()),
                rows: vec![row("a", "t")],
            },
            ListSection {
                title: None,
                rows: vec![row("b", "t")],
            },
        ]);
        assert_eq!(
            fails_on(&m, "sections[1].title"),
            "required when a list has more than one section"
        );
        // A single untitled section is fine.
        assert_eq!(one_section(vec![row("a", "t")]).validate(), Ok(()));
    }

    #[test]
    fn duplicate_row_ids_across_sections_fail() {
        let m = list(vec![
            ListSection {
                title: Some("A".into()),
                rows: vec![row("x", "t")],
            },
            ListSection {
                title: Some("B".into()),
                rows: vec![row("x", "u")],
            },
        ]);
        assert_eq!(fails_on(&m, "sections[1].rows[0].id"), "duplicate row id");
    }

    #[test]
    fn recipient_and_envelope_limits() {
        let mut m = text("hi");
        m.to = Recipient::Phone("+919812345678".into());
        assert_eq!(m.validate(), Ok(()));
        m.to = Recipient::Phone("98123 45678".into());
        let problem = fails_on(&m, "to");
        assert!(
            !problem.contains("98123"),
            "the number leaked into the error"
        );
        m.to = Recipient::Phone("1234567890123456".into());
        assert_eq!(fails_on(&m, "to"), "16 digits, the limit is 15");
        m.to = Recipient::Phone(String::new());
        fails_on(&m, "to");
        for ok in [
            "US.13491208655302741918",
            "IN.ENT.abc123",
            &format!("US.{}", "a".repeat(128)),
        ] {
            m.to = Recipient::UserId(ok.into());
            assert_eq!(m.validate(), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "13491208655302741918",
            "us.123",
            "US.",
            "US.12 3",
            &format!("US.{}", "a".repeat(129)),
        ] {
            m.to = Recipient::UserId(bad.into());
            fails_on(&m, "recipient");
        }
        let mut m = text("hi");
        m.callback_data = Some("c".repeat(512));
        assert_eq!(m.validate(), Ok(()));
        m.callback_data = Some("c".repeat(513));
        fails_on(&m, "callback_data");
        m.callback_data = None;
        m.reply_to = Some(String::new());
        fails_on(&m, "reply_to");
    }

    #[test]
    fn template_limits() {
        let ok = template(vec![
            TemplateComponent::Header {
                parameters: vec![ptext("Maria")],
            },
            TemplateComponent::Body {
                parameters: vec![ptext(&chars(1024))],
            },
            TemplateComponent::QuickReply {
                index: 0,
                payload: "renew".into(),
            },
            TemplateComponent::UrlButton {
                index: 9,
                text: "AUTO-1".into(),
            },
        ]);
        assert_eq!(ok.validate(), Ok(()));
        let too_long = template(vec![
            TemplateComponent::Header { parameters: vec![] },
            TemplateComponent::Body {
                parameters: vec![ptext(&chars(1025))],
            },
        ]);
        assert_eq!(
            fails_on(&too_long, "components[1].parameters[0].text"),
            "1025 characters, the limit is 1024"
        );
        // Body-only templates allow up to 32768.
        let body_only = |n| {
            template(vec![TemplateComponent::Body {
                parameters: vec![ptext(&"x".repeat(n))],
            }])
        };
        assert_eq!(body_only(32_768).validate(), Ok(()));
        fails_on(&body_only(32_769), "components[0].parameters[0].text");
        fails_on(&body_only(0), "components[0].parameters[0].text");

        let btn = |index| TemplateComponent::QuickReply {
            index,
            payload: "p".into(),
        };
        fails_on(&template(vec![btn(10)]), "components[0].index");
        assert_eq!(
            fails_on(&template(vec![btn(1), btn(1)]), "components[1].index"),
            "duplicate button position"
        );
        let empty_payload = TemplateComponent::QuickReply {
            index: 0,
            payload: String::new(),
        };
        fails_on(&template(vec![empty_payload]), "components[0].payload");
        let body = |p| TemplateComponent::Body { parameters: p };
        fails_on(&template(vec![body(vec![]), body(vec![])]), "components[1]");

        let mut m = template(vec![]);
        if let OutboundBody::Template { name, .. } = &mut m.body {
            name.clear();
        }
        fails_on(&m, "name");
    }

    #[test]
    fn template_named_parameters() {
        let ok = template(vec![TemplateComponent::Body {
            parameters: vec![
                named("customer_name", "Maria"),
                named("policy_no2", "AUTO-1"),
            ],
        }]);
        assert_eq!(ok.validate(), Ok(()));
        let mixed = template(vec![TemplateComponent::Body {
            parameters: vec![named("customer_name", "Maria"), ptext("AUTO-1")],
        }]);
        assert_eq!(
            fails_on(&mixed, "components[0].parameters[1].name"),
            "mixes named and positional parameters in one component"
        );
        let bad_name = template(vec![TemplateComponent::Body {
            parameters: vec![named("Customer-Name", "Maria")],
        }]);
        fails_on(&bad_name, "components[0].parameters[0].name");
        let dup = template(vec![TemplateComponent::Body {
            parameters: vec![named("a", "1"), named("a", "2")],
        }]);
        assert_eq!(
            fails_on(&dup, "components[0].parameters[1].name"),
            "duplicate parameter name"
        );
    }

    #[test]
    fn template_media_parameters_only_in_header() {
        let doc = TemplateParameter::Media {
            kind: TemplateMediaKind::Document,
            source: MediaSource::Link("https://example.com/apolice.pdf".into()),
            filename: Some("apolice.pdf".into()),
        };
        let in_body = template(vec![TemplateComponent::Body {
            parameters: vec![doc.clone()],
        }]);
        fails_on(&in_body, "components[0].parameters[0]");
        let image_with_name = TemplateParameter::Media {
            kind: TemplateMediaKind::Image,
            source: MediaSource::Id("123".into()),
            filename: Some("x.jpg".into()),
        };
        let m = template(vec![TemplateComponent::Header {
            parameters: vec![image_with_name],
        }]);
        fails_on(&m, "components[0].parameters[0].filename");
    }

    #[test]
    fn text_wire_matches_reference() {
        let mut m = text("Olá! Sua apólice 123 foi renovada.");
        assert_eq!(
            m.to_wire(),
            json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"5511999999999","type":"text",
                   "text":{"preview_url":false,"body":"Olá! Sua apólice 123 foi renovada."}})
        );
        m.reply_to = Some("wamid.ABC".into());
        m.callback_data = Some("outbox:42".into());
        let w = m.to_wire();
        assert_eq!(w["context"], json!({"message_id": "wamid.ABC"}));
        assert_eq!(w["biz_opaque_callback_data"], "outbox:42");
    }

    #[test]
    fn buttons_wire_matches_reference() {
        let m = msg(OutboundBody::Buttons {
            header: Some("Sinistro #4711".into()),
            body: "Deseja falar com um atendente?".into(),
            footer: Some("Seguradora X".into()),
            buttons: vec![btn("claim:4711:agent", "Sim"), btn("claim:4711:no", "Não")],
        });
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(
            m.to_wire(),
            json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"5511999999999","type":"interactive",
             "interactive":{"type":"button",
               "header":{"type":"text","text":"Sinistro #4711"},
               "body":{"text":"Deseja falar com um atendente?"},
               "footer":{"text":"Seguradora X"},
               "action":{"buttons":[
                 {"type":"reply","reply":{"id":"claim:4711:agent","title":"Sim"}},
                 {"type":"reply","reply":{"id":"claim:4711:no","title":"Não"}}]}}})
        );
    }

    #[test]
    fn list_wire_matches_reference() {
        let m = msg(OutboundBody::List {
            header: Some("Minhas apólices".into()),
            body: "Escolha a apólice:".into(),
            footer: Some("Seguradora X".into()),
            button_label: "Ver apólices".into(),
            sections: vec![ListSection {
                title: Some("Auto".into()),
                rows: vec![ListRow {
                    id: "policy:AUTO-1".into(),
                    title: "Civic 2020".into(),
                    description: Some("Vigência até 10/2026".into()),
                }],
            }],
        });
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(
            m.to_wire(),
            json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"5511999999999","type":"interactive",
             "interactive":{"type":"list",
               "header":{"type":"text","text":"Minhas apólices"},
               "body":{"text":"Escolha a apólice:"},
               "footer":{"text":"Seguradora X"},
               "action":{"button":"Ver apólices",
                 "sections":[{"title":"Auto","rows":[
                    {"id":"policy:AUTO-1","title":"Civic 2020","description":"Vigência até 10/2026"}]}]}}})
        );
    }

    fn reference_template() -> OutboundMessage {
        template(vec![
            TemplateComponent::Header {
                parameters: vec![TemplateParameter::Media {
                    kind: TemplateMediaKind::Document,
                    source: MediaSource::Link("https://example.com/apolice.pdf".into()),
                    filename: Some("apolice.pdf".into()),
                }],
            },
            TemplateComponent::Body {
                parameters: vec![ptext("Maria"), ptext("AUTO-1")],
            },
            TemplateComponent::QuickReply {
                index: 0,
                payload: "renew:AUTO-1".into(),
            },
            TemplateComponent::UrlButton {
                index: 1,
                text: "AUTO-1".into(),
            },
        ])
    }

    #[test]
    fn template_wire_matches_reference() {
        let m = reference_template();
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(
            m.to_wire(),
            json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"5511999999999","type":"template",
             "template":{"name":"renovacao_apolice","language":{"code":"pt_BR"},
               "components":[
                 {"type":"header","parameters":[{"type":"document","document":{"link":"https://example.com/apolice.pdf","filename":"apolice.pdf"}}]},
                 {"type":"body","parameters":[{"type":"text","text":"Maria"},{"type":"text","text":"AUTO-1"}]},
                 {"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload":"renew:AUTO-1"}]},
                 {"type":"button","sub_type":"url","index":"1","parameters":[{"type":"text","text":"AUTO-1"}]}]}})
        );
    }

    #[test]
    fn template_named_currency_and_date_wire() {
        let m = template(vec![TemplateComponent::Body {
            parameters: vec![
                named("customer_name", "Maria"),
                TemplateParameter::Currency {
                    name: Some("amount".into()),
                    fallback_value: "₹1,499.50".into(),
                    code: "INR".into(),
                    amount_1000: 1_499_500,
                },
                TemplateParameter::DateTime {
                    name: Some("due_date".into()),
                    fallback_value: "10 June 2026".into(),
                },
            ],
        }]);
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(
            m.to_wire()["template"]["components"][0]["parameters"],
            json!([
                {"type":"text","text":"Maria","parameter_name":"customer_name"},
                {"type":"currency","currency":{"fallback_value":"₹1,499.50","code":"INR","amount_1000":1_499_500},"parameter_name":"amount"},
                {"type":"date_time","date_time":{"fallback_value":"10 June 2026"},"parameter_name":"due_date"}
            ])
        );
        // No components: the key is omitted.
        let bare = template(vec![]);
        assert_eq!(
            bare.to_wire()["template"],
            json!({"name":"renovacao_apolice","language":{"code":"pt_BR"}})
        );
    }

    #[test]
    fn bsuid_recipient_uses_recipient_field() {
        let mut m = text("hi");
        m.to = Recipient::UserId("US.13491208655302741918".into());
        let w = m.to_wire();
        assert_eq!(
            w,
            json!({"messaging_product":"whatsapp","recipient_type":"individual",
                   "recipient":"US.13491208655302741918","type":"text",
                   "text":{"preview_url":false,"body":"hi"}})
        );
        assert!(w.get("to").is_none());
    }

    #[test]
    fn mark_read_payload_matches_reference() {
        assert_eq!(
            mark_read_payload("wamid.HBgL"),
            json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.HBgL"})
        );
    }

    #[test]
    fn from_wire_round_trips_every_body() {
        let mut with_extras = text("hi");
        with_extras.reply_to = Some("wamid.X".into());
        with_extras.callback_data = Some("cb".into());
        with_extras.to = Recipient::UserId("US.1".into());
        let all = [
            with_extras,
            buttons(vec![btn("a", "A"), btn("b", "B")]),
            list(vec![
                ListSection {
                    title: Some("S".into()),
                    rows: vec![ListRow {
                        id: "r".into(),
                        title: "t".into(),
                        description: Some("d".into()),
                    }],
                },
                ListSection {
                    title: Some("T".into()),
                    rows: vec![row("q", "u")],
                },
            ]),
            reference_template(),
            template(vec![]),
            template(vec![TemplateComponent::Body {
                parameters: vec![TemplateParameter::Currency {
                    name: None,
                    fallback_value: "f".into(),
                    code: "INR".into(),
                    amount_1000: 5,
                }],
            }]),
        ];
        for m in all {
            assert_eq!(OutboundMessage::from_wire(&m.to_wire()), Ok(m.clone()));
        }
    }

    #[test]
    fn from_wire_names_what_is_missing_or_unmodelled() {
        let field = |v: Value| OutboundMessage::from_wire(&v).unwrap_err().field;
        assert_eq!(
            field(json!({"to":"1","type":"text","text":{"body":"x"}})),
            "messaging_product"
        );
        assert_eq!(
            field(json!({"messaging_product":"whatsapp","type":"text","text":{"body":"x"}})),
            "to"
        );
        assert_eq!(
            field(
                json!({"messaging_product":"whatsapp","to":"1","recipient":"US.1","type":"text","text":{"body":"x"}})
            ),
            "to"
        );
        assert_eq!(
            field(json!({"messaging_product":"whatsapp","to":"1","type":"text","text":{}})),
            "text.body"
        );
        assert_eq!(
            field(json!({"messaging_product":"whatsapp","to":"1","type":"text","text":{"body":5}})),
            "text.body"
        );
        assert_eq!(
            field(json!({"messaging_product":"whatsapp","to":"1","type":"sticker"})),
            "type"
        );
        assert_eq!(
            field(
                json!({"messaging_product":"whatsapp","to":"1","type":"interactive",
                "interactive":{"type":"button","body":{"text":"b"},"action":{"buttons":[{"type":"reply","reply":{"id":"a"}}]}}})
            ),
            "interactive.action.buttons[0].reply.title"
        );
        assert_eq!(
            field(
                json!({"messaging_product":"whatsapp","to":"1","type":"template","template":{"name":"n"}})
            ),
            "template.language"
        );
        assert_eq!(field(json!([1])), "(body)");
    }

    fn document(
        file: OutboundFile,
        filename: Option<&str>,
        caption: Option<&str>,
    ) -> OutboundMessage {
        msg(OutboundBody::Media {
            kind: OutboundMediaKind::Document,
            file,
            filename: filename.map(str::to_owned),
            caption: caption.map(str::to_owned),
        })
    }

    fn stored(mime_type: &str, size: u64) -> OutboundFile {
        OutboundFile::Stored {
            sha256: "ab".repeat(32),
            mime_type: mime_type.into(),
            size,
        }
    }

    #[test]
    fn a_document_goes_on_the_wire_with_its_file_name_and_caption_and_reads_back() {
        let m = document(
            OutboundFile::Id("1234".into()),
            Some("LIC1.pdf"),
            Some("Policy schedule"),
        );
        assert_eq!(m.validate(), Ok(()));
        let wire = m.to_wire();
        assert_eq!(wire["type"], "document");
        assert_eq!(
            wire["document"],
            json!({ "id": "1234", "filename": "LIC1.pdf", "caption": "Policy schedule" })
        );
        assert_eq!(OutboundMessage::from_wire(&wire), Ok(m));
    }

    #[test]
    fn media_limits_are_checked_before_sending_and_name_the_field() {
        let ok = document(stored("application/pdf", 1000), Some("a.pdf"), None);
        assert_eq!(ok.validate(), Ok(()));
        let caption = "x".repeat(MEDIA_CAPTION_MAX + 1);
        assert_eq!(
            fails_on(
                &document(stored("application/pdf", 1), None, Some(&caption)),
                "document.caption"
            ),
            "1025 characters, the limit is 1024"
        );
        fails_on(
            &document(stored("application/pdf", 1), Some("../etc/passwd"), None),
            "document.filename",
        );
        fails_on(
            &document(
                stored("application/pdf", 1),
                Some(&"a".repeat(FILENAME_MAX + 1)),
                None,
            ),
            "document.filename",
        );
        fails_on(
            &document(stored("application/pdf", 1), Some(" "), None),
            "document.filename",
        );
        assert_eq!(
            fails_on(
                &document(
                    stored("application/pdf", DOCUMENT_MAX_BYTES + 1),
                    None,
                    None
                ),
                "document.size"
            ),
            "104857601 bytes, the limit is 104857600 bytes (100 MB)"
        );
        fails_on(
            &document(stored("application/pdf", 0), None, None),
            "document.size",
        );
        assert!(
            fails_on(
                &document(stored("application/x-msdownload", 10), None, None),
                "document.type"
            )
            .contains("accepted: application/pdf")
        );
        let image = msg(OutboundBody::Media {
            kind: OutboundMediaKind::Image,
            file: stored("image/png", IMAGE_MAX_BYTES + 1),
            filename: None,
            caption: None,
        });
        fails_on(&image, "image.size");
        let named_image = msg(OutboundBody::Media {
            kind: OutboundMediaKind::Image,
            file: stored("image/png", 10),
            filename: Some("a.png".into()),
            caption: None,
        });
        fails_on(&named_image, "image.filename");
        fails_on(
            &document(OutboundFile::Id(" ".into()), None, None),
            "document.id",
        );
    }
}
