//! Who may read which conversation, and the record of every reading.
//!
//! Supervisors and admins may open any conversation. An `agent` may open only a conversation
//! waiting in the queue (to decide whether to take it) or one they hold; every other
//! conversation (never handed off, with another agent, closed) is refused with
//! [`ConsoleError::NotYours`] (403) on every route that takes a contact or hand-off id: the
//! page, the transcript fragment, the event stream, reply, template, transfer and close.
//! (Take needs no check of its own: it only ever succeeds on a waiting hand-off.)
//!
//! Every reading of a transcript is written to `transcript_views` before the transcript is
//! loaded, so a reading that could not be recorded is not shown: opening the conversation
//! page starts a row (a sitting), and the page's live refreshes of the transcript count into
//! the reader's latest row for that contact while it is younger than
//! `console.view_log_merge_minutes` (otherwise they start a new one). Admins read the log at
//! `/console/views`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Html;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::auth::{CurrentAgent, Role};
use super::error::{ConsoleError, Result};
use super::handoff;
use super::local_time;
use crate::http::AppState;
use crate::store::entities::handoff::State as HandoffState;
use crate::store::entities::{agent, contact, handoff as handoff_row, transcript_view};
use crate::store::{begin_write, now_ms};

/// Whether `agent` may open the conversation of `contact_id`.
///
/// # Errors
/// [`ConsoleError::NotYours`] for an agent and a conversation neither waiting nor theirs;
/// database errors.
pub async fn check_contact(
    db: &DatabaseConnection,
    agent: &CurrentAgent,
    contact_id: i64,
) -> Result<()> {
    if agent.is_supervisor() {
        return Ok(());
    }
    let open = handoff::open_for_contact(db, contact_id).await?;
    if open.as_ref().is_some_and(|h| visible_to(h, agent)) {
        Ok(())
    } else {
        Err(ConsoleError::NotYours)
    }
}

/// Whether `agent` may act on hand-off `handoff_id` (transfer, close); returns it.
///
/// # Errors
/// [`ConsoleError::NotYours`] for an agent and a hand-off they do not hold (or an unknown
/// id), [`ConsoleError::NotFound`] for a supervisor and an unknown id; database errors.
pub async fn check_handoff(
    db: &DatabaseConnection,
    agent: &CurrentAgent,
    handoff_id: i64,
) -> Result<handoff_row::Model> {
    let row = handoff_row::Entity::find_by_id(handoff_id).one(db).await?;
    match row {
        Some(row)
            if agent.is_supervisor()
                || (row.state == HandoffState::Taken && row.agent_id == Some(agent.id)) =>
        {
            Ok(row)
        }
        // An agent learns nothing about hand-offs that are not theirs, not even whether
        // the id exists.
        Some(_) => Err(ConsoleError::NotYours),
        None if agent.is_supervisor() => Err(ConsoleError::NotFound),
        None => Err(ConsoleError::NotYours),
    }
}

/// Whether `agent` may see the conversation of this open hand-off.
pub fn visible_to(h: &handoff_row::Model, agent: &CurrentAgent) -> bool {
    agent.is_supervisor()
        || h.state == HandoffState::Waiting
        || (h.state == HandoffState::Taken && h.agent_id == Some(agent.id))
}

/// How a transcript was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The conversation page was opened: a new sitting.
    Page,
    /// The open page refreshed its transcript (or the fragment was fetched on its own).
    Refresh,
}

/// Records that `agent` read the transcript of `contact_id` now.
///
/// # Errors
/// Database errors: the caller then shows nothing.
pub async fn record_view(
    db: &DatabaseConnection,
    agent: &CurrentAgent,
    contact_id: i64,
    reading: Reading,
    merge_minutes: u32,
) -> Result<()> {
    let now = now_ms();
    let txn = begin_write(db).await?;
    let sitting = match reading {
        Reading::Page => None,
        Reading::Refresh => {
            transcript_view::Entity::find()
                .filter(transcript_view::Column::AgentId.eq(agent.id))
                .filter(transcript_view::Column::ContactId.eq(contact_id))
                .filter(
                    transcript_view::Column::LastAt.gte(now - i64::from(merge_minutes) * 60_000),
                )
                .order_by_desc(transcript_view::Column::Id)
                .one(&txn)
                .await?
        }
    };
    match sitting {
        Some(row) => {
            transcript_view::Entity::update_many()
                .col_expr(transcript_view::Column::LastAt, Expr::value(now))
                .col_expr(
                    transcript_view::Column::Views,
                    Expr::col(transcript_view::Column::Views).add(1),
                )
                .filter(transcript_view::Column::Id.eq(row.id))
                .exec(&txn)
                .await?;
        }
        None => {
            transcript_view::Entity::insert(transcript_view::ActiveModel {
                id: NotSet,
                agent_id: Set(agent.id),
                contact_id: Set(contact_id),
                role: Set(agent.role.as_str().to_owned()),
                first_at: Set(now),
                last_at: Set(now),
                views: Set(1),
            })
            .exec(&txn)
            .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

/// Rows on one page of the view log.
const LOG_PAGE: u64 = 100;

/// One row of the view log page.
#[derive(Debug, Serialize)]
struct LogRow {
    first: String,
    last: String,
    views: i32,
    agent: String,
    role: String,
    contact_id: i64,
    /// Profile name and masked number, as the queue shows them; `None` once erased.
    whose: Option<String>,
}

/// `?before=<id>`: the page of older rows.
#[derive(Debug, Deserialize)]
pub struct LogQuery {
    pub before: Option<i64>,
}

/// `GET /console/views`: who read whose transcript and when, newest first (admins only).
///
/// # Errors
/// [`ConsoleError::Forbidden`] below admin; database errors.
pub async fn view_log(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Query(q): Query<LogQuery>,
) -> Result<Html<String>> {
    agent.require(Role::Admin)?;
    let mut find = transcript_view::Entity::find().order_by_desc(transcript_view::Column::Id);
    if let Some(before) = q.before {
        find = find.filter(transcript_view::Column::Id.lt(before));
    }
    let rows = find.limit(LOG_PAGE).all(&state.db).await?;
    let contact_ids: Vec<i64> = rows.iter().map(|r| r.contact_id).collect();
    let agent_ids: Vec<i64> = rows.iter().map(|r| r.agent_id).collect();
    let contacts: HashMap<i64, contact::Model> = contact::Entity::find()
        .filter(contact::Column::Id.is_in(contact_ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let agents: HashMap<i64, agent::Model> = agent::Entity::find()
        .filter(agent::Column::Id.is_in(agent_ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    let hours = &state.console.hours;
    let older = (rows.len() as u64 == LOG_PAGE)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let rows: Vec<LogRow> = rows
        .into_iter()
        .map(|r| LogRow {
            first: local_time(hours, r.first_at),
            last: local_time(hours, r.last_at),
            views: r.views,
            agent: agents.get(&r.agent_id).map_or_else(
                || format!("agent #{}", r.agent_id),
                |a| format!("{} ({})", a.name, a.email),
            ),
            role: r.role,
            contact_id: r.contact_id,
            // An erased contact is a tombstone without number or name.
            whose: contacts
                .get(&r.contact_id)
                .filter(|c| c.wa_id.is_some() || c.user_id.is_some())
                .map(super::pages::who),
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("me", &agent);
    ctx.insert("is_supervisor", &agent.is_supervisor());
    ctx.insert("page", "views");
    ctx.insert("rows", &rows);
    ctx.insert("older", &older);
    state.console.render("views.html", &ctx)
}
