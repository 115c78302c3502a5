//! The dialogue runner: the async edge around the pure engine. For each inbound message it
//! loads the contact's conversation, turns the message into an engine event, calls
//! [`engine::step`](crate::engine::step), performs the effects (replies into the outbox,
//! insurer actions whose results go back into the engine, hand-offs, consent changes) and
//! saves the conversation, all in the pipeline's transaction: the message, its effects and the
//! new state commit together or not at all.

pub mod flows;
pub mod hops;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};
use serde_json::Value;

use crate::config::hours::OfficeHours;
use crate::consent::{self, Change, ConsentState, NewEntry, Scope, Source};
use crate::engine::{
    self, Choices, ConsentChange, ConsentScope, Conversation, Effect, Event, Mode, Ranking, Reply,
};
use crate::ingest::pipeline::{BoxFuture, MessageHandler, PendingMessage, Prefetched};
use crate::messaging::composer::{
    self, Composer, Intent, PipelineQueued, Purpose, Queued, StoredIntent, TemplateChoice,
};
use crate::messaging::handover::FreshBatch;
use crate::nlu::NluClient;
use crate::store::entities::handoff::State as HandoffState;
use crate::store::entities::{contact, conversation, handoff, inbound_message, outbox};
use crate::store::{begin_write, now_ms};
use crate::whatsapp::inbound::MessageContent;
use crate::whatsapp::outbound::{self as wa, OutboundBody};
use flows::FlowStore;

/// Insurer actions one message may trigger before the runner stops the chain (the linter
/// rejects loops; this is the backstop against a misbehaving action).
const MAX_ACTIONS_PER_MESSAGE: usize = 16;

pub use crate::insurer::ActionResult;

/// Runs insurer actions (`policy.list`, `claim.status`, …) for a contact.
pub trait ActionExecutor: Send + Sync + 'static {
    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        contact: &'a contact::Model,
        name: &'a str,
        args: &'a Value,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, ActionResult>;
}

impl ActionExecutor for crate::insurer::Insurer {
    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        contact: &'a contact::Model,
        name: &'a str,
        args: &'a Value,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, ActionResult> {
        Box::pin(self.run_action(txn, contact, name, args, now))
    }
}

/// The flow engine as the pipeline's message handler.
pub struct FlowRunner {
    pub flows: Arc<FlowStore>,
    pub actions: Arc<dyn ActionExecutor>,
    pub composer: Composer,
    pub default_language: String,
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
    /// The external understanding service, when `[nlu] url` is set.
    pub nlu: Option<Arc<NluClient>>,
    /// Its answers for the messages about to be handled, by inbound message id: asked in
    /// [`MessageHandler::before_batch`], taken by `handle`.
    pub understood: Mutex<HashMap<i64, Ranking>>,
}

/// Answers kept at most for messages that were then not handled here (another instance took
/// the contact between the ask and the lease): past it they are dropped.
const MAX_UNTAKEN_ANSWERS: usize = 1024;

