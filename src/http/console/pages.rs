//! The queue and conversation pages, the HTML fragments the pages refresh, the event streams
//! that tell them when to refresh, and the form actions (take, reply, transfer, close).

use std::convert::Infallible;
use std::time::Duration;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use futures_util::Stream;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Statement,
};
use serde::{Deserialize, Serialize};

use super::access::{self, Reading};
use super::auth::{CsrfForm, CurrentAgent};
use super::error::{ConsoleError, Result};
use super::handoff;
use super::{duration_text, local_time, transcript};
use crate::engine::Conversation;
use crate::http::AppState;
use crate::privacy::mask_opt;
use crate::store::entities::handoff::State as HandoffState;
use crate::store::entities::{agent, consent_log, contact, contact_window, handoff as handoff_row};
use crate::store::{begin_write, now_ms};

/// How often an event stream looks for changes. Polling the database (rather than an
/// in-process channel) sees changes made by every instance sharing PostgreSQL.
const POLL: Duration = Duration::from_millis(700);
/// Transcript lines shown.
const TRANSCRIPT_LINES: usize = 200;

/// One row of the queue.
#[derive(Debug, Serialize)]
struct QueueRow {
    id: i64,
    contact_id: i64,
    who: String,
    /// The business number the policyholder wrote to (its display number when configured).
    line: String,
    reason: String,
    language: String,
    state: HandoffState,
    waiting: String,
    requested: String,
    agent: Option<String>,
    mine: bool,
}

fn base_context(agent: &CurrentAgent, page: &str) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("me", agent);
    ctx.insert("is_supervisor", &agent.is_supervisor());
    ctx.insert("page", page);
    ctx
}

/// `GET /console/queue`.
pub async fn queue(State(state): State<AppState>, agent: CurrentAgent) -> Result<Html<String>> {
    let mut ctx = base_context(&agent, "queue");
    ctx.insert("rows", &queue_rows_data(&state, &agent).await?);
    state.console.render("queue.html", &ctx)
}

/// `GET /console/queue/rows`: the table body, for live refresh.
pub async fn queue_rows(
    State(state): State<AppState>,
    agent: CurrentAgent,
) -> Result<Html<String>> {
    let mut ctx = base_context(&agent, "queue");
    ctx.insert("rows", &queue_rows_data(&state, &agent).await?);
    state.console.render("queue_rows.html", &ctx)
}

async fn queue_rows_data(state: &AppState, me: &CurrentAgent) -> Result<Vec<QueueRow>> {
    // An agent's queue lists only what they may open: the waiting and their own.
    let open: Vec<handoff_row::Model> = handoff_row::Entity::find()
        .filter(handoff_row::Column::State.is_in([HandoffState::Waiting, HandoffState::Taken]))
        .order_by_asc(handoff_row::Column::RequestedAt)
        .all(&state.db)
        .await?
        .into_iter()
        .filter(|h| access::visible_to(h, me))
        .collect();
    let contact_ids: Vec<i64> = open.iter().map(|h| h.contact_id).collect();
    let lines = crate::messaging::composer::numbers_written_to(&state.db, &contact_ids).await?;
    let contacts = contact::Entity::find()
        .filter(contact::Column::Id.is_in(contact_ids))
        .all(&state.db)
        .await?;
    let agents = agent::Entity::find().all(&state.db).await?;
    let now = now_ms();
    Ok(open
        .into_iter()
        .map(|h| {
            let c = contacts.iter().find(|c| c.id == h.contact_id);
            QueueRow {
                id: h.id,
                contact_id: h.contact_id,
                who: c.map_or_else(|| "-".to_owned(), who),
                line: line_label(state, lines.get(&h.contact_id).map(String::as_str)),
                reason: h.reason.replace('_', " "),
                language: h.language.clone(),
                waiting: duration_text(h.taken_at.unwrap_or(now) - h.requested_at),
                requested: local_time(&state.console.hours, h.requested_at),
                agent: h
                    .agent_id
                    .and_then(|id| agents.iter().find(|a| a.id == id))
                    .map(|a| a.name.clone()),
                mine: h.agent_id == Some(me.id),
                state: h.state,
            }
        })
        .collect())
}

