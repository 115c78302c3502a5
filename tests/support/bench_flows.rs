//! The 200-flow set of the linter benchmark (`cargo bench --bench engine`): the shipped flows
//! plus generated ones of the same shape. The benchmark times `flows check` on it; the flow
//! diagram tests draw every flow of it. Included with `#[path]` where needed.

use std::path::Path;

/// Flow files in the set.
pub const FLOWS: usize = 200;

/// Writes the set into `flows_dir` (created): the shipped `flows/*.yaml` under `root`, then
/// generated flows up to [`FLOWS`] files. Returns how many files it holds.
pub fn write(root: &Path, flows_dir: &Path) -> usize {
    std::fs::create_dir_all(flows_dir).unwrap();
    for entry in std::fs::read_dir(root.join("flows")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, flows_dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    let shipped = std::fs::read_dir(flows_dir).unwrap().count();
    for n in 0..(FLOWS - shipped) {
        std::fs::write(
            flows_dir.join(format!("generated_{n:03}.yaml")),
            generated_flow(n),
        )
        .unwrap();
    }
    std::fs::read_dir(flows_dir).unwrap().count()
}

/// A flow of the same shape as the shipped ones: a trigger, a question, a branch, buttons.
fn generated_flow(n: usize) -> String {
    format!(
        r#"flow: generated_{n}
description: Generated for the benchmark.
triggers:
  keywords:
    en: [gen{n}]
  buttons: [gen{n}]
start: ask
states:
  ask:
    say: help-text
    buttons:
      - {{ id: menu, title: btn-menu, goto: "flow:menu" }}
      - {{ id: agent, title: btn-agent, goto: "flow:handoff" }}
"#
    )
}
