//! The documented limits of §3.1–3.4, checked before anything leaves (and by the fake Cloud
//! API on what arrives): [`OutboundMessage::validate`] and its checks per field.

use std::collections::HashSet;

use super::*;

type Check = Result<(), LimitError>;

/// A required text of 1 to `max` characters (blank counts as empty).
fn required(field: &str, value: &str, max: usize) -> Check {
    if value.trim().is_empty() {
        return Err(LimitError::new(
            field,
            format!("empty, must have 1 to {max} characters"),
        ));
    }
    at_most(field, value, max)
}

/// An optional text: when present it must be a non-empty text within `max`.
fn optional(field: &str, value: Option<&str>, max: usize) -> Check {
    value.map_or(Ok(()), |v| required(field, v, max))
}

fn at_most(field: &str, value: &str, max: usize) -> Check {
    let n = value.chars().count();
    if n > max {
        return Err(LimitError::new(
            field,
            format!("{n} characters, the limit is {max}"),
        ));
    }
    Ok(())
}

impl OutboundMessage {
    /// Checks every documented limit of §3.1–3.4 (and the recipient's shape).
    ///
    /// # Errors
    /// The first limit broken, in field order.
    pub fn validate(&self) -> Result<(), LimitError> {
        match &self.to {
            Recipient::Phone(p) => validate_phone(p)?,
            Recipient::UserId(u) => validate_bsuid(u)?,
        }
        if self.reply_to.as_ref().is_some_and(|r| r.trim().is_empty()) {
            return Err(LimitError::new("reply_to", "empty message id"));
        }
        if let Some(c) = &self.callback_data {
            at_most("callback_data", c, CALLBACK_DATA_MAX)?;
        }
        match &self.body {
            OutboundBody::Text { body, .. } => required("body", body, TEXT_BODY_MAX),
            OutboundBody::Buttons {
                header,
                body,
                footer,
                buttons,
            } => validate_buttons(header.as_deref(), body, footer.as_deref(), buttons),
            OutboundBody::List {
                header,
                body,
                footer,
                button_label,
                sections,
            } => validate_list(
                header.as_deref(),
                body,
                footer.as_deref(),
                button_label,
                sections,
            ),
            OutboundBody::Template {
                name,
                language,
                components,
            } => validate_template(name, language, components),
            OutboundBody::Media {
                kind,
                file,
                filename,
                caption,
            } => validate_media(*kind, file, filename.as_deref(), caption.as_deref()),
        }
    }
}

/// A file an agent or the insurer source offers for sending, checked before it is stored or
/// queued: the type and size `kind` accepts.
///
/// # Errors
/// The type or size that Meta would refuse, in words.
pub fn validate_file(kind: OutboundMediaKind, mime_type: &str, size: u64) -> Check {
    let name = kind.as_str();
    if !kind.accepted_types().contains(&mime_type) {
        return Err(LimitError::new(
            format!("{name}.type"),
            format!(
                "{mime_type} cannot be sent as {} {name}; accepted: {}",
                if kind == OutboundMediaKind::Image {
                    "an"
                } else {
                    "a"
                },
                kind.accepted_types().join(", ")
            ),
        ));
    }
    if size == 0 {
        return Err(LimitError::new(format!("{name}.size"), "the file is empty"));
    }
    let max = kind.max_bytes();
    if size > max {
        return Err(LimitError::new(
            format!("{name}.size"),
            format!(
                "{size} bytes, the limit is {max} bytes ({} MB)",
                max / (1024 * 1024)
            ),
        ));
    }
    Ok(())
}

/// A document's file name: shown to the user and used to save the file, so no path and no
/// control characters.
///
/// # Errors
/// An empty or too long name, or one with `/`, `\\` or control characters.
pub fn validate_filename(field: &str, name: &str) -> Check {
    required(field, name, FILENAME_MAX)?;
    if name
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(LimitError::new(
            field,
            "a file name cannot contain /, \\ or control characters",
        ));
    }
    Ok(())
}

fn validate_media(
    kind: OutboundMediaKind,
    file: &OutboundFile,
    filename: Option<&str>,
    caption: Option<&str>,
) -> Check {
    let name = kind.as_str();
    match file {
        OutboundFile::Id(s) | OutboundFile::Link(s) if s.trim().is_empty() => {
            return Err(LimitError::new(
                format!("{name}.id"),
                "empty media link or id",
            ));
        }
        OutboundFile::Id(_) | OutboundFile::Link(_) => {}
        OutboundFile::Stored {
            sha256,
            mime_type,
            size,
        } => {
            let hex = sha256.len() == 64
                && sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                return Err(LimitError::new(
                    format!("{name}.sha256"),
                    "not a lower-case hex SHA-256",
                ));
            }
            validate_file(kind, mime_type, *size)?;
        }
    }
    optional(&format!("{name}.caption"), caption, MEDIA_CAPTION_MAX)?;
    match (kind, filename) {
        (OutboundMediaKind::Document, Some(f)) => {
            validate_filename(&format!("{name}.filename"), f)?
        }
        (OutboundMediaKind::Image, Some(_)) => {
            return Err(LimitError::new(
                "image.filename",
                "only documents have a file name",
            ));
        }
        (_, None) => {}
    }
    Ok(())
}

