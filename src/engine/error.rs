//! The engine layer's one error type.
//!
//! Flow-file problems are not errors here: they are [`super::Diagnostic`]s, collected so the
//! author sees every problem at once. `EngineError` covers what can go wrong while rendering
//! or stepping a conversation that passed the linter (for example a message that needs an
//! argument the conversation does not have).

use std::path::PathBuf;

/// Result alias for the engine layer.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can fail inside the engine at run time.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The language is not one of the loaded locales.
    #[error("unknown language '{0}'")]
    UnknownLanguage(String),
    /// The message id exists in no locale, not even the fallback.
    #[error("message '{0}' does not exist in any locale")]
    UnknownMessage(String),
    /// Fluent could not format the message (usually a missing argument).
    #[error("message '{id}' in '{lang}' failed to render: {detail}")]
    Render {
        /// Fluent message id.
        id: String,
        /// Language the message was rendered in.
        lang: String,
        /// Fluent's own description of the problem.
        detail: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}
