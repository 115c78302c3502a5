//! Issue 16, console and privacy: who may read which transcript and the log of every reading
//! (item 3), one money type so the console says the premium the bot says (item 4), "what the
//! bot knows" without full policy numbers or pay links (item 5), and the security headers on
//! every console and simulator response (item 6).

use std::time::Duration;

use insurebot::config::DialogueMode;
use insurebot::http::console::auth::Role;
use insurebot::store::entities::{contact, transcript_view};
use insurebot::whatsapp::fake::ReceivedRequest;
use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::console::{AgentClient, add_agent, login, queued_handoff};
use crate::helpers::*;

/// The sample policyholder with three policies (see `src/insurer/sample/`).
const RAJESH: &str = "919812345678";

async fn flows_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.dialogue.handler = DialogueMode::Flows;
        crate::consent::configure(s);
    })
    .await
}

/// A contact who wrote to the bot and was answered, never handed off; returns their id.
async fn chatting_contact(app: &TestApp, phone: &str, sends_before: usize) -> i64 {
    app.post_webhook(&envelope(vec![text_message(
        phone,
        &new_wamid(),
        now_secs(),
        "hi",
    )]))
    .await;
    app.wait_for_sends(sends_before + 1).await;
    contact::Entity::find()
        .filter(contact::Column::WaId.eq(phone))
        .one(&app.db)
        .await
        .unwrap()
        .expect("the contact")
        .id
}

/// The status of every route that shows or changes the conversation of `contact_id` (hand-off
/// `handoff_id`), as `client` sees them.
async fn statuses(client: &AgentClient, contact_id: i64, handoff_id: i64) -> Vec<(String, u16)> {
    let c = format!("/console/conversations/{contact_id}");
    let h = format!("/console/handoffs/{handoff_id}");
    let csrf = client.csrf.clone();
    let mut out = Vec::new();
    for path in [c.clone(), format!("{c}/transcript"), format!("{c}/events")] {
        out.push((path.clone(), client.get(&path).await.status().as_u16()));
    }
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("{c}/reply"),
            vec![("csrf", &csrf), ("text", "Hello from a stranger")],
        ),
        (
            format!("{c}/template"),
            vec![("csrf", &csrf), ("template", "x|en")],
        ),
        (
            format!("{h}/transfer"),
            vec![("csrf", &csrf), ("to_agent", "1")],
        ),
        (format!("{h}/close"), vec![("csrf", &csrf)]),
    ];
    for (path, fields) in posts {
        let status = client.post(&path, &fields).await.status().as_u16();
        out.push((path, status));
    }
    out
}