impl MessageHandler for FlowRunner {
    fn before_batch<'a>(
        &'a self,
        db: &'a DatabaseConnection,
        contacts: &'a [i64],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(nlu) = &self.nlu else {
                return;
            };
            let asks = match self.free_texts(db, contacts).await {
                Ok(asks) => asks,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the messages to understand; built-in matcher answers");
                    return;
                }
            };
            if asks.is_empty() {
                return;
            }
            let flows = self.flows.current();
            let mut expected: Vec<String> = flows.understanding().intents().to_vec();
            expected.sort();
            expected.dedup();
            let answers =
                futures_util::future::join_all(asks.iter().map(|(id, text, language)| async {
                    (*id, nlu.parse(text, language, &expected).await)
                }))
                .await;
            let mut understood = self.understood.lock().expect("understood answers");
            if understood.len() > MAX_UNTAKEN_ANSWERS {
                understood.clear();
            }
            understood.extend(answers.into_iter().filter_map(|(id, r)| Some((id, r?))));
        })
    }

    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        message: &'a PendingMessage,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Some(event) = event_for(&message.content) else {
                return Ok(());
            };
            let contact = match &message.contact {
                Some(contact) => contact.clone(),
                None => contact::Entity::find_by_id(message.contact_id)
                    .one(txn)
                    .await?
                    .ok_or_else(|| {
                        DbErr::RecordNotFound(format!("contact {}", message.contact_id))
                    })?,
            };
            let (stored, consent) = match &message.prefetched {
                Some(prefetched) => (
                    prefetched.conversation.as_ref().and_then(parse),
                    Some(ConsentState::fold(&prefetched.consent)),
                ),
                None => (load(txn, contact.id).await?, None),
            };
            let conversation = match stored {
                Some(c) => c,
                None => {
                    self.new_conversation(txn, &contact, consent.as_ref())
                        .await?
                }
            };
            let source = match &event {
                Event::Button { .. } | Event::ListRow { .. } => Source::Button,
                _ => Source::Keyword,
            };
            let said = match &message.content {
                MessageContent::Text { body } => Some(body.clone()),
                MessageContent::ButtonReply { title, .. }
                | MessageContent::ListReply { title, .. } => Some(title.clone()),
                _ => None,
            };
            let turn = Turn {
                txn,
                contact: &contact,
                inbound_id: Some(message.id),
                source,
                said,
                fresh: message.fresh.as_ref().map(|f| (f, message.wamid.as_str())),
                consent: Mutex::new(consent),
            };
            let (refusal, event) = match &message.content {
                MessageContent::Media {
                    kind,
                    caption,
                    filename,
                    ..
                } => {
                    let row = crate::media::fetch::outcomes(txn, &[message.id])
                        .await?
                        .into_iter()
                        .next();
                    let kept = row.as_ref().and_then(|r| media_ref(r, caption, filename));
                    let refusal = match &row {
                        Some(row) => self.media_refusal(row, kind, &conversation.language),
                        None => None,
                    };
                    (refusal, Event::Media(kept))
                }
                _ => (None, event),
            };
            let now = Utc::now();
            let (conversation, moves) = match refusal {
                // The conversation stays where it was: the step that asked for the file asks
                // for it again through this answer.
                Some(reply) => {
                    queue_reply(&turn, &self.composer, &reply).await?;
                    (conversation, Vec::new())
                }
                None => {
                    let ranking = self
                        .understood
                        .lock()
                        .expect("understood answers")
                        .remove(&message.id);
                    self.run_events(&turn, conversation, event, ranking, now)
                        .await?
                }
            };
            let moves = hops::rows(&moves, now.timestamp_millis());
            match &message.prefetched {
                // Stored with the batch's others by `finish`, one statement each.
                Some(prefetched) => {
                    *prefetched.save.lock().expect("conversation to save") =
                        Some(row_for(contact.id, &conversation)?);
                    prefetched.hops.lock().expect("hops to save").extend(moves);
                }
                None => {
                    save(txn, contact.id, &conversation).await?;
                    hops::insert(txn, moves).await?;
                }
            }
            Ok(())
        })
    }

    fn finish<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        messages: &'a [PendingMessage],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let rows: Vec<conversation::ActiveModel> = messages
                .iter()
                .filter_map(|m| m.prefetched.as_ref())
                .filter_map(|p| p.save.lock().expect("conversation to save").take())
                .collect();
            upsert(txn, rows).await?;
            let moves = messages
                .iter()
                .filter_map(|m| m.prefetched.as_ref())
                .flat_map(|p| std::mem::take(&mut *p.hops.lock().expect("hops to save")))
                .collect();
            hops::insert(txn, moves).await?;
            Ok(())
        })
    }

    fn prefetch<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        messages: &'a mut [PendingMessage],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let contacts: Vec<contact::Model> =
                messages.iter().filter_map(|m| m.contact.clone()).collect();
            if contacts.is_empty() {
                return Ok(());
            }
            let mut conversations: HashMap<i64, conversation::Model> = conversation::Entity::find()
                .filter(conversation::Column::ContactId.is_in(contacts.iter().map(|c| c.id)))
                .all(txn)
                .await?
                .into_iter()
                .map(|row| (row.contact_id, row))
                .collect();
            let mut consent =
                consent::entries_for_contacts(txn, &self.composer.consent.hasher, &contacts)
                    .await?;
            for message in messages.iter_mut().filter(|m| m.contact.is_some()) {
                message.prefetched = Some(Prefetched {
                    conversation: conversations.remove(&message.contact_id),
                    consent: consent.remove(&message.contact_id).unwrap_or_default(),
                    save: Arc::default(),
                    hops: Arc::default(),
                });
            }
            Ok(())
        })
    }
}

/// How often waiting hand-offs are checked against the agent wait limit.
const TIMER_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

impl FlowRunner {
    /// Runs the engine's timers until `stop` is cancelled: every 30 s, a conversation waiting
    /// for an agent longer than the limit goes back to the bot and the policyholder is told
    /// (by the `agent_unavailable` template when the window has closed), so nobody waits for a
    /// person forever.
    pub async fn run_timers(
        self: Arc<Self>,
        db: DatabaseConnection,
        owner: String,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            // Requeue before the idle close: an unanswered message is not idleness.
            let checks = [
                Some(Due::WaitLimit),
                self.agent_reply_limit.map(Due::Unanswered),
                self.agent_idle_close.map(Due::Idle),
            ];
            for due in checks.into_iter().flatten() {
                match self.step_due(&db, (&owner, Utc::now()), due).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(conversations = n, "{}", due.describe()),
                    Err(e) => {
                        tracing::warn!(error = %e, check = due.describe(), "dialogue timer failed; tried again later")
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(TIMER_INTERVAL) => {}
            }
        }
    }

