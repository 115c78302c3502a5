//! Reads `flows/*.yaml` into [`FlowFile`]s, one flow per file, with a version hash per file.
//!
//! Syntax and shape errors become [`Diagnostic`]s with the parser's line and column; the
//! remaining files are still loaded so the linter can report their problems too.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::lint::Diagnostic;
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

/// A short, stable content hash.
pub fn version_of(src: &str) -> String {
    let digest = Sha256::digest(src.as_bytes());
    hex::encode(&digest[..8])
}

/// Turns a serde-saphyr error into a diagnostic, without the parser's own source snippet
/// (our Display prints `file:line:col` and the author's editor shows the line).
pub(crate) fn yaml_diagnostic(path: &Path, e: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = e
        .location()
        .map(|l| (l.line() as u32, l.column() as u32))
        .unwrap_or((0, 0));
    let text = e.without_snippet().to_string();
    // The message may still carry a trailing position ("at line X column Y"); keep the first line.
    let first = text
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_owned();
    let hint = if first.contains("unknown field") {
        Some("check the spelling; flows/schema.json lists every key".to_owned())
    } else if first.contains("duplicate") {
        Some("ids must be unique; rename one of them".to_owned())
    } else {
        None
    };
    let mut d = Diagnostic::error(path, line, column, first);
    d.hint = hint;
    d
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

    #[test]
    fn version_changes_with_content() {
        assert_ne!(version_of("a"), version_of("b"));
        assert_eq!(version_of("a").len(), 16);
    }
}
