//! Talking to the bot in the first hour (issue 21, items 6–9), through the real webhook path:
//! the way back from the agent queue (and the console seeing the contact leave it), "cancel"
//! that cancels rather than unsubscribes, data values in the contact's language, and the
//! premium of the policy just shown.

use insurebot::config::DialogueMode;
use insurebot::http::console::auth::Role;
use insurebot::store::entities::{consent_log, conversation, handoff};
use insurebot::whatsapp::fake::ReceivedRequest;
use sea_orm::EntityTrait;

use crate::console::{add_agent, login, queued_handoff};
use crate::dialogue::tap;
use crate::helpers::*;

async fn spawn_flows_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |s| s.dialogue.handler = DialogueMode::Flows).await
}

/// Sends `body` as a text from `phone`.
async fn say(app: &TestApp, phone: &str, timestamp: i64, body: &str) {
    app.post_webhook(&envelope(vec![text_message(
        phone,
        &new_wamid(),
        timestamp,
        body,
    )]))
    .await;
}

/// Taps a reply button (`button_reply`) or chooses a list row (`list_reply`) as `phone`.
async fn press(app: &TestApp, phone: &str, timestamp: i64, kind: &str, id: &str, title: &str) {
    app.post_webhook(&envelope(vec![tap(phone, timestamp, kind, id, title)]))
        .await;
}

/// The body text of a send, text or interactive.
fn body_text(request: &ReceivedRequest) -> String {
    request.body["text"]["body"]
        .as_str()
        .or(request.body["interactive"]["body"]["text"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The ids of a send's reply buttons.
fn button_ids(request: &ReceivedRequest) -> Vec<String> {
    request.body["interactive"]["action"]["buttons"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| b["reply"]["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn handoff_states(app: &TestApp) -> Vec<String> {
    handoff::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.state.to_string())
        .collect()
}

#[tokio::test]
async fn the_hand_off_message_leads_back_to_the_bot_and_the_console_sees_the_contact_leave() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        add_agent(&app, "asha@example.in", Role::Agent).await;
        let agent = login(&app, "asha@example.in").await;
        let phone = "919800002101";
        let queued = queued_handoff(&app, phone).await;
        let sent = app.wait_for_sends(1).await;
        assert_eq!(button_ids(&sent[0]), ["menu"], "{}", sent[0].body);
        assert_eq!(
            sent[0].body["interactive"]["action"]["buttons"][0]["reply"]["title"],
            "Back to the bot"
        );
        let take = format!("/console/handoffs/{}/take", queued.id);
        let rows = agent.get("/console/queue/rows").await.text().await.unwrap();
        assert!(rows.contains(&take), "{rows}");

        // A greeting while waiting is for the agent: still queued, the bot quiet.
        say(&app, phone, now_secs(), "hello").await;
        app.assert_no_more_sends(1).await;
        assert_eq!(handoff_states(&app).await, ["waiting"]);

        press(
            &app,
            phone,
            now_secs(),
            "button_reply",
            "menu",
            "Back to the bot",
        )
        .await;
        let sent = app.wait_for_sends(2).await;
        assert_eq!(body_text(&sent[1]), "Welcome! How can I help you today?");
        assert_eq!(handoff_states(&app).await, ["cancelled"]);
        let rows = agent.get("/console/queue/rows").await.text().await.unwrap();
        assert!(
            !rows.contains(&take) && rows.contains("Nobody is waiting"),
            "{rows}"
        );
        let stored = conversation::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(stored[0].mode, "bot");
    }
}

#[tokio::test]
async fn typing_menu_or_cancel_in_any_language_leaves_the_queue_without_opting_out() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        let phone = "919800002102";
        let ts = now_secs();
        say(&app, phone, ts, "agent").await;
        app.wait_for_sends(1).await;
        say(&app, phone, ts + 1, "मेनू").await;
        let sent = app.wait_for_sends(2).await;
        assert_eq!(body_text(&sent[1]), "Welcome! How can I help you today?");
        assert_eq!(handoff_states(&app).await, ["cancelled"]);

        say(&app, phone, ts + 2, "agent").await;
        app.wait_for_sends(3).await;
        say(&app, phone, ts + 3, "ரத்து").await;
        let sent = app.wait_for_sends(5).await;
        assert!(
            body_text(&sent[3]).starts_with("Cancelled."),
            "{}",
            sent[3].body
        );
        assert_eq!(body_text(&sent[4]), "Welcome! How can I help you today?");
        assert_eq!(handoff_states(&app).await, ["cancelled", "cancelled"]);
        let stored = conversation::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(stored[0].mode, "bot");
        let log = consent_log::Entity::find().all(&app.db).await.unwrap();
        assert!(log.is_empty(), "cancel is not an opt-out here: {log:?}");
    }
}

