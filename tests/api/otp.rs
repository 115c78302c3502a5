//! One-time passwords (issue 19) through `/api/v1/otp`, on every backend: the code goes out
//! with the AUTHENTICATION template and its copy-code button and is stored nowhere in clear;
//! it verifies once; five wrong codes lock it; it expires by the app's clock; the send is
//! idempotent and rate limited; Meta's "undeliverable" status shows; bad input is listed by
//! field.

use std::sync::Arc;

use chrono::Utc;
use insurebot::clock::ManualClock;
use insurebot::store::entities::{message_template, otp as otp_row, outbox};
use insurebot::whatsapp::fake::ReceivedRequest;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::consent::{API_TOKEN, configure};
use crate::helpers::*;
use crate::notifications::problems;

pub(crate) async fn send_otp(app: &TestApp, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut r = app
        .http
        .post(format!("{}/api/v1/otp", app.address))
        .bearer_auth(API_TOKEN)
        .json(body);
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    r.send().await.expect("POST /api/v1/otp")
}

async fn send_ok(app: &TestApp, key: &str, body: &Value) -> Value {
    let r = send_otp(app, Some(key), body).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    v
}

async fn verify(app: &TestApp, otp_id: &str, code: &str) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}/api/v1/otp/{otp_id}/verify", app.address))
        .bearer_auth(API_TOKEN)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn result_of(app: &TestApp, otp_id: &str, code: &str) -> String {
    let (status, v) = verify(app, otp_id, code).await;
    assert_eq!(status, 200, "{v}");
    v["result"].as_str().unwrap().to_owned()
}

async fn status_of(app: &TestApp, otp_id: &str) -> Value {
    let r = app
        .http
        .get(format!("{}/api/v1/otp/{otp_id}", app.address))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn login(phone: &str) -> Value {
    json!({ "phone": phone, "purpose": "login" })
}

/// The code in a send of the fake: the body parameter, checked equal to the copy-code
/// button's parameter.
fn code_in(request: &ReceivedRequest) -> String {
    let t = &request.body["template"];
    assert_eq!(t["name"], "otp_code", "{t}");
    let comps = t["components"].as_array().unwrap();
    let body = comps.iter().find(|c| c["type"] == "body").unwrap();
    let button = comps.iter().find(|c| c["type"] == "button").unwrap();
    assert_eq!(button["sub_type"], "url", "{button}");
    assert_eq!(button["index"], "0", "{button}");
    let code = body["parameters"][0]["text"].as_str().unwrap().to_owned();
    assert_eq!(button["parameters"][0]["text"], code.as_str());
    assert_eq!(code.len(), 6);
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{code}");
    code
}

/// A digit string of the same length that is not `code`.
fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| char::from(b'0' + (c.to_digit(10).unwrap() as u8 + 1) % 10))
        .collect()
}

/// Everything stored about OTPs and their messages, as text.
async fn stored_text(app: &TestApp) -> String {
    let otps = otp_row::Entity::find().all(&app.db).await.unwrap();
    let rows = outbox::Entity::find().all(&app.db).await.unwrap();
    format!("{otps:?} {rows:?}")
}

#[tokio::test]
async fn a_code_goes_with_the_authentication_template_verifies_once_and_is_never_stored_in_clear() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        let v = send_ok(&app, "k-1", &login("919800000701")).await;
        let otp_id = v["otp_id"].as_str().unwrap().to_owned();
        assert!(otp_id.starts_with("otp_"), "{v}");
        assert!(v["expires_at"].as_i64().unwrap() > chrono::Utc::now().timestamp_millis());
        let sent = app.wait_for_sends(1).await;
        assert_eq!(recipient_of(&sent[0]), "919800000701");
        let code = code_in(&sent[0]);

        // Nowhere in the database, the status or a verify answer.
        assert!(!stored_text(&app).await.contains(&code));
        let status = status_of(&app, &otp_id).await;
        assert!(!status.to_string().contains(&code), "{status}");
        assert_eq!(status["purpose"], "login");
        assert_eq!(status["max_attempts"], 5);

        let (s, v) = verify(&app, &otp_id, &wrong(&code)).await;
        assert_eq!((s, v["result"].as_str()), (200, Some("wrong")), "{v}");
        assert_eq!(v["attempts_left"], 4);
        assert!(!v.to_string().contains(&code));
        assert_eq!(result_of(&app, &otp_id, &code).await, "verified");
        assert_eq!(result_of(&app, &otp_id, &code).await, "already_used");
        assert_eq!(status_of(&app, &otp_id).await["status"], "verified");
        app.assert_no_more_sends(1).await;
    }
}

