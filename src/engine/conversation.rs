//! The engine's vocabulary: a [`Conversation`] (where a contact is, what was said, who is
//! talking), the [`Event`]s that move it, and what a step yields ([`StepOutcome`]: the
//! [`Effect`]s to perform, [`Reply`]s among them, and the [`Hop`]s through the flows).
//! [`super::runtime::step`] turns one into the next.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::media_slot::MediaRef;
use super::model::{FlowId, StateId};

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
    /// Whether the language is settled: chosen in the language flow, or once taken from the
    /// contact's own writing (Hinglish → Hindi). Free text does not switch it again, so a
    /// contact who mixes languages is not bounced between them.
    #[serde(default)]
    pub language_settled: bool,
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
            language_settled: false,
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
    /// The contact sent an image, document, audio, video or sticker: the file as kept in the
    /// media store, or `None` when it was not kept (the dialogue layer already told the
    /// contact why, or no store is configured).
    Media(Option<MediaRef>),
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
    pub(super) fn is_from_contact(&self) -> bool {
        matches!(
            self,
            Event::Text(_)
                | Event::Button { .. }
                | Event::ListRow { .. }
                | Event::Media(_)
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
        /// The action, resolved when the flow was read.
        action: super::actions::ActionRef,
        /// Arguments: an object of the slots the state names.
        args: Value,
    },
    /// Send files from the media store (a `send_files:` state), each as an image or a
    /// document message by its kind, before the state's words. Free-form only: outside the
    /// window they are not sent (the runner records why), as text without a template.
    SendFiles {
        /// The files, in the slot's order.
        files: Vec<MediaRef>,
        /// The rendered caption, on each file.
        caption: Option<String>,
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
    /// Free text the bot could not place, for the dashboard's list of phrases to add.
    Misunderstood {
        /// What was typed, already masked (`privacy::mask_text`).
        text: String,
        /// `flow.state` it came in at, or `-` between conversations.
        place: String,
    },
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
