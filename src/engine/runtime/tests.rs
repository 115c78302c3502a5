//! Table tests for `step`: (position, event) → (next position, effects), plus the rules that
//! are easier to state in Rust than in a conversation test (stale positions, serde shape).

use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::TimeZone;

use crate::engine::media_slot::{FileKind, MediaRef};
use crate::engine::model::FlowId;

use super::*;

fn flows() -> &'static FlowSet {
    static SET: OnceLock<FlowSet> = OnceLock::new();
    SET.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        FlowSet::load(&root.join("flows"), &root.join("locales")).expect("shipped flows pass")
    })
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
}

fn at(flow: &str, state: &str) -> Conversation {
    let mut c = Conversation::new("en");
    let f = flows().flow(flow).unwrap();
    c.position = Some(Position {
        flow: FlowId::checked(flow),
        state: StateId::checked(state),
        flow_version: f.version.clone(),
    });
    c.last_activity = Some(now());
    c
}

fn text(s: &str) -> Event {
    Event::Text(s.to_owned())
}

fn tap(id: &str) -> Event {
    Event::Button {
        id: id.to_owned(),
        title: String::new(),
    }
}

/// A short label per effect so tables stay readable; the "not understood" notes are checked
/// on their own ([`notes`]).
fn labels(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter(|e| !matches!(e, Effect::Misunderstood { .. }))
        .map(|e| match e {
            Effect::Reply(r) => format!("say {}", r.message_id),
            Effect::CallAction { action, .. } => format!("call {action}"),
            Effect::Handoff { .. } => "handoff".into(),
            Effect::CancelHandoff { .. } => "cancel_handoff".into(),
            Effect::Consent { change } => format!("consent {change:?}"),
            Effect::SetLanguage { language } => format!("language {language}"),
            Effect::EndConversation => "end".into(),
            Effect::SendFiles { files, .. } => format!("send {} file(s)", files.len()),
            Effect::Misunderstood { .. } => unreachable!("filtered above"),
        })
        .collect()
}

#[test]
fn transitions_table() {
    let table: Vec<(Conversation, Event, &str, Vec<&str>)> = vec![
        (
            Conversation::new("en"),
            text("hi"),
            "menu.show",
            vec!["say menu-welcome"],
        ),
        (
            Conversation::new("en"),
            text("random words"),
            "menu.show",
            vec!["say menu-welcome"],
        ),
        (
            at("menu", "show"),
            tap("claim"),
            "identity.check",
            vec!["call identity.check"],
        ),
        (
            at("menu", "show"),
            Event::ListRow { id: "help".into() },
            "help.show",
            vec!["say help-text"],
        ),
        (
            at("menu", "show"),
            text("nonsense"),
            "menu.show",
            vec!["say engine-misunderstood"],
        ),
        (
            at("menu", "show"),
            Event::Media(Some(file(FileKind::Image, 1))),
            "menu.show",
            vec!["say engine-unsupported"],
        ),
        (
            at("claim_status", "ask_number"),
            text("CLM-123456"),
            "claim_status.lookup",
            vec!["call claim.status"],
        ),
        (
            at("claim_status", "ask_number"),
            text("CLM123"),
            "claim_status.ask_number",
            vec!["say claim-bad-number"],
        ),
        (
            at("claim_status", "ask_number"),
            text("menu"),
            "menu.show",
            vec!["say menu-welcome"],
        ),
        (
            at("claim_status", "ask_number"),
            text("stop"),
            "-",
            vec!["consent OptOut", "say optout-confirmed", "end"],
        ),
        (
            at("claim_status", "ask_number"),
            text("agent"),
            "-",
            vec!["say handoff-connecting", "handoff"],
        ),
        (
            at("help", "show"),
            text("2"),
            "-",
            vec!["say handoff-connecting", "handoff"],
        ),
        (
            at("language", "choose"),
            tap("lang.ta"),
            "menu.show",
            vec!["language ta", "say language-set", "say menu-welcome"],
        ),
        (
            at("premium_due", "show"),
            tap("premium.paid"),
            "premium_due.already_paid",
            vec!["say premium-already-paid"],
        ),
        (
            at("identity", "ask_dob"),
            text("१५/०८/१९८०"),
            "identity.verify",
            vec!["call identity.verify_dob"],
        ),
    ];
    for (conv, event, want_at, want_effects) in table {
        let before = conv.where_label();
        let out = step(flows(), &conv, &event, now());
        assert_eq!(
            out.conversation.where_label(),
            want_at,
            "from {before} on {event:?}"
        );
        assert_eq!(
            labels(&out.effects),
            want_effects,
            "from {before} on {event:?}"
        );
    }
}

