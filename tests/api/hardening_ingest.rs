//! Issue 16, items 8-10: what hostile or odd envelopes did to the ingest. Any envelope Meta may
//! send is stored (5,000 senders at once, in parts, while other webhooks keep being answered);
//! bad content is stored as far as it can be and the one unstorable item refused (200 for the
//! rest, never 503); Meta's timestamps never open or hold the 24-hour window beyond the
//! receive time. Every test runs on SQLite and PostgreSQL.

use insurebot::store::now_ms;
use std::collections::HashMap;

use insurebot::messaging::composer::{self, Intent, Purpose, Queued, TemplateChoice};
use insurebot::store::entities::outbox::State as OutboxState;
use insurebot::store::entities::{contact, inbound_message, message_status, outbox};
use insurebot::whatsapp::outbound::OutboundBody;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::*;

const HOUR_MS: i64 = 3_600_000;

/// `n` messages, each from its own sender (`phone(i)`), the i-th dated `ts + i % 60`.
fn many_senders(n: usize, ts: i64, tag: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            text_message(
                &phone(i),
                &format!("wamid.{tag}.{i}"),
                ts + (i % 60) as i64,
                "hi",
            )
        })
        .collect()
}

fn phone(i: usize) -> String {
    format!("9197{i:08}")
}

async fn contacts_by_phone(app: &TestApp) -> HashMap<String, contact::Model> {
    contact::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| Some((c.wa_id.clone()?, c)))
        .collect()
}

/// The value of one sample of the Prometheus text at /metrics (0 when absent).
async fn metric(app: &TestApp, sample: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_envelope_from_5000_senders_is_stored_whole_while_other_webhooks_are_answered() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ts = now_secs() - 120;
        let big = envelope(many_senders(5000, ts, "BIG"));
        // Single webhooks sent while the big one is being stored: each answered and stored
        // (how fast is measured by `cargo bench --bench load`, LOAD_ENVELOPE=5000).
        let singles = async {
            let mut statuses = Vec::new();
            for i in 0..10 {
                let body = envelope(vec![text_message(
                    &format!("9196{i:08}"),
                    &format!("wamid.SINGLE.{i}"),
                    ts,
                    "hello",
                )]);
                statuses.push(app.post_webhook(&body).await.status().as_u16());
            }
            statuses
        };
        let (big_response, single_statuses) = tokio::join!(app.post_webhook(&big), singles);
        assert_eq!(big_response.status(), 200);
        let report: Value = big_response.json().await.unwrap();
        assert_eq!(report["new_messages"], 5000, "{report}");
        assert_eq!(single_statuses, vec![200; 10]);
        let stored = inbound_message::Entity::find()
            .count(&app.db)
            .await
            .unwrap();
        assert_eq!(stored, 5010);

        // Every sender's window starts at its message; the same 5,000 senders write again
        // (all known now), ten seconds later: every window moves forward.
        let contacts = contacts_by_phone(&app).await;
        for i in 0..5000 {
            let c = &contacts[&phone(i)];
            assert_eq!(
                c.last_inbound_at,
                Some((ts + (i % 60) as i64) * 1000),
                "{c:?}"
            );
            assert_eq!(c.profile_name.as_deref(), Some("Test Person"));
        }
        let again = envelope(many_senders(5000, ts + 10, "AGAIN"));
        let response = app.post_webhook(&again).await;
        assert_eq!(response.status(), 200);
        let report: Value = response.json().await.unwrap();
        assert_eq!(report["new_messages"], 5000, "{report}");
        let contacts = contacts_by_phone(&app).await;
        assert_eq!(contacts.len(), 5010, "no sender created twice");
        for i in 0..5000 {
            let c = &contacts[&phone(i)];
            assert_eq!(c.last_inbound_at, Some((ts + 10 + (i % 60) as i64) * 1000));
        }
        // A redelivery of the whole envelope changes nothing.
        let response = app.post_webhook(&again).await;
        assert_eq!(response.status(), 200);
        let report: Value = response.json().await.unwrap();
        assert_eq!(
            (
                report["new_messages"].as_u64(),
                report["duplicate_messages"].as_u64()
            ),
            (Some(0), Some(5000))
        );
        assert_eq!(
            inbound_message::Entity::find()
                .count(&app.db)
                .await
                .unwrap(),
            10_010
        );
    }
}

