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
    /// The longest keyword's length in bytes: a message with more characters is no keyword.
    pub(super) longest_keyword: usize,
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
        // No keyword has more characters than bytes: a message longer than that is none.
        self.keywords
            .get(&normalize_keyword_within(text, self.longest_keyword)?)
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
    let trimmed = lowered.trim_matches(is_keyword_trim);
    // The words joined by one space, written straight into one string.
    let mut out = String::with_capacity(trimmed.len());
    for w in trimmed.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// [`normalize_keyword`] of `text` when it has at most `max` characters, `None` when it has
/// more: found without reading further into the message than that (plus any spaces and end
/// punctuation), so a 4,096-character story costs what its first words cost.
pub fn normalize_keyword_within(text: &str, max: usize) -> Option<String> {
    // Lower case is a per-character mapping except for a capital sigma, whose small form
    // depends on the letters around it: the whole-text function decides those.
    if text.contains('Σ') {
        let all = normalize_keyword(text);
        return (all.chars().count() <= max).then_some(all);
    }
    // Trimming and splitting read the same on both cases: no letter lower-cases into a
    // space or one of the trimmed marks, nor out of one.
    let trimmed = text.trim_matches(is_keyword_trim);
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in trimmed.chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if std::mem::take(&mut space) {
            out.push(' ');
            count += 1;
        }
        for l in c.to_lowercase() {
            out.push(l);
            count += 1;
        }
        if count > max {
            return None;
        }
    }
    Some(out)
}

/// What [`normalize_keyword`] trims from both ends.
pub fn is_keyword_trim(c: char) -> bool {
    c.is_whitespace() || matches!(c, '.' | ',' | '!' | '?' | '।' | '॥' | '"' | '\'' | '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounded normalisation is the whole one, cut: the same string when it fits, `None`
    /// exactly when the whole one is longer.
    #[test]
    fn a_keyword_normalised_within_a_bound_is_the_whole_normalisation() {
        let texts = [
            "",
            "  ",
            "Menu",
            "  MAIN   menu!! ",
            "\"Start over\".",
            "मुख्य  मेनू।",
            "முதன்மை மெனு",
            "a.b,c",
            "x\u{0B}y\u{A0}z",
            "İstanbul",
            "ΟΔΟΣ",
            "ΟΔΟΣ ΟΔΟΣ",
            "१२",
            "  0002  ",
            "my car broke down near pune and the towing guy wants cash",
        ];
        for text in texts {
            let whole = normalize_keyword(text);
            let n = whole.chars().count();
            for max in 0..n + 3 {
                let want = (n <= max).then(|| whole.clone());
                assert_eq!(
                    normalize_keyword_within(text, max),
                    want,
                    "{text:?} within {max}"
                );
            }
        }
    }
}
