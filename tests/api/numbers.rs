//! Several business numbers in one deployment (issue 20 item 3): a reply leaves from the number
//! the policyholder wrote to, each number keeps its own rate, a message to a number this
//! deployment does not serve is refused (acknowledged, counted), and a wrong list of numbers
//! stops the start naming the field.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use insurebot::config::Settings;
use insurebot::config::numbers::NumberSettings;
use insurebot::whatsapp::fake::{ReceivedRequest, RequestKind};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::helpers::*;

/// The claims line (also the helpers' own number) and the sales line.
pub(crate) const CLAIMS: &str = PHONE_NUMBER_ID;
pub(crate) const SALES: &str = "106540352240002";

pub(crate) fn number(id: &str, rate: Option<u32>) -> NumberSettings {
    NumberSettings {
        phone_number_id: id.to_owned(),
        display_number: None,
        rate_per_second: rate,
        waba_id: None,
        default_language: None,
        flows: None,
    }
}

async fn write_to(app: &TestApp, to: &str, from: &str, body: &str) {
    let message = text_message(from, &new_wamid(), now_secs(), body);
    let response = app.post_webhook(&envelope_to(to, vec![message])).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// The sends once the fake has at least `n`; panics after `within`.
async fn wait_for_sends_within(app: &TestApp, n: usize, within: Duration) -> Vec<ReceivedRequest> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let sent = app.sent_messages();
        if sent.len() >= n {
            return sent;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} sends, the fake got {}",
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The most of `at` in any one-second window.
fn most_in_any_second(at: &[DateTime<Utc>]) -> usize {
    at.iter()
        .map(|t| {
            at.iter()
                .filter(|u| **u >= *t && **u < *t + chrono::Duration::seconds(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn each_conversation_is_answered_only_from_the_number_it_wrote_to() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.whatsapp.numbers = vec![number(CLAIMS, None), number(SALES, None)];
        })
        .await;
        // Interleaved, two contacts per line, two messages each: eight echoes.
        for round in 0..2 {
            write_to(&app, CLAIMS, "919800001001", &format!("claims a {round}")).await;
            write_to(&app, SALES, "919800001002", &format!("sales a {round}")).await;
            write_to(&app, CLAIMS, "919800001003", &format!("claims b {round}")).await;
            write_to(&app, SALES, "919800001004", &format!("sales b {round}")).await;
        }
        let sent = app.wait_for_sends(8).await;
        app.assert_no_more_sends(8).await;
        for send in &sent {
            let line = match recipient_of(send).as_str() {
                "919800001001" | "919800001003" => CLAIMS,
                "919800001002" | "919800001004" => SALES,
                other => panic!("a send to {other}"),
            };
            assert_eq!(
                send.phone_number_id,
                line,
                "{backend:?}: the reply {:?} left from the other number",
                text_of(send)
            );
            assert!(
                text_of(send).contains(if line == CLAIMS { "claims" } else { "sales" }),
                "{backend:?}: {}",
                text_of(send)
            );
        }
        assert_eq!(
            sent.iter().filter(|s| s.phone_number_id == SALES).count(),
            4,
            "{backend:?}"
        );
        // Read receipts go to the number the message came to as well.
        let reads: Vec<ReceivedRequest> = app
            .fake
            .received()
            .into_iter()
            .filter(|r| r.kind == RequestKind::MarkRead)
            .collect();
        assert_eq!(reads.len(), 8, "{backend:?}");
        // The stored rows say where each went (the console and the API read them).
        let rows = insurebot::store::entities::outbox::Entity::find()
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 8);
        assert_eq!(
            rows.iter()
                .filter(|r| r.phone_number_id.as_deref() == Some(SALES))
                .count(),
            4,
            "{backend:?}"
        );
        for read in reads {
            let wamid = read.body["message_id"].as_str().unwrap().to_owned();
            let inbound = insurebot::store::entities::inbound_message::Entity::find()
                .all(&app.db)
                .await
                .unwrap()
                .into_iter()
                .find(|m| m.wamid == wamid)
                .expect("a read receipt names a stored message");
            assert_eq!(
                Some(read.phone_number_id.as_str()),
                inbound.phone_number_id.as_deref(),
                "{backend:?}: a read receipt on the other number"
            );
        }
    }
}

#[tokio::test]
async fn a_message_to_a_number_not_configured_is_acknowledged_not_answered_and_counted() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.whatsapp.numbers = vec![number(CLAIMS, None), number(SALES, None)];
        })
        .await;
        let message = text_message("919800001101", &new_wamid(), now_secs(), "hello");
        let response = app
            .post_webhook(&envelope_to("106540352249999", vec![message]))
            .await;
        // Acknowledged: Meta must not deliver it again and again.
        assert_eq!(response.status(), 200);
        let report: Value = response.json().await.unwrap();
        assert_eq!(report["new_messages"], 0, "{backend:?}: {report}");
        let stored = insurebot::store::entities::inbound_message::Entity::find()
            .count(&app.db)
            .await
            .unwrap();
        assert_eq!(stored, 0, "{backend:?}");
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("insurebot_webhook_items_refused_total{reason=\"unknown_number\"} 1"),
            "{backend:?}: {metrics}"
        );
        // A configured number in the same deployment still answers.
        write_to(&app, SALES, "919800001101", "hello").await;
        let sent = app.wait_for_sends(1).await;
        assert_eq!(sent[0].phone_number_id, SALES);
        app.assert_no_more_sends(1).await;
    }
}

