//! `insurebot flows check | graph | test | understand`: the flow linter, the diagrams and the conversation
//! tests for flow authors, printed for a terminal (the engine itself prints nothing).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::engine::understand::testset;
use crate::engine::{FlowSet, Severity, convtest, graph, lint};

/// Runs the check for the CLI: prints every diagnostic and a summary.
/// `locales_dir` defaults to `locales` next to the flows folder.
pub fn check(flows_dir: &Path, locales_dir: Option<&Path>) -> ExitCode {
    let locales = locales_dir
        .map(Path::to_owned)
        .unwrap_or_else(|| lint::default_locales_dir(flows_dir));
    match lint::check(flows_dir, &locales) {
        Ok(set) => {
            for w in &set.warnings {
                eprintln!("{w}");
            }
            println!(
                "ok: {} flows, {} languages, {} warnings",
                set.flows().count(),
                set.i18n().languages().count(),
                set.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            let errors = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            eprintln!("failed: {errors} errors, {} warnings", diags.len() - errors);
            ExitCode::FAILURE
        }
    }
}

/// The checked flows of `flows_dir` (locales default to `locales` beside it), or `None`
/// after printing every problem and that, therefore, `skipped` (what did not happen).
fn checked_flows(flows_dir: &Path, locales_dir: Option<&Path>, skipped: &str) -> Option<FlowSet> {
    let locales = locales_dir
        .map(Path::to_owned)
        .unwrap_or_else(|| lint::default_locales_dir(flows_dir));
    match FlowSet::load(flows_dir, &locales) {
        Ok(f) => Some(f),
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            eprintln!("flows do not pass `insurebot flows check`; {skipped}");
            None
        }
    }
}

/// CLI helper for `insurebot flows test [DIR]`: checks the flows, runs `DIR/tests`, prints
/// the report. `locales_dir` defaults to `locales` next to the flows folder.
pub fn test(flows_dir: &Path, locales_dir: Option<&Path>) -> ExitCode {
    let Some(flows) = checked_flows(flows_dir, locales_dir, "no tests run") else {
        return ExitCode::FAILURE;
    };
    let report = convtest::run_conversation_tests(&flows, &flows_dir.join("tests"));
    println!("{report}");
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `insurebot flows understand [DIR]`: scores the test set (default
/// `DIR/understanding/test-set.yaml`) and prints the report; exit 1 under the targets.
pub fn understand(flows_dir: &Path, locales_dir: Option<&Path>, set: Option<&Path>) -> ExitCode {
    let Some(flows) = checked_flows(flows_dir, locales_dir, "nothing scored") else {
        return ExitCode::FAILURE;
    };
    let path = set
        .map(Path::to_owned)
        .unwrap_or_else(|| flows_dir.join("understanding").join("test-set.yaml"));
    let set = match testset::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let report = testset::evaluate(&flows, &set);
    print!("{report}");
    let targets = testset::Targets::default();
    if report.meets(targets) {
        println!("ok: meets the targets");
        ExitCode::SUCCESS
    } else {
        println!(
            "failed: under the targets (≥ {:.0} % intents, ≤ {:.0} % wrong, ≥ {:.0} % dates and numbers)",
            targets.intent_accuracy * 100.0,
            targets.wrong_rate * 100.0,
            targets.slot_accuracy * 100.0
        );
        ExitCode::FAILURE
    }
}

/// `insurebot flows graph`: prints the diagrams; findings go to standard error.
pub fn graph(
    dir: &Path,
    locales: Option<&Path>,
    flow: Option<&str>,
    format: graph::Format,
    lang: &str,
) -> ExitCode {
    let locales: PathBuf = locales
        .map(Path::to_owned)
        .unwrap_or_else(|| lint::default_locales_dir(dir));
    let (graphs, diags) = match graph::graphs_of_dir(dir, &locales, flow, lang) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("insurebot flows graph: {e}");
            return ExitCode::from(2);
        }
    };
    if format == graph::Format::Svg && graphs.len() > 1 {
        let ids: Vec<&str> = graphs.iter().map(|g| g.flow.as_str()).collect();
        eprintln!(
            "insurebot flows graph: an SVG shows one flow; choose it with --flow (one of: {})",
            ids.join(", ")
        );
        return ExitCode::from(2);
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if errors > 0 {
        eprintln!(
            "insurebot flows graph: {errors} problems found by `flows check` are drawn on the states they concern"
        );
    }
    print!("{}", graph::render_all(&graphs, format));
    ExitCode::SUCCESS
}
