//! Fluent text for every shipped language (`locales/<lang>/*.ftl`), and how slot values become
//! message arguments: Indian currency and date formats, masked policy numbers.
//!
//! `en` is the fallback: a message missing in another language renders in English at run
//! time (the linter still reports it). Unicode bidi isolation marks are off: WhatsApp shows
//! them as stray characters and none of our languages mixes directions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use serde_json::Value;
use unic_langid::LanguageIdentifier;

use super::diagnostic::Diagnostic;
use super::error::{EngineError, Result};
use crate::money::Paise;

/// The language used when a message or a language is missing.
pub const FALLBACK_LANG: &str = "en";

/// One language's bundle and the ids it defines.
struct Locale {
    bundle: FluentBundle<FluentResource>,
    ids: BTreeSet<String>,
    /// The messages that take no argument, rendered once: button titles, list rows and most
    /// prompts are rendered for every reply, and formatting them again each time cost more
    /// than the rest of a step.
    fixed: HashMap<String, String>,
}

/// All loaded languages.
pub struct I18n {
    locales: BTreeMap<String, Locale>,
}

impl std::fmt::Debug for I18n {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I18n")
            .field("languages", &self.locales.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl I18n {
    /// Loads `dir/<lang>/*.ftl` for every language folder; reports every syntax error and
    /// duplicate id with its position, and keeps whatever parsed.
    pub fn load(dir: &Path) -> (I18n, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let mut locales = BTreeMap::new();
        let mut dir_readable = true;
        let mut langs: Vec<_> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect(),
            Err(e) => {
                dir_readable = false;
                diags.push(Diagnostic::error(
                    dir,
                    0,
                    0,
                    format!("cannot read locales directory: {e}"),
                ));
                Vec::new()
            }
        };
        langs.sort();
        for lang_dir in langs {
            let Some(lang) = lang_dir
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
            else {
                continue;
            };
            let langid: LanguageIdentifier = match lang.parse() {
                Ok(l) => l,
                Err(_) => {
                    diags.push(
                        Diagnostic::error(
                            &lang_dir,
                            0,
                            0,
                            format!("'{lang}' is not a language code"),
                        )
                        .with_hint("name locale folders by language code: en, hi, ta"),
                    );
                    continue;
                }
            };
            let mut bundle = FluentBundle::new_concurrent(vec![langid]);
            bundle.set_use_isolating(false);
            let mut ids = BTreeSet::new();
            let mut files: Vec<_> = std::fs::read_dir(&lang_dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("ftl"))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            for file in files {
                let src = match std::fs::read_to_string(&file) {
                    Ok(s) => s,
                    Err(e) => {
                        diags.push(Diagnostic::error(&file, 0, 0, format!("cannot read: {e}")));
                        continue;
                    }
                };
                let res = match FluentResource::try_new(src.clone()) {
                    Ok(r) => r,
                    Err((r, errs)) => {
                        for e in errs {
                            // Point at the start of the broken entry: the parser's own
                            // position is often the line after the mistake.
                            let at = e.slice.as_ref().map_or(e.pos.start, |s| s.start);
                            let (line, col) = line_col(&src, at);
                            diags.push(
                                Diagnostic::error(&file, line, col, format!("fluent syntax: {e}"))
                                    .with_hint("see https://projectfluent.org/fluent/guide/"),
                            );
                        }
                        r
                    }
                };
                // Message ids are read from the source rather than the AST so we do not need
                // fluent-syntax as a direct dependency; a message starts a line with `id =`.
                for (line_no, id) in message_ids(&src) {
                    if !ids.insert(id.clone()) {
                        diags.push(
                            Diagnostic::error(
                                &file,
                                line_no,
                                1,
                                format!("message '{id}' is defined twice in '{lang}'"),
                            )
                            .with_hint("each message id must be unique across a language's files"),
                        );
                    }
                }
                // Duplicates were reported above; the first definition wins.
                let _ = bundle.add_resource(res);
            }
            let fixed = ids
                .iter()
                .filter_map(|id| {
                    let pattern = bundle.get_message(id)?.value()?;
                    let mut errors = Vec::new();
                    let text = bundle.format_pattern(pattern, None, &mut errors);
                    errors.is_empty().then(|| (id.clone(), text.into_owned()))
                })
                .collect();
            locales.insert(lang, Locale { bundle, ids, fixed });
        }
        // Said even when other folders had problems (a misnamed `en/` is one); not when the
        // directory itself could not be read, which already says it all.
        if !locales.contains_key(FALLBACK_LANG) && dir_readable {
            diags.push(
                Diagnostic::error(dir, 0, 0, "the fallback language 'en' is missing")
                    .with_hint("create locales/en/*.ftl"),
            );
        }
        (I18n { locales }, diags)
    }

    /// Shipped language codes, sorted.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.locales.keys().map(String::as_str)
    }

