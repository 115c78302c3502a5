//! The campaign pages: the list (state, progress, counts) and one campaign's progress and
//! results (sent, delivered, read, failed and skipped by reason), with its start / pause /
//! resume / cancel forms. Every logged-in agent may look; only supervisors and admins may act
//! (see [`MANAGE`]). Both pages fetch a fragment of themselves every few seconds while a
//! campaign is live, so progress moves without a reload.
//!
//! The numbers are [`reminders::campaigns::reports`](crate::reminders::campaigns::reports),
//! the same ones the API and the CLI show; the transitions are the campaign layer's own, so
//! the console cannot move a campaign in a way the API would refuse. Only aggregates are
//! shown: no recipient's number appears on these pages.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Serialize;

use super::auth::{CsrfForm, CurrentAgent, Role};
use super::error::{ConsoleError, Result};
use super::{duration_text, local_time, reason_text};
use crate::http::AppState;
use crate::reminders::ReminderError;
use crate::reminders::campaigns::{self, CampaignReport};
use crate::store::entities::campaign::State as CampaignState;

/// Who may start, pause, resume and cancel. A campaign writes to thousands of policyholders
/// at once and a sent message cannot be called back, so it is a supervisor's decision, like
/// the dashboard; agents work one conversation at a time and only watch.
pub const MANAGE: Role = Role::Supervisor;

/// Campaigns listed (newest first); older ones stay reachable by their page and the API.
const LISTED: u64 = 100;
/// How often a page refreshes while its campaign is live, and otherwise (delivery and read
/// statuses keep arriving after the last send).
const REFRESH_LIVE_MS: u32 = 2_000;
const REFRESH_IDLE_MS: u32 = 15_000;

/// A campaign as the pages show it.
#[derive(Debug, Serialize)]
struct View {
    #[serde(flatten)]
    report: CampaignReport,
    /// Recipients decided (sent, failed or skipped), for the progress bar.
    done: u64,
    /// Whole percent of `done`, floored (100 only when everyone is decided).
    percent: u64,
    failed_total: u64,
    skipped_total: u64,
    /// Running, or rows still waiting in the outbox: numbers move by themselves.
    live: bool,
    /// A sentence under the state badge.
    state_text: String,
    /// "about 3 min left" while running.
    eta: Option<String>,
    failed_reasons: Vec<Reason>,
    skipped_reasons: Vec<Reason>,
    /// The forms this campaign's state allows, in the order shown.
    actions: Vec<Action>,
}

#[derive(Debug, Serialize)]
struct Reason {
    code: String,
    /// What the code means, for the reasons we know.
    text: Option<&'static str>,
    count: u64,
}

#[derive(Debug, Serialize)]
struct Action {
    /// The path segment and the button's id: start, pause, resume, cancel.
    name: &'static str,
    label: String,
    primary: bool,
}

impl View {
    fn new(report: CampaignReport, hours: &crate::config::hours::OfficeHours, now_ms: i64) -> Self {
        let done = report.done();
        let percent = (done * 100).checked_div(report.total).unwrap_or(100);
        let live = report.state == CampaignState::Running || report.queued > 0;
        let state_text = match report.state {
            CampaignState::Draft => "Not started: nothing has been sent.".to_owned(),
            CampaignState::Running if report.start_at > now_ms => {
                format!("Starts sending at {}.", local_time(hours, report.start_at))
            }
            CampaignState::Running => match report.started_at {
                Some(at) => format!("Sending since {}.", local_time(hours, at)),
                None => "Sending.".to_owned(),
            },
            CampaignState::Paused => {
                "Paused: nothing more is queued until it is resumed.".to_owned()
            }
            CampaignState::Cancelled => format!(
                "Cancelled{}: recipients not yet sent to were withdrawn.",
                finished(hours, report.finished_at)
            ),
            CampaignState::Completed => format!(
                "Completed{}: every recipient was decided.",
                finished(hours, report.finished_at)
            ),
        };
        let eta = (report.state == CampaignState::Running && report.pending > 0).then(|| {
            let rate = u64::try_from(report.rate_per_second.max(1)).unwrap_or(1);
            let ms = i64::try_from(report.pending.saturating_mul(1000) / rate).unwrap_or(i64::MAX);
            format!(
                "about {} left at {} messages/s",
                duration_text(ms),
                report.rate_per_second
            )
        });
        let reasons = |map: &std::collections::BTreeMap<String, u64>| {
            let mut v: Vec<Reason> = map
                .iter()
                .map(|(code, count)| Reason {
                    code: code.clone(),
                    text: reason_text(code),
                    count: *count,
                })
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
            v
        };
        let actions = actions(&report);
        View {
            done,
            percent,
            failed_total: report.failed.values().sum(),
            skipped_total: report.skipped.values().sum(),
            live,
            state_text,
            eta,
            failed_reasons: reasons(&report.failed),
            skipped_reasons: reasons(&report.skipped),
            actions,
            report,
        }
    }
}

