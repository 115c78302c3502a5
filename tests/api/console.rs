//! The agent console over real HTTP: login, CSRF, session expiry, roles, login limiting, the
//! race for one conversation, the bot's silence while an agent has it, and the way back.

use std::time::{Duration, Instant};

use insurebot::config::DialogueMode;
use insurebot::http::console::auth::{Role, create_agent, expire_sessions_now};
use insurebot::store::entities::{contact, conversation, handoff, inbound_message};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::helpers::*;

pub const PASSWORD: &str = "a long enough password";

/// A browser-like client for one agent: keeps the session cookie and the CSRF token.
pub struct AgentClient {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `application/x-www-form-urlencoded` for a few fields.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

/// The first hidden CSRF value in a page.
pub fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 64].to_owned()
}

/// GET /console/login, then POST the form as a browser would.
pub async fn attempt_login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let http = no_redirects();
    let page = http
        .get(format!("{}/console/login", app.address))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_value(&set_cookie(&page, "insurebot_login_csrf").unwrap());
    let token = csrf_in(&page.text().await.unwrap());
    http.post(format!("{}/console/login", app.address))
        .header(COOKIE, format!("insurebot_login_csrf={login_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("email", email),
            ("password", password),
            ("csrf", &token),
        ]))
        .send()
        .await
        .unwrap()
}

pub async fn login(app: &TestApp, email: &str) -> AgentClient {
    let response = attempt_login(app, email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_value(&set_cookie(&response, "insurebot_session").expect("session cookie"));
    let mut agent = AgentClient {
        http: no_redirects(),
        base: app.address.clone(),
        cookie,
        csrf: String::new(),
    };
    let queue = agent.get("/console/queue").await;
    assert_eq!(queue.status(), StatusCode::OK);
    agent.csrf = csrf_in(&queue.text().await.unwrap());
    agent
}

impl AgentClient {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, format!("insurebot_session={}", self.cookie))
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, format!("insurebot_session={}", self.cookie))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields))
            .send()
            .await
            .unwrap()
    }

    /// The conversation's transcript fragment once `shows` holds for it (within 10 s): the page
    /// can lag a send by the result recorder's commit.
    pub async fn transcript_showing(
        &self,
        contact_id: i64,
        shows: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let fragment = self
                .get(&format!("/console/conversations/{contact_id}/transcript"))
                .await
                .text()
                .await
                .unwrap();
            if shows(&fragment) {
                return fragment;
            }
            assert!(
                Instant::now() < deadline,
                "not in the transcript: {fragment}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn take(&self, handoff_id: i64) -> reqwest::Response {
        self.post(
            &format!("/console/handoffs/{handoff_id}/take"),
            &[("csrf", &self.csrf)],
        )
        .await
    }
}

pub async fn add_agent(app: &TestApp, email: &str, role: Role) -> i64 {
    create_agent(&app.db, email, "Asha Rao", role, PASSWORD)
        .await
        .expect("agent created")
}

