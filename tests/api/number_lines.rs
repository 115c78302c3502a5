//! What each business number brings of its own (issue 20 item 3): its WhatsApp Business
//! Account (the templates it may send outside the window, synced per WABA, and one-time
//! passwords checked against the WABA of the line they leave from), the language a new
//! contact starts in, and the flows that answer on it; and `insurebot chat --number`.

use std::time::{Duration, Instant};

use insurebot::config::DialogueMode;
use insurebot::config::numbers::NumberSettings;
use insurebot::messaging::templates;
use insurebot::store::entities::outbox;
use insurebot::whatsapp::fake::{ReceivedRequest, default_templates};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::otp::{tapped, typed};

/// The claims line (the helpers' own number) and the sales line, each in a WABA of its own.
const CLAIMS: &str = PHONE_NUMBER_ID;
const SALES: &str = "106540352240002";
const CLAIMS_WABA: &str = "900000000000001";
const SALES_WABA: &str = "900000000000002";

fn line(id: &str, waba: Option<&str>, language: Option<&str>, flows: &[&str]) -> NumberSettings {
    NumberSettings {
        phone_number_id: id.to_owned(),
        display_number: None,
        rate_per_second: None,
        waba_id: waba.map(str::to_owned),
        default_language: language.map(str::to_owned),
        flows: (!flows.is_empty()).then(|| flows.iter().map(|f| (*f).to_owned()).collect()),
    }
}

/// Both lines, each in a WABA of its own, with no template sync on a timer (the tests sync
/// when they need the fake's lists).
fn two_lines(s: &mut insurebot::config::Settings) {
    s.whatsapp.template_sync_secs = 0;
    s.whatsapp.numbers = vec![
        line(CLAIMS, Some(CLAIMS_WABA), None, &[]),
        line(SALES, Some(SALES_WABA), None, &[]),
    ];
}

/// The fake's default list with `name` in every language set to `status`.
fn list_with(name: &str, status: &str) -> Vec<Value> {
    let mut list = default_templates();
    for t in &mut list {
        if t["name"] == name {
            t["status"] = json!(status);
        }
    }
    list
}

async fn write_to(app: &TestApp, to: &str, from: &str, body: &str) {
    let message = text_message(from, &new_wamid(), now_secs(), body);
    let response = app.post_webhook(&envelope_to(to, vec![message])).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn notify(app: &TestApp, key: &str, phone: &str, number: &str) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}/api/v1/notifications", app.address))
        .bearer_auth(crate::consent::API_TOKEN)
        .header("Idempotency-Key", key)
        .json(
            &json!({ "kind": "claim_update", "phone": phone, "number": number,
            "data": { "claim_number": "CLM-000042", "claim_stage": "approved" } }),
        )
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The outbox rows to `phone`'s contact.
async fn rows_to(app: &TestApp, phone: &str) -> Vec<outbox::Model> {
    let contact = insurebot::store::entities::contact::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.wa_id.as_deref() == Some(phone))
        .expect("the contact");
    outbox::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.contact_id == contact.id)
        .collect()
}