    /// Steps every conversation still waiting for an agent with [`Event::Timeout`] once it has
    /// waited its limit in office hours; the engine decides and cancels the hand-off. Returns
    /// how many went back to the bot.
    ///
    /// # Errors
    /// Database errors.
    pub async fn expire_agent_waits(
        &self,
        db: &DatabaseConnection,
        owner: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<usize> {
        self.step_due(db, (owner, now), Due::WaitLimit).await
    }

    /// Closes conversations an agent took and then left: nothing from the policyholder or the
    /// agent for `agent_idle_close` (office hours only). Without it a forgotten conversation
    /// kept the bot quiet for good; now the bot answers the policyholder's next message. The
    /// hand-off is closed as if the agent had closed it. Returns how many closed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn close_idle_agent_conversations(
        &self,
        db: &DatabaseConnection,
        owner: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<usize> {
        let Some(limit) = self.agent_idle_close else {
            return Ok(0);
        };
        self.step_due(db, (owner, now), Due::Idle(limit)).await
    }

    /// Puts back in the queue the conversations whose agent left the policyholder's message
    /// unanswered for `agent_reply_limit` (office hours): the hand-off is waiting again, for
    /// any agent, in its old place; the wait limit counts from now. Returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn requeue_unanswered(
        &self,
        db: &DatabaseConnection,
        owner: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<usize> {
        let Some(limit) = self.agent_reply_limit else {
            return Ok(0);
        };
        self.step_due(db, (owner, now), Due::Unanswered(limit))
            .await
    }

    /// For each conversation in the mode `due` is about, under the contact's processing lease
    /// (so it never interleaves with the contact's messages): once `due` has passed, the engine
    /// takes its event and the conversation is saved; a hand-off an agent had taken is closed
    /// with it once the conversation is back with the bot. Returns how many left the mode.
    async fn step_due(
        &self,
        db: &DatabaseConnection,
        (owner, now): (&str, DateTime<Utc>),
        due: Due,
    ) -> anyhow::Result<usize> {
        use sea_orm::QuerySelect;
        let (mode, event) = match due {
            Due::WaitLimit => (Mode::WaitingForAgent, Event::Timeout),
            Due::Idle(_) => (Mode::WithAgent, Event::AgentReleased),
            Due::Unanswered(_) => (Mode::WithAgent, Event::AgentUnresponsive),
        };
        let contacts: Vec<i64> = conversation::Entity::find()
            .select_only()
            .column(conversation::Column::ContactId)
            .filter(conversation::Column::Mode.eq(mode_name(mode)))
            .into_tuple()
            .all(db)
            .await?;
        let mut changed = 0;
        for contact_id in contacts {
            let txn = begin_write(db).await?;
            if !crate::ingest::pipeline::lease(&txn, contact_id, owner, now.timestamp_millis())
                .await?
            {
                txn.rollback().await?;
                continue;
            }
            let contact = contact::Entity::find_by_id(contact_id).one(&txn).await?;
            let conversation = load(&txn, contact_id).await?;
            if let (Some(contact), Some(conversation)) = (contact, conversation)
                && conversation.mode == mode
                && self.is_due(due, &txn, &contact, &conversation, now).await?
            {
                let turn = Turn {
                    txn: &txn,
                    contact: &contact,
                    inbound_id: None,
                    source: Source::Keyword,
                    said: None,
                    fresh: None,
                    consent: Mutex::new(None),
                };
                let (after, moves) = self
                    .run_events(&turn, conversation, event.clone(), None, now)
                    .await?;
                hops::insert(&txn, hops::rows(&moves, now.timestamp_millis())).await?;
                if after.mode != mode {
                    changed += 1;
                    match after.mode {
                        Mode::Bot => close_taken_handoff(&txn, contact_id).await?,
                        Mode::WaitingForAgent => requeue_taken_handoff(&txn, contact_id).await?,
                        _ => {}
                    }
                }
                save(&txn, contact_id, &after).await?;
            }
            crate::ingest::pipeline::release(&txn, contact_id, owner).await?;
            txn.commit().await?;
        }
        Ok(changed)
    }

    /// Whether `due` has passed for `conversation`. Waits count office hours only (a hand-off
    /// queued at 22:30 is not given up at 02:30, before anyone could answer it); for the wait
    /// limit the engine then checks the limit itself.
    async fn is_due(
        &self,
        due: Due,
        txn: &DatabaseTransaction,
        contact: &contact::Model,
        conversation: &Conversation,
        now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let waited = |since: DateTime<Utc>, limit| self.office_time_between(since, now) >= limit;
        Ok(match due {
            Due::WaitLimit => {
                let limit = self.flows.current().settings.agent_wait_limit;
                conversation
                    .mode_since
                    .is_none_or(|since| waited(since, limit))
            }
            Due::Idle(limit) => idle_since(txn, contact)
                .await?
                .is_some_and(|since| waited(since, limit)),
            Due::Unanswered(limit) => unanswered_since(txn, contact)
                .await?
                .is_some_and(|since| waited(since, limit)),
        })
    }
}

/// What the dialogue timer waits for.
#[derive(Clone, Copy)]
enum Due {
    /// A policyholder waiting for an agent past the wait limit (office hours).
    WaitLimit,
    /// A conversation with an agent with nothing either way for this long (office hours).
    Idle(chrono::Duration),
    /// A policyholder's message its agent has not answered for this long (office hours).
    Unanswered(chrono::Duration),
}

impl Due {
    /// What happened to the conversations found due, for the log.
    fn describe(self) -> &'static str {
        match self {
            Due::WaitLimit => "agent wait limit reached; back to the bot",
            Due::Unanswered(_) => "messages left unanswered by their agent; back in the queue",
            Due::Idle(_) => "agent conversations idle past the limit; closed, back to the bot",
        }
    }
}

/// The last sign of life in a conversation with an agent: the policyholder's last message, the
/// last message to them (in this mode, the agent's), or the agent taking it.
async fn idle_since(
    txn: &DatabaseTransaction,
    contact: &contact::Model,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok([
        contact.last_inbound_at,
        last_sent_at(txn, contact.id, None).await?,
        taken_at(txn, contact.id).await?,
    ]
    .into_iter()
    .flatten()
    .max()
    .and_then(DateTime::from_timestamp_millis))
}