fn validate_phone(p: &str) -> Check {
    let digits = p.strip_prefix('+').unwrap_or(p);
    if digits.is_empty() {
        return Err(LimitError::new("to", "empty phone number"));
    }
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        // Never echo the number: it is personal data and this error is logged.
        return Err(LimitError::new(
            "to",
            "a phone number must be digits only (E.164 without +)",
        ));
    }
    if digits.len() > PHONE_DIGITS_MAX {
        return Err(LimitError::new(
            "to",
            format!("{} digits, the limit is {PHONE_DIGITS_MAX}", digits.len()),
        ));
    }
    Ok(())
}

/// `CC.<1..128 alnum>`, or a parent id `CC.ENT.<…>` (§2.1).
fn validate_bsuid(u: &str) -> Check {
    let bad = || {
        LimitError::new(
            "recipient",
            "not a business-scoped user id (CC.<1 to 128 letters or digits>)",
        )
    };
    let (cc, rest) = u.split_once('.').ok_or_else(bad)?;
    let suffix = rest.strip_prefix("ENT.").unwrap_or(rest);
    let ok = cc.len() == 2
        && cc.chars().all(|c| c.is_ascii_uppercase())
        && !suffix.is_empty()
        && suffix.len() <= BSUID_SUFFIX_MAX
        && suffix.chars().all(|c| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(bad()) }
}

fn validate_buttons(
    header: Option<&str>,
    body: &str,
    footer: Option<&str>,
    buttons: &[ReplyButton],
) -> Check {
    optional("header", header, HEADER_MAX)?;
    required("body", body, INTERACTIVE_BODY_MAX)?;
    optional("footer", footer, FOOTER_MAX)?;
    if buttons.is_empty() {
        return Err(LimitError::new(
            "buttons",
            format!("no buttons, need 1 to {MAX_BUTTONS}"),
        ));
    }
    if buttons.len() > MAX_BUTTONS {
        return Err(LimitError::new(
            "buttons",
            format!("{} buttons, the limit is {MAX_BUTTONS}", buttons.len()),
        ));
    }
    let mut ids = HashSet::new();
    let mut titles = HashSet::new();
    for (i, b) in buttons.iter().enumerate() {
        let f = |part: &str| format!("buttons[{i}].{part}");
        required(&f("id"), &b.id, BUTTON_ID_MAX)?;
        if b.id.trim() != b.id {
            return Err(LimitError::new(f("id"), "has leading or trailing spaces"));
        }
        required(&f("title"), &b.title, BUTTON_TITLE_MAX)?;
        if !ids.insert(b.id.as_str()) {
            return Err(LimitError::new(f("id"), "duplicate button id"));
        }
        if !titles.insert(b.title.as_str()) {
            return Err(LimitError::new(f("title"), "duplicate button title"));
        }
    }
    Ok(())
}

fn validate_list(
    header: Option<&str>,
    body: &str,
    footer: Option<&str>,
    button_label: &str,
    sections: &[ListSection],
) -> Check {
    optional("header", header, HEADER_MAX)?;
    required("body", body, INTERACTIVE_BODY_MAX)?;
    optional("footer", footer, FOOTER_MAX)?;
    required("button_label", button_label, LIST_BUTTON_LABEL_MAX)?;
    if sections.is_empty() {
        return Err(LimitError::new(
            "sections",
            format!("no sections, need 1 to {MAX_SECTIONS}"),
        ));
    }
    if sections.len() > MAX_SECTIONS {
        return Err(LimitError::new(
            "sections",
            format!("{} sections, the limit is {MAX_SECTIONS}", sections.len()),
        ));
    }
    let total: usize = sections.iter().map(|s| s.rows.len()).sum();
    if total > MAX_ROWS {
        return Err(LimitError::new(
            "sections",
            format!("{total} rows across all sections, the limit is {MAX_ROWS}"),
        ));
    }
    // Not listed in §3.3, but the reply carries only the row id, so a duplicate would make
    // the user's choice ambiguous.
    let mut ids = HashSet::new();
    for (si, s) in sections.iter().enumerate() {
        let sf = format!("sections[{si}]");
        match &s.title {
            Some(t) => required(&format!("{sf}.title"), t, SECTION_TITLE_MAX)?,
            None if sections.len() > 1 => {
                return Err(LimitError::new(
                    format!("{sf}.title"),
                    "required when a list has more than one section",
                ));
            }
            None => {}
        }
        if s.rows.is_empty() {
            return Err(LimitError::new(
                format!("{sf}.rows"),
                "no rows, a section needs at least 1",
            ));
        }
        for (ri, r) in s.rows.iter().enumerate() {
            let f = |part: &str| format!("{sf}.rows[{ri}].{part}");
            required(&f("id"), &r.id, ROW_ID_MAX)?;
            required(&f("title"), &r.title, ROW_TITLE_MAX)?;
            optional(
                &f("description"),
                r.description.as_deref(),
                ROW_DESCRIPTION_MAX,
            )?;
            if !ids.insert(r.id.as_str()) {
                return Err(LimitError::new(f("id"), "duplicate row id"));
            }
        }
    }
    Ok(())
}