#[tokio::test]
async fn one_transaction_of_5000_known_senders_stays_within_both_backends_limits() {
    // The ingest itself, without the queue that splits envelopes: its statements are chunked.
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let hasher = insurebot::consent::AddressHasher::new(secrecy::SecretString::from(HASH_KEY));
        let ts = now_secs() - 120;
        for (round, tag) in ["ONE", "TWO"].into_iter().enumerate() {
            let body = envelope(many_senders(5000, ts + round as i64, tag));
            let events = insurebot::whatsapp::inbound::parse_webhook(body.as_bytes()).unwrap();
            let report = insurebot::ingest::store::ingest(&app.db, &events, &hasher, now_ms())
                .await
                .unwrap();
            assert_eq!(report.new_messages, 5000);
        }
        let contacts = contacts_by_phone(&app).await;
        assert_eq!(contacts.len(), 5000);
        for i in 0..5000 {
            let expected = (ts + 1 + (i % 60) as i64) * 1000;
            assert_eq!(contacts[&phone(i)].last_inbound_at, Some(expected));
        }
    }
}

#[tokio::test]
async fn nul_characters_are_replaced_by_u_fffd_on_both_backends_and_the_rest_is_stored() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ts = now_secs();
        let wamid = new_wamid();
        let mut body: Value = serde_json::from_str(&envelope(vec![text_message(
            "919800160001",
            &wamid,
            ts,
            "before\u{0}after",
        )]))
        .unwrap();
        let value = &mut body["entry"][0]["changes"][0]["value"];
        value["contacts"][0]["profile"]["name"] = json!("Ra\u{0}vi");
        value["statuses"] = json!([{
            "id": "wamid.OUT\u{0}1", "status": "failed", "timestamp": ts.to_string(),
            "recipient_id": "919800160001",
            "errors": [{ "code": 131026, "title": "Message\u{0}undeliverable",
                         "error_data": { "details": "de\u{0}tails" } }]
        }]);
        let response = app.post_webhook(&body.to_string()).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

        let c = contacts_by_phone(&app)
            .await
            .remove("919800160001")
            .unwrap();
        assert_eq!(c.profile_name.as_deref(), Some("Ra\u{FFFD}vi"));
        let m = inbound_message::Entity::find()
            .filter(inbound_message::Column::Wamid.eq(wamid))
            .one(&app.db)
            .await
            .unwrap()
            .expect("the message is stored");
        let content: Value = serde_json::from_str(m.content.as_deref().unwrap()).unwrap();
        assert_eq!(content["body"], "before\u{FFFD}after");
        assert!(!m.raw.as_deref().unwrap().contains("\\u0000"));
        let s = message_status::Entity::find_by_id("wamid.OUT\u{FFFD}1".to_owned())
            .one(&app.db)
            .await
            .unwrap()
            .expect("the status is stored");
        assert_eq!(
            s.error_title.as_deref(),
            Some("Message\u{FFFD}undeliverable")
        );
        assert_eq!(s.error_details.as_deref(), Some("de\u{FFFD}tails"));
        assert_eq!(
            metric(
                &app,
                "insurebot_webhook_values_replaced_total{reason=\"nul_character\"}"
            )
            .await,
            5.0,
            "name, body (and raw), status id, title, details"
        );
    }
}

