//! The hand-off from the bot to a person: the `handoff` table and its rules. A contact has at
//! most one open request (waiting or taken); the engine asks for one and cancels it
//! ([`request`], [`cancel`]); agents take, transfer and close it ([`take`], [`transfer`],
//! [`close`]); the dialogue timer puts a taken one back in the queue or closes it
//! ([`requeue_taken`], [`close_taken`]). Every function runs in the caller's transaction: the
//! caller holds the contact's processing lease, so a hand-off and the conversation change
//! together. The HTTP side (who may act, what the agent is told) is in `http::console::handoff`.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use crate::store::entities::handoff::{self, State};
use crate::store::now_ms;

/// Who acts on a taken hand-off: the agent, and whether they are a supervisor (who may act on
/// any agent's hand-off).
#[derive(Clone, Copy, Debug)]
pub struct Actor {
    pub agent_id: i64,
    pub supervisor: bool,
}

/// Queues a hand-off for the contact; false when one was already open (nothing changed).
///
/// # Errors
/// Database errors.
pub async fn request<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    reason: &str,
    language: &str,
) -> Result<bool, DbErr> {
    // One open request per contact: asking again while waiting changes nothing.
    if open_for_contact(db, contact_id).await?.is_some() {
        return Ok(false);
    }
    handoff::Entity::insert(handoff::ActiveModel {
        id: NotSet,
        contact_id: Set(contact_id),
        reason: Set(reason.to_owned()),
        language: Set(language.to_owned()),
        state: Set(State::Waiting),
        agent_id: Set(None),
        requested_at: Set(now_ms()),
        taken_at: Set(None),
        closed_at: Set(None),
    })
    .exec(db)
    .await?;
    tracing::info!(contact_id, %reason, "handed off to the agent queue");
    Ok(true)
}

/// Cancels the contact's waiting hand-off (the engine took the conversation back before an
/// agent came).
///
/// # Errors
/// Database errors.
pub async fn cancel<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    reason: &str,
) -> Result<(), DbErr> {
    handoff::Entity::update_many()
        .col_expr(handoff::Column::State, Expr::value(State::Cancelled))
        .col_expr(handoff::Column::ClosedAt, Expr::value(now_ms()))
        .filter(handoff::Column::ContactId.eq(contact_id))
        .filter(handoff::Column::State.eq(State::Waiting))
        .exec(db)
        .await?;
    tracing::info!(contact_id, %reason, "hand-off cancelled");
    Ok(())
}

/// The open (waiting or taken) hand-off of a contact, if any.
///
/// # Errors
/// Database errors.
pub async fn open_for_contact<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
) -> Result<Option<handoff::Model>, DbErr> {
    handoff::Entity::find()
        .filter(handoff::Column::ContactId.eq(contact_id))
        .filter(handoff::Column::State.is_in([State::Waiting, State::Taken]))
        .one(db)
        .await
}

/// A hand-off by id.
///
/// # Errors
/// Database errors.
pub async fn find<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<handoff::Model>, DbErr> {
    handoff::Entity::find_by_id(id).one(db).await
}

/// Takes a waiting hand-off for `agent_id`: the conditional update `waiting → taken` succeeds
/// for exactly one of any number of concurrent takers. False when someone else took it first
/// (or it was cancelled).
///
/// # Errors
/// Database errors.
pub async fn take<C: ConnectionTrait>(db: &C, id: i64, agent_id: i64) -> Result<bool, DbErr> {
    Ok(handoff::Entity::update_many()
        .col_expr(handoff::Column::State, Expr::value(State::Taken))
        .col_expr(handoff::Column::AgentId, Expr::value(agent_id))
        .col_expr(handoff::Column::TakenAt, Expr::value(now_ms()))
        .filter(handoff::Column::Id.eq(id))
        .filter(handoff::Column::State.eq(State::Waiting))
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// Gives a taken hand-off to agent `to`. The holder or a supervisor may do it; false when the
/// hand-off is not taken, or not `by`'s.
///
/// # Errors
/// Database errors.
pub async fn transfer<C: ConnectionTrait>(
    db: &C,
    id: i64,
    by: Actor,
    to: i64,
) -> Result<bool, DbErr> {
    let mut update = handoff::Entity::update_many()
        .col_expr(handoff::Column::AgentId, Expr::value(to))
        .filter(handoff::Column::Id.eq(id))
        .filter(handoff::Column::State.eq(State::Taken));
    if !by.supervisor {
        update = update.filter(handoff::Column::AgentId.eq(by.agent_id));
    }
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// Closes a hand-off: the holder may close a taken one; a supervisor any open one. False when
/// it is not open or not `by`'s.
///
/// # Errors
/// Database errors.
pub async fn close<C: ConnectionTrait>(db: &C, id: i64, by: Actor) -> Result<bool, DbErr> {
    let mut update = handoff::Entity::update_many()
        .col_expr(handoff::Column::State, Expr::value(State::Closed))
        .col_expr(handoff::Column::ClosedAt, Expr::value(now_ms()))
        .filter(handoff::Column::Id.eq(id));
    update = if by.supervisor {
        update.filter(handoff::Column::State.is_in([State::Waiting, State::Taken]))
    } else {
        update
            .filter(handoff::Column::State.eq(State::Taken))
            .filter(handoff::Column::AgentId.eq(by.agent_id))
    };
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// When an agent took the contact's open hand-off.
///
/// # Errors
/// Database errors.
pub async fn taken_at<C: ConnectionTrait>(db: &C, contact_id: i64) -> Result<Option<i64>, DbErr> {
    let taken: Option<Option<i64>> = handoff::Entity::find()
        .select_only()
        .column_as(handoff::Column::TakenAt.max(), "taken")
        .filter(handoff::Column::ContactId.eq(contact_id))
        .filter(handoff::Column::State.eq(State::Taken))
        .into_tuple()
        .one(db)
        .await?;
    Ok(taken.flatten())
}

/// Puts the contact's taken hand-off back in the queue: waiting, for any agent, in the place
/// its request gave it.
///
/// # Errors
/// Database errors.
pub async fn requeue_taken<C: ConnectionTrait>(db: &C, contact_id: i64) -> Result<(), DbErr> {
    let requeued = handoff::Entity::update_many()
        .col_expr(handoff::Column::State, Expr::value(State::Waiting))
        .col_expr(handoff::Column::AgentId, Expr::value(Option::<i64>::None))
        .col_expr(handoff::Column::TakenAt, Expr::value(Option::<i64>::None))
        .filter(handoff::Column::ContactId.eq(contact_id))
        .filter(handoff::Column::State.eq(State::Taken))
        .exec(db)
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
///
/// # Errors
/// Database errors.
pub async fn close_taken<C: ConnectionTrait>(db: &C, contact_id: i64) -> Result<(), DbErr> {
    let closed = handoff::Entity::update_many()
        .col_expr(handoff::Column::State, Expr::value(State::Closed))
        .col_expr(handoff::Column::ClosedAt, Expr::value(now_ms()))
        .filter(handoff::Column::ContactId.eq(contact_id))
        .filter(handoff::Column::State.eq(State::Taken))
        .exec(db)
        .await?;
    if closed.rows_affected > 0 {
        tracing::info!(contact_id, "hand-off closed after the agent left it idle");
    }
    Ok(())
}