/// Reads both WABAs' template lists from the fake through the real sync.
async fn sync_both_wabas(app: &TestApp) {
    let client = insurebot::whatsapp::client::CloudApiClient::new(
        reqwest::Client::new(),
        &app.fake_base_url(),
        PHONE_NUMBER_ID,
        "token".to_owned().into(),
    );
    for waba in [CLAIMS_WABA, SALES_WABA] {
        templates::sync(&app.db, &client, waba, insurebot::store::now_ms())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn out_of_the_window_each_number_sends_only_templates_approved_in_its_own_waba() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            crate::consent::configure(s);
            two_lines(s);
        })
        .await;
        // The claim update template is approved in the claims WABA and paused in the sales
        // one; the premium reminder the other way round.
        app.fake
            .set_waba_templates(CLAIMS_WABA, list_with("premium_due_reminder", "PAUSED"));
        app.fake
            .set_waba_templates(SALES_WABA, list_with("claim_status_update", "PAUSED"));
        sync_both_wabas(&app).await;
        let status = |waba: &'static str, name: &'static str| {
            let db = app.db.clone();
            async move {
                templates::lookup(&db, waba, name, "en")
                    .await
                    .unwrap()
                    .unwrap()
                    .status
            }
        };
        assert_eq!(status(CLAIMS_WABA, "claim_status_update").await, "APPROVED");
        assert_eq!(status(SALES_WABA, "claim_status_update").await, "PAUSED");
        assert_eq!(status(CLAIMS_WABA, "premium_due_reminder").await, "PAUSED");
        assert_eq!(status(SALES_WABA, "premium_due_reminder").await, "APPROVED");

        // Neither contact ever wrote: a claim update can only go as the template.
        let (code, v) = notify(&app, "w-1", "919800002201", CLAIMS).await;
        assert_eq!(code, 202, "{backend:?}: {v}");
        let sent = app.wait_for_sends(1).await;
        assert_eq!(sent[0].phone_number_id, CLAIMS, "{backend:?}");
        assert_eq!(sent[0].body["template"]["name"], "claim_status_update");
        let (code, v) = notify(&app, "w-2", "919800002202", SALES).await;
        assert_eq!(code, 202, "{backend:?}: {v}");
        // Not from the sales line: its WABA has the template paused, whatever the claims
        // WABA says. The row says so.
        app.assert_no_more_sends(1).await;
        let rows = rows_to(&app, "919800002202").await;
        assert_eq!(rows.len(), 1, "{backend:?}");
        assert_eq!(rows[0].phone_number_id.as_deref(), Some(SALES));
        assert_eq!(
            rows[0].reason,
            Some(outbox::Reason::TemplateNotApproved),
            "{backend:?}: {rows:?}"
        );
        let detail = rows[0].last_error.clone().unwrap_or_default();
        assert!(
            detail.contains("PAUSED") && detail.contains(SALES_WABA),
            "{backend:?}: {detail}"
        );
        assert!(
            app.fake
                .received()
                .iter()
                .all(|r| r.phone_number_id != SALES),
            "{backend:?}: something left from the sales line"
        );
    }
}

#[tokio::test]
async fn a_status_webhook_pauses_the_template_only_in_the_waba_it_came_from() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            two_lines(s);
        })
        .await;
        // The webhook's entry is the WABA.
        let pause = json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": SALES_WABA, "time": now_secs(), "changes": [{
                "field": "message_template_status_update",
                "value": { "event": "PAUSED", "message_template_id": 1189423958839011u64,
                    "message_template_name": "claim_status_update",
                    "message_template_language": "en", "reason": "LOW_QUALITY" } }] }]
        });
        assert_eq!(app.post_webhook(&pause.to_string()).await.status(), 200);
        let status = |waba: &'static str| {
            let db = app.db.clone();
            async move {
                templates::lookup(&db, waba, "claim_status_update", "en")
                    .await
                    .unwrap()
                    .unwrap()
                    .status
            }
        };
        assert_eq!(status(SALES_WABA).await, "PAUSED", "{backend:?}");
        assert_eq!(status(CLAIMS_WABA).await, "APPROVED", "{backend:?}");
    }
}

#[tokio::test]
async fn a_registry_from_before_wabas_becomes_the_first_numbers_wabas_keeping_its_statuses() {
    for backend in backends() {
        // Started without a WABA: the registry is the one of WABA ''.
        let app = spawn_app_with(&backend, |s| s.whatsapp.template_sync_secs = 0).await;
        templates::set_status(
            &app.db,
            Some(""),
            "policy_summary",
            Some("ta"),
            "PAUSED",
            None,
            "test",
            0,
        )
        .await
        .unwrap();
        // Started again naming WABAs (what serve and the CLI do with the settings' list).
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/templates/templates.yaml");
        let defs = insurebot::engine::templates_file::load_file(&path).unwrap();
        let wabas = [CLAIMS_WABA.to_owned(), SALES_WABA.to_owned()];
        templates::seed(&app.db, &defs, &wabas, 0).await.unwrap();
        let ta = |waba: &'static str| {
            let db = app.db.clone();
            async move {
                templates::lookup(&db, waba, "policy_summary", "ta")
                    .await
                    .unwrap()
            }
        };
        // The first WABA took the old rows, pause included; the second starts from the file.
        assert_eq!(
            ta(CLAIMS_WABA).await.unwrap().status,
            "PAUSED",
            "{backend:?}"
        );
        assert_eq!(
            ta(SALES_WABA).await.unwrap().status,
            "APPROVED",
            "{backend:?}"
        );
        assert_eq!(ta("").await, None, "{backend:?}: rows left behind");
        // Seeding again changes nothing (every start does it).
        let before = templates::all(&app.db).await.unwrap();
        templates::seed(&app.db, &defs, &wabas, 1).await.unwrap();
        assert_eq!(
            templates::all(&app.db).await.unwrap(),
            before,
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn serve_syncs_the_templates_of_every_waba_its_numbers_belong_to() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.whatsapp.waba_id = Some(CLAIMS_WABA.into());
            s.whatsapp.template_sync_secs = 1;
            s.whatsapp.numbers = vec![
                // No waba_id of its own: the deployment's.
                line(CLAIMS, None, None, &[]),
                line(SALES, Some(SALES_WABA), None, &[]),
            ];
        })
        .await;
        // Paused in the sales WABA only; the next sync of each WABA sees its own list.
        app.fake
            .set_waba_templates(SALES_WABA, list_with("policy_summary", "PAUSED"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sales = templates::lookup(&app.db, SALES_WABA, "policy_summary", "ta")
                .await
                .unwrap()
                .unwrap();
            if sales.status == "PAUSED" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{backend:?}: still {}",
                sales.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let claims = templates::lookup(&app.db, CLAIMS_WABA, "policy_summary", "ta")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claims.status, "APPROVED", "{backend:?}");
        let read = app.fake.template_lists_read();
        for waba in [CLAIMS_WABA, SALES_WABA] {
            assert!(
                read.iter().any(|w| w == waba),
                "{backend:?}: {waba} not read: {read:?}"
            );
        }
        // Each WABA read once per round, never a WABA no number belongs to.
        assert!(
            read.iter().all(|w| w == CLAIMS_WABA || w == SALES_WABA),
            "{read:?}"
        );
    }
}

