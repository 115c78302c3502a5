//! Reading a Cloud API send body back into an [`OutboundMessage`]
//! ([`OutboundMessage::from_wire`]): only the fake Cloud API needs it, to check what a client
//! really put on the wire.

use serde_json::Value;

use super::*;

impl OutboundMessage {
    /// Reads a Cloud API send body back into a message, without trusting it.
    ///
    /// The fake Cloud API uses this to check what a client really put on the wire. It accepts
    /// exactly what [`Self::to_wire`] can produce (text, reply buttons, lists, templates with
    /// the parameters modelled here); other types are rejected as not modelled. It checks
    /// structure only; call [`Self::validate`] for limits.
    ///
    /// # Errors
    /// A missing or mistyped field, named by its JSON path.
    pub fn from_wire(v: &Value) -> Result<OutboundMessage, LimitError> {
        let obj = v
            .as_object()
            .ok_or_else(|| LimitError::new("(body)", "not a JSON object"))?;
        match obj.get("messaging_product").and_then(Value::as_str) {
            Some("whatsapp") => {}
            Some(_) => return Err(LimitError::new("messaging_product", "must be \"whatsapp\"")),
            None => return Err(missing("messaging_product")),
        }
        if let Some(rt) = obj.get("recipient_type")
            && rt.as_str() != Some("individual")
        {
            return Err(LimitError::new(
                "recipient_type",
                "only \"individual\" is modelled",
            ));
        }
        let to = match (
            opt_str(v, "to", "to")?,
            opt_str(v, "recipient", "recipient")?,
        ) {
            (Some(p), None) => Recipient::Phone(p),
            (None, Some(u)) => Recipient::UserId(u),
            (Some(_), Some(_)) => {
                return Err(LimitError::new(
                    "to",
                    "both \"to\" and \"recipient\" are set",
                ));
            }
            (None, None) => return Err(missing("to")),
        };
        let reply_to = match obj.get("context") {
            Some(c) => Some(req_str(c, "message_id", "context.message_id")?),
            None => None,
        };
        let callback_data = opt_str(v, "biz_opaque_callback_data", "biz_opaque_callback_data")?;
        let kind = req_str(v, "type", "type")?;
        let body = match kind.as_str() {
            "text" => {
                let t = req_obj(v, "text", "text")?;
                OutboundBody::Text {
                    body: req_str(t, "body", "text.body")?,
                    preview_url: match t.get("preview_url") {
                        None => false,
                        Some(b) => b
                            .as_bool()
                            .ok_or_else(|| mistyped("text.preview_url", "a boolean"))?,
                    },
                }
            }
            "interactive" => interactive_from_wire(req_obj(v, "interactive", "interactive")?)?,
            "template" => template_from_wire(req_obj(v, "template", "template")?)?,
            "image" | "document" => {
                let kind = if kind == "image" {
                    OutboundMediaKind::Image
                } else {
                    OutboundMediaKind::Document
                };
                let m = req_obj(v, kind.as_str(), kind.as_str())?;
                let path = |f: &str| format!("{}.{f}", kind.as_str());
                let file = match (
                    opt_str(m, "id", &path("id"))?,
                    opt_str(m, "link", &path("link"))?,
                ) {
                    (Some(id), None) => OutboundFile::Id(id),
                    (None, Some(link)) => OutboundFile::Link(link),
                    (Some(_), Some(_)) => {
                        return Err(LimitError::new(
                            path("id"),
                            "both \"id\" and \"link\" are set",
                        ));
                    }
                    (None, None) => return Err(missing(&path("id"))),
                };
                OutboundBody::Media {
                    kind,
                    file,
                    filename: opt_str(m, "filename", &path("filename"))?,
                    caption: opt_str(m, "caption", &path("caption"))?,
                }
            }
            other => {
                return Err(LimitError::new(
                    "type",
                    format!("type \"{other}\" is not modelled by insurebot"),
                ));
            }
        };
        Ok(OutboundMessage {
            to,
            body,
            reply_to,
            callback_data,
        })
    }
}

// ---- from_wire helpers: each names the JSON path it failed on.

/// The `problem` of a [`LimitError`] from [`OutboundMessage::from_wire`] for an absent field,
/// so the fake can answer Meta's "missing parameter" code instead of "invalid parameter".
pub(crate) const MISSING_PROBLEM: &str = "required parameter is missing";

fn missing(path: &str) -> LimitError {
    LimitError::new(path, MISSING_PROBLEM)
}

fn mistyped(path: &str, want: &str) -> LimitError {
    LimitError::new(path, format!("must be {want}"))
}

