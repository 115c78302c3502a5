//! Reads `flows/*.yaml` into [`FlowFile`]s, one flow per file, with a version hash per file.
//!
//! Syntax and shape errors become [`Diagnostic`]s with the parser's line and column; the
//! remaining files are still loaded so the linter can report their problems too.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::diagnostic::Diagnostic;
use super::model::FlowFile;

/// A parsed flow file.
#[derive(Debug, Clone)]
pub struct LoadedFlow {
    /// Path as given (relative paths stay relative so messages match what the author typed).
    pub path: PathBuf,
    /// First 16 hex digits of the SHA-256 of the file: conversations record it.
    pub version: String,
    /// The parsed flow.
    pub file: FlowFile,
}

/// Lists `*.yaml` / `*.yml` files directly in `dir`, sorted by name so output is stable.
///
/// # Errors
/// A diagnostic when the directory cannot be read.
pub fn list_yaml(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        Diagnostic::error(dir, 0, 0, format!("cannot read directory: {e}"))
            .with_hint("pass the folder that holds the flow files, e.g. `flows`")
    })?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Parses one flow file's text.
///
/// # Errors
/// A diagnostic at the parser's position for invalid YAML or an unexpected shape.
pub fn parse_flow(path: &Path, src: &str) -> Result<LoadedFlow, Diagnostic> {
    let file: FlowFile = serde_saphyr::from_str(src).map_err(|e| yaml_diagnostic(path, &e))?;
    Ok(LoadedFlow {
        path: path.to_owned(),
        version: version_of(src),
        file,
    })
}

/// Loads every flow file of a directory; returns what parsed and a diagnostic per failure.
pub fn load_dir(dir: &Path) -> (Vec<LoadedFlow>, Vec<Diagnostic>) {
    let mut flows = Vec::new();
    let mut diags = Vec::new();
    let paths = match list_yaml(dir) {
        Ok(p) => p,
        Err(d) => return (flows, vec![d]),
    };
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(src) => match parse_flow(&path, &src) {
                Ok(f) => flows.push(f),
                Err(d) => diags.push(d),
            },
            Err(e) => diags.push(Diagnostic::error(&path, 0, 0, format!("cannot read: {e}"))),
        }
    }
    (flows, diags)
}

/// The flow id a flow file that did not parse most likely declares: its top-level `flow:`
/// line, else its file name; `None` for what is not a flow file. The linter treats that flow as
/// existing, so that a syntax error is not followed by "flow 'x' does not exist" elsewhere.
pub fn presumed_flow_id(path: &Path) -> Option<String> {
    if !matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml") | Some("yml")
    ) {
        return None;
    }
    let declared = std::fs::read_to_string(path).ok().and_then(|text| {
        text.lines().find_map(|line| {
            let value = line.strip_prefix("flow:")?;
            let value = value.split(" #").next().unwrap_or_default().trim();
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            (!value.is_empty()).then(|| value.to_owned())
        })
    });
    declared.or_else(|| path.file_stem()?.to_str().map(str::to_owned))
}

/// A short, stable content hash.
pub fn version_of(src: &str) -> String {
    let digest = Sha256::digest(src.as_bytes());
    hex::encode(&digest[..8])
}

/// Turns a serde-saphyr error into one diagnostic at the parser's position, worded for a flow
/// author (see [`AuthorWording`]); the position is printed by [`Diagnostic`], not repeated in
/// the message, and the parser's own source snippet is left out (the editor shows the line).
pub(crate) fn yaml_diagnostic(path: &Path, e: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = e
        .location()
        .map(|l| (l.line() as u32, l.column() as u32))
        .unwrap_or((0, 0));
    let (message, hint) = AuthorWording::describe(e.without_snippet());
    let mut d = Diagnostic::error(path, line, column, message);
    d.hint = hint;
    d
}

/// serde-saphyr's messages rewritten for the people who edit flow files: the parser says
/// "while parsing a block mapping, did not find expected key" or "expected mapping start";
/// the author needs to hear what the file should have had at that spot, and the usual cause.
/// Messages not listed keep serde-saphyr's user wording (they already say what was expected).
struct AuthorWording;

impl AuthorWording {
    /// `(message, hint)` for one error.
    fn describe(e: &serde_saphyr::Error) -> (String, Option<String>) {
        use serde_saphyr::MessageFormatter;
        // `format_message` leaves control characters as they are; a flow file's text must
        // not move the author's terminal cursor (quotes stay as they are: `escape_debug`
        // would turn them into `\"`).
        let message: String = AuthorWording
            .format_message(e)
            .chars()
            .map(|c| match c {
                c if c.is_control() => c.escape_debug().to_string(),
                c => c.to_string(),
            })
            .collect();
        let hint = if message.contains("unknown field") {
            Some("check the spelling; flows/schema.json lists every key")
        } else if message.contains("duplicate") {
            Some("ids must be unique; rename one of them")
        } else if message.starts_with("YAML syntax") {
            Some(
                "the error is at or just before this position; an editor with YAML support shows it",
            )
        } else {
            None
        };
        (message, hint.map(str::to_owned))
    }