/// The first send to `phone` whose text contains `says`; panics after 20 s.
async fn wait_for_send_to(app: &TestApp, phone: &str, says: &str) -> ReceivedRequest {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(send) = app
            .sent_messages()
            .into_iter()
            .find(|s| recipient_of(s) == phone && shown(s).contains(says))
        {
            return send;
        }
        assert!(
            Instant::now() < deadline,
            "no send to {phone} says {says:?}: {:?}",
            app.sent_messages().iter().map(shown).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_new_contact_starts_in_the_language_of_the_number_it_writes_to() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.dialogue.handler = DialogueMode::Flows;
            s.whatsapp.numbers = vec![
                line(CLAIMS, None, Some("ta"), &[]),
                line(SALES, None, None, &[]),
            ];
        })
        .await;
        write_to(&app, CLAIMS, "919800002301", "hello").await;
        let sent = app.wait_for_sends(1).await;
        assert_eq!(sent[0].phone_number_id, CLAIMS);
        assert!(
            shown(&sent[0]).contains("வணக்கம்"),
            "{backend:?}: not Tamil: {}",
            shown(&sent[0])
        );
        write_to(&app, SALES, "919800002302", "hello").await;
        let sent = app.wait_for_sends(2).await;
        assert_eq!(sent[1].phone_number_id, SALES);
        assert!(
            shown(&sent[1]).contains("Welcome"),
            "{backend:?}: not English: {}",
            shown(&sent[1])
        );
        // Someone already in a conversation keeps its language on the Tamil line.
        write_to(&app, CLAIMS, "919800002302", "menu").await;
        let sent = app.wait_for_sends(3).await;
        assert_eq!(sent[2].phone_number_id, CLAIMS);
        assert!(
            shown(&sent[2]).contains("Welcome"),
            "{backend:?}: {}",
            shown(&sent[2])
        );
        // A language the person chooses on the Tamil line is theirs from then on.
        write_to(&app, CLAIMS, "919800002301", "language").await;
        app.wait_for_sends(4).await;
        let tap = json!({ "from": "919800002301", "id": new_wamid(),
            "timestamp": now_secs().to_string(), "type": "interactive",
            "interactive": { "type": "button_reply",
                "button_reply": { "id": "lang.en", "title": "English" } } });
        let response = app.post_webhook(&envelope_to(CLAIMS, vec![tap])).await;
        assert_eq!(response.status(), 200);
        let menu = wait_for_send_to(&app, "919800002301", "Welcome").await;
        assert_eq!(menu.phone_number_id, CLAIMS, "{backend:?}");
    }
}