#[tokio::test]
async fn each_number_keeps_its_own_rate() {
    // Timing on a shared 2-core machine: a rate low enough that scheduling noise is small.
    const RATE: u32 = 5;
    const EACH: usize = 20;
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.whatsapp.numbers = vec![number(CLAIMS, Some(RATE)), number(SALES, Some(RATE))];
            // The messaging rate is what a number without its own would get: far above.
            s.messaging.rate_per_second = 1_000;
            s.mark_read = false;
        })
        .await;
        let messages_to = |to: &str, base: usize| {
            let messages: Vec<Value> = (0..EACH)
                .map(|i| {
                    text_message(
                        &format!("9198000{:05}", base + i),
                        &new_wamid(),
                        now_secs(),
                        "rate",
                    )
                })
                .collect();
            envelope_to(to, messages)
        };
        let (claims, sales) = (messages_to(CLAIMS, 0), messages_to(SALES, 100));
        let (a, b) = tokio::join!(app.post_webhook(&claims), app.post_webhook(&sales));
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
        let sent = wait_for_sends_within(&app, 2 * EACH, Duration::from_secs(30)).await;
        let at = |line: &str| -> Vec<DateTime<Utc>> {
            let mut at: Vec<DateTime<Utc>> = sent
                .iter()
                .filter(|s| s.phone_number_id == line)
                .map(|s| s.received_at)
                .collect();
            at.sort_unstable();
            at
        };
        let (claims_at, sales_at) = (at(CLAIMS), at(SALES));
        assert_eq!(
            (claims_at.len(), sales_at.len()),
            (EACH, EACH),
            "{backend:?}"
        );
        let (claims_most, sales_most) = (
            most_in_any_second(&claims_at),
            most_in_any_second(&sales_at),
        );
        let mut all: Vec<DateTime<Utc>> = claims_at.iter().chain(&sales_at).copied().collect();
        all.sort_unstable();
        let all_most = most_in_any_second(&all);
        let span =
            |at: &[DateTime<Utc>]| (at[at.len() - 1] - at[0]).num_milliseconds() as f64 / 1000.0;
        eprintln!(
            "{backend:?}: {EACH} per number at {RATE}/s each: claims over {:.2}s (at most {claims_most} in a second), \
             sales over {:.2}s (at most {sales_most}), together at most {all_most} in a second",
            span(&claims_at),
            span(&sales_at),
        );
        // Each number within its own rate (one over for a request held up on its way, as the
        // single-number rate test allows)…
        assert!(
            claims_most <= RATE as usize + 1,
            "{backend:?}: claims {claims_most}"
        );
        assert!(
            sales_most <= RATE as usize + 1,
            "{backend:?}: sales {sales_most}"
        );
        // …and the numbers did not share one budget: together they went faster than one rate.
        assert!(
            all_most > RATE as usize + 1,
            "{backend:?}: together only {all_most} in a second: one budget for both numbers?"
        );
        // Sending at 5/s each, both lines finish in about the same time, not one after the other.
        assert!(
            span(&all) < (2 * EACH) as f64 / f64::from(RATE) * 0.75,
            "{backend:?}: {:.2}s",
            span(&all)
        );
    }
}

