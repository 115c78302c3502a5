//! Linter tests: the shipped flows pass, and each kind of mistake is reported at its position.

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_flows_pass_without_warnings() {
    let set = check(&root().join("flows"), &root().join("locales")).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(set.warnings.is_empty(), "{:#?}", set.warnings);
    assert!(set.flow("menu").is_some());
}