fn validate_template(name: &str, language: &str, components: &[TemplateComponent]) -> Check {
    if name.trim().is_empty() {
        return Err(LimitError::new("name", "empty template name"));
    }
    if language.trim().is_empty() {
        return Err(LimitError::new("language", "empty language code"));
    }
    let body_only = matches!(components, [TemplateComponent::Body { .. }]);
    let text_max = if body_only {
        TEMPLATE_BODY_ONLY_PARAM_MAX
    } else {
        TEMPLATE_PARAM_MAX
    };
    let (mut headers, mut bodies) = (0, 0);
    let mut button_indexes = HashSet::new();
    for (ci, c) in components.iter().enumerate() {
        let cf = format!("components[{ci}]");
        match c {
            TemplateComponent::Header { parameters } => {
                headers += 1;
                if headers > 1 {
                    return Err(LimitError::new(cf, "more than one header component"));
                }
                validate_parameters(&cf, parameters, text_max, true)?;
            }
            TemplateComponent::Body { parameters } => {
                bodies += 1;
                if bodies > 1 {
                    return Err(LimitError::new(cf, "more than one body component"));
                }
                validate_parameters(&cf, parameters, text_max, false)?;
            }
            TemplateComponent::QuickReply { index, payload } => {
                button_index(&cf, *index, &mut button_indexes)?;
                if payload.is_empty() {
                    return Err(LimitError::new(format!("{cf}.payload"), "empty payload"));
                }
            }
            TemplateComponent::UrlButton { index, text } => {
                button_index(&cf, *index, &mut button_indexes)?;
                if text.trim().is_empty() {
                    return Err(LimitError::new(format!("{cf}.text"), "empty URL suffix"));
                }
            }
        }
    }
    Ok(())
}

fn button_index(cf: &str, index: u8, seen: &mut HashSet<u8>) -> Check {
    if index > MAX_TEMPLATE_BUTTON_INDEX {
        return Err(LimitError::new(
            format!("{cf}.index"),
            format!(
                "{index} is out of range, button positions are 0 to {MAX_TEMPLATE_BUTTON_INDEX}"
            ),
        ));
    }
    if !seen.insert(index) {
        return Err(LimitError::new(
            format!("{cf}.index"),
            "duplicate button position",
        ));
    }
    Ok(())
}

fn validate_parameters(
    cf: &str,
    params: &[TemplateParameter],
    text_max: usize,
    header: bool,
) -> Check {
    let mut style: Option<bool> = None; // Some(true) = named
    let mut names = HashSet::new();
    for (pi, p) in params.iter().enumerate() {
        let pf = format!("{cf}.parameters[{pi}]");
        let name = match p {
            TemplateParameter::Text { name, text } => {
                required(&format!("{pf}.text"), text, text_max)?;
                name
            }
            TemplateParameter::Currency {
                name,
                fallback_value,
                code,
                ..
            } => {
                required(&format!("{pf}.fallback_value"), fallback_value, text_max)?;
                if code.len() != 3 || !code.chars().all(|c| c.is_ascii_uppercase()) {
                    return Err(LimitError::new(
                        format!("{pf}.code"),
                        "not an ISO 4217 code like INR",
                    ));
                }
                name
            }
            TemplateParameter::DateTime {
                name,
                fallback_value,
            } => {
                required(&format!("{pf}.fallback_value"), fallback_value, text_max)?;
                name
            }
            TemplateParameter::Media {
                kind,
                source,
                filename,
            } => {
                if !header {
                    return Err(LimitError::new(pf, "media parameters belong in the header"));
                }
                let (MediaSource::Link(s) | MediaSource::Id(s)) = source;
                if s.trim().is_empty() {
                    return Err(LimitError::new(
                        format!("{pf}.source"),
                        "empty media link or id",
                    ));
                }
                if filename.is_some() && *kind != TemplateMediaKind::Document {
                    return Err(LimitError::new(
                        format!("{pf}.filename"),
                        "only documents have a file name",
                    ));
                }
                continue;
            }
        };
        let named = name.is_some();
        if *style.get_or_insert(named) != named {
            return Err(LimitError::new(
                format!("{pf}.name"),
                "mixes named and positional parameters in one component",
            ));
        }
        if let Some(n) = name {
            // §3.4 says lowercase a–z and `_`; digits are allowed too so that an approved
            // template is never refused here (Meta remains the judge of the name).
            let ok = !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(LimitError::new(
                    format!("{pf}.name"),
                    "parameter names use lowercase letters, digits and _",
                ));
            }
            if !names.insert(n.as_str()) {
                return Err(LimitError::new(
                    format!("{pf}.name"),
                    "duplicate parameter name",
                ));
            }
        }
    }
    Ok(())
}
