//! The flow file format: what a `flows/<name>.yaml` file may contain.
//!
//! The types deserialize straight from YAML with `serde-saphyr`; every value a diagnostic
//! may point at is a [`Sp`] (spanned) value so the linter can report `file:line:column`.
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo such as `nxet:` is an error,
//! not a silently ignored line. `flows/schema.json` describes the same format for editors;
//! a unit test keeps the two in step.
//!
//! A flow is a small state machine. A state can, in this order: change the language, record a
//! consent change, say a message (with buttons or a list), hand the conversation to an agent,
//! call an insurer action (and branch `on` its outcome), wait for an answer (`expect`),
//! call another flow and come back, then go `next`. A state waiting for files (`expect.media`)
//! collects them until one of its buttons is tapped.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

/// A value with the YAML position it came from.
pub type Sp<T> = serde_saphyr::Spanned<T>;

/// Identifier of a flow (`flow:` key), e.g. `claim_status`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlowId(String);

/// Identifier of a state inside a flow, e.g. `ask_number`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize)]
#[serde(transparent)]
pub struct StateId(String);

/// Checks the shared identifier syntax: lower-case ASCII letter, then letters, digits, `_`.
fn valid_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

macro_rules! ident_newtype {
    ($t:ident, $what:literal) => {
        impl $t {
            /// Validates the identifier syntax (`[a-z][a-z0-9_]*`).
            ///
            /// # Errors
            /// A human-readable reason when the syntax is wrong.
            pub fn parse(s: &str) -> Result<Self, String> {
                if valid_ident(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(format!(
                        concat!($what, " '{}' must be lower-case letters, digits and '_', starting with a letter"),
                        s
                    ))
                }
            }
            /// Wraps an id that was already validated (it comes from a checked flow set).
            pub(crate) fn checked(s: &str) -> Self {
                Self(s.to_owned())
            }
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
ident_newtype!(FlowId, "flow id");
ident_newtype!(StateId, "state id");

/// A map that keeps the file order and the position of every key.
///
/// serde's `BTreeMap` would lose both; the linter needs the key position for messages such
/// as "state 'x' is unreachable". Duplicate keys are already rejected by the YAML parser.
#[derive(Debug, Clone)]
pub struct OrderedMap<V>(pub Vec<(Sp<String>, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> OrderedMap<V> {
    /// Looks a key up by name.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
    }
    /// Iterates over keys and values in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&Sp<String>, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
    /// Iterates over mutable values in file order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }
    /// Whether the key exists.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    /// The keys, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.value.as_str())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<Sp<String>, V>()? {
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(V2(std::marker::PhantomData))
    }
}

/// The special job a flow does for the engine. Each role must be filled by exactly one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The main menu: where new, idle and stranded conversations start.
    Menu,
    /// Talk to a person. Its first trigger button is offered after repeated misunderstandings.
    Agent,
    /// Help text.
    Help,
    /// Language choice.
    Language,
    /// STOP: its keywords match in every mode, even with an agent.
    OptOut,
    /// START: its keywords are the only thing an opted-out contact gets an answer to.
    OptIn,
    /// "Cancel": stop what is in progress (a question, the wait for an agent) and go back to
    /// the menu. Alone with nothing in progress the word means STOP (the engine decides).
    /// Optional: without such a flow its words are ordinary keywords.
    Cancel,
}

impl Role {
    /// The roles every flow set must fill, in the order they are checked.
    pub const ALL: [Role; 6] = [
        Role::Menu,
        Role::Agent,
        Role::Help,
        Role::Language,
        Role::OptOut,
        Role::OptIn,
    ];
    /// Roles a flow set may leave unfilled.
    pub const OPTIONAL: [Role; 1] = [Role::Cancel];
    /// The name used in flow files.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Menu => "menu",
            Role::Agent => "agent",
            Role::Help => "help",
            Role::Language => "language",
            Role::OptOut => "opt_out",
            Role::OptIn => "opt_in",
            Role::Cancel => "cancel",
        }
    }
}

/// One flow file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    /// The flow id; unique across the flow set.
    pub flow: Sp<String>,
    /// Free text for authors; never shown to contacts.
    #[serde(default)]
    pub description: Option<String>,
    /// The engine role this flow fills, if any.
    #[serde(default)]
    pub role: Option<Sp<Role>>,
    /// What starts this flow from any state (global intents).
    #[serde(default)]
    pub triggers: Triggers,
    /// The first state.
    pub start: Sp<String>,
    /// The states, keyed by state id.
    pub states: OrderedMap<State>,
}

/// What starts a flow from anywhere. Keywords match the whole message only (case, spacing and
/// trailing punctuation ignored), in every language, so "stop" starts opt-out but
/// "please stop the bill" does not.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    /// Keywords per language code (`en`, `hi`, `ta`).
    #[serde(default)]
    pub keywords: BTreeMap<String, Vec<Sp<String>>>,
    /// Button or list row ids that start this flow when tapped from any message.
    #[serde(default)]
    pub buttons: Vec<Sp<String>>,
}