/// Since when the policyholder has been waiting for the agent who has the conversation: their
/// last message (or the take, if later) when no agent message came after it; `None` when the
/// agent had the last word.
async fn unanswered_since(
    txn: &DatabaseTransaction,
    contact: &contact::Model,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let Some(last_inbound) = contact.last_inbound_at else {
        return Ok(None);
    };
    let last_reply = last_sent_at(txn, contact.id, Some("agent")).await?;
    if last_reply.is_some_and(|at| at >= last_inbound) {
        return Ok(None);
    }
    let taken = taken_at(txn, contact.id).await?;
    Ok(DateTime::from_timestamp_millis(
        taken.map_or(last_inbound, |t| t.max(last_inbound)),
    ))
}

/// When the last message to the contact (of `purpose`, if given) was queued.
async fn last_sent_at(
    txn: &DatabaseTransaction,
    contact_id: i64,
    purpose: Option<&str>,
) -> Result<Option<i64>, DbErr> {
    use sea_orm::QuerySelect;
    let mut query = outbox::Entity::find()
        .select_only()
        .column_as(outbox::Column::CreatedAt.max(), "last")
        .filter(outbox::Column::ContactId.eq(contact_id));
    if let Some(purpose) = purpose {
        query = query.filter(outbox::Column::Purpose.eq(purpose));
    }
    let last: Option<Option<i64>> = query.into_tuple().one(txn).await?;
    Ok(last.flatten())
}

/// When an agent took the contact's open hand-off.
async fn taken_at(txn: &DatabaseTransaction, contact_id: i64) -> Result<Option<i64>, DbErr> {
    use sea_orm::QuerySelect;
    let taken: Option<Option<i64>> = handoff::Entity::find()
        .select_only()
        .column_as(handoff::Column::TakenAt.max(), "taken")
        .filter(handoff::Column::ContactId.eq(contact_id))
        .filter(handoff::Column::State.eq(HandoffState::Taken))
        .into_tuple()
        .one(txn)
        .await?;
    Ok(taken.flatten())
}

/// Puts the contact's taken hand-off back in the queue: waiting, for any agent, in the place
/// its request gave it.
async fn requeue_taken_handoff(txn: &DatabaseTransaction, contact_id: i64) -> Result<(), DbErr> {
    let requeued = handoff::Entity::update_many()
        .col_expr(handoff::Column::State, Expr::value(HandoffState::Waiting))
        .col_expr(handoff::Column::AgentId, Expr::value(Option::<i64>::None))
        .col_expr(handoff::Column::TakenAt, Expr::value(Option::<i64>::None))
        .filter(handoff::Column::ContactId.eq(contact_id))
        .filter(handoff::Column::State.eq(HandoffState::Taken))
        .exec(txn)
        .await?;
    if requeued.rows_affected > 0 {
        tracing::info!(
            contact_id,
            "hand-off back in the queue: its agent left a message unanswered"
        );
    }
    Ok(())
}

/// Closes the contact's hand-off an agent had taken (the timer's close, as the agent's own).
async fn close_taken_handoff(txn: &DatabaseTransaction, contact_id: i64) -> Result<(), DbErr> {
    let closed = handoff::Entity::update_many()
        .col_expr(handoff::Column::State, Expr::value(HandoffState::Closed))
        .col_expr(handoff::Column::ClosedAt, Expr::value(now_ms()))
        .filter(handoff::Column::ContactId.eq(contact_id))
        .filter(handoff::Column::State.eq(HandoffState::Taken))
        .exec(txn)
        .await?;
    if closed.rows_affected > 0 {
        tracing::info!(contact_id, "hand-off closed after the agent left it idle");
    }
    Ok(())
}

/// What the effects of one inbound message need to know.
struct Turn<'a> {
    txn: &'a DatabaseTransaction,
    contact: &'a contact::Model,
    inbound_id: Option<i64>,
    /// How a consent change arrived: `keyword` or `button`.
    source: Source,
    /// What the contact sent, kept verbatim in the consent log.
    said: Option<String>,
    /// Where replies that may go at once are handed to the sender, with the wamid they answer
    /// (see [`composer::queue_from_pipeline`]); `None`: queued for the sender's claim.
    fresh: Option<(&'a FreshBatch, &'a str)>,
    /// The contact's consent as read for the batch; forgotten once this turn records a
    /// change (the gate then reads the log, change included).
    consent: Mutex<Option<ConsentState>>,
}

