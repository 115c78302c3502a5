//! Flow diagrams: the edges drawn from the shipped flows, the marks on broken ones, the
//! attribution of hops to edges, and a Mermaid snapshot of `claim_status`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::*;
use crate::engine::conversation::StateRef;
use crate::engine::model::{FlowId, StateId};
use crate::engine::{Conversation, Event, FlowSet, step};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn flows() -> &'static FlowSet {
    static SET: OnceLock<FlowSet> = OnceLock::new();
    SET.get_or_init(|| {
        FlowSet::load(&root().join("flows"), &root().join("locales")).expect("shipped flows load")
    })
}

fn graph_of(flow: &str, lang: &str) -> FlowGraph {
    let f = flows().flow(flow).unwrap();
    FlowGraph::build(
        &f.file,
        &f.path,
        Some(flows().i18n()),
        lang,
        &flows().warnings,
    )
}

fn edge(g: &FlowGraph, from: &str, to_title: &str) -> Option<usize> {
    let from = g.nodes.iter().position(|n| n.title == from)?;
    g.edges
        .iter()
        .position(|e| e.from == from && g.nodes[e.to].title == to_title)
}

fn at(flow: &str, state: &str) -> StateRef {
    StateRef {
        flow: FlowId::parse(flow).unwrap(),
        state: StateId::parse(state).unwrap(),
    }
}

#[test]
fn every_transition_of_a_state_is_an_edge_with_its_label() {
    let g = graph_of("claim_status", "en");
    let labels = |from: &str, to: &str| {
        g.edges[edge(&g, from, to).unwrap_or_else(|| panic!("{from} → {to}"))]
            .labels
            .clone()
    };
    assert_eq!(labels("lookup", "show"), ["found"]);
    assert_eq!(labels("lookup", "not_found"), ["not_found"]);
    assert_eq!(labels("lookup", "sorry"), ["error"]);
    assert_eq!(labels("show", "ask_number"), ["Another claim"]);
    assert_eq!(labels("show", "flow handoff"), ["Talk to an agent"]);
    assert_eq!(labels("ask_number", "lookup"), ["answer"]);
    // `call` goes into the other flow (dashed) and continues at `next` when it returns.
    let call = edge(&g, "verify", "flow identity").unwrap();
    assert_eq!(g.edges[call].kind, EdgeKind::Call);
    assert_eq!(labels("verify", "ask_number"), ["after identity"]);
    // The way in: the triggers, onto the start state.
    assert_eq!(
        g.edges[edge(&g, "start", "verify").unwrap()].kind,
        EdgeKind::Trigger
    );
    assert!(g.nodes[0].lines.iter().any(|l| l.contains("claim status")));
    let show = &g.nodes[g.state_node("show").unwrap()];
    assert!(show.template, "the template fallback is marked");
    assert!(show.lines.iter().any(|l| l.contains("claim_status_update")));
    assert!(g.nodes[g.state_node("verify").unwrap()].start);
    // The shipped flows pass the linter: nothing to highlight.
    assert!(g.nodes.iter().all(|n| n.marks.is_empty()), "{:?}", g.nodes);
}

#[test]
fn texts_are_in_the_chosen_language() {
    let en = graph_of("claim_status", "en");
    let hi = graph_of("claim_status", "hi");
    let show = en.state_node("show").unwrap();
    assert_ne!(en.nodes[show].lines, hi.nodes[show].lines);
    assert!(
        hi.nodes[show]
            .lines
            .iter()
            .any(|l| l.chars().any(|c| ('\u{0900}'..='\u{097F}').contains(&c))),
        "Devanagari in {:?}",
        hi.nodes[show].lines
    );
}

#[test]
fn unreachable_states_dead_ends_and_findings_are_highlighted() {
    let src = "flow: broken\nstart: a\nstates:\n  a:\n    say: help-text\n    next: b\n  b:\n    say: help-text\n    buttons:\n      - { id: x, title: btn-menu }\n  c:\n    say: help-text\n    next: nowhere\n";
    let file: FlowFile = serde_saphyr::from_str(src).unwrap();
    let path = Path::new("flows/broken.yaml");
    let finding = Diagnostic::error(path, 13, 11, "state 'nowhere' does not exist");
    let g = FlowGraph::build(&file, path, None, "en", &[finding]);
    let marks = |s: &str| g.nodes[g.state_node(s).unwrap()].marks.clone();
    assert!(marks("a").is_empty());
    assert_eq!(marks("b"), [Mark::DeadEnd]);
    assert_eq!(
        marks("c"),
        [
            Mark::Unreachable,
            Mark::Finding(Severity::Error, "state 'nowhere' does not exist".into())
        ]
    );
    assert!(
        g.nodes
            .iter()
            .any(|n| n.kind == NodeKind::Missing("nowhere".into())),
        "the broken target is drawn"
    );
    let mermaid = g.mermaid(None);
    let b = g.state_node("b").unwrap();
    let c = g.state_node("c").unwrap();
    let problems = mermaid
        .lines()
        .find(|l| l.ends_with(" problem") && l.trim_start().starts_with("class "))
        .unwrap_or_else(|| panic!("{mermaid}"));
    assert!(problems.contains(&format!("n{b}")) && problems.contains(&format!("n{c}")));
    assert!(
        mermaid.contains("⚠ unreachable from the start"),
        "{mermaid}"
    );
    assert!(mermaid.contains("⚠ dead end"), "{mermaid}");
    let svg = g.svg(None);
    assert!(svg.contains("class=\"node problem\""), "{svg}");
}