    /// Whether `lang` is loaded.
    pub fn has_language(&self, lang: &str) -> bool {
        self.locales.contains_key(lang)
    }

    /// Whether message `id` exists in `lang` (no fallback).
    pub fn has(&self, lang: &str, id: &str) -> bool {
        self.locales.get(lang).is_some_and(|l| l.ids.contains(id))
    }

    /// The message ids `lang` defines.
    pub fn ids(&self, lang: &str) -> impl Iterator<Item = &str> {
        self.locales
            .get(lang)
            .into_iter()
            .flat_map(|l| l.ids.iter().map(String::as_str))
    }

    /// Renders message `id` in `lang`, falling back to English when the language or the id is
    /// missing.
    ///
    /// # Errors
    /// [`EngineError::UnknownMessage`] when no locale has the id; [`EngineError::Render`]
    /// when fluent reports a problem (such as a missing argument).
    pub fn render(&self, lang: &str, id: &str, args: Option<&FluentArgs<'_>>) -> Result<String> {
        if args.is_none()
            && let Some(text) = self.locales.get(lang).and_then(|l| l.fixed.get(id))
        {
            return Ok(text.clone());
        }
        let (lang, locale) = match self.locales.get(lang).filter(|l| l.ids.contains(id)) {
            Some(l) => (lang, l),
            None => match self
                .locales
                .get(FALLBACK_LANG)
                .filter(|l| l.ids.contains(id))
            {
                Some(l) => (FALLBACK_LANG, l),
                None => return Err(EngineError::UnknownMessage(id.to_owned())),
            },
        };
        let pattern = locale
            .bundle
            .get_message(id)
            .and_then(|m| m.value())
            .ok_or_else(|| EngineError::Render {
                id: id.to_owned(),
                lang: lang.to_owned(),
                detail: "the message has no value (only attributes)".to_owned(),
            })?;
        let mut errors = Vec::new();
        let text = locale.bundle.format_pattern(pattern, args, &mut errors);
        if let Some(e) = errors.first() {
            return Err(EngineError::Render {
                id: id.to_owned(),
                lang: lang.to_owned(),
                detail: e.to_string(),
            });
        }
        Ok(text.into_owned())
    }

    /// Renders like [`I18n::render`] but never fails: a broken message becomes its id, so a
    /// contact still gets an answer and the linter/logs tell the author.
    pub fn render_lossy(&self, lang: &str, id: &str, args: Option<&FluentArgs<'_>>) -> String {
        match self.render(lang, id, args) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(message_id = id, lang, error = %e, "message failed to render");
                self.render_placeholders(lang, id, args)
            }
        }
    }

    /// Fluent's best-effort text with `{$arg}` placeholders for missing arguments, without
    /// logging: the linter measures bodies this way before any argument exists.
    pub fn render_placeholders(
        &self,
        lang: &str,
        id: &str,
        args: Option<&FluentArgs<'_>>,
    ) -> String {
        self.locales
            .get(lang)
            .or_else(|| self.locales.get(FALLBACK_LANG))
            .and_then(|l| {
                let p = l.bundle.get_message(id)?.value()?;
                let mut errs = Vec::new();
                Some(l.bundle.format_pattern(p, args, &mut errs).into_owned())
            })
            .unwrap_or_else(|| id.to_owned())
    }
}

/// Slots whose values are codes from the insurer's vocabularies, with every code they may
/// hold. Each code reads in the contact's language through message
/// `value-<slot>-<code>` (see [`value_message_id`]); the linter checks that every language
/// has all of them. A code the insurer sends that is not listed is shown as sent.
pub const DATA_VALUES: &[(&str, &[&str])] = &[
    ("policy_status", super::vocabulary::POLICY_STATUSES),
    ("claim_stage", super::vocabulary::CLAIM_STAGES),
    ("policy_type", super::vocabulary::PRODUCTS),
    ("loss_type", super::vocabulary::LOSS_TYPES),
];