/// Every row title of an interactive list (or button title) in a send.
fn choices(send: &ReceivedRequest) -> Vec<String> {
    let i = &send.body["interactive"];
    let rows = i["action"]["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["rows"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["title"].as_str().map(str::to_owned));
    let buttons = i["action"]["buttons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["reply"]["title"].as_str().map(str::to_owned));
    rows.chain(buttons).collect()
}

#[tokio::test]
async fn a_claims_only_line_refuses_the_policy_keyword_and_offers_only_its_flows() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.dialogue.handler = DialogueMode::Flows;
            s.whatsapp.numbers = vec![
                line(CLAIMS, None, None, &["claim_status", "claim_intimation"]),
                line(SALES, None, None, &[]),
            ];
        })
        .await;
        // The policy keyword on the claims line: not the policy flow (its identity question),
        // the menu, which offers claims and what works everywhere, not policies.
        write_to(&app, CLAIMS, "919800002401", "policy").await;
        let sent = app.wait_for_sends(1).await;
        assert_eq!(sent[0].phone_number_id, CLAIMS);
        assert!(
            !shown(&sent[0]).contains("policy number"),
            "{backend:?}: the policy flow started on the claims line: {}",
            shown(&sent[0])
        );
        let offered = choices(&sent[0]);
        assert!(
            offered.iter().any(|t| t == "Claim status"),
            "{backend:?}: {offered:?}"
        );
        assert!(
            offered
                .iter()
                .any(|t| t == "Talk to an agent" || t.contains("agent")),
            "{backend:?}: {offered:?}"
        );
        assert!(
            !offered.iter().any(|t| t == "Policy details"),
            "{backend:?}: the claims line offers policies: {offered:?}"
        );
        // Its own flow's keyword works.
        write_to(&app, CLAIMS, "919800002402", "claim").await;
        let sent = app.wait_for_sends(2).await;
        assert!(
            shown(&sent[1]).contains("policy number"),
            "{backend:?}: claim status starts with the identity check: {}",
            shown(&sent[1])
        );
        // Tapping a policy row of an older menu is no way in either.
        let tap = json!({ "from": "919800002401", "id": new_wamid(),
            "timestamp": now_secs().to_string(), "type": "interactive",
            "interactive": { "type": "list_reply",
                "list_reply": { "id": "policy", "title": "Policy details" } } });
        let response = app.post_webhook(&envelope_to(CLAIMS, vec![tap])).await;
        assert_eq!(response.status(), 200);
        let sent = app.wait_for_sends(3).await;
        assert!(
            !shown(&sent[2]).contains("policy number"),
            "{backend:?}: {}",
            shown(&sent[2])
        );
        // STOP works on every line.
        write_to(&app, CLAIMS, "919800002403", "STOP").await;
        let sent = app.wait_for_sends(4).await;
        let rows = rows_to(&app, "919800002403").await;
        assert_eq!(rows.len(), 1, "{backend:?}");
        assert!(
            shown(&sent[3]).contains("You will no longer receive messages"),
            "{backend:?}: {}",
            shown(&sent[3])
        );
        // The same keyword on the sales line (every flow): the policy flow.
        write_to(&app, SALES, "919800002404", "policy").await;
        let sent = app.wait_for_sends(5).await;
        assert_eq!(sent[4].phone_number_id, SALES);
        assert!(
            shown(&sent[4]).contains("policy number"),
            "{backend:?}: {}",
            shown(&sent[4])
        );
    }
}

#[tokio::test]
async fn a_numbers_unknown_flow_or_language_stops_the_start_naming_the_entry() {
    let (mut settings, _db) = test_settings_for(&Backend::Sqlite, "http://127.0.0.1:9").await;
    settings.dialogue.handler = DialogueMode::Flows;
    settings.whatsapp.numbers = vec![
        line(CLAIMS, None, None, &[]),
        line(SALES, None, None, &["claim_stats"]),
    ];
    let e = insurebot::app::Application::build(settings.clone())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains(
            r#"whatsapp.numbers[1].flows: no flow "claim_stats" (did you mean "claim_status"?)"#
        ),
        "{e}"
    );
    settings.whatsapp.numbers = vec![line(CLAIMS, None, Some("tamil"), &[])];
    let e = insurebot::app::Application::build(settings)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("whatsapp.numbers[0].default_language") && e.contains("\"tamil\""),
        "{e}"
    );
}

