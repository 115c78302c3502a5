//! Issue 16, the HTTP edge: webhooks while the database is away (11), unsigned webhooks
//! refused before their body (12), wrong API tokens throttled and `/metrics` guarded (13),
//! and no full phone or policy number in error messages (14). On every backend.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use insurebot::app::Application;
use insurebot::config::{DatabaseUrl, Settings};
use insurebot::store::entities::inbound_message;
use insurebot::whatsapp::fake::{FakeCloudApi, FakeServer};
use insurebot::whatsapp::signature;
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use secrecy::SecretString;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

use crate::helpers::*;

const API_TOKEN: &str = "edge-api-token-0123456789";
const METRICS_TOKEN: &str = "edge-metrics-token-0123456789";

/// An app built by the test itself, for what `spawn_app` does not expose (its database URL,
/// the metrics listener); stopped by [`Running::stop`].
struct Running {
    address: String,
    metrics_port: Option<u16>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _fake: FakeServer,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
        }
    }
}

/// Test settings on a fresh database (kept alive by the returned `TestDb`) and a fake API.
async fn settings(backend: &Backend) -> (Settings, TestDb, FakeServer) {
    let fake = FakeCloudApi::new()
        .spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("fake Cloud API");
    let (settings, db) = test_settings_for(backend, &fake.base_url).await;
    (settings, db, fake)
}

async fn run(settings: Settings, fake: FakeServer) -> Running {
    let app = Application::build(settings).await.expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_port = app.metrics_port();
    let (stop, stopped) = oneshot::channel();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Running {
        address,
        metrics_port,
        stop: Some(stop),
        server: Some(server),
        _fake: fake,
    }
}

fn signed_post(http: &reqwest::Client, address: &str, body: &str) -> reqwest::RequestBuilder {
    http.post(format!("{address}/webhook"))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            signature::sign(APP_SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body.to_owned())
}

// ---------------------------------------------------------------------------------------
// 11. The database away.

/// A TCP proxy in front of PostgreSQL that can make the database unreachable the way a
/// network partition or a dead host does: connections through it are cut, and new ones are
/// accepted but never answered (a connect then hangs until the client's own timeout).
struct Blackhole {
    port: u16,
    state: Arc<Mutex<ProxyState>>,
}

#[derive(Default)]
struct ProxyState {
    down: bool,
    forwarding: Vec<JoinHandle<()>>,
    held: Vec<TcpStream>,
}

impl Blackhole {
    async fn start(upstream: String) -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut state = shared.lock().await;
                if state.down {
                    state.held.push(client);
                    continue;
                }
                let upstream = upstream.clone();
                state.forwarding.push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Blackhole { port, state }
    }

    async fn cut(&self) {
        let mut state = self.state.lock().await;
        state.down = true;
        for task in state.forwarding.drain(..) {
            task.abort();
        }
    }

    async fn restore(&self) {
        let mut state = self.state.lock().await;
        state.down = false;
        state.held.clear();
    }
}

/// `postgres://user@host:port/db` with `host:port` replaced.
fn via(url: &str, authority: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user_host, path) = rest.split_once('/').unwrap();
    let user = user_host
        .rsplit_once('@')
        .map_or(String::new(), |(u, _)| format!("{u}@"));
    format!("{scheme}://{user}{authority}/{path}")
}