fn settings_from(file: &str) -> Result<Settings, String> {
    Settings::from_sources(Some(file), &BTreeMap::new()).map_err(|e| e.to_string())
}

#[test]
fn a_wrong_list_of_numbers_stops_the_start_naming_the_field() {
    let twice = settings_from(
        "[[whatsapp.numbers]]\nphone_number_id = \"111\"\n[[whatsapp.numbers]]\nphone_number_id = \"111\"\n",
    )
    .unwrap_err();
    assert!(
        twice.contains("whatsapp.numbers[1].phone_number_id"),
        "{twice}"
    );
    let rate =
        settings_from("[[whatsapp.numbers]]\nphone_number_id = \"111\"\nrate_per_second = 0\n")
            .unwrap_err();
    assert!(
        rate.contains("whatsapp.numbers[0].rate_per_second"),
        "{rate}"
    );
    let missing = settings_from("[[whatsapp.numbers]]\ndisplay_number = \"+91 1\"\n").unwrap_err();
    assert!(
        missing.contains("missing field `phone_number_id`"),
        "{missing}"
    );
    let unknown =
        settings_from("[[whatsapp.numbers]]\nphone_number_id = \"111\"\nrate = 5\n").unwrap_err();
    assert!(unknown.contains("unknown field `rate`"), "{unknown}");
    // Without a list, the single number is a list of one.
    let one = settings_from("[whatsapp]\nphone_number_id = \"123\"\n").unwrap();
    assert_eq!(one.numbers().len(), 1);
    assert_eq!(one.numbers()[0].phone_number_id, "123");
}

pub(crate) async fn notify(app: &TestApp, key: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}/api/v1/notifications", app.address))
        .bearer_auth(crate::consent::API_TOKEN)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn claim_update(phone: &str, number: Option<&str>) -> Value {
    let mut body = json!({ "kind": "claim_update", "phone": phone,
        "data": { "claim_number": "CLM-000042", "claim_stage": "approved" } });
    if let Some(number) = number {
        body["number"] = json!(number);
    }
    body
}

#[tokio::test]
async fn a_notification_leaves_from_the_number_it_names_else_the_contacts_else_the_first() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            crate::consent::configure(s);
            s.whatsapp.numbers = vec![number(CLAIMS, None), number(SALES, None)];
        })
        .await;
        // The contact writes to the sales line (and is answered there).
        write_to(&app, SALES, "919800001201", "hello").await;
        app.wait_for_sends(1).await;

        // Naming no number: the line the contact wrote to.
        let (status, v) = notify(&app, "n-1", claim_update("919800001201", None)).await;
        assert_eq!(status, 202, "{backend:?}: {v}");
        let sent = app.wait_for_sends(2).await;
        assert_eq!(sent[1].phone_number_id, SALES, "{backend:?}");
        // Naming one: that one, even though the contact wrote to the other.
        let (status, v) = notify(&app, "n-2", claim_update("919800001201", Some(CLAIMS))).await;
        assert_eq!(status, 202, "{backend:?}: {v}");
        let sent = app.wait_for_sends(3).await;
        assert_eq!(sent[2].phone_number_id, CLAIMS, "{backend:?}");
        assert_eq!(recipient_of(&sent[2]), "919800001201");
        let (status, v) = notify(&app, "n-3", claim_update("919800001202", Some(SALES))).await;
        assert_eq!(status, 202, "{backend:?}: {v}");
        let sent = app.wait_for_sends(4).await;
        assert_eq!(sent[3].phone_number_id, SALES, "{backend:?}");
        // A contact who never wrote, naming none: the deployment's first number.
        let (status, v) = notify(&app, "n-4", claim_update("919800001203", None)).await;
        assert_eq!(status, 202, "{backend:?}: {v}");
        let sent = app.wait_for_sends(5).await;
        assert_eq!(sent[4].phone_number_id, CLAIMS, "{backend:?}");
        // A number this deployment does not serve: refused, naming the field; nothing queued.
        let (status, v) = notify(
            &app,
            "n-5",
            claim_update("919800001203", Some("106540352249999")),
        )
        .await;
        assert_eq!(status, 422, "{backend:?}: {v}");
        let problems = crate::notifications::problems(&v);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("number: '106540352249999' is not one of")),
            "{backend:?}: {problems:?}"
        );
        app.assert_no_more_sends(5).await;
    }
}