/// The message id of a data value: `("claim_stage", "documents_pending")` →
/// `value-claim-stage-documents-pending`. Codes are matched case-insensitively with spaces,
/// `_` and `-` alike (an insurer API may send `Documents pending`); `None` for a value that
/// cannot be a code (empty, or other characters).
pub fn value_message_id(slot: &str, code: &str) -> Option<String> {
    let code: String = code
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if matches!(c, ' ' | '_') { '-' } else { c })
        .collect();
    let ok = !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then(|| format!("value-{}-{code}", slot.replace('_', "-")))
}

impl I18n {
    /// A data value in `lang` (English when `lang` lacks it); `None` when the slot is not a
    /// data value or no locale knows the code.
    pub fn value_text(&self, lang: &str, slot: &str, value: &str) -> Option<String> {
        if !DATA_VALUES.iter().any(|(s, _)| *s == slot) {
            return None;
        }
        let id = value_message_id(slot, value)?;
        self.render(lang, &id, None).ok()
    }

    /// [`args_from`] for a reply in `lang`: data values (policy status, claim stage, policy
    /// type) in that language, unknown ones as sent.
    pub fn args_in(&self, lang: &str, slots: &BTreeMap<String, Value>) -> FluentArgs<'static> {
        let mut args = args_from(slots);
        for (slot, _) in DATA_VALUES {
            if let Some(Value::String(v)) = slots.get(*slot)
                && let Some(text) = self.value_text(lang, slot, v)
            {
                args.set(*slot, text);
            }
        }
        args
    }

    /// [`display_value`] in `lang`: a data value translated (template parameters).
    pub fn display_in(&self, lang: &str, key: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => self
                .value_text(lang, key, s)
                .or_else(|| display_value(key, v)),
            _ => display_value(key, v),
        }
    }
}

/// Builds fluent arguments from slots: amounts as ₹ with Indian grouping, ISO dates as
/// dd/mm/yyyy, policy numbers masked to their last 4 digits, numbers kept numeric for plurals.
pub fn args_from(slots: &BTreeMap<String, Value>) -> FluentArgs<'static> {
    let mut args = FluentArgs::new();
    for (k, v) in slots {
        if let Some(val) = fluent_value(k, v) {
            args.set(k.clone(), val);
        }
    }
    args
}

/// One slot as a fluent value (see [`args_from`]); an array is its length (so a message
/// can say how many files or policies: `{ $claim_files }`); `None` for objects and null.
pub fn fluent_value(key: &str, v: &Value) -> Option<FluentValue<'static>> {
    match v {
        Value::String(s) => Some(FluentValue::from(display_string(key, s))),
        Value::Number(n) => {
            let f = n.as_f64()?;
            if is_amount_key(key) {
                Some(FluentValue::from(format_rupees(f)))
            } else if is_policy_number_key(key) {
                Some(FluentValue::from(mask_policy_number(&n.to_string())))
            } else {
                Some(FluentValue::from(f))
            }
        }
        Value::Bool(b) => Some(FluentValue::from(if *b { "yes" } else { "no" })),
        Value::Array(items) => Some(FluentValue::from(items.len())),
        _ => None,
    }
}

/// How a string slot is shown to a contact (also used for template parameters).
pub fn display_string(key: &str, s: &str) -> String {
    if is_policy_number_key(key) {
        mask_policy_number(s)
    } else if is_date_key(key) {
        format_date(s).unwrap_or_else(|| s.to_owned())
    } else if is_amount_key(key) {
        s.parse::<f64>()
            .map(format_rupees)
            .unwrap_or_else(|_| s.to_owned())
    } else {
        s.to_owned()
    }
}