impl FlowRunner {
    /// The texts among the contacts' next messages that the engine would ask the meaning of
    /// (see [`engine::asks_meaning`]), with the conversation's language: read outside any
    /// transaction, so a message handled meanwhile elsewhere only wastes one ask.
    async fn free_texts(
        &self,
        db: &DatabaseConnection,
        contacts: &[i64],
    ) -> Result<Vec<(i64, String, String)>, DbErr> {
        let pending = inbound_message::Entity::find()
            .filter(inbound_message::Column::ContactId.is_in(contacts.iter().copied()))
            .filter(inbound_message::Column::ProcessedAt.is_null())
            .order_by_asc(inbound_message::Column::SentAt)
            .order_by_asc(inbound_message::Column::Id)
            .all(db)
            .await?;
        let mut next: HashMap<i64, inbound_message::Model> = HashMap::new();
        for row in pending {
            next.entry(row.contact_id).or_insert(row);
        }
        let mut conversations: HashMap<i64, conversation::Model> = conversation::Entity::find()
            .filter(conversation::Column::ContactId.is_in(next.keys().copied()))
            .all(db)
            .await?
            .into_iter()
            .map(|row| (row.contact_id, row))
            .collect();
        let flows = self.flows.current();
        let now = Utc::now();
        let mut asks = Vec::new();
        for (contact_id, row) in next {
            let content = row
                .content
                .as_deref()
                .and_then(|c| serde_json::from_str::<MessageContent>(c).ok());
            let Some(MessageContent::Text { body }) = content else {
                continue;
            };
            let conversation = conversations
                .remove(&contact_id)
                .as_ref()
                .and_then(parse)
                .unwrap_or_else(|| Conversation::new(&self.default_language));
            if engine::asks_meaning(&flows, &conversation, &body, now) {
                asks.push((row.id, body, conversation.language));
            }
        }
        Ok(asks)
    }

    /// A first conversation. A number that opted out before (through the API, or before its
    /// contact was erased: the log keeps the hash of the number) starts quiet, exactly as if
    /// it had just said STOP.
    async fn new_conversation(
        &self,
        txn: &DatabaseTransaction,
        contact: &contact::Model,
        known_consent: Option<&ConsentState>,
    ) -> Result<Conversation, DbErr> {
        let mut conversation = Conversation::new(&self.default_language);
        let opted_out = match known_consent {
            Some(state) => state.opted_out(),
            None => consent::state_of(txn, &self.composer.consent.hasher, contact)
                .await?
                .opted_out(),
        };
        if opted_out {
            conversation.mode = Mode::OptedOutQuiet;
        }
        Ok(conversation)
    }

    async fn run_events(
        &self,
        turn: &Turn<'_>,
        mut conversation: Conversation,
        first: Event,
        ranking: Option<Ranking>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(Conversation, Vec<engine::Hop>)> {
        let flows = self.flows.current();
        let mut moves = Vec::new();
        let mut events = VecDeque::from([first]);
        let mut actions_run = 0;
        while let Some(event) = events.pop_front() {
            // The service's answer is about the contact's text, the first event only.
            let hint = match &event {
                Event::Text(_) => ranking.as_ref(),
                _ => None,
            };
            let outcome = engine::step_with(&flows, &conversation, &event, now, hint);
            conversation = outcome.conversation;
            moves.extend(outcome.hops);
            for effect in outcome.effects {
                match effect {
                    Effect::Reply(reply) => queue_reply(turn, &self.composer, &reply).await?,
                    Effect::CallAction { name, args } => {
                        actions_run += 1;
                        let result = if actions_run > MAX_ACTIONS_PER_MESSAGE {
                            tracing::error!(action = %name, "too many actions for one message; answering error");
                            ActionResult::error()
                        } else {
                            self.actions
                                .run(turn.txn, turn.contact, &name, &args, now)
                                .await
                        };
                        tracing::debug!(action = %name, outcome = %result.outcome, "action finished");
                        if let Some(file) = &result.attachment {
                            let caption = file.caption.map(|id| {
                                let slots = match &result.data {
                                    Value::Object(m) => {
                                        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                                    }
                                    _ => Default::default(),
                                };
                                let args = flows.i18n().args_in(&conversation.language, &slots);
                                flows
                                    .i18n()
                                    .render_lossy(&conversation.language, id, Some(&args))
                            });
                            queue_attachment(turn, &self.composer, file, caption, now).await?;
                        }
                        events.push_back(Event::ActionResult {
                            action: name,
                            outcome: result.outcome,
                            data: result.data,
                        });
                    }
                    Effect::Handoff { reason } => {
                        let queued = request_handoff(turn, &reason, &conversation.language).await?;
                        if queued
                            && let Some(notice) =
                                self.after_hours_notice(&flows, &conversation.language, now)
                        {
                            queue_reply(turn, &self.composer, &notice).await?;
                        }
                    }
                    Effect::CancelHandoff { reason } => cancel_handoff(turn, &reason).await?,
                    Effect::Consent { change } => {
                        record_consent(turn, &self.composer, change).await?
                    }
                    Effect::Misunderstood { text, place } => {
                        record_misunderstood(turn, text, place, &conversation.language, now).await?
                    }
                    // The language lives in the conversation, saved with it below.
                    Effect::SetLanguage { .. } | Effect::EndConversation => {}
                }
            }
        }
        Ok((conversation, moves))
    }
}

impl FlowRunner {
    /// Time between `from` and `to` that counts for an agent: the office's open hours, or all
    /// of it without office hours.
    fn office_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> chrono::Duration {
        match &self.office_hours {
            Some(hours) => hours.open_time_between(from, to),
            None => to - from,
        }
    }