#[test]
fn hops_count_on_the_edges_they_took() {
    let g = graph_of("claim_status", "en");
    let into = |f: &str, s: &str| HopTo::State(at(f, s));
    let hops = [
        (None, into("claim_status", "verify"), 3),
        (
            Some(at("claim_status", "verify")),
            into("identity", "check"),
            3,
        ),
        (
            Some(at("identity", "ok")),
            into("claim_status", "ask_number"),
            2,
        ),
        (
            Some(at("claim_status", "ask_number")),
            into("claim_status", "lookup"),
            2,
        ),
        (
            Some(at("claim_status", "lookup")),
            into("claim_status", "show"),
            1,
        ),
        (Some(at("claim_status", "show")), into("menu", "show"), 1),
        // A global trigger from `lookup`'s neighbour: no edge, so "elsewhere".
        (
            Some(at("claim_status", "sorry")),
            into("premium_due", "verify"),
            4,
        ),
        // Hops of other flows are not this flow's business.
        (Some(at("menu", "show")), into("help", "show"), 7),
    ]
    .map(|(from, to, n)| (Hop { from, to }, n));
    let c = g.count(
        hops.iter().map(|(h, n)| (h, *n)),
        [("ask_number", 1), ("no_such_state", 9)],
    );
    let node = |s: &str| g.state_node(s).unwrap();
    let taken = |from: &str, to: &str| c.taken[edge(&g, from, to).unwrap()];
    assert_eq!(c.entered[node("verify")], 3);
    assert_eq!(taken("start", "verify"), 3);
    assert_eq!(taken("verify", "flow identity"), 3);
    assert_eq!(taken("verify", "ask_number"), 2, "the return from identity");
    assert_eq!(c.entered[node("ask_number")], 2);
    assert_eq!(taken("ask_number", "lookup"), 2);
    assert_eq!(taken("lookup", "show"), 1);
    assert_eq!(taken("show", "flow menu"), 1);
    assert_eq!(c.elsewhere[node("sorry")], 4);
    assert_eq!(c.gave_up[node("ask_number")], 1);
    assert_eq!(c.gave_up.iter().sum::<u64>(), 1);
    assert_eq!(c.entered[node("lookup")], 2);
    // The numbers are drawn.
    let svg = g.svg(Some(&c));
    assert!(svg.contains("entered 2 · gave up 1"), "{svg}");
    assert!(svg.contains("found (1)"), "{svg}");
}

#[test]
fn a_step_reports_the_states_it_went_through() {
    let out = step(
        flows(),
        &Conversation::new("en"),
        &Event::Text("menu".into()),
        chrono::Utc::now(),
    );
    assert_eq!(
        out.hops,
        [Hop {
            from: None,
            to: HopTo::State(at("menu", "show"))
        }]
    );
    let tapped = step(
        flows(),
        &out.conversation,
        &Event::ListRow { id: "help".into() },
        chrono::Utc::now(),
    );
    assert_eq!(
        tapped.hops.first(),
        Some(&Hop {
            from: Some(at("menu", "show")),
            to: HopTo::State(at("help", flows().flow("help").unwrap().start())),
        })
    );
}

#[test]
fn every_shipped_flow_draws_in_every_format_without_style_or_script() {
    for f in flows().flows() {
        let g = graph_of(f.id.as_str(), "ta");
        let mermaid = g.mermaid(None);
        assert!(mermaid.contains("flowchart TD"), "{mermaid}");
        assert!(g.dot(None).starts_with("digraph"));
        let svg = g.svg(None);
        assert!(svg.starts_with("<svg"), "{}", f.id);
        for (k, _) in f.file.states.iter() {
            assert!(svg.contains(&k.value), "{} lacks state {}", f.id, k.value);
        }
        // The console's CSP refuses inline styles and scripts.
        for banned in ["<style", "style=", "<script", "onload"] {
            assert!(!svg.contains(banned), "{} has {banned}", f.id);
        }
    }
}

/// `INSUREBOT_UPDATE_SNAPSHOTS=1 cargo test --lib graph` rewrites the snapshot after a
/// deliberate change; review the diff like code.
#[test]
fn claim_status_mermaid_matches_its_snapshot() {
    let path = root().join("tests/snapshots/claim_status.mmd");
    let actual = graph_of("claim_status", "en").mermaid(None);
    if std::env::var_os("INSUREBOT_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual,
        expected,
        "the Mermaid of claim_status changed; if on purpose, run with INSUREBOT_UPDATE_SNAPSHOTS=1 ({})",
        path.display()
    );
}