#[test]
fn action_results_branch_and_fill_slots() {
    let mut c = at("claim_status", "ask_number");
    c = step(flows(), &c, &text("clm-000042"), now()).conversation;
    assert_eq!(c.slots["claim_number"], Value::from("CLM-000042"));
    assert_eq!(c.pending_action.as_deref(), Some("claim.status"));
    let result = Event::ActionResult {
        action: "claim.status".into(),
        outcome: "found".into(),
        data: serde_json::json!({"claim_stage": "Approved", "claim_updated_date": "2026-01-02", "pending_documents": 0}),
    };
    let out = step(flows(), &c, &result, now());
    assert_eq!(out.conversation.where_label(), "claim_status.show");
    let Effect::Reply(r) = &out.effects[0] else {
        panic!("{:?}", out.effects)
    };
    assert_eq!(
        r.body,
        "Claim CLM-000042: Approved (updated 02/01/2026).\nNo documents are pending."
    );
    let t = r.template.as_ref().unwrap();
    assert_eq!(
        (t.name.as_str(), t.params.clone()),
        (
            "claim_status_update",
            vec!["CLM-000042".to_string(), "Approved".to_string()]
        )
    );
    // A duplicate (late) result is ignored.
    let again = step(flows(), &out.conversation, &result, now());
    assert!(again.effects.is_empty());
    assert_eq!(again.conversation, out.conversation);
}

#[test]
fn a_vanished_state_goes_to_the_menu_with_an_apology() {
    let mut c = at("claim_status", "ask_number");
    c.position.as_mut().unwrap().state = StateId::checked("removed_state");
    let out = step(flows(), &c, &text("CLM-123456"), now());
    assert_eq!(
        labels(&out.effects),
        vec!["say engine-flow-changed", "say menu-welcome"]
    );
    assert_eq!(out.conversation.where_label(), "menu.show");

    let mut c = at("claim_status", "ask_number");
    c.position.as_mut().unwrap().flow = FlowId::checked("removed_flow");
    let out = step(flows(), &c, &tap("whatever"), now());
    assert_eq!(out.conversation.where_label(), "menu.show");

    // An edited flow whose state survived continues, with the new version recorded.
    let mut c = at("claim_status", "ask_number");
    c.position.as_mut().unwrap().flow_version = "old".into();
    let out = step(flows(), &c, &text("CLM-123456"), now());
    assert_eq!(out.conversation.where_label(), "claim_status.lookup");
    assert_eq!(
        out.conversation.position.unwrap().flow_version,
        flows().flow("claim_status").unwrap().version
    );
}

#[test]
fn call_and_return_resume_the_calling_flow() {
    let c = Conversation::new("en");
    let out = step(flows(), &c, &text("claim"), now());
    assert_eq!(out.conversation.stack.len(), 1);
    let res = Event::ActionResult {
        action: "identity.check".into(),
        outcome: "verified".into(),
        data: Value::Null,
    };
    let out = step(flows(), &out.conversation, &res, now());
    assert_eq!(out.conversation.where_label(), "claim_status.ask_number");
    assert!(out.conversation.stack.is_empty());
}

#[test]
fn menu_is_a_sectioned_list_within_limits_in_every_language() {
    for lang in ["en", "hi", "ta"] {
        let out = step(flows(), &Conversation::new(lang), &text("menu"), now());
        let Effect::Reply(r) = &out.effects[0] else {
            panic!()
        };
        let Some(Choices::List(list)) = &r.choices else {
            panic!("{r:?}")
        };
        assert_eq!(list.sections.len(), 2, "{lang}");
        assert!(list.sections.iter().all(|s| s.title.is_some()));
        assert!(limits::len(&list.button) <= limits::LIST_BUTTON);
        for row in list.sections.iter().flat_map(|s| &s.rows) {
            assert!(
                limits::len(&row.title) <= limits::ROW_TITLE,
                "{lang}: {}",
                row.title
            );
        }
    }
}

