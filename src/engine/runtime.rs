//! The pure dialogue step: `(flow set, conversation, event, now) → (conversation, effects)`.
//!
//! No I/O happens here. The async runner loads the [`Conversation`], calls [`step`], performs
//! the [`Effect`]s (send replies through the composer, call insurer actions, queue hand-offs,
//! record consent) and saves the new conversation in the same transaction. Action results
//! come back as [`Event::ActionResult`] through another `step`.
//!
//! Order of precedence for an inbound message, from every state and mode:
//! 1. STOP / START keywords (whole message only, any shipped language) — even with an agent;
//!    "cancel" too when nothing is in progress (no flow position, no agent);
//! 2. the mode: opted-out contacts get one reminder then silence, agent conversations stay quiet
//!    (a contact waiting in the queue leaves it with "menu", "cancel" or the hand-off message's
//!    button);
//! 3. idle restart and stale-position recovery (flow edited or removed: apology + menu);
//! 4. a tap on one of the current state's buttons, or its title typed (before the global
//!    keywords: "Premium due" under a policy's details is that policy's premium);
//! 5. global intents: trigger keywords and trigger buttons of any flow (menu, agent, help, …);
//! 6. the current state's answer (`expect`), with re-prompts, a retry limit, and the agent
//!    offered after repeated misunderstandings.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lint::{Flow, FlowSet, normalize_keyword};
use super::model::{Button, ConsentKind, FlowId, Role, State, StateId, Target, limits};

/// Message ids the engine itself uses; every locale must define them (the linter checks).
pub const ENGINE_MESSAGES: &[&str] = &[
    "engine-flow-changed",
    "engine-misunderstood",
    "engine-offer-agent",
    "engine-unsupported",
    "engine-please-wait",
    "engine-opted-out",
    "engine-agent-unavailable",
    "engine-error",
    "btn-menu",
    "btn-agent",
    BACK_TO_BOT,
];

/// Title of the button on the hand-off message that leaves the agent queue.
pub const BACK_TO_BOT: &str = "btn-back-to-bot";

/// Template sent instead of `engine-agent-unavailable` when the window has closed.
pub const AGENT_UNAVAILABLE_TEMPLATE: &str = "agent_unavailable";

/// How many states one step may pass through; the linter rejects loops, this is the backstop.
const MAX_HOPS: usize = 64;

/// Who is talking to the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The bot answers.
    #[default]
    Bot,
    /// Handed off; queued for an agent. The bot is quiet except for STOP.
    WaitingForAgent,
    /// An agent is answering. The bot is quiet except for STOP.
    WithAgent,
    /// The contact said STOP. Only START gets an answer (plus one reminder).
    OptedOutQuiet,
}

/// Where a conversation is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The flow.
    pub flow: FlowId,
    /// The state within it.
    pub state: StateId,
    /// The flow file's version when the conversation entered it.
    pub flow_version: String,
}

/// A return point pushed by a `call` state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The calling flow.
    pub flow: FlowId,
    /// Its `next` target, taken when the called flow reaches `return`.
    pub next: String,
}

/// Everything the engine remembers about one contact's conversation. Serde-serializable so
/// the runner can store it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Current flow and state; `None` between conversations.
    pub position: Option<Position>,
    /// Return points of `call`ed flows.
    #[serde(default)]
    pub stack: Vec<Frame>,
    /// The contact's language code (`en`, `hi`, `ta`).
    pub language: String,
    /// Saved answers and action results; fluent arguments come from here.
    #[serde(default)]
    pub slots: BTreeMap<String, Value>,
    /// Re-prompts used in the current state.
    #[serde(default)]
    pub retries: u32,
    /// Misunderstood messages in a row.
    #[serde(default)]
    pub misunderstood: u32,
    /// Time of the contact's last message.
    pub last_activity: Option<DateTime<Utc>>,
    /// Who is talking.
    #[serde(default)]
    pub mode: Mode,
    /// When the mode last changed (for the agent wait limit).
    #[serde(default)]
    pub mode_since: Option<DateTime<Utc>>,
    /// The action whose result the conversation waits for.
    #[serde(default)]
    pub pending_action: Option<String>,
    /// Whether an opted-out contact already got the "send START" reminder.
    #[serde(default)]
    pub opted_out_reminded: bool,
}

impl Conversation {
    /// A fresh conversation in `language`.
    pub fn new(language: &str) -> Self {
        Self {
            position: None,
            stack: Vec::new(),
            language: language.to_owned(),
            slots: BTreeMap::new(),
            retries: 0,
            misunderstood: 0,
            last_activity: None,
            mode: Mode::Bot,
            mode_since: None,
            pending_action: None,
            opted_out_reminded: false,
        }
    }

    /// `flow.state`, or `-` between conversations (for logs and tests; no personal data).
    pub fn where_label(&self) -> String {
        match &self.position {
            Some(p) => format!("{}.{}", p.flow, p.state),
            None => "-".to_owned(),
        }
    }
}