    /// The "we are closed, an agent replies from …" message, when a hand-off is queued outside
    /// office hours (field notes: after-hours message for agent connect).
    fn after_hours_notice(
        &self,
        flows: &crate::engine::FlowSet,
        language: &str,
        now: DateTime<Utc>,
    ) -> Option<Reply> {
        let hours = self.office_hours.as_ref()?;
        let next = hours.next_open(now)?;
        let mut args = fluent_bundle::FluentArgs::new();
        args.set("hours", hours.describe());
        args.set("next", crate::config::hours::describe_when(next));
        let body = flows
            .i18n()
            .render_lossy(language, AFTER_HOURS_MESSAGE, Some(&args));
        Some(Reply {
            message_id: AFTER_HOURS_MESSAGE.to_owned(),
            body,
            header: None,
            footer: None,
            choices: None,
            template: None,
        })
    }
}

impl FlowRunner {
    /// The answer to a media message whose file could not be kept (see `media::fetch`), in
    /// words: the limit when too large, the accepted types when refused, "send it again"
    /// otherwise. `None` when the file was stored (or never fetched: no fetcher).
    fn media_refusal(
        &self,
        row: &crate::store::entities::media_file::Model,
        kind: &crate::whatsapp::inbound::MediaKind,
        language: &str,
    ) -> Option<Reply> {
        use crate::media::Failure;
        let failure = row.failure.as_deref().and_then(Failure::parse)?;
        let mut args = fluent_bundle::FluentArgs::new();
        args.set("kind", kind.as_str());
        let message_id = match failure {
            Failure::TooLarge => {
                args.set(
                    "limit",
                    crate::config::media::describe_bytes(self.media_limits.for_kind(kind)),
                );
                "media-too-large"
            }
            Failure::TypeRefused => {
                args.set("accepted", crate::config::media::accepted_types(kind));
                "media-type-refused"
            }
            Failure::Unavailable => "media-unavailable",
            Failure::HashMismatch => "media-hash-mismatch",
        };
        let body = self
            .flows
            .current()
            .i18n()
            .render_lossy(language, message_id, Some(&args));
        Some(Reply {
            message_id: message_id.to_owned(),
            body,
            header: None,
            footer: None,
            choices: None,
            template: None,
        })
    }
}

/// The slot entry for a fetched file: its hash, detected type and kind, with what the
/// contact wrote on it; `None` unless the file is in the store.
fn media_ref(
    row: &crate::store::entities::media_file::Model,
    caption: &Option<String>,
    file_name: &Option<String>,
) -> Option<engine::media_slot::MediaRef> {
    if row.state != crate::media::fetch::state::STORED {
        return None;
    }
    Some(engine::media_slot::MediaRef {
        sha256: row.sha256.clone()?,
        mime: row.mime_type.clone()?,
        kind: engine::media_slot::FileKind::parse(&row.kind)?,
        file_name: file_name.clone(),
        caption: caption.clone(),
    })
}

/// The fluent id of the after-hours hand-off notice (in every locale's `flows.ftl`).
pub const AFTER_HOURS_MESSAGE: &str = "handoff-after-hours";

/// The engine event for an inbound message; `None` for what needs no answer (reactions,
/// system notices).
pub fn event_for(content: &MessageContent) -> Option<Event> {
    Some(match content {
        MessageContent::Text { body } => Event::Text(body.clone()),
        MessageContent::ButtonReply { id, title } => Event::Button {
            id: id.clone(),
            title: title.clone(),
        },
        MessageContent::ListReply { id, .. } => Event::ListRow { id: id.clone() },
        // A template's quick-reply tap is a button for the flow (e.g. "Pay now" on a reminder).
        MessageContent::TemplateButton { payload, text } => Event::Button {
            id: payload.clone(),
            title: text.clone(),
        },
        // The file itself is added by the runner once its `media_files` row says it was kept.
        MessageContent::Media { .. } => Event::Media(None),
        MessageContent::Reaction { .. }
        | MessageContent::System { .. }
        | MessageContent::RequestWelcome => return None,
        MessageContent::Location { .. }
        | MessageContent::Contacts { .. }
        | MessageContent::Order { .. }
        | MessageContent::FlowReply { .. }
        | MessageContent::Unsupported { .. }
        | MessageContent::Other { .. } => Event::Unsupported,
    })
}

/// The Cloud API body for an engine reply: text, reply buttons or a list.
pub fn body_for(reply: &Reply) -> OutboundBody {
    match &reply.choices {
        None => OutboundBody::Text {
            body: reply.body.clone(),
            preview_url: reply.body.contains("https://"),
        },
        Some(Choices::Buttons(buttons)) => OutboundBody::Buttons {
            header: reply.header.clone(),
            body: reply.body.clone(),
            footer: reply.footer.clone(),
            buttons: buttons
                .iter()
                .map(|b| wa::ReplyButton {
                    id: b.id.clone(),
                    title: b.title.clone(),
                })
                .collect(),
        },
        Some(Choices::List(list)) => OutboundBody::List {
            header: reply.header.clone(),
            body: reply.body.clone(),
            footer: reply.footer.clone(),
            button_label: list.button.clone(),
            sections: list
                .sections
                .iter()
                .map(|s| wa::ListSection {
                    title: s.title.clone(),
                    rows: s
                        .rows
                        .iter()
                        .map(|r| wa::ListRow {
                            id: r.id.clone(),
                            title: r.title.clone(),
                            description: r.description.clone(),
                        })
                        .collect(),
                })
                .collect(),
        },
    }
}

/// Hands an engine reply to the composer: the interactive or text body while the 24-hour
/// window is open, the state's template fallback once it has closed (decided again when sent).
async fn queue_reply(turn: &Turn<'_>, composer: &Composer, reply: &Reply) -> anyhow::Result<()> {
    queue_body(turn, composer, reply, body_for(reply)).await
}

/// Queues `body` for `reply` (whose template, if any, is the fallback).
async fn queue_body(
    turn: &Turn<'_>,
    composer: &Composer,
    reply: &Reply,
    body: OutboundBody,
) -> anyhow::Result<()> {
    let intent = Intent {
        contact_id: turn.contact.id,
        in_reply_to: turn.inbound_id,
        purpose: Purpose::Reply,
        free_form: Some(body),
        template: reply.template.as_ref().map(|t| TemplateChoice {
            name: t.name.clone(),
            language: t.language.clone(),
            params: t.params.clone(),
        }),
    };
    let fresh = turn
        .fresh
        .map(|(fresh, answered)| (fresh, Some(answered.to_owned())));
    let consent = turn.consent.lock().expect("turn consent").clone();
    let queued = composer::queue_from_pipeline(
        turn.txn,
        composer,
        intent,
        turn.contact,
        fresh,
        consent.as_ref(),
    )
    .await;
    match queued {
        Ok(PipelineQueued::HandedOver | PipelineQueued::Queued(Queued::Row(_))) => Ok(()),
        Ok(PipelineQueued::Queued(Queued::Skipped { reason, .. })) => {
            tracing::info!(message_id = %reply.message_id, %reason, "reply not sent");
            Ok(())
        }
        // The engine renders within WhatsApp's limits; a violation is a bug worth an error.
        Err(e) => Err(anyhow::anyhow!(
            "reply '{}' cannot be queued: {e}",
            reply.message_id
        )),
    }
}

/// Sends an action's file (`policy.document`'s schedule) before the flow's next words, and
/// records it as the contact's (erasure and retention find it by that row). Free-form only:
/// a file goes inside the window or not at all.
async fn queue_attachment(
    turn: &Turn<'_>,
    composer: &Composer,
    file: &crate::insurer::Attachment,
    caption: Option<String>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    use crate::whatsapp::outbound::{OutboundFile, OutboundMediaKind};
    crate::media::uploads::record(
        turn.txn,
        &crate::media::uploads::SentFile {
            contact_id: turn.contact.id,
            source: file.source,
            kind: file.kind,
            stored: &file.stored,
            mime_type: &file.mime_type,
            filename: Some(&file.filename),
        },
        now.timestamp_millis(),
    )
    .await?;
    let body = OutboundBody::Media {
        kind: file.kind,
        file: OutboundFile::Stored {
            sha256: file.stored.sha256.clone(),
            mime_type: file.mime_type.clone(),
            size: file.stored.size,
        },
        filename: (file.kind == OutboundMediaKind::Document).then(|| file.filename.clone()),
        caption: caption.map(|c| {
            // A caption is capped by WhatsApp; a long plan name must not fail the turn.
            c.chars().take(wa::MEDIA_CAPTION_MAX).collect()
        }),
    };
    let reply = Reply {
        message_id: file.source.to_owned(),
        body: String::new(),
        header: None,
        footer: None,
        choices: None,
        template: None,
    };
    queue_body(turn, composer, &reply, body).await
}

/// Queues a hand-off; false when one was already open (nothing changed).
/// Keeps a message the bot could not place (masked by the engine, no contact) for the
/// dashboard's "not understood" list.
async fn record_misunderstood(
    turn: &Turn<'_>,
    text: String,
    place: String,
    language: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use crate::store::entities::misunderstood_message;
    misunderstood_message::Entity::insert(misunderstood_message::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        text: Set(text),
        place: Set(place),
        language: Set(language.to_owned()),
        at: Set(now.timestamp_millis()),
    })
    .exec(turn.txn)
    .await?;
    Ok(())
}