#[test]
fn on_a_line_with_some_flows_only_they_start_and_the_menu_offers_only_them() {
    let only: HashSet<String> = ["claim_status".to_owned()].into();
    let on_line = |conv: &Conversation, event: Event| {
        step_on(flows(), conv, &event, now(), None, Some(&only))
    };
    // The policy keyword: not the policy flow, the menu (a note says it was not understood).
    let out = on_line(&Conversation::new("en"), text("policy"));
    assert_eq!(pos(&out.conversation), "menu.show", "{:?}", out.effects);
    let Effect::Reply(r) = &out
        .effects
        .iter()
        .find(|e| matches!(e, Effect::Reply(_)))
        .unwrap()
    else {
        panic!()
    };
    let Some(Choices::List(list)) = &r.choices else {
        panic!("{r:?}")
    };
    let ids: Vec<&str> = list
        .sections
        .iter()
        .flat_map(|s| &s.rows)
        .map(|r| r.id.as_str())
        .collect();
    assert!(ids.contains(&"claim") && ids.contains(&"agent") && ids.contains(&"language"));
    assert!(
        ids.contains(&"preferences"),
        "consent works on every line: {ids:?}"
    );
    assert!(
        !ids.contains(&"policy") && !ids.contains(&"premium"),
        "{ids:?}"
    );
    // Typed numbers count the offered rows: the first row is the claim row here.
    let menu = out.conversation;
    let out = on_line(&menu, text("1"));
    assert_eq!(flow_of(&out.conversation), "claim_status");
    // A tap on a hidden row of an older menu does not start its flow.
    let out = on_line(&menu, tap("policy"));
    assert!(
        !pos(&out.conversation).starts_with("identity."),
        "{}",
        pos(&out.conversation)
    );
    // Free text that means the hidden flow is not understood as it either.
    let wish = text("show me my policy details");
    let out = step_on(flows(), &Conversation::new("en"), &wish, now(), None, None);
    assert_eq!(
        flow_of(&out.conversation),
        "policy_lookup",
        "on a line with every flow"
    );
    let out = on_line(&Conversation::new("en"), wish);
    assert!(
        !pos(&out.conversation).starts_with("identity."),
        "{}",
        pos(&out.conversation)
    );
    // STOP and the line's own keyword work; every flow answers without a list.
    let out = on_line(&menu, text("STOP"));
    assert_eq!(out.conversation.mode, Mode::OptedOutQuiet);
    let out = on_line(&Conversation::new("en"), text("claim"));
    assert_eq!(flow_of(&out.conversation), "claim_status");
    let out = step_on(
        flows(),
        &Conversation::new("en"),
        &text("policy"),
        now(),
        None,
        None,
    );
    assert_eq!(flow_of(&out.conversation), "policy_lookup");
}

#[test]
fn conversation_and_effects_round_trip_through_json() {
    let out = step(
        flows(),
        &at("claim_status", "ask_number"),
        &text("CLM-123456"),
        now(),
    );
    let json = serde_json::to_string(&out.conversation).unwrap();
    let back: Conversation = serde_json::from_str(&json).unwrap();
    assert_eq!(back, out.conversation);
    let effects = serde_json::to_value(&out.effects).unwrap();
    assert_eq!(effects[0]["type"], "call_action");
    let ev: Event = serde_json::from_str(r#"{"type":"text","data":"hi"}"#).unwrap();
    assert_eq!(ev, text("hi"));
}

#[test]
fn numbers_and_dates_parse_as_typed_in_india() {
    assert_eq!(parse_number("₹ 1,23,456.50"), Some(123456.5));
    assert_eq!(parse_number("Rs. 500"), Some(500.0));
    assert_eq!(parse_number("५००"), Some(500.0));
    assert_eq!(parse_number("௧௨"), Some(12.0));
    assert_eq!(parse_number("five"), None);
    let d = NaiveDate::from_ymd_opt(1980, 8, 15);
    for s in [
        "15/08/1980",
        "15-08-1980",
        "15.08.1980",
        "1980-08-15",
        "15 Aug 1980",
        "15 august 1980",
    ] {
        assert_eq!(parse_date(s), d, "{s}");
    }
    assert_eq!(parse_date("08/15/1980"), None);
}

/// A kept file of `kind`, told apart by `n`.
fn file(kind: FileKind, n: u8) -> MediaRef {
    MediaRef::stand_in(kind, n)
}

/// Steps `conv` with `event` and returns the new conversation and its one reply's message id.
fn one_reply(conv: &Conversation, event: Event) -> (Conversation, Reply) {
    let out = step(flows(), conv, &event, now());
    let replies: Vec<Reply> = out
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 1, "{:?}", out.effects);
    (out.conversation, replies[0].clone())
}

