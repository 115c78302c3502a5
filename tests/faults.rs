//! Fault injection against the real binary: `insurebot serve` is killed with SIGKILL in the
//! middle of a stream of webhooks and started again on the same database. Meta retries what
//! was not acknowledged; afterwards every message answered 200 (or retried until it was) has
//! been processed exactly once and answered, and the counts are printed. Runs on SQLite, and on
//! PostgreSQL too when `INSUREBOT_TEST_DATABASE_URL` is set.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use insurebot::whatsapp::fake::{FailureRule, FakeCloudApi, RequestKind, ScriptedError};
use insurebot::whatsapp::signature;
use sea_orm::{ConnectionTrait, Database, EntityTrait, Statement};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_insurebot");
const SECRET: &str = "fault-app-secret";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    killed: bool,
}

impl Server {
    fn start(dir: &std::path::Path, port: u16, database_url: &str, api_base: &str) -> Server {
        let child = Command::new(BIN)
            .arg("serve")
            .current_dir(dir)
            .env("INSUREBOT_LISTEN", format!("127.0.0.1:{port}"))
            .env("INSUREBOT_DATABASE_URL", database_url)
            .env("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "fault-token")
            .env("INSUREBOT_WHATSAPP_APP_SECRET", SECRET)
            .env("INSUREBOT_WHATSAPP_VERIFY_TOKEN", "fault-verify")
            .env("INSUREBOT_WHATSAPP_API_BASE", api_base)
            .env("INSUREBOT_PRIVACY_HASH_KEY", "fault-hash-key-0123456789")
            .env("INSUREBOT_DIALOGUE_HANDLER", "echo")
            .env("INSUREBOT_MESSAGING_RATE_PER_SECOND", "5000")
            .env("INSUREBOT_OUTBOX_RETRY_BASE_MS", "20")
            .env("INSUREBOT_OUTBOX_RETRY_MAX_MS", "200")
            .env("INSUREBOT_LOG_FILTER", "warn")
            .env(
                "INSUREBOT_MESSAGING_TEMPLATES_FILE",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/flows/templates/templates.yaml"
                ),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start insurebot serve");
        Server {
            child,
            killed: false,
        }
    }

    fn kill9(&mut self) {
        if !self.killed {
            self.killed = true;
            // Child::kill sends SIGKILL on Unix: no graceful shutdown, nothing flushed.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become ready");
}

fn webhook(phone: &str, wamid: &str, timestamp: i64, text: &str) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550000000", "phone_number_id": "100000000000001" },
            "contacts": [{ "profile": { "name": "Fault" }, "wa_id": phone }],
            "messages": [{ "from": phone, "id": wamid, "timestamp": timestamp.to_string(),
                           "type": "text", "text": { "body": text } }]
        }}]}]
    })
    .to_string()
}