fn req_str(v: &Value, key: &str, path: &str) -> Result<String, LimitError> {
    opt_str(v, key, path)?.ok_or_else(|| missing(path))
}

fn opt_str(v: &Value, key: &str, path: &str) -> Result<Option<String>, LimitError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(mistyped(path, "a string")),
    }
}

fn req_obj<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a Value, LimitError> {
    match v.get(key) {
        None | Some(Value::Null) => Err(missing(path)),
        Some(o @ Value::Object(_)) => Ok(o),
        Some(_) => Err(mistyped(path, "an object")),
    }
}

fn req_array<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a [Value], LimitError> {
    match v.get(key) {
        None | Some(Value::Null) => Err(missing(path)),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(mistyped(path, "an array")),
    }
}

/// `{"text": "..."}` objects used by interactive body and footer.
fn text_of(v: &Value, key: &str, path: &str) -> Result<Option<String>, LimitError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(o @ Value::Object(_)) => Ok(Some(req_str(o, "text", &format!("{path}.text"))?)),
        Some(_) => Err(mistyped(path, "an object")),
    }
}

fn interactive_from_wire(i: &Value) -> Result<OutboundBody, LimitError> {
    let header = match i.get("header") {
        None | Some(Value::Null) => None,
        Some(h) => {
            let kind = req_str(h, "type", "interactive.header.type")?;
            if kind != "text" {
                return Err(LimitError::new(
                    "interactive.header.type",
                    format!("header type \"{kind}\" is not modelled by insurebot"),
                ));
            }
            Some(req_str(h, "text", "interactive.header.text")?)
        }
    };
    let body =
        text_of(i, "body", "interactive.body")?.ok_or_else(|| missing("interactive.body"))?;
    let footer = text_of(i, "footer", "interactive.footer")?;
    let action = req_obj(i, "action", "interactive.action")?;
    match req_str(i, "type", "interactive.type")?.as_str() {
        "button" => {
            let mut buttons = Vec::new();
            for (n, b) in req_array(action, "buttons", "interactive.action.buttons")?
                .iter()
                .enumerate()
            {
                let p = format!("interactive.action.buttons[{n}]");
                if req_str(b, "type", &format!("{p}.type"))? != "reply" {
                    return Err(LimitError::new(format!("{p}.type"), "must be \"reply\""));
                }
                let r = req_obj(b, "reply", &format!("{p}.reply"))?;
                buttons.push(ReplyButton {
                    id: req_str(r, "id", &format!("{p}.reply.id"))?,
                    title: req_str(r, "title", &format!("{p}.reply.title"))?,
                });
            }
            Ok(OutboundBody::Buttons {
                header,
                body,
                footer,
                buttons,
            })
        }
        "list" => {
            let button_label = req_str(action, "button", "interactive.action.button")?;
            let mut sections = Vec::new();
            for (n, s) in req_array(action, "sections", "interactive.action.sections")?
                .iter()
                .enumerate()
            {
                let p = format!("interactive.action.sections[{n}]");
                let mut rows = Vec::new();
                for (m, r) in req_array(s, "rows", &format!("{p}.rows"))?
                    .iter()
                    .enumerate()
                {
                    let rp = format!("{p}.rows[{m}]");
                    rows.push(ListRow {
                        id: req_str(r, "id", &format!("{rp}.id"))?,
                        title: req_str(r, "title", &format!("{rp}.title"))?,
                        description: opt_str(r, "description", &format!("{rp}.description"))?,
                    });
                }
                sections.push(ListSection {
                    title: opt_str(s, "title", &format!("{p}.title"))?,
                    rows,
                });
            }
            Ok(OutboundBody::List {
                header,
                body,
                footer,
                button_label,
                sections,
            })
        }
        other => Err(LimitError::new(
            "interactive.type",
            format!("interactive type \"{other}\" is not modelled by insurebot"),
        )),
    }
}

fn template_from_wire(t: &Value) -> Result<OutboundBody, LimitError> {
    let name = req_str(t, "name", "template.name")?;
    let language = req_str(
        req_obj(t, "language", "template.language")?,
        "code",
        "template.language.code",
    )?;
    let mut components = Vec::new();
    if t.get("components").is_some_and(|c| !c.is_null()) {
        for (n, c) in req_array(t, "components", "template.components")?
            .iter()
            .enumerate()
        {
            components.push(component_from_wire(
                c,
                &format!("template.components[{n}]"),
            )?);
        }
    }
    Ok(OutboundBody::Template {
        name,
        language,
        components,
    })
}