async fn request_handoff(turn: &Turn<'_>, reason: &str, language: &str) -> Result<bool, DbErr> {
    // One open request per contact: asking again while waiting changes nothing.
    let open = handoff::Entity::find()
        .filter(handoff::Column::ContactId.eq(turn.contact.id))
        .filter(handoff::Column::State.is_in([HandoffState::Waiting, HandoffState::Taken]))
        .one(turn.txn)
        .await?;
    if open.is_some() {
        return Ok(false);
    }
    handoff::Entity::insert(handoff::ActiveModel {
        id: NotSet,
        contact_id: Set(turn.contact.id),
        reason: Set(reason.to_owned()),
        language: Set(language.to_owned()),
        state: Set(HandoffState::Waiting),
        agent_id: Set(None),
        requested_at: Set(now_ms()),
        taken_at: Set(None),
        closed_at: Set(None),
    })
    .exec(turn.txn)
    .await?;
    tracing::info!(contact_id = turn.contact.id, %reason, "handed off to the agent queue");
    Ok(true)
}

async fn cancel_handoff(turn: &Turn<'_>, reason: &str) -> Result<(), DbErr> {
    handoff::Entity::update_many()
        .col_expr(handoff::Column::State, Expr::value(HandoffState::Cancelled))
        .col_expr(handoff::Column::ClosedAt, Expr::value(now_ms()))
        .filter(handoff::Column::ContactId.eq(turn.contact.id))
        .filter(handoff::Column::State.eq(HandoffState::Waiting))
        .exec(turn.txn)
        .await?;
    tracing::info!(contact_id = turn.contact.id, %reason, "hand-off cancelled");
    Ok(())
}

