//! Conversation tests for flow authors: scripted chats in `flows/tests/*.yaml`.
//!
//! A test says what the contact sends (text, a tap, a list choice, media, a timer or an agent
//! event) and what the bot must answer (message ids, text it contains, its buttons), where
//! the conversation must be afterwards, and which effects must happen. It can start mid-flow
//! from a given state with given slots, and insurer actions are stubbed per test, so tests
//! never depend on a live system. `insurebot flows test` and `cargo test` both run
//! [`run_conversation_tests`]; a failure prints what was expected next to what the bot did.
//!
//! ```yaml
//! tests:
//!   - name: claim found
//!     language: en
//!     start: { at: claim_status.ask_number, slots: { verified: true } }
//!     actions:
//!       claim.status: { outcome: found, data: { claim_stage: Under review } }
//!     steps:
//!       - user: CLM-123456
//!         bot:
//!           - say: claim-status
//!             contains: Under review
//!             buttons: [claim.another, agent, menu]
//!         at: claim_status.show
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::conversation::{Conversation, Effect, Event, Position, Reply};
use super::flowset::FlowSet;
use super::loader;
use super::media_slot::{FileKind, MediaRef};
use super::model::{FlowId, StateId};
use super::runtime::step;

/// One test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The tests, run in order, each from a fresh conversation.
    pub tests: Vec<TestCase>,
}

/// One scripted conversation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Shown in the report.
    pub name: String,
    /// The contact's language (default `en`).
    #[serde(default)]
    pub language: Option<String>,
    /// Start mid-flow instead of from a new conversation.
    #[serde(default)]
    pub start: Option<StartAt>,
    /// Stubbed outcomes per action name.
    #[serde(default)]
    pub actions: BTreeMap<String, ActionStub>,
    /// The conversation.
    pub steps: Vec<TestStep>,
}

/// Where a test starts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartAt {
    /// `flow.state`.
    pub at: String,
    /// Slots already saved.
    #[serde(default)]
    pub slots: BTreeMap<String, Value>,
}

/// A stubbed action result, or a list used in order (the last one repeats).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ActionStub {
    /// Just an outcome.
    Outcome(String),
    /// Outcome and result data.
    Full {
        /// The outcome.
        outcome: String,
        /// Result fields.
        #[serde(default)]
        data: Value,
    },
    /// Several calls in order.
    Sequence(Vec<ActionStub>),
}

/// One exchange: an input and what must follow.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestStep {
    /// Advance the clock first, e.g. `45m`, `2h`, `1d`.
    #[serde(default)]
    pub wait: Option<String>,
    /// The contact types this.
    #[serde(default)]
    pub user: Option<String>,
    /// The contact taps this button id.
    #[serde(default)]
    pub tap: Option<String>,
    /// The contact picks this list row id.
    #[serde(default)]
    pub select: Option<String>,
    /// The contact sends a file: `true` for one that could not be kept, or its kind
    /// (`image`, `document`, …) for one kept in the media store.
    #[serde(default)]
    pub media: Option<MediaInput>,
    /// A non-contact event: `timeout`, `agent_joined`, `agent_released`, `agent_unresponsive`.
    #[serde(default)]
    pub event: Option<String>,
    /// The replies, in order; `[]` means silence. Omitted: not checked.
    #[serde(default)]
    pub bot: Option<Vec<ExpectReply>>,
    /// Where the conversation is afterwards: `flow.state`, or `-` between conversations.
    #[serde(default)]
    pub at: Option<String>,
    /// The mode afterwards (`bot`, `waiting_for_agent`, `with_agent`, `opted_out_quiet`).
    #[serde(default)]
    pub mode: Option<String>,
    /// Effects that must happen: `handoff`, `end`, `consent:opt_out`, `consent:opt_in`,
    /// `consent:no_marketing`,
    /// `consent:marketing`, `language:<code>`, `action:<name>`, `cancel_handoff`,
    /// `file:<kind>` (a file sent by `send_files:`, one per file).
    #[serde(default)]
    pub effects: Vec<String>,
    /// The language afterwards.
    #[serde(default)]
    pub language: Option<String>,
}

/// What one reply must look like. Every given field must match.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectReply {
    /// The body's message id.
    #[serde(default)]
    pub say: Option<String>,
    /// Text the body must contain.
    #[serde(default)]
    pub contains: Option<String>,
    /// Ids of the buttons or list rows, in order.
    #[serde(default)]
    pub buttons: Option<Vec<String>>,
    /// Titles of the buttons or list rows, in order.
    #[serde(default)]
    pub titles: Option<Vec<String>>,
    /// Name of the template fallback.
    #[serde(default)]
    pub template: Option<String>,
}