/// How any slot value is shown (template parameters), or `None` for arrays/objects/null.
pub fn display_value(key: &str, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(display_string(key, s)),
        Value::Number(n) if is_amount_key(key) => n.as_f64().map(format_rupees),
        Value::Number(n) => Some(display_string(key, &n.to_string())),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Keys holding a policy number: `policy_id` too, which list rows use as their id.
fn is_policy_number_key(k: &str) -> bool {
    k.contains("policy_number") || k.contains("policy_no") || k.contains("policy_id")
}
fn is_amount_key(k: &str) -> bool {
    k.ends_with("amount") || k == "sum_assured" || k.ends_with("_premium")
}
fn is_date_key(k: &str) -> bool {
    k.ends_with("date") || k == "dob"
}

/// Masks all but the last 4 characters: `LIC-12345678` → `••••5678`.
pub fn mask_policy_number(s: &str) -> String {
    let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    let keep = chars.len().min(4);
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("••••{tail}")
}

/// Rupees from a flow slot as text, through the one money type ([`Paise`]): `₹12,34,567.50`.
fn format_rupees(amount: f64) -> String {
    Paise::from_rupees(amount).map_or_else(|| amount.to_string(), |p| p.to_string())
}

/// `2026-01-15` (or an RFC 3339 timestamp) → `15/01/2026`, the format used across India.
pub fn format_date(s: &str) -> Option<String> {
    let d = s.get(..10)?;
    let date = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?;
    Some(date.format("%d/%m/%Y").to_string())
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(src: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(src.len());
    let before = &src[..src.floor_char_boundary(offset)];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u32
        + 1;
    (line, col)
}

/// `(line, id)` of every message definition (`id = ...` at the start of a line).
fn message_ids(src: &str) -> Vec<(u32, String)> {
    src.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let (id, _) = line.split_once('=')?;
            let id = id.trim_end();
            let mut chars = id.chars();
            let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            ok.then(|| (i as u32 + 1, id.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_slots_are_rupees_with_indian_grouping() {
        let show = |v: Value| display_value("premium_amount", &v).unwrap();
        assert_eq!(show(serde_json::json!(0)), "₹0");
        assert_eq!(show(serde_json::json!(5000.0)), "₹5,000");
        assert_eq!(show(serde_json::json!(12345678.5)), "₹1,23,45,678.50");
        assert_eq!(show(serde_json::json!("12340")), "₹12,340");
        assert_eq!(display_string("sum_assured", "abc"), "abc");
    }

    #[test]
    fn masking_and_dates() {
        assert_eq!(mask_policy_number("LIC 1234 5678"), "••••5678");
        assert_eq!(mask_policy_number("12"), "••••12");
        assert_eq!(format_date("2026-01-15").as_deref(), Some("15/01/2026"));
        assert_eq!(format_date("soon"), None);
        assert_eq!(display_string("policy_number", "P-99887766"), "••••7766");
        assert_eq!(display_string("policy_id", "P-99887766"), "••••7766");
        assert_eq!(display_string("due_date", "2026-03-01"), "01/03/2026");
    }

    #[test]
    fn line_col_counts_characters() {
        let src = "a = x\nबी = y\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, src.find('=').unwrap()), (1, 3));
        let second = src.rfind('=').unwrap();
        assert_eq!(line_col(src, second), (2, 4));
    }

    #[test]
    fn renders_with_fallback_and_no_isolation_marks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        std::fs::create_dir_all(dir.path().join("hi")).unwrap();
        std::fs::write(
            dir.path().join("en/a.ftl"),
            "hello = Hello { $name }\nonly-en = E\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("hi/a.ftl"), "hello = नमस्ते { $name }\n").unwrap();
        let (i18n, diags) = I18n::load(dir.path());
        assert!(diags.is_empty(), "{diags:?}");
        let mut args = FluentArgs::new();
        args.set("name", "Asha");
        assert_eq!(
            i18n.render("hi", "hello", Some(&args)).unwrap(),
            "नमस्ते Asha"
        );
        assert_eq!(i18n.render("hi", "only-en", None).unwrap(), "E");
        assert!(i18n.render("hi", "nope", None).is_err());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        std::fs::write(
            dir.path().join("en/a.ftl"),
            "ok = fine\nbroken = { $x\nx = y\nx = z\n",
        )
        .unwrap();
        let (_, diags) = I18n::load(dir.path());
        assert!(
            diags
                .iter()
                .any(|d| d.line == 2 && d.message.contains("fluent syntax")),
            "{diags:?}"
        );
        assert!(
            diags
                .iter()
                .any(|d| d.line == 4 && d.message.contains("twice")),
            "{diags:?}"
        );
    }
}
