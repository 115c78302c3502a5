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
//! 6. free text that is not the current state's answer, understood ([`super::understand`]):
//!    a clear intent starts its flow, two close ones ask "Did you mean A or B?" with buttons,
//!    and the language it is written in becomes the conversation's (once);
//! 7. the current state's answer (`expect`), with re-prompts, a retry limit, and the agent
//!    offered after repeated misunderstandings.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::conversation::{
    Choices, ConsentChange, ConsentScope, Conversation, Effect, Event, Frame, Hop, HopTo, ListMenu,
    ListRow, ListSection, Mode, Position, Reply, ReplyButton, StateRef, StepOutcome,
    TemplateFallback,
};
use super::flowset::{Flow, FlowSet, is_keyword_trim, normalize_keyword, normalize_keyword_within};
use super::media_slot::{DEFAULT_MAX_FILES, FileKind, MediaRef};
use super::model::{Button, ConsentKind, Role, SendFiles, State, StateId, Target, limits};
use super::understand::{self, Ranking, Understood, slots};

/// Message ids the engine itself uses; every locale must define them (the linter checks).
pub const ENGINE_MESSAGES: &[&str] = &[
    "engine-flow-changed",
    "engine-misunderstood",
    "engine-did-you-mean",
    "engine-offer-agent",
    "engine-unsupported",
    "engine-please-wait",
    "engine-opted-out",
    "engine-agent-unavailable",
    "engine-error",
    "engine-media-received",
    "engine-media-kind",
    "engine-media-max",
    "engine-media-again",
    "media-kind-image",
    "media-kind-document",
    "media-kind-audio",
    "media-kind-video",
    "media-kind-sticker",
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

/// Advances a conversation by one event. Pure and deterministic.
pub fn step(
    flows: &FlowSet,
    conv: &Conversation,
    event: &Event,
    now: DateTime<Utc>,
) -> StepOutcome {
    step_with(flows, conv, event, now, None)
}

/// [`step`] with an external understanding service's ranking of a text event's intents,
/// consulted before the built-in matcher for free text that is not the state's answer.
pub fn step_with(
    flows: &FlowSet,
    conv: &Conversation,
    event: &Event,
    now: DateTime<Utc>,
    ranking: Option<&Ranking>,
) -> StepOutcome {
    step_on(flows, conv, event, now, ranking, None)
}

/// [`step_with`] on a business number where only the flows in `only` answer (`None`: every
/// flow): only they start from a keyword, a trigger button, free text or a menu button, and
/// the menus offer no button to another. The flows that fill a role (menu, help, language,
/// hand-off, opt-out, opt-in, cancel) and those that record consent (message preferences)
/// answer everywhere, and a flow under way may still go to any flow it leads to (the
/// identity check, say).
pub fn step_on(
    flows: &FlowSet,
    conv: &Conversation,
    event: &Event,
    now: DateTime<Utc>,
    ranking: Option<&Ranking>,
    only: Option<&HashSet<String>>,
) -> StepOutcome {
    let text = match event {
        Event::Text(t) => Some(t.as_str()),
        _ => None,
    };
    let mut m = Machine::new(flows, conv, now, text, ranking);
    m.only = only;
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

/// Whether `step` would ask what `text` means (rule 6, free text that is not the state's
/// answer, a keyword or a button title): the dialogue layer asks an external understanding
/// service only then, so answers such as policy numbers and dates never leave for it.
pub fn asks_meaning(flows: &FlowSet, conv: &Conversation, text: &str, now: DateTime<Utc>) -> bool {
    if conv.mode != Mode::Bot || flows.keyword_flow(text).is_some() {
        return false;
    }
    let mut m = Machine::new(flows, conv, now, Some(text), None);
    if m.is_idle() {
        m.expire_session();
    }
    if !m.position_valid() {
        return false;
    }
    let Some(st) = m.current_state() else {
        return true;
    };
    if m.conv.pending_action.is_some() {
        return true;
    }
    let offered = m.offered(st);
    m.typed_title(st, text, &offered).is_none() && m.answer(st, text, &offered).is_none()
}

/// The titles of a state's buttons that this number offers, rendered in the contact's
/// language and normalised once per message: a typed title, a button's number, a near
/// spelling of a title and the answer's second reading all use these.
struct Offered<'a> {
    /// The index in the state's buttons of each title below.
    buttons: Vec<usize>,
    /// As [`normalize_keyword`] spells them.
    keys: Vec<String>,
    /// Their words, for near spellings (split when the flow set was built).
    words: Vec<Cow<'a, [Vec<char>]>>,
}

/// What a message answers in the current state.
enum Answer {
    /// The state's button at this index.
    Button(usize),
    /// The value to save (a list row's id, or what `expect` read).
    Value(Value),
}

struct Machine<'a> {
    flows: &'a FlowSet,
    conv: Conversation,
    effects: Vec<Effect>,
    hops: Vec<Hop>,
    now: DateTime<Utc>,
    recovering: bool,
    /// The contact's text, until it is recorded as misunderstood (once per step).
    text: Option<&'a str>,
    /// What an external understanding service made of the text, if one was asked.
    ranking: Option<&'a Ranking>,
    /// The flows that may start on the number written to; `None`: every flow.
    only: Option<&'a HashSet<String>>,
}

