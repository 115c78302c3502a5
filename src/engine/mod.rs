//! The dialogue engine: flow files, their linter, fluent text and the pure `step` function.
//!
//! # Layout
//! - [`model`]: the flow file format (serde types that keep YAML line/column positions).
//! - [`loader`]: reads `flows/*.yaml` into [`model::FlowFile`]s and hashes each file into a version.
//! - [`i18n`]: fluent bundles for every shipped language and the Indian number/date formatting.
//! - [`lint`]: the one validation used by start-up and by `insurebot flows check`; builds a [`FlowSet`].
//! - [`diagnostic`]: what the linter reports ([`Diagnostic`], [`Severity`]).
//! - [`flowset`]: the checked [`FlowSet`] the runtime steps through, and [`flowset::EngineSettings`].
//! - [`conversation`]: the vocabulary: [`Conversation`], [`Event`], [`Effect`], [`Reply`], …
//! - [`media_slot`]: the file kinds a step accepts and the [`media_slot::MediaRef`]s it collects.
//! - [`runtime`]: `step(flows, conversation, event, now) -> (conversation, effects)`, no I/O.
//! - [`graph`]: flow diagrams (Mermaid, dot, SVG) from the flow files, with live counts.
//! - [`convtest`]: scripted conversation tests (`flows/tests/*.yaml`) for flow authors.
//! - [`templates_file`]: the template registry file's format, which the linter checks against.
//! - [`understand`]: free text → intent (phrase lists, typos, Hinglish/Tanglish) and slots.
//! - [`vocabulary`]: products, policy statuses, claim stages: the values every locale translates.
//!
//! The async runner (elsewhere) stores the [`Conversation`] and performs the [`Effect`]s;
//! everything here is deterministic so it can be unit tested with tables.

pub mod actions;
pub mod conversation;
pub mod convtest;
pub mod diagnostic;
pub mod error;
pub mod flowset;
pub mod graph;
pub mod i18n;
pub mod lint;
pub mod loader;
pub mod media_slot;
pub mod model;
pub mod runtime;
pub mod templates_file;
pub mod understand;
pub mod vocabulary;

pub use conversation::{
    Choices, ConsentChange, ConsentScope, Conversation, Effect, Event, Hop, HopTo, ListMenu,
    ListRow, ListSection, Mode, Position, Reply, ReplyButton, StateRef, StepOutcome,
    TemplateFallback,
};
pub use diagnostic::{Diagnostic, Severity};
pub use error::{EngineError, Result};
pub use flowset::FlowSet;
pub use lint::check;
pub use runtime::{asks_meaning, step, step_on, step_with};
pub use understand::Ranking;
