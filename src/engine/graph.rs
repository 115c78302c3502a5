//! Flow diagrams drawn from the flow files, so the picture can never drift from what runs.
//!
//! [`FlowGraph::build`] turns one parsed flow into nodes and edges: every state (what it says
//! in a chosen language, its buttons, its `expect`, its action, call, hand-off and template
//! fallback), every `goto`/`next`/action outcome/`on_fail`/`call` and the return after it, the
//! global triggers as the way in, other flows, `end`, `return` and the agent as the ways out.
//! The linter's findings are drawn on the states they are about; unreachable states and dead
//! ends are highlighted (they are computed here too, so a flow set that does not pass the
//! linter can still be drawn).
//!
//! It is written out as Mermaid, Graphviz `dot` (text only: no Graphviz is needed) or SVG.
//! The SVG layout is `layout-rs`'s layered layout; the drawing is ours ([`SvgCanvas`]) so the
//! result carries no `<style>` or script and fits the console's Content-Security-Policy.
//!
//! [`Counts`] lays live numbers over the same graph: the console's flow page attributes the
//! stored [`Hop`]s of the last days to the edges they took ([`FlowGraph::count`]).
//!
//! Everything here is pure: no I/O, no clock.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::Path;

use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

use super::conversation::{Hop, HopTo};
use super::diagnostic::{Diagnostic, Severity};
use super::i18n::I18n;
use super::lint::reachable;
use super::model::{FlowFile, State, Target, limits};

/// Output formats of `insurebot flows graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Mermaid `flowchart` text (renders in GitHub, GitLab and most wikis).
    Mermaid,
    /// Graphviz `dot` text, for those who have Graphviz.
    Dot,
    /// A standalone SVG image, laid out and drawn here.
    Svg,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mermaid" => Ok(Format::Mermaid),
            "dot" => Ok(Format::Dot),
            "svg" => Ok(Format::Svg),
            other => Err(format!(
                "unknown format '{other}': choose mermaid, dot or svg"
            )),
        }
    }
}

/// What a node stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// The way in: the flow's global triggers, or another flow sending the conversation here.
    Entry,
    /// A state of this flow (its id).
    State(String),
    /// Another flow, entered at its start (its id).
    Flow(String),
    /// A target that names no state of this flow (drawn so the broken edge shows).
    Missing(String),
    /// The conversation ends.
    End,
    /// Back to the flow that called this one.
    Return,
    /// The conversation is queued for an agent.
    Agent,
}

/// A problem drawn on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// No chain of transitions reaches the state from `start`.
    Unreachable,
    /// The state leads nowhere: it does not hand off, and no `next`, `goto`, `on` or `call`
    /// leaves it, so the conversation stops there without a word.
    DeadEnd,
    /// Another finding of the linter about this state (its message).
    Finding(Severity, String),
}

/// One box of the diagram.
#[derive(Debug, Clone)]
pub struct Node {
    /// What it stands for.
    pub kind: NodeKind,
    /// The first line (state id, flow id, `end`, …).
    pub title: String,
    /// What the state does, one short line each.
    pub lines: Vec<String>,
    /// Whether this is the flow's start state.
    pub start: bool,
    /// Whether the state sends a template when the 24-hour window is closed.
    pub template: bool,
    /// Problems to highlight.
    pub marks: Vec<Mark>,
}

/// How an edge is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// `next`, a button's `goto`, an action outcome or `on_fail`.
    Go,
    /// `call`: into another flow, which comes back.
    Call,
    /// A global trigger (keyword or button) or another flow starting this one.
    Trigger,
}

/// One arrow; parallel transitions (two buttons to one state) share an arrow and list all
/// their labels, so each arrow's count is exact.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Index of the node it leaves.
    pub from: usize,
    /// Index of the node it enters.
    pub to: usize,
    /// Why it is taken: button titles, outcomes, `next`, …
    pub labels: Vec<String>,
    /// How.
    pub kind: EdgeKind,
}

/// The diagram of one flow.
#[derive(Debug, Clone)]
pub struct FlowGraph {
    /// The flow id.
    pub flow: String,
    /// The flow's description.
    pub description: Option<String>,
    /// The boxes; index 0 is the [`NodeKind::Entry`].
    pub nodes: Vec<Node>,
    /// The arrows.
    pub edges: Vec<Edge>,
    /// The language the texts are in.
    pub language: String,
}

/// Live numbers over a [`FlowGraph`], by node and edge index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Times each node was entered.
    pub entered: Vec<u64>,
    /// Times each edge was taken.
    pub taken: Vec<u64>,
    /// Conversations that gave up in each node (idle there, see the dashboard).
    pub gave_up: Vec<u64>,
    /// Times each node was left some other way: a global trigger, a restart, STOP.
    pub elsewhere: Vec<u64>,
}

