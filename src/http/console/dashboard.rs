//! The supervisor dashboard: messages per day in and out, hand-offs and their waiting times,
//! opt-outs, delivery failures by reason, and where policyholders give up. Charts are inline
//! SVG drawn here, so the page needs no chart library and no outside service.
//!
//! The numbers are counted in Rust over the last [`DAYS`] days of rows (only the few columns
//! needed are fetched), which keeps one code path for SQLite and PostgreSQL; at very large
//! volumes these become `GROUP BY` queries or a rollup table.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::response::Html;
use chrono::{DateTime, Duration, NaiveDate};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde::Serialize;

use super::auth::{CurrentAgent, Role};
use super::error::Result;
use super::{duration_text, local_time};
use crate::config::hours::OfficeHours;
use crate::http::AppState;
use crate::store::entities::{
    consent_log, conversation, handoff, inbound_message, message_status, misunderstood_message,
    outbox,
};
use crate::store::now_ms;

/// Days shown.
pub const DAYS: i64 = 14;

/// How many "not understood" texts the dashboard lists.
const NOT_UNDERSTOOD_ROWS: usize = 20;

/// A text the bot could not place (masked when stored), how often, and where it came in.
#[derive(Debug, Serialize)]
struct NotUnderstood {
    text: String,
    language: String,
    places: String,
    count: usize,
}

/// The most frequent misunderstood texts since `since` (issue 22), for flow authors to add
/// to `locales/<lang>/intents.yaml`. Same text in any case and spacing counts once.
async fn not_understood(
    db: &sea_orm::DatabaseConnection,
    since: i64,
) -> Result<Vec<NotUnderstood>> {
    let rows: Vec<(String, String, String)> = misunderstood_message::Entity::find()
        .select_only()
        .columns([
            misunderstood_message::Column::Text,
            misunderstood_message::Column::Language,
            misunderstood_message::Column::Place,
        ])
        .filter(misunderstood_message::Column::At.gte(since))
        .into_tuple()
        .all(db)
        .await?;
    let mut by_text: BTreeMap<(String, String), (usize, std::collections::BTreeSet<String>)> =
        BTreeMap::new();
    for (text, language, place) in rows {
        let key = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let e = by_text.entry((key, language)).or_default();
        e.0 += 1;
        e.1.insert(place);
    }
    let mut out: Vec<NotUnderstood> = by_text
        .into_iter()
        .map(|((text, language), (count, places))| NotUnderstood {
            text,
            language,
            places: places.into_iter().collect::<Vec<_>>().join(", "),
            count,
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.text.cmp(&b.text)));
    out.truncate(NOT_UNDERSTOOD_ROWS);
    Ok(out)
}

#[derive(Debug, Serialize)]
struct Stuck {
    place: String,
    count: usize,
}

/// Where people give up: conversations the bot holds at a flow state (not with an agent)
/// that have been idle there longer than the idle restart, by (flow, state); of one flow
/// only with `flow`. The dashboard lists them; the flow pages draw them on their states.
///
/// # Errors
/// Database errors.
pub(super) async fn gave_up(
    db: &sea_orm::DatabaseConnection,
    now: i64,
    idle_ms: i64,
    flow: Option<&str>,
) -> Result<BTreeMap<(String, String), usize>> {
    let mut query = conversation::Entity::find()
        .select_only()
        .columns([conversation::Column::Flow, conversation::Column::FlowState])
        .filter(conversation::Column::Mode.eq("bot"))
        .filter(conversation::Column::UpdatedAt.lt(now - idle_ms));
    if let Some(flow) = flow {
        query = query.filter(conversation::Column::Flow.eq(flow));
    }
    let rows: Vec<(Option<String>, Option<String>)> = query.into_tuple().all(db).await?;
    let mut out: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (flow, st) in rows {
        if let (Some(flow), Some(st)) = (flow, st) {
            *out.entry((flow, st)).or_default() += 1;
        }
    }
    Ok(out)
}