/// Something that happened to a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// The contact sent text.
    Text(String),
    /// The contact tapped a reply button (or a template quick-reply).
    Button {
        /// The button id.
        id: String,
        /// The title as shown.
        title: String,
    },
    /// The contact chose a list row.
    ListRow {
        /// The row id.
        id: String,
    },
    /// An insurer action finished.
    ActionResult {
        /// The action name.
        action: String,
        /// One of the action's outcomes (see `engine::actions`).
        outcome: String,
        /// Result fields; an object's keys are merged into the slots.
        data: Value,
    },
    /// The contact sent an image, document, audio, video or sticker.
    Media,
    /// The contact sent something the bot cannot read (location, contacts, reaction…).
    Unsupported,
    /// A timer fired (idle restart, agent wait limit).
    Timeout,
    /// An agent took the conversation.
    AgentJoined,
    /// The agent handed the conversation back to the bot.
    AgentReleased,
    /// The agent who had the conversation left the contact's message unanswered too long: it
    /// goes back to the queue, for any agent.
    AgentUnresponsive,
}

impl Event {
    fn is_from_contact(&self) -> bool {
        matches!(
            self,
            Event::Text(_)
                | Event::Button { .. }
                | Event::ListRow { .. }
                | Event::Media
                | Event::Unsupported
        )
    }
}

/// A reply button, ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButton {
    /// Id sent back on tap.
    pub id: String,
    /// Rendered title (≤ 20).
    pub title: String,
}

/// A list row, ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    /// Id sent back on selection.
    pub id: String,
    /// Rendered title (≤ 24).
    pub title: String,
    /// Rendered description (≤ 72).
    pub description: Option<String>,
}

/// A list section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    /// Rendered title (≤ 24); present when the list has sections.
    pub title: Option<String>,
    /// The rows.
    pub rows: Vec<ListRow>,
}

/// An interactive list, ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMenu {
    /// The label of the button that opens the list (≤ 20).
    pub button: String,
    /// Sections (one untitled section when the flow has none).
    pub sections: Vec<ListSection>,
}

/// The choices attached to a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choices {
    /// 1–3 reply buttons.
    Buttons(Vec<ReplyButton>),
    /// A list of up to 10 rows.
    List(ListMenu),
}

impl Choices {
    /// Ids of all buttons or rows, in order.
    pub fn ids(&self) -> Vec<&str> {
        match self {
            Choices::Buttons(b) => b.iter().map(|b| b.id.as_str()).collect(),
            Choices::List(l) => l
                .sections
                .iter()
                .flat_map(|s| s.rows.iter().map(|r| r.id.as_str()))
                .collect(),
        }
    }
    /// Titles of all buttons or rows, in order.
    pub fn titles(&self) -> Vec<&str> {
        match self {
            Choices::Buttons(b) => b.iter().map(|b| b.title.as_str()).collect(),
            Choices::List(l) => l
                .sections
                .iter()
                .flat_map(|s| s.rows.iter().map(|r| r.title.as_str()))
                .collect(),
        }
    }
}

/// What to send instead when the 24-hour window is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateFallback {
    /// Approved template name.
    pub name: String,
    /// The contact's language code.
    pub language: String,
    /// Body parameters, rendered (amounts in ₹, dates dd/mm/yyyy, policy numbers masked).
    pub params: Vec<String>,
}

/// A message for the contact, rendered in their language and within WhatsApp's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The fluent id of the body (for transcripts and tests).
    pub message_id: String,
    /// Body text.
    pub body: String,
    /// Header text (≤ 60).
    pub header: Option<String>,
    /// Footer text (≤ 60).
    pub footer: Option<String>,
    /// Buttons or a list.
    pub choices: Option<Choices>,
    /// Template fallback for a closed window.
    pub template: Option<TemplateFallback>,
}

/// Scope of an opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    /// Service messages: policy, claim and premium updates.
    Service,
    /// Offers and campaigns.
    Marketing,
}

/// A consent change to record (with an audit entry) and enforce in the composer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentChange {
    /// Stop everything that is not essential.
    OptOut,
    /// Opt in to a scope.
    OptIn(ConsentScope),
    /// Opt out of one scope only (e.g. "no offers" at the opt-in prompt).
    OptOutOf(ConsentScope),
}

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// Send a message.
    Reply(Reply),
    /// Call an insurer action; feed its result back as [`Event::ActionResult`].
    CallAction {
        /// Action name.
        name: String,
        /// Arguments: an object of the slots the state names.
        args: Value,
    },
    /// Queue the conversation for an agent.
    Handoff {
        /// Why (shown in the agent queue).
        reason: String,
    },
    /// Take the conversation out of the agent queue.
    CancelHandoff {
        /// Why.
        reason: String,
    },
    /// Record a consent change.
    Consent {
        /// The change.
        change: ConsentChange,
    },
    /// Store the contact's preferred language.
    SetLanguage {
        /// Language code.
        language: String,
    },
    /// The conversation is over (the runner may close the session).
    EndConversation,
}

/// A state of a flow, as the place a [`Hop`] leaves or enters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateRef {
    /// The flow.
    pub flow: FlowId,
    /// The state within it.
    pub state: StateId,
}

