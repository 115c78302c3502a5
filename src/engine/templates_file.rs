//! The template registry file (`flows/templates/templates.yaml`): its format and its checks.
//! The flow linter reads it to check every `template:` fallback, and the messaging layer seeds
//! the `message_templates` table from it ([`crate::messaging::templates`]); both read it
//! through here, so the engine stays pure of the database.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The only status that may be sent.
pub const APPROVED: &str = "APPROVED";

/// A problem with the registry file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read template registry {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template registry {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("template registry {path}: template '{name}': {problem}")]
    Invalid {
        path: PathBuf,
        name: String,
        problem: String,
    },
}

/// Template categories (reference §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Marketing,
    Utility,
    Authentication,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Marketing => "MARKETING",
            Category::Utility => "UTILITY",
            Category::Authentication => "AUTHENTICATION",
        }
    }
}

/// How a template's body variables are written: `{{1}}` or `{{policy_number}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParamFormat {
    #[default]
    Positional,
    Named,
}

impl ParamFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamFormat::Positional => "POSITIONAL",
            ParamFormat::Named => "NAMED",
        }
    }
}

/// A template button. Quick replies with a `payload` get it attached at send time, so the tap
/// comes back as that payload (e.g. `menu`). The one-time-password button of an
/// AUTHENTICATION template gets the code attached (Meta stores it as a URL button).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateButton {
    #[serde(rename = "type")]
    pub kind: ButtonKind,
    /// The label as approved (in the template's first language; informative).
    pub text: String,
    #[serde(default)]
    pub payload: Option<String>,
    /// Only for `OTP` buttons: copy-code or one-tap autofill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_type: Option<OtpType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ButtonKind {
    QuickReply,
    Url,
    PhoneNumber,
    /// The code button of an AUTHENTICATION template (reference §4.2a).
    Otp,
}

/// How an authentication template's button hands over the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OtpType {
    /// "Copy code": the code goes to the clipboard.
    CopyCode,
    /// "Autofill": the insurer's Android app receives the code (falls back to copy code).
    OneTap,
}

/// One template as written in the registry file, for all its languages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateDef {
    pub name: String,
    pub category: Category,
    pub languages: Vec<String>,
    /// Body parameter names, in `{{1}}`, `{{2}}` order (or the names of a NAMED template).
    #[serde(default)]
    pub params: Vec<String>,
    #[serde(default)]
    pub parameter_format: ParamFormat,
    #[serde(default)]
    pub buttons: Vec<TemplateButton>,
    /// Set by the insurer: this template may reach a contact who opted out (e.g. an update on
    /// a claim they filed). The consent gate decides with it.
    #[serde(default)]
    pub essential: bool,
    /// The status assumed until sync or a webhook says otherwise (default APPROVED).
    #[serde(default = "approved")]
    pub status: String,
}

fn approved() -> String {
    APPROVED.to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    templates: Vec<TemplateDef>,
}

/// Reads and checks the registry file.
///
/// # Errors
/// When the file cannot be read or parsed, or a template is malformed.
pub fn load_file(path: &Path) -> Result<Vec<TemplateDef>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(path, &text)
}

/// Parses the registry file's text (see [`load_file`]).
///
/// # Errors
/// As [`load_file`].
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<TemplateDef>, FileError> {
    let file: RegistryFile = serde_saphyr::from_str(text).map_err(|e| FileError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let invalid = |name: &str, problem: String| FileError::Invalid {
        path: path.to_owned(),
        name: name.to_owned(),
        problem,
    };
    let mut seen = HashSet::new();
    for def in &file.templates {
        let name = def.name.as_str();
        // Meta's rule for template names: lowercase letters, digits and underscores.
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(invalid(name, "names use a-z, 0-9 and _ only".into()));
        }
        if !seen.insert(name) {
            return Err(invalid(name, "defined twice".into()));
        }
        if def.languages.is_empty() {
            return Err(invalid(name, "needs at least one language".into()));
        }
        if def.params.iter().any(|p| {
            p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        }) {
            return Err(invalid(
                name,
                "parameter names use a-z, 0-9 and _ only".into(),
            ));
        }
        if def.buttons.len() > 10 {
            return Err(invalid(name, "at most 10 buttons".into()));
        }
        check_otp_shape(def).map_err(|problem| invalid(name, problem))?;
        if def.status.trim().is_empty() || def.status != def.status.to_uppercase() {
            return Err(invalid(
                name,
                format!("status '{}' must be an upper-case Meta status", def.status),
            ));
        }
    }
    Ok(file.templates)
}

/// Meta's fixed shape of an AUTHENTICATION template: one body variable (the code) and one
/// `OTP` button with its `otp_type`; `OTP` buttons exist on no other category.
fn check_otp_shape(def: &TemplateDef) -> Result<(), String> {
    let otp_buttons = def
        .buttons
        .iter()
        .filter(|b| b.kind == ButtonKind::Otp)
        .count();
    if def
        .buttons
        .iter()
        .any(|b| b.kind != ButtonKind::Otp && b.otp_type.is_some())
    {
        return Err("otp_type belongs on OTP buttons only".into());
    }
    if def.category != Category::Authentication {
        return if otp_buttons > 0 {
            Err("OTP buttons belong to AUTHENTICATION templates only".into())
        } else {
            Ok(())
        };
    }
    if def.params.len() != 1 {
        return Err(format!(
            "an AUTHENTICATION template has exactly one body variable (the code), not {}",
            def.params.len()
        ));
    }
    match def.buttons.as_slice() {
        [b] if b.kind == ButtonKind::Otp && b.otp_type.is_some() => Ok(()),
        [b] if b.kind == ButtonKind::Otp => {
            Err("its OTP button needs otp_type: COPY_CODE or ONE_TAP".into())
        }
        _ => Err(
            "an AUTHENTICATION template has exactly one button, of type OTP (no links or quick replies)"
                .into(),
        ),
    }
}