/// Longest text line in a node before it is cut with "…".
const LINE_MAX: usize = 46;

impl FlowGraph {
    /// Builds the diagram of `flow`, with texts in `lang` from `i18n` (message ids without it),
    /// drawing those of `findings` that point into this flow's file.
    pub fn build(
        flow: &FlowFile,
        path: &Path,
        i18n: Option<&I18n>,
        lang: &str,
        findings: &[Diagnostic],
    ) -> FlowGraph {
        let text = |id: &str| -> String {
            i18n.map_or_else(|| id.to_owned(), |i| i.render_placeholders(lang, id, None))
        };
        let mut b = Builder {
            nodes: Vec::new(),
            edges: Vec::new(),
            index: HashMap::new(),
        };
        let mut entry = Vec::new();
        for (l, words) in &flow.triggers.keywords {
            if !words.is_empty() {
                let words: Vec<&str> = words.iter().map(|w| w.value.as_str()).collect();
                entry.push(cut(&format!("{l}: {}", words.join(", "))));
            }
        }
        if !flow.triggers.buttons.is_empty() {
            let ids: Vec<&str> = flow
                .triggers
                .buttons
                .iter()
                .map(|b| b.value.as_str())
                .collect();
            entry.push(cut(&format!("buttons: {}", ids.join(", "))));
        }
        b.add(
            NodeKind::Entry,
            "start".to_owned(),
            if entry.is_empty() {
                vec!["from other flows".to_owned()]
            } else {
                entry
            },
        );

        let seen = reachable(flow);
        // States first, in file order, so the boxes read like the file.
        for (k, st) in flow.states.iter() {
            let i = b.add(
                NodeKind::State(k.value.clone()),
                k.value.clone(),
                state_lines(st, &text),
            );
            let n = &mut b.nodes[i];
            n.start = k.value == flow.start.value;
            n.template = st.template.is_some();
            if !seen.contains(k.value.as_str()) {
                n.marks.push(Mark::Unreachable);
            }
            let leaves = st.next.is_some()
                || st.call.is_some()
                || st.handoff.is_some()
                || st.buttons.iter().any(|b| b.goto.is_some())
                || !st.on.0.is_empty()
                || st.expect.as_ref().is_some_and(|e| e.on_fail.is_some());
            if !leaves {
                n.marks.push(Mark::DeadEnd);
            }
        }
        let start = b.target(&flow.start.value, flow);
        b.edge(0, start, None, EdgeKind::Trigger);

        for (k, st) in flow.states.iter() {
            let from = b.index[&NodeKind::State(k.value.clone())];
            for btn in &st.buttons {
                let title = cut(&text(&btn.title.value));
                match &btn.goto {
                    Some(t) => {
                        let to = b.target(&t.value, flow);
                        b.edge(from, to, Some(title), EdgeKind::Go);
                    }
                    None => {
                        if let Some(n) = &st.next {
                            let to = b.target(&n.value, flow);
                            b.edge(from, to, Some(title), EdgeKind::Go);
                        }
                    }
                }
            }
            for (outcome, t) in st.on.iter() {
                let to = b.target(&t.value, flow);
                b.edge(from, to, Some(outcome.value.clone()), EdgeKind::Go);
            }
            if let Some(t) = st.expect.as_ref().and_then(|e| e.on_fail.as_ref()) {
                let to = b.target(&t.value, flow);
                b.edge(from, to, Some("retries used up".to_owned()), EdgeKind::Go);
            }
            if let Some(c) = &st.call {
                let to = b.node(NodeKind::Flow(c.value.clone()));
                b.edge(from, to, Some("call".to_owned()), EdgeKind::Call);
            }
            if let Some(n) = &st.next {
                let label = if let Some(c) = &st.call {
                    Some(format!("after {}", c.value))
                } else if st.expect.is_some() {
                    Some("answer".to_owned())
                } else if st.list_from.is_some() {
                    Some("row chosen".to_owned())
                } else if !st.buttons.is_empty() {
                    None // the buttons without `goto` drew it, with their titles
                } else {
                    Some(String::new())
                };
                if let Some(label) = label {
                    let to = b.target(&n.value, flow);
                    let label = (!label.is_empty()).then_some(label);
                    b.edge(from, to, label, EdgeKind::Go);
                }
            }
            if let Some(reason) = &st.handoff {
                let to = b.node(NodeKind::Agent);
                b.edge(from, to, Some(reason.value.clone()), EdgeKind::Go);
            }
        }

        let mut graph = FlowGraph {
            flow: flow.flow.value.clone(),
            description: flow.description.clone(),
            nodes: b.nodes,
            edges: b.edges,
            language: lang.to_owned(),
        };
        graph.draw_findings(flow, path, findings);
        graph
    }