/// A consent change a state records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentKind {
    /// Stop everything that is not essential.
    OptOut,
    /// Resume service messages.
    OptIn,
    /// Agree to marketing messages.
    OptInMarketing,
    /// Decline marketing messages (the other answer of the opt-in prompt).
    OptOutMarketing,
}

/// One state of a flow.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Switch the contact's language (`en`, `hi`, `ta`) before saying anything.
    #[serde(default)]
    pub set_language: Option<Sp<String>>,
    /// Record a consent change (an effect with an audit record in the runner).
    #[serde(default)]
    pub consent: Option<Sp<ConsentKind>>,
    /// Send the files a slot holds (media references from a media step or an action's
    /// result), before `say`.
    #[serde(default)]
    pub send_files: Option<SendFiles>,
    /// Fluent message id of the body. Its arguments are the conversation's slots.
    #[serde(default)]
    pub say: Option<Sp<String>>,
    /// Fluent message id of the header (≤ 60 characters).
    #[serde(default)]
    pub header: Option<Sp<String>>,
    /// Fluent message id of the footer (≤ 60 characters).
    #[serde(default)]
    pub footer: Option<Sp<String>>,
    /// Choices: 1–3 become reply buttons, 4–10 a list.
    #[serde(default)]
    pub buttons: Vec<Button>,
    /// Fluent id of the list's button label (required with 4 or more buttons, ≤ 20 characters).
    #[serde(default)]
    pub list_button: Option<Sp<String>>,
    /// A list built at run time from a slot holding an array (e.g. the contact's policies).
    #[serde(default)]
    pub list_from: Option<ListFrom>,
    /// The template to send instead when the 24-hour window is closed.
    #[serde(default)]
    pub template: Option<TemplateRef>,
    /// Hand the conversation to an agent, with this reason for the queue.
    #[serde(default)]
    pub handoff: Option<Sp<String>>,
    /// Call an insurer action; the conversation waits for its outcome.
    #[serde(default)]
    pub action: Option<Sp<super::actions::ActionRef>>,
    /// Slots passed to the action as its arguments.
    #[serde(default)]
    pub args: Vec<Sp<String>>,
    /// Where to go for each action outcome.
    #[serde(default)]
    pub on: OrderedMap<Sp<String>>,
    /// Wait for an answer of this kind.
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Slot that receives the answer (the parsed value, or the tapped button's id).
    #[serde(default)]
    pub save: Option<Sp<String>>,
    /// Run another flow first; when it reaches `return`, continue at `next`.
    #[serde(default)]
    pub call: Option<Sp<String>>,
    /// Where to go afterwards: a state, `flow:<id>`, `end` or `return`.
    #[serde(default)]
    pub next: Option<Sp<String>>,
}

impl State {
    /// Whether the conversation stops here to wait for the contact (or an action).
    pub fn waits(&self) -> bool {
        !self.buttons.is_empty()
            || self.list_from.is_some()
            || self.expect.is_some()
            || self.action.is_some()
            || self.handoff.is_some()
    }
}

/// One button (or list row when there are more than three).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    /// The id WhatsApp sends back when tapped; unique within the state.
    pub id: Sp<String>,
    /// Fluent id of the title (≤ 20 characters as a button, ≤ 24 as a list row).
    pub title: Sp<String>,
    /// Fluent id of the row description (lists only, ≤ 72 characters).
    #[serde(default)]
    pub description: Option<Sp<String>>,
    /// Fluent id of the list section this row belongs to (lists only, ≤ 24 characters).
    #[serde(default)]
    pub section: Option<Sp<String>>,
    /// Where the tap goes; without it the state's `next` is used.
    #[serde(default)]
    pub goto: Option<Sp<String>>,
}

/// `send_files:` — the files of a slot, each sent as an image or a document message (its
/// kind decides), with a caption. Session messages: inside the 24-hour window only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendFiles {
    /// The slot: a list of media references (a media step's `save:`, or an action's result
    /// field that holds files, see `actions::MEDIA_RESULT_FIELDS`). Empty or unset: nothing
    /// is sent.
    pub slot: Sp<String>,
    /// Fluent id of the caption put on each file (at most 1024 characters); its arguments
    /// are the conversation's slots.
    #[serde(default)]
    pub caption: Option<Sp<String>>,
}

/// A list whose rows come from a slot holding an array of objects (at most 10 are shown).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFrom {
    /// Slot holding the array.
    pub items: Sp<String>,
    /// Field of each item used as the row id.
    pub id: Sp<String>,
    /// Fluent id of the row title; its arguments are the item's fields.
    pub title: Sp<String>,
    /// Fluent id of the row description; its arguments are the item's fields.
    #[serde(default)]
    pub description: Option<Sp<String>>,
    /// Fluent id of the list button label.
    pub button: Sp<String>,
}