async fn post(http: &reqwest::Client, base: &str, body: &str) -> bool {
    let sig = signature::sign(SECRET.as_bytes(), body.as_bytes());
    http.post(format!("{base}/webhook"))
        .header("x-hub-signature-256", sig)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn database_urls(dir: &std::path::Path) -> Vec<String> {
    let mut urls = vec![format!(
        "sqlite://{}?mode=rwc",
        dir.join("faults.db").display()
    )];
    if let Ok(admin) = std::env::var("INSUREBOT_TEST_DATABASE_URL")
        && !admin.is_empty()
    {
        let name = format!("insurebot_test_{}", uuid::Uuid::new_v4().simple());
        let db = Database::connect(admin.as_str())
            .await
            .expect("PostgreSQL admin");
        db.execute_raw(Statement::from_string(
            db.get_database_backend(),
            format!("CREATE DATABASE {name}"),
        ))
        .await
        .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        urls.push(format!("{base}/{name}"));
    }
    urls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_and_answers_every_message() {
    let dir = tempfile::tempdir().unwrap();
    for database_url in database_urls(dir.path()).await {
        let fake = FakeCloudApi::new();
        let fake_server = fake
            .clone()
            .spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        // Meta misbehaves too: some sends fail with 500 and are retried.
        fake.script(FailureRule::Rate {
            rate: 0.1,
            error: ScriptedError::new(500, 131000),
            seed: 7,
        });
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut server = Server::start(dir.path(), port, &database_url, &fake_server.base_url);
        wait_ready(&http, &base).await;

        let contacts = 10;
        let per_contact = 20;
        let ts = chrono::Utc::now().timestamp();
        let mut pending: Vec<(String, String)> = Vec::new();
        for i in 0..per_contact {
            for c in 0..contacts {
                let phone = format!("9198000009{c:02}");
                let text = format!("{phone}-{i}");
                let body = webhook(
                    &phone,
                    &format!("wamid.FAULT{c}x{i}x{}", std::process::id()),
                    ts + i,
                    &text,
                );
                pending.push((text, body));
            }
        }
        let total = pending.len();
        let kill_at = total / 2;
        let mut acked = 0;
        let mut refused = Vec::new();
        for (n, (text, body)) in pending.iter().enumerate() {
            if n == kill_at {
                server.kill9();
            }
            if post(&http, &base, body).await {
                acked += 1;
            } else {
                refused.push((text.clone(), body.clone()));
            }
        }
        // Start again on the same database; Meta retries what it never got a 200 for, and
        // redelivers a few it did.
        let mut server = Server::start(dir.path(), port, &database_url, &fake_server.base_url);
        wait_ready(&http, &base).await;
        let retried = refused.len();
        let redelivered = pending.iter().take(20).map(|(_, body)| body);
        for body in refused.iter().map(|(_, body)| body).chain(redelivered) {
            assert!(
                post(&http, &base, body).await,
                "a retried webhook was refused after the restart"
            );
        }

        // Every message answered: wait for the replies.
        let deadline = Instant::now() + Duration::from_secs(60);
        let replies = loop {
            let replies: Vec<String> = fake
                .received()
                .into_iter()
                .filter(|r| r.kind == RequestKind::Send)
                .filter_map(|r| r.body["text"]["body"].as_str().map(str::to_owned))
                .collect();
            let mut distinct: Vec<&String> = replies.iter().collect();
            distinct.sort();
            distinct.dedup();
            if distinct.len() >= total || Instant::now() > deadline {
                break replies;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut per_text: HashMap<&str, usize> = HashMap::new();
        for reply in &replies {
            *per_text
                .entry(reply.strip_prefix("echo: ").unwrap_or(reply))
                .or_default() += 1;
        }
        let missing: Vec<&String> = pending
            .iter()
            .map(|(t, _)| t)
            .filter(|t| !per_text.contains_key(t.as_str()))
            .collect();
        let duplicates: usize = per_text.values().map(|n| n - 1).sum();

        let db = Database::connect(database_url.as_str()).await.unwrap();
        let stored = insurebot::store::entities::inbound_message::Entity::find()
            .all(&db)
            .await
            .unwrap();
        let unprocessed = stored.iter().filter(|m| m.processed_at.is_none()).count();
        println!(
            "{}: {total} webhooks, {acked} acknowledged before/after the SIGKILL, {retried} retried after restart, \
             {} stored, {unprocessed} unprocessed, {} replies, {} missing, {duplicates} duplicate replies",
            if database_url.starts_with("postgres") {
                "PostgreSQL"
            } else {
                "SQLite"
            },
            stored.len(),
            replies.len(),
            missing.len(),
        );
        assert!(retried > 0, "the kill should have refused some webhooks");
        assert_eq!(stored.len(), total, "each message stored exactly once");
        assert_eq!(unprocessed, 0);
        assert!(missing.is_empty(), "messages without a reply: {missing:?}");
        // Only a crash between "sent" and "recorded" can duplicate, at most one batch in flight.
        assert!(duplicates <= 64, "{duplicates} duplicate replies");
        server.kill9();
    }
}