impl<'a> Machine<'a> {
    fn new(
        flows: &'a FlowSet,
        conv: &Conversation,
        now: DateTime<Utc>,
        text: Option<&'a str>,
        ranking: Option<&'a Ranking>,
    ) -> Self {
        Machine {
            flows,
            conv: conv.clone(),
            effects: Vec::new(),
            hops: Vec::new(),
            now,
            recovering: false,
            text,
            ranking,
            only: None,
        }
    }

    /// Whether the flow `id` may start on this number (see [`step_on`]): one it lists, a
    /// role's, or one that records consent (a person's say over their messages works on
    /// every line).
    fn allowed(&self, id: &str) -> bool {
        self.only.is_none_or(|only| {
            only.contains(id)
                || self.flows.role_of(id).is_some()
                || self
                    .flows
                    .flow(id)
                    .is_some_and(|f| f.file.states.iter().any(|(_, st)| st.consent.is_some()))
        })
    }

    /// Whether the button `b` is offered on this number: not when it starts a flow that may
    /// not.
    fn offers(&self, b: &Button) -> bool {
        match b.goto.as_ref().map(|t| Target::parse(&t.value)) {
            Some(Target::Flow(f)) => self.allowed(&f),
            _ => true,
        }
    }

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
            && let Some(b) = st
                .buttons
                .iter()
                .find(|b| b.id.value == *id && self.offers(b))
            && self.conv.pending_action.is_none()
        {
            self.choose(st, b);
            return;
        }
        // The state's titles are rendered once for everything below that reads text.
        let offered = match (state, event) {
            (Some(st), Event::Text(_)) if self.conv.pending_action.is_none() => {
                Some(self.offered(st))
            }
            _ => None,
        };
        // A button's title typed is that button, even when it is also a global keyword: the
        // button carries this state's context (the policy just shown), the keyword does not.
        if let (Some(st), Event::Text(text), Some(offered)) = (state, event, &offered)
            && let Some(b) = self.typed_title(st, text, offered)
        {
            self.choose(st, b);
            return;
        }

        // 5. Global intents (a flow that does not answer on this number is no intent here:
        // its keyword is not understood, not a way into another line's flows).
        let trigger = match event {
            Event::Text(t) => self.flows.keyword_flow(t),
            Event::Button { id, .. } | Event::ListRow { id } => self.flows.button_flow(id),
            _ => None,
        }
        .filter(|flow| self.allowed(flow.id.as_str()));
        // A keyword keeps the conversation's language as it did before free text was
        // understood (a Hindi keyword mid-English is a keyword, not a language choice).
        if let Some(flow) = trigger {
            let id = flow.id.as_str().to_owned();
            self.start_flow(&id);
            return;
        }

