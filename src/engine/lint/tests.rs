//! Linter tests: the shipped flows pass, and each kind of mistake is reported at its position.

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            copy_dir(&p, &to.join(p.file_name().unwrap()));
        } else {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// The shipped flows and locales in a temp dir, plus `extra` files (path, content).
fn check_with(extra: &[(&str, &str)]) -> Vec<Diagnostic> {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("flows"), &dir.path().join("flows"));
    copy_dir(&root().join("locales"), &dir.path().join("locales"));
    for (p, content) in extra {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    match check(&dir.path().join("flows"), &dir.path().join("locales")) {
        Ok(set) => set.warnings,
        Err(d) => d,
    }
}

/// Asserts some diagnostic contains `needle` at `line` (0 = any line) of a file ending in `file`.
fn assert_has(diags: &[Diagnostic], file: &str, line: u32, needle: &str) {
    let found = diags.iter().any(|d| {
        d.file.to_string_lossy().ends_with(file)
            && (line == 0 || d.line == line)
            && (d.message.contains(needle) || d.hint.as_deref().is_some_and(|h| h.contains(needle)))
    });
    assert!(
        found,
        "no diagnostic '{needle}' at {file}:{line}; got:\n{}",
        diags
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
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

#[test]
fn display_matches_the_documented_format() {
    let d = Diagnostic::error(
        Path::new("flows/claim.yaml"),
        12,
        9,
        "state 'lookp' does not exist",
    )
    .with_hint("did you mean 'lookup'?");
    assert_eq!(
        d.to_string(),
        "flows/claim.yaml:12:9: error: state 'lookp' does not exist\n  hint: did you mean 'lookup'?"
    );
}

const BROKEN: &str = r#"flow: broken
triggers:
  keywords:
    en: [menu, brokenword]
  buttons: [claim]
start: ask
states:
  ask:
    say: claim-ask-number
    expect:
      text: { pattern: "^(CLM" }
    save: n
    next: lookp
  lookup:
    action: claim.status
    on:
      found: ask
      nope: ask
  spin:
    next: spin2
  spin2:
    next: spin
  choose:
    say: no-such-message
    buttons:
      - { id: a, title: btn-menu, goto: ask }
      - { id: a, title: btn-agent, goto: "flow:nowhere" }
      - { id: c, title: menu-policy-desc }
  many:
    say: menu-welcome
    buttons:
      - { id: b1, title: btn-menu, goto: ask }
      - { id: b2, title: btn-agent, goto: ask }
      - { id: b3, title: btn-retry, goto: ask }
      - { id: b4, title: btn-another, goto: ask }
  act:
    action: claims.status
"#;

#[test]
fn every_problem_is_reported_with_its_position() {
    let d = check_with(&[("flows/broken.yaml", BROKEN)]);
    let f = "flows/broken.yaml";
    // A clash is reported in the later file (by name), pointing at the other one.
    assert_has(
        &d,
        "flows/menu.yaml",
        7,
        "'menu' is also used by flow 'broken'",
    );
    assert_has(
        &d,
        "flows/claim_status.yaml",
        9,
        "trigger button 'claim' is also used",
    );
    assert_has(&d, f, 11, "invalid pattern: unclosed group");
    assert_has(&d, f, 13, "state 'lookp' does not exist");
    assert_has(&d, f, 13, "did you mean 'lookup'?");
    assert_has(&d, f, 14, "unreachable");
    assert_has(&d, f, 15, "can return 'not_found' but `on` has no branch");
    assert_has(&d, f, 18, "never returns 'nope'");
    assert_has(&d, f, 19, "loop with no way out");
    assert_has(
        &d,
        f,
        24,
        "message 'no-such-message' is missing in en, hi, ta",
    );
    assert_has(&d, f, 27, "duplicate button id 'a'");
    assert_has(&d, f, 27, "flow 'nowhere' does not exist");
    assert_has(&d, f, 28, "a button title may have at most 20");
    assert_has(&d, f, 28, "goes nowhere");
    assert_has(&d, f, 29, "needs `list_button`");
    assert_has(&d, f, 37, "unknown action 'claims.status'");
    assert_has(&d, f, 37, "did you mean 'claim.status'?");
}

#[test]
fn yaml_errors_do_not_hide_other_files() {
    let d = check_with(&[
        (
            "flows/a_bad.yaml",
            "flow: a\nstart: x\nstates:\n  x:\n    say: [oops\n",
        ),
        (
            "flows/b_typo.yaml",
            "flow: b\nstart: x\nstates:\n  x:\n    sya: menu-welcome\n    next: end\n",
        ),
        (
            "flows/c_dup.yaml",
            "flow: menu\nstart: x\nstates:\n  x:\n    next: end\n",
        ),
    ]);
    assert_has(&d, "flows/a_bad.yaml", 0, "");
    assert_has(&d, "flows/b_typo.yaml", 5, "sya");
    assert_has(&d, "flows/menu.yaml", 2, "duplicate flow id 'menu'");
}

#[test]
fn a_yaml_error_in_a_flow_others_call_is_its_only_error() {
    // help.yaml fills `role: help` and menu.yaml goes to `flow:help`: neither is reported.
    let help = std::fs::read_to_string(root().join("flows/help.yaml")).unwrap();
    let broken = help.replace("  show:\n", "  show\n");
    assert_ne!(broken, help);
    let d = check_with(&[("flows/help.yaml", broken.as_str())]);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_has(&d, "flows/help.yaml", 13, "expected `key: value` lines");
}

#[test]
fn locale_problems_are_reported() {
    let d = check_with(&[
        ("locales/ta/extra.ftl", "broken = { $x\n"),
        ("locales/en/extra.ftl", "only-english = Hi\n"),
        ("locales/hi/extra.ftl", "btn-menu = दोबारा\n"),
    ]);
    assert_has(&d, "locales/ta/extra.ftl", 1, "fluent syntax");
    assert_has(
        &d,
        "locales/hi",
        0,
        "'only-english' exists in 'en' but not in 'hi'",
    );
    assert_has(&d, "locales/hi/extra.ftl", 1, "defined twice");
}

#[test]
fn long_titles_are_caught_in_every_language() {
    let d = check_with(&[
        ("locales/ta/zz.ftl", ""),
        (
            "flows/long.yaml",
            "flow: long\nstart: a\nstates:\n  a:\n    say: menu-welcome\n    buttons:\n      - { id: x, title: long-title, goto: a }\n",
        ),
        ("locales/en/long.ftl", "long-title = Short\n"),
        ("locales/hi/long.ftl", "long-title = छोटा\n"),
        (
            "locales/ta/long.ftl",
            "long-title = இது மிகவும் நீளமான பொத்தான் தலைப்பு\n",
        ),
    ]);
    assert_has(&d, "flows/long.yaml", 7, "'long-title' in 'ta' is");
}

#[test]
fn stop_needs_keywords_in_every_language_and_roles_are_required() {
    let d = check_with(&[
        (
            "flows/opt_out.yaml",
            "flow: opt_out\nrole: opt_out\ntriggers:\n  keywords:\n    en: [stop]\nstart: a\nstates:\n  a:\n    consent: opt_out\n    say: optout-confirmed\n    next: end\n",
        ),
        (
            "flows/help.yaml",
            "flow: help\nstart: a\nstates:\n  a:\n    say: help-text\n    next: end\n",
        ),
    ]);
    assert_has(&d, "flows/opt_out.yaml", 2, "no keywords in 'hi'");
    assert_has(&d, "flows", 0, "no flow has `role: help`");
}

#[test]
fn keywords_are_matched_as_whole_messages() {
    assert_eq!(normalize_keyword("  STOP! "), "stop");
    assert_eq!(normalize_keyword("Talk   to  Agent"), "talk to agent");
    assert_eq!(normalize_keyword("रोकें।"), "रोकें");
    let set = check(&root().join("flows"), &root().join("locales")).unwrap();
    for stop in ["stop", "STOP ", "Stop.", "रोकें", "நிறுத்து"] {
        assert_eq!(
            set.keyword_flow(stop).map(|f| f.id.as_str()),
            Some("opt_out"),
            "{stop}"
        );
    }
    assert!(set.keyword_flow("please stop the bill").is_none());
}

#[test]
fn template_fallbacks_are_checked_against_the_registry() {
    let read = |f: &str| std::fs::read_to_string(root().join("flows").join(f)).unwrap();
    let typo = read("claim_status.yaml").replace(
        "template: { name: claim_status_update,",
        "template: { name: claim_status_updte,",
    );
    let short = read("open_claims.yaml").replace(
        "template: { name: claim_status_update, params: [claim_number, claim_stage] }",
        "template: { name: claim_status_update, params: [claim_number] }",
    );
    let d = check_with(&[
        ("flows/claim_status.yaml", &typo),
        ("flows/open_claims.yaml", &short),
    ]);
    assert_has(
        &d,
        "flows/claim_status.yaml",
        36,
        "template 'claim_status_updte' is not in",
    );
    assert_has(
        &d,
        "flows/claim_status.yaml",
        36,
        "did you mean 'claim_status_update'?",
    );
    assert_has(
        &d,
        "flows/open_claims.yaml",
        46,
        "template 'claim_status_update' takes 2 parameters, this state gives 1",
    );
    assert_has(
        &d,
        "flows/open_claims.yaml",
        46,
        "its parameters: claim_number, claim_stage",
    );

    // A broken registry is an error of its own, named by file.
    let d = check_with(&[("flows/templates/templates.yaml", "templates: [")]);
    assert_has(&d, "flows/templates/templates.yaml", 0, "template registry");
}

// issue 21: data values
#[test]
fn every_data_value_needs_a_text_in_every_language() {
    let without = |lang: &str| {
        std::fs::read_to_string(root().join(format!("locales/{lang}/flows.ftl")))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("value-claim-stage-under-review ="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Gone from English and Tamil, still in Hindi: no other check notices English.
    let d = check_with(&[
        ("locales/en/flows.ftl", &without("en")),
        ("locales/ta/flows.ftl", &without("ta")),
    ]);
    for lang in ["en", "ta"] {
        assert_has(
            &d,
            &format!("locales/{lang}"),
            0,
            &format!(
                "claim_stage 'under_review' has no text in '{lang}' (message 'value-claim-stage-under-review')"
            ),
        );
    }
    assert!(
        !d.iter().any(|x| x.message.contains("no text in 'hi'")),
        "Hindi has it: {d:?}"
    );
}

#[test]
fn stop_start_and_cancel_need_keywords_in_every_language() {
    let cancel = std::fs::read_to_string(root().join("flows/cancel.yaml")).unwrap();
    let tamil_line = cancel
        .lines()
        .find(|l| l.trim_start().starts_with("ta:"))
        .expect("cancel.yaml has Tamil keywords");
    let without_tamil = cancel.replace(&format!("{tamil_line}\n"), "");
    let diags = check_with(&[("flows/cancel.yaml", &without_tamil)]);
    assert_has(
        &diags,
        "cancel.yaml",
        0,
        "the cancel flow has no keywords in 'ta'",
    );
}

#[test]
fn media_steps_are_checked_kinds_bounds_slot_and_done_button() {
    let flow = "\
flow: upload
start: files
states:
  files:
    say: docs-send
    expect:
      media: [image, photo, image]
      max: 50
  fine:
    say: docs-send
    expect: { media: [document], max: 3 }
    save: files
    buttons:
      - { id: files.done, title: btn-done, goto: end }
  counted:
    say: docs-send
    expect: { text: {}, max: 3 }
    next: end
";
    let d = check_with(&[("flows/upload.yaml", flow)]);
    assert_has(&d, "flows/upload.yaml", 7, "'photo' is not a kind of file");
    assert_has(
        &d,
        "flows/upload.yaml",
        7,
        "the kinds are image, document, audio, video, sticker",
    );
    assert_has(&d, "flows/upload.yaml", 7, "'image' is listed twice");
    assert_has(
        &d,
        "flows/upload.yaml",
        8,
        "`max` is 50; a media step takes 1 to 20 files",
    );
    assert_has(
        &d,
        "flows/upload.yaml",
        4,
        "collects files but has no `save:` slot",
    );
    assert_has(
        &d,
        "flows/upload.yaml",
        4,
        "collects files but has no button to finish",
    );
    assert_has(
        &d,
        "flows/upload.yaml",
        0,
        "`max` only counts files: it needs `media`",
    );
    assert!(
        !d.iter().any(|x| x.to_string().contains("upload.yaml:10")
            || x.line == 10 && x.file.ends_with("upload.yaml")),
        "the well-formed media step passes: {d:?}"
    );
}

#[test]
fn send_files_needs_a_slot_that_holds_files_and_a_caption_that_fits() {
    let long = "x".repeat(1100);
    let flow = "\
flow: letters
start: collect
states:
  collect:
    say: docs-send
    expect: { media: [document] }
    save: papers
    buttons:
      - { id: papers.done, title: btn-done }
    next: echo
  echo:
    send_files: { slot: papers, caption: docs-send }
    say: docs-send
    next: lookup
  lookup:
    action: claim.status
    args: [claim_number]
    on: { found: letter, documents_pending: letter, not_found: end, error: end }
  letter:
    send_files: { slot: claim_letter, caption: letters-long }
    next: wrong
  wrong:
    send_files: { slot: claim_number }
    next: end
";
    let d = check_with(&[
        ("flows/letters.yaml", flow),
        ("locales/en/zz.ftl", &format!("letters-long = {long}\n")),
        ("locales/hi/zz.ftl", "letters-long = छोटा\n"),
    ]);
    assert_has(
        &d,
        "flows/letters.yaml",
        23,
        "slot 'claim_number' holds no files in this flow",
    );
    assert_has(
        &d,
        "flows/letters.yaml",
        23,
        "`claim_letter` (claim.status)",
    );
    assert_has(
        &d,
        "flows/letters.yaml",
        20,
        "'letters-long' in 'en' is 1100 characters; a file's caption may have at most 1024",
    );
    assert_has(
        &d,
        "flows/letters.yaml",
        20,
        "message 'letters-long' is missing in ta",
    );
    assert!(
        !d.iter().any(|x| x.file.ends_with("letters.yaml")
            && matches!(x.line, 12 | 20)
            && x.message.contains("holds no files")),
        "a media step's slot and an action's file field pass: {d:?}"
    );
}