    /// Puts each finding about `path` on the state whose lines it points into.
    fn draw_findings(&mut self, flow: &FlowFile, path: &Path, findings: &[Diagnostic]) {
        let starts: Vec<(usize, &str)> = flow
            .states
            .iter()
            .map(|(k, _)| (k.referenced.line() as usize, k.value.as_str()))
            .collect();
        for d in findings.iter().filter(|d| d.file == path) {
            let line = d.line as usize;
            // The last state that starts at or before the finding's line; file-level findings
            // (line 0) and those above `states:` go on the entry.
            let node = starts
                .iter()
                .rev()
                .find(|(l, _)| *l <= line && line > 0)
                .and_then(|(_, s)| {
                    self.nodes
                        .iter()
                        .position(|n| n.kind == NodeKind::State((*s).to_owned()))
                })
                .unwrap_or(0);
            let n = &mut self.nodes[node];
            // Already drawn as their own marks.
            if (n.marks.contains(&Mark::Unreachable) && d.message.contains("unreachable"))
                || (n.marks.contains(&Mark::DeadEnd) && d.message.contains("does nothing next"))
            {
                continue;
            }
            n.marks.push(Mark::Finding(d.severity, cut(&d.message)));
        }
    }

    /// Index of a state's node.
    pub fn state_node(&self, state: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| matches!(&n.kind, NodeKind::State(s) if s == state))
    }

    fn edge_between(&self, from: usize, to: usize) -> Option<usize> {
        self.edges.iter().position(|e| e.from == from && e.to == to)
    }

    fn kind_node(&self, kind: &NodeKind) -> Option<usize> {
        self.nodes.iter().position(|n| &n.kind == kind)
    }

    /// Attributes stored hops (each with how many times it happened) and the conversations
    /// that gave up in a state of this flow to the diagram's nodes and edges.
    ///
    /// A hop between two states of this flow counts on the arrow between them; one into
    /// another flow on the arrow to that flow (`goto`, `call`) or to `return`; a `return`
    /// into this flow also counts on the "after …" arrow of the state that called; a hop
    /// into the start from outside counts on the entry arrow. Anything else (a global
    /// trigger, a restart, STOP) counts as leaving the state "elsewhere".
    pub fn count<'h>(
        &self,
        hops: impl IntoIterator<Item = (&'h Hop, u64)>,
        gave_up: impl IntoIterator<Item = (&'h str, u64)>,
    ) -> Counts {
        let mut c = Counts {
            entered: vec![0; self.nodes.len()],
            taken: vec![0; self.edges.len()],
            gave_up: vec![0; self.nodes.len()],
            elsewhere: vec![0; self.nodes.len()],
        };
        let flow = self.flow.as_str();
        for (hop, n) in hops {
            let from = hop
                .from
                .as_ref()
                .filter(|f| f.flow.as_str() == flow)
                .and_then(|f| self.state_node(f.state.as_str()));
            let into = match &hop.to {
                HopTo::State(s) if s.flow.as_str() == flow => self.state_node(s.state.as_str()),
                _ => None,
            };
            if let Some(to) = into {
                c.entered[to] += n;
                if from.is_none() {
                    let came_back = hop.from.as_ref().filter(|f| f.flow.as_str() != flow);
                    let after_call = came_back.and_then(|f| self.after_call(f.flow.as_str(), to));
                    match after_call {
                        Some(e) => c.taken[e] += n,
                        None if self.nodes[to].start => {
                            if let Some(e) = self.edge_between(0, to) {
                                c.taken[e] += n;
                            }
                            c.entered[0] += n;
                        }
                        None => {}
                    }
                }
            }
            let Some(from) = from else { continue };
            let edge = match &hop.to {
                HopTo::State(s) if s.flow.as_str() == flow => {
                    into.and_then(|to| self.edge_between(from, to))
                }
                HopTo::State(s) => self
                    .kind_node(&NodeKind::Flow(s.flow.as_str().to_owned()))
                    .and_then(|to| self.edge_between(from, to))
                    .or_else(|| {
                        self.kind_node(&NodeKind::Return)
                            .and_then(|to| self.edge_between(from, to))
                    }),
                HopTo::End => [NodeKind::End, NodeKind::Return]
                    .iter()
                    .find_map(|k| self.kind_node(k).and_then(|to| self.edge_between(from, to))),
                HopTo::Agent => self
                    .kind_node(&NodeKind::Agent)
                    .and_then(|to| self.edge_between(from, to)),
            };
            match edge {
                Some(e) => {
                    c.taken[e] += n;
                    let to = self.edges[e].to;
                    if !matches!(self.nodes[to].kind, NodeKind::State(_)) {
                        c.entered[to] += n;
                    }
                }
                None => c.elsewhere[from] += n,
            }
        }
        for (state, n) in gave_up {
            if let Some(i) = self.state_node(state) {
                c.gave_up[i] += n;
            }
        }
        c
    }

    /// The "after <callee>" arrow into `to`, from a state that calls `callee`.
    fn after_call(&self, callee: &str, to: usize) -> Option<usize> {
        let label = format!("after {callee}");
        self.edges
            .iter()
            .position(|e| e.to == to && e.labels.contains(&label))
    }

    /// Node texts: the title, the state's lines, its numbers and its marks.
    fn node_text(&self, i: usize, counts: Option<&Counts>) -> Vec<String> {
        let n = &self.nodes[i];
        let mut out = vec![if n.start {
            format!("{} (start)", n.title)
        } else {
            n.title.clone()
        }];
        out.extend(n.lines.iter().cloned());
        if let Some(c) = counts {
            let mut nums = format!("entered {}", c.entered[i]);
            if c.gave_up[i] > 0 {
                write!(nums, " · gave up {}", c.gave_up[i]).ok();
            }
            if c.elsewhere[i] > 0 {
                write!(nums, " · left elsewhere {}", c.elsewhere[i]).ok();
            }
            out.push(nums);
        }
        for m in &n.marks {
            out.push(match m {
                Mark::Unreachable => "⚠ unreachable from the start".to_owned(),
                Mark::DeadEnd => "⚠ dead end: nothing leaves this state".to_owned(),
                Mark::Finding(Severity::Error, msg) => format!("⚠ {msg}"),
                Mark::Finding(Severity::Warning, msg) => format!("△ {msg}"),
            });
        }
        out
    }

    /// The node's lines, each escaped for the output format, joined by its line break.
    fn node_label(
        &self,
        i: usize,
        counts: Option<&Counts>,
        esc: &dyn Fn(&str) -> String,
        line_break: &str,
    ) -> String {
        self.node_text(i, counts)
            .iter()
            .map(|l| esc(l))
            .collect::<Vec<_>>()
            .join(line_break)
    }

    fn edge_text(&self, i: usize, counts: Option<&Counts>) -> String {
        let mut t = self.edges[i].labels.join(" / ");
        if let Some(c) = counts {
            if !t.is_empty() {
                t.push(' ');
            }
            write!(t, "({})", c.taken[i]).ok();
        }
        t
    }

    fn class(&self, i: usize, counts: Option<&Counts>) -> &'static str {
        let n = &self.nodes[i];
        if n.marks.iter().any(|m| {
            matches!(
                m,
                Mark::Unreachable | Mark::DeadEnd | Mark::Finding(Severity::Error, _)
            )
        }) || matches!(n.kind, NodeKind::Missing(_))
        {
            "problem"
        } else if counts.is_some_and(|c| c.gave_up[i] > 0) {
            "gaveup"
        } else if n.template {
            "template"
        } else {
            match n.kind {
                NodeKind::State(_) => "state",
                NodeKind::Entry => "entry",
                _ => "exit",
            }
        }
    }

    /// Mermaid `flowchart` text.
    pub fn mermaid(&self, counts: Option<&Counts>) -> String {
        let esc = |s: &str| {
            s.replace('&', "#amp;")
                .replace('"', "#quot;")
                .replace('<', "#lt;")
                .replace('>', "#gt;")
        };
        let mut out = String::new();
        writeln!(out, "---\ntitle: {}\n---\nflowchart TD", self.flow).ok();
        for (i, n) in self.nodes.iter().enumerate() {
            let label = self.node_label(i, counts, &esc, "<br/>");
            let (open, close) = match n.kind {
                NodeKind::Entry | NodeKind::Return => ("([", "])"),
                NodeKind::State(_) | NodeKind::Missing(_) => ("[", "]"),
                NodeKind::Flow(_) => ("[[", "]]"),
                NodeKind::End => ("((", "))"),
                NodeKind::Agent => ("{{", "}}"),
            };
            writeln!(out, "  n{i}{open}\"{label}\"{close}").ok();
        }
        for (i, e) in self.edges.iter().enumerate() {
            let arrow = if e.kind == EdgeKind::Call {
                "-.->"
            } else {
                "-->"
            };
            let label = self.edge_text(i, counts);
            if label.is_empty() {
                writeln!(out, "  n{} {arrow} n{}", e.from, e.to).ok();
            } else {
                writeln!(out, "  n{} {arrow}|\"{}\"| n{}", e.from, esc(&label), e.to).ok();
            }
        }
        for (class, style) in CLASSES {
            writeln!(
                out,
                "  classDef {class} fill:{},stroke:{},stroke-width:{}px",
                style.0, style.1, style.2
            )
            .ok();
        }
        let mut by_class: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for i in 0..self.nodes.len() {
            by_class
                .entry(self.class(i, counts))
                .or_default()
                .push(format!("n{i}"));
        }
        for (class, ids) in by_class {
            writeln!(out, "  class {} {class}", ids.join(",")).ok();
        }
        out
    }

    /// Graphviz `dot` text.
    pub fn dot(&self, counts: Option<&Counts>) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::new();
        writeln!(out, "digraph \"{}\" {{", esc(&self.flow)).ok();
        writeln!(
            out,
            "  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=10];"
        )
        .ok();
        for (i, n) in self.nodes.iter().enumerate() {
            let label = self.node_label(i, counts, &esc, "\\n");
            let (fill, stroke, width) = style_of(self.class(i, counts));
            let shape = match n.kind {
                NodeKind::Entry | NodeKind::Return => "oval",
                NodeKind::End => "doublecircle",
                NodeKind::Agent => "hexagon",
                NodeKind::Flow(_) => "component",
                _ => "box",
            };
            writeln!(
                out,
                "  n{i} [label=\"{label}\", shape={shape}, fillcolor=\"{fill}\", color=\"{stroke}\", penwidth={width}];"
            )
            .ok();
        }
        for (i, e) in self.edges.iter().enumerate() {
            let style = if e.kind == EdgeKind::Call {
                ", style=dashed"
            } else {
                ""
            };
            writeln!(
                out,
                "  n{} -> n{} [label=\"{}\"{style}];",
                e.from,
                e.to,
                esc(&self.edge_text(i, counts))
            )
            .ok();
        }
        out.push_str("}\n");
        out
    }

    /// A standalone SVG image: laid out by `layout-rs`, drawn by [`SvgCanvas`] with
    /// presentation attributes and classes only (no `<style>`, no script).
    pub fn svg(&self, counts: Option<&Counts>) -> String {
        const FONT: usize = 13;
        let dir = Orientation::TopToBottom;
        let mut vg = VisualGraph::new(dir);
        let mut handles = Vec::new();
        for i in 0..self.nodes.len() {
            let text = self.node_text(i, counts).join("\n");
            let class = self.class(i, counts);
            let (fill, stroke, width) = style_of(class);
            let look = StyleAttr::new(
                color(stroke),
                width,
                Some(color(fill)),
                if matches!(self.nodes[i].kind, NodeKind::State(_)) {
                    6
                } else {
                    18
                },
                FONT,
            );
            let size = text_size(&text, FONT);
            let elem = Element::create_with_properties(
                ShapeKind::new_box(&text),
                look,
                dir,
                size,
                format!("node {class}"),
            );
            handles.push(vg.add_node(elem));
        }
        for (i, e) in self.edges.iter().enumerate() {
            let style = if e.kind == EdgeKind::Call {
                LineStyleKind::Dashed
            } else {
                LineStyleKind::Normal
            };
            let look = StyleAttr::new(color("#5b6775"), 1, None, 0, FONT - 2);
            let arrow = Arrow::with_properties(
                LineEndKind::None,
                LineEndKind::Arrow,
                style,
                &self.edge_text(i, counts),
                &look,
                "edge",
                &None,
                &None,
            );
            vg.add_edge(arrow, handles[e.from], handles[e.to]);
        }
        let mut canvas = SvgCanvas::default();
        vg.do_it(false, false, false, &mut canvas);
        canvas.finish(&format!("Flow {}", self.flow))
    }

    /// Writes the graph in `format`.
    pub fn render(&self, format: Format, counts: Option<&Counts>) -> String {
        match format {
            Format::Mermaid => self.mermaid(counts),
            Format::Dot => self.dot(counts),
            Format::Svg => self.svg(counts),
        }
    }
}

