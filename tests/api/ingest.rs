//! Durable, idempotent ingest: every message type, redelivery (also concurrent), batches,
//! statuses out of order, and the 24-hour window start.

use std::collections::BTreeSet;

use insurebot::store::entities::{contact, inbound_message, message_status};
use insurebot::whatsapp::inbound::parse_webhook;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::helpers::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhooks");

fn fixtures() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = std::fs::read_dir(FIXTURES)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn every_fixture_is_accepted_stored_once_and_answered_once() {
    // The fixtures were recorded long ago; replies may only go inside the 24-hour window,
    // so the messages are re-dated to now (an old message's reply is recorded as skipped
    // with window_closed_no_template, which tests/api/outbound.rs covers).
    let recent = regex::Regex::new(r#""timestamp":(\s*)"\d+""#).unwrap();
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let mut expected_messages = 0;
        for (name, body) in fixtures() {
            // Shifted by a fixed offset, so their order is kept.
            let shift = now_secs() - 1_780_001_000;
            let body = recent
                .replace_all(&body, |c: &regex::Captures| {
                    let digits: String = c[0].chars().filter(char::is_ascii_digit).collect();
                    let t: i64 = digits.parse().unwrap();
                    format!(r#""timestamp":{}"{}""#, &c[1], t + shift)
                })
                .into_owned();
            let response = app.post_webhook(&body).await;
            assert_eq!(
                response.status(),
                200,
                "{name}: {}",
                response.text().await.unwrap()
            );
            expected_messages += parse_webhook(body.as_bytes()).unwrap().messages.len();
        }
        assert!(
            expected_messages >= 20,
            "fixtures should cover many message types"
        );
        app.wait_for_sends(expected_messages).await;
        app.assert_no_more_sends(expected_messages).await;

        let stored = inbound_message::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(stored.len(), expected_messages);
        let types: BTreeSet<&str> = stored.iter().map(|m| m.msg_type.as_str()).collect();
        for expected in [
            "text",
            "image",
            "video",
            "audio",
            "document",
            "sticker",
            "location",
            "contacts",
            "reaction",
            "interactive",
            "button",
            "order",
            "system",
            "unsupported",
            "request_welcome",
        ] {
            assert!(
                types.contains(expected),
                "type {expected} not stored; stored {types:?}"
            );
        }
        // A type WhatsApp invents tomorrow is kept, raw payload and all.
        let unknown = stored
            .iter()
            .find(|m| !KNOWN.contains(&m.msg_type.as_str()))
            .expect("an unknown type was kept");
        assert!(
            unknown
                .raw
                .as_deref()
                .unwrap_or_default()
                .contains(&unknown.msg_type)
        );
    }
}

const KNOWN: [&str; 16] = [
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "interactive",
    "button",
    "order",
    "system",
    "unsupported",
    "unknown",
    "request_welcome",
];

#[tokio::test]
async fn a_redelivered_webhook_changes_nothing_even_when_sent_concurrently() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let body = envelope(vec![text_message(
            "919800000011",
            &new_wamid(),
            now_secs(),
            "once only",
        )]);
        for _ in 0..3 {
            assert_eq!(app.post_webhook(&body).await.status(), 200);
        }
        let concurrent = futures::future::join_all((0..10).map(|_| app.post_webhook(&body))).await;
        assert!(concurrent.iter().all(|r| r.status() == 200));

        let sent = app.wait_for_sends(1).await;
        app.assert_no_more_sends(1).await;
        assert_eq!(text_of(&sent[0]), "echo: once only");
        assert_eq!(
            inbound_message::Entity::find()
                .all(&app.db)
                .await
                .unwrap()
                .len(),
            1
        );
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("insurebot_duplicate_messages_total 12"),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn concurrent_first_messages_from_one_new_contact_create_one_contact() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ts = now_secs();
        let bodies: Vec<String> = (0..8)
            .map(|i| {
                envelope(vec![text_message(
                    "919800000012",
                    &new_wamid(),
                    ts + i,
                    &format!("m{i}"),
                )])
            })
            .collect();
        let responses = futures::future::join_all(bodies.iter().map(|b| app.post_webhook(b))).await;
        assert!(responses.iter().all(|r| r.status() == 200));
        app.wait_for_sends(8).await;
        let contacts = contact::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(contacts.len(), 1);
        assert_eq!(contacts[0].profile_name.as_deref(), Some("Test Person"));
    }
}