#[tokio::test]
async fn five_wrong_codes_lock_the_code_even_against_the_right_one() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        let v = send_ok(&app, "k-lock", &login("919800000702")).await;
        let otp_id = v["otp_id"].as_str().unwrap();
        let code = code_in(&app.wait_for_sends(1).await[0]);
        let bad = wrong(&code);
        for left in (1..5).rev() {
            let (_, v) = verify(&app, otp_id, &bad).await;
            assert_eq!(v["result"], "wrong", "{v}");
            assert_eq!(v["attempts_left"], left);
        }
        let (_, v) = verify(&app, otp_id, &bad).await;
        assert_eq!(v["result"], "locked", "the fifth wrong code locks: {v}");
        assert_eq!(v["attempts_left"], 0);
        assert_eq!(result_of(&app, otp_id, &code).await, "locked");
        let status = status_of(&app, otp_id).await;
        assert_eq!(status["status"], "locked");
        assert_eq!(status["attempts"], 5);
    }
}

#[tokio::test]
async fn concurrent_guesses_never_exceed_the_attempts() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        let v = send_ok(&app, "k-race", &login("919800000703")).await;
        let otp_id = v["otp_id"].as_str().unwrap().to_owned();
        let code = code_in(&app.wait_for_sends(1).await[0]);
        let bad = wrong(&code);
        let guesses = (0..12).map(|_| verify(&app, &otp_id, &bad));
        let answers = futures::future::join_all(guesses).await;
        let wrongs = answers
            .iter()
            .filter(|(_, v)| v["result"] == "wrong")
            .count();
        assert_eq!(wrongs, 4, "{answers:?}");
        assert!(
            answers
                .iter()
                .all(|(s, v)| *s == 200 && (v["result"] == "wrong" || v["result"] == "locked"))
        );
        assert_eq!(result_of(&app, &otp_id, &code).await, "locked");
        let row = otp_row::Entity::find_by_id(otp_id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.attempts, 5);
    }
}

#[tokio::test]
async fn a_code_expires_after_ten_minutes_by_the_apps_clock() {
    for backend in backends() {
        let clock = ManualClock::new(Utc::now());
        let app = spawn_app_with_clock(&backend, configure, Some(Arc::new(clock.clone()))).await;
        let v = send_ok(&app, "k-exp", &login("919800000704")).await;
        let otp_id = v["otp_id"].as_str().unwrap();
        assert_eq!(
            v["expires_at"].as_i64().unwrap(),
            clock_ms(&clock) + 10 * 60_000
        );
        let code = code_in(&app.wait_for_sends(1).await[0]);
        clock.advance(chrono::Duration::minutes(10) - chrono::Duration::seconds(1));
        wait_for_status(&app, otp_id, "sent").await;
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(result_of(&app, otp_id, &code).await, "expired");
        assert_eq!(status_of(&app, otp_id).await["status"], "expired");
        // An expired try costs no attempt.
        let row = otp_row::Entity::find_by_id(otp_id.to_owned())
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.attempts, 0);
    }
}

fn clock_ms(clock: &ManualClock) -> i64 {
    use insurebot::clock::Clock;
    clock.now().timestamp_millis()
}

#[tokio::test]
async fn a_repeated_send_with_the_same_key_answers_the_same_otp_and_sends_once() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        let body = login("919800000705");
        let first = send_ok(&app, "k-same", &body).await;
        let again = send_ok(&app, "k-same", &body).await;
        assert_eq!(first, again);
        // Concurrent repeats too.
        let racing = (0..6).map(|_| send_otp(&app, Some("k-race-same"), &body));
        let answers = futures::future::join_all(racing).await;
        let mut ids = Vec::new();
        for r in answers {
            assert_eq!(r.status(), 202);
            ids.push(r.json::<Value>().await.unwrap()["otp_id"].clone());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
        app.wait_for_sends(2).await;
        app.assert_no_more_sends(2).await;
        assert_eq!(otp_row::Entity::find().count(&app.db).await.unwrap(), 2);

        let r = send_otp(&app, Some("k-same"), &login("919800000706")).await;
        assert_eq!(r.status(), 422);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["problems"][0]["field"], "Idempotency-Key", "{v}");
    }
}

