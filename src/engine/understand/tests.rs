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

/// The vocabulary index (length buckets, letter cut) finds exactly the words a comparison
/// with every vocabulary word finds, for every word of the test set the vocabulary lacks and
/// typos of every vocabulary word.
#[test]
fn the_vocabulary_index_finds_what_a_full_scan_finds() {
    let u = flows().understanding();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let set = testset::load(&root.join("flows/understanding/test-set.yaml")).unwrap();
    let mut words: BTreeSet<String> = set
        .intents
        .values()
        .flat_map(|m| m.values())
        .flatten()
        .flat_map(|t| normalize::tokens(t))
        .collect();
    words.extend(["stauts", "premum", "polcy", "documnet", "paymnt"].map(String::from));
    // Every vocabulary word with one letter dropped, one changed, two swapped.
    for w in &u.vocab {
        let c = &w.chars;
        if c.len() > 2 {
            words.insert(c[1..].iter().collect());
            let mut changed = c.clone();
            changed[c.len() / 2] = 'x';
            words.insert(changed.iter().collect());
            let mut swapped = c.clone();
            swapped.swap(0, 1);
            words.insert(swapped.iter().collect());
        }
    }
    let mut compared = 0;
    // Words of the vocabulary itself are found by the exact lookup, never through the index.
    for w in words.iter().filter(|w| !u.vocab_index.contains_key(*w)) {
        let word = fuzzy::Word::new(w);
        let full: Vec<(u32, f32)> = u
            .vocab
            .iter()
            .enumerate()
            .filter_map(|(v, vw)| {
                let s = fuzzy::similarity(&word.chars, &vw.chars);
                (s > 0.0).then_some((v as u32, s))
            })
            .collect();
        assert_eq!(u.alike(&word), full, "{w}");
        compared += 1;
    }
    assert!(compared > 1000, "only {compared} words compared");
}

/// The longest text WhatsApp allows (4,096 characters) is read without panicking and gets
/// the right answer: a story is nothing, a request padded with spaces or punctuation is
/// still the request, one endless word is nothing.
#[test]
fn a_message_of_4096_characters_is_read() {
    let story: String = "my car broke down near pune and the towing guy wants cash "
        .chars()
        .cycle()
        .take(4096)
        .collect();
    assert_eq!(story.chars().count(), 4096);
    assert_eq!(intent(&story), Understood::Nothing);
    let padded = format!("claim status {}", "!".repeat(4096 - 13));
    assert_eq!(padded.chars().count(), 4096);
    assert_eq!(flow(&padded).as_deref(), Some("claim_status"));
    let spaced = format!("{}premum due", " ".repeat(4096 - 10));
    assert_eq!(flow(&spaced).as_deref(), Some("premium"));
    let endless: String = "claimstatus".chars().cycle().take(4096).collect();
    assert_eq!(intent(&endless), Understood::Nothing);
    let devanagari: String = "मेरा क्लेम कहाँ है ".chars().cycle().take(4096).collect();
    assert_eq!(intent(&devanagari), Understood::Nothing);
    // Through the whole input step too (slots, titles, the misunderstood note).
    let menu = crate::engine::step(
        flows(),
        &crate::engine::Conversation::new("en"),
        &crate::engine::Event::Text("hi".into()),
        chrono::Utc::now(),
    )
    .conversation;
    for text in [&story, &endless, &devanagari] {
        let out = crate::engine::step(
            flows(),
            &menu,
            &crate::engine::Event::Text(text.clone()),
            chrono::Utc::now(),
        );
        assert!(
            out.effects
                .iter()
                .any(|e| matches!(e, crate::engine::Effect::Misunderstood { .. })),
            "{} chars not noted as misunderstood: {:?}",
            text.len(),
            out.effects
        );
    }
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