/// A policyholder asks for an agent; returns the waiting hand-off.
pub async fn queued_handoff(app: &TestApp, phone: &str) -> handoff::Model {
    app.post_webhook(&envelope(vec![text_message(
        phone,
        &new_wamid(),
        now_secs(),
        "agent",
    )]))
    .await;
    for _ in 0..300 {
        if let Some(h) = handoff::Entity::find()
            .filter(handoff::Column::State.eq("waiting"))
            .one(&app.db)
            .await
            .unwrap()
        {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no hand-off was queued");
}

async fn spawn_flows_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |s| s.dialogue.handler = DialogueMode::Flows).await
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_the_right_one_opens_the_queue() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;

        let wrong = attempt_login(&app, "asha@example.com", "not the password").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookie(&wrong, "insurebot_session").is_none());
        assert!(
            wrong
                .text()
                .await
                .unwrap()
                .contains("Wrong email or password")
        );
        let unknown = attempt_login(&app, "nobody@example.com", PASSWORD).await;
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

        let right = attempt_login(&app, "ASHA@example.com", PASSWORD).await;
        assert_eq!(right.status(), StatusCode::SEE_OTHER);
        assert_eq!(right.headers()[LOCATION], "/console/queue");
        let cookie = set_cookie(&right, "insurebot_session").unwrap();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(!cookie.contains("Secure"), "plain HTTP in tests: {cookie}");

        // No cookie: back to the login page.
        let anonymous = no_redirects()
            .get(format!("{}/console/queue", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
        assert_eq!(anonymous.headers()[LOCATION], "/console/login");
    }
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_tls() {
    let app = spawn_app_with(&Backend::Sqlite, |s| s.console.secure_cookies = true).await;
    add_agent(&app, "asha@example.com", Role::Agent).await;
    let right = attempt_login(&app, "asha@example.com", PASSWORD).await;
    let cookie = set_cookie(&right, "insurebot_session").unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        let queued = queued_handoff(&app, "919800000701").await;

        // The login form: no token, and a token that does not match the cookie.
        let http = no_redirects();
        let no_token = http
            .post(format!("{}/console/login", app.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("email", "asha@example.com"),
                ("password", PASSWORD),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
        let mismatched = http
            .post(format!("{}/console/login", app.address))
            .header(COOKIE, "insurebot_login_csrf=aaaa")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("email", "asha@example.com"),
                ("password", PASSWORD),
                ("csrf", "bbbb"),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(mismatched.status(), StatusCode::FORBIDDEN);

        let agent = login(&app, "asha@example.com").await;
        let path = format!("/console/handoffs/{}/take", queued.id);
        let missing = agent.post(&path, &[]).await;
        assert_eq!(missing.status(), StatusCode::FORBIDDEN);
        let wrong = agent.post(&path, &[("csrf", &"0".repeat(64))]).await;
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
        let row = handoff::Entity::find_by_id(queued.id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.state, "waiting", "a refused form changes nothing");
        let logout = agent.post("/console/logout", &[]).await;
        assert_eq!(logout.status(), StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn an_expired_or_ended_session_goes_back_to_the_login_page() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let id = add_agent(&app, "asha@example.com", Role::Agent).await;
        let agent = login(&app, "asha@example.com").await;
        expire_sessions_now(&app.db, id).await.unwrap();
        let after = agent.get("/console/queue").await;
        assert_eq!(after.status(), StatusCode::SEE_OTHER);
        assert_eq!(after.headers()[LOCATION], "/console/login");

        let agent = login(&app, "asha@example.com").await;
        let out = agent
            .post("/console/logout", &[("csrf", &agent.csrf)])
            .await;
        assert_eq!(out.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            agent.get("/console/queue").await.status(),
            StatusCode::SEE_OTHER
        );
    }
}

#[tokio::test]
async fn an_agent_cannot_open_the_supervisor_dashboard_and_a_supervisor_sees_charts() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        add_agent(&app, "sup@example.com", Role::Supervisor).await;
        let agent = login(&app, "asha@example.com").await;
        let refused = agent.get("/console/dashboard").await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(!refused.text().await.unwrap().contains("<svg"));

        app.post_webhook(&envelope(vec![text_message(
            "919800000702",
            &new_wamid(),
            now_secs(),
            "hello",
        )]))
        .await;
        app.wait_for_sends(1).await;
        let supervisor = login(&app, "sup@example.com").await;
        let page = supervisor.get("/console/dashboard").await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.matches("<svg class=\"chart\"").count() >= 4, "{html}");
        assert!(
            html.contains("<rect class=\"s-in\""),
            "an inbound bar: {html}"
        );
    }
}