fn host_port(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let host = rest.split('/').next().unwrap();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// How a test takes the database away and gives it back.
enum Outage {
    /// Another connection holds SQLite's write lock (a backup, an operator's shell) past the
    /// server's 10 s busy timeout.
    SqliteLocked(sea_orm::DatabaseTransaction),
    PostgresUnreachable(Blackhole),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_away_a_webhook_gets_503_at_once_and_after_it_is_stored_once() {
    for backend in backends() {
        let (mut settings, db, fake) = settings(&backend).await;
        let proxy = match &backend {
            Backend::Sqlite => None,
            Backend::Postgres(_) => {
                let proxy = Blackhole::start(host_port(&db.url)).await;
                settings.database_url =
                    DatabaseUrl::new(via(&db.url, &format!("127.0.0.1:{}", proxy.port)));
                Some(proxy)
            }
        };
        let app = run(settings, fake).await;
        let direct = crate::helpers::connect_direct(&db.url).await;
        // Longer than the old hang (the SQLite busy timeout, 10 s), shorter than the server's
        // request timeout (30 s): without the fix the attempt fails on the bound below.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let warm = envelope(vec![text_message(
            "919800000101",
            &new_wamid(),
            now_secs(),
            "hi",
        )]);
        let r = signed_post(&http, &app.address, &warm)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{backend:?}: before the outage");

        let outage = match proxy {
            None => Outage::SqliteLocked(
                direct
                    .begin_with_options(TransactionOptions {
                        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                        ..Default::default()
                    })
                    .await
                    .expect("take the write lock"),
            ),
            Some(proxy) => {
                proxy.cut().await;
                Outage::PostgresUnreachable(proxy)
            }
        };
        let wamid = new_wamid();
        let body = envelope(vec![text_message(
            "919800000102",
            &wamid,
            now_secs(),
            "down?",
        )]);
        // Several deliveries during the outage: the first may meet a connection that is already
        // cut (an error at once); the next ones have to open a new one, which never answers.
        for attempt in 1..=3 {
            let started = Instant::now();
            let answer = signed_post(&http, &app.address, &body).send().await;
            let took = started.elapsed();
            let r = answer.unwrap_or_else(|e| {
                panic!("{backend:?}: attempt {attempt} got no answer in {took:?}: {e}")
            });
            assert_eq!(r.status(), 503, "{backend:?}: attempt {attempt}");
            assert_eq!(
                r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
                Some("1"),
                "{backend:?}: attempt {attempt}"
            );
            // The limit is 1 s; the bound is generous for a loaded machine, and far below the
            // old hang (10 s on SQLite, 30 s on PostgreSQL).
            assert!(
                took < Duration::from_secs(3),
                "{backend:?}: attempt {attempt} took {took:?}"
            );
        }

        match outage {
            Outage::SqliteLocked(lock) => lock.rollback().await.unwrap(),
            Outage::PostgresUnreachable(proxy) => proxy.restore().await,
        }
        // Redelivered like Meta does, until it is acknowledged.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = signed_post(&http, &app.address, &body).send().await;
            if r.as_ref().is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{backend:?}: not acknowledged after the outage: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let stored = inbound_message::Entity::find()
            .filter(inbound_message::Column::Wamid.eq(wamid.as_str()))
            .count(&direct)
            .await
            .unwrap();
        assert_eq!(stored, 1, "{backend:?}: stored exactly once");
        app.stop().await;
    }
}

// ---------------------------------------------------------------------------------------
// 12. Unsigned webhooks.