/// The business number a conversation is on, as agents see it: its display number when
/// configured, else its phone number id; a conversation whose messages named none is on the
/// deployment's first.
fn line_label(state: &AppState, number: Option<&str>) -> String {
    let settings = &state.settings;
    match number {
        Some(number) => settings.number_label(number),
        None => settings.number_label(settings.first_number_id()),
    }
}

/// A contact as agents see them: the WhatsApp profile name and the last digits of the number.
pub(super) fn who(c: &contact::Model) -> String {
    let number = mask_opt(c.wa_id.as_deref().or(c.user_id.as_deref()));
    match &c.profile_name {
        Some(name) => format!("{name} · {number}"),
        None => number,
    }
}

/// `GET /console/queue/events`: an `update` event whenever the queue changes.
pub async fn queue_events(
    State(state): State<AppState>,
    _agent: CurrentAgent,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let db = state.db.clone();
    changes(state.console.closing.clone(), move || {
        let db = db.clone();
        async move {
            let rows = handoff_row::Entity::find()
                .filter(
                    handoff_row::Column::State.is_in([HandoffState::Waiting, HandoffState::Taken]),
                )
                .order_by_asc(handoff_row::Column::Id)
                .all(&db)
                .await
                .ok()?;
            Some(
                rows.iter()
                    .map(|h| format!("{}:{}:{:?}", h.id, h.state, h.agent_id))
                    .collect::<Vec<_>>()
                    .join(","),
            )
        }
    })
}