fn finished(hours: &crate::config::hours::OfficeHours, at: Option<i64>) -> String {
    at.map(|t| format!(" at {}", local_time(hours, t)))
        .unwrap_or_default()
}

/// The transitions the campaign layer allows from the report's state.
fn actions(r: &CampaignReport) -> Vec<Action> {
    let start = || Action {
        name: "start",
        label: format!("Start sending to {} recipients", r.total),
        primary: true,
    };
    let pause = || Action {
        name: "pause",
        label: "Pause".into(),
        primary: true,
    };
    let resume = || Action {
        name: "resume",
        label: "Resume".into(),
        primary: true,
    };
    let cancel = || Action {
        name: "cancel",
        label: "Cancel campaign (cannot be undone)".into(),
        primary: false,
    };
    match r.state {
        CampaignState::Draft => vec![start(), cancel()],
        CampaignState::Running => vec![pause(), cancel()],
        CampaignState::Paused => vec![resume(), cancel()],
        _ => Vec::new(),
    }
}

/// `GET /console/campaigns`.
pub async fn list(State(state): State<AppState>, agent: CurrentAgent) -> Result<Html<String>> {
    let ctx = list_context(&state, &agent).await?;
    state.console.render("campaigns.html", &ctx)
}

/// `GET /console/campaigns/rows`: the table body, for the list's refresh.
pub async fn list_rows(State(state): State<AppState>, agent: CurrentAgent) -> Result<Html<String>> {
    let ctx = list_context(&state, &agent).await?;
    state.console.render("campaign_rows.html", &ctx)
}

async fn list_context(state: &AppState, agent: &CurrentAgent) -> Result<tera::Context> {
    let newest = campaigns::newest(&state.db, LISTED).await?;
    let now = crate::store::now_ms();
    let views: Vec<View> = campaigns::reports(&state.db, newest)
        .await?
        .into_iter()
        .map(|r| View::new(r, &state.console.hours, now))
        .collect();
    let mut ctx = page_context(agent, "campaigns");
    ctx.insert("live", &views.iter().any(|v| v.live));
    ctx.insert("campaigns", &views);
    ctx.insert("listed", &LISTED);
    Ok(ctx)
}

fn page_context(agent: &CurrentAgent, page: &str) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("me", agent);
    ctx.insert("is_supervisor", &agent.is_supervisor());
    ctx.insert("page", page);
    ctx.insert("can_manage", &(agent.role >= MANAGE));
    ctx.insert("refresh_live_ms", &REFRESH_LIVE_MS);
    ctx.insert("refresh_idle_ms", &REFRESH_IDLE_MS);
    ctx
}

/// The id in a campaign path. Anything but a number is no campaign: a 404 like an unknown
/// id, rather than axum's plain-text 400.
fn campaign_id(raw: &str) -> Result<i64> {
    raw.parse().map_err(|_| ConsoleError::NotFound)
}

/// The page's context for campaign `id`; an unknown id is [`ConsoleError::NotFound`].
async fn campaign_context(
    state: &AppState,
    agent: &CurrentAgent,
    id: i64,
) -> Result<tera::Context> {
    let report = match campaigns::campaign_report(&state.db, id).await {
        Ok(r) => r,
        Err(ReminderError::UnknownCampaign(_)) => return Err(ConsoleError::NotFound),
        Err(e) => return Err(internal(e)),
    };
    let view = View::new(report, &state.console.hours, crate::store::now_ms());
    let mut ctx = page_context(agent, "campaigns");
    ctx.insert("c", &view);
    Ok(ctx)
}

/// `GET /console/campaigns/{id}`.
pub async fn page(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(id): Path<String>,
) -> Result<Html<String>> {
    let ctx = campaign_context(&state, &agent, campaign_id(&id)?).await?;
    state.console.render("campaign.html", &ctx)
}