/// Node classes: fill, stroke, stroke width. The console's CSS may restyle them by class.
const CLASSES: [(&str, (&str, &str, usize)); 6] = [
    ("state", ("#ffffff", "#44546a", 1)),
    ("entry", ("#e8f1fb", "#2f6db5", 1)),
    ("exit", ("#f1f3f5", "#7a8694", 1)),
    ("template", ("#fff8e1", "#b7791f", 1)),
    ("gaveup", ("#fff1e6", "#d9822b", 2)),
    ("problem", ("#fdecea", "#c0392b", 3)),
];

fn style_of(class: &str) -> (&'static str, &'static str, usize) {
    CLASSES
        .iter()
        .find(|(c, _)| *c == class)
        .map_or(CLASSES[0].1, |(_, s)| *s)
}

fn color(hex: &str) -> Color {
    Color::new(u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0) << 8 | 0xff)
}

/// A box that fits the text: about 0.6 em per character in a sans-serif font.
fn text_size(text: &str, font: usize) -> Point {
    let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(1);
    let lines = text.lines().count().max(1);
    Point::new(
        widest as f64 * font as f64 * 0.6 + 24.0,
        lines as f64 * font as f64 * 1.3 + 16.0,
    )
}

/// Cuts a line for a node (WhatsApp's own counting, so an emoji is not split).
fn cut(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    limits::truncate(&one_line, LINE_MAX)
}