    /// What the author should have written, for the parser messages flow authors meet.
    fn syntax(parser_message: &str) -> Option<&'static str> {
        const TABLE: &[(&str, &str)] = &[
            (
                "did not find expected key",
                "expected a `key: value` line indented like the keys above it (is this line indented too far or too little, or missing its `:`?)",
            ),
            (
                "did not find expected '-' indicator",
                "expected a `- item` line indented like the items above it",
            ),
            (
                "did not find expected ',' or '}'",
                "expected `,` or `}` (a `{ ... }` is not closed on its line?)",
            ),
            (
                "expected ',' or ']'",
                "expected `,` or `]` (a `[ ... ]` is not closed on its line?)",
            ),
            (
                "only valid inside a block",
                "expected `}` or `]` before this `- ` line (a `{ ... }` or `[ ... ]` above is not closed)",
            ),
            (
                "mapping values are not allowed in this context",
                "expected one value here, found a second `: ` (quote a text that contains `: `)",
            ),
            (
                "tabs disallowed",
                "expected spaces: YAML does not allow tabs for indentation",
            ),
            (
                "tab cannot be used as indentation",
                "expected spaces: YAML does not allow tabs for indentation",
            ),
            (
                "trailing content after double-quoted",
                "expected the line to end after the closing `\"` (put the whole text inside the quotes)",
            ),
            (
                "trailing content after single-quoted",
                "expected the line to end after the closing `'` (put the whole text inside the quotes)",
            ),
            (
                "unclosed quote",
                "expected a closing quote for the text that starts here",
            ),
            (
                "unexpected EOF while parsing a flow",
                "expected `}` or `]`: the file ends inside a `{ ... }` or `[ ... ]`",
            ),
            (
                "unclosed bracket",
                "expected a closing `}` or `]` for the bracket opened here",
            ),
        ];
        TABLE
            .iter()
            .find(|(needle, _)| parser_message.contains(needle))
            .map(|(_, wording)| *wording)
    }
}

impl serde_saphyr::MessageFormatter for AuthorWording {
    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> std::borrow::Cow<'a, str> {
        use serde_saphyr::Error;
        match err {
            Error::ExternalMessage { msg, .. } => match Self::syntax(msg) {
                Some(wording) => format!("YAML syntax: {wording}").into(),
                None => format!("YAML syntax: {msg}").into(),
            },
            // Our types ask for a mapping (a flow, a state, `triggers`, ...) where the file has
            // a single value or a list.
            Error::Unexpected {
                expected: "mapping start",
                ..
            } => "expected `key: value` lines here (a mapping), found a single value or a list: \
                  is a `:` missing after a key, or a line indented too far?"
                .into(),
            Error::Unexpected {
                expected: "sequence start",
                ..
            } => "expected a list here (`- item` lines or `[a, b]`), found a single value or a mapping"
                .into(),
            Error::Eof { .. } => "the file ended early: expected more (an unclosed quote or bracket?)".into(),
            _ => serde_saphyr::UserMessageFormatter.format_message(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_has_a_position() {
        let src = "flow: x\nstart: a\nstates:\n  a:\n    say: [unclosed\n";
        let d = parse_flow(Path::new("flows/x.yaml"), src).unwrap_err();
        assert!(d.line >= 5, "{d}");
    }

    #[test]
    fn unknown_key_is_an_error_with_a_hint() {
        let src = "flow: x\nstart: a\nstates:\n  a:\n    say: hi\n    nxet: end\n";
        let d = parse_flow(Path::new("flows/x.yaml"), src).unwrap_err();
        assert_eq!(d.line, 6, "{d}");
        assert!(d.message.contains("nxet"), "{d}");
        assert!(d.hint.is_some());
    }

    #[test]
    fn duplicate_state_is_an_error() {
        let src = "flow: x\nstart: a\nstates:\n  a:\n    next: end\n  a:\n    next: end\n";
        let d = parse_flow(Path::new("flows/x.yaml"), src).unwrap_err();
        assert_eq!(d.line, 6, "{d}");
    }

    /// The mistakes flow authors make, each reported as one message that says what the file
    /// should have had there, at the line and column of the mistake (or right after it).
    #[test]
    fn syntax_errors_say_what_was_expected_where() {
        let head = "flow: x\nstart: a\nstates:\n";
        let cases: &[(&str, u32, &str)] = &[
            // A key indented one space too little.
            (
                "  a:\n    say: hi\n   next: end\n",
                6,
                "expected a `key: value` line indented like",
            ),
            // A `{` never closed, followed by a list item.
            (
                "  a:\n    buttons:\n      - { id: m, title: t\n      - { id: n, title: u }\n",
                6,
                "expected a closing `}` or `]` for the bracket opened here",
            ),
            // A state name without its colon: its lines become one text, not a state.
            (
                "  a\n    say: hi\n",
                4,
                "expected `key: value` lines here (a mapping)",
            ),
            // Text after a closing quote.
            (
                "  a:\n    say: \"hi\" there\n",
                5,
                "expected the line to end after the closing `\"`",
            ),
            // A tab for indentation.
            ("  a:\n\tsay: hi\n", 5, "YAML does not allow tabs"),
            // A second `: ` in an unquoted text.
            (
                "  a:\n    say: Note: hi\n",
                5,
                "expected one value here, found a second `: `",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter_map(|(body, line, needle)| {
                let src = format!("{head}{body}");
                let d = parse_flow(Path::new("flows/x.yaml"), &src).unwrap_err();
                let right = d.line == *line
                    && d.column > 0
                    && d.message.contains(needle)
                    && !d.message.contains("at line");
                (!right).then(|| format!("{src}-> {d}\n(wanted line {line}: {needle})"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    }

    #[test]
    fn version_changes_with_content() {
        assert_ne!(version_of("a"), version_of("b"));
        assert_eq!(version_of("a").len(), 16);
    }
}
