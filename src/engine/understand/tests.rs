//! The matcher against the shipped flows and phrase lists, and the phrase files' checks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::testset::{self, Targets};
use super::*;
use crate::engine::FlowSet;

fn flows() -> &'static FlowSet {
    static F: OnceLock<FlowSet> = OnceLock::new();
    F.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        FlowSet::load(&root.join("flows"), &root.join("locales")).expect("shipped flows load")
    })
}

fn intent(text: &str) -> Understood {
    flows().understanding().intent(text, |_| true)
}

fn flow(text: &str) -> Option<String> {
    match intent(text) {
        Understood::Intent { flow, .. } => Some(flow),
        _ => None,
    }
}

#[test]
fn hinglish_tanglish_and_typos_are_understood() {
    assert_eq!(
        flow("mera claim kahan hai").as_deref(),
        Some("claim_status")
    );
    assert_eq!(flow("claim stauts pls").as_deref(), Some("claim_status"));
    assert_eq!(flow("premum due").as_deref(), Some("premium"));
    assert_eq!(flow("naan panam kattanum").as_deref(), Some("premium"));
    assert_eq!(flow("मेरा क्लेम कहाँ है?").as_deref(), Some("claim_status"));
    assert_eq!(flow("policy dikhao").as_deref(), Some("policy_lookup"));
}

#[test]
fn two_close_intents_ask_and_nonsense_is_nothing() {
    assert_eq!(
        intent("policy premium"),
        Understood::Ambiguous {
            first: "policy_lookup".into(),
            second: "premium".into()
        }
    );
    assert_eq!(intent("what is the weather today"), Understood::Nothing);
    assert_eq!(intent("asdf"), Understood::Nothing);
}

#[test]
fn stop_words_are_never_near_matches() {
    // "stop", "cancel" and "start" stay whole-message keywords (flows/opt_out.yaml).
    for text in [
        "stpo",
        "please stop",
        "cancle",
        "stop it now",
        "band karo na",
    ] {
        let got = intent(text);
        if let Understood::Intent { flow, .. } = &got {
            assert!(
                !["opt_out", "opt_in", "cancel"].contains(&flow.as_str()),
                "{text} → {flow}"
            );
        }
    }
}

#[test]
fn the_writers_language_is_told_from_the_words() {
    let u = flows().understanding();
    assert_eq!(u.language_of("mera claim kahan hai"), Some("hi"));
    assert_eq!(u.language_of("en claim enna aachu"), Some("ta"));
    assert_eq!(u.language_of("मेरी पॉलिसी"), Some("hi"));
    assert_eq!(u.language_of("என் பாலிசி"), Some("ta"));
    assert_eq!(u.language_of("where is my claim"), None);
}

#[test]
fn yes_and_no_in_every_script() {
    let u = flows().understanding();
    for y in ["yes", "Haan ji", "हाँ", "ஆமாம்", "aama"] {
        assert_eq!(u.yes_no(y), Some(true), "{y}");
    }
    for n in ["no", "nahi", "नहीं", "இல்லை", "vendam"] {
        assert_eq!(u.yes_no(n), Some(false), "{n}");
    }
    assert_eq!(u.yes_no("maybe"), None);
}

#[test]
fn typed_titles_with_typos_pick_their_button() {
    let titles = vec!["Premium due".to_owned(), "Policy document".to_owned()];
    assert_eq!(pick_title("premum due", &titles), Some(0));
    assert_eq!(pick_title("policy documnet", &titles), Some(1));
    assert_eq!(pick_title("claim", &titles), None);
}

/// The labelled test set meets the targets with the shipped flows (the same run as
/// `insurebot flows understand`).
#[test]
fn the_shipped_flows_meet_the_targets_on_the_test_set() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let set = testset::load(&root.join("flows/understanding/test-set.yaml")).unwrap();
    let total: usize = set
        .intents
        .values()
        .flat_map(|m| m.values())
        .map(Vec::len)
        .sum();
    assert!(total >= 300, "the test set has {total} utterances");
    let report = testset::evaluate(flows(), &set);
    assert!(report.meets(Targets::default()), "{report}");
}

fn check(yaml: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("en")).unwrap();
    std::fs::write(dir.path().join("en").join(phrases::FILE_NAME), yaml).unwrap();
    let flows: BTreeSet<String> = ["claim_status", "premium", "opt_out"]
        .map(String::from)
        .into();
    let excluded: BTreeSet<String> = ["opt_out".to_owned()].into();
    let keywords = vec![(
        "en".to_owned(),
        "premium".to_owned(),
        "pay".to_owned(),
        PathBuf::from("flows/premium.yaml"),
    )];
    let (_, diags) =
        Understanding::load(dir.path(), &["en".to_owned()], &flows, &excluded, &keywords);
    diags.iter().map(|d| d.to_string()).collect()
}

#[test]
fn the_linter_names_bad_phrase_lists() {
    let d = check("intents:\n  claims_status: [where is claim]\n");
    assert!(
        d[0].contains("intents.yaml:2:3") && d[0].contains("'claims_status', which is not a flow"),
        "{d:?}"
    );
    let d = check("intents:\n  claim_status: []\n");
    assert!(d[0].contains("no phrases for 'claim_status'"), "{d:?}");
    let d = check("intents:\n  claim_status: [pay]\n");
    assert!(
        d[0].contains("phrase 'pay' is listed for 'claim_status' and for 'premium'"),
        "{d:?}"
    );
    let d = check("intents:\n  opt_out: [please stop]\n");
    assert!(
        d[0].contains("STOP, START and cancel stay whole-message keywords"),
        "{d:?}"
    );
    let d = check("fillers: [my]\nintents:\n  claim_status: [my]\n");
    assert!(d[0].contains("only filler words"), "{d:?}");
    let d = check("intent:\n  claim_status: [x]\n");
    assert!(d[0].contains("intents.yaml"), "{d:?}");
    assert!(check("intents:\n  claim_status: [where is my claim, Pay up]\n").is_empty());
}

#[test]
fn an_external_ranking_is_read_with_the_built_in_thresholds() {
    let u = flows().understanding();
    let read = |scores: &[(&str, f32)]| {
        let r = Ranking(scores.iter().map(|(n, c)| (n.to_string(), *c)).collect());
        u.from_ranking("zorblax", &r, |_| true)
    };
    // Clear: taken, whatever the built-in matcher makes of the text.
    assert_eq!(
        read(&[("premium", 0.8), ("help", 0.1)]),
        Some(Understood::Intent {
            flow: "premium".into(),
            score: 0.8
        })
    );
    // Close: asked; a name that is no flow is passed over.
    assert_eq!(
        read(&[("book_flight", 0.99), ("help", 0.5), ("premium", 0.47)]),
        Some(Understood::Ambiguous {
            first: "help".into(),
            second: "premium".into()
        })
    );
    // Unsure, empty, or not finite: the built-in matcher decides.
    assert_eq!(read(&[("premium", 0.55), ("help", 0.2)]), None);
    assert_eq!(read(&[]), None);
    assert_eq!(read(&[("premium", f32::NAN)]), None);
    // A STOP/cancel word in the text is never taken from the service.
    let r = Ranking(vec![("claim_status".into(), 0.95)]);
    assert_eq!(u.from_ranking("cancel my claim", &r, |_| true), None);
}