/// A template fallback: an approved template name and the slots that fill its parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    /// The approved template's name.
    pub name: Sp<String>,
    /// Slots giving the body parameters, in order.
    #[serde(default)]
    pub params: Vec<Sp<String>>,
}

/// What answer a state waits for. Exactly one of `text`, `number`, `date`, `choice`, `media`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Free text, optionally matching a pattern.
    #[serde(default)]
    pub text: Option<TextExpect>,
    /// A number (Indian grouping, ₹ and Devanagari/Tamil digits accepted).
    #[serde(default)]
    pub number: Option<NumberExpect>,
    /// A date (dd/mm/yyyy, yyyy-mm-dd, "15 Jan 1980").
    #[serde(default)]
    pub date: Option<DateExpect>,
    /// One of the offered buttons (also by typing its title or its number).
    #[serde(default)]
    pub choice: Option<bool>,
    /// Files of these kinds (`image`, `document`, `audio`, `video`, `sticker`), collected into
    /// the `save` slot as a list of [`super::media_slot::MediaRef`]s until one of the state's
    /// buttons ("Done") is tapped.
    #[serde(default)]
    pub media: Option<Vec<Sp<String>>>,
    /// With `media`: how many files the step takes (default 10, at most 20).
    #[serde(default)]
    pub max: Option<Sp<u32>>,
    /// Fluent id of the re-prompt after an invalid answer.
    #[serde(default)]
    pub invalid: Option<Sp<String>>,
    /// How many re-prompts before giving up (default 2).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Where to go when the retries are used up; default: offer an agent.
    #[serde(default)]
    pub on_fail: Option<Sp<String>>,
}

/// Free-text answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextExpect {
    /// A regular expression the trimmed answer must match (Rust `regex` syntax).
    #[serde(default)]
    pub pattern: Option<Sp<String>>,
    /// Upper-case the answer before matching and saving (claim and policy numbers).
    #[serde(default)]
    pub uppercase: bool,
    /// The compiled pattern, filled by the linter.
    #[serde(skip)]
    pub regex: Option<Regex>,
}

/// Numeric answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberExpect {
    /// Smallest accepted value.
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest accepted value.
    #[serde(default)]
    pub max: Option<f64>,
    /// Reject fractions.
    #[serde(default)]
    pub integer: bool,
}

/// Date answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateExpect {
    /// Reject dates after today (dates of birth).
    #[serde(default)]
    pub past: bool,
    /// Reject dates before today.
    #[serde(default)]
    pub future: bool,
}

/// Where a transition goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A state of the same flow.
    State(String),
    /// The start state of another flow.
    Flow(String),
    /// End the conversation.
    End,
    /// Back to the flow that `call`ed this one.
    Return,
}

impl Target {
    /// Parses `state`, `flow:<id>`, `end` or `return`.
    pub fn parse(s: &str) -> Target {
        match s {
            "end" => Target::End,
            "return" => Target::Return,
            _ => match s.strip_prefix("flow:") {
                Some(f) => Target::Flow(f.trim().to_owned()),
                None => Target::State(s.to_owned()),
            },
        }
    }
}

/// WhatsApp Cloud API limits for interactive messages (§3.2–3.3 of the API notes).
pub mod limits {
    /// Reply buttons per message.
    pub const MAX_BUTTONS: usize = 3;
    /// Rows across all sections of a list.
    pub const MAX_ROWS: usize = 10;
    /// Reply button title.
    pub const BUTTON_TITLE: usize = 20;
    /// List row title.
    pub const ROW_TITLE: usize = 24;
    /// List row description.
    pub const ROW_DESCRIPTION: usize = 72;
    /// List section title.
    pub const SECTION_TITLE: usize = 24;
    /// The list's button label.
    pub const LIST_BUTTON: usize = 20;
    /// Interactive body text.
    pub const BODY: usize = 1024;
    /// A file's caption (image or document message).
    pub const CAPTION: usize = 1024;
    /// Plain text body.
    pub const TEXT_BODY: usize = 4096;
    /// Header and footer text.
    pub const HEADER: usize = 60;
    /// Footer text.
    pub const FOOTER: usize = 60;
    /// Row id length (WhatsApp allows 200 for rows, 256 for buttons: use the smaller).
    pub const ID: usize = 200;

    /// Length as WhatsApp counts it (UTF-16 code units, so an emoji counts as two).
    pub fn len(s: &str) -> usize {
        s.encode_utf16().count()
    }