/// One short line per thing a state does, in the order the engine does them.
fn state_lines(st: &State, text: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(l) = &st.set_language {
        out.push(format!("sets language {}", l.value));
    }
    if let Some(c) = &st.consent {
        out.push(format!("records consent: {:?}", c.value).to_lowercase());
    }
    if let Some(say) = &st.say {
        out.push(cut(&format!("“{}”", text(&say.value))));
    }
    if !st.buttons.is_empty() {
        let titles: Vec<String> = st.buttons.iter().map(|b| text(&b.title.value)).collect();
        let what = if st.buttons.len() > limits::MAX_BUTTONS {
            "list"
        } else {
            "buttons"
        };
        out.push(cut(&format!("{what}: {}", titles.join(" · "))));
    }
    if let Some(l) = &st.list_from {
        out.push(cut(&format!("list of {}", l.items.value)));
    }
    if let Some(t) = &st.template {
        out.push(cut(&format!("template fallback: {}", t.name.value)));
    }
    if let Some(a) = &st.action {
        let args: Vec<&str> = st.args.iter().map(|a| a.value.as_str()).collect();
        out.push(cut(&format!("action {}({})", a.value, args.join(", "))));
    }
    if let Some(e) = &st.expect {
        let kind = if let Some(t) = &e.text {
            match &t.pattern {
                Some(p) => format!("text matching {}", p.value),
                None => "text".to_owned(),
            }
        } else if let Some(n) = &e.number {
            let mut s = "a number".to_owned();
            if let Some(min) = n.min {
                write!(s, " ≥ {min}").ok();
            }
            if let Some(max) = n.max {
                write!(s, " ≤ {max}").ok();
            }
            s
        } else if let Some(d) = &e.date {
            match (d.past, d.future) {
                (true, _) => "a past date".to_owned(),
                (_, true) => "a future date".to_owned(),
                _ => "a date".to_owned(),
            }
        } else {
            "one of the choices".to_owned()
        };
        let mut line = format!("expects {kind}");
        if let Some(r) = e.retries {
            write!(line, ", {r} retries").ok();
        }
        out.push(cut(&line));
    }
    if let Some(s) = &st.save {
        out.push(format!("saves {}", s.value));
    }
    if let Some(c) = &st.call {
        out.push(format!("calls {}", c.value));
    }
    if let Some(h) = &st.handoff {
        out.push(cut(&format!("hands off: {}", h.value)));
    }
    out
}