#[tokio::test]
async fn the_chat_writes_to_the_number_it_is_given_else_the_first() {
    // `chat` runs its own sandbox server on a throw-away SQLite file: one backend.
    let mut settings =
        insurebot::config::Settings::from_sources(None, &Default::default()).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    settings.dialogue.flows_dir = root.join("flows");
    settings.dialogue.locales_dir = root.join("locales");
    settings.whatsapp.numbers = vec![
        line(CLAIMS, None, None, &[]),
        line(SALES, None, Some("ta"), &[]),
    ];
    let mut out: Vec<u8> = Vec::new();
    insurebot::chat::run_with(
        settings.clone(),
        "919800002501",
        Some(SALES),
        "hello\n".as_bytes(),
        &mut out,
    )
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(&format!("writing to {SALES}")), "{text}");
    assert!(text.contains("வணக்கம்"), "the sales line's Tamil: {text}");

    let mut out: Vec<u8> = Vec::new();
    insurebot::chat::run_with(
        settings.clone(),
        "919800002502",
        None,
        "hello\n".as_bytes(),
        &mut out,
    )
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(&format!("writing to {CLAIMS}")), "{text}");
    assert!(text.contains("Welcome"), "{text}");

    let mut out: Vec<u8> = Vec::new();
    let e = insurebot::chat::run_with(
        settings,
        "919800002503",
        Some("106540352249999"),
        "hello\n".as_bytes(),
        &mut out,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("--number 106540352249999 is not one of the configured numbers"),
        "{e}"
    );
}

#[tokio::test]
async fn the_console_offers_only_templates_approved_in_the_waba_of_the_number_written_to() {
    use insurebot::http::console::auth::Role;
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.dialogue.handler = DialogueMode::Flows;
            two_lines(s);
        })
        .await;
        // Paused in the sales WABA, approved in the claims one (through the real sync).
        app.fake
            .set_waba_templates(SALES_WABA, list_with("claim_status_update", "PAUSED"));
        sync_both_wabas(&app).await;
        // Both ask for a person; the agent takes both.
        write_to(&app, CLAIMS, "919800002601", "agent").await;
        write_to(&app, SALES, "919800002602", "agent").await;
        crate::console::add_agent(&app, "asha@example.com", Role::Agent).await;
        let agent = crate::console::login(&app, "asha@example.com").await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let waiting = loop {
            let waiting = insurebot::store::entities::handoff::Entity::find()
                .all(&app.db)
                .await
                .unwrap();
            if waiting.len() == 2 {
                break waiting;
            }
            assert!(Instant::now() < deadline, "{backend:?}: {waiting:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for h in &waiting {
            assert!(agent.take(h.id).await.status().is_redirection());
        }
        let contact_of = |phone: &'static str| {
            let db = app.db.clone();
            async move {
                insurebot::store::entities::contact::Entity::find()
                    .all(&db)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|c| c.wa_id.as_deref() == Some(phone))
                    .unwrap()
                    .id
            }
        };
        let (on_claims, on_sales) = (
            contact_of("919800002601").await,
            contact_of("919800002602").await,
        );
        // Outside the window, where only templates can go.
        for id in [on_claims, on_sales] {
            insurebot::http::console::pages::move_window_back(&app.db, id, 25)
                .await
                .unwrap();
        }
        let page = |id: i64| {
            let agent = &agent;
            async move {
                agent
                    .get(&format!("/console/conversations/{id}"))
                    .await
                    .text()
                    .await
                    .unwrap()
            }
        };
        let choice = "value=\"claim_status_update|en\"";
        let claims_page = page(on_claims).await;
        assert!(
            claims_page.contains(choice),
            "{backend:?}: {}",
            &claims_page[claims_page.find("templates").unwrap_or(0)..]
        );
        let sales_page = page(on_sales).await;
        assert!(
            !sales_page.contains(choice),
            "{backend:?}: offered on the sales line"
        );
        assert!(
            sales_page.contains("value=\"policy_summary|en\""),
            "{backend:?}: the sales WABA's approved ones are offered"
        );
        let send = |id: i64| {
            let agent = &agent;
            async move {
                agent
                    .post(
                        &format!("/console/conversations/{id}/template"),
                        &[
                            ("csrf", &agent.csrf),
                            ("template", "claim_status_update|en"),
                            ("param", "CLM-123456"),
                            ("param", "Under review"),
                        ],
                    )
                    .await
                    .status()
            }
        };
        assert_eq!(send(on_sales).await.as_u16(), 409, "{backend:?}");
        let before = app.sent_messages().len();
        assert!(send(on_claims).await.is_redirection(), "{backend:?}");
        let sent = app.wait_for_sends(before + 1).await;
        let last = sent.last().unwrap();
        assert_eq!(last.body["template"]["name"], "claim_status_update");
        assert_eq!(last.phone_number_id, CLAIMS, "{backend:?}");
    }
}