#[test]
fn a_media_step_collects_accepted_files_and_says_why_it_refuses_the_others() {
    let mut conv = at("claim_documents", "files");
    conv.slots
        .insert("claim_files".into(), Value::Array(Vec::new()));
    let (conv, r) = one_reply(&conv, Event::Media(Some(file(FileKind::Image, 1))));
    assert_eq!(r.message_id, "engine-media-received");
    assert!(r.body.contains("1 file received"), "{}", r.body);
    assert!(
        matches!(&r.choices, Some(Choices::Buttons(b)) if b[0].id == "files.done"),
        "Done comes with every answer: {:?}",
        r.choices
    );
    let (conv, r) = one_reply(&conv, Event::Media(Some(file(FileKind::Document, 2))));
    assert!(r.body.contains("2 files received"), "{}", r.body);
    // A video where photos and documents are wanted: the kinds, in words; nothing kept.
    let (conv, r) = one_reply(&conv, Event::Media(Some(file(FileKind::Video, 3))));
    assert_eq!(r.message_id, "engine-media-kind");
    assert!(
        r.body
            .contains("This step accepts: photos, documents (PDF)"),
        "{}",
        r.body
    );
    // Text names the kinds too.
    let (conv, r) = one_reply(&conv, text("here you go"));
    assert_eq!(r.message_id, "engine-media-kind");
    // A file that could not be kept: asked again, the step still waits.
    let (conv, r) = one_reply(&conv, Event::Media(None));
    assert_eq!(r.message_id, "engine-media-again");
    assert_eq!(conv.where_label(), "claim_documents.files");
    let kept = MediaRef::list(conv.slots.get("claim_files"));
    assert_eq!(
        kept,
        vec![file(FileKind::Image, 1), file(FileKind::Document, 2)]
    );
    // Done: the files go to the action, the button id does not overwrite them.
    let out = step(flows(), &conv, &tap("files.done"), now());
    assert_eq!(out.conversation.where_label(), "claim_documents.attach");
    let args = out
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::CallAction { action, args } if action.name() == "claim.attach_documents" => {
                Some(args)
            }
            _ => None,
        })
        .expect("the action is called");
    assert_eq!(MediaRef::list(args.get("claim_files")), kept);
}

#[test]
fn a_media_step_stops_at_its_maximum_and_starts_empty_on_each_visit() {
    let mut conv = at("claim_documents", "files");
    let ten: Vec<Value> = (0..10)
        .map(|n| file(FileKind::Image, n).to_value())
        .collect();
    conv.slots.insert("claim_files".into(), Value::Array(ten));
    let (conv, r) = one_reply(&conv, Event::Media(Some(file(FileKind::Image, 11))));
    assert_eq!(r.message_id, "engine-media-max");
    assert!(r.body.contains("at most 10 files"), "{}", r.body);
    assert_eq!(MediaRef::list(conv.slots.get("claim_files")).len(), 10);
    // Coming back to the step (from the claim's status) collects afresh.
    let mut back = at("claim_status", "show_pending");
    back.slots = conv.slots.clone();
    let out = step(flows(), &back, &tap("claim.send_documents"), now());
    assert_eq!(out.conversation.where_label(), "claim_documents.files");
    assert_eq!(
        out.conversation.slots.get("claim_files"),
        Some(&Value::Array(Vec::new()))
    );
}

#[test]
fn the_kinds_are_named_in_the_contacts_language() {
    let mut conv = at("claim_documents", "files");
    conv.language = "hi".into();
    let (_, r) = one_reply(&conv, Event::Media(Some(file(FileKind::Audio, 1))));
    assert!(r.body.contains("फ़ोटो, दस्तावेज़ (PDF)"), "{}", r.body);
    conv.language = "ta".into();
    let (_, r) = one_reply(&conv, Event::Media(Some(file(FileKind::Audio, 1))));
    assert!(r.body.contains("புகைப்படங்கள், ஆவணங்கள் (PDF)"), "{}", r.body);
}