#[tokio::test]
async fn cancel_mid_question_goes_back_to_the_menu_and_cancel_alone_opts_out() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        let ts = now_secs();
        // Mid-question (the identity check asks for a policy number), in English and Hindi.
        let mut sends = 0;
        for (phone, word) in [("919800002103", "cancel"), ("919800002104", "रद्द करें")]
        {
            say(&app, phone, ts, "claim").await;
            sends += 1;
            app.wait_for_sends(sends).await;
            say(&app, phone, ts + 1, word).await;
            sends += 2;
            let sent = app.wait_for_sends(sends).await;
            assert!(
                body_text(&sent[sends - 2]).starts_with("Cancelled."),
                "{word}: {}",
                sent[sends - 2].body
            );
            assert_eq!(
                body_text(&sent[sends - 1]),
                "Welcome! How can I help you today?"
            );
        }
        app.assert_no_more_sends(sends).await;
        let log = consent_log::Entity::find().all(&app.db).await.unwrap();
        assert!(log.is_empty(), "{log:?}");

        // Alone, with nothing in progress: an opt-out, in English, Hindi and Tamil.
        for (phone, word) in [
            ("919800002105", "Cancel"),
            ("919800002106", "रद्द"),
            ("919800002107", "ரத்து"),
        ] {
            say(&app, phone, ts, word).await;
            sends += 1;
            let sent = app.wait_for_sends(sends).await;
            assert!(
                body_text(&sent[sends - 1]).starts_with("You will no longer receive messages"),
                "{word}: {}",
                sent[sends - 1].body
            );
        }
        let log = consent_log::Entity::find().all(&app.db).await.unwrap();
        let mut said: Vec<(String, String, Option<String>)> = log
            .into_iter()
            .map(|e| (e.change, e.scope, e.shown_text))
            .collect();
        said.sort();
        let opt_out = |w: &str| ("opt_out".to_owned(), "all".to_owned(), Some(w.to_owned()));
        assert_eq!(said, [opt_out("Cancel"), opt_out("रद्द"), opt_out("ரத்து")]);
    }
}

#[tokio::test]
async fn a_hindi_policyholder_reads_statuses_in_hindi_and_gets_the_premium_of_the_policy_shown() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        insurebot::insurer::load_sample_if_empty(&app.db)
            .await
            .unwrap();
        let phone = "919812345678"; // the sample policyholder: health, motor and life
        let ts = now_secs();
        say(&app, phone, ts, "भाषा").await;
        app.wait_for_sends(1).await;
        press(&app, phone, ts + 1, "button_reply", "lang.hi", "हिन्दी").await;
        app.wait_for_sends(3).await;
        say(&app, phone, ts + 2, "पॉलिसी").await;
        app.wait_for_sends(4).await;
        press(
            &app,
            phone,
            ts + 3,
            "list_reply",
            "M-2025/778812",
            "Private Car Comprehensive",
        )
        .await;
        let sent = app.wait_for_sends(5).await;
        let details = body_text(&sent[4]);
        assert!(
            details.contains("प्रकार: मोटर") && details.contains("स्थिति: सक्रिय"),
            "{details}"
        );
        assert!(!details.contains("Active"), "{details}");

        // "Premium due" under the details: that policy's premium, no "which policy?".
        press(&app, phone, ts + 4, "button_reply", "premium", "प्रीमियम देय").await;
        let sent = app.wait_for_sends(6).await;
        let premium = body_text(&sent[5]);
        assert!(
            premium.starts_with("पॉलिसी ••••8812 का ₹12,340 प्रीमियम"),
            "{premium}"
        );

        say(&app, phone, ts + 5, "क्लेम").await;
        app.wait_for_sends(7).await;
        say(&app, phone, ts + 6, "CLM-240455").await;
        let sent = app.wait_for_sends(8).await;
        let claim = body_text(&sent[7]);
        assert!(claim.contains("CLM-240455: दस्तावेज़ बाकी"), "{claim}");
    }
}

#[tokio::test]
async fn the_terminal_chat_says_where_an_agent_answers_and_does_not_wait_for_the_bot_meanwhile() {
    // `chat` always runs its own sandbox server on a throw-away SQLite file: one backend.
    let env: std::collections::BTreeMap<String, String> = [
        (
            "INSUREBOT_DIALOGUE_FLOWS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/flows"),
        ),
        (
            "INSUREBOT_DIALOGUE_LOCALES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/locales"),
        ),
        // Agents always in: no after-hours notice by the clock.
        ("INSUREBOT_CONSOLE_OFFICE_DAYS", "mon-sun"),
        ("INSUREBOT_CONSOLE_OFFICE_OPEN", "00:00"),
        ("INSUREBOT_CONSOLE_OFFICE_CLOSE", "24:00"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let settings = insurebot::config::Settings::from_sources(None, &env).unwrap();
    // The hand-off message's button is [1]: typing 1 taps it.
    let script = "agent\nare you there?\n1\n";
    let mut out: Vec<u8> = Vec::new();
    let started = std::time::Instant::now();
    insurebot::chat::run_with(settings, "919800002108", None, script.as_bytes(), &mut out)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let text = String::from_utf8(out).unwrap();
    let console = regex::Regex::new(r"http://127\.0\.0\.1:\d+/console").unwrap();
    assert!(console.is_match(&text), "{text}");
    assert!(
        text.contains("cargo run -- agent add")
            && text.contains("INSUREBOT_DATABASE_URL='sqlite://"),
        "{text}"
    );
    assert!(text.contains("[1] Back to the bot"), "{text}");
    assert!(
        text.contains("(for the agent: you are still in the queue)")
            && !text.contains("(no reply)"),
        "{text}"
    );
    assert!(
        text.contains("bot: Welcome! How can I help you today?"),
        "{text}"
    );
    // The message for the agent did not wait out the 10 s allowed for a bot reply.
    assert!(
        elapsed < std::time::Duration::from_secs(10),
        "{elapsed:?}\n{text}"
    );
}