/// Both lines in WABAs of their own, each with the registry the file seeds; the
/// authentication template is then paused in the claims WABA (the first number's) only.
async fn spawn_with_otp_only_on_sales(backend: &Backend) -> TestApp {
    use insurebot::store::entities::message_template;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, QueryFilter};
    let app = spawn_app_with(backend, |s| {
        crate::consent::configure(s);
        s.dialogue.handler = DialogueMode::Flows;
        two_lines(s);
    })
    .await;
    let paused = message_template::Entity::update_many()
        .col_expr(message_template::Column::Status, Expr::value("PAUSED"))
        .filter(message_template::Column::WabaId.eq(CLAIMS_WABA))
        .filter(message_template::Column::Name.eq("otp_code"))
        .exec(&app.db)
        .await
        .unwrap();
    assert_eq!(paused.rows_affected, 3, "otp_code in en, hi and ta");
    app
}

/// `POST /api/v1/otp` with `key`: its status and JSON answer.
async fn send_otp(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let response = crate::otp::send_otp(app, Some(key), body).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn an_otp_is_checked_against_the_waba_of_the_number_it_leaves_from() {
    for backend in backends() {
        let app = spawn_with_otp_only_on_sales(&backend).await;
        // A policy of the sales line: naming no number, its code leaves from that line, so
        // the template is checked in the sales WABA, where it is approved.
        crate::windows::import_policies(
            &app.db,
            &format!(
                "H-2026/000501,C9501,Asha Rao,1980-01-01,919800002301,health,Floater,active,500000,2026-01-01,2027-01-01,{SALES}\n"
            ),
        )
        .await
        .unwrap();
        let (code, v) = send_otp(
            &app,
            "otp-line-1",
            &json!({ "policy_number": "H-2026/000501", "purpose": "login", "language": "en" }),
        )
        .await;
        assert_eq!(code, 202, "{backend:?}: {v}");
        let sent = app.wait_for_sends(1).await;
        assert_eq!(sent[0].body["template"]["name"], "otp_code");
        assert_eq!(sent[0].phone_number_id, SALES, "{backend:?}");

        // A bare phone number with no number named leaves from the first line, whose WABA
        // has the template paused: refused, saying so, and nothing goes out.
        let (code, v) = send_otp(
            &app,
            "otp-line-2",
            &json!({ "phone": "919800002302", "purpose": "login", "language": "en" }),
        )
        .await;
        assert_eq!(code, 422, "{backend:?}: {v}");
        assert_eq!(v["problems"][0]["field"], "language", "{backend:?}: {v}");
        assert!(
            v["problems"][0]["problem"]
                .as_str()
                .is_some_and(|p| p.contains("is PAUSED")),
            "{backend:?}: {v}"
        );
        app.assert_no_more_sends(1).await;
    }
}

#[tokio::test]
async fn a_code_asked_for_in_a_chat_on_the_sales_line_is_checked_in_the_sales_waba() {
    const OWNER: &str = "919812345678"; // the sample data's Rajesh, registered on H-2023/100245
    const STRANGER: &str = "919800002311";
    for backend in backends() {
        let app = spawn_with_otp_only_on_sales(&backend).await;
        insurebot::insurer::load_sample_if_empty(&app.db)
            .await
            .unwrap();
        let say = |message: Value, sends: usize| {
            let app = &app;
            async move {
                let before = app.sent_messages().len();
                let response = app.post_webhook(&envelope_to(SALES, vec![message])).await;
                assert_eq!(response.status(), 200);
                app.wait_for_sends(before + sends).await[before..].to_vec()
            }
        };
        say(typed(STRANGER, "policy"), 1).await;
        let dob = say(typed(STRANGER, "H-2023/100245"), 1).await;
        let buttons = &dob[0].body["interactive"]["action"]["buttons"];
        assert_eq!(buttons[0]["reply"]["id"], "identity.otp", "{}", dob[0].body);
        let tap = tapped(STRANGER, "identity.otp");
        // The notice and the code to the owner, the reply to the stranger: all from the line
        // the stranger wrote to, the code with the template its WABA approved.
        let sent = say(tap, 3).await;
        let code = sent
            .iter()
            .find(|r| r.body["template"]["name"] == "otp_code")
            .unwrap_or_else(|| panic!("{backend:?}: no code sent: {sent:#?}"));
        assert_eq!(recipient_of(code), OWNER);
        assert!(
            sent.iter().all(|r| r.phone_number_id == SALES),
            "{backend:?}: {sent:#?}"
        );
    }
}