#[tokio::test]
async fn repeated_failed_logins_are_limited_per_email_and_per_address() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.console.login_max_failures = 3;
            s.console.login_max_failures_per_ip = 5;
        })
        .await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        add_agent(&app, "ravi@example.com", Role::Agent).await;
        for _ in 0..3 {
            let r = attempt_login(&app, "asha@example.com", "guess").await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        // Even the right password is refused while the limit holds.
        let limited = attempt_login(&app, "asha@example.com", PASSWORD).await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        // Another account from the same address still works until the address limit.
        let ok = attempt_login(&app, "ravi@example.com", PASSWORD).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        for _ in 0..2 {
            attempt_login(&app, "someone@example.com", "guess").await;
        }
        let by_address = attempt_login(&app, "ravi@example.com", PASSWORD).await;
        assert_eq!(by_address.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test]
async fn two_agents_taking_one_conversation_at_once_exactly_one_wins() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        let asha = add_agent(&app, "asha@example.com", Role::Agent).await;
        let ravi = add_agent(&app, "ravi@example.com", Role::Agent).await;
        let queued = queued_handoff(&app, "919800000703").await;
        let a = login(&app, "asha@example.com").await;
        let b = login(&app, "ravi@example.com").await;
        for _round in 0..1 {
            let (ra, rb) = tokio::join!(a.take(queued.id), b.take(queued.id));
            let statuses = [ra.status(), rb.status()];
            assert_eq!(
                statuses
                    .iter()
                    .filter(|s| **s == StatusCode::SEE_OTHER)
                    .count(),
                1,
                "{statuses:?}"
            );
            assert_eq!(
                statuses
                    .iter()
                    .filter(|s| **s == StatusCode::CONFLICT)
                    .count(),
                1,
                "{statuses:?}"
            );
            let winner = if ra.status() == StatusCode::SEE_OTHER {
                asha
            } else {
                ravi
            };
            let row = handoff::Entity::find_by_id(queued.id)
                .one(&app.db)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.state, "taken");
            assert_eq!(row.agent_id, Some(winner));
            let conv = conversation::Entity::find_by_id(queued.contact_id)
                .one(&app.db)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(conv.mode, "with_agent");
        }
        // A third try after the race is refused too.
        assert_eq!(a.take(queued.id).await.status(), StatusCode::CONFLICT);
    }
}

#[tokio::test]
async fn the_bot_is_quiet_while_an_agent_answers_and_back_at_the_menu_after_close() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        let phone = "919800000704";
        let queued = queued_handoff(&app, phone).await;
        app.wait_for_sends(1).await; // "connecting you to our team"
        let agent = login(&app, "asha@example.com").await;
        assert_eq!(agent.take(queued.id).await.status(), StatusCode::SEE_OTHER);

        // The policyholder writes: stored, shown to the agent, not answered by the bot.
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            now_secs() + 1,
            "my claim is stuck",
        )]))
        .await;
        app.assert_no_more_sends(1).await;
        let page = agent
            .get(&format!("/console/conversations/{}", queued.contact_id))
            .await;
        let html = page.text().await.unwrap();
        assert!(html.contains("my claim is stuck"), "{html}");
        assert!(
            html.contains("id=\"reply-text\" name=\"text\""),
            "reply box enabled: {html}"
        );

        // The agent's reply reaches the Cloud API.
        let sent = agent
            .post(
                &format!("/console/conversations/{}/reply", queued.contact_id),
                &[
                    ("csrf", &agent.csrf),
                    ("text", "Hello, this is Asha. Let me check."),
                ],
            )
            .await;
        assert_eq!(sent.status(), StatusCode::SEE_OTHER);
        let sends = app.wait_for_sends(2).await;
        assert_eq!(text_of(&sends[1]), "Hello, this is Asha. Let me check.");
        assert_eq!(recipient_of(&sends[1]), phone);

        // A failed delivery shows with its reason in the transcript.
        let wamid = sends[1].wamid.clone().unwrap();
        let mut failed = status(&wamid, "failed", now_secs());
        failed["errors"] =
            serde_json::json!([{ "code": 131026, "title": "Message undeliverable" }]);
        app.post_webhook(&status_envelope(vec![failed])).await;
        // The fake has the reply before the result recorder has written the row as sent; the
        // stored status joins the row then, so the transcript shows it a moment later.
        agent
            .transcript_showing(queued.contact_id, |fragment| {
                fragment.contains("Message undeliverable (131026)")
            })
            .await;

        // Close: back to the bot, whose next answer is the menu.
        let closed = agent
            .post(
                &format!("/console/handoffs/{}/close", queued.id),
                &[("csrf", &agent.csrf)],
            )
            .await;
        assert_eq!(closed.status(), StatusCode::SEE_OTHER);
        let sends = assert_back_with_the_bot(&app, queued.contact_id, phone, 2).await;
        // The transcript shows the menu with its rows, not just its text: what the
        // policyholder could tap is part of the conversation. Closed, the conversation is no
        // longer Asha's to read; a supervisor reads it.
        assert_eq!(
            agent
                .get(&format!("/console/conversations/{}", queued.contact_id))
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
        add_agent(&app, "sona@example.com", Role::Supervisor).await;
        let supervisor = login(&app, "sona@example.com").await;
        let rows: Vec<String> = sends[2].body["interactive"]["action"]["sections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|section| section["rows"].as_array().unwrap().clone())
            .map(|row| row["title"].as_str().unwrap().to_owned())
            .collect();
        assert!(rows.len() >= 3, "{rows:?}");
        let escaped = |t: &str| t.replace('&', "&amp;").replace('\'', "&#x27;");
        supervisor
            .transcript_showing(queued.contact_id, |fragment| {
                rows.iter()
                    .all(|r| fragment.contains(&format!("<li>{}</li>", escaped(r))))
            })
            .await;
    }
}