/// `GET /console/campaigns/{id}/live`: state, actions, progress and results, for the page's
/// refresh.
pub async fn live(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(id): Path<String>,
) -> Result<Html<String>> {
    let ctx = campaign_context(&state, &agent, campaign_id(&id)?).await?;
    state.console.render("campaign_live.html", &ctx)
}

/// `POST /console/campaigns/{id}/{action}`: start, pause, resume or cancel. A transition the
/// campaign's state does not allow (resuming a cancelled campaign, pausing a finished one)
/// changes nothing and answers 409 with the campaign page and a sentence saying why.
pub async fn act(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response> {
    agent.check_csrf(form.csrf.as_deref())?;
    agent.require(MANAGE)?;
    let id = campaign_id(&id)?;
    let now = chrono::Utc::now();
    let done = match action.as_str() {
        "start" => campaigns::start(&state.db, id, now).await,
        "pause" => campaigns::pause(&state.db, id, now).await,
        "resume" => campaigns::resume(&state.db, id, now).await,
        "cancel" => campaigns::cancel(&state.db, id, now).await,
        _ => return Err(ConsoleError::NotFound),
    };
    match done {
        Ok(()) => {
            tracing::info!(
                campaign_id = id,
                agent_id = agent.id,
                action,
                "campaign changed from the console"
            );
            Ok(Redirect::to(&format!("/console/campaigns/{id}")).into_response())
        }
        Err(ReminderError::UnknownCampaign(_)) => Err(ConsoleError::NotFound),
        Err(ReminderError::WrongState { state: current, .. }) => {
            let mut ctx = campaign_context(&state, &agent, id).await?;
            ctx.insert("notice", &refusal(&action, current));
            let page = state.console.render("campaign.html", &ctx)?;
            Ok((StatusCode::CONFLICT, page).into_response())
        }
        Err(e) => Err(internal(e)),
    }
}

/// Why `action` is refused in state `current`, and what is possible instead.
fn refusal(action: &str, current: CampaignState) -> String {
    let allowed = match action {
        "start" => "Only a draft can be started.",
        "pause" => "Only a running campaign can be paused.",
        "resume" => "Only a paused campaign can be resumed.",
        _ => "Only a draft, running or paused campaign can be cancelled.",
    };
    let verb = match action {
        "start" => "started",
        "pause" => "paused",
        "resume" => "resumed",
        _ => "cancelled",
    };
    format!("This campaign is {current}, so it cannot be {verb}. {allowed} Nothing was changed.")
}

fn internal(e: ReminderError) -> ConsoleError {
    match e {
        ReminderError::Db(db) => ConsoleError::Db(db),
        other => ConsoleError::Internal(anyhow::Error::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: CampaignState) -> CampaignReport {
        CampaignReport {
            state,
            total: 10,
            ..CampaignReport::default()
        }
    }

    #[test]
    fn each_state_offers_exactly_the_transitions_the_campaign_layer_allows() {
        let names = |s: CampaignState| -> Vec<&str> {
            actions(&report(s)).iter().map(|a| a.name).collect()
        };
        assert_eq!(names(CampaignState::Draft), ["start", "cancel"]);
        assert_eq!(names(CampaignState::Running), ["pause", "cancel"]);
        assert_eq!(names(CampaignState::Paused), ["resume", "cancel"]);
        assert!(names(CampaignState::Cancelled).is_empty());
        assert!(names(CampaignState::Completed).is_empty());
    }

    #[test]
    fn progress_counts_decided_recipients_and_an_empty_campaign_is_complete() {
        let hours = crate::config::hours::OfficeHours::from_settings(&Default::default()).unwrap();
        let mut r = report(CampaignState::Running);
        r.pending = 6;
        r.queued = 1;
        r.sent = 3;
        let v = View::new(r, &hours, 0);
        assert_eq!((v.done, v.percent, v.live), (3, 30, true));
        assert!(v.eta.is_some());
        let empty = View::new(
            CampaignReport {
                state: CampaignState::Completed,
                ..CampaignReport::default()
            },
            &hours,
            0,
        );
        assert_eq!((empty.done, empty.percent, empty.live), (0, 100, false));
    }

    #[test]
    fn a_refusal_names_the_state_and_says_nothing_changed() {
        let text = refusal("resume", CampaignState::Cancelled);
        assert!(text.contains("is cancelled"), "{text}");
        assert!(text.contains("cannot be resumed"), "{text}");
        assert!(text.contains("Nothing was changed"), "{text}");
    }
}
