//! The flow engine behind the real webhook path: menus as interactive messages, STOP in any
//! language from mid-flow, hand-off, and flows reloaded while the server runs.

use std::time::Duration;

use chrono::Datelike;
use insurebot::config::DialogueMode;
use insurebot::store::entities::{consent_log, conversation, handoff};
use sea_orm::EntityTrait;

use crate::helpers::*;

async fn spawn_flows_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |s| s.dialogue.handler = DialogueMode::Flows).await
}

#[tokio::test]
async fn hello_gets_the_main_menu_as_an_interactive_list() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        app.post_webhook(&envelope(vec![text_message(
            "919800000601",
            &new_wamid(),
            now_secs(),
            "hello",
        )]))
        .await;
        let sent = app.wait_for_sends(1).await;
        let body = &sent[0].body;
        assert_eq!(body["type"], "interactive", "{body}");
        assert_eq!(body["interactive"]["type"], "list");
        assert_eq!(
            body["interactive"]["body"]["text"],
            "Welcome! How can I help you today?"
        );
        let rows: Vec<&str> = body["interactive"]["action"]["sections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["rows"].as_array().unwrap())
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert!(
            rows.contains(&"claim") && rows.contains(&"agent"),
            "{rows:?}"
        );
        let stored = conversation::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].flow.as_deref(), Some("menu"));
        assert!(stored[0].flow_version.is_some());
    }
}

#[tokio::test]
async fn stop_in_hindi_from_mid_flow_opts_out_once_with_an_audit_entry() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        let phone = "919800000602";
        let ts = now_secs();
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts,
            "menu",
        )]))
        .await;
        app.wait_for_sends(1).await;
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts + 1,
            "रोकें",
        )]))
        .await;
        let sent = app.wait_for_sends(2).await;
        assert_eq!(sent[1].body["type"], "text");
        let log = consent_log::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(
            (
                log[0].change.as_str(),
                log[0].scope.as_str(),
                log[0].source.as_str()
            ),
            ("opt_out", "all", "keyword")
        );
        assert_eq!(log[0].shown_text.as_deref(), Some("रोकें"));
        // Afterwards: one reminder how to come back, then silence.
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts + 2,
            "hello",
        )]))
        .await;
        app.wait_for_sends(3).await;
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts + 3,
            "hello again",
        )]))
        .await;
        app.assert_no_more_sends(3).await;
    }
}

#[tokio::test]
async fn asking_for_an_agent_queues_one_hand_off_and_the_bot_goes_quiet() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        let phone = "919800000603";
        let ts = now_secs();
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts,
            "agent",
        )]))
        .await;
        app.wait_for_sends(1).await;
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts + 1,
            "agent",
        )]))
        .await;
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts + 2,
            "are you there?",
        )]))
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let queue = handoff::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(queue.len(), 1, "{queue:?}");
        assert_eq!(queue[0].state, "waiting");
        assert_eq!(queue[0].language, "en");
        let stored = conversation::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(stored[0].mode, "waiting_for_agent");
    }
}

#[tokio::test]
async fn an_edited_flow_is_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root("flows"), &dir.path().join("flows"));
    copy_dir(&root("locales"), &dir.path().join("locales"));
    let flows_dir = dir.path().join("flows");
    let locales_dir = dir.path().join("locales");
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.dialogue.handler = DialogueMode::Flows;
        s.dialogue.flows_dir = flows_dir.clone();
        s.dialogue.locales_dir = locales_dir.clone();
    })
    .await;
    let phone = "919800000604";
    app.post_webhook(&envelope(vec![text_message(
        phone,
        &new_wamid(),
        now_secs(),
        "hi",
    )]))
    .await;
    let sent = app.wait_for_sends(1).await;
    assert_eq!(
        sent[0].body["interactive"]["body"]["text"],
        "Welcome! How can I help you today?"
    );

    let ftl = locales_dir.join("en/flows.ftl");
    let text = std::fs::read_to_string(&ftl).unwrap();
    std::fs::write(
        &ftl,
        text.replace(
            "Welcome! How can I help you today?",
            "Namaste! What do you need?",
        ),
    )
    .unwrap();
    let mut reply = String::new();
    for round in 0..30 {
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            now_secs() + round,
            "menu",
        )]))
        .await;
        let sent = app.wait_for_sends(2 + round as usize).await;
        reply = sent.last().unwrap().body["interactive"]["body"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if reply.starts_with("Namaste") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(reply, "Namaste! What do you need?");
}