/// A failed test.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The test file.
    pub file: PathBuf,
    /// The test's name.
    pub test: String,
    /// 1-based step number (0: the test could not start).
    pub step: usize,
    /// What differed, with what the bot actually did.
    pub message: String,
}

/// The outcome of a test run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Whether every test passed (and at least one ran).
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.passed > 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for fl in &self.failures {
            writeln!(
                f,
                "FAIL {} :: {} (step {})",
                fl.file.display(),
                fl.test,
                fl.step
            )?;
            for line in fl.message.lines() {
                writeln!(f, "    {line}")?;
            }
        }
        write!(f, "{} passed, {} failed", self.passed, self.failures.len())
    }
}

/// Runs every `*.yaml` test file in `dir` against `flows`.
pub fn run_conversation_tests(flows: &FlowSet, dir: &Path) -> Report {
    let mut report = Report::default();
    let paths = match loader::list_yaml(dir) {
        Ok(p) => p,
        Err(d) => {
            report.failures.push(Failure {
                file: dir.to_owned(),
                test: "-".into(),
                step: 0,
                message: d.to_string(),
            });
            return report;
        }
    };
    for path in paths {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|src| {
                serde_saphyr::from_str::<TestFile>(&src)
                    .map_err(|e| loader::yaml_diagnostic(&path, &e).to_string())
            });
        let file = match parsed {
            Ok(f) => f,
            Err(message) => {
                report.failures.push(Failure {
                    file: path.clone(),
                    test: "-".into(),
                    step: 0,
                    message,
                });
                continue;
            }
        };
        for case in &file.tests {
            match run_case(flows, case) {
                Ok(()) => report.passed += 1,
                Err((step, message)) => report.failures.push(Failure {
                    file: path.clone(),
                    test: case.name.clone(),
                    step,
                    message,
                }),
            }
        }
    }
    report
}

/// A fixed clock so tests are reproducible (date checks use it as "today").
fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0)
        .single()
        .unwrap_or_default()
}

fn run_case(flows: &FlowSet, case: &TestCase) -> Result<(), (usize, String)> {
    let lang = case.language.clone().unwrap_or_else(|| "en".to_owned());
    let mut conv = Conversation::new(&lang);
    let mut now = epoch();
    if let Some(start) = &case.start {
        let (flow, state) = start
            .at
            .split_once('.')
            .ok_or((0, format!("start.at '{}' must be flow.state", start.at)))?;
        let fl = flows
            .flow(flow)
            .ok_or((0, format!("start.at: flow '{flow}' does not exist")))?;
        if fl.state(state).is_none() {
            return Err((
                0,
                format!("start.at: state '{state}' does not exist in '{flow}'"),
            ));
        }
        conv.position = Some(Position {
            flow: FlowId::checked(flow),
            state: StateId::checked(state),
            flow_version: fl.version.clone(),
        });
        conv.slots = start.slots.clone();
        conv.last_activity = Some(now);
    }
    let mut stubs: BTreeMap<String, VecDeque<ActionStub>> = case
        .actions
        .iter()
        .map(|(k, v)| {
            let q = match v {
                ActionStub::Sequence(items) => items.iter().cloned().collect(),
                other => VecDeque::from([other.clone()]),
            };
            (k.clone(), q)
        })
        .collect();

    for (i, st) in case.steps.iter().enumerate() {
        let n = i + 1;
        if let Some(w) = &st.wait {
            now +=
                parse_wait(w).ok_or((n, format!("wait '{w}' is not like 30s, 45m, 2h or 1d")))?;
        }
        let event = input_event(st).map_err(|m| (n, m))?;
        let label = describe(&event);
        let mut queue = VecDeque::from([event]);
        let mut effects: Vec<Effect> = Vec::new();
        let mut guard = 0;
        while let Some(ev) = queue.pop_front() {
            guard += 1;
            if guard > 50 {
                return Err((n, "more than 50 action calls in one step".to_owned()));
            }
            let out = step(flows, &conv, &ev, now);
            conv = out.conversation;
            for e in &out.effects {
                if let Effect::CallAction { action, .. } = e {
                    let name = action.name();
                    let q = stubs.get_mut(name).ok_or((
                        n,
                        format!("{label}: the flow called action '{name}' but the test has no stub for it (add it under `actions:`)"),
                    ))?;
                    let stub = if q.len() > 1 {
                        q.pop_front()
                    } else {
                        q.front().cloned()
                    };
                    let (outcome, data) = match stub {
                        Some(ActionStub::Outcome(o)) => (o, Value::Null),
                        Some(ActionStub::Full { outcome, data }) => (outcome, data),
                        _ => return Err((n, format!("stub for '{name}' is empty or nested"))),
                    };
                    queue.push_back(Event::ActionResult {
                        action: name.to_owned(),
                        outcome,
                        data,
                    });
                }
            }
            effects.extend(out.effects);
        }
        check_step(st, &conv, &effects).map_err(|m| (n, format!("{label}\n{m}")))?;
    }
    Ok(())
}