/// Where a [`Hop`] went.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HopTo {
    /// Into a state (of the same flow, a called one, the caller on `return`, or a trigger's).
    State(StateRef),
    /// The conversation ended (`end`, or `return` with no caller).
    End,
    /// A `handoff:` state queued the conversation for an agent.
    Agent,
}

/// One move of a conversation through the flows during a step. The runner stores them (without
/// the contact) so the flow diagrams can show how many conversations took each edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The state left; `None` when the conversation was between flows (new, ended, recovered).
    pub from: Option<StateRef>,
    /// Where it went.
    pub to: HopTo,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    /// The conversation to store.
    pub conversation: Conversation,
    /// What to do, in order.
    pub effects: Vec<Effect>,
    /// The states entered and left during the step, in order.
    pub hops: Vec<Hop>,
}

/// Advances a conversation by one event. Pure and deterministic.
pub fn step(
    flows: &FlowSet,
    conv: &Conversation,
    event: &Event,
    now: DateTime<Utc>,
) -> StepOutcome {
    let mut m = Machine {
        flows,
        conv: conv.clone(),
        effects: Vec::new(),
        hops: Vec::new(),
        now,
        recovering: false,
    };
    m.handle(event);
    if event.is_from_contact() {
        m.conv.last_activity = Some(now);
    }
    tracing::debug!(
        at = %m.conv.where_label(),
        mode = ?m.conv.mode,
        effects = m.effects.len(),
        "engine step"
    );
    StepOutcome {
        conversation: m.conv,
        effects: m.effects,
        hops: m.hops,
    }
}

struct Machine<'a> {
    flows: &'a FlowSet,
    conv: Conversation,
    effects: Vec<Effect>,
    hops: Vec<Hop>,
    now: DateTime<Utc>,
    recovering: bool,
}

impl<'a> Machine<'a> {
    fn handle(&mut self, event: &Event) {
        // 1. STOP / START beat everything, in every mode; so does "cancel" when there is
        // nothing to cancel (the word is on every opt-out list, the carriers' included).
        if let Event::Text(t) = event
            && let Some(flow) = self.flows.keyword_flow(t)
            && let Some(role) = self.stop_or_start(flow)
        {
            let flow = self.flows.role_flow(role);
            if role == Role::OptOut
                && matches!(self.conv.mode, Mode::WaitingForAgent | Mode::WithAgent)
            {
                self.effects.push(Effect::CancelHandoff {
                    reason: "opt_out".to_owned(),
                });
            }
            if role == Role::OptIn && self.conv.mode != Mode::Bot {
                self.set_mode(Mode::Bot);
            }
            self.conv.stack.clear();
            self.conv.pending_action = None;
            let id = flow.id.as_str().to_owned();
            self.go(&id, Target::Flow(id.clone()));
            return;
        }

        // The way back while queued: "menu" (keyword or the hand-off message's button) or
        // "cancel" leaves the queue, and the bot answers again.
        if self.conv.mode == Mode::WaitingForAgent
            && let Some(flow) = self.queue_exit(event)
        {
            self.effects.push(Effect::CancelHandoff {
                reason: "contact_left".to_owned(),
            });
            self.set_mode(Mode::Bot);
            self.reset_position();
            self.go(&flow, Target::Flow(flow.clone()));
            return;
        }

        // 2. Modes in which the bot is (nearly) silent.
        match self.conv.mode {
            Mode::OptedOutQuiet => {
                if event.is_from_contact() && !self.conv.opted_out_reminded {
                    self.conv.opted_out_reminded = true;
                    self.say_plain("engine-opted-out");
                }
                return;
            }
            Mode::WaitingForAgent | Mode::WithAgent => {
                match event {
                    Event::AgentJoined => self.set_mode(Mode::WithAgent),
                    Event::AgentReleased => {
                        self.set_mode(Mode::Bot);
                        self.reset_position();
                    }
                    // Waiting again from now: the wait limit counts from the requeue.
                    Event::AgentUnresponsive if self.conv.mode == Mode::WithAgent => {
                        self.set_mode(Mode::WaitingForAgent);
                    }
                    Event::Timeout if self.conv.mode == Mode::WaitingForAgent => {
                        let waited = self.conv.mode_since.map(|t| self.now - t);
                        if waited.is_none_or(|w| w >= self.flows.settings.agent_wait_limit) {
                            self.effects.push(Effect::CancelHandoff {
                                reason: "agent_wait_limit".to_owned(),
                            });
                            self.set_mode(Mode::Bot);
                            self.reset_position();
                            let mut reply = self.plain("engine-agent-unavailable");
                            reply.template = Some(TemplateFallback {
                                name: AGENT_UNAVAILABLE_TEMPLATE.to_owned(),
                                language: self.conv.language.clone(),
                                params: Vec::new(),
                            });
                            self.effects.push(Effect::Reply(reply));
                        }
                    }
                    // Everything else goes to the agent's transcript, not to the bot.
                    _ => {}
                }
                return;
            }
            Mode::Bot => {}
        }

        match event {
            Event::AgentJoined => {
                // An agent may pick a conversation up without a hand-off (from the console).
                self.set_mode(Mode::WithAgent);
                self.conv.pending_action = None;
            }
            Event::AgentReleased | Event::AgentUnresponsive => {}
            Event::Timeout => {
                if self.is_idle() {
                    self.expire_session();
                    self.effects.push(Effect::EndConversation);
                }
            }
            Event::ActionResult {
                action,
                outcome,
                data,
            } => self.action_result(action, outcome, data),
            _ => self.inbound(event),
        }
    }