#[tokio::test]
async fn broken_flows_stop_the_start_with_every_problem_listed() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root("flows"), &dir.path().join("flows"));
    copy_dir(&root("locales"), &dir.path().join("locales"));
    let menu = dir.path().join("flows/menu.yaml");
    let text = std::fs::read_to_string(&menu).unwrap();
    std::fs::write(
        &menu,
        text.replace("goto: \"flow:claim_status\"", "goto: \"flow:claim_stats\""),
    )
    .unwrap();
    let (mut settings, _db) = test_settings_for(&Backend::Sqlite, "http://127.0.0.1:9").await;
    settings.dialogue.handler = DialogueMode::Flows;
    settings.dialogue.flows_dir = dir.path().join("flows");
    settings.dialogue.locales_dir = dir.path().join("locales");
    let error = match insurebot::app::Application::build(settings).await {
        Ok(_) => panic!("a broken flow must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("menu.yaml:"), "{error}");
    assert!(error.contains("claim_stats"), "{error}");
}

fn root(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn hi_then_taps_move_through_the_flows_and_everything_is_persisted() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        let phone = "919800000605";
        let ts = now_secs();
        app.post_webhook(&envelope(vec![text_message(phone, &new_wamid(), ts, "hi")]))
            .await;
        app.wait_for_sends(1).await;

        app.post_webhook(&envelope(vec![tap(
            phone,
            ts + 1,
            "list_reply",
            "language",
            "Change language",
        )]))
        .await;
        let sent = app.wait_for_sends(2).await;
        let buttons: Vec<&str> = sent[1].body["interactive"]["action"]["buttons"]
            .as_array()
            .expect("language choice as reply buttons")
            .iter()
            .map(|b| b["reply"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(buttons.len(), 3, "{buttons:?}");
        let stored = conversation::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(stored[0].flow.as_deref(), Some("language"));

        let hindi = buttons
            .iter()
            .find(|id| id.contains("hi"))
            .expect("a Hindi button");
        app.post_webhook(&envelope(vec![tap(
            phone,
            ts + 2,
            "button_reply",
            hindi,
            "हिन्दी",
        )]))
        .await;
        let sent = app.wait_for_sends(3).await;
        let text = sent[2].body["text"]["body"]
            .as_str()
            .or(sent[2].body["interactive"]["body"]["text"].as_str());
        assert!(
            text.unwrap()
                .chars()
                .any(|c| ('\u{0900}'..='\u{097F}').contains(&c)),
            "{:?}",
            sent[2].body
        );
        let stored = conversation::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(stored[0].language, "hi");
    }
}

/// An inbound tap on a reply button (`button_reply`) or a list row (`list_reply`).
pub fn tap(phone: &str, timestamp: i64, kind: &str, id: &str, title: &str) -> serde_json::Value {
    serde_json::json!({
        "from": phone, "id": new_wamid(), "timestamp": timestamp.to_string(), "type": "interactive",
        "interactive": { "type": kind, kind: { "id": id, "title": title } }
    })
}

#[tokio::test]
async fn a_policyholder_checks_a_claim_with_real_insurer_data_and_cannot_see_anothers() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        assert!(
            insurebot::insurer::load_sample_if_empty(&app.db)
                .await
                .unwrap()
        );
        let owner = "919812345678"; // registered on the health policy that has CLM-240311
        let ts = now_secs();
        app.post_webhook(&envelope(vec![text_message(
            owner,
            &new_wamid(),
            ts,
            "claim",
        )]))
        .await;
        let sent = app.wait_for_sends(1).await;
        assert_eq!(
            sent[0].body["type"], "text",
            "asks for the claim number: {}",
            sent[0].body
        );
        app.post_webhook(&envelope(vec![text_message(
            owner,
            &new_wamid(),
            ts + 1,
            "CLM-240311",
        )]))
        .await;
        let sent = app.wait_for_sends(2).await;
        let status = serde_json::to_string(&sent[1].body).unwrap();
        assert!(
            status.contains("CLM-240311") || status.contains("240311"),
            "{status}"
        );

        // Another verified policyholder (registered on other policies) asks for the same
        // claim: for them it does not exist.
        let stranger = "919876501234";
        app.post_webhook(&envelope(vec![text_message(
            stranger,
            &new_wamid(),
            ts,
            "claim",
        )]))
        .await;
        app.post_webhook(&envelope(vec![text_message(
            stranger,
            &new_wamid(),
            ts + 1,
            "CLM-240311",
        )]))
        .await;
        let sent = app.wait_for_sends(4).await;
        let to_stranger: Vec<String> = sent
            .iter()
            .filter(|r| recipient_of(r) == stranger)
            .map(|r| serde_json::to_string(&r.body).unwrap())
            .collect();
        for reply in &to_stranger {
            assert!(
                !reply.contains("under review") && !reply.contains("184"),
                "leaked: {reply}"
            );
        }
    }
}