#[tokio::test]
async fn an_id_too_long_to_store_refuses_only_its_item_and_the_envelope_is_acknowledged() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ts = now_secs();
        let long = format!("wamid.{}", "A".repeat(3000));
        let (good, good_status) = (new_wamid(), new_wamid());
        let long_sender = "9".repeat(3000);
        let mut body: Value = serde_json::from_str(&envelope(vec![
            text_message("919800160002", &long, ts, "long id"),
            text_message("919800160002", &good, ts, "fine"),
            text_message(&long_sender, &new_wamid(), ts, "long sender"),
        ]))
        .unwrap();
        body["entry"][0]["changes"][0]["value"]["statuses"] = json!([
            status(&long, "delivered", ts),
            status(&good_status, "delivered", ts),
        ]);
        let response = app.post_webhook(&body.to_string()).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let report: Value = response.json().await.unwrap();
        assert_eq!(report["new_messages"], 1, "{report}");
        assert_eq!(report["statuses_applied"], 1, "{report}");

        let stored: Vec<String> = inbound_message::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.wamid)
            .collect();
        assert_eq!(stored, vec![good]);
        assert!(
            message_status::Entity::find_by_id(good_status)
                .one(&app.db)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            message_status::Entity::find().count(&app.db).await.unwrap(),
            1
        );
        let contacts = contacts_by_phone(&app).await;
        assert_eq!(contacts.len(), 1, "no contact for the long sender");
        for (reason, n) in [
            ("message_id_too_long", 1.0),
            ("status_id_too_long", 1.0),
            ("sender_id_too_long", 2.0),
        ] {
            let sample = format!("insurebot_webhook_items_refused_total{{reason=\"{reason}\"}}");
            assert_eq!(metric(&app, &sample).await, n, "{sample}");
        }
        // The same envelope again: still 200 (Meta stops retrying), nothing new.
        let response = app.post_webhook(&body.to_string()).await;
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn a_nul_character_in_a_consent_proof_is_a_422_naming_the_field() {
    for backend in backends() {
        let app = spawn_app_with(&backend, crate::consent::configure).await;
        for (field, proof) in [
            (
                "proof.text",
                json!({ "text": "I agree\u{0}", "collected_at": now_ms() - 1000 }),
            ),
            (
                "proof.detail",
                json!({ "text": "I agree", "collected_at": now_ms() - 1000,
                        "detail": "web\u{0}form" }),
            ),
        ] {
            let r = app
                .http
                .post(format!("{}/api/v1/consent", app.address))
                .bearer_auth(crate::consent::API_TOKEN)
                .json(&json!({ "phone": "919800160003", "change": "opt_in",
                               "scope": "marketing", "proof": proof }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 422, "{field}");
            let body: Value = r.json().await.unwrap();
            let problems = body["problems"].as_array().unwrap();
            assert!(
                problems
                    .iter()
                    .any(|p| p["field"] == field && p["problem"].as_str().unwrap().contains("NUL")),
                "{field}: {body}"
            );
        }
    }
}

/// Lets `hours` pass for a contact's window: its start moves that far back, as the clock
/// moving forward would leave it.
async fn let_hours_pass(app: &TestApp, contact_id: i64, hours: i64) {
    contact::Entity::update_many()
        .col_expr(
            contact::Column::LastInboundAt,
            Expr::col(contact::Column::LastInboundAt).sub(hours * HOUR_MS),
        )
        .filter(contact::Column::Id.eq(contact_id))
        .exec(&app.db)
        .await
        .unwrap();
    // The window is kept per business number as well.
    use insurebot::store::entities::contact_window;
    contact_window::Entity::update_many()
        .col_expr(
            contact_window::Column::LastInboundAt,
            Expr::col(contact_window::Column::LastInboundAt).sub(hours * HOUR_MS),
        )
        .filter(contact_window::Column::ContactId.eq(contact_id))
        .exec(&app.db)
        .await
        .unwrap();
}

/// A claim update with both a free-form text and its template, as the API would queue it.
fn claim_update(contact_id: i64) -> Intent {
    Intent {
        contact_id,
        in_reply_to: None,
        purpose: Purpose::Notification {
            kind: "claim_update".into(),
            essential: true,
        },
        free_form: Some(OutboundBody::Text {
            body: "Your claim was approved".into(),
            preview_url: false,
        }),
        template: Some(TemplateChoice {
            name: "claim_status_update".into(),
            language: "en".into(),
            params: vec!["CLM-123456".into(), "Approved".into()],
        }),
    }
}

async fn settled(app: &TestApp, id: i64) -> outbox::Model {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = outbox::Entity::find_by_id(id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        if r.state != OutboxState::Queued {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never settled: {r:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_message_dated_in_the_year_3000_does_not_hold_the_window_open() {
    // 3000-01-01T00:00:00Z.
    const YEAR_3000: i64 = 32_503_680_000;
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let before = now_ms();
        let response = app
            .post_webhook(&envelope(vec![text_message(
                "919800160004",
                &new_wamid(),
                YEAR_3000,
                "from the future",
            )]))
            .await;
        assert_eq!(response.status(), 200);
        let after = now_ms();
        let c = contacts_by_phone(&app)
            .await
            .remove("919800160004")
            .unwrap();
        let start = c.last_inbound_at.expect("the message opened the window");
        assert!(
            (before..=after).contains(&start),
            "window start {start} is not the receive time ({before}..{after})"
        );
        let m = inbound_message::Entity::find()
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert!((before..=after).contains(&m.sent_at), "{m:?}");
        // The echo reply goes free-form, inside the window.
        let sent = app.wait_for_sends(1).await;
        assert_eq!(sent[0].body["type"], "text");
        assert_eq!(
            metric(
                &app,
                "insurebot_webhook_values_replaced_total{reason=\"time_ahead\"}"
            )
            .await,
            1.0
        );

        // 25 hours later the window has closed: the reply needs its template.
        let_hours_pass(&app, c.id, 25).await;
        let composer = crate::consent::composer_for(&app);
        let queued = composer::queue(&app.db, &composer, claim_update(c.id))
            .await
            .unwrap();
        let Queued::Row(id) = queued else {
            panic!("{queued:?}")
        };
        let row = settled(&app, id).await;
        assert_eq!(row.sent_as.as_deref(), Some("template"), "{row:#?}");
    }
}

#[tokio::test]
async fn timestamps_of_zero_negative_or_10_to_the_16_use_the_receive_time_and_nothing_crashes() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let cases: [(&str, Value, &str); 4] = [
            ("919800160010", json!("0"), "time_not_positive"),
            ("919800160011", json!(-5), "time_not_positive"),
            (
                "919800160012",
                json!("10000000000000000"),
                "time_out_of_range",
            ),
            ("919800160013", json!(1e20), "time_out_of_range"),
        ];
        for (phone, timestamp, _) in &cases {
            let mut message = text_message(phone, &new_wamid(), 0, "odd clock");
            message["timestamp"] = timestamp.clone();
            let before = now_ms();
            let response = app.post_webhook(&envelope(vec![message])).await;
            assert_eq!(response.status(), 200, "timestamp {timestamp}");
            let report: Value = response.json().await.unwrap();
            assert_eq!(report["new_messages"], 1, "timestamp {timestamp}: {report}");
            let after = now_ms();
            let c = contacts_by_phone(&app).await.remove(*phone).unwrap();
            let start = c.last_inbound_at.unwrap();
            assert!(
                (before..=after).contains(&start),
                "timestamp {timestamp}: window start {start}"
            );
        }
        // A status and a marketing notice with the same clocks are stored too.
        let wamid = new_wamid();
        let mut st = status(&wamid, "read", 0);
        st["timestamp"] = json!("10000000000000000");
        assert_eq!(
            app.post_webhook(&status_envelope(vec![st])).await.status(),
            200
        );
        let s = message_status::Entity::find_by_id(wamid)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert!(s.status_at > 0 && s.status_at <= now_ms(), "{s:?}");
        // And the ingest still works afterwards.
        let response = app
            .post_webhook(&envelope(vec![text_message(
                "919800160014",
                &new_wamid(),
                now_secs(),
                "normal",
            )]))
            .await;
        assert_eq!(response.status(), 200);
        for (reason, n) in [("time_not_positive", 2.0), ("time_out_of_range", 3.0)] {
            let sample = format!("insurebot_webhook_values_replaced_total{{reason=\"{reason}\"}}");
            assert_eq!(metric(&app, &sample).await, n, "{sample}");
        }
    }
}