struct Builder {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    index: HashMap<NodeKind, usize>,
}

impl Builder {
    fn add(&mut self, kind: NodeKind, title: String, lines: Vec<String>) -> usize {
        if let Some(i) = self.index.get(&kind) {
            return *i;
        }
        let i = self.nodes.len();
        self.index.insert(kind.clone(), i);
        self.nodes.push(Node {
            kind,
            title,
            lines,
            start: false,
            template: false,
            marks: Vec::new(),
        });
        i
    }

    /// The node of a target outside the states (created on first use).
    fn node(&mut self, kind: NodeKind) -> usize {
        let title = match &kind {
            NodeKind::Flow(f) => format!("flow {f}"),
            NodeKind::Missing(s) => format!("{s} (missing)"),
            NodeKind::End => "end".to_owned(),
            NodeKind::Return => "return".to_owned(),
            NodeKind::Agent => "agent".to_owned(),
            NodeKind::Entry => "start".to_owned(),
            NodeKind::State(s) => s.clone(),
        };
        self.add(kind, title, Vec::new())
    }

    fn target(&mut self, t: &str, flow: &FlowFile) -> usize {
        match Target::parse(t) {
            Target::State(s) if flow.states.contains_key(&s) => self.index[&NodeKind::State(s)],
            Target::State(s) => self.node(NodeKind::Missing(s)),
            Target::Flow(f) => self.node(NodeKind::Flow(f)),
            Target::End => self.node(NodeKind::End),
            Target::Return => self.node(NodeKind::Return),
        }
    }

