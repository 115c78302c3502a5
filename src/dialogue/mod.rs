//! The dialogue runner: the async edge around the pure engine. For each inbound message it
//! loads the contact's conversation, turns the message into an engine event, calls
//! [`engine::step`](crate::engine::step), performs the effects (replies into the outbox,
//! insurer actions whose results go back into the engine, hand-offs, consent changes) and
//! saves the conversation, all in the pipeline's transaction: the message, its effects and the
//! new state commit together or not at all.
//!
//! Here: the [`FlowRunner`] and what one turn carries. Its rooms:
//! - `handler`: the pipeline's [`MessageHandler`](crate::ingest::pipeline::MessageHandler):
//!   prefetch, the external understanding ask, one message through the engine, the batch save;
//! - [`effects`]: what the engine's effects do (replies into the composer, files, consent
//!   log, "not understood" rows; hand-offs through [`crate::handoff`]);
//! - [`timers`]: the agent wait limit, unanswered messages and idle agent conversations;
//! - [`conversations`]: the conversation row, loaded and saved;
//! - [`flows`] (the live flow set, reloadable) and [`hops`] (the flow-path counts).

pub mod conversations;
pub mod effects;
pub mod flows;
mod handler;
pub mod hops;
pub mod timers;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use serde_json::Value;

use crate::config::hours::OfficeHours;
use crate::consent::{ConsentState, Source};
use crate::engine::Ranking;
use crate::engine::actions::Action;
use crate::ingest::pipeline::BoxFuture;
use crate::messaging::composer::{Composer, Line};
use crate::messaging::handover::FreshBatch;
use crate::nlu::NluClient;
use crate::store::entities::contact;
pub use conversations::{load, save};
pub use effects::{AFTER_HOURS_MESSAGE, body_for, event_for};
use flows::FlowStore;

pub use crate::insurer::ActionResult;

/// Runs insurer actions (`policy.list`, `claim.status`, …) for a contact.
pub trait ActionExecutor: Send + Sync + 'static {
    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        contact: &'a contact::Model,
        action: Action,
        args: &'a Value,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, ActionResult>;
}

impl ActionExecutor for crate::insurer::Insurer {
    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        contact: &'a contact::Model,
        action: Action,
        args: &'a Value,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, ActionResult> {
        Box::pin(self.run(txn, contact, action, args, now))
    }
}

/// The flow engine as the pipeline's message handler.
pub struct FlowRunner {
    pub flows: Arc<FlowStore>,
    pub actions: Arc<dyn ActionExecutor>,
    pub composer: Composer,
    pub default_language: String,
    /// What differs by the business number written to, by phone number id: a number not
    /// listed has `default_language` and every flow.
    pub lines: HashMap<String, LineDialogue>,
    /// When agents answer; outside these hours a hand-off is followed by a notice saying when
    /// to expect a reply. `None`: no notice (conversation tests, tools).
    pub office_hours: Option<OfficeHours>,
    /// A conversation an agent took and left without a word either way for this long (office
    /// hours) is closed and back with the bot; `None`: never.
    pub agent_idle_close: Option<chrono::Duration>,
    /// A policyholder's message the agent who has the conversation leaves unanswered this long
    /// (office hours) puts the conversation back in the queue for any agent; `None`: never.
    pub agent_reply_limit: Option<chrono::Duration>,
    /// The size limits of inbound media, named in the answer to a file that is too large.
    pub media_limits: crate::config::media::KindLimits,
    /// Where the files a flow sends (`send_files:`) are kept; `None`: such states send none.
    pub media_store: Option<crate::media::MediaStore>,
    /// The external understanding service, when `[nlu] url` is set.
    pub nlu: Option<Arc<NluClient>>,
    /// Its answers for the messages about to be handled, by inbound message id: asked in
    /// [`crate::ingest::pipeline::MessageHandler::before_batch`], taken by `handle`.
    pub understood: Mutex<HashMap<i64, Ranking>>,
}

/// One business number's part in conversations (`[[whatsapp.numbers]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineDialogue {
    /// The language a contact who has no conversation yet starts in when writing to it.
    pub language: String,
    /// The flows that may start on it (see [`crate::engine::step_on`]); `None`: every flow.
    pub flows: Option<HashSet<String>>,
}

impl LineDialogue {
    /// Each configured number's language and flows, by phone number id.
    pub fn from_settings(settings: &crate::config::Settings) -> HashMap<String, LineDialogue> {
        settings
            .numbers()
            .into_iter()
            .map(|n| {
                let line = LineDialogue {
                    language: n.default_language,
                    flows: n.flows.map(|f| f.into_iter().collect()),
                };
                (n.phone_number_id, line)
            })
            .collect()
    }
}

impl FlowRunner {
    /// The language a new conversation on the number `number` starts in.
    fn language_on(&self, number: Option<&str>) -> &str {
        number
            .and_then(|n| self.lines.get(n))
            .map_or(&self.default_language, |l| &l.language)
    }

    /// The flows that may start on the number `number` (`None`: every flow).
    fn flows_on(&self, number: Option<&str>) -> Option<&HashSet<String>> {
        number
            .and_then(|n| self.lines.get(n))
            .and_then(|l| l.flows.as_ref())
    }
}

/// What the effects of one inbound message need to know.
struct Turn<'a> {
    txn: &'a DatabaseTransaction,
    contact: &'a contact::Model,
    /// The business number the message came to (`None`: a timer's turn, or a webhook that
    /// named none): which flows answer.
    number: Option<&'a str>,
    inbound_id: Option<i64>,
    /// How a consent change arrived: `keyword` or `button`.
    source: Source,
    /// What the contact sent, kept verbatim in the consent log.
    said: Option<String>,
    /// Where replies that may go at once are handed to the sender, with the wamid they answer
    /// (see [`crate::messaging::composer::queue_from_pipeline`]); `None`: queued for the sender's claim.
    fresh: Option<(&'a FreshBatch, &'a str)>,
    /// The business number replies leave from ([`Line::Answered`] with the inbound message's
    /// own, read with it, so no reply reads it again).
    line: Line<'a>,
    /// The contact's consent as read for the batch; forgotten once this turn records a
    /// change (the gate then reads the log, change included).
    consent: Mutex<Option<ConsentState>>,
}