#[tokio::test]
async fn a_conversation_the_agent_left_idle_is_closed_and_the_bot_answers_again() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        let queued = queued_handoff(&app, "919800000709").await;
        app.wait_for_sends(1).await;
        let agent = login(&app, "asha@example.com").await;
        agent.take(queued.id).await;
        // The app's own limit is 8 office hours; this timer's is one minute, always open.
        let timer = timer_runner(
            &app,
            &backend,
            chrono::Duration::hours(4),
            None,
            Some(chrono::Duration::minutes(1)),
            None,
        )
        .await;
        let close = async |after: chrono::Duration| {
            timer
                .close_idle_agent_conversations(&app.db, "timer", chrono::Utc::now() + after)
                .await
                .unwrap()
        };
        assert_eq!(
            close(chrono::Duration::seconds(30)).await,
            0,
            "not idle yet"
        );
        assert_eq!(close(chrono::Duration::minutes(2)).await, 1);
        let row = handoff::Entity::find_by_id(queued.id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.state, "closed");
        assert_eq!(close(chrono::Duration::minutes(2)).await, 0, "once");
        // Nothing was said to the policyholder; their next message gets the bot's menu.
        app.assert_no_more_sends(1).await;
        assert_back_with_the_bot(&app, queued.contact_id, "919800000709", 1).await;
    }
}

#[tokio::test]
async fn a_message_the_agent_leaves_unanswered_puts_the_conversation_back_in_the_queue() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        add_agent(&app, "ravi@example.com", Role::Agent).await;
        let phone = "919800000710";
        let queued = queued_handoff(&app, phone).await;
        app.wait_for_sends(1).await;
        let asha = login(&app, "asha@example.com").await;
        asha.take(queued.id).await;
        let timer = timer_runner(
            &app,
            &backend,
            chrono::Duration::hours(4),
            None,
            None,
            Some(chrono::Duration::minutes(1)),
        )
        .await;
        let requeue = async |after: chrono::Duration| {
            timer
                .requeue_unanswered(&app.db, "timer", chrono::Utc::now() + after)
                .await
                .unwrap()
        };
        // Asha answered; the policyholder has nothing waiting.
        let reply = asha
            .post(
                &format!("/console/conversations/{}/reply", queued.contact_id),
                &[("csrf", &asha.csrf), ("text", "Hello, Asha here.")],
            )
            .await;
        assert_eq!(reply.status(), StatusCode::SEE_OTHER);
        app.wait_for_sends(2).await;
        assert_eq!(requeue(chrono::Duration::minutes(2)).await, 0, "answered");
        // The policyholder writes; Asha says nothing.
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            now_secs() + 1,
            "Are you there?",
        )]))
        .await;
        // Processed (the bot stays quiet), so the timer does not meet the pipeline's lease.
        let deadline = Instant::now() + Duration::from_secs(10);
        while inbound_message::Entity::find()
            .filter(inbound_message::Column::ContactId.eq(queued.contact_id))
            .filter(inbound_message::Column::ProcessedAt.is_null())
            .count(&app.db)
            .await
            .unwrap()
            > 0
        {
            assert!(Instant::now() < deadline, "the message was not processed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(requeue(chrono::Duration::seconds(30)).await, 0, "not yet");
        assert_eq!(requeue(chrono::Duration::minutes(2)).await, 1);
        let row = handoff::Entity::find_by_id(queued.id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.state.as_str(), row.agent_id), ("waiting", None));
        let conv = conversation::Entity::find_by_id(queued.contact_id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(conv.mode, "waiting_for_agent");
        // Back in the queue for anyone: Ravi takes it, and Asha can no longer reply.
        let ravi = login(&app, "ravi@example.com").await;
        assert_eq!(ravi.take(queued.id).await.status(), StatusCode::SEE_OTHER);
        let late = asha
            .post(
                &format!("/console/conversations/{}/reply", queued.contact_id),
                &[("csrf", &asha.csrf), ("text", "Sorry, I was away.")],
            )
            .await;
        // Ravi's conversation now: Asha may not even open it.
        assert_eq!(late.status(), StatusCode::FORBIDDEN);
        app.assert_no_more_sends(2).await;
    }
}