    fn edge(&mut self, from: usize, to: usize, label: Option<String>, kind: EdgeKind) {
        if let Some(e) = self.edges.iter_mut().find(|e| e.from == from && e.to == to) {
            if let Some(l) = label
                && !e.labels.contains(&l)
            {
                e.labels.push(l);
            }
            return;
        }
        self.edges.push(Edge {
            from,
            to,
            labels: label.into_iter().collect(),
            kind,
        });
    }
}

/// A `layout-rs` backend writing SVG with presentation attributes and `class`es only: the
/// crate's own writer adds a `<style>` element, which the console's CSP would block.
#[derive(Default)]
struct SvgCanvas {
    body: String,
    width: f64,
    height: f64,
    arrows: usize,
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl SvgCanvas {
    fn grow(&mut self, p: Point, size: Point) {
        // Edge labels run along their paths and may stick out a little.
        self.width = self.width.max(p.x + size.x + 60.0);
        self.height = self.height.max(p.y + size.y + 8.0);
    }

    fn finish(self, title: &str) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"flow-graph\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" role=\"img\" font-family=\"Helvetica, Arial, sans-serif\">\n<title>{}</title>\n<defs><marker id=\"flow-arrow\" markerWidth=\"10\" markerHeight=\"7\" refX=\"10\" refY=\"3.5\" orient=\"auto\"><polygon points=\"0 0, 10 3.5, 0 7\" fill=\"#5b6775\"/></marker><marker id=\"flow-arrow-back\" markerWidth=\"10\" markerHeight=\"7\" refX=\"0\" refY=\"3.5\" orient=\"auto\"><polygon points=\"10 0, 10 7, 0 3.5\" fill=\"#5b6775\"/></marker></defs>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n{}</svg>\n",
            xml(title),
            self.body,
            w = self.width,
            h = self.height,
        )
    }
}

fn class_attr(properties: Option<String>) -> String {
    properties.map_or_else(String::new, |p| format!(" class=\"{}\"", xml(&p)))
}

impl RenderBackend for SvgCanvas {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        look: &StyleAttr,
        properties: Option<String>,
        _clip: Option<ClipHandle>,
    ) {
        self.grow(xy, size);
        writeln!(
            self.body,
            "<rect{} x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"{}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"{}\"/>",
            class_attr(properties),
            xy.x,
            xy.y,
            size.x,
            size.y,
            look.rounded,
            look.fill_color.map_or("none".to_owned(), |c| c.to_web_color()),
            look.line_color.to_web_color(),
            look.line_width
        )
        .ok();
    }

    fn draw_line(
        &mut self,
        start: Point,
        stop: Point,
        look: &StyleAttr,
        properties: Option<String>,
    ) {
        writeln!(
            self.body,
            "<line{} x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"{}\"/>",
            class_attr(properties),
            start.x,
            start.y,
            stop.x,
            stop.y,
            look.line_color.to_web_color(),
            look.line_width
        )
        .ok();
    }

    fn draw_circle(
        &mut self,
        xy: Point,
        size: Point,
        look: &StyleAttr,
        properties: Option<String>,
    ) {
        self.grow(xy, size);
        writeln!(
            self.body,
            "<ellipse{} cx=\"{:.1}\" cy=\"{:.1}\" rx=\"{:.1}\" ry=\"{:.1}\" fill=\"{}\" stroke=\"{}\"/>",
            class_attr(properties),
            xy.x,
            xy.y,
            size.x / 2.0,
            size.y / 2.0,
            look.fill_color.map_or("none".to_owned(), |c| c.to_web_color()),
            look.line_color.to_web_color()
        )
        .ok();
    }

    fn draw_text(&mut self, xy: Point, text: &str, look: &StyleAttr) {
        let lines: Vec<&str> = text.lines().collect();
        let step = look.font_size as f64 * 1.3;
        let top = xy.y - step * (lines.len() as f64 - 1.0) / 2.0;
        write!(
            self.body,
            "<text text-anchor=\"middle\" dominant-baseline=\"middle\" font-size=\"{}\" fill=\"#1f2933\">",
            look.font_size
        )
        .ok();
        for (i, line) in lines.iter().enumerate() {
            // The first line of a box is its name: bold.
            let weight = if i == 0 && lines.len() > 1 {
                " font-weight=\"bold\""
            } else {
                ""
            };
            write!(
                self.body,
                "<tspan x=\"{:.1}\" y=\"{:.1}\"{weight}>{}</tspan>",
                xy.x,
                top + step * i as f64,
                xml(line)
            )
            .ok();
        }
        self.body.push_str("</text>\n");
    }

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        dashed: bool,
        head: (bool, bool),
        look: &StyleAttr,
        properties: Option<String>,
        text: &str,
    ) {
        if path.len() < 2 {
            return;
        }
        for p in path {
            self.grow(p.0, Point::zero());
            self.grow(p.1, Point::zero());
        }
        let mut d = format!(
            "M {:.1} {:.1} C {:.1} {:.1}, {:.1} {:.1}, {:.1} {:.1}",
            path[0].0.x,
            path[0].0.y,
            path[0].1.x,
            path[0].1.y,
            path[1].0.x,
            path[1].0.y,
            path[1].1.x,
            path[1].1.y
        );
        for p in &path[2..] {
            write!(d, " S {:.1} {:.1}, {:.1} {:.1}", p.0.x, p.0.y, p.1.x, p.1.y).ok();
        }
        let id = self.arrows;
        self.arrows += 1;
        writeln!(
            self.body,
            "<path{} id=\"flow-edge-{id}\" d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{}{}{}/>",
            class_attr(properties),
            look.line_color.to_web_color(),
            look.line_width,
            if dashed { " stroke-dasharray=\"5,4\"" } else { "" },
            if head.1 { " marker-end=\"url(#flow-arrow)\"" } else { "" },
            // `layout-rs` turns a back edge around to lay it out and marks its start instead.
            if head.0 { " marker-start=\"url(#flow-arrow-back)\"" } else { "" },
        )
        .ok();
        if !text.is_empty() {
            writeln!(
                self.body,
                "<text font-size=\"{}\" fill=\"#3e4c59\"><textPath href=\"#flow-edge-{id}\" startOffset=\"50%\" text-anchor=\"middle\">{}</textPath></text>",
                look.font_size,
                xml(text)
            )
            .ok();
        }
    }

    fn create_clip(&mut self, _xy: Point, _size: Point, _rounded_px: usize) -> ClipHandle {
        // Only records clip; we draw none.
        0
    }
}