/// Polls `fingerprint` and sends `update` each time it changes (the first value included, so
/// a page that loaded just before a change still refreshes).
fn changes<F, Fut>(
    closing: tokio_util::sync::CancellationToken,
    fingerprint: F,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<String>> + Send,
{
    let stream = futures_util::stream::unfold(
        (fingerprint, None::<String>, closing),
        |(fingerprint, last, closing)| async move {
            loop {
                if closing.is_cancelled() {
                    return None;
                }
                if let Some(now) = fingerprint().await
                    && last.as_ref() != Some(&now)
                {
                    let event = SseEvent::default().event("update").data("changed");
                    return Some((Ok(event), (fingerprint, Some(now), closing)));
                }
                tokio::select! {
                    () = closing.cancelled() => return None,
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `POST /console/handoffs/{id}/take`.
pub async fn take(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect> {
    agent.check_csrf(form.csrf.as_deref())?;
    let contact_id = handoff::take(&state.console, &state.db, id, &agent).await?;
    Ok(Redirect::to(&format!(
        "/console/conversations/{contact_id}"
    )))
}

/// The transfer form.
#[derive(Debug, Deserialize)]
pub struct TransferForm {
    pub csrf: Option<String>,
    pub to_agent: i64,
}

/// `POST /console/handoffs/{id}/transfer`.
pub async fn transfer(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(id): Path<i64>,
    Form(form): Form<TransferForm>,
) -> Result<Redirect> {
    agent.check_csrf(form.csrf.as_deref())?;
    access::check_handoff(&state.db, &agent, id).await?;
    handoff::transfer(&state.db, id, &agent, form.to_agent).await?;
    Ok(Redirect::to("/console/queue"))
}

/// `POST /console/handoffs/{id}/close`.
pub async fn close(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect> {
    agent.check_csrf(form.csrf.as_deref())?;
    access::check_handoff(&state.db, &agent, id).await?;
    handoff::close(&state.console, &state.db, id, &agent).await?;
    Ok(Redirect::to("/console/queue"))
}

#[derive(Debug, Serialize)]
struct ConsentRow {
    change: String,
    scope: String,
    source: String,
    when: String,
}

#[derive(Debug, Serialize)]
struct TemplateChoice {
    name: String,
    language: String,
    placeholder: bool,
    /// Names of the body parameters, in order (the form asks for each).
    params: Vec<String>,
}

/// `GET /console/conversations/{contact}`.
pub async fn conversation(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(contact_id): Path<i64>,
) -> Result<Html<String>> {
    access::check_contact(&state.db, &agent, contact_id).await?;
    let contact = contact::Entity::find_by_id(contact_id)
        .one(&state.db)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    access::record_view(
        &state.db,
        &agent,
        contact_id,
        Reading::Page,
        state.settings.console.view_log_merge_minutes,
    )
    .await?;
    let open = handoff::open_for_contact(&state.db, contact_id).await?;
    let hours = &state.console.hours;
    let mut ctx = base_context(&agent, "conversation");
    ctx.insert("contact_id", &contact_id);
    ctx.insert("who", &who(&contact));
    let number = crate::messaging::composer::number_written_to(&state.db, None, contact_id).await?;
    ctx.insert("line", &line_label(&state, number.as_deref()));
    ctx.insert(
        "handoff",
        &open.as_ref().map(|h| {
            serde_json::json!({
                "id": h.id, "state": h.state, "reason": h.reason.replace('_', " "),
                "language": h.language, "requested": local_time(hours, h.requested_at),
            })
        }),
    );
    let mine = open
        .as_ref()
        .is_some_and(|h| h.state == HandoffState::Taken && h.agent_id == Some(agent.id));
    ctx.insert("mine", &mine);
    ctx.insert(
        "can_act",
        &(mine
            || (agent.is_supervisor()
                && open
                    .as_ref()
                    .is_some_and(|h| h.state == HandoffState::Taken))),
    );
    let holder = match open.as_ref().and_then(|h| h.agent_id) {
        Some(id) => agent::Entity::find_by_id(id)
            .one(&state.db)
            .await?
            .map(|a| a.name),
        None => None,
    };
    ctx.insert("holder", &holder);
    // The window of the number the conversation is on decides what the agent may send (their
    // replies leave from it); the contact's windows on the deployment's other numbers are
    // shown beside it, each being its own (Meta keeps one per user and business number).
    let (window_open, window_text) = window(&state, &contact, number.as_deref()).await?;
    ctx.insert("window_open", &window_open);
    ctx.insert("window_text", &window_text);
    let on = number.unwrap_or_else(|| state.settings.first_number_id().to_owned());
    let other_windows: Vec<serde_json::Value> =
        crate::messaging::composer::windows_of(&state.db, contact_id)
            .await?
            .into_iter()
            .filter(|(n, _)| *n != on)
            .map(|(n, start)| {
                let (open, text) = window_sentence(&state, &n, Some(start));
                serde_json::json!({ "open": open, "text": text })
            })
            .collect();
    ctx.insert("other_windows", &other_windows);

    // The policyholder's context: what the bot knows (saved slots), language, mode, consent.
    let conv = crate::dialogue::load(&state.db, contact_id).await?;
    let slots = conv
        .as_ref()
        .map_or_else(Vec::new, |c: &Conversation| super::known::facts(&c.slots));
    ctx.insert("slots", &slots);
    ctx.insert(
        "language",
        &conv
            .as_ref()
            .map_or_else(|| "-".to_owned(), |c| c.language.clone()),
    );
    ctx.insert(
        "mode",
        &conv.as_ref().map_or("bot", |c| match c.mode {
            crate::engine::Mode::Bot => "bot answering",
            crate::engine::Mode::WaitingForAgent => "waiting for an agent (bot quiet)",
            crate::engine::Mode::WithAgent => "with an agent (bot quiet)",
            crate::engine::Mode::OptedOutQuiet => "opted out",
        }),
    );
    let consent: Vec<ConsentRow> = consent_log::Entity::find()
        .filter(consent_log::Column::ContactId.eq(contact_id))
        .order_by_desc(consent_log::Column::Id)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|r| ConsentRow {
            change: r.change.replace('_', " "),
            scope: r.scope,
            source: r.source,
            when: local_time(hours, r.created_at),
        })
        .collect();
    ctx.insert(
        "consent_state",
        &consent.first().map_or(
            "no change recorded (service messages allowed)".to_owned(),
            |c| format!("{} ({})", c.change, c.scope),
        ),
    );
    ctx.insert("consent", &consent);
    let insurance = crate::insurer::context::for_contact(
        &state.db,
        contact_id,
        now_ms(),
        state.settings.insurer.verification_ttl_minutes,
    )
    .await?;
    ctx.insert("insurance", &insurance);
    let waba = state.settings.waba_of(Some(&on));
    let (templates, from_registry) = approved_templates(&state.db, &waba).await;
    ctx.insert("templates", &templates);
    ctx.insert("templates_from_registry", &from_registry);
    let agents: Vec<serde_json::Value> = agent::Entity::find()
        .filter(agent::Column::Active.eq(true))
        .filter(agent::Column::Id.ne(agent.id))
        .order_by_asc(agent::Column::Name)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|a| serde_json::json!({"id": a.id, "name": a.name, "role": a.role}))
        .collect();
    ctx.insert("agents", &agents);
    ctx.insert(
        "lines",
        &transcript::load(&state.db, hours, contact_id, TRANSCRIPT_LINES).await?,
    );
    state.console.render("conversation.html", &ctx)
}

/// Whether the agent may write free text to `contact` from `number` (`None`: the deployment's
/// first), and a sentence saying until when. The composer's window (with its safety margin)
/// decides, so the page never offers free text the composer would then refuse to send.
async fn window(
    state: &AppState,
    contact: &contact::Model,
    number: Option<&str>,
) -> Result<(bool, String)> {
    let start =
        crate::messaging::composer::window_start(&state.db, &state.composer, contact, number)
            .await?;
    let number = number.map_or_else(
        || state.settings.first_number_id().to_owned(),
        str::to_owned,
    );
    Ok(window_sentence(state, &number, start))
}

/// Whether the window on `number` that started at `start` is open, and the sentence agents
/// read: "Window with +91 22 5555 0101: open until …".
fn window_sentence(state: &AppState, number: &str, start: Option<i64>) -> (bool, String) {
    let hours = &state.console.hours;
    let label = state.settings.number_label(number);
    let now = now_ms();
    match state.composer.window_closes_at(start) {
        Some(end) if now < end => (
            true,
            format!(
                "Window with {label}: open until {} ({} left)",
                local_time(hours, end),
                duration_text(end - now)
            ),
        ),
        Some(end) => (
            false,
            format!(
                "Window with {label}: the 24-hour window closed at {}. Only approved templates can be sent.",
                local_time(hours, end)
            ),
        ),
        None => (
            false,
            format!(
                "Window with {label}: the policyholder has never written to this number. Only approved templates can be sent."
            ),
        ),
    }
}

/// Approved templates of the WABA `waba` (the one of the number the conversation is on: only
/// those can leave from it) from the template registry, with their parameters; when the
/// registry is empty, the template the engine itself falls back to, shown as a placeholder.
async fn approved_templates(db: &DatabaseConnection, waba: &str) -> (Vec<TemplateChoice>, bool) {
    let approved: Vec<TemplateChoice> = crate::messaging::templates::all(db)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.waba_id == waba && t.status == "APPROVED" && t.category != "MARKETING")
        .map(|t| TemplateChoice {
            name: t.name,
            language: t.language,
            placeholder: false,
            params: t.params,
        })
        .collect();
    if approved.is_empty() {
        let fallback = TemplateChoice {
            name: crate::engine::runtime::AGENT_UNAVAILABLE_TEMPLATE.to_owned(),
            language: "en".into(),
            placeholder: true,
            params: Vec::new(),
        };
        return (vec![fallback], false);
    }
    (approved, true)
}

/// `GET /console/conversations/{contact}/transcript`: the transcript fragment.
pub async fn transcript(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(contact_id): Path<i64>,
) -> Result<Html<String>> {
    access::check_contact(&state.db, &agent, contact_id).await?;
    access::record_view(
        &state.db,
        &agent,
        contact_id,
        Reading::Refresh,
        state.settings.console.view_log_merge_minutes,
    )
    .await?;
    let mut ctx = base_context(&agent, "conversation");
    ctx.insert(
        "lines",
        &transcript::load(
            &state.db,
            &state.console.hours,
            contact_id,
            TRANSCRIPT_LINES,
        )
        .await?,
    );
    state.console.render("transcript.html", &ctx)
}

/// `GET /console/conversations/{contact}/events`: `update` on new messages, new replies,
/// delivery statuses and hand-off changes of this contact.
pub async fn conversation_events(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(contact_id): Path<i64>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    // The stream carries no content, but it tells when someone writes: only for those who
    // may read the conversation.
    access::check_contact(&state.db, &agent, contact_id).await?;
    let db = state.db.clone();
    Ok(changes(state.console.closing.clone(), move || {
        let db = db.clone();
        async move { conversation_fingerprint(&db, contact_id).await.ok() }
    }))
}

async fn conversation_fingerprint(
    db: &DatabaseConnection,
    contact_id: i64,
) -> std::result::Result<String, sea_orm::DbErr> {
    let backend = db.get_database_backend();
    // One round trip: the newest inbound id, the outbox's latest change, the latest status
    // change of this contact's messages, and the hand-off state.
    let sql = "SELECT \
        (SELECT MAX(id) FROM inbound_messages WHERE contact_id = $1) AS a, \
        (SELECT MAX(updated_at) FROM outbox WHERE contact_id = $1) AS b, \
        (SELECT MAX(s.updated_at) FROM message_statuses s JOIN outbox o ON o.wamid = s.wamid \
            WHERE o.contact_id = $1) AS c, \
        (SELECT COUNT(*) FROM outbox WHERE contact_id = $1) AS d, \
        (SELECT MAX(COALESCE(closed_at, taken_at, requested_at)) FROM handoffs WHERE contact_id = $1) AS e";
    let sql = if backend == DbBackend::Sqlite {
        sql.replace("$1", "?1")
    } else {
        sql.to_owned()
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [contact_id.into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => ["a", "b", "c", "d", "e"]
            .iter()
            .map(|c| {
                r.try_get::<Option<i64>>("", c)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join(":"),
        None => String::new(),
    })
}

/// The reply form.
#[derive(Debug, Deserialize)]
pub struct ReplyForm {
    pub csrf: Option<String>,
    pub text: String,
}

/// `POST /console/conversations/{contact}/reply`: queues the agent's text while the window is
/// open and the agent holds the conversation (or supervises).
pub async fn reply(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(contact_id): Path<i64>,
    Form(form): Form<ReplyForm>,
) -> Result<Response> {
    agent.check_csrf(form.csrf.as_deref())?;
    access::check_contact(&state.db, &agent, contact_id).await?;
    let text = form.text.trim();
    if text.is_empty() {
        return Ok(Redirect::to(&format!("/console/conversations/{contact_id}")).into_response());
    }
    if text.chars().count() > super::reply::MAX_CHARS {
        return Err(ConsoleError::Conflict(format!(
            "A message can have at most {} characters.",
            super::reply::MAX_CHARS
        )));
    }
    let contact = may_write_free_form(&state, &agent, contact_id).await?;
    let txn = begin_write(&state.db).await?;
    super::reply::send_agent_text(&txn, &state.composer, &contact, text).await?;
    txn.commit().await?;
    tracing::info!(contact_id, agent_id = agent.id, "agent reply queued");
    Ok(Redirect::to(&format!("/console/conversations/{contact_id}")).into_response())
}

/// The contact, when `agent` may send it free-form now: the conversation is taken by them (or
/// they supervise) and the 24-hour window is open. Text replies and attachments share it.
///
/// # Errors
/// [`ConsoleError::Conflict`] saying what to do (take it first; templates only once the
/// window closed), `NotFound` for an unknown contact.
pub(super) async fn may_write_free_form(
    state: &AppState,
    agent: &CurrentAgent,
    contact_id: i64,
) -> Result<contact::Model> {
    let contact = contact::Entity::find_by_id(contact_id)
        .one(&state.db)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let open = handoff::open_for_contact(&state.db, contact_id).await?;
    let allowed = open.as_ref().is_some_and(|h| {
        h.state == HandoffState::Taken && (h.agent_id == Some(agent.id) || agent.is_supervisor())
    });
    if !allowed {
        return Err(ConsoleError::Conflict(
            "Take the conversation before replying.".into(),
        ));
    }
    // Checked here as well as in the page: a page left open past the deadline must not send
    // free text that WhatsApp would refuse (field notes, pain point 1).
    // From the number the agent's reply leaves from (the one the contact last wrote to).
    let number = crate::messaging::composer::number_written_to(&state.db, None, contact_id).await?;
    if !window(state, &contact, number.as_deref()).await?.0 {
        return Err(ConsoleError::Conflict(
            "The 24-hour window has closed: only approved templates can be sent.".into(),
        ));
    }
    Ok(contact)
}

/// `POST /console/conversations/{contact}/template`: queues an approved template for a
/// conversation the agent holds, whatever the window (outside it, templates are the only way to
/// reach the policyholder). The composer checks the template's status and consent again.
pub async fn send_template(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(contact_id): Path<i64>,
    form: axum::extract::RawForm,
) -> Result<Response> {
    // The form repeats `param` once per template parameter, in order; a struct would keep one.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&form.0)
        .map_err(|_| ConsoleError::Conflict("The form could not be read.".into()))?;
    let field = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    agent.check_csrf(field("csrf").as_deref())?;
    access::check_contact(&state.db, &agent, contact_id).await?;
    let chosen = field("template").unwrap_or_default();
    let params: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "param")
        .map(|(_, v)| v.trim().to_owned())
        .collect();
    let number = crate::messaging::composer::number_written_to(&state.db, None, contact_id).await?;
    let waba = state.settings.waba_of(number.as_deref());
    let (templates, from_registry) = approved_templates(&state.db, &waba).await;
    let Some(template) = templates
        .into_iter()
        .find(|t| format!("{}|{}", t.name, t.language) == chosen)
    else {
        return Err(ConsoleError::Conflict(
            "Choose one of the approved templates.".into(),
        ));
    };
    if !from_registry {
        return Err(ConsoleError::Conflict(
            "No approved template is registered yet.".into(),
        ));
    }
    if params.len() != template.params.len() || params.iter().any(String::is_empty) {
        return Err(ConsoleError::Conflict(format!(
            "The template {} needs {} parameter(s): {}.",
            template.name,
            template.params.len(),
            template.params.join(", ")
        )));
    }
    let contact = contact::Entity::find_by_id(contact_id)
        .one(&state.db)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let open = handoff::open_for_contact(&state.db, contact_id).await?;
    let allowed = open.as_ref().is_some_and(|h| {
        h.state == HandoffState::Taken && (h.agent_id == Some(agent.id) || agent.is_supervisor())
    });
    if !allowed {
        return Err(ConsoleError::Conflict(
            "Take the conversation before replying.".into(),
        ));
    }
    let txn = begin_write(&state.db).await?;
    super::reply::send_agent_template(
        &txn,
        &state.composer,
        &contact,
        &template.name,
        &template.language,
        params,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(contact_id, agent_id = agent.id, template = %template.name, "agent template queued");
    Ok(Redirect::to(&format!("/console/conversations/{contact_id}")).into_response())
}

/// Moves a contact's window starts back by `hours`, on every number (the simulator's "pretend
/// the window has closed" and tests).
///
/// # Errors
/// Database errors.
pub async fn move_window_back<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    hours: i64,
) -> std::result::Result<(), sea_orm::DbErr> {
    contact::Entity::update_many()
        .col_expr(
            contact::Column::LastInboundAt,
            Expr::value(now_ms() - hours * 3_600_000),
        )
        .filter(contact::Column::Id.eq(contact_id))
        .exec(db)
        .await?;
    contact_window::Entity::update_many()
        .col_expr(
            contact_window::Column::LastInboundAt,
            Expr::value(now_ms() - hours * 3_600_000),
        )
        .filter(contact_window::Column::ContactId.eq(contact_id))
        .exec(db)
        .await?;
    Ok(())
}