    /// The role whose flow this keyword flow's message starts before anything else: STOP and
    /// START always; "cancel" as STOP when nothing is in progress (otherwise `None`: it
    /// cancels what is, see [`Machine::in_progress`]).
    fn stop_or_start(&self, flow: &Flow) -> Option<Role> {
        match self.flows.role_of(flow.id.as_str())? {
            role @ (Role::OptOut | Role::OptIn) => Some(role),
            Role::Cancel if !self.in_progress() => Some(Role::OptOut),
            _ => None,
        }
    }

    /// Whether something is under way that "cancel" can stop: a flow position (a question,
    /// buttons, an action) in a live session, the wait for an agent, or an agent's
    /// conversation (there the word goes to the agent).
    fn in_progress(&self) -> bool {
        match self.conv.mode {
            Mode::WaitingForAgent | Mode::WithAgent => true,
            Mode::OptedOutQuiet => false,
            Mode::Bot => self.conv.position.is_some() && !self.is_idle(),
        }
    }

    /// The flow a queued contact's message leaves the agent queue for: the menu (its keyword
    /// or trigger button, which the hand-off message carries) or the cancel flow. Anything
    /// else, greetings included, waits with the contact for the agent.
    fn queue_exit(&self, event: &Event) -> Option<String> {
        let flow = match event {
            Event::Text(t) => self.flows.keyword_flow(t),
            Event::Button { id, .. } | Event::ListRow { id } => self.flows.button_flow(id),
            _ => None,
        }?;
        matches!(
            self.flows.role_of(flow.id.as_str()),
            Some(Role::Menu | Role::Cancel)
        )
        .then(|| flow.id.as_str().to_owned())
    }

    fn inbound(&mut self, event: &Event) {
        // 3. Idle sessions restart; a position that no longer exists recovers to the menu.
        if self.is_idle() {
            self.expire_session();
        }
        if !self.position_valid() {
            self.recover();
            return;
        }
        let state = self.current_state();

        // 4. A tap on one of this state's buttons.
        if let (Some(st), Event::Button { id, .. } | Event::ListRow { id }) = (state, event)
            && let Some(b) = st.buttons.iter().find(|b| b.id.value == *id)
            && self.conv.pending_action.is_none()
        {
            self.choose(st, b);
            return;
        }
        // A button's title typed is that button, even when it is also a global keyword: the
        // button carries this state's context (the policy just shown), the keyword does not.
        if let (Some(st), Event::Text(text)) = (state, event)
            && self.conv.pending_action.is_none()
            && let Some(b) = st.buttons.iter().find(|b| {
                normalize_keyword(&self.render(&b.title.value, None)) == normalize_keyword(text)
            })
        {
            self.choose(st, b);
            return;
        }

        // 5. Global intents.
        let trigger = match event {
            Event::Text(t) => self.flows.keyword_flow(t),
            Event::Button { id, .. } | Event::ListRow { id } => self.flows.button_flow(id),
            _ => None,
        };
        if let Some(flow) = trigger {
            self.conv.stack.clear();
            self.conv.pending_action = None;
            self.conv.misunderstood = 0;
            let id = flow.id.as_str().to_owned();
            self.go(&id, Target::Flow(id.clone()));
            return;
        }

        // Between conversations anything else opens the menu.
        let Some(st) = state else {
            let menu = self.flows.role_flow(Role::Menu).id.as_str().to_owned();
            self.go(&menu, Target::Flow(menu.clone()));
            return;
        };
        if self.conv.pending_action.is_some() {
            self.say_plain("engine-please-wait");
            return;
        }

        // 6. The answer to this state.
        match event {
            Event::ListRow { id } | Event::Button { id, .. } => {
                if st.list_from.is_some() && self.dynamic_rows(st).iter().any(|r| r.id == *id) {
                    self.save_answer(st, Value::String(id.clone()));
                    self.next_of(st);
                } else {
                    // A button from an older message that no longer applies.
                    self.misunderstood(st, "engine-misunderstood");
                }
            }
            Event::Text(text) => self.text_answer(st, text),
            Event::Media | Event::Unsupported => self.misunderstood(st, "engine-unsupported"),
            _ => {}
        }
    }

