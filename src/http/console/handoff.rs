//! The console's hand-off actions: take (exactly one agent wins), transfer, close; the rows
//! change in [`crate::handoff`], this module decides who may act and what the agent is told.
//! Each one runs
//! in a transaction that holds the contact's processing lock, the very lock the pipeline and
//! the dialogue timer take ([`crate::ingest::pipeline::lease`]: PostgreSQL's per-contact advisory
//! lock, SQLite's lease columns), so an agent's action and a policyholder's message are never
//! applied to the conversation at the same time (one conversation, one writer, across
//! instances too) and neither's save overwrites the other's change.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::Console;
use super::auth::CurrentAgent;
use super::error::{ConsoleError, Result};
use crate::engine::{self, Conversation, Event};
use crate::handoff::Actor;
use crate::store::entities::{agent, handoff};
use crate::store::{WriteTxn, begin_write, now_ms};

/// How long a console action waits for the pipeline to finish the contact's current message.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// Pause between two attempts at the lock: the pipeline holds it for one batch (milliseconds).
const LOCK_RETRY: Duration = Duration::from_millis(25);

/// Takes a waiting hand-off for `agent`: the conditional update `waiting → taken` succeeds for
/// exactly one of any number of concurrent takers. Returns the contact id.
///
/// # Errors
/// [`ConsoleError::Conflict`] when someone else took it first (or it was cancelled),
/// [`ConsoleError::NotFound`] for an unknown id.
pub async fn take(
    console: &Console,
    db: &DatabaseConnection,
    handoff_id: i64,
    agent: &CurrentAgent,
) -> Result<i64> {
    let row = find(db, handoff_id).await?;
    let txn = ContactLock::acquire(db, row.contact_id).await?;
    if !crate::handoff::take(txn.txn(), handoff_id, agent.id).await? {
        // Dropping the transaction rolls it back and gives the lock up.
        return Err(ConsoleError::Conflict(
            "Another agent has already taken this conversation.".into(),
        ));
    }
    apply_event(
        console,
        txn.txn(),
        row.contact_id,
        &row.language,
        Event::AgentJoined,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(handoff_id, agent_id = agent.id, "hand-off taken");
    Ok(row.contact_id)
}

/// Gives a taken hand-off to another active agent. The holder or a supervisor may do it.
///
/// # Errors
/// [`ConsoleError::Conflict`] when the hand-off is not taken by `agent` (or `agent` is not a
/// supervisor), or the target is not an active agent.
pub async fn transfer(
    db: &DatabaseConnection,
    handoff_id: i64,
    agent: &CurrentAgent,
    to_agent: i64,
) -> Result<i64> {
    let row = find(db, handoff_id).await?;
    let target = agent::Entity::find_by_id(to_agent)
        .filter(agent::Column::Active.eq(true))
        .one(db)
        .await?
        .ok_or_else(|| ConsoleError::Conflict("That agent does not exist.".into()))?;
    // Under the contact's lock like the other actions: the dialogue timer requeues or closes
    // a taken hand-off under it, and a transfer must not land in the middle of that.
    let txn = ContactLock::acquire(db, row.contact_id).await?;
    if !crate::handoff::transfer(txn.txn(), handoff_id, actor(agent), target.id).await? {
        return Err(ConsoleError::Conflict(
            "Only the agent who has this conversation (or a supervisor) can transfer it.".into(),
        ));
    }
    txn.commit().await?;
    tracing::info!(
        handoff_id,
        from = agent.id,
        to = target.id,
        "hand-off transferred"
    );
    Ok(row.contact_id)
}

/// Closes a hand-off and gives the conversation back to the bot: the next message from the
/// policyholder opens the menu. The holder may close a taken hand-off; a supervisor may close
/// any open one.
///
/// # Errors
/// [`ConsoleError::Conflict`] when the hand-off is not open or not `agent`'s.
pub async fn close(
    console: &Console,
    db: &DatabaseConnection,
    handoff_id: i64,
    agent: &CurrentAgent,
) -> Result<i64> {
    let row = find(db, handoff_id).await?;
    let txn = ContactLock::acquire(db, row.contact_id).await?;
    if !crate::handoff::close(txn.txn(), handoff_id, actor(agent)).await? {
        return Err(ConsoleError::Conflict(
            "This conversation is not yours to close, or it is already closed.".into(),
        ));
    }
    apply_event(
        console,
        txn.txn(),
        row.contact_id,
        &row.language,
        Event::AgentReleased,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(handoff_id, agent_id = agent.id, "hand-off closed");
    Ok(row.contact_id)
}

/// The open (waiting or taken) hand-off of a contact, if any.
///
/// # Errors
/// Database errors.
pub async fn open_for_contact<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
) -> Result<Option<handoff::Model>> {
    Ok(crate::handoff::open_for_contact(db, contact_id).await?)
}

async fn find(db: &DatabaseConnection, id: i64) -> Result<handoff::Model> {
    crate::handoff::find(db, id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

/// The agent as the hand-off rules see them.
fn actor(agent: &CurrentAgent) -> Actor {
    Actor {
        agent_id: agent.id,
        supervisor: agent.is_supervisor(),
    }
}

/// Tells the engine that an agent joined or left, and saves the conversation. Without the flow
/// engine (the echo handler) there is no conversation to change.
async fn apply_event<C: ConnectionTrait>(
    console: &Console,
    txn: &C,
    contact_id: i64,
    language: &str,
    event: Event,
) -> Result<()> {
    let Some(flows) = &console.flows else {
        return Ok(());
    };
    let conversation = crate::dialogue::load(txn, contact_id)
        .await?
        .unwrap_or_else(|| Conversation::new(language));
    let outcome = engine::step(&flows.current(), &conversation, &event, Utc::now());
    if !outcome.effects.is_empty() {
        // AgentJoined/AgentReleased only change the mode today; say so loudly if that changes.
        tracing::warn!(
            effects = outcome.effects.len(),
            ?event,
            "engine effects of an agent event ignored"
        );
    }
    crate::dialogue::save(txn, contact_id, &outcome.conversation).await?;
    Ok(())
}

/// A write transaction holding a contact's processing lock ([`crate::ingest::pipeline::lease`]): on
/// PostgreSQL the contact's transaction-scoped advisory lock, which the pipeline's batch holds
/// from before it reads the conversation until its save commits; on SQLite the lease columns,
/// taken and given back inside the transaction (the one writer already keeps the pipeline's
/// batch out of it; the lease keeps it out of a contact whose messages the pipeline has not
/// finished). Dropped without [`commit`](Self::commit), it rolls back, and the lock goes with it.
struct ContactLock {
    txn: WriteTxn,
    contact_id: i64,
    owner: String,
}

impl ContactLock {
    /// Waits up to [`LOCK_WAIT`] for the lock, trying again every [`LOCK_RETRY`]: a try-lock
    /// in a fresh transaction each time rather than a blocking wait, so no connection (and on
    /// SQLite not the one writer) is held while the pipeline finishes.
    async fn acquire(db: &DatabaseConnection, contact_id: i64) -> Result<Self> {
        let owner = format!("console-{}", uuid::Uuid::new_v4().simple());
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let txn = begin_write(db).await?;
            if crate::ingest::pipeline::lease(&txn, contact_id, &owner, now_ms()).await? {
                return Ok(Self {
                    txn,
                    contact_id,
                    owner,
                });
            }
            txn.rollback().await?;
            if tokio::time::Instant::now() >= deadline {
                return Err(ConsoleError::Conflict(
                    "The conversation is busy; please try again.".into(),
                ));
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
    }

    fn txn(&self) -> &WriteTxn {
        &self.txn
    }

    /// Gives the lock back and commits, together.
    async fn commit(self) -> Result<()> {
        crate::ingest::pipeline::release(&self.txn, self.contact_id, &self.owner).await?;
        self.txn.commit().await?;
        Ok(())
    }
}