#[tokio::test]
async fn a_number_gets_three_codes_per_quarter_hour_then_429_with_retry_after() {
    for backend in backends() {
        let clock = ManualClock::new(Utc::now());
        let app = spawn_app_with_clock(
            &backend,
            |s| {
                configure(s);
                s.otp.per_purpose_max = 5;
            },
            Some(Arc::new(clock.clone())),
        )
        .await;
        for i in 0..3 {
            send_ok(&app, &format!("k-rate-{i}"), &login("919800000707")).await;
            clock.advance(chrono::Duration::minutes(1));
        }
        let r = send_otp(&app, Some("k-rate-3"), &login("919800000707")).await;
        assert_eq!(r.status(), 429);
        // The first code leaves the 15-minute window 12 minutes from now.
        assert_eq!(r.headers()["retry-after"], "720");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("phone number"), "{v}");
        // Another number is not limited by this one; nothing was stored for the refusal.
        send_ok(&app, "k-rate-other", &login("919800000708")).await;
        assert_eq!(otp_row::Entity::find().count(&app.db).await.unwrap(), 4);
        // The per-purpose limit (5 here) holds across numbers.
        send_ok(&app, "k-rate-p5", &login("919800000709")).await;
        let r = send_otp(&app, Some("k-rate-p6"), &login("919800000710")).await;
        assert_eq!(r.status(), 429);
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("purpose"), "{v}");
        // Once the window has passed, the number may have a code again.
        clock.advance(chrono::Duration::minutes(60));
        send_ok(&app, "k-rate-later", &login("919800000707")).await;
    }
}

#[tokio::test]
async fn a_number_whatsapp_cannot_reach_shows_undeliverable_with_metas_code() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        let v = send_ok(&app, "k-undeliv", &login("919800000711")).await;
        let otp_id = v["otp_id"].as_str().unwrap();
        let sent = app.wait_for_sends(1).await;
        let wamid = sent[0].wamid.clone().unwrap();
        wait_for_status(&app, otp_id, "sent").await;
        let r = app
            .post_webhook(&status_envelope(vec![status(
                &wamid,
                "delivered",
                now_secs(),
            )]))
            .await;
        assert_eq!(r.status(), 200);
        wait_for_status(&app, otp_id, "delivered").await;

        let v = send_ok(&app, "k-undeliv-2", &login("919800000712")).await;
        let second = v["otp_id"].as_str().unwrap();
        let sent = app.wait_for_sends(2).await;
        let wamid = sent[1].wamid.clone().unwrap();
        let mut failed = status(&wamid, "failed", now_secs());
        failed["errors"] = json!([{ "code": 131026, "title": "Message undeliverable" }]);
        let r = app.post_webhook(&status_envelope(vec![failed])).await;
        assert_eq!(r.status(), 200);
        let status = wait_for_status(&app, second, "undeliverable").await;
        assert_eq!(status["error_code"], 131026, "{status}");
    }
}