/// Builds the graphs of the flows in `dir` (all, or the one named `only`) for the CLI: flows
/// that fail the linter are drawn too, with the findings on them.
///
/// # Errors
/// The folder cannot be read, or `only` names no flow (the message lists the flows there).
pub fn graphs_of_dir(
    dir: &Path,
    locales: &Path,
    only: Option<&str>,
    lang: &str,
) -> Result<(Vec<FlowGraph>, Vec<Diagnostic>), String> {
    let (loaded, mut diags) = super::loader::load_dir(dir);
    if loaded.is_empty() && !diags.is_empty() {
        return Err(diags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"));
    }
    let (i18n, _) = I18n::load(locales);
    if !i18n.has_language(lang) {
        let shipped: Vec<&str> = i18n.languages().collect();
        return Err(format!(
            "--lang '{lang}' is not one of the languages in {}: {}",
            locales.display(),
            shipped.join(", ")
        ));
    }
    // The same check as `flows check`, for its findings.
    match super::lint::check(dir, locales) {
        Ok(set) => diags.extend(set.warnings),
        Err(all) => diags = all,
    }
    let mut graphs = Vec::new();
    for lf in &loaded {
        if only.is_some_and(|f| f != lf.file.flow.value) {
            continue;
        }
        graphs.push(FlowGraph::build(
            &lf.file,
            &lf.path,
            Some(&i18n),
            lang,
            &diags,
        ));
    }
    if let Some(f) = only
        && graphs.is_empty()
    {
        let ids: Vec<&str> = loaded.iter().map(|l| l.file.flow.value.as_str()).collect();
        return Err(format!(
            "no flow '{f}' in {}; its flows: {}",
            dir.display(),
            ids.join(", ")
        ));
    }
    graphs.sort_by(|a, b| a.flow.cmp(&b.flow));
    Ok((graphs, diags))
}

/// Several flows in one text: Markdown with one Mermaid block per flow (GitHub and GitLab
/// draw it), or one `digraph` after another (Graphviz reads them all); one flow as it is.
pub fn render_all(graphs: &[FlowGraph], format: Format) -> String {
    if graphs.len() == 1 || format != Format::Mermaid {
        return graphs.iter().map(|g| g.render(format, None)).collect();
    }
    let mut out = String::from("# Flows\n");
    for g in graphs {
        write!(out, "\n## {}\n\n", g.flow).ok();
        if let Some(d) = &g.description {
            write!(out, "{d}\n\n").ok();
        }
        write!(out, "```mermaid\n{}```\n", g.mermaid(None)).ok();
    }
    out
}

#[cfg(test)]
mod tests;