#[tokio::test]
async fn a_batch_with_messages_and_statuses_from_several_contacts_is_stored_whole() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ts = now_secs();
        let mut body: serde_json::Value = serde_json::from_str(&envelope(vec![
            text_message("919800000021", &new_wamid(), ts, "a1"),
            text_message("919800000022", &new_wamid(), ts, "b1"),
            text_message("919800000021", &new_wamid(), ts + 1, "a2"),
        ]))
        .unwrap();
        body["entry"][0]["changes"][0]["value"]["statuses"] =
            json!([status("wamid.OUT1", "delivered", ts)]);
        let response = app.post_webhook(&body.to_string()).await;
        assert_eq!(response.status(), 200);
        let report: serde_json::Value = response.json().await.unwrap();
        assert_eq!(report["new_messages"], 3);
        assert_eq!(report["statuses_applied"], 1);
        let sent = app.wait_for_sends(3).await;
        let to_a: Vec<String> = sent
            .iter()
            .filter(|r| recipient_of(r) == "919800000021")
            .map(text_of)
            .collect();
        assert_eq!(to_a, ["echo: a1", "echo: a2"]);
        assert_eq!(contact::Entity::find().all(&app.db).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn a_status_never_moves_backwards_and_failures_keep_their_reason() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ts = now_secs();
        let (a, b) = ("wamid.OUT-A", "wamid.OUT-B");
        for s in [
            status(a, "read", ts + 2),
            status(a, "sent", ts),
            status(a, "delivered", ts + 1),
            status(a, "read", ts + 2),
        ] {
            assert_eq!(
                app.post_webhook(&status_envelope(vec![s])).await.status(),
                200
            );
        }
        let row = message_status::Entity::find_by_id(a.to_owned())
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, "read");
        assert_eq!(row.status_at, (ts + 2) * 1000);

        let mut failed = status(b, "failed", ts + 3);
        failed["errors"] = json!([{ "code": 131047, "title": "Re-engagement message",
            "error_data": { "details": "Message failed to send because more than 24 hours have passed" } }]);
        app.post_webhook(&status_envelope(vec![status(b, "sent", ts), failed]))
            .await;
        app.post_webhook(&status_envelope(vec![status(b, "delivered", ts + 4)]))
            .await;
        let row = message_status::Entity::find_by_id(b.to_owned())
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, "failed");
        assert_eq!(row.error_code, Some(131047));
        assert!(row.error_details.unwrap().contains("24 hours"));
    }
}

#[tokio::test]
async fn the_window_start_follows_the_newest_message_and_never_moves_back() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ts = now_secs();
        let phone = "919800000031";
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts,
            "new",
        )]))
        .await;
        // A late redelivery of an older message arrives afterwards.
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts - 3600,
            "old",
        )]))
        .await;
        let found = contact::Entity::find()
            .filter(contact::Column::WaId.eq(phone))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.last_inbound_at, Some(ts * 1000));
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts + 5,
            "newer",
        )]))
        .await;
        let found = contact::Entity::find()
            .filter(contact::Column::WaId.eq(phone))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.last_inbound_at, Some((ts + 5) * 1000));
    }
}

#[tokio::test]
async fn a_contact_known_by_phone_gains_its_business_scoped_id_and_vice_versa() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ts = now_secs();
        app.post_webhook(&envelope(vec![text_message(
            "919800000041",
            &new_wamid(),
            ts,
            "by phone",
        )]))
        .await;
        let mut with_bsuid = text_message("919800000041", &new_wamid(), ts + 1, "with bsuid");
        with_bsuid["from_user_id"] = json!("IN.998877665544");
        app.post_webhook(&envelope(vec![with_bsuid])).await;
        // Later the user adopts a username: no phone, only the BSUID.
        let mut username_only = text_message("", &new_wamid(), ts + 2, "username");
        username_only.as_object_mut().unwrap().remove("from");
        username_only["from_user_id"] = json!("IN.998877665544");
        assert_eq!(
            app.post_webhook(&envelope(vec![username_only]))
                .await
                .status(),
            200
        );

        let all = contact::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].wa_id.as_deref(), Some("919800000041"));
        assert_eq!(all[0].user_id.as_deref(), Some("IN.998877665544"));
        app.wait_for_sends(3).await;
    }
}