async fn queue_rows(client: &AgentClient) -> String {
    client
        .get("/console/queue/rows")
        .await
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_agent_opens_only_conversations_waiting_or_theirs_and_every_other_route_is_refused() {
    for backend in backends() {
        let app = flows_app(&backend).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        add_agent(&app, "ravi@example.com", Role::Agent).await;
        add_agent(&app, "sona@example.com", Role::Supervisor).await;
        // One policyholder only ever talked to the bot; another asked for a person.
        let bot_only = chatting_contact(&app, "919800001111", 0).await;
        let queued = queued_handoff(&app, "919800002222").await;
        let asha = login(&app, "asha@example.com").await;
        let ravi = login(&app, "ravi@example.com").await;
        let sona = login(&app, "sona@example.com").await;

        // Waiting in the queue: any agent may look before taking it.
        let waiting_page = format!("/console/conversations/{}", queued.contact_id);
        assert_eq!(ravi.get(&waiting_page).await.status(), StatusCode::OK);
        assert_eq!(asha.take(queued.id).await.status(), StatusCode::SEE_OTHER);

        // Asha's now: Ravi is refused everywhere, pages, fragments, streams and actions.
        for (path, status) in statuses(&ravi, queued.contact_id, queued.id).await {
            assert_eq!(status, 403, "{backend:?} {path}");
        }
        // Never handed off: no agent may read it; an unknown id tells nothing either.
        for (path, status) in statuses(&asha, bot_only, queued.id + 1000).await {
            assert_eq!(status, 403, "{backend:?} {path}");
        }
        assert_eq!(
            asha.get("/console/conversations/999999").await.status(),
            StatusCode::FORBIDDEN
        );
        // Ravi's queue no longer lists Asha's conversation; hers does.
        let link = format!("href=\"/console/conversations/{}\"", queued.contact_id);
        assert!(!queue_rows(&ravi).await.contains(&link), "{backend:?}");
        assert!(queue_rows(&asha).await.contains(&link), "{backend:?}");

        // The holder and a supervisor may read both.
        for path in [
            waiting_page.clone(),
            format!("{waiting_page}/transcript"),
            format!("{waiting_page}/events"),
        ] {
            assert_eq!(asha.get(&path).await.status(), StatusCode::OK, "{path}");
        }
        for contact_id in [queued.contact_id, bot_only] {
            let page = format!("/console/conversations/{contact_id}");
            assert_eq!(sona.get(&page).await.status(), StatusCode::OK, "{page}");
            let fragment = sona.get(&format!("{page}/transcript")).await;
            assert_eq!(fragment.status(), StatusCode::OK);
        }
        // Nothing Ravi tried reached the policyholder or changed the hand-off.
        let row = insurebot::store::entities::handoff::Entity::find_by_id(queued.id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.state, "taken");
        assert!(
            !app.sent_messages()
                .iter()
                .any(|s| text_of(s).contains("stranger")),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn every_transcript_reading_is_logged_and_only_admins_see_the_log() {
    for backend in backends() {
        let app = flows_app(&backend).await;
        let asha_id = add_agent(&app, "asha@example.com", Role::Agent).await;
        let sona_id = add_agent(&app, "sona@example.com", Role::Supervisor).await;
        add_agent(&app, "adi@example.com", Role::Admin).await;
        let phone = "919800003333";
        let queued = queued_handoff(&app, phone).await;
        let bot_only = chatting_contact(&app, "919800004444", app.sent_messages().len()).await;
        let asha = login(&app, "asha@example.com").await;
        let sona = login(&app, "sona@example.com").await;
        let adi = login(&app, "adi@example.com").await;

        // Asha opens the waiting conversation, and its transcript refreshes twice.
        let page = format!("/console/conversations/{}", queued.contact_id);
        assert_eq!(asha.get(&page).await.status(), StatusCode::OK);
        for _ in 0..2 {
            let r = asha.get(&format!("{page}/transcript")).await;
            assert_eq!(r.status(), StatusCode::OK);
        }
        // A refused reading is not a reading.
        let refused = asha
            .get(&format!("/console/conversations/{bot_only}"))
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        // The supervisor reads the conversation that was never handed off.
        assert_eq!(
            sona.get(&format!("/console/conversations/{bot_only}"))
                .await
                .status(),
            StatusCode::OK
        );

        let rows = transcript_view::Entity::find()
            .order_by_asc(transcript_view::Column::Id)
            .all(&app.db)
            .await
            .unwrap();
        let summary: Vec<(i64, i64, &str, i32)> = rows
            .iter()
            .map(|r| (r.agent_id, r.contact_id, r.role.as_str(), r.views))
            .collect();
        assert_eq!(
            summary,
            [
                (asha_id, queued.contact_id, "agent", 3),
                (sona_id, bot_only, "supervisor", 1)
            ],
            "{backend:?}"
        );
        assert!(rows.iter().all(|r| r.first_at <= r.last_at));

        // Only admins see the log, with the policyholder's number masked.
        for client in [&asha, &sona] {
            let r = client.get("/console/views").await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{backend:?}");
        }
        let log = adi.get("/console/views").await;
        assert_eq!(log.status(), StatusCode::OK);
        let html = log.text().await.unwrap();
        assert!(html.contains("asha@example.com") && html.contains("sona@example.com"));
        assert!(html.contains("********3333"), "{html}");
        assert!(!html.contains(phone), "the number is masked: {html}");
        assert!(html.contains("Transcript views"), "{html}");
    }
}

#[tokio::test]
async fn erasure_keeps_the_view_log_and_it_names_nobody_afterwards() {
    for backend in backends() {
        let app = flows_app(&backend).await;
        add_agent(&app, "adi@example.com", Role::Admin).await;
        let phone = "919800005555";
        let contact_id = chatting_contact(&app, phone, 0).await;
        let adi = login(&app, "adi@example.com").await;
        let page = format!("/console/conversations/{contact_id}");
        assert_eq!(adi.get(&page).await.status(), StatusCode::OK);
        let before = adi.get("/console/views").await.text().await.unwrap();
        assert!(before.contains("********5555"), "{before}");

        let erased = app
            .http
            .delete(format!("{}/api/v1/contacts/{phone}", app.address))
            .bearer_auth(crate::consent::API_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(erased.status(), StatusCode::OK);
        let receipt: Value = erased.json().await.unwrap();
        assert_eq!(
            receipt["tables"]["transcript_views (kept, anonymous)"], 1,
            "{backend:?} {receipt}"
        );
        // The audit row stays, pointing at the anonymous tombstone.
        let rows = transcript_view::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].contact_id, contact_id);
        let after = adi.get("/console/views").await.text().await.unwrap();
        assert!(
            after.contains(&format!("erased contact #{contact_id}")),
            "{after}"
        );
        assert!(!after.contains("5555"), "{after}");
    }
}

/// The title of the row `id` of a list message.
fn row_title(list: &ReceivedRequest, id: &str) -> String {
    list.body["interactive"]["action"]["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["rows"].as_array().cloned().unwrap_or_default())
        .find(|r| r["id"] == id)
        .and_then(|r| r["title"].as_str().map(str::to_owned))
        .expect("the row")
}

/// The text of the element with `id` (up to its first closing `</ul>` or `</dl>`).
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}: {html}"));
    let rest = &html[start..];
    let end = rest
        .find("</ul>")
        .into_iter()
        .chain(rest.find("</dl>"))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

#[tokio::test]
async fn the_console_shows_the_premium_the_bot_said_and_no_policy_number_or_pay_link() {
    for backend in backends() {
        let app = flows_app(&backend).await;
        assert!(
            insurebot::insurer::load_sample_if_empty(&app.db)
                .await
                .unwrap()
        );
        add_agent(&app, "asha@example.com", Role::Agent).await;
        // The bot: three policies to choose from, then the motor policy's premium.
        app.post_webhook(&envelope(vec![text_message(
            RAJESH,
            &new_wamid(),
            now_secs(),
            "premium",
        )]))
        .await;
        let list = app.wait_for_sends(1).await[0].clone();
        let title = row_title(&list, "M-2025/778812");
        app.post_webhook(&envelope(vec![json!({
            "from": RAJESH, "id": new_wamid(), "timestamp": now_secs().to_string(),
            "type": "interactive",
            "interactive": { "type": "list_reply",
                "list_reply": { "id": "M-2025/778812", "title": title } }
        })]))
        .await;
        let said = shown(&app.wait_for_sends(2).await[1]);
        assert!(said.contains("₹12,340"), "{backend:?}: {said}");
        assert!(
            said.contains("https://"),
            "the bot sends its pay link: {said}"
        );
        // They ask for a person; the agent takes the conversation.
        let queued = queued_handoff(&app, RAJESH).await;
        let asha = login(&app, "asha@example.com").await;
        asha.take(queued.id).await;
        let html = asha
            .get(&format!("/console/conversations/{}", queued.contact_id))
            .await
            .text()
            .await
            .unwrap();

        // Item 4: the same amount, formatted the same way.
        let due = section(&html, "premiums-due");
        assert!(due.contains("₹12,340 for"), "{backend:?}: {due}");
        assert!(!html.contains("₹12,34,000"), "{html}");

        // Item 5: labelled, masked values; no JSON, no full number, no link anywhere.
        let knows = section(&html, "bot-knows");
        assert!(
            knows.contains("<dt>Premium amount</dt><dd>₹12,340</dd>"),
            "{knows}"
        );
        assert!(
            knows.contains("<dt>Chosen policy</dt><dd>••••8812</dd>"),
            "{knows}"
        );
        assert!(knows.contains("<dt>Pay link</dt>"), "{knows}");
        assert!(!knows.contains('{') && !knows.contains("&quot;"), "{knows}");
        for number in ["M-2025/778812", "H-2023/100245", "L-2021/009876"] {
            let encoded = number.replace('/', "%2F");
            assert!(
                !html.contains(number) && !html.contains(&encoded),
                "{backend:?} {number}: {html}"
            );
        }
        assert!(!html.contains("pay.example.in"), "{html}");
        assert!(!html.contains("?t="), "no pay token: {html}");
        // The transcript says a link was sent, without it.
        let fragment = asha
            .transcript_showing(queued.contact_id, |f| f.contains("₹12,340"))
            .await;
        assert!(fragment.contains("[link not shown]"), "{fragment}");
        assert!(!fragment.contains("https://"), "{fragment}");
    }
}

/// The headers every console and simulator response carries.
fn assert_security_headers(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    let csp = h
        .get(CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(h[X_FRAME_OPTIONS], "DENY", "{what}");
    assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
    assert_eq!(h[REFERRER_POLICY], "no-referrer", "{what}");
}

/// Inline script, inline event handlers and `javascript:` URLs that the CSP would block.
fn assert_no_inline_script(html: &str, what: &str) {
    let lower = html.to_lowercase();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("<script") {
        let tag_end = rest[at..].find('>').unwrap() + at;
        assert!(
            rest[at..tag_end].contains(" src="),
            "{what}: inline script: {}",
            &rest[at..tag_end]
        );
        rest = &rest[tag_end..];
    }
    for handler in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " onchange=",
        "javascript:",
    ] {
        assert!(!lower.contains(handler), "{what}: {handler}");
    }
}

#[tokio::test]
async fn console_and_simulator_responses_carry_the_security_headers_and_no_inline_script() {
    for backend in backends() {
        // Sandbox mode (no access token) so the simulator exists too.
        let app = spawn_app_with(&backend, |s| {
            s.dialogue.handler = DialogueMode::Flows;
            s.whatsapp.access_token = None;
        })
        .await;
        add_agent(&app, "adi@example.com", Role::Admin).await;
        let queued = queued_handoff(&app, "919800006666").await;
        let adi = login(&app, "adi@example.com").await;
        let login_page = app.get("/console/login").await;
        assert_security_headers(&login_page, "login");
        let simulator = app.get("/simulator").await;
        assert_eq!(simulator.status(), StatusCode::OK, "{backend:?}");
        assert_security_headers(&simulator, "simulator");
        assert_no_inline_script(&simulator.text().await.unwrap(), "simulator");
        let c = format!("/console/conversations/{}", queued.contact_id);
        for path in [
            "/console/queue".to_owned(),
            c.clone(),
            "/console/dashboard".to_owned(),
            "/console/campaigns".to_owned(),
            "/console/views".to_owned(),
        ] {
            let r = adi.get(&path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_security_headers(&r, &path);
            // Pages with personal data stay out of the browser's disk cache.
            assert_eq!(r.headers()[CACHE_CONTROL], "no-store", "{path}");
            assert!(
                r.headers().get(STRICT_TRANSPORT_SECURITY).is_none(),
                "{path}"
            );
            let html = r.text().await.unwrap();
            assert_no_inline_script(&html, &path);
        }
        // Fragments, scripts, error pages and refusals carry them too.
        let mut events = adi.get(&format!("{c}/events")).await;
        assert_security_headers(&events, "events");
        let _ = tokio::time::timeout(Duration::from_secs(5), events.chunk()).await;
        drop(events);
        for path in [
            format!("{c}/transcript"),
            "/console/static/conversation.js".to_owned(),
            "/console/static/nothing.js".to_owned(),
            "/console/conversations/999999".to_owned(),
        ] {
            let r = adi.get(&path).await;
            assert_security_headers(&r, &path);
        }
        let script = adi.get("/console/static/conversation.js").await;
        assert!(
            script.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
        assert_eq!(
            adi.get("/console/static/nothing.js").await.status(),
            StatusCode::NOT_FOUND
        );
        // Not logged in: the redirect to the login page has them as well.
        assert_security_headers(&app.get("/console/queue").await, "redirect");
    }
}

#[tokio::test]
async fn hsts_is_sent_only_when_the_console_is_served_over_https() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let plain = app.get("/console/login").await;
        assert!(plain.headers().get(STRICT_TRANSPORT_SECURITY).is_none());
        let proxied = app
            .http
            .get(format!("{}/console/login", app.address))
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        assert_eq!(
            proxied.headers()[STRICT_TRANSPORT_SECURITY],
            "max-age=31536000",
            "{backend:?}"
        );
        // Other routes (the webhook, the API) are not the console's to mark.
        let health = app
            .http
            .get(format!("{}/healthz", app.address))
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        assert!(health.headers().get(CONTENT_SECURITY_POLICY).is_none());
        let secure = spawn_app_with(&backend, |s| s.console.secure_cookies = true).await;
        let r = secure.get("/console/login").await;
        assert_eq!(r.headers()[STRICT_TRANSPORT_SECURITY], "max-age=31536000");
        let off = spawn_app_with(&backend, |s| {
            s.console.secure_cookies = true;
            s.console.hsts_max_age_secs = 0;
        })
        .await;
        let r = off.get("/console/login").await;
        assert!(r.headers().get(STRICT_TRANSPORT_SECURITY).is_none());
        assert_security_headers(&r, "login, hsts off");
    }
}