fn input_event(st: &TestStep) -> Result<Event, String> {
    let mut events = Vec::new();
    if let Some(t) = &st.user {
        events.push(Event::Text(t.clone()));
    }
    if let Some(id) = &st.tap {
        events.push(Event::Button {
            id: id.clone(),
            title: String::new(),
        });
    }
    if let Some(id) = &st.select {
        events.push(Event::ListRow { id: id.clone() });
    }
    match &st.media {
        None | Some(MediaInput::Sent(false)) => {}
        Some(MediaInput::Sent(true)) => events.push(Event::Media(None)),
        Some(MediaInput::Kind(kind)) => {
            let kind = FileKind::parse(kind).ok_or_else(|| {
                format!(
                    "media '{kind}' is not a kind of file (image, document, audio, video, sticker)"
                )
            })?;
            events.push(Event::Media(Some(MediaRef::stand_in(kind, 0))));
        }
    }
    if let Some(e) = &st.event {
        events.push(match e.as_str() {
            "timeout" => Event::Timeout,
            "agent_joined" => Event::AgentJoined,
            "agent_released" => Event::AgentReleased,
            "agent_unresponsive" => Event::AgentUnresponsive,
            "unsupported" => Event::Unsupported,
            other => {
                return Err(format!(
                    "unknown event '{other}' (timeout, agent_joined, agent_released, agent_unresponsive, unsupported)"
                ));
            }
        });
    }
    match events.len() {
        1 => Ok(events.remove(0)),
        0 => Err("a step needs one of user, tap, select, media, event".to_owned()),
        _ => Err("a step has exactly one of user, tap, select, media, event".to_owned()),
    }
}

/// What a test step's `media:` says the contact sent.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MediaInput {
    /// `media: true`: a file that could not be kept.
    Sent(bool),
    /// `media: image`: a file of this kind, kept.
    Kind(String),
}

fn describe(e: &Event) -> String {
    match e {
        Event::Text(t) => format!("user: {t:?}"),
        Event::Button { id, .. } => format!("tap: {id}"),
        Event::ListRow { id } => format!("select: {id}"),
        other => format!("event: {other:?}"),
    }
}