async fn create_campaign(app: &TestApp, number: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/api/v1/campaigns", app.address))
        .bearer_auth(crate::consent::API_TOKEN)
        .json(&json!({
            "name": "renewal offer", "template": "policy_offer", "language": "en",
            "rate_per_second": 20, "number": number,
            "audience": { "kind": "csv",
                "csv": "phone,customer_name,offer\n919800001301,A,Offer A\n919800001302,B,Offer B\n" }
        }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_campaign_leaves_from_the_number_it_names() {
    use insurebot::reminders::campaigns;
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            crate::consent::configure(s);
            s.reminders.quiet_start = "00:00".into();
            s.reminders.quiet_end = "00:00".into();
            s.whatsapp.numbers = vec![number(CLAIMS, None), number(SALES, None)];
        })
        .await;
        let refused = create_campaign(&app, "106540352249999").await;
        assert_eq!(refused.status().as_u16(), 422, "{backend:?}");
        let body: Value = refused.json().await.unwrap();
        assert!(
            crate::notifications::problems(&body)
                .iter()
                .any(|p| p.starts_with("number: ")),
            "{backend:?}: {body}"
        );

        let created = create_campaign(&app, SALES).await;
        assert_eq!(created.status().as_u16(), 201, "{backend:?}");
        let id = created.json::<Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();
        crate::reminders::opt_in_recipients(&app.db, id).await;
        campaigns::start(&app.db, id, chrono::Utc::now())
            .await
            .unwrap();
        let sent = app.wait_for_sends(2).await;
        for send in &sent {
            assert_eq!(send.body["template"]["name"], "policy_offer");
            assert_eq!(send.phone_number_id, SALES, "{backend:?}");
        }
        app.assert_no_more_sends(2).await;
    }
}

#[tokio::test]
async fn the_console_shows_the_number_each_conversation_is_on() {
    use insurebot::store::entities::handoff;
    use sea_orm::{ColumnTrait, QueryFilter};
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.dialogue.handler = insurebot::config::DialogueMode::Flows;
            let mut sales = number(SALES, None);
            sales.display_number = Some("+91 22 5555 0202".into());
            s.whatsapp.numbers = vec![number(CLAIMS, None), sales];
        })
        .await;
        crate::console::add_agent(
            &app,
            "asha@example.com",
            insurebot::http::console::auth::Role::Agent,
        )
        .await;
        // One policyholder asks for an agent on each line.
        write_to(&app, SALES, "919800001401", "agent").await;
        write_to(&app, CLAIMS, "919800001402", "agent").await;
        let mut waiting = Vec::new();
        for _ in 0..300 {
            waiting = handoff::Entity::find()
                .filter(handoff::Column::State.eq("waiting"))
                .all(&app.db)
                .await
                .unwrap();
            if waiting.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(waiting.len(), 2, "{backend:?}: two hand-offs");
        let agent = crate::console::login(&app, "asha@example.com").await;
        let queue = agent.get("/console/queue").await.text().await.unwrap();
        assert!(queue.contains("<th scope=\"col\">Line</th>"), "{backend:?}");
        assert!(
            queue.contains("<td class=\"line\">+91 22 5555 0202</td>"),
            "{backend:?}: {queue}"
        );
        // A number without a display number is shown by its id.
        assert!(
            queue.contains(&format!("<td class=\"line\">{CLAIMS}</td>")),
            "{backend:?}: {queue}"
        );
        for h in waiting {
            let page = agent
                .get(&format!("/console/conversations/{}", h.contact_id))
                .await
                .text()
                .await
                .unwrap();
            let contact = insurebot::store::entities::contact::Entity::find_by_id(h.contact_id)
                .one(&app.db)
                .await
                .unwrap()
                .unwrap();
            let line = if contact.wa_id.as_deref() == Some("919800001401") {
                "+91 22 5555 0202"
            } else {
                CLAIMS
            };
            assert!(
                page.contains(&format!("Wrote to <strong>{line}</strong>")),
                "{backend:?}: {page}"
            );
        }
    }
}