/// The conversation is the bot's again: its mode says so, and the policyholder's next message
/// (after `sent` sends) is answered with the menu list. Returns every send so far.
async fn assert_back_with_the_bot(
    app: &TestApp,
    contact_id: i64,
    phone: &str,
    sent: usize,
) -> Vec<insurebot::whatsapp::fake::ReceivedRequest> {
    let conv = conversation::Entity::find_by_id(contact_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conv.mode, "bot");
    app.post_webhook(&envelope(vec![text_message(
        phone,
        &new_wamid(),
        now_secs() + 2,
        "thanks",
    )]))
    .await;
    let sends = app.wait_for_sends(sent + 1).await;
    assert_eq!(
        sends[sent].body["interactive"]["type"], "list",
        "{:?}",
        sends[sent].body
    );
    sends
}

#[tokio::test]
async fn stop_still_works_while_an_agent_has_the_conversation() {
    let app = spawn_flows_app(&Backend::Sqlite).await;
    add_agent(&app, "asha@example.com", Role::Agent).await;
    let phone = "919800000705";
    let queued = queued_handoff(&app, phone).await;
    app.wait_for_sends(1).await;
    let agent = login(&app, "asha@example.com").await;
    agent.take(queued.id).await;
    app.post_webhook(&envelope(vec![text_message(
        phone,
        &new_wamid(),
        now_secs() + 1,
        "STOP",
    )]))
    .await;
    let sends = app.wait_for_sends(2).await;
    assert_eq!(sends[1].body["type"], "text");
    let conv = conversation::Entity::find_by_id(queued.contact_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conv.mode, "opted_out_quiet");
}