    /// Cuts `s` to `max` units, ending with an ellipsis when it had to cut.
    pub fn truncate(s: &str, max: usize) -> String {
        if len(s) <= max {
            return s.to_owned();
        }
        let mut out = String::new();
        for c in s.chars() {
            if len(&out) + c.len_utf16() + 1 > max {
                break;
            }
            out.push(c);
        }
        out.push('…');
        out
    }
}

/// Every key the loader accepts, per object, for the schema test and editor tooling.
pub const KNOWN_KEYS: &[(&str, &[&str])] = &[
    (
        "flow",
        &["flow", "description", "role", "triggers", "start", "states"],
    ),
    ("triggers", &["keywords", "buttons"]),
    (
        "state",
        &[
            "set_language",
            "consent",
            "send_files",
            "say",
            "header",
            "footer",
            "buttons",
            "list_button",
            "list_from",
            "template",
            "handoff",
            "action",
            "args",
            "on",
            "expect",
            "save",
            "call",
            "next",
        ],
    ),
    ("button", &["id", "title", "description", "section", "goto"]),
    (
        "list_from",
        &["items", "id", "title", "description", "button"],
    ),
    ("template", &["name", "params"]),
    ("send_files", &["slot", "caption"]),
    (
        "expect",
        &[
            "text", "number", "date", "choice", "media", "max", "invalid", "retries", "on_fail",
        ],
    ),
    ("text", &["pattern", "uppercase"]),
    ("number", &["min", "max", "integer"]),
    ("date", &["past", "future"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(Target::parse("end"), Target::End);
        assert_eq!(Target::parse("return"), Target::Return);
        assert_eq!(Target::parse("flow:menu"), Target::Flow("menu".into()));
        assert_eq!(Target::parse("lookup"), Target::State("lookup".into()));
    }

    #[test]
    fn ids_are_checked() {
        assert!(FlowId::parse("claim_status").is_ok());
        assert!(FlowId::parse("Claim").is_err());
        assert!(StateId::parse("9x").is_err());
    }

    #[test]
    fn flow_file_keeps_positions() {
        let src = "flow: demo\nstart: a\nstates:\n  a:\n    say: hello\n    next: end\n";
        let f: FlowFile = serde_saphyr::from_str(src).unwrap();
        let (k, st) = &f.states.0[0];
        assert_eq!((k.referenced.line(), k.referenced.column()), (4, 3));
        let say = st.say.as_ref().unwrap();
        assert_eq!((say.referenced.line(), say.referenced.column()), (5, 10));
    }
    /// The field names serde accepts for `T`, read from its "unknown field" error.
    fn serde_fields<T: for<'de> Deserialize<'de> + fmt::Debug>() -> Vec<String> {
        let err = serde_saphyr::from_str::<T>("zz_unknown: 1\n").unwrap_err();
        let text = err.without_snippet().to_string();
        let list = text
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("{text}"));
        let list = list.split(" at line").next().unwrap();
        list.split(',')
            .map(|s| s.trim().trim_matches('`').to_owned())
            .collect()
    }

    #[test]
    fn schema_names_every_key_the_loader_accepts() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../flows/schema.json")).unwrap();
        let serde: Vec<(&str, Vec<String>)> = vec![
            ("flow", serde_fields::<FlowFile>()),
            ("triggers", serde_fields::<Triggers>()),
            ("state", serde_fields::<State>()),
            ("button", serde_fields::<Button>()),
            ("list_from", serde_fields::<ListFrom>()),
            ("template", serde_fields::<TemplateRef>()),
            ("expect", serde_fields::<Expect>()),
            ("text", serde_fields::<TextExpect>()),
            ("number", serde_fields::<NumberExpect>()),
            ("date", serde_fields::<DateExpect>()),
        ];
        for (obj, fields) in serde {
            let known: Vec<String> = KNOWN_KEYS
                .iter()
                .find(|(o, _)| *o == obj)
                .unwrap()
                .1
                .iter()
                .map(|s| s.to_string())
                .collect();
            assert_eq!(
                fields, known,
                "KNOWN_KEYS for '{obj}' differ from the serde types"
            );
            let props = if obj == "flow" {
                &schema["properties"]
            } else {
                &schema["$defs"][obj]["properties"]
            };
            let mut in_schema: Vec<String> = props
                .as_object()
                .unwrap_or_else(|| panic!("{obj}"))
                .keys()
                .cloned()
                .collect();
            let mut known_sorted = known.clone();
            in_schema.sort();
            known_sorted.sort();
            assert_eq!(in_schema, known_sorted, "schema.json properties of '{obj}'");
        }
        // The action names are generated from the catalogue and checked there
        // (`actions::tests::flows_schema_lists_the_catalogue_actions`).
        let roles: Vec<&str> = schema["properties"]["role"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            Role::ALL
                .iter()
                .chain(&Role::OPTIONAL)
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
        );
    }
}