/// Sends the head of a POST /webhook announcing 3 MB, and a little of the body, then keeps
/// the connection open; returns the status line of the answer, if one comes within 10 s.
async fn status_of_unfinished_post(address: &str, signature: Option<&str>) -> Option<String> {
    let authority = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).await.unwrap();
    let signature = signature
        .map(|s| format!("x-hub-signature-256: {s}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
         {signature}content-length: 3000000\r\n\r\n{{\"object\":\"whatsapp_business_account\","
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await;
    let n = read.ok()?.ok()?;
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    text.lines().next().map(str::to_owned)
}

#[tokio::test]
async fn a_webhook_without_a_valid_signature_header_is_refused_before_its_body_arrives() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let missing = status_of_unfinished_post(&app.address, None).await;
        assert_eq!(
            missing.as_deref(),
            Some("HTTP/1.1 401 Unauthorized"),
            "{backend:?}: no signature header"
        );
        let malformed = status_of_unfinished_post(&app.address, Some("sha256=nothex")).await;
        assert_eq!(
            malformed.as_deref(),
            Some("HTTP/1.1 403 Forbidden"),
            "{backend:?}: a malformed signature header"
        );
        // Signed ones still go through.
        let r = app
            .post_webhook(&envelope(vec![text_message(
                "919800000201",
                &new_wamid(),
                now_secs(),
                "signed",
            )]))
            .await;
        assert_eq!(r.status(), 200, "{backend:?}");
    }
}

// ---------------------------------------------------------------------------------------
// 13. The API token and /metrics.

fn with_api_token(s: &mut Settings) {
    s.api_token = Some(SecretString::from(API_TOKEN));
}

async fn outbox_call(http: &reqwest::Client, address: &str, token: &str) -> reqwest::Response {
    http.get(format!("{address}/api/v1/outbox/1"))
        .bearer_auth(token)
        .send()
        .await
        .expect("API call")
}

#[tokio::test]
async fn wrong_api_tokens_from_one_address_are_answered_429_after_ten_and_others_are_not() {
    for backend in backends() {
        let app = spawn_app_with(&backend, with_api_token).await;
        // Right tokens do not use the allowance up, however many.
        for _ in 0..30 {
            let r = outbox_call(&app.http, &app.address, API_TOKEN).await;
            assert_eq!(r.status(), 404, "{backend:?}: a right token, no such row");
        }
        for i in 1..=10 {
            let r = outbox_call(&app.http, &app.address, &format!("guess-{i:020}")).await;
            assert_eq!(r.status(), 401, "{backend:?}: wrong token {i}");
        }
        let mut throttled = 0;
        for i in 11..=40 {
            let r = outbox_call(&app.http, &app.address, &format!("guess-{i:020}")).await;
            assert_eq!(r.status(), 429, "{backend:?}: wrong token {i}");
            let retry_after: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=6).contains(&retry_after), "{retry_after}");
            throttled += 1;
        }
        assert_eq!(throttled, 30);
        // While refused, the right token is refused too: a 200 among 429s would tell a
        // guesser it hit.
        let r = outbox_call(&app.http, &app.address, API_TOKEN).await;
        assert_eq!(
            r.status(),
            429,
            "{backend:?}: the address is refused for now"
        );
        // Another address is not.
        let other = reqwest::Client::builder()
            .local_address(IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap();
        let r = outbox_call(&other, &app.address, API_TOKEN).await;
        assert_eq!(r.status(), 404, "{backend:?}: another client address");
        let r = outbox_call(&other, &app.address, "guess-from-elsewhere-000").await;
        assert_eq!(
            r.status(),
            401,
            "{backend:?}: another address has its own allowance"
        );
    }
}

#[tokio::test]
async fn metrics_with_a_token_are_refused_without_it_and_served_with_it() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.metrics.token = Some(SecretString::from(METRICS_TOKEN));
        })
        .await;
        let r = app.get("/metrics").await;
        assert_eq!(r.status(), 401, "{backend:?}: no token");
        let r = app
            .http
            .get(format!("{}/metrics", app.address))
            .bearer_auth("not-the-metrics-token-000")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{backend:?}: a wrong token");
        let r = app
            .http
            .get(format!("{}/metrics", app.address))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{backend:?}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("insurebot_webhooks_waiting")
        );
    }
}

#[tokio::test]
async fn metrics_on_their_own_listener_are_served_there_and_not_on_the_main_port() {
    for backend in backends() {
        let (mut settings, _db, fake) = settings(&backend).await;
        settings.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        let app = run(settings, fake).await;
        let http = reqwest::Client::new();
        let port = app.metrics_port.expect("a metrics listener");
        let r = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{backend:?}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("insurebot_webhooks_waiting")
        );
        let r = http
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{backend:?}: not on the main port");
        let r = http
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{backend:?}: the rest stays on the main port"
        );
        app.stop().await;
    }
}

// ---------------------------------------------------------------------------------------
// 14. No full numbers in error messages.

#[tokio::test]
async fn a_notification_for_an_unknown_policy_answers_404_without_the_full_policy_number() {
    for backend in backends() {
        let app = spawn_app_with(&backend, with_api_token).await;
        let r = app
            .http
            .post(format!("{}/api/v1/notifications", app.address))
            .bearer_auth(API_TOKEN)
            .header("Idempotency-Key", "edge-unknown-policy")
            .json(
                &json!({ "kind": "policy_issued", "policy_number": "LIC98765432",
                           "data": { "plan": "Jeevan", "policy_status": "active" } }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{backend:?}");
        let text = r.text().await.unwrap();
        assert!(!text.contains("98765432"), "{backend:?}: {text}");
        assert!(
            text.contains("5432"),
            "{backend:?}: still recognisable: {text}"
        );
    }
}