fn check_step(st: &TestStep, conv: &Conversation, effects: &[Effect]) -> Result<(), String> {
    let replies: Vec<&Reply> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply(r) => Some(r),
            _ => None,
        })
        .collect();
    let mut problems = Vec::new();
    if let Some(expected) = &st.bot {
        if expected.len() != replies.len() {
            problems.push(format!(
                "expected {} replies, got {}",
                expected.len(),
                replies.len()
            ));
        }
        for (i, (want, got)) in expected.iter().zip(&replies).enumerate() {
            let n = i + 1;
            if let Some(id) = &want.say
                && *id != got.message_id
            {
                problems.push(format!(
                    "reply {n}: expected message '{id}', got '{}'",
                    got.message_id
                ));
            }
            if let Some(text) = &want.contains
                && !got.body.contains(text.as_str())
            {
                problems.push(format!("reply {n}: expected the text to contain {text:?}"));
            }
            let ids: Vec<String> = got
                .choices
                .as_ref()
                .map(|c| c.ids().iter().map(|s| s.to_string()).collect())
                .unwrap_or_default();
            if let Some(b) = &want.buttons
                && *b != ids
            {
                problems.push(format!("reply {n}: expected buttons {b:?}, got {ids:?}"));
            }
            let titles: Vec<String> = got
                .choices
                .as_ref()
                .map(|c| c.titles().iter().map(|s| s.to_string()).collect())
                .unwrap_or_default();
            if let Some(t) = &want.titles
                && *t != titles
            {
                problems.push(format!("reply {n}: expected titles {t:?}, got {titles:?}"));
            }
            if let Some(t) = &want.template {
                let got_t = got.template.as_ref().map(|t| t.name.as_str());
                if got_t != Some(t.as_str()) {
                    problems.push(format!("reply {n}: expected template '{t}', got {got_t:?}"));
                }
            }
        }
    }
    if let Some(at) = &st.at
        && *at != conv.where_label()
    {
        problems.push(format!(
            "expected to be at '{at}', is at '{}'",
            conv.where_label()
        ));
    }
    if let Some(m) = &st.mode {
        let got = serde_json::to_value(conv.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if *m != got {
            problems.push(format!("expected mode '{m}', is '{got}'"));
        }
    }
    if let Some(l) = &st.language
        && *l != conv.language
    {
        problems.push(format!("expected language '{l}', is '{}'", conv.language));
    }
    let labels: Vec<String> = effects.iter().flat_map(effect_labels).collect();
    for e in &st.effects {
        if !labels.contains(e) {
            problems.push(format!("expected effect '{e}'; effects were {labels:?}"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut msg = problems.join("\n");
    msg.push_str("\nthe bot sent:");
    if replies.is_empty() {
        msg.push_str(" nothing");
    }
    for r in &replies {
        msg.push_str(&format!("\n  - {} {:?}", r.message_id, r.body));
        if let Some(c) = &r.choices {
            msg.push_str(&format!(" buttons {:?}", c.ids()));
        }
    }
    Err(msg)
}

/// The labels a test's `effects:` names an effect by: one per effect, but a file sent
/// (`file:document`, `file:image`) one per file.
fn effect_labels(e: &Effect) -> Vec<String> {
    use super::conversation::{ConsentChange, ConsentScope};
    vec![match e {
        Effect::Reply(_) | Effect::Misunderstood { .. } => return Vec::new(),
        Effect::SendFiles { files, .. } => {
            return files
                .iter()
                .map(|f| format!("file:{}", f.kind.as_str()))
                .collect();
        }
        Effect::CallAction { action, .. } => format!("action:{action}"),
        Effect::Handoff { .. } => "handoff".to_owned(),
        Effect::CancelHandoff { .. } => "cancel_handoff".to_owned(),
        Effect::Consent {
            change: ConsentChange::OptOut,
        } => "consent:opt_out".to_owned(),
        Effect::Consent {
            change: ConsentChange::OptIn(ConsentScope::Service),
        } => "consent:opt_in".to_owned(),
        Effect::Consent {
            change: ConsentChange::OptIn(ConsentScope::Marketing),
        } => "consent:marketing".to_owned(),
        Effect::Consent {
            change: ConsentChange::OptOutOf(ConsentScope::Marketing),
        } => "consent:no_marketing".to_owned(),
        Effect::Consent {
            change: ConsentChange::OptOutOf(ConsentScope::Service),
        } => "consent:no_service".to_owned(),
        Effect::SetLanguage { language } => format!("language:{language}"),
        Effect::EndConversation => "end".to_owned(),
    }]
}

fn parse_wait(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    match unit {
        "s" => Some(Duration::seconds(n)),
        "m" => Some(Duration::minutes(n)),
        "h" => Some(Duration::hours(n)),
        "d" => Some(Duration::days(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn shipped_conversation_tests_pass() {
        let flows = FlowSet::load(&root().join("flows"), &root().join("locales")).unwrap();
        let report = run_conversation_tests(&flows, &root().join("flows/tests"));
        assert!(report.ok(), "{report}");
        assert!(report.passed >= 40, "{report}");
        eprintln!("{report}");
    }

    #[test]
    fn a_failing_test_explains_itself() {
        let flows = FlowSet::load(&root().join("flows"), &root().join("locales")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.yaml"),
            "tests:\n  - name: wrong\n    steps:\n      - user: hi\n        bot:\n          - say: help-text\n        at: menu.nowhere\n",
        )
        .unwrap();
        let report = run_conversation_tests(&flows, dir.path());
        assert_eq!(report.failures.len(), 1);
        let text = report.to_string();
        assert!(
            text.contains("expected message 'help-text', got 'menu-welcome'"),
            "{text}"
        );
        assert!(
            text.contains("expected to be at 'menu.nowhere', is at 'menu.show'"),
            "{text}"
        );
        assert!(text.contains("0 passed, 1 failed"), "{text}");
    }

    #[test]
    fn waits_parse() {
        assert_eq!(parse_wait("45m"), Some(Duration::minutes(45)));
        assert_eq!(parse_wait("2h"), Some(Duration::hours(2)));
        assert_eq!(parse_wait("soon"), None);
    }
}