#[tokio::test]
async fn once_the_window_has_closed_only_templates_are_offered_and_free_text_is_refused() {
    let app = spawn_flows_app(&Backend::Sqlite).await;
    add_agent(&app, "asha@example.com", Role::Agent).await;
    let queued = queued_handoff(&app, "919800000706").await;
    let agent = login(&app, "asha@example.com").await;
    agent.take(queued.id).await;
    insurebot::http::console::pages::move_window_back(&app.db, queued.contact_id, 25)
        .await
        .unwrap();
    // A bot message decided after the window closed, with no template: the transcript says
    // it was not sent, and why (it used to show "✓ sent").
    let skipped = insurebot::messaging::composer::queue(
        &app.db,
        &crate::consent::composer_for(&app),
        insurebot::messaging::composer::Intent {
            contact_id: queued.contact_id,
            in_reply_to: None,
            purpose: insurebot::messaging::composer::Purpose::Notification {
                kind: "claim_update".into(),
                essential: true,
            },
            free_form: Some(insurebot::whatsapp::outbound::OutboundBody::Text {
                body: "Your claim moved on".into(),
                preview_url: false,
            }),
            template: None,
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(
            skipped,
            insurebot::messaging::composer::Queued::Skipped { .. }
        ),
        "{skipped:?}"
    );
    let fragment = agent
        .transcript_showing(queued.contact_id, |f| f.contains("Your claim moved on"))
        .await;
    let line = fragment
        .split("<div class=\"line ")
        .find(|l| l.contains("Your claim moved on"))
        .unwrap_or_else(|| panic!("the skipped message in the transcript: {fragment}"));
    assert!(line.contains("⊘ not sent"), "{line}");
    assert!(!line.contains("✓ sent"), "{line}");
    assert!(
        line.contains(
            "Not sent: the 24-hour window had closed and there is no template to send instead"
        ),
        "{line}"
    );
    let html = agent
        .get(&format!("/console/conversations/{}", queued.contact_id))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("textarea id=\"reply-text\" rows=\"2\" disabled"),
        "{html}"
    );
    assert!(html.contains("agent_unavailable"), "{html}");
    let refused = agent
        .post(
            &format!("/console/conversations/{}/reply", queued.contact_id),
            &[("csrf", &agent.csrf), ("text", "hello?")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    app.assert_no_more_sends(1).await;

    // A template with the wrong number of parameters is refused; an approved one goes.
    let template_path = format!("/console/conversations/{}/template", queued.contact_id);
    let wrong = agent
        .post(
            &template_path,
            &[
                ("csrf", &agent.csrf),
                ("template", "claim_status_update|en"),
                ("param", "CLM-123456"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::CONFLICT);
    let unknown = agent
        .post(
            &template_path,
            &[("csrf", &agent.csrf), ("template", "made_up|en")],
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::CONFLICT);
    app.assert_no_more_sends(1).await;
    let sent = agent
        .post(
            &template_path,
            &[
                ("csrf", &agent.csrf),
                ("template", "claim_status_update|en"),
                ("param", "CLM-123456"),
                ("param", "Under review"),
            ],
        )
        .await;
    assert!(sent.status().is_redirection(), "{}", sent.status());
    let sends = app.wait_for_sends(2).await;
    assert_eq!(sends[1].body["type"], "template");
    assert_eq!(sends[1].body["template"]["name"], "claim_status_update");
}

#[tokio::test]
async fn transfer_gives_the_conversation_to_another_agent() {
    let app = spawn_flows_app(&Backend::Sqlite).await;
    add_agent(&app, "asha@example.com", Role::Agent).await;
    let ravi = add_agent(&app, "ravi@example.com", Role::Agent).await;
    let queued = queued_handoff(&app, "919800000707").await;
    let asha = login(&app, "asha@example.com").await;
    asha.take(queued.id).await;
    let ravi_client = login(&app, "ravi@example.com").await;
    // Ravi cannot transfer what he does not have.
    let refused = ravi_client
        .post(
            &format!("/console/handoffs/{}/transfer", queued.id),
            &[("csrf", &ravi_client.csrf), ("to_agent", &ravi.to_string())],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let moved = asha
        .post(
            &format!("/console/handoffs/{}/transfer", queued.id),
            &[("csrf", &asha.csrf), ("to_agent", &ravi.to_string())],
        )
        .await;
    assert_eq!(moved.status(), StatusCode::SEE_OTHER);
    let row = handoff::Entity::find_by_id(queued.id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.agent_id, Some(ravi));
}

#[tokio::test]
async fn outside_office_hours_the_policyholder_is_told_when_an_agent_will_reply() {
    let today = chrono::Utc::now().format("%a").to_string().to_lowercase();
    let other_days: Vec<&str> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .into_iter()
        .filter(|d| *d != today)
        .collect();
    let days = other_days.join(",");
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.dialogue.handler = DialogueMode::Flows;
        s.console.office_days = days.clone();
        s.console.utc_offset = "+00:00".into();
        s.console.timezone_label = "UTC".into();
    })
    .await;
    queued_handoff(&app, "919800000708").await;
    let sends = app.wait_for_sends(2).await;
    let notice = text_of(&sends[1]);
    assert!(notice.contains("outside those hours"), "{notice}");
    assert!(notice.contains("00:00–24:00 UTC"), "{notice}");
    let contact = contact::Entity::find().one(&app.db).await.unwrap().unwrap();
    assert!(contact.last_inbound_at.is_some());
}

#[tokio::test]
async fn the_simulator_talks_through_the_webhook_and_shows_replies_with_ticks_in_sandbox_mode() {
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.dialogue.handler = DialogueMode::Flows;
        s.whatsapp.access_token = None;
        s.whatsapp.app_secret = None;
    })
    .await;
    let page = app.get("/simulator").await;
    assert_eq!(page.status(), StatusCode::OK);
    let phone = "919800000709";
    let sent = app
        .http
        .post(format!("{}/simulator/send", app.address))
        .json(&serde_json::json!({ "phone": phone, "kind": "text", "text": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
    let mut menu = serde_json::Value::Null;
    for _ in 0..200 {
        let v: serde_json::Value = app
            .get(&format!("/simulator/messages?phone={phone}"))
            .await
            .json()
            .await
            .unwrap();
        if let Some(m) = v["messages"].as_array().and_then(|a| a.first()) {
            menu = m.clone();
            assert_eq!(v["window_open"], true);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(menu["body"]["interactive"]["type"], "list", "{menu}");
    let ack = app
        .http
        .post(format!("{}/simulator/ack", app.address))
        .json(&serde_json::json!({ "phone": phone, "wamid": menu["wamid"], "status": "read" }))
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), StatusCode::OK);
    let v: serde_json::Value = app
        .get(&format!("/simulator/messages?phone={phone}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["messages"][0]["status"], "read");
    let closed = app
        .http
        .post(format!("{}/simulator/window", app.address))
        .json(&serde_json::json!({ "phone": phone }))
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), StatusCode::NO_CONTENT);
    let v: serde_json::Value = app
        .get(&format!("/simulator/messages?phone={phone}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["window_open"], false);
}

#[tokio::test]
async fn the_simulator_does_not_exist_outside_sandbox_mode() {
    let app = spawn_app(&Backend::Sqlite).await;
    assert_eq!(app.get("/simulator").await.status(), StatusCode::NOT_FOUND);
    let sent = app
        .http
        .post(format!("{}/simulator/send", app.address))
        .json(&serde_json::json!({ "phone": "919800000710", "kind": "text", "text": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_open_event_stream_does_not_hold_up_shutdown() {
    let mut app = spawn_app(&Backend::Sqlite).await;
    add_agent(&app, "asha@example.com", Role::Agent).await;
    let agent = login(&app, "asha@example.com").await;
    let mut stream = agent.get("/console/queue/events").await;
    assert_eq!(stream.status(), StatusCode::OK);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("a first event")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: update"));
    tokio::time::timeout(Duration::from_secs(10), app.shutdown())
        .await
        .expect("shutdown finished with a console tab open");
}

#[tokio::test]
async fn the_context_panel_shows_verified_policies_open_claims_and_premiums_due_only() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        assert!(
            insurebot::insurer::load_sample_if_empty(&app.db)
                .await
                .unwrap()
        );
        add_agent(&app, "asha@example.com", Role::Agent).await;
        let owner = "919812345678";
        // Entering the claim flow verifies the registered number.
        app.post_webhook(&envelope(vec![text_message(
            owner,
            &new_wamid(),
            now_secs() - 5,
            "claim",
        )]))
        .await;
        app.wait_for_sends(1).await;
        let queued = queued_handoff(&app, owner).await;
        let agent = login(&app, "asha@example.com").await;
        agent.take(queued.id).await;
        let html = agent
            .get(&format!("/console/conversations/{}", queued.contact_id))
            .await
            .text()
            .await
            .unwrap();
        assert!(html.contains("Arogya Family Floater"), "{html}");
        assert!(
            html.contains("CLM-240311") && html.contains("under review"),
            "{html}"
        );
        assert!(
            !html.contains("CLM-240127"),
            "a settled claim is not open: {html}"
        );
        assert!(html.contains("id=\"premiums-due\""), "{html}");
        assert!(
            !html.contains("H-2023/100245"),
            "policy numbers are masked: {html}"
        );

        // Someone who never verified shows nothing about anyone (the first hand-off is taken,
        // so the waiting one is theirs).
        let stranger = queued_handoff(&app, "919811112222").await;
        agent.take(stranger.id).await;
        let html = agent
            .get(&format!("/console/conversations/{}", stranger.contact_id))
            .await
            .text()
            .await
            .unwrap();
        assert!(html.contains("Not verified for any policy"), "{html}");
        assert!(!html.contains("Arogya"), "{html}");
    }
}