fn component_from_wire(c: &Value, p: &str) -> Result<TemplateComponent, LimitError> {
    let params = |c: &Value| -> Result<Vec<TemplateParameter>, LimitError> {
        req_array(c, "parameters", &format!("{p}.parameters"))?
            .iter()
            .enumerate()
            .map(|(n, v)| parameter_from_wire(v, &format!("{p}.parameters[{n}]")))
            .collect()
    };
    match req_str(c, "type", &format!("{p}.type"))?.as_str() {
        "header" => Ok(TemplateComponent::Header {
            parameters: params(c)?,
        }),
        "body" => Ok(TemplateComponent::Body {
            parameters: params(c)?,
        }),
        "button" => {
            let index = match c.get("index") {
                Some(Value::String(s)) => s.parse::<u8>().ok(),
                Some(Value::Number(n)) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
                None => return Err(missing(&format!("{p}.index"))),
                _ => None,
            }
            .ok_or_else(|| mistyped(&format!("{p}.index"), "a button position \"0\"..\"9\""))?;
            let first = req_array(c, "parameters", &format!("{p}.parameters"))?
                .first()
                .ok_or_else(|| missing(&format!("{p}.parameters[0]")))?;
            let pp = format!("{p}.parameters[0]");
            match req_str(c, "sub_type", &format!("{p}.sub_type"))?.as_str() {
                "quick_reply" => Ok(TemplateComponent::QuickReply {
                    index,
                    payload: req_str(first, "payload", &format!("{pp}.payload"))?,
                }),
                "url" => Ok(TemplateComponent::UrlButton {
                    index,
                    text: req_str(first, "text", &format!("{pp}.text"))?,
                }),
                other => Err(LimitError::new(
                    format!("{p}.sub_type"),
                    format!("button sub_type \"{other}\" is not modelled by insurebot"),
                )),
            }
        }
        other => Err(LimitError::new(
            format!("{p}.type"),
            format!("component type \"{other}\" is not modelled by insurebot"),
        )),
    }
}

fn parameter_from_wire(v: &Value, p: &str) -> Result<TemplateParameter, LimitError> {
    let name = opt_str(v, "parameter_name", &format!("{p}.parameter_name"))?;
    let kind = req_str(v, "type", &format!("{p}.type"))?;
    match kind.as_str() {
        "text" => Ok(TemplateParameter::Text {
            name,
            text: req_str(v, "text", &format!("{p}.text"))?,
        }),
        "currency" => {
            let c = req_obj(v, "currency", &format!("{p}.currency"))?;
            Ok(TemplateParameter::Currency {
                name,
                fallback_value: req_str(
                    c,
                    "fallback_value",
                    &format!("{p}.currency.fallback_value"),
                )?,
                code: req_str(c, "code", &format!("{p}.currency.code"))?,
                amount_1000: c
                    .get("amount_1000")
                    .ok_or_else(|| missing(&format!("{p}.currency.amount_1000")))?
                    .as_i64()
                    .ok_or_else(|| mistyped(&format!("{p}.currency.amount_1000"), "an integer"))?,
            })
        }
        "date_time" => {
            let d = req_obj(v, "date_time", &format!("{p}.date_time"))?;
            Ok(TemplateParameter::DateTime {
                name,
                fallback_value: req_str(
                    d,
                    "fallback_value",
                    &format!("{p}.date_time.fallback_value"),
                )?,
            })
        }
        "image" | "video" | "document" => {
            let kind = match kind.as_str() {
                "image" => TemplateMediaKind::Image,
                "video" => TemplateMediaKind::Video,
                _ => TemplateMediaKind::Document,
            };
            let mp = format!("{p}.{}", kind.as_str());
            let m = req_obj(v, kind.as_str(), &mp)?;
            let source = match (
                opt_str(m, "link", &format!("{mp}.link"))?,
                opt_str(m, "id", &format!("{mp}.id"))?,
            ) {
                (Some(l), None) => MediaSource::Link(l),
                (None, Some(i)) => MediaSource::Id(i),
                (Some(_), Some(_)) => return Err(LimitError::new(mp, "both link and id are set")),
                (None, None) => return Err(missing(&format!("{mp}.link"))),
            };
            Ok(TemplateParameter::Media {
                kind,
                source,
                filename: opt_str(m, "filename", &format!("{mp}.filename"))?,
            })
        }
        other => Err(LimitError::new(
            format!("{p}.type"),
            format!("parameter type \"{other}\" is not modelled by insurebot"),
        )),
    }
}
