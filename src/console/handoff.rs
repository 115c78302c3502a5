//! The hand-off queue's actions: take (exactly one agent wins), transfer, close. Each one
//! holds the contact's processing lease while it changes the conversation, the same lease the
//! pipeline takes, so an agent's action and a policyholder's message are never applied to the
//! conversation at the same time (one conversation, one writer, across instances too).

use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::Console;
use super::auth::CurrentAgent;
use super::error::{ConsoleError, Result};
use crate::engine::{self, Conversation, Event};
use crate::store::entities::{agent, contact, handoff};
use crate::store::{begin_write, now_ms};

/// Hand-off row states.
pub mod state {
    pub const WAITING: &str = "waiting";
    pub const TAKEN: &str = "taken";
    pub const CLOSED: &str = "closed";
    pub const CANCELLED: &str = "cancelled";
}

/// How long a console action waits for the pipeline to finish the contact's current message.
const LEASE_WAIT: Duration = Duration::from_secs(10);
const LEASE_MS: i64 = 30_000;

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
    with_lease(db, row.contact_id, async {
        let txn = begin_write(db).await?;
        let won = handoff::Entity::update_many()
            .col_expr(handoff::Column::State, Expr::value(state::TAKEN))
            .col_expr(handoff::Column::AgentId, Expr::value(agent.id))
            .col_expr(handoff::Column::TakenAt, Expr::value(now_ms()))
            .filter(handoff::Column::Id.eq(handoff_id))
            .filter(handoff::Column::State.eq(state::WAITING))
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        if !won {
            txn.rollback().await?;
            return Err(ConsoleError::Conflict(
                "Another agent has already taken this conversation.".into(),
            ));
        }
        apply_event(
            console,
            &txn,
            row.contact_id,
            &row.language,
            Event::AgentJoined,
        )
        .await?;
        txn.commit().await?;
        tracing::info!(handoff_id, agent_id = agent.id, "hand-off taken");
        Ok(row.contact_id)
    })
    .await
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
    let txn = begin_write(db).await?;
    let mut update = handoff::Entity::update_many()
        .col_expr(handoff::Column::AgentId, Expr::value(target.id))
        .filter(handoff::Column::Id.eq(handoff_id))
        .filter(handoff::Column::State.eq(state::TAKEN));
    if !agent.is_supervisor() {
        update = update.filter(handoff::Column::AgentId.eq(agent.id));
    }
    if update.exec(&txn).await?.rows_affected != 1 {
        txn.rollback().await?;
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
    with_lease(db, row.contact_id, async {
        let txn = begin_write(db).await?;
        let mut update = handoff::Entity::update_many()
            .col_expr(handoff::Column::State, Expr::value(state::CLOSED))
            .col_expr(handoff::Column::ClosedAt, Expr::value(now_ms()))
            .filter(handoff::Column::Id.eq(handoff_id));
        update = if agent.is_supervisor() {
            update.filter(handoff::Column::State.is_in([state::WAITING, state::TAKEN]))
        } else {
            update
                .filter(handoff::Column::State.eq(state::TAKEN))
                .filter(handoff::Column::AgentId.eq(agent.id))
        };
        if update.exec(&txn).await?.rows_affected != 1 {
            txn.rollback().await?;
            return Err(ConsoleError::Conflict(
                "This conversation is not yours to close, or it is already closed.".into(),
            ));
        }
        apply_event(
            console,
            &txn,
            row.contact_id,
            &row.language,
            Event::AgentReleased,
        )
        .await?;
        txn.commit().await?;
        tracing::info!(handoff_id, agent_id = agent.id, "hand-off closed");
        Ok(row.contact_id)
    })
    .await
}

/// The open (waiting or taken) hand-off of a contact, if any.
///
/// # Errors
/// Database errors.
pub async fn open_for_contact<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
) -> Result<Option<handoff::Model>> {
    Ok(handoff::Entity::find()
        .filter(handoff::Column::ContactId.eq(contact_id))
        .filter(handoff::Column::State.is_in([state::WAITING, state::TAKEN]))
        .one(db)
        .await?)
}

async fn find(db: &DatabaseConnection, id: i64) -> Result<handoff::Model> {
    handoff::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ConsoleError::NotFound)
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

/// Runs `work` while holding the contact's processing lease, waiting for the pipeline to
/// finish a message first if it is processing one.
async fn with_lease<T>(
    db: &DatabaseConnection,
    contact_id: i64,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let owner = format!("console-{}", uuid::Uuid::new_v4().simple());
    let deadline = tokio::time::Instant::now() + LEASE_WAIT;
    loop {
        let now = now_ms();
        let txn = begin_write(db).await?;
        let got = contact::Entity::update_many()
            .col_expr(contact::Column::LeaseOwner, Expr::value(owner.clone()))
            .col_expr(contact::Column::LeaseUntil, Expr::value(now + LEASE_MS))
            .filter(contact::Column::Id.eq(contact_id))
            .filter(
                contact::Column::LeaseUntil
                    .is_null()
                    .or(contact::Column::LeaseUntil.lt(now)),
            )
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        txn.commit().await?;
        if got {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ConsoleError::Conflict(
                "The conversation is busy; please try again.".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let result = work.await;
    let release = async {
        let txn = begin_write(db).await?;
        contact::Entity::update_many()
            .col_expr(
                contact::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                contact::Column::LeaseUntil,
                Expr::value(Option::<i64>::None),
            )
            .filter(contact::Column::Id.eq(contact_id))
            .filter(contact::Column::LeaseOwner.eq(owner.clone()))
            .exec(&txn)
            .await?;
        txn.commit().await
    };
    if let Err(e) = release.await {
        // The lease expires on its own; the pipeline waits at most LEASE_MS.
        tracing::warn!(contact_id, error = %e, "could not release the console's lease");
    }
    result
}
