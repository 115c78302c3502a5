//! `POST /api/v1/notifications` and `GET /api/v1/notifications/{id}` (issue 5, part 4), on
//! every backend: the token, validation, unknown policies, free-form inside the window and
//! the template outside it, and the Idempotency-Key (repeats, races, another body).

use insurebot::store::entities::{conversation, notification_request, outbox, policy};
use insurebot::store::now_ms;
use sea_orm::ActiveValue::Set;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::consent::{API_TOKEN, configure, new_contact};
use crate::helpers::*;
use crate::insurer::{MODE_OK, MODE_SLOW, RAJESH, http_settings, spawn_insurer_api};

const HOUR_MS: i64 = 3_600_000;

async fn post(
    app: &TestApp,
    token: Option<&str>,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut r = app
        .http
        .post(format!("{}/api/v1/notifications", app.address))
        .json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    r.send().await.expect("POST notification")
}

async fn post_ok(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let r = post(app, Some(API_TOKEN), Some(key), body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn claim_update(phone: &str) -> Value {
    json!({ "kind": "claim_update", "phone": phone,
            "data": { "claim_number": "CLM-000042", "claim_stage": "approved" } })
}

async fn register_policy(app: &TestApp, number: &str, mobile: &str) {
    insert_policy(&app.db, number, Some(mobile)).await;
}

pub(crate) fn problems(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p["field"].as_str().unwrap(),
                p["problem"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn the_api_needs_the_token_and_refuses_bad_requests_with_every_problem() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        let body = claim_update("919800000601");
        assert_eq!(post(&app, None, Some("k1"), &body).await.status(), 401);
        assert_eq!(
            post(&app, Some("wrong-token-0123456789"), Some("k1"), &body)
                .await
                .status(),
            401
        );
        let r = app
            .http
            .get(format!("{}/api/v1/notifications/1", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);

        // Unknown kind: named.
        let (s, v) = post_ok(
            &app,
            "k2",
            &json!({ "kind": "birthday", "phone": "919800000601" }),
        )
        .await;
        assert_eq!(s, 422);
        assert!(
            problems(&v)
                .iter()
                .any(|p| p.starts_with("kind:") && p.contains("birthday")),
            "{v}"
        );

        // Missing data fields: every one listed.
        let (s, v) = post_ok(
            &app,
            "k3",
            &json!({ "kind": "premium_due", "phone": "919800000601", "data": { "due_date": "2027-01-05" } }),
        )
        .await;
        assert_eq!(s, 422);
        let p = problems(&v);
        assert!(
            p.contains(&"data.policy_number: is required".to_owned()),
            "{p:?}"
        );
        assert!(
            p.contains(&"data.premium_amount: is required".to_owned()),
            "{p:?}"
        );
        assert_eq!(p.len(), 2, "{p:?}");

        // Idempotency-Key missing or too long.
        let r = post(&app, Some(API_TOKEN), None, &body).await;
        assert_eq!(r.status(), 422);
        let v: Value = r.json().await.unwrap();
        assert!(
            problems(&v)[0].starts_with("Idempotency-Key: is required"),
            "{v}"
        );
        let long = "x".repeat(129);
        let r = post(&app, Some(API_TOKEN), Some(&long), &body).await;
        assert_eq!(r.status(), 422);
        let v: Value = r.json().await.unwrap();
        assert!(
            problems(&v)[0].starts_with("Idempotency-Key: is longer"),
            "{v}"
        );
        let (s, _) = post_ok(&app, &"y".repeat(128), &body).await;
        assert_eq!(s, 202, "128 characters are fine");

        // Unknown policy: 404, and nothing stored under the key.
        let (s, v) = post_ok(
            &app,
            "k4",
            &json!({ "kind": "policy_issued", "policy_number": "LIC99999999",
                     "data": { "plan": "Jeevan", "policy_status": "active" } }),
        )
        .await;
        assert_eq!(s, 404, "{v}");
        // Named by its last four characters only (issue 16).
        assert!(v["error"].as_str().unwrap().contains("*******9999"), "{v}");
        let r = app
            .http
            .get(format!("{}/api/v1/notifications/999999", app.address))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        // Only the 128-character request was accepted.
        assert_eq!(
            notification_request::Entity::find()
                .count(&app.db)
                .await
                .unwrap(),
            1
        );
    }
}

#[tokio::test]
async fn a_claim_update_goes_free_form_inside_the_window_and_as_the_template_outside() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        new_contact(&app, "919800000611", Some(now_ms() - HOUR_MS)).await;
        let (s, v) = post_ok(&app, "inside-1", &claim_update("919800000611")).await;
        assert_eq!(s, 202, "{v}");
        assert_eq!(v["state"], "queued");
        let sent = app.wait_for_sends(1).await;
        assert_eq!(recipient_of(&sent[0]), "919800000611");
        assert!(
            matches!(sent[0].body["type"].as_str(), Some("text" | "interactive")),
            "{:#?}",
            sent[0].body
        );
        assert_eq!(text_of(&sent[0]), "Your claim CLM-000042 is now: approved.");

        // The GET shows the state once sent.
        let id = v["notification_id"].as_i64().unwrap();
        let mut state = String::new();
        for _ in 0..100 {
            let g: Value = app
                .http
                .get(format!("{}/api/v1/notifications/{id}", app.address))
                .bearer_auth(API_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(g["notification_id"], id);
            assert_eq!(g["outbox_id"], v["outbox_id"]);
            assert_eq!(g["kind"], "claim_update");
            state = g["state"].as_str().unwrap().to_owned();
            if state == "sent" {
                assert_eq!(g["sent_as"], "free_form");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(state, "sent");

        // Outside the window (window never opened; the policy's registered mobile): template.
        register_policy(&app, "LIC00000612", "919800000612").await;
        let (s, v) = post_ok(
            &app,
            "outside-1",
            &json!({ "kind": "claim_update", "policy_number": "lic00000612",
                     "data": { "claim_number": "CLM-000043", "claim_stage": "settled" } }),
        )
        .await;
        assert_eq!(s, 202, "{v}");
        assert_eq!(v["state"], "queued");
        let sent = app.wait_for_sends(2).await;
        let t = &sent[1].body;
        assert_eq!(recipient_of(&sent[1]), "919800000612");
        assert_eq!(t["type"], "template", "{t:#}");
        assert_eq!(t["template"]["name"], "claim_status_update");
        let params = t["template"]["components"].to_string();
        assert!(
            params.contains("CLM-000043") && params.contains("settled"),
            "{params}"
        );

        // A phone never seen becomes a contact.
        let (s, v) = post_ok(
            &app,
            "new-phone",
            &json!({ "kind": "premium_due", "phone": "+91 98000 00613",
                     "data": { "policy_number": "LIC00000613", "premium_amount": "₹2,450", "due_date": "5 Jan 2027" } }),
        )
        .await;
        assert_eq!(s, 202, "{v}");
        let sent = app.wait_for_sends(3).await;
        assert_eq!(recipient_of(&sent[2]), "919800000613");
        assert_eq!(sent[2].body["template"]["name"], "premium_due_reminder");
        app.assert_no_more_sends(3).await;
    }
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_answer_and_sends_once() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        new_contact(&app, "919800000621", Some(now_ms() - HOUR_MS)).await;
        let body = claim_update("919800000621");
        let (s1, v1) = post_ok(&app, "repeat-1", &body).await;
        assert_eq!(s1, 202);
        let (s2, v2) = post_ok(&app, "repeat-1", &body).await;
        assert_eq!((s2, &v2), (202, &v1));
        app.wait_for_sends(1).await;
        app.assert_no_more_sends(1).await;

        // Same key, another body: refused, and nothing queued.
        let mut other = body.clone();
        other["data"]["claim_stage"] = json!("rejected");
        let (s, v) = post_ok(&app, "repeat-1", &other).await;
        assert_eq!(s, 422, "{v}");
        assert!(problems(&v)[0].contains("different request body"), "{v}");
        assert_eq!(outbox::Entity::find().count(&app.db).await.unwrap(), 1);

        // Five concurrent requests with one key: one queue, five identical answers.
        let race = claim_update("919800000621");
        let answers =
            futures::future::join_all((0..5).map(|_| post_ok(&app, "race-1", &race))).await;
        for a in &answers {
            assert_eq!(a, &answers[0]);
        }
        assert_eq!(answers[0].0, 202, "{:?}", answers[0]);
        assert_eq!(outbox::Entity::find().count(&app.db).await.unwrap(), 2);
        app.wait_for_sends(2).await;
        app.assert_no_more_sends(2).await;
    }
}

#[tokio::test]
async fn with_the_http_source_a_policy_notification_goes_to_the_number_the_insurer_api_has() {
    let api = spawn_insurer_api().await;
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        configure(s);
        s.insurer.source = insurebot::config::PolicySourceKind::Http;
        s.insurer.http = http_settings(&api.base_url);
    })
    .await;
    assert_eq!(
        policy::Entity::find().count(&app.db).await.unwrap(),
        0,
        "nothing in the embedded tables: the policy is only known to the insurer's API"
    );
    let body = json!({ "kind": "claim_update", "policy_number": "h-2023/100245",
                       "data": { "claim_number": "CLM-240311", "claim_stage": "approved" } });
    let (s, v) = post_ok(&app, "api-1", &body).await;
    assert_eq!(s, 202, "{v}");
    let sent = app.wait_for_sends(1).await;
    assert_eq!(recipient_of(&sent[0]), RAJESH);
    assert_eq!(sent[0].body["template"]["name"], "claim_status_update");

    // A policy the insurer does not know: 404, nothing stored under the key.
    let (s, v) = post_ok(
        &app,
        "api-2",
        &json!({ "kind": "claim_update", "policy_number": "Q-0000/000001",
                 "data": { "claim_number": "CLM-000001", "claim_stage": "approved" } }),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("*********0001"),
        "{v}"
    );

    // The insurer's API times out: 503 within seconds, nothing queued or remembered, and the
    // same key goes through once it answers again.
    api.set(MODE_SLOW);
    let started = std::time::Instant::now();
    let again = json!({ "kind": "policy_issued", "policy_number": "H-2023/100245",
                        "data": { "plan": "Arogya Family Floater", "policy_status": "active" } });
    let (s, v) = post_ok(&app, "api-3", &again).await;
    assert_eq!(s, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("retry"), "{v}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(outbox::Entity::find().count(&app.db).await.unwrap(), 1);
    assert_eq!(
        notification_request::Entity::find()
            .count(&app.db)
            .await
            .unwrap(),
        1
    );
    api.set(MODE_OK);
    let hits = api.hits();
    let (s, v) = post_ok(&app, "api-3", &again).await;
    assert_eq!(s, 202, "{v}");
    assert!(
        api.hits() > hits,
        "the policy was looked up in the insurer's API"
    );
    let sent = app.wait_for_sends(2).await;
    assert_eq!(recipient_of(&sent[1]), RAJESH);
    app.assert_no_more_sends(2).await;
}

#[tokio::test]
async fn policy_issued_has_its_own_template_outside_the_window_and_speaks_the_contacts_language_inside()
 {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            configure(s);
            s.dialogue.handler = insurebot::config::DialogueMode::Flows;
        })
        .await;
        // Outside the window: the policy_issued template, with the policy document button.
        register_policy(&app, "LIC00000631", "919800000631").await;
        let issued = json!({ "kind": "policy_issued", "policy_number": "LIC00000631",
                             "data": { "plan": "Jeevan Umang", "policy_status": "active" } });
        let (s, v) = post_ok(&app, "issued-1", &issued).await;
        assert_eq!(s, 202, "{v}");
        let sent = app.wait_for_sends(1).await;
        let t = &sent[0].body;
        assert_eq!(t["type"], "template", "{t:#}");
        assert_eq!(t["template"]["name"], "policy_issued", "{backend:?}");
        let components = t["template"]["components"].to_string();
        for param in ["LIC00000631", "Jeevan Umang", "active"] {
            assert!(components.contains(param), "{components}");
        }
        assert!(
            components.contains("\"document\""),
            "the document quick reply: {components}"
        );

        // Inside the window, for a contact who chats in Hindi: the Hindi text.
        let contact_id = new_contact(&app, "919800000632", Some(now_ms() - HOUR_MS)).await;
        conversation::Entity::insert(conversation::ActiveModel {
            contact_id: Set(contact_id),
            state: Set(
                serde_json::to_string(&insurebot::engine::conversation::Conversation::new("hi"))
                    .unwrap(),
            ),
            flow: Set(None),
            flow_state: Set(None),
            flow_version: Set(None),
            mode: Set("bot".into()),
            language: Set("hi".into()),
            updated_at: Set(now_ms()),
        })
        .exec(&app.db)
        .await
        .unwrap();
        let (s, v) = post_ok(
            &app,
            "issued-2",
            &json!({ "kind": "policy_issued", "phone": "919800000632",
                     "data": { "policy_number": "LIC00000632", "plan": "जीवन उमंग", "policy_status": "चालू" } }),
        )
        .await;
        assert_eq!(s, 202, "{v}");
        let sent = app.wait_for_sends(2).await;
        assert_eq!(recipient_of(&sent[1]), "919800000632");
        assert_eq!(
            text_of(&sent[1]),
            "आपकी पॉलिसी ••••0632 (जीवन उमंग) जारी हो गई है और अभी चालू है।"
        );
        app.assert_no_more_sends(2).await;
    }
}
