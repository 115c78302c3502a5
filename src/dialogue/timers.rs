//! The dialogue's timers: every 30 s, under each contact's processing lease, a conversation
//! waiting for an agent past the wait limit goes back to the bot, one whose agent left the
//! policyholder's message unanswered goes back in the queue, and one its agent left idle is
//! closed. Waits count office hours only.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
};

use super::conversations::{load, mode_name, save};
use super::{FlowRunner, Turn, hops};
use crate::consent::Source;
use crate::engine::{Conversation, Event, Mode};
use crate::messaging::composer::Line;
use crate::store::begin_write;
use crate::store::entities::{contact, conversation, outbox};

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
                    number: None,
                    inbound_id: None,
                    source: Source::Keyword,
                    said: None,
                    fresh: None,
                    line: Line::LookUp,
                    consent: Mutex::new(None),
                };
                let (after, moves) = self
                    .run_events(&turn, conversation, event.clone(), None, now)
                    .await?;
                hops::insert(&txn, hops::rows(&moves, now.timestamp_millis())).await?;
                if after.mode != mode {
                    changed += 1;
                    match after.mode {
                        Mode::Bot => crate::handoff::close_taken(&txn, contact_id).await?,
                        Mode::WaitingForAgent => {
                            crate::handoff::requeue_taken(&txn, contact_id).await?
                        }
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
        crate::handoff::taken_at(txn, contact.id).await?,
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
    let taken = crate::handoff::taken_at(txn, contact.id).await?;
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

impl FlowRunner {
    /// Time between `from` and `to` that counts for an agent: the office's open hours, or all
    /// of it without office hours.
    fn office_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> chrono::Duration {
        match &self.office_hours {
            Some(hours) => hours.open_time_between(from, to),
            None => to - from,
        }
    }
}
