//! The compiled flow set: the checked [`Flow`]s, their keywords, trigger buttons and roles,
//! and the fluent bundles. The linter ([`super::lint`]) is the only way to build one, so the
//! runtime can rely on every target, message id and pattern being valid.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::diagnostic::Diagnostic;
use super::i18n::I18n;
use super::model::{FlowFile, FlowId, Role, State};
use super::understand::Understanding;

/// Tunables of the runtime that are not part of flow files (they come from configuration).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Misunderstood messages in a row before the agent is offered.
    pub misunderstood_limit: u32,
    /// Re-prompts for an `expect` that does not set `retries`.
    pub default_retries: u32,
    /// A conversation idle longer than this restarts at the menu.
    pub idle_restart: chrono::Duration,
    /// How long a contact waits for an agent before the bot takes over again.
    pub agent_wait_limit: chrono::Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            misunderstood_limit: 3,
            default_retries: 2,
            idle_restart: chrono::Duration::minutes(30),
            agent_wait_limit: chrono::Duration::hours(4),
        }
    }
}

/// A checked flow.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The flow id.
    pub id: FlowId,
    /// The file it came from.
    pub path: PathBuf,
    /// Content hash of the file; conversations record it.
    pub version: String,
    /// The parsed definition.
    pub file: FlowFile,
}

impl Flow {
    /// A state by id.
    pub fn state(&self, id: &str) -> Option<&State> {
        self.file.states.get(id)
    }
    /// The start state's id.
    pub fn start(&self) -> &str {
        &self.file.start.value
    }
}

/// A validated set of flows and the locales they use. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct FlowSet {
    pub(super) flows: BTreeMap<String, Flow>,
    pub(super) i18n: I18n,
    pub(super) keywords: HashMap<String, String>,
    pub(super) trigger_buttons: HashMap<String, String>,
    pub(super) roles: BTreeMap<Role, String>,
    pub(super) understanding: Understanding,
    /// Runtime tunables (from configuration).
    pub settings: EngineSettings,
    /// Problems that did not prevent loading.
    pub warnings: Vec<Diagnostic>,
}

impl FlowSet {
    /// Loads and validates `flows_dir` against `locales_dir` (same as [`super::check`]).
    ///
    /// # Errors
    /// Every problem found, warnings included.
    pub fn load(flows_dir: &Path, locales_dir: &Path) -> Result<FlowSet, Vec<Diagnostic>> {
        super::lint::check(flows_dir, locales_dir)
    }

    /// Replaces the runtime tunables.
    pub fn with_settings(mut self, settings: EngineSettings) -> Self {
        self.settings = settings;
        self
    }

    /// A flow by id.
    pub fn flow(&self, id: &str) -> Option<&Flow> {
        self.flows.get(id)
    }

    /// All flows, by id.
    pub fn flows(&self) -> impl Iterator<Item = &Flow> {
        self.flows.values()
    }

    /// The flow that fills a role (the linter guarantees there is one).
    pub fn role_flow(&self, role: Role) -> &Flow {
        let id = &self.roles[&role];
        &self.flows[id]
    }

    /// The flow whose keyword is this whole message, if any.
    pub fn keyword_flow(&self, text: &str) -> Option<&Flow> {
        self.keywords
            .get(&normalize_keyword(text))
            .and_then(|id| self.flows.get(id))
    }

    /// The flow a trigger button id starts, if any.
    pub fn button_flow(&self, id: &str) -> Option<&Flow> {
        self.trigger_buttons.get(id).and_then(|f| self.flows.get(f))
    }

    /// The role a flow fills, if any.
    pub fn role_of(&self, flow: &str) -> Option<Role> {
        self.roles
            .iter()
            .find(|(_, f)| f.as_str() == flow)
            .map(|(r, _)| *r)
    }

    /// The fluent bundles.
    pub fn i18n(&self) -> &I18n {
        &self.i18n
    }

    /// The compiled phrase lists (`locales/<lang>/intents.yaml` and the trigger keywords).
    pub fn understanding(&self) -> &Understanding {
        &self.understanding
    }
}

/// Normalises a message for whole-message keyword matching: case, surrounding spaces and
/// punctuation, and repeated inner spaces do not matter.
pub fn normalize_keyword(text: &str) -> String {
    let lowered = text.to_lowercase();
    let trimmed = lowered.trim_matches(|c: char| {
        c.is_whitespace() || matches!(c, '.' | ',' | '!' | '?' | '।' | '॥' | '"' | '\'' | '*')
    });
    trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
}
