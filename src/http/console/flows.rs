//! The flow pages (supervisors and admins): every flow as a diagram drawn from the running
//! flow set ([`crate::engine::graph`]), with live numbers from the last [`DAYS`] days laid
//! over it: how often each state was entered, how often each edge was taken, and how many
//! conversations gave up in each state (the dashboard's "where people give up"). So the
//! funnel of "report a claim" or "pay premium" reads at a glance, and it cannot drift from
//! what runs. The page is HTML and inline SVG only: no script, nothing for the CSP to refuse.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde::{Deserialize, Serialize};

use super::auth::{CurrentAgent, Role};
use super::dashboard::{DAYS, gave_up};
use super::error::{ConsoleError, Result};
use super::local_time;
use crate::engine::FlowSet;
use crate::engine::graph::{FlowGraph, NodeKind};
use crate::http::AppState;
use crate::store::now_ms;

#[derive(Debug, Serialize)]
struct FlowRow {
    id: String,
    description: String,
    role: Option<&'static str>,
    states: usize,
}

/// The flow set the engine runs; none (404) with the echo handler.
fn running_flows(state: &AppState) -> Result<Arc<FlowSet>> {
    state
        .console
        .flows
        .as_ref()
        .map(|f| f.current())
        .ok_or(ConsoleError::NotFound)
}

/// `GET /console/flows`: the list of flows (supervisors and admins).
pub async fn list(State(state): State<AppState>, agent: CurrentAgent) -> Result<Html<String>> {
    agent.require(Role::Supervisor)?;
    let flows = running_flows(&state)?;
    let rows: Vec<FlowRow> = flows
        .flows()
        .map(|f| FlowRow {
            id: f.id.to_string(),
            description: f.file.description.clone().unwrap_or_default(),
            role: flows.role_of(f.id.as_str()).map(|r| r.as_str()),
            states: f.file.states.0.len(),
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("me", &agent);
    ctx.insert("is_supervisor", &true);
    ctx.insert("page", "flows");
    ctx.insert("flows", &rows);
    state.console.render("flows.html", &ctx)
}

/// `?lang=` of the flow page.
#[derive(Debug, Deserialize)]
pub struct FlowQuery {
    lang: Option<String>,
}

#[derive(Debug, Serialize)]
struct StateRow {
    state: String,
    entered: u64,
    gave_up: u64,
    elsewhere: u64,
    /// "label → target: n" for each edge leaving the state.
    edges: Vec<String>,
    problem: bool,
}

/// `GET /console/flows/{id}`: one flow's diagram with its live funnel (supervisors and admins).
pub async fn page(
    State(state): State<AppState>,
    agent: CurrentAgent,
    Path(id): Path<String>,
    Query(q): Query<FlowQuery>,
) -> Result<Html<String>> {
    agent.require(Role::Supervisor)?;
    let flows = running_flows(&state)?;
    let flow = flows.flow(&id).ok_or(ConsoleError::NotFound)?;
    let languages: Vec<String> = flows.i18n().languages().map(str::to_owned).collect();
    // An unknown `?lang=` falls back to the console's language rather than failing the page.
    let lang = q
        .lang
        .filter(|l| languages.contains(l))
        .unwrap_or_else(|| state.console.default_language.clone());

    let now = now_ms();
    let since = now - DAYS * 86_400_000;
    let idle_ms = i64::from(state.settings.dialogue.idle_restart_minutes) * 60_000;
    let hops = crate::dialogue::hops::counts(&state.db, flow.id.as_str(), since).await?;
    let stuck = gave_up(&state.db, now, idle_ms, Some(flow.id.as_str())).await?;

    let graph = FlowGraph::build(
        &flow.file,
        &flow.path,
        Some(flows.i18n()),
        &lang,
        &flows.warnings,
    );
    let counts = graph.count(
        hops.iter().map(|(h, n)| (h, *n)),
        stuck.iter().map(|((_, s), n)| (s.as_str(), *n as u64)),
    );
    let rows: Vec<StateRow> = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.kind, NodeKind::State(_)))
        .map(|(i, n)| StateRow {
            state: n.title.clone(),
            entered: counts.entered[i],
            gave_up: counts.gave_up[i],
            elsewhere: counts.elsewhere[i],
            edges: graph
                .edges
                .iter()
                .enumerate()
                .filter(|(_, e)| e.from == i)
                .map(|(k, e)| {
                    let label = e.labels.join(" / ");
                    let to = &graph.nodes[e.to].title;
                    let arrow = if label.is_empty() {
                        format!("→ {to}")
                    } else {
                        format!("{label} → {to}")
                    };
                    format!("{arrow}: {}", counts.taken[k])
                })
                .collect(),
            problem: !n.marks.is_empty(),
        })
        .collect();

    let mut ctx = tera::Context::new();
    ctx.insert("me", &agent);
    ctx.insert("is_supervisor", &true);
    ctx.insert("page", "flows");
    ctx.insert("flow", flow.id.as_str());
    ctx.insert("description", &flow.file.description);
    ctx.insert("days", &DAYS);
    ctx.insert("lang", &lang);
    ctx.insert("languages", &languages);
    ctx.insert("started", &counts.entered[0]);
    ctx.insert("diagram", &graph.svg(Some(&counts)));
    ctx.insert("rows", &rows);
    ctx.insert("generated", &local_time(&state.console.hours, now));
    state.console.render("flow.html", &ctx)
}