/// `GET /console/dashboard` (supervisors and admins).
pub async fn page(State(state): State<AppState>, agent: CurrentAgent) -> Result<Html<String>> {
    agent.require(Role::Supervisor)?;
    let db = &state.db;
    let hours = &state.console.hours;
    let now = now_ms();
    let since = now - DAYS * 86_400_000;
    let days = day_labels(hours, now);

    let inbound: Vec<i64> = inbound_message::Entity::find()
        .select_only()
        .column(inbound_message::Column::SentAt)
        .filter(inbound_message::Column::SentAt.gte(since))
        .into_tuple()
        .all(db)
        .await?;
    let outbound: Vec<i64> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::CreatedAt)
        .filter(outbox::Column::CreatedAt.gte(since))
        .into_tuple()
        .all(db)
        .await?;
    let handoffs: Vec<(i64, Option<i64>, String)> = handoff::Entity::find()
        .select_only()
        .columns([
            handoff::Column::RequestedAt,
            handoff::Column::TakenAt,
            handoff::Column::State,
        ])
        .filter(handoff::Column::RequestedAt.gte(since))
        .into_tuple()
        .all(db)
        .await?;
    let opt_outs: Vec<i64> = consent_log::Entity::find()
        .select_only()
        .column(consent_log::Column::CreatedAt)
        .filter(consent_log::Column::Change.eq("opt_out"))
        .filter(consent_log::Column::CreatedAt.gte(since))
        .into_tuple()
        .all(db)
        .await?;
    let status_failures: Vec<(Option<i64>, Option<String>)> = message_status::Entity::find()
        .select_only()
        .columns([
            message_status::Column::ErrorCode,
            message_status::Column::ErrorTitle,
        ])
        .filter(message_status::Column::Status.eq("failed"))
        .filter(message_status::Column::UpdatedAt.gte(since))
        .into_tuple()
        .all(db)
        .await?;
    let send_failures: Vec<(Option<i64>, Option<String>)> = outbox::Entity::find()
        .select_only()
        .columns([outbox::Column::ErrorCode, outbox::Column::LastError])
        .filter(outbox::Column::State.is_in(["failed", "dead"]))
        .filter(outbox::Column::UpdatedAt.gte(since))
        .into_tuple()
        .all(db)
        .await?;
    let idle_ms = i64::from(state.settings.dialogue.idle_restart_minutes) * 60_000;
    let gave_up = gave_up(db, now, idle_ms, None).await?;

    let per_day = |times: &[i64]| -> Vec<f64> {
        let mut counts = vec![0.0; days.len()];
        for t in times {
            if let Some(i) = day_index(hours, now, *t) {
                counts[i] += 1.0;
            }
        }
        counts
    };
    let requested: Vec<i64> = handoffs.iter().map(|h| h.0).collect();
    let mut waits: Vec<i64> = handoffs
        .iter()
        .filter_map(|(r, t, _)| t.map(|t| t - r))
        .collect();
    waits.sort_unstable();
    let waiting_now = handoffs.iter().filter(|h| h.2 == "waiting").count();
    // Median wait per day, in minutes.
    let mut wait_by_day: Vec<Vec<i64>> = vec![Vec::new(); days.len()];
    for (r, t, _) in &handoffs {
        if let (Some(t), Some(i)) = (t, day_index(hours, now, *r)) {
            wait_by_day[i].push(t - r);
        }
    }
    let median_minutes: Vec<f64> = wait_by_day
        .iter_mut()
        .map(|w| {
            w.sort_unstable();
            w.get(w.len() / 2).map_or(0.0, |m| *m as f64 / 60_000.0)
        })
        .collect();

    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (code, text) in status_failures.iter().chain(send_failures.iter()) {
        let text = text.as_deref().unwrap_or("unknown");
        // Keep the label short and free of message text: the first clause of the reason.
        let short: String = text
            .split([':', '.'])
            .next()
            .unwrap_or(text)
            .chars()
            .take(48)
            .collect();
        let label = match code {
            Some(c) => format!("{c} {short}"),
            None => short,
        };
        *reasons.entry(label).or_default() += 1;
    }
    let mut reasons: Vec<(String, f64)> = reasons.into_iter().map(|(k, v)| (k, v as f64)).collect();
    reasons.sort_by(|a, b| b.1.total_cmp(&a.1));

    let mut stuck: Vec<Stuck> = gave_up
        .into_iter()
        .map(|((flow, st), count)| Stuck {
            place: format!("{flow}.{st}"),
            count,
        })
        .collect();
    stuck.sort_by_key(|s| std::cmp::Reverse(s.count));

    let mut ctx = tera::Context::new();
    ctx.insert("me", &agent);
    ctx.insert("is_supervisor", &true);
    ctx.insert("page", "dashboard");
    ctx.insert("days", &DAYS);
    ctx.insert("total_in", &inbound.len());
    ctx.insert("total_out", &outbound.len());
    ctx.insert("total_handoffs", &handoffs.len());
    ctx.insert("waiting_now", &waiting_now);
    ctx.insert(
        "median_wait",
        &waits
            .get(waits.len() / 2)
            .map_or_else(|| "-".to_owned(), |w| duration_text(*w)),
    );
    ctx.insert("total_opt_outs", &opt_outs.len());
    ctx.insert(
        "total_failures",
        &(status_failures.len() + send_failures.len()),
    );
    ctx.insert(
        "messages_chart",
        &bar_chart(
            "Messages per day",
            &days,
            &[("in", per_day(&inbound)), ("out", per_day(&outbound))],
            Axis::Counts,
        ),
    );
    ctx.insert(
        "handoffs_chart",
        &bar_chart(
            "Hand-offs per day",
            &days,
            &[("handoffs", per_day(&requested))],
            Axis::Counts,
        ),
    );
    ctx.insert(
        "waits_chart",
        &bar_chart(
            "Median wait for an agent (minutes)",
            &days,
            &[("wait", median_minutes)],
            Axis::Measure,
        ),
    );
    ctx.insert(
        "optouts_chart",
        &bar_chart(
            "Opt-outs per day",
            &days,
            &[("optout", per_day(&opt_outs))],
            Axis::Counts,
        ),
    );
    ctx.insert(
        "failures_chart",
        &hbar_chart("Delivery failures by reason", &reasons),
    );
    let stuck_items: Vec<(String, f64)> = stuck
        .iter()
        .take(12)
        .map(|s| (s.place.clone(), s.count as f64))
        .collect();
    ctx.insert(
        "stuck_chart",
        &hbar_chart("Where people give up (flow.state)", &stuck_items),
    );
    ctx.insert("stuck", &stuck);
    ctx.insert("not_understood", &not_understood(db, since).await?);
    ctx.insert("generated", &local_time(hours, now));
    state.console.render("dashboard.html", &ctx)
}