/// Appends the engine's consent change to the log. A keyword keeps what the contact typed;
/// a button keeps the prompt they were shown (the bot's last message, with its buttons) and
/// the answer they tapped. START restores service and reminders, never marketing.
async fn record_consent(
    turn: &Turn<'_>,
    composer: &Composer,
    change: ConsentChange,
) -> Result<(), DbErr> {
    let changes: &[(Change, Scope)] = match change {
        ConsentChange::OptOut => &[(Change::OptOut, Scope::All)],
        ConsentChange::OptIn(ConsentScope::Service) => &[
            (Change::OptIn, Scope::Service),
            (Change::OptIn, Scope::Reminders),
        ],
        ConsentChange::OptIn(ConsentScope::Marketing) => &[(Change::OptIn, Scope::Marketing)],
        ConsentChange::OptOutOf(ConsentScope::Service) => &[
            (Change::OptOut, Scope::Service),
            (Change::OptOut, Scope::Reminders),
        ],
        ConsentChange::OptOutOf(ConsentScope::Marketing) => &[(Change::OptOut, Scope::Marketing)],
    };
    let shown_text = match turn.source {
        Source::Button => {
            let prompt = last_prompt(turn.txn, turn.contact.id).await?;
            Some(format!(
                "{}\n> {}",
                prompt.as_deref().unwrap_or("(no prompt found)"),
                turn.said.as_deref().unwrap_or("")
            ))
        }
        _ => turn.said.clone(),
    };
    let hash = composer.consent.hasher.primary_hash(turn.contact);
    for &(change, scope) in changes {
        consent::record(
            turn.txn,
            NewEntry {
                contact_id: Some(turn.contact.id),
                address_hash: hash.clone(),
                change,
                scope,
                source: turn.source,
                shown_text: shown_text.clone(),
                occurred_at: None,
                detail: None,
            },
            now_ms(),
        )
        .await?;
    }
    *turn.consent.lock().expect("turn consent") = None;
    Ok(())
}

/// The text of the bot's last message to the contact, with its buttons or list rows: what
/// they were looking at when they tapped.
async fn last_prompt<C: ConnectionTrait>(db: &C, contact_id: i64) -> Result<Option<String>, DbErr> {
    let Some(row) = outbox::Entity::find()
        .filter(outbox::Column::ContactId.eq(contact_id))
        .order_by_desc(outbox::Column::Id)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Ok(intent) = StoredIntent::from_payload(&row.payload) else {
        return Ok(None);
    };
    Ok(intent.free_form.as_ref().and_then(|body| {
        let (text, choices) = body.text_and_choices()?;
        Some(if choices.is_empty() {
            text.to_owned()
        } else {
            format!("{text} [{}]", choices.join(" | "))
        })
    }))
}

/// The stored conversation of a contact, if any.
///
/// # Errors
/// Database errors, or a stored state that no longer parses.
pub async fn load<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
) -> anyhow::Result<Option<Conversation>> {
    let row = conversation::Entity::find_by_id(contact_id).one(db).await?;
    Ok(row.as_ref().and_then(parse))
}

/// The conversation a stored row holds; `None` for a state from an incompatible version
/// (the contact starts afresh rather than being wedged).
fn parse(row: &conversation::Model) -> Option<Conversation> {
    match serde_json::from_str(&row.state) {
        Ok(conversation) => Some(conversation),
        Err(e) => {
            tracing::warn!(contact_id = row.contact_id, error = %e, "stored conversation unreadable; starting a new one");
            None
        }
    }
}

/// Stores `conversation` for the contact (insert or replace).
///
/// # Errors
/// Database errors.
pub async fn save<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    conversation: &Conversation,
) -> Result<(), DbErr> {
    upsert(db, vec![row_for(contact_id, conversation)?]).await
}

/// The row `conversation` is stored as.
fn row_for(
    contact_id: i64,
    conversation: &Conversation,
) -> Result<conversation::ActiveModel, DbErr> {
    let state = serde_json::to_string(conversation).map_err(|e| DbErr::Custom(e.to_string()))?;
    let position = conversation.position.as_ref();
    Ok(conversation::ActiveModel {
        contact_id: Set(contact_id),
        state: Set(state),
        flow: Set(position.map(|p| p.flow.to_string())),
        flow_state: Set(position.map(|p| p.state.to_string())),
        flow_version: Set(position.map(|p| p.flow_version.clone())),
        mode: Set(mode_name(conversation.mode).into()),
        language: Set(conversation.language.clone()),
        updated_at: Set(now_ms()),
    })
}

/// Stores conversation rows (insert or replace), with one statement.
async fn upsert<C: ConnectionTrait>(
    db: &C,
    rows: Vec<conversation::ActiveModel>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    conversation::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(conversation::Column::ContactId)
                .update_columns([
                    conversation::Column::State,
                    conversation::Column::Flow,
                    conversation::Column::FlowState,
                    conversation::Column::FlowVersion,
                    conversation::Column::Mode,
                    conversation::Column::Language,
                    conversation::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Bot => "bot",
        Mode::WaitingForAgent => "waiting_for_agent",
        Mode::WithAgent => "with_agent",
        Mode::OptedOutQuiet => "opted_out_quiet",
    }
}