/// The "not understood" notes of a step: (masked text, place).
fn notes(effects: &[Effect]) -> Vec<(String, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Misunderstood { text, place } => Some((text.clone(), place.clone())),
            _ => None,
        })
        .collect()
}

fn pos(c: &Conversation) -> String {
    c.where_label()
}

/// The flow a conversation is in: the caller when it is inside `identity`.
fn flow_of(c: &Conversation) -> String {
    c.stack
        .first()
        .map(|f| f.flow.to_string())
        .or_else(|| c.position.as_ref().map(|p| p.flow.to_string()))
        .unwrap_or_else(|| "-".into())
}

#[test]
fn free_text_starts_the_flow_it_asks_for() {
    // Between conversations, and mid-flow where it is not the state's answer.
    let table: Vec<(Conversation, &str, &str)> = vec![
        (Conversation::new("en"), "claim stauts pls", "claim_status"),
        (Conversation::new("en"), "when is my premum due", "premium"),
        (at("help", "show"), "policy copy chahiye", "policy_document"),
        (at("menu", "show"), "talk to a real person", "-"),
    ];
    for (conv, t, want) in table {
        let out = step(flows(), &conv, &text(t), now());
        assert_eq!(
            flow_of(&out.conversation),
            want,
            "{t}: {:?}",
            labels(&out.effects)
        );
        assert!(
            out.effects
                .iter()
                .any(|e| matches!(e, Effect::CallAction { .. } | Effect::Handoff { .. })),
            "{t}: {:?}",
            labels(&out.effects)
        );
    }
}

#[test]
fn two_close_intents_ask_with_a_button_for_each() {
    let out = step(
        flows(),
        &Conversation::new("en"),
        &text("policy premium"),
        now(),
    );
    let [Effect::Reply(r)] = out.effects.as_slice() else {
        panic!("{:?}", labels(&out.effects));
    };
    assert_eq!(r.message_id, "engine-did-you-mean");
    let Some(Choices::Buttons(b)) = &r.choices else {
        panic!("{r:?}");
    };
    let ids: Vec<&str> = b.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["policy", "premium"]);
    assert_eq!(b[0].title, "Policy details");
    // A tap on either starts that flow.
    let next = step(flows(), &out.conversation, &tap("premium"), now());
    assert_eq!(flow_of(&next.conversation), "premium");
}

#[test]
fn hinglish_is_answered_in_hindi_and_the_choice_is_kept() {
    let out = step(
        flows(),
        &Conversation::new("en"),
        &text("mera claim kahan hai"),
        now(),
    );
    assert_eq!(out.conversation.language, "hi");
    assert!(out.conversation.language_settled);
    assert!(labels(&out.effects).contains(&"language hi".to_owned()));
    // English words later do not bounce it back, and Tanglish does not switch it again.
    let mut conv = out.conversation;
    conv.position = None;
    let again = step(flows(), &conv, &text("en claim enna aachu"), now());
    assert_eq!(again.conversation.language, "hi");
    // A language chosen in the language flow is not overridden by free text.
    let mut chosen = Conversation::new("ta");
    chosen.language_settled = true;
    let out = step(flows(), &chosen, &text("mera claim kahan hai"), now());
    assert_eq!(out.conversation.language, "ta");
    // English stays English.
    let out = step(
        flows(),
        &Conversation::new("en"),
        &text("where is my claim"),
        now(),
    );
    assert_eq!(out.conversation.language, "en");
    assert!(!out.conversation.language_settled);
}

#[test]
fn free_text_naming_the_flow_under_way_is_a_wrong_answer_not_a_restart() {
    let conv = at("claim_status", "ask_number");
    let out = step(flows(), &conv, &text("my claim is late"), now());
    assert_eq!(pos(&out.conversation), "claim_status.ask_number");
    assert_eq!(labels(&out.effects), ["say claim-bad-number"]);
    assert_eq!(out.conversation.retries, 1);
    assert_eq!(
        notes(&out.effects),
        [(
            "my claim is late".to_owned(),
            "claim_status.ask_number".to_owned()
        )]
    );
    // A wrong number is masked to nothing worth a note; understood text gets none either.
    let out = step(flows(), &conv, &text("240 311"), now());
    assert!(notes(&out.effects).is_empty());
    let out = step(
        flows(),
        &Conversation::new("en"),
        &text("claim stauts"),
        now(),
    );
    assert!(notes(&out.effects).is_empty());
}