    fn text_answer(&mut self, st: &'a State, text: &str) {
        // Typing a button's title or number counts as tapping it.
        if !st.buttons.is_empty() {
            let titles: Vec<String> = st
                .buttons
                .iter()
                .map(|b| self.render(&b.title.value, None))
                .collect();
            if let Some(i) = pick(text, &titles) {
                self.choose(st, &st.buttons[i]);
                return;
            }
        }
        if st.list_from.is_some() {
            let rows = self.dynamic_rows(st);
            let titles: Vec<String> = rows.iter().map(|r| r.title.clone()).collect();
            if let Some(i) = pick(text, &titles) {
                self.save_answer(st, Value::String(rows[i].id.clone()));
                self.next_of(st);
                return;
            }
        }
        let Some(expect) = &st.expect else {
            self.misunderstood(st, "engine-misunderstood");
            return;
        };
        let parsed: Option<Value> = if let Some(t) = &expect.text {
            let mut s = text.trim().to_owned();
            if t.uppercase {
                s = s.to_uppercase();
            }
            let ok = !s.is_empty() && t.regex.as_ref().is_none_or(|r| r.is_match(&s));
            ok.then_some(Value::String(s))
        } else if let Some(n) = &expect.number {
            parse_number(text)
                .filter(|v| n.min.is_none_or(|m| *v >= m) && n.max.is_none_or(|m| *v <= m))
                .filter(|v| !n.integer || v.fract() == 0.0)
                .and_then(|v| {
                    if v.fract() == 0.0 && v.abs() < 9e15 {
                        Some(Value::from(v as i64))
                    } else {
                        serde_json::Number::from_f64(v).map(Value::Number)
                    }
                })
        } else if let Some(d) = &expect.date {
            let today = self.now.date_naive();
            parse_date(text)
                .filter(|x| !d.past || *x <= today)
                .filter(|x| !d.future || *x >= today)
                .map(|x| Value::String(x.format("%Y-%m-%d").to_string()))
        } else {
            None
        };
        match parsed {
            Some(v) => {
                self.save_answer(st, v);
                self.next_of(st);
            }
            None => self.invalid(st),
        }
    }

    fn invalid(&mut self, st: &'a State) {
        let expect = st.expect.as_ref();
        let limit = expect
            .and_then(|e| e.retries)
            .unwrap_or(self.flows.settings.default_retries);
        self.conv.retries += 1;
        self.conv.misunderstood += 1;
        if self.conv.retries > limit {
            match expect.and_then(|e| e.on_fail.as_ref()) {
                Some(t) => {
                    let flow = self.flow_id();
                    self.go(&flow, Target::parse(&t.value));
                }
                None => self.offer_agent(),
            }
            return;
        }
        let id = expect
            .and_then(|e| e.invalid.as_ref())
            .map(|i| i.value.as_str())
            .unwrap_or("engine-misunderstood");
        self.reprompt(st, id);
    }

    fn misunderstood(&mut self, st: &'a State, message: &str) {
        self.conv.misunderstood += 1;
        if self.conv.misunderstood >= self.flows.settings.misunderstood_limit {
            self.offer_agent();
        } else {
            self.reprompt(st, message);
        }
    }

    /// Says `message` with the state's buttons again, so the contact can just tap.
    fn reprompt(&mut self, st: &'a State, message: &str) {
        let mut reply = self.plain(message);
        reply.choices = self.choices(st);
        if let Some(Choices::Buttons(_) | Choices::List(_)) = &reply.choices {
            reply.body = limits::truncate(&reply.body, limits::BODY);
        }
        self.effects.push(Effect::Reply(reply));
    }

    fn offer_agent(&mut self) {
        self.conv.misunderstood = 0;
        self.conv.retries = 0;
        let mut buttons = Vec::new();
        for (role, title) in [(Role::Agent, "btn-agent"), (Role::Menu, "btn-menu")] {
            if let Some(id) = self.flows.role_flow(role).file.triggers.buttons.first() {
                buttons.push(ReplyButton {
                    id: id.value.clone(),
                    title: limits::truncate(&self.render(title, None), limits::BUTTON_TITLE),
                });
            }
        }
        let mut reply = self.plain("engine-offer-agent");
        reply.choices = Some(Choices::Buttons(buttons));
        self.effects.push(Effect::Reply(reply));
    }

    /// Gives the hand-off message a "Back to the bot" button: the menu's trigger button,
    /// which takes a queued contact out of the queue (see [`Machine::queue_exit`]). Without
    /// it the only way back was a keyword nobody had been told.
    fn add_way_back(&self, reply: &mut Reply) {
        let Some(id) = self
            .flows
            .role_flow(Role::Menu)
            .file
            .triggers
            .buttons
            .first()
        else {
            return;
        };
        let button = ReplyButton {
            id: id.value.clone(),
            title: limits::truncate(&self.render(BACK_TO_BOT, None), limits::BUTTON_TITLE),
        };
        match &mut reply.choices {
            Some(Choices::Buttons(buttons)) if buttons.len() < limits::MAX_BUTTONS => {
                buttons.push(button);
            }
            Some(_) => {}
            None => {
                reply.choices = Some(Choices::Buttons(vec![button]));
                reply.body = limits::truncate(&reply.body, limits::BODY);
            }
        }
    }

    fn choose(&mut self, st: &'a State, b: &'a Button) {
        self.save_answer(st, Value::String(b.id.value.clone()));
        match &b.goto {
            Some(t) => {
                let flow = self.flow_id();
                self.go(&flow, Target::parse(&t.value));
            }
            None => self.next_of(st),
        }
    }

    fn save_answer(&mut self, st: &State, v: Value) {
        if let Some(slot) = &st.save {
            self.conv.slots.insert(slot.value.clone(), v);
        }
    }