        // 6. Free text that is not this state's answer: what does it ask for? (The answer is
        // read once; rule 7 takes it from here.)
        let mut answer = match (state, event, &offered) {
            (Some(st), Event::Text(t), Some(offered)) => self.answer(st, t, offered),
            _ => None,
        };
        if let Event::Text(t) = event
            && (state.is_none() || self.conv.pending_action.is_some() || answer.is_none())
        {
            // Scored over every flow, then dropped when the best (or a close second) is the
            // flow under way: words naming it are a wrong answer to its question (the retry
            // limit must be reached), not a wish for some other flow that scored near it.
            // An external service's ranking first; when it settles nothing (or none was
            // asked, or it failed), the built-in matcher.
            let understanding = self.flows.understanding();
            let understood = self
                .ranking
                .and_then(|r| understanding.from_ranking(t, r, |f| self.allowed(f)))
                .unwrap_or_else(|| understanding.intent(t, |f| self.allowed(f)));
            let understood = match understood {
                Understood::Intent { flow, .. } if self.under_way(&flow) => Understood::Nothing,
                Understood::Ambiguous { first, second }
                    if self.under_way(&first) || self.under_way(&second) =>
                {
                    Understood::Nothing
                }
                other => other,
            };
            match understood {
                Understood::Intent { flow, .. } => {
                    self.adopt_language(t);
                    self.start_flow(&flow);
                    return;
                }
                Understood::Ambiguous { first, second } => {
                    let language = self.conv.language.clone();
                    self.adopt_language(t);
                    if self.did_you_mean(&[&first, &second]) {
                        return;
                    }
                    // The titles now read in the adopted language: read the answer again.
                    if let Some(st) = state
                        && self.conv.language != language
                        && self.conv.pending_action.is_none()
                    {
                        answer = self.answer(st, t, &self.offered(st));
                    }
                }
                Understood::Nothing => {}
            }
        }

        // Between conversations anything else opens the menu.
        let Some(st) = state else {
            self.note_misunderstood();
            let menu = self.flows.role_flow(Role::Menu).id.as_str().to_owned();
            self.go(&menu, Target::Flow(menu.clone()));
            return;
        };
        if self.conv.pending_action.is_some() {
            self.say_plain("engine-please-wait");
            return;
        }