fn local_date(hours: &OfficeHours, at_ms: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(at_ms).map(|t| t.with_timezone(&hours.offset).date_naive())
}

/// `dd/mm` for each of the last [`DAYS`] local days, oldest first.
fn day_labels(hours: &OfficeHours, now: i64) -> Vec<String> {
    let today = local_date(hours, now).unwrap_or_default();
    (0..DAYS)
        .rev()
        .map(|back| (today - Duration::days(back)).format("%d/%m").to_string())
        .collect()
}

fn day_index(hours: &OfficeHours, now: i64, at: i64) -> Option<usize> {
    let today = local_date(hours, now)?;
    let day = local_date(hours, at)?;
    let back = (today - day).num_days();
    (0..DAYS)
        .contains(&back)
        .then(|| (DAYS - 1 - back) as usize)
}

fn esc(s: &str) -> String {
    tera::escape_html(s)
}

/// What a chart's value axis measures, which decides its ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Whole things (messages, hand-offs, opt-outs): whole-number ticks only.
    Counts,
    /// A quantity that can be fractional (minutes): four equal steps up to a round top.
    Measure,
}

/// Vertical bars per day, one colour per series (CSS classes `s-<name>`).
pub fn bar_chart(
    title: &str,
    labels: &[String],
    series: &[(&str, Vec<f64>)],
    axis: Axis,
) -> String {
    let (w, h, left, bottom, top) = (640.0, 220.0, 36.0, 28.0, 12.0);
    let highest = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max);
    let ticks = axis_ticks(highest, axis);
    let max = ticks.last().copied().unwrap_or(1.0);
    let plot_w = w - left - 8.0;
    let plot_h = h - bottom - top;
    let slot = plot_w / labels.len().max(1) as f64;
    let bar = (slot * 0.8) / series.len().max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    for &v in &ticks {
        let y = top + plot_h - plot_h * v / max;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{left}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{tx}" y="{ty:.1}" text-anchor="end">{v}</text>"#,
            x2 = w - 8.0,
            tx = left - 4.0,
            ty = y + 4.0,
            v = format_number(v)
        );
    }
    for (i, label) in labels.iter().enumerate() {
        let x0 = left + slot * i as f64 + slot * 0.1;
        for (j, (name, values)) in series.iter().enumerate() {
            let v = values.get(i).copied().unwrap_or(0.0);
            let bh = plot_h * v / max;
            let _ = write!(
                svg,
                r#"<rect class="s-{name}" x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}"><title>{label} {name}: {v}</title></rect>"#,
                x = x0 + bar * j as f64,
                y = top + plot_h - bh,
                bw = (bar - 1.0).max(1.0),
                label = esc(label),
                v = format_number(v),
            );
        }
        if i % 2 == 0 || labels.len() <= 8 {
            let _ = write!(
                svg,
                r#"<text class="axis" x="{x:.1}" y="{y}" text-anchor="middle">{l}</text>"#,
                x = left + slot * i as f64 + slot / 2.0,
                y = h - 8.0,
                l = esc(label)
            );
        }
    }
    if series.len() > 1 {
        for (j, (name, _)) in series.iter().enumerate() {
            let x = left + 8.0 + 70.0 * j as f64;
            let _ = write!(
                svg,
                r#"<rect class="s-{name}" x="{x}" y="2" width="10" height="10"/><text class="axis" x="{tx}" y="11">{name}</text>"#,
                tx = x + 14.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars, one per label (failure reasons, flow states).
pub fn hbar_chart(title: &str, items: &[(String, f64)]) -> String {
    if items.is_empty() {
        return format!(
            r#"<p class="empty">{}: nothing in this period.</p>"#,
            esc(title)
        );
    }
    let (w, row, label_w) = (640.0, 24.0, 260.0);
    let h = row * items.len() as f64 + 8.0;
    let max = items.iter().map(|i| i.1).fold(1.0_f64, f64::max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let bw = (w - label_w - 50.0) * v / max;
        let _ = write!(
            svg,
            r#"<text class="axis" x="{lx}" y="{ty:.1}" text-anchor="end">{l}</text><rect class="s-bar" x="{label_w}" y="{y:.1}" width="{bw:.1}" height="{bh}"/><text class="axis" x="{vx:.1}" y="{ty:.1}">{v}</text>"#,
            lx = label_w - 6.0,
            ty = y + row * 0.6,
            l = esc(label),
            bh = row - 6.0,
            vx = label_w + bw + 4.0,
            v = format_number(*v)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The value axis ticks from 0 up to a top at or above `highest` (never below 1). Counts
/// step by 1, 2 or 5 times a power of ten, at most four steps, so a day with one message does
/// not read "0.2, 0.5, 0.8"; measures keep four equal steps up to a round top.
fn axis_ticks(highest: f64, axis: Axis) -> Vec<f64> {
    let highest = highest.max(1.0);
    match axis {
        Axis::Counts => {
            let highest = highest.ceil();
            let mut step = 1.0;
            'search: for magnitude in [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8] {
                for unit in [1.0, 2.0, 5.0] {
                    step = unit * magnitude;
                    if step * 4.0 >= highest {
                        break 'search;
                    }
                }
            }
            let steps = (highest / step).ceil() as u32;
            (0..=steps).map(|i| step * f64::from(i)).collect()
        }
        Axis::Measure => {
            let top = nice_ceiling(highest);
            (0..=4).map(|i| top * f64::from(i) / 4.0).collect()
        }
    }
}

fn nice_ceiling(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= v {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// A tick or value as people read it: whole numbers without a point, others with up to two
/// decimals (a quarter step of a measure axis is "0.25", not "0.2" beside a line at 0.25).
fn format_number(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_charts_are_svg_with_one_rect_per_value_and_escaped_labels() {
        let labels = vec!["01/12".to_owned(), "<b>".to_owned()];
        let svg = bar_chart(
            "In & out",
            &labels,
            &[("in", vec![3.0, 1.0]), ("out", vec![2.0, 0.0])],
            Axis::Counts,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect class=\"s-in\"").count(), 3, "{svg}"); // 2 bars + legend
        assert!(svg.contains("In &amp; out") && svg.contains("&lt;b&gt;"));
    }

    #[test]
    fn axis_tops_are_round_numbers() {
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(13.0), 20.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
    }

    #[test]
    fn count_axes_have_whole_number_ticks() {
        assert_eq!(axis_ticks(0.0, Axis::Counts), [0.0, 1.0]);
        assert_eq!(axis_ticks(1.0, Axis::Counts), [0.0, 1.0]);
        assert_eq!(axis_ticks(3.0, Axis::Counts), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(axis_ticks(7.0, Axis::Counts), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(axis_ticks(13.0, Axis::Counts), [0.0, 5.0, 10.0, 15.0]);
        assert_eq!(axis_ticks(25.0, Axis::Counts), [0.0, 10.0, 20.0, 30.0]);
        assert_eq!(
            axis_ticks(1234.0, Axis::Counts),
            [0.0, 500.0, 1000.0, 1500.0]
        );
        for highest in 0..=2000 {
            let ticks = axis_ticks(f64::from(highest), Axis::Counts);
            assert!(ticks.len() <= 5, "{highest}: {ticks:?}");
            assert!(*ticks.last().unwrap() >= f64::from(highest), "{highest}");
            assert!(
                ticks.iter().all(|t| t.fract() == 0.0),
                "{highest}: {ticks:?}"
            );
        }
        // The rendered axis labels of a one-message chart are whole numbers.
        let svg = bar_chart(
            "m",
            &["01/12".to_owned()],
            &[("in", vec![1.0])],
            Axis::Counts,
        );
        assert!(!svg.contains(">0.2<") && !svg.contains(">0.5<"), "{svg}");
    }

    #[test]
    fn measure_axes_keep_four_steps_to_a_round_top() {
        assert_eq!(axis_ticks(2.0, Axis::Measure), [0.0, 0.5, 1.0, 1.5, 2.0]);
        // An empty wait chart's labels name the lines they stand by.
        let svg = bar_chart(
            "w",
            &["01/12".to_owned()],
            &[("wait", vec![0.0])],
            Axis::Measure,
        );
        for label in [">0.25<", ">0.5<", ">0.75<", ">1<"] {
            assert!(svg.contains(label), "{label}: {svg}");
        }
        assert!(!svg.contains(">0.2<") && !svg.contains(">0.8<"), "{svg}");
    }
}
