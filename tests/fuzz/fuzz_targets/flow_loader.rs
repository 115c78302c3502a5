//! Any text as a flow file, linted beside the shipped flows and locales: diagnostics or a flow
//! set, never a panic.
#![no_main]

use std::path::Path;

use insurebot::engine::{i18n::I18n, lint, loader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Ok(flow) = loader::parse_flow(Path::new("fuzz.yaml"), text) else { return };
    let (mut loaded, diags) = loader::load_dir(&root.join("flows"));
    loaded.push(flow);
    let (i18n, _) = I18n::load(&root.join("locales"));
    let _ = lint::check_loaded(loaded, i18n, &root.join("locales"), diags);
});