        // 7. The answer to this state.
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
            Event::Text(_) => self.text_answer(st, answer),
            Event::Media(file) if is_media_step(st) => {
                let sent = file.as_ref().map_or(Sent::NotKept, Sent::File);
                self.media_answer(st, sent);
            }
            Event::Media(_) | Event::Unsupported => self.misunderstood(st, "engine-unsupported"),
            _ => {}
        }
    }

    /// The titles of the buttons of `st` this number offers (a line's flows; see `offers`):
    /// only those can be typed or picked by number.
    fn offered(&self, st: &State) -> Offered<'a> {
        let buttons: Vec<usize> = (0..st.buttons.len())
            .filter(|&i| self.offers(&st.buttons[i]))
            .collect();
        let understanding = self.flows.understanding();
        let (keys, words) = buttons
            .iter()
            .map(|&i| {
                let title = self.render(&st.buttons[i].title.value, None);
                (normalize_keyword(&title), understanding.title_words(&title))
            })
            .unzip();
        Offered {
            buttons,
            keys,
            words,
        }
    }

    /// The button of `st` whose title `text` is, as typed (case, spaces and end punctuation
    /// aside). The message is normalised once, not once per button.
    fn typed_title(&self, st: &'a State, text: &str, offered: &Offered) -> Option<&'a Button> {
        let longest = offered.keys.iter().map(|t| t.chars().count()).max()?;
        let typed = normalize_keyword_within(text, longest)?;
        offered
            .keys
            .iter()
            .position(|t| *t == typed)
            .map(|i| &st.buttons[offered.buttons[i]])
    }

    /// Rule 7 for text: the state's `answer` to it, or why not.
    fn text_answer(&mut self, st: &'a State, answer: Option<Answer>) {
        match answer {
            Some(Answer::Button(i)) => self.choose(st, &st.buttons[i]),
            Some(Answer::Value(v)) => {
                self.save_answer(st, v);
                self.next_of(st);
            }
            None if st.expect.is_none() => self.misunderstood(st, "engine-misunderstood"),
            None => self.invalid(st),
        }
    }

    /// What `text` answers in state `st`, if anything: one of its buttons (title, number,
    /// a near spelling of the title, or yes/no for a yes/no button), a row of its list, or
    /// the value its `expect` asks for, read from free text.
    fn answer(&self, st: &State, text: &str, offered: &Offered) -> Option<Answer> {
        let u = self.flows.understanding();
        if !st.buttons.is_empty() {
            // Numbers and titles count the buttons offered on this number only.
            if let Some(i) = pick_key(text, &offered.keys)
                .or_else(|| understand::pick_title_words(text, &offered.words))
            {
                return Some(Answer::Button(offered.buttons[i]));
            }
            if let Some(yes) = u.yes_no(text)
                && let Some(i) = st.buttons.iter().position(|b| {
                    let last =
                        b.id.value
                            .rsplit(['.', '_', '-'])
                            .next()
                            .unwrap_or_default();
                    self.offers(b) && last == if yes { "yes" } else { "no" }
                })
            {
                return Some(Answer::Button(i));
            }
        }
        if st.list_from.is_some() {
            let rows = self.dynamic_rows(st);
            let titles: Vec<String> = rows.iter().map(|r| r.title.clone()).collect();
            if let Some(i) = pick(text, &titles).or_else(|| understand::pick_title(text, &titles)) {
                return Some(Answer::Value(Value::String(rows[i].id.clone())));
            }
        }
        let expect = st.expect.as_ref()?;
        let value = if let Some(t) = &expect.text {
            match &t.regex {
                Some(r) => slots::reference(text, t.uppercase, |c| r.is_match(c))?,
                None => {
                    let s = text.trim();
                    if s.is_empty() {
                        return None;
                    }
                    if t.uppercase {
                        s.to_uppercase()
                    } else {
                        s.to_owned()
                    }
                }
            }
            .into()
        } else if let Some(n) = &expect.number {
            parse_number(text)
                .or_else(|| slots::amount(text))
                .filter(|v| n.min.is_none_or(|m| *v >= m) && n.max.is_none_or(|m| *v <= m))
                .filter(|v| !n.integer || v.fract() == 0.0)
                .and_then(|v| {
                    if v.fract() == 0.0 && v.abs() < 9e15 {
                        Some(Value::from(v as i64))
                    } else {
                        serde_json::Number::from_f64(v).map(Value::Number)
                    }
                })?
        } else if let Some(d) = &expect.date {
            let today = self.now.date_naive();
            slots::date(text, today)
                .filter(|x| !d.past || *x <= today)
                .filter(|x| !d.future || *x >= today)
                .map(|x| Value::String(x.format("%Y-%m-%d").to_string()))?
        } else {
            return None;
        };
        Some(Answer::Value(value))
    }

    /// Records the message being handled as not understood (masked), if it was text.
    fn note_misunderstood(&mut self) {
        // A wrong code or number masks to nothing but stars: no phrase to learn from it.
        if let Some(text) = self.text.take().map(crate::privacy::mask_text)
            && text.chars().any(char::is_alphabetic)
        {
            self.effects.push(Effect::Misunderstood {
                text,
                place: self.conv.where_label(),
            });
        }
    }

    /// A file sent to a step that collects files: kept in the slot when it is of an accepted
    /// kind and there is room, otherwise the reason in words. Either way the step's buttons
    /// come again, so "Done" is always one tap away, and the step keeps waiting.
    fn media_answer(&mut self, st: &'a State, sent: Sent<'_>) {
        let (Some(expect), Some(slot)) = (&st.expect, &st.save) else {
            return;
        };
        let accepted: Vec<FileKind> = expect
            .media
            .iter()
            .flatten()
            .filter_map(|k| FileKind::parse(&k.value))
            .collect();
        let max = expect.max.as_ref().map_or(DEFAULT_MAX_FILES, |m| m.value);
        let mut files = MediaRef::list(self.conv.slots.get(&slot.value));
        let mut args = fluent_bundle::FluentArgs::new();
        args.set("max", max);
        args.set("accepted", self.kinds_in_words(&accepted));
        let message = match sent {
            // The dialogue layer has said why it was not kept, when it knows.
            Sent::NotKept => "engine-media-again",
            Sent::Text => "engine-media-kind",
            Sent::File(f) if !accepted.contains(&f.kind) => "engine-media-kind",
            Sent::File(_) if files.len() >= max as usize => "engine-media-max",
            Sent::File(f) => {
                files.push(f.clone());
                self.conv.slots.insert(
                    slot.value.clone(),
                    Value::Array(files.iter().map(MediaRef::to_value).collect()),
                );
                self.conv.retries = 0;
                self.conv.misunderstood = 0;
                "engine-media-received"
            }
        };
        args.set("count", files.len());
        self.effects.push(Effect::Reply(Reply {
            message_id: message.to_owned(),
            body: limits::truncate(&self.render(message, Some(&args)), limits::BODY),
            header: None,
            footer: None,
            choices: self.choices(st),
            template: None,
        }));
    }

    /// "photos, documents" in the contact's language.
    fn kinds_in_words(&self, kinds: &[FileKind]) -> String {
        kinds
            .iter()
            .map(|k| self.render(k.message_id(), None))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether `flow` is the one under way (or calls the one under way): understood as
    /// itself again, free text would restart it and never reach the retry limit.
    fn under_way(&self, flow: &str) -> bool {
        self.conv
            .position
            .as_ref()
            .is_some_and(|p| p.flow.as_str() == flow)
            || self.conv.stack.iter().any(|f| f.flow.as_str() == flow)
    }

    /// Starts `flow` from the top, leaving whatever was under way.
    fn start_flow(&mut self, flow: &str) {
        self.conv.stack.clear();
        self.conv.pending_action = None;
        self.conv.misunderstood = 0;
        self.go(flow, Target::Flow(flow.to_owned()));
    }

    /// Takes the language `text` is written in as the conversation's, once (see
    /// [`Conversation::language_settled`]): Hinglish is answered in Hindi, Tanglish in Tamil.
    fn adopt_language(&mut self, text: &str) {
        if self.conv.language_settled {
            return;
        }
        let Some(lang) = self.flows.understanding().language_of(text) else {
            return;
        };
        self.conv.language_settled = true;
        if lang != self.conv.language {
            self.conv.language = lang.to_owned();
            self.effects.push(Effect::SetLanguage {
                language: lang.to_owned(),
            });
        }
    }

    /// "Did you mean A or B?" with a button for each flow that has a trigger button; the
    /// buttons are global, so a tap starts the flow from any state. `false` (nothing said)
    /// when fewer than two of them have a button to offer.
    fn did_you_mean(&mut self, flows: &[&str]) -> bool {
        let menu = self.flows.role_flow(Role::Menu);
        let menu_titles: BTreeMap<&str, &str> = menu
            .file
            .states
            .iter()
            .flat_map(|(_, st)| st.buttons.iter())
            .map(|b| (b.id.value.as_str(), b.title.value.as_str()))
            .collect();
        let mut buttons = Vec::new();
        for f in flows {
            let Some(flow) = self.flows.flow(f) else {
                continue;
            };
            let Some(id) = flow.file.triggers.buttons.first() else {
                continue;
            };
            let title = match menu_titles.get(id.value.as_str()) {
                Some(t) => self.render(t, None),
                None => flow
                    .file
                    .triggers
                    .keywords
                    .get(&self.conv.language)
                    .and_then(|k| k.first())
                    .map(|k| k.value.clone())
                    .unwrap_or_else(|| f.to_string()),
            };
            buttons.push(ReplyButton {
                id: id.value.clone(),
                title: limits::truncate(&title, limits::BUTTON_TITLE),
            });
        }
        if buttons.len() < 2 {
            return false;
        }
        let mut reply = self.plain("engine-did-you-mean");
        reply.body = limits::truncate(&reply.body, limits::BODY);
        reply.choices = Some(Choices::Buttons(buttons));
        self.effects.push(Effect::Reply(reply));
        true
    }

    fn invalid(&mut self, st: &'a State) {
        self.note_misunderstood();
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
        if expect.is_some_and(|e| e.invalid.is_none() && e.media.is_some()) {
            // Text where files are wanted: which files, with the buttons to finish.
            return self.media_answer(st, Sent::Text);
        }
        let id = expect
            .and_then(|e| e.invalid.as_ref())
            .map(|i| i.value.as_str())
            .unwrap_or("engine-misunderstood");
        self.reprompt(st, id);
    }

    fn misunderstood(&mut self, st: &'a State, message: &str) {
        self.note_misunderstood();
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
        // On a media step the slot holds the files; the button ("Done") only moves on.
        if !is_media_step(st) {
            self.save_answer(st, Value::String(b.id.value.clone()));
        } else if let Some(slot) = &st.save {
            // Always a list afterwards, even for a position entered before the step had one.
            self.conv
                .slots
                .entry(slot.value.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
        }
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
                self.conv.language_settled = true;
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
            if let Some(send) = &st.send_files {
                self.send_files(send);
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
                    action: a.value.clone(),
                    args: Value::Object(args),
                });
                self.conv.pending_action = Some(a.value.name().to_owned());
                return;
            }
            if is_media_step(st)
                && let Some(slot) = &st.save
            {
                // Each visit collects afresh: files from an abandoned attempt are not sent.
                self.conv
                    .slots
                    .insert(slot.value.clone(), Value::Array(Vec::new()));
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

    /// The files of a `send_files:` slot, with the caption rendered in the contact's
    /// language; nothing when the slot holds none (e.g. no letter on file).
    fn send_files(&mut self, send: &SendFiles) {
        let files = MediaRef::list(self.conv.slots.get(&send.slot.value));
        if files.is_empty() {
            return;
        }
        let args = self.args(&self.conv.slots);
        let caption = send
            .caption
            .as_ref()
            .map(|c| limits::truncate(&self.render(&c.value, Some(&args)), limits::CAPTION));
        self.effects.push(Effect::SendFiles { files, caption });
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
        let offered: Vec<&Button> = st.buttons.iter().filter(|b| self.offers(b)).collect();
        let n = offered.len();
        if n == 0 {
            return None;
        }
        if n <= limits::MAX_BUTTONS {
            return Some(Choices::Buttons(
                offered
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
        for b in offered.iter().take(limits::MAX_ROWS) {
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

/// Whether the state collects files (`expect.media`).
fn is_media_step(st: &State) -> bool {
    st.expect.as_ref().is_some_and(|e| e.media.is_some())
}

/// What came to a step that collects files.
enum Sent<'f> {
    /// A file that was kept in the media store.
    File(&'f MediaRef),
    /// A file that could not be kept.
    NotKept,
    /// Text instead of a file.
    Text,
}

/// Index of the choice the text names: its title (case-insensitive) or its 1-based number.
fn pick(text: &str, titles: &[String]) -> Option<usize> {
    let keys: Vec<String> = titles.iter().map(|t| normalize_keyword(t)).collect();
    pick_key(text, &keys)
}

/// [`pick`] among titles already spelled as [`normalize_keyword`] spells them.
fn pick_key(text: &str, titles: &[String]) -> Option<usize> {
    let longest = titles.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    // Longer than every title, the text can still be a number ("0002"), never anything else.
    // Native digits map to ASCII ones one for one, before or after normalising.
    let t = match normalize_keyword_within(text, longest) {
        Some(t) => ascii_digits(&t),
        None if text.chars().all(|c| {
            c.is_ascii_digit() || matches!(c, '+' | '०'..='९' | '௦'..='௯') || is_keyword_trim(c)
        }) =>
        {
            normalize_keyword(&ascii_digits(text))
        }
        None => return None,
    };
    if let Ok(n) = t.parse::<usize>()
        && (1..=titles.len()).contains(&n)
    {
        return Some(n - 1);
    }
    titles.iter().position(|title| *title == t)
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