    fn next_of(&mut self, st: &State) {
        let flow = self.flow_id();
        let target = st
            .next
            .as_ref()
            .map(|n| Target::parse(&n.value))
            .unwrap_or(Target::End);
        self.go(&flow, target);
    }

    fn action_result(&mut self, action: &str, outcome: &str, data: &Value) {
        if self.conv.pending_action.as_deref() != Some(action) {
            // A late or duplicate result: the conversation has moved on.
            tracing::debug!(action, "ignoring action result that is not awaited");
            return;
        }
        self.conv.pending_action = None;
        if !self.position_valid() {
            self.recover();
            return;
        }
        if let Value::Object(map) = data {
            for (k, v) in map {
                self.conv.slots.insert(k.clone(), v.clone());
            }
        }
        let Some(st) = self.current_state() else {
            return;
        };
        match st.on.get(outcome) {
            Some(t) => {
                let flow = self.flow_id();
                self.go(&flow, Target::parse(&t.value));
            }
            None => {
                tracing::warn!(
                    action,
                    outcome,
                    "action returned an outcome the flow does not handle"
                );
                self.say_plain("engine-error");
                let menu = self.flows.role_flow(Role::Menu).id.as_str().to_owned();
                self.go(&menu, Target::Flow(menu.clone()));
            }
        }
    }

    /// Follows transitions from `flow` until a state waits, the conversation ends or hands off.
    fn go(&mut self, flow: &str, target: Target) {
        let mut flow = flow.to_owned();
        let mut target = target;
        self.conv.retries = 0;
        self.conv.misunderstood = 0;
        for _ in 0..MAX_HOPS {
            let state_id = match target {
                Target::End => return self.end(),
                Target::Return => match self.conv.stack.pop() {
                    Some(frame) => {
                        flow = frame.flow.as_str().to_owned();
                        target = Target::parse(&frame.next);
                        continue;
                    }
                    None => return self.end(),
                },
                Target::Flow(f) => match self.flows.flow(&f) {
                    Some(fl) => {
                        flow = f;
                        fl.start().to_owned()
                    }
                    None => return self.recover(),
                },
                Target::State(s) => s,
            };
            let Some(fl) = self.flows.flow(&flow) else {
                return self.recover();
            };
            let Some(st) = fl.state(&state_id) else {
                return self.recover();
            };
            self.hop(HopTo::State(StateRef {
                flow: fl.id.clone(),
                state: StateId::checked(&state_id),
            }));
            self.conv.position = Some(Position {
                flow: fl.id.clone(),
                state: StateId::checked(&state_id),
                flow_version: fl.version.clone(),
            });
            self.conv.pending_action = None;

            if let Some(lang) = &st.set_language {
                self.conv.language = lang.value.clone();
                self.effects.push(Effect::SetLanguage {
                    language: lang.value.clone(),
                });
            }
            if let Some(c) = &st.consent {
                let change = match c.value {
                    ConsentKind::OptOut => ConsentChange::OptOut,
                    ConsentKind::OptIn => ConsentChange::OptIn(ConsentScope::Service),
                    ConsentKind::OptInMarketing => ConsentChange::OptIn(ConsentScope::Marketing),
                    ConsentKind::OptOutMarketing => {
                        ConsentChange::OptOutOf(ConsentScope::Marketing)
                    }
                };
                self.effects.push(Effect::Consent { change });
                match c.value {
                    ConsentKind::OptOut => {
                        self.set_mode(Mode::OptedOutQuiet);
                        self.conv.opted_out_reminded = false;
                    }
                    ConsentKind::OptIn => self.set_mode(Mode::Bot),
                    ConsentKind::OptInMarketing | ConsentKind::OptOutMarketing => {}
                }
            }
            if st.say.is_some() {
                let mut reply = self.state_reply(st);
                if st.handoff.is_some() {
                    self.add_way_back(&mut reply);
                }
                self.effects.push(Effect::Reply(reply));
            }
            if let Some(reason) = &st.handoff {
                self.effects.push(Effect::Handoff {
                    reason: reason.value.clone(),
                });
                self.set_mode(Mode::WaitingForAgent);
                self.hop(HopTo::Agent);
                self.reset_position();
                return;
            }
            if let Some(a) = &st.action {
                let mut args = serde_json::Map::new();
                for name in &st.args {
                    let v = self
                        .conv
                        .slots
                        .get(&name.value)
                        .cloned()
                        .unwrap_or(Value::Null);
                    args.insert(name.value.clone(), v);
                }
                self.effects.push(Effect::CallAction {
                    name: a.value.clone(),
                    args: Value::Object(args),
                });
                self.conv.pending_action = Some(a.value.clone());
                return;
            }
            if st.waits() {
                return;
            }
            if self.conv.mode == Mode::OptedOutQuiet && st.next.is_none() {
                return;
            }
            if let Some(c) = &st.call {
                self.conv.stack.push(Frame {
                    flow: fl.id.clone(),
                    next: st
                        .next
                        .as_ref()
                        .map(|n| n.value.clone())
                        .unwrap_or_else(|| "end".into()),
                });
                target = Target::Flow(c.value.clone());
                continue;
            }
            target = st
                .next
                .as_ref()
                .map(|n| Target::parse(&n.value))
                .unwrap_or(Target::End);
        }
        tracing::error!(flow = %flow, "too many transitions in one step; recovering to the menu");
        self.recover();
    }