async fn wait_for_status(app: &TestApp, otp_id: &str, want: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let v = status_of(app, otp_id).await;
        if v["status"] == want {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "want {want}: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn consent_does_not_stop_a_code_the_person_asked_for() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        let r = app
            .http
            .post(format!("{}/api/v1/consent", app.address))
            .bearer_auth(API_TOKEN)
            .json(&json!({ "phone": "919800000713", "change": "opt_out", "scope": "all" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        // Not by the registry's `essential` flag: a code is what the person asked for.
        message_template::Entity::update_many()
            .col_expr(message_template::Column::Essential, Expr::value(false))
            .filter(message_template::Column::Name.eq("otp_code"))
            .exec(&app.db)
            .await
            .unwrap();
        send_ok(&app, "k-consent", &login("919800000713")).await;
        code_in(&app.wait_for_sends(1).await[0]);
    }
}

#[tokio::test]
async fn a_code_goes_to_the_mobile_registered_on_a_policy() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        insert_policy(&app.db, "POL-OTP-0001", Some("919800000714")).await;
        let body =
            json!({ "policy_number": "POL-OTP-0001", "purpose": "claim_payout", "language": "hi" });
        send_ok(&app, "k-policy", &body).await;
        let sent = app.wait_for_sends(1).await;
        assert_eq!(recipient_of(&sent[0]), "919800000714");
        assert_eq!(sent[0].body["template"]["language"]["code"], "hi");
        code_in(&sent[0]);
    }
}

async fn refused(app: &TestApp, key: Option<&str>, body: &Value) -> Vec<String> {
    let r = send_otp(app, key, body).await;
    assert_eq!(r.status(), 422);
    problems(&r.json().await.unwrap())
}

#[tokio::test]
async fn bad_requests_are_refused_with_every_problem_by_field() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        // Unknown purpose, malformed phone, no key: all three at once.
        let p = refused(&app, None, &json!({ "phone": "12ab", "purpose": "lunch" })).await;
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("Idempotency-Key: is required"), "{p:?}");
        assert!(
            p.iter()
                .any(|x| x.starts_with("purpose: unknown purpose 'lunch'") && x.contains("login")),
            "{p:?}"
        );
        assert!(p.iter().any(|x| x.starts_with("phone: ")), "{p:?}");
        // A policy without a mobile, and a language the template does not have.
        insert_policy(&app.db, "POL-OTP-0002", None).await;
        let p = refused(
            &app,
            Some("k-bad-2"),
            &json!({ "policy_number": "POL-OTP-0002", "purpose": "login", "language": "fr" }),
        )
        .await;
        assert_eq!(
            p,
            [
                "policy_number: the policy has no registered mobile number",
                "language: the authentication template 'otp_code' is not in the registry for language 'fr'",
            ]
        );
        let p = refused(
            &app,
            Some("k-bad-3"),
            &json!({ "policy_number": "POL-NOPE-0003", "purpose": "login" }),
        )
        .await;
        assert_eq!(p, ["policy_number: no policy has this number"]);
        // A template that is not approved.
        insurebot::messaging::templates::set_status(
            &app.db,
            None,
            "otp_code",
            Some("en"),
            "PAUSED",
            None,
            "test",
            0,
        )
        .await
        .unwrap();
        let p = refused(
            &app,
            Some("k-bad-4"),
            &json!({ "phone": "919800000715", "purpose": "login", "language": "en" }),
        )
        .await;
        assert_eq!(
            p,
            ["language: template 'otp_code' (en) is PAUSED, not APPROVED"]
        );
        let p = refused(
            &app,
            Some("k-bad-5"),
            &json!({ "phone": "919800000715", "purpose": "login" }),
        )
        .await;
        assert_eq!(
            p,
            ["language: template 'otp_code' (en) is PAUSED, not APPROVED"]
        );
        // Unknown fields and malformed JSON name the body.
        let p = refused(
            &app,
            Some("k-bad-6"),
            &json!({ "phone": "919800000715", "purpose": "login", "code": "1" }),
        )
        .await;
        assert!(p[0].starts_with("body: is not a valid request"), "{p:?}");
        app.assert_no_more_sends(0).await;
        assert_eq!(otp_row::Entity::find().count(&app.db).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn an_unknown_otp_id_is_404_revealing_nothing_and_the_token_is_required() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        let real = send_ok(&app, "k-404", &login("919800000716")).await;
        let real_id = real["otp_id"].as_str().unwrap();
        for id in [
            "otp_00000000000000000000000000000000",
            "1",
            "otp_%27%20or%201%3D1",
        ] {
            let (s, v) = verify(&app, id, "123456").await;
            assert_eq!(
                (s, v.clone()),
                (
                    404,
                    json!({ "error": "no such one-time password", "problems": [] })
                ),
                "{id}"
            );
            let r = app.get(&format!("/api/v1/otp/{id}")).await;
            assert_eq!(r.status(), 401, "no token");
        }
        let r = app
            .http
            .post(format!("{}/api/v1/otp/{real_id}/verify", app.address))
            .json(&json!({ "code": "123456" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = app
            .http
            .post(format!("{}/api/v1/otp", app.address))
            .header("Idempotency-Key", "k-noauth")
            .json(&login("919800000716"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        // The real one was not touched by any of it.
        assert_eq!(status_of(&app, real_id).await["attempts"], 0);
    }
}

/// One message from `phone` to the app, and the app's next send.
async fn chat(app: &TestApp, message: Value, sends: usize) -> Vec<ReceivedRequest> {
    let before = app.sent_messages().len();
    app.post_webhook(&envelope(vec![message])).await;
    let sent = app.wait_for_sends(before + sends).await;
    sent[before..].to_vec()
}

pub(crate) fn typed(phone: &str, text: &str) -> Value {
    text_message(phone, &new_wamid(), now_secs(), text)
}

pub(crate) fn tapped(phone: &str, id: &str) -> Value {
    json!({ "from": phone, "id": new_wamid(), "timestamp": now_secs().to_string(), "type": "interactive",
            "interactive": { "type": "button_reply", "button_reply": { "id": id, "title": id } } })
}

#[tokio::test]
async fn in_the_chat_a_stranger_verifies_with_a_code_sent_to_the_policys_registered_mobile() {
    const OWNER: &str = "919812345678"; // the sample data's Rajesh, registered on H-2023/100245
    const STRANGER: &str = "919800000731";
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            configure(s);
            s.dialogue.handler = insurebot::config::DialogueMode::Flows;
        })
        .await;
        insurebot::insurer::load_sample_if_empty(&app.db)
            .await
            .unwrap();
        let ask = chat(&app, typed(STRANGER, "policy"), 1).await;
        assert_eq!(
            shown(&ask[0]),
            "To keep your data safe, please type your policy number."
        );
        let dob = chat(&app, typed(STRANGER, "H-2023/100245"), 1).await;
        let buttons = &dob[0].body["interactive"]["action"]["buttons"];
        assert_eq!(buttons[0]["reply"]["id"], "identity.otp", "{}", dob[0].body);

        // The tap: a reply to the stranger; to the registered mobile a notice that someone
        // asked for access (the authentication template's text is Meta's, it cannot say so),
        // then the code.
        let sent = chat(&app, tapped(STRANGER, "identity.otp"), 3).await;
        let (to_owner, to_stranger): (Vec<_>, Vec<_>) =
            sent.iter().partition(|r| recipient_of(r) == OWNER);
        assert_eq!((to_owner.len(), to_stranger.len()), (2, 1), "{sent:#?}");
        let notice = &to_owner[0].body["template"];
        assert_eq!(notice["name"], "otp_access_notice", "{sent:#?}");
        assert_eq!(
            notice["components"][0]["parameters"][0]["text"], "0245",
            "the policy's last four characters: {notice}"
        );
        assert_eq!(to_owner[1].body["template"]["name"], "otp_code");
        let code = code_in(to_owner[1]);
        let reply = shown(to_stranger[0]);
        assert!(
            reply.starts_with("We have sent a code to the mobile number registered"),
            "{reply}"
        );
        // The owner's number (not even its last digits) and the code never reach the chat.
        assert!(!to_stranger[0].body.to_string().contains("5678"), "{reply}");
        assert!(!to_stranger[0].body.to_string().contains(&code));

        let again = chat(&app, typed(STRANGER, &wrong(&code)), 1).await;
        assert!(
            shown(&again[0]).starts_with("That code is not right"),
            "{}",
            again[0].body
        );
        let details = chat(&app, typed(STRANGER, &code), 1).await;
        assert!(
            shown(&details[0]).contains("••••0245"),
            "{}",
            details[0].body
        );
        assert_eq!(result_of_row(&app).await, "verified");
        // The typed code does not stay in the conversation's slots.
        let conversations = insurebot::store::entities::conversation::Entity::find()
            .all(&app.db)
            .await
            .unwrap();
        assert!(!format!("{conversations:?}").contains(&code));
        // The chat's code is recorded under its own purpose.
        assert_eq!(
            otp_row::Entity::find()
                .one(&app.db)
                .await
                .unwrap()
                .unwrap()
                .purpose,
            "chat_identity"
        );
    }
}

async fn result_of_row(app: &TestApp) -> String {
    otp_row::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .state
}

#[tokio::test]
async fn erasing_a_contact_forgets_the_codes_sent_to_it() {
    for backend in backends() {
        let app = spawn_app_with(&backend, configure).await;
        let v = send_ok(&app, "k-erase", &login("919800000717")).await;
        let otp_id = v["otp_id"].as_str().unwrap();
        app.wait_for_sends(1).await;
        let r = app
            .http
            .delete(format!("{}/api/v1/contacts/919800000717", app.address))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let receipt: Value = r.json().await.unwrap();
        assert_eq!(receipt["tables"]["otps"], 1, "{receipt}");
        assert_eq!(otp_row::Entity::find().count(&app.db).await.unwrap(), 0);
        let (s, _) = verify(&app, otp_id, "123456").await;
        assert_eq!(s, 404);
    }
}