#[test]
fn answers_are_read_out_of_free_text() {
    let out = step(
        flows(),
        &at("claim_status", "ask_number"),
        &text("clm 240311"),
        now(),
    );
    assert_eq!(out.conversation.slots["claim_number"], "CLM240311");
    let out = step(
        flows(),
        &at("identity", "ask_dob"),
        &text("12 march 85"),
        now(),
    );
    assert_eq!(out.conversation.slots["dob"], "1985-03-12");
    let out = step(
        flows(),
        &at("identity", "ask_dob"),
        &text("१२ मार्च १९८५"),
        now(),
    );
    assert_eq!(out.conversation.slots["dob"], "1985-03-12");
    for (t, want) in [
        ("haan ji", "prefs.offers.yes"),
        ("வேண்டாம்", "prefs.offers.no"),
    ] {
        let out = step(flows(), &at("preferences", "ask_offers"), &text(t), now());
        assert_eq!(out.conversation.slots.get("x"), None);
        assert_eq!(
            pos(&out.conversation),
            "-",
            "{t}: {:?}",
            labels(&out.effects)
        );
        let consent = if want.ends_with("yes") {
            "consent OptIn(Marketing)"
        } else {
            "consent OptOutOf(Marketing)"
        };
        assert!(labels(&out.effects).contains(&consent.to_owned()), "{t}");
    }
}

#[test]
fn stop_words_keep_their_whole_message_rule() {
    // Near spellings and sentences with STOP/cancel words are not opt-outs, and are not
    // guessed at either.
    for t in [
        "stpo",
        "please stop",
        "i want to cancel my claim",
        "band karo na",
    ] {
        let out = step(flows(), &Conversation::new("en"), &text(t), now());
        assert_eq!(out.conversation.mode, Mode::Bot, "{t}");
        assert_eq!(pos(&out.conversation), "menu.show", "{t}");
    }
}

#[test]
fn a_claim_letter_is_sent_before_the_status_with_its_caption_in_the_contacts_language() {
    let letter = MediaRef {
        file_name: Some("CLM-240311.pdf".into()),
        ..file(FileKind::Document, 7)
    };
    for (lang, expected) in [
        ("en", "Letter on claim CLM-240311: Settled"),
        ("hi", "क्लेम CLM-240311 का पत्र: भुगतान हो गया"),
        ("ta", "க்ளைம் CLM-240311 கடிதம்: தொகை வழங்கப்பட்டது"),
    ] {
        let mut conv = at("claim_status", "lookup");
        conv.language = lang.into();
        conv.pending_action = Some("claim.status".into());
        conv.slots
            .insert("claim_number".into(), Value::String("CLM-240311".into()));
        let out = step(
            flows(),
            &conv,
            &Event::ActionResult {
                action: "claim.status".into(),
                outcome: "found".into(),
                data: serde_json::json!({
                    "claim_stage": "settled",
                    "claim_updated_date": "2026-11-30",
                    "pending_documents": 0,
                    "claim_letter": [letter.to_value()],
                }),
            },
            now(),
        );
        assert_eq!(
            labels(&out.effects),
            vec!["send 1 file(s)", "say claim-status"],
            "the file first, then the words ({lang})"
        );
        let Effect::SendFiles { files, caption } = &out.effects[0] else {
            unreachable!()
        };
        assert_eq!(files, &vec![letter.clone()]);
        assert_eq!(caption.as_deref(), Some(expected), "{lang}");
    }
}

#[test]
fn without_a_letter_nothing_is_sent_and_an_earlier_claims_letter_is_not_sent_again() {
    let mut conv = at("claim_status", "lookup");
    conv.pending_action = Some("claim.status".into());
    // A letter of the claim looked up before, still in the slots.
    conv.slots.insert(
        "claim_letter".into(),
        Value::Array(vec![file(FileKind::Document, 1).to_value()]),
    );
    let out = step(
        flows(),
        &conv,
        &Event::ActionResult {
            action: "claim.status".into(),
            outcome: "found".into(),
            data: serde_json::json!({
                "claim_stage": "under_review",
                "claim_updated_date": "2026-11-30",
                "pending_documents": 0,
                "claim_letter": [],
            }),
        },
        now(),
    );
    assert_eq!(labels(&out.effects), vec!["say claim-status"]);
}