    fn end(&mut self) {
        self.hop(HopTo::End);
        self.reset_position();
        self.effects.push(Effect::EndConversation);
    }

    /// Records a move from the current position (before it changes).
    fn hop(&mut self, to: HopTo) {
        let from = self.conv.position.as_ref().map(|p| StateRef {
            flow: p.flow.clone(),
            state: p.state.clone(),
        });
        self.hops.push(Hop { from, to });
    }

    /// The position is gone (flow edited, removed, or a loop): apologise and show the menu.
    fn recover(&mut self) {
        self.reset_position();
        if self.recovering {
            return; // the menu itself is broken; say nothing rather than loop
        }
        self.recovering = true;
        self.say_plain("engine-flow-changed");
        let menu = self.flows.role_flow(Role::Menu).id.as_str().to_owned();
        self.go(&menu, Target::Flow(menu.clone()));
    }

    fn reset_position(&mut self) {
        self.conv.position = None;
        self.conv.stack.clear();
        self.conv.pending_action = None;
        self.conv.retries = 0;
    }

    /// Ends the session: slots (including identity verification) are forgotten.
    fn expire_session(&mut self) {
        self.reset_position();
        self.conv.slots.clear();
        self.conv.misunderstood = 0;
    }

    fn set_mode(&mut self, mode: Mode) {
        if self.conv.mode != mode {
            self.conv.mode = mode;
            self.conv.mode_since = Some(self.now);
        }
    }

    fn is_idle(&self) -> bool {
        self.conv
            .last_activity
            .is_some_and(|t| self.now - t > self.flows.settings.idle_restart)
    }

    /// Whether the recorded position still exists; refreshes the version if the flow was
    /// edited but the state survived.
    fn position_valid(&mut self) -> bool {
        let Some(pos) = &mut self.conv.position else {
            return true;
        };
        match self.flows.flow(pos.flow.as_str()) {
            Some(f) if f.state(pos.state.as_str()).is_some() => {
                if pos.flow_version != f.version {
                    tracing::info!(flow = %pos.flow, "flow changed under a conversation; its state still exists");
                    pos.flow_version = f.version.clone();
                }
                true
            }
            _ => false,
        }
    }