#[tokio::test]
async fn nobody_waits_for_an_agent_forever() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        let phone = "919800000606";
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            now_secs(),
            "agent",
        )]))
        .await;
        app.wait_for_sends(1).await;
        wait_for_handoff(&app).await;
        // The timer of an instance whose limit has passed (the app's own is 4 hours).
        let runner_with = async |office_hours| {
            timer_runner(
                &app,
                &backend,
                chrono::Duration::minutes(1),
                office_hours,
                None,
                None,
            )
            .await
        };
        let runner = runner_with(None).await;
        // With office hours the limit counts only the hours the team is in: an office that
        // opens only on the day after tomorrow has not let the policyholder down yet.
        let office_day = (chrono::Utc::now().date_naive() + chrono::Duration::days(2))
            .weekday()
            .num_days_from_monday() as usize;
        let mut days = [false; 7];
        days[office_day] = true;
        let closed_runner = runner_with(Some(insurebot::config::hours::OfficeHours {
            days,
            open: chrono::NaiveTime::MIN,
            close: chrono::NaiveTime::from_hms_opt(23, 59, 59).unwrap(),
            offset: chrono::FixedOffset::east_opt(0).unwrap(),
            label: "UTC".into(),
        }))
        .await;
        let later = chrono::Utc::now() + chrono::Duration::minutes(2);
        assert_eq!(
            closed_runner
                .expire_agent_waits(&app.db, "timer", later)
                .await
                .unwrap(),
            0,
            "closed all the while: the wait has not started to count"
        );
        let soon = chrono::Utc::now() + chrono::Duration::seconds(30);
        assert_eq!(
            runner
                .expire_agent_waits(&app.db, "timer", soon)
                .await
                .unwrap(),
            0,
            "not yet"
        );
        assert_eq!(
            runner
                .expire_agent_waits(&app.db, "timer", later)
                .await
                .unwrap(),
            1
        );
        let queue = handoff::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(queue[0].state, "cancelled");
        let stored = conversation::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(stored[0].mode, "bot");
        // The policyholder is told no agent is free.
        app.wait_for_sends(2).await;
    }
}

async fn wait_for_handoff(app: &TestApp) {
    for _ in 0..300 {
        if !handoff::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no hand-off was queued");
}