    fn current_state(&self) -> Option<&'a State> {
        let pos = self.conv.position.as_ref()?;
        self.flows
            .flow(pos.flow.as_str())?
            .state(pos.state.as_str())
    }

    fn flow_id(&self) -> String {
        self.conv
            .position
            .as_ref()
            .map(|p| p.flow.as_str().to_owned())
            .unwrap_or_else(|| self.flows.role_flow(Role::Menu).id.as_str().to_owned())
    }

    fn render(&self, id: &str, args: Option<&fluent_bundle::FluentArgs<'_>>) -> String {
        self.flows
            .i18n()
            .render_lossy(&self.conv.language, id, args)
    }

    /// The slots as message arguments in the contact's language.
    fn args(&self, slots: &BTreeMap<String, Value>) -> fluent_bundle::FluentArgs<'static> {
        self.flows.i18n().args_in(&self.conv.language, slots)
    }

    fn plain(&self, id: &str) -> Reply {
        let args = self.args(&self.conv.slots);
        Reply {
            message_id: id.to_owned(),
            body: limits::truncate(&self.render(id, Some(&args)), limits::TEXT_BODY),
            header: None,
            footer: None,
            choices: None,
            template: None,
        }
    }

    fn say_plain(&mut self, id: &str) {
        let r = self.plain(id);
        self.effects.push(Effect::Reply(r));
    }

    fn state_reply(&self, st: &State) -> Reply {
        let args = self.args(&self.conv.slots);
        let say = st
            .say
            .as_ref()
            .map(|s| s.value.as_str())
            .unwrap_or_default();
        let choices = self.choices(st);
        let max = if choices.is_some() {
            limits::BODY
        } else {
            limits::TEXT_BODY
        };
        let lang = self.conv.language.clone();
        Reply {
            message_id: say.to_owned(),
            body: limits::truncate(&self.render(say, Some(&args)), max),
            header: st
                .header
                .as_ref()
                .map(|h| limits::truncate(&self.render(&h.value, Some(&args)), limits::HEADER)),
            footer: st
                .footer
                .as_ref()
                .map(|h| limits::truncate(&self.render(&h.value, Some(&args)), limits::FOOTER)),
            choices,
            template: st.template.as_ref().map(|t| TemplateFallback {
                name: t.name.value.clone(),
                language: lang.clone(),
                params: t
                    .params
                    .iter()
                    .map(|p| {
                        self.conv
                            .slots
                            .get(&p.value)
                            .and_then(|v| self.flows.i18n().display_in(&lang, &p.value, v))
                            .unwrap_or_default()
                    })
                    .collect(),
            }),
        }
    }

    /// The state's buttons or list, rendered and cut to WhatsApp's limits.
    fn choices(&self, st: &State) -> Option<Choices> {
        if st.list_from.is_some() {
            let rows = self.dynamic_rows(st);
            if rows.is_empty() {
                return None;
            }
            let label = st
                .list_from
                .as_ref()
                .map(|l| l.button.value.as_str())
                .unwrap_or("");
            return Some(Choices::List(ListMenu {
                button: limits::truncate(&self.render(label, None), limits::LIST_BUTTON),
                sections: vec![ListSection { title: None, rows }],
            }));
        }
        let n = st.buttons.len();
        if n == 0 {
            return None;
        }
        if n <= limits::MAX_BUTTONS {
            return Some(Choices::Buttons(
                st.buttons
                    .iter()
                    .map(|b| ReplyButton {
                        id: b.id.value.clone(),
                        title: limits::truncate(
                            &self.render(&b.title.value, None),
                            limits::BUTTON_TITLE,
                        ),
                    })
                    .collect(),
            ));
        }
        let mut sections: Vec<(Option<String>, ListSection)> = Vec::new();
        for b in st.buttons.iter().take(limits::MAX_ROWS) {
            let key = b.section.as_ref().map(|s| s.value.clone());
            let row = ListRow {
                id: b.id.value.clone(),
                title: limits::truncate(&self.render(&b.title.value, None), limits::ROW_TITLE),
                description: b.description.as_ref().map(|d| {
                    limits::truncate(&self.render(&d.value, None), limits::ROW_DESCRIPTION)
                }),
            };
            match sections.iter_mut().find(|(k, _)| *k == key) {
                Some((_, s)) => s.rows.push(row),
                None => sections.push((
                    key.clone(),
                    ListSection {
                        title: key.map(|k| {
                            limits::truncate(&self.render(&k, None), limits::SECTION_TITLE)
                        }),
                        rows: vec![row],
                    },
                )),
            }
        }
        let label = st
            .list_button
            .as_ref()
            .map(|l| l.value.as_str())
            .unwrap_or("btn-menu");
        Some(Choices::List(ListMenu {
            button: limits::truncate(&self.render(label, None), limits::LIST_BUTTON),
            sections: sections.into_iter().map(|(_, s)| s).collect(),
        }))
    }

    /// Rows of a `list_from` list: at most 10, each rendered with the item's own fields.
    fn dynamic_rows(&self, st: &State) -> Vec<ListRow> {
        let Some(lf) = &st.list_from else {
            return Vec::new();
        };
        let Some(Value::Array(items)) = self.conv.slots.get(&lf.items.value) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let Value::Object(fields) = item else {
                    return None;
                };
                let id = match fields.get(&lf.id.value)? {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                let map: BTreeMap<String, Value> =
                    fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                let args = self.args(&map);
                Some(ListRow {
                    id: limits::truncate(&id, limits::ID),
                    title: limits::truncate(
                        &self.render(&lf.title.value, Some(&args)),
                        limits::ROW_TITLE,
                    ),
                    description: lf.description.as_ref().map(|d| {
                        limits::truncate(
                            &self.render(&d.value, Some(&args)),
                            limits::ROW_DESCRIPTION,
                        )
                    }),
                })
            })
            .take(limits::MAX_ROWS)
            .collect()
    }
}

/// Index of the choice the text names: its title (case-insensitive) or its 1-based number.
fn pick(text: &str, titles: &[String]) -> Option<usize> {
    let t = normalize_keyword(&ascii_digits(text));
    if let Ok(n) = t.parse::<usize>()
        && (1..=titles.len()).contains(&n)
    {
        return Some(n - 1);
    }
    titles
        .iter()
        .position(|title| normalize_keyword(title) == t)
}

/// Devanagari (०–९) and Tamil (௦–௯) digits to ASCII, so "२" picks the second button.
pub fn ascii_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '०'..='९' => char::from(b'0' + (c as u32 - '०' as u32) as u8),
            '௦'..='௯' => char::from(b'0' + (c as u32 - '௦' as u32) as u8),
            _ => c,
        })
        .collect()
}

/// Parses an amount or count: "₹ 1,23,456.50", "Rs. 500", "५००", "12".
pub fn parse_number(s: &str) -> Option<f64> {
    let lower = ascii_digits(s).to_lowercase();
    let mut t = lower.trim();
    for prefix in ["₹", "rs.", "rs", "inr"] {
        if let Some(rest) = t.strip_prefix(prefix) {
            t = rest.trim();
        }
    }
    let cleaned: String = t
        .chars()
        .filter(|c| *c != ',' && !c.is_whitespace())
        .collect();
    if cleaned.is_empty()
        || !cleaned
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
    {
        return None;
    }
    cleaned.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses a date as people in India type it: 15/01/1980, 15-01-1980, 15.01.1980,
/// 1980-01-15, 15 Jan 1980, 15 January 1980. Day comes first (never the US order).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let t = ascii_digits(s.trim());
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    for fmt in [
        "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d", "%d %b %Y", "%d %B %Y", "%d-%b-%Y",
    ] {
        if let Ok(d) = NaiveDate::parse_from_str(&t, fmt) {
            return Some(d);
        }
    }
    None
}

#[cfg(test)]
mod tests;
