//! `spawn_app()` and the typed helpers every test uses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use insurebot::app::Application;
use insurebot::clock::Clock;
use insurebot::config::Settings;
use insurebot::whatsapp::fake::{FakeCloudApi, FakeServer, ReceivedRequest, RequestKind};
use insurebot::whatsapp::signature;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Put above `#[tokio::test]`: the test is reported ignored, with the reason, where
/// PostgreSQL or chromedriver is missing (never passed without running).
pub use insurebot_test_macros::{needs_chromedriver, needs_postgres, needs_s3};

pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const HASH_KEY: &str = "test-hash-key-0123456789";
pub const OTP_SECRET: &str = "test-otp-secret-0123456789";

/// The databases a test runs against: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Sqlite];
    if let Ok(url) = std::env::var("INSUREBOT_TEST_DATABASE_URL")
        && !url.is_empty()
    {
        all.push(Backend::Postgres(url));
    }
    all
}

/// PostgreSQL, for a test of what only it does (several instances, advisory
/// locks). Such a test carries `#[needs_postgres]`, which reports it ignored when
/// `INSUREBOT_TEST_DATABASE_URL` was not set for the build; a test binary built with it and
/// run without it fails here rather than passing without having run.
pub fn postgres_only() -> Backend {
    match backends()
        .into_iter()
        .find(|b| matches!(b, Backend::Postgres(_)))
    {
        Some(postgres) => postgres,
        None => panic!(
            "this PostgreSQL test was built with INSUREBOT_TEST_DATABASE_URL set, and it is \
             unset now: run the tests through `cargo test` (it rebuilds them)"
        ),
    }
}

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// An admin URL (e.g. postgres://postgres@127.0.0.1:5432/postgres); each test creates its
    /// own database next to it.
    Postgres(String),
}

/// A fresh, empty database for one test. SQLite files live in a temp dir removed on drop; a
/// PostgreSQL database is dropped on drop (see the `Drop` impl), panicking tests included.
pub struct TestDb {
    pub url: String,
    /// The test's local media store (`INSUREBOT_MEDIA_DIR`), removed with the database.
    pub media_dir: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
    /// The admin URL and the database's name, for dropping it.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn create(backend: &Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                TestDb {
                    url,
                    media_dir: dir.path().join("media"),
                    _dir: Some(dir),
                    postgres: None,
                }
            }
            Backend::Postgres(admin_url) => {
                let name = format!("insurebot_test_{}", uuid::Uuid::new_v4().simple());
                let admin = connect_direct(admin_url).await;
                admin
                    .execute_raw(Statement::from_string(
                        admin.get_database_backend(),
                        format!("CREATE DATABASE {name}"),
                    ))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                // The admin URL's database swapped for the test's; its query (sslmode, host) kept.
                let (path, query) = admin_url
                    .split_once('?')
                    .map_or((admin_url.as_str(), None), |(p, q)| (p, Some(q)));
                let base = path.rsplit_once('/').map_or(path, |(b, _)| b);
                let url = match query {
                    Some(q) => format!("{base}/{name}?{q}"),
                    None => format!("{base}/{name}"),
                };
                let dir = tempfile::tempdir().expect("temp dir");
                TestDb {
                    url,
                    media_dir: dir.path().join("media"),
                    _dir: Some(dir),
                    postgres: Some((admin_url.clone(), name)),
                }
            }
        }
    }
}

impl Drop for TestDb {
    /// Drops the PostgreSQL database (`WITH (FORCE)`: the app under test may still hold
    /// connections). Drop cannot await, and may run while the test's runtime unwinds a panic,
    /// so the statement runs on a thread of its own with a small runtime, waited for here.
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let admin = connect_direct(&admin_url).await;
                let result = admin
                    .execute_raw(Statement::from_string(
                        admin.get_database_backend(),
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    ))
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("drop test database {name}: {e}"));
                let _ = admin.close().await;
                result
            })
        })
        .join();
        // Not a panic: a failed clean-up must not hide the test's own result (or abort a test
        // that is already unwinding).
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: {e}"),
            Err(_) => eprintln!("warning: dropping a test database panicked"),
        }
    }
}

/// A small pool on `url` for a test's own statements, connected the way the app connects
/// (`store::loopback_ssl_mode`): no TLS to a PostgreSQL server on this machine over TCP unless
/// the URL (or `PGSSLMODE`) names an `sslmode`, so the test path does not negotiate TLS where
/// the app does not.
pub async fn connect_direct(url: &str) -> DatabaseConnection {
    let mut opts = ConnectOptions::new(url.to_owned());
    let ssl_mode_given = url.contains("sslmode=") || std::env::var_os("PGSSLMODE").is_some();
    opts.sqlx_logging(false)
        .max_connections(4)
        .map_sqlx_postgres_opts(move |o| {
            let host = o.get_host().trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !ssl_mode_given && o.get_socket().is_none() && loopback {
                o.ssl_mode(sea_orm::sqlx::postgres::PgSslMode::Disable)
            } else {
                o
            }
        });
    Database::connect(opts)
        .await
        .unwrap_or_else(|e| panic!("connect to the test database: {e}"))
}

/// A running app plus the fake Cloud API it talks to.
pub struct TestApp {
    pub address: String,
    pub db: DatabaseConnection,
    pub fake: FakeCloudApi,
    pub http: reqwest::Client,
    settings: Settings,
    _fake_server: FakeServer,
    _db: TestDb,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// The clock the app's reminders and one-time passwords read; `None`: the system's.
    clock: Option<Arc<dyn Clock>>,
}

static WAMID_SEQ: AtomicU64 = AtomicU64::new(1);

/// A wamid no other test uses.
pub fn new_wamid() -> String {
    format!(
        "wamid.TEST{}{}",
        std::process::id(),
        WAMID_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// A sandbox app (no access token: the simulator is on) running the flows, as `serve` runs
/// without configuration.
pub async fn spawn_sandbox_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.dialogue.handler = insurebot::config::DialogueMode::Flows;
        s.whatsapp.access_token = None;
        s.whatsapp.app_secret = None;
    })
    .await
}

/// Settings for a test app on a fresh database, talking to `api_base`.
pub async fn test_settings_for(backend: &Backend, api_base: &str) -> (Settings, TestDb) {
    let db = TestDb::create(backend).await;
    let media_dir = db.media_dir.display().to_string();
    let env: BTreeMap<String, String> = [
        ("INSUREBOT_DATABASE_URL", db.url.as_str()),
        ("INSUREBOT_MEDIA_DIR", media_dir.as_str()),
        // Media retries in milliseconds, not the production half second.
        ("INSUREBOT_MEDIA_RETRY_BASE_MS", "20"),
        ("INSUREBOT_LISTEN", "127.0.0.1:0"),
        ("INSUREBOT_WHATSAPP_APP_SECRET", APP_SECRET),
        ("INSUREBOT_WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
        ("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "test-access-token"),
        ("INSUREBOT_PRIVACY_HASH_KEY", HASH_KEY),
        ("INSUREBOT_INSURER_PAY_LINK_SECRET", "test-pay-link-secret"),
        ("INSUREBOT_OTP_SECRET", OTP_SECRET),
        ("INSUREBOT_WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
        ("INSUREBOT_WHATSAPP_API_BASE", api_base),
        ("INSUREBOT_WHATSAPP_REQUEST_TIMEOUT_MS", "2000"),
        ("INSUREBOT_OUTBOX_RETRY_BASE_MS", "20"),
        ("INSUREBOT_OUTBOX_RETRY_MAX_MS", "200"),
        // The pipeline tests observe order through the echo handler; flow tests switch to
        // the engine with `spawn_app_with(.., |s| s.dialogue.handler = DialogueMode::Flows)`.
        ("INSUREBOT_DIALOGUE_HANDLER", "echo"),
        // No daily reminders run by the wall clock: past 10:00 IST it would queue the
        // reminders of the premiums a test imports, racing the tests that run a day
        // themselves (`premium::run_day`) and adding sends others do not expect.
        ("INSUREBOT_REMINDERS_ENABLED", "false"),
        // Agents are always in, so a hand-off never adds an after-hours notice by the clock;
        // the notice has its own test.
        ("INSUREBOT_CONSOLE_OFFICE_DAYS", "mon-sun"),
        ("INSUREBOT_CONSOLE_OFFICE_OPEN", "00:00"),
        ("INSUREBOT_CONSOLE_OFFICE_CLOSE", "24:00"),
        (
            "INSUREBOT_DIALOGUE_FLOWS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/flows"),
        ),
        (
            "INSUREBOT_DIALOGUE_LOCALES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/locales"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    (
        Settings::from_sources(None, &env).expect("test settings"),
        db,
    )
}

pub async fn spawn_app_with(backend: &Backend, customise: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_clock(backend, customise, None).await
}

/// [`spawn_app_with`] on `clock` (e.g. a `ManualClock` the test moves).
pub async fn spawn_app_with_clock(
    backend: &Backend,
    customise: impl FnOnce(&mut Settings),
    clock: Option<Arc<dyn Clock>>,
) -> TestApp {
    let (fake, fake_server) = FakeCloudApi::start().await.expect("fake Cloud API");
    let (mut settings, db) = test_settings_for(backend, &fake_server.base_url).await;
    customise(&mut settings);
    let mut app = TestApp {
        address: String::new(),
        db: connect_direct(&db.url).await,
        fake,
        http: reqwest::Client::new(),
        settings,
        _fake_server: fake_server,
        _db: db,
        stop: None,
        server: None,
        clock,
    };
    app.start().await;
    app
}

impl TestApp {
    /// The test's local media store directory (`INSUREBOT_MEDIA_DIR`).
    pub fn media_dir(&self) -> std::path::PathBuf {
        self._db.media_dir.clone()
    }

    /// The URL of this test's own database.
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    async fn start(&mut self) {
        let app = match &self.clock {
            Some(clock) => {
                Application::build_with_clock(self.settings.clone(), clock.clone()).await
            }
            None => Application::build(self.settings.clone()).await,
        }
        .expect("build app");
        self.address = format!("http://127.0.0.1:{}", app.port());
        let (tx, rx) = oneshot::channel();
        self.stop = Some(tx);
        self.server = Some(tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        })));
    }

    /// Starts another instance on the same database and fake Cloud API (scale-out tests).
    pub async fn start_peer(&self) -> Peer {
        let app = Application::build(self.settings.clone())
            .await
            .expect("build peer");
        let address = format!("http://127.0.0.1:{}", app.port());
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        Peer {
            address,
            stop: Some(tx),
            server: Some(server),
        }
    }

    /// POSTs a signed webhook to another instance.
    pub async fn post_webhook_to(&self, address: &str, body: &str) -> reqwest::Response {
        let signature = signature::sign(APP_SECRET.as_bytes(), body.as_bytes());
        self.http
            .post(format!("{address}/webhook"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body.to_owned())
            .send()
            .await
            .expect("webhook request")
    }

    /// The fake Cloud API's base URL (with its version), for clients made by tests.
    pub fn fake_base_url(&self) -> String {
        self._fake_server.base_url.clone()
    }

    /// Stops the server gracefully and starts a new one on the same database and fake.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        self.start().await;
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
    }

    /// POSTs `body` to /webhook with a correct signature.
    pub async fn post_webhook(&self, body: &str) -> reqwest::Response {
        let signature = signature::sign(APP_SECRET.as_bytes(), body.as_bytes());
        self.post_webhook_with(body.as_bytes().to_vec(), Some(&signature))
            .await
    }

    /// POSTs raw bytes with the given signature header (or none).
    pub async fn post_webhook_with(
        &self,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/webhook", self.address))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send().await.expect("webhook request")
    }

    /// Erases the contact `phone` through `DELETE /api/v1/contacts/{phone}` with the API
    /// `token`; the receipt.
    pub async fn erase_over_api(&self, phone: &str, token: &str) -> Value {
        self.http
            .delete(format!("{}/api/v1/contacts/{phone}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("GET")
    }

    /// Message sends the fake received (mark-as-read requests excluded).
    pub fn sent_messages(&self) -> Vec<ReceivedRequest> {
        self.fake
            .received()
            .into_iter()
            .filter(|r| r.kind == RequestKind::Send)
            .collect()
    }

    /// Waits until the fake has received at least `n` message sends; panics after 15 s.
    pub async fn wait_for_sends(&self, n: usize) -> Vec<ReceivedRequest> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let sent = self.sent_messages();
            if sent.len() >= n {
                return sent;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} sends, the fake got {}: {:#?}",
                sent.len(),
                sent
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits a little and asserts that no further sends arrive beyond `n`.
    pub async fn assert_no_more_sends(&self, n: usize) {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            self.sent_messages().len(),
            n,
            "unexpected extra sends: {:#?}",
            self.sent_messages()
        );
    }
}

/// A second instance sharing a [`TestApp`]'s database and fake.
pub struct Peer {
    pub address: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Peer {
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("peer task").expect("peer ran");
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The text body of a recorded send.
pub fn text_of(request: &ReceivedRequest) -> String {
    request.body["text"]["body"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Who a recorded send went to.
pub fn recipient_of(request: &ReceivedRequest) -> String {
    request.body["to"].as_str().unwrap_or_default().to_owned()
}

/// One inbound text message object.
pub fn text_message(from: &str, wamid: &str, timestamp: i64, body: &str) -> Value {
    json!({
        "from": from, "id": wamid, "timestamp": timestamp.to_string(),
        "type": "text", "text": { "body": body }
    })
}

/// A full webhook envelope carrying `messages` from their senders.
pub fn envelope(messages: Vec<Value>) -> String {
    envelope_to(PHONE_NUMBER_ID, messages)
}

/// [`envelope`] to the business number `to` (several numbers: tests/api/numbers.rs).
pub fn envelope_to(to: &str, messages: Vec<Value>) -> String {
    let mut contacts: Vec<Value> = messages
        .iter()
        .filter_map(|m| m["from"].as_str())
        .map(|from| json!({ "profile": { "name": "Test Person" }, "wa_id": from }))
        .collect();
    contacts.dedup();
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1234", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": to },
            "contacts": contacts,
            "messages": messages
        }}]}]
    })
    .to_string()
}

/// A webhook envelope carrying delivery statuses.
pub fn status_envelope(statuses: Vec<Value>) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1234", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID },
            "statuses": statuses
        }}]}]
    })
    .to_string()
}

pub fn status(wamid: &str, status: &str, timestamp: i64) -> Value {
    json!({ "id": wamid, "status": status, "timestamp": timestamp.to_string(), "recipient_id": "919800000001" })
}

/// Now, in WhatsApp's unit (Unix seconds).
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// TCP_NODELAY of the socket of this process bound to `local_port` (and connected from
/// `peer_port`, when given), found among /proc/self/fd; `None` if there is none.
pub fn own_tcp_nodelay(local_port: u16, peer_port: Option<u16>) -> Option<bool> {
    use std::os::fd::BorrowedFd;
    let port_of = |a: std::io::Result<socket2::SockAddr>| {
        a.ok().and_then(|a| a.as_socket()).map(|a| a.port())
    };
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let Ok(fd) = entry
            .expect("fd entry")
            .file_name()
            .to_string_lossy()
            .parse()
        else {
            continue;
        };
        // SAFETY: only getsockname/getpeername/getsockopt on the borrowed descriptor; if another
        // thread closed it meanwhile they fail (or describe another socket, whose ports differ).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        if port_of(socket.local_addr()) == Some(local_port)
            && peer_port.is_none_or(|p| port_of(socket.peer_addr()) == Some(p))
        {
            return Some(socket.tcp_nodelay().expect("getsockopt TCP_NODELAY"));
        }
    }
    None
}

/// A dialogue timer like the app's, on `app`'s database, with its own limits: the app's own
/// wait hours for things a test cannot wait for.
pub async fn timer_runner(
    app: &TestApp,
    backend: &Backend,
    agent_wait_limit: chrono::Duration,
    office_hours: Option<insurebot::config::hours::OfficeHours>,
    agent_idle_close: Option<chrono::Duration>,
    agent_reply_limit: Option<chrono::Duration>,
) -> insurebot::dialogue::FlowRunner {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let flows = insurebot::dialogue::flows::FlowStore::load(
        &root.join("flows"),
        &root.join("locales"),
        insurebot::engine::flowset::EngineSettings {
            agent_wait_limit,
            ..Default::default()
        },
    )
    .unwrap();
    let (settings, _db) = test_settings_for(backend, "http://127.0.0.1:9").await;
    insurebot::dialogue::FlowRunner {
        flows: std::sync::Arc::new(flows),
        actions: std::sync::Arc::new(
            insurebot::insurer::Insurer::from_settings(&settings.insurer, app.db.clone()).unwrap(),
        ),
        composer: insurebot::messaging::composer::Composer::from_settings(&settings),
        default_language: "en".into(),
        lines: insurebot::dialogue::LineDialogue::from_settings(&settings),
        office_hours,
        agent_idle_close,
        agent_reply_limit,
        media_limits: Default::default(),
        media_store: None,
        nlu: None,
        understood: Default::default(),
    }
}

/// Inserts a contact with WhatsApp number `wa_id` and nothing else known about it.
pub async fn insert_contact(
    db: &DatabaseConnection,
    wa_id: &str,
) -> insurebot::store::entities::contact::Model {
    use insurebot::store::entities::contact;
    use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, EntityTrait};
    let row = contact::ActiveModel {
        id: NotSet,
        wa_id: Set(Some(wa_id.to_owned())),
        user_id: Set(None),
        profile_name: Set(None),
        last_inbound_at: Set(None),
        lease_owner: Set(None),
        lease_until: Set(None),
        created_at: Set(0),
        updated_at: Set(0),
    };
    contact::Entity::insert(row)
        .exec_with_returning(db)
        .await
        .expect("insert contact")
}

/// Inserts an in-force life policy `number` (its holder Asha Rao, born 1980-01-01) with the
/// registered mobile `mobile`, if any.
pub async fn insert_policy(db: &DatabaseConnection, number: &str, mobile: Option<&str>) {
    use insurebot::store::entities::{policy, policyholder};
    use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, EntityTrait};
    let customer = format!("C-{number}");
    policyholder::Entity::insert(policyholder::ActiveModel {
        id: NotSet,
        customer_id: Set(customer.clone()),
        name: Set("Asha Rao".into()),
        dob: Set("1980-01-01".into()),
        created_at: Set(0),
        updated_at: Set(0),
    })
    .exec(db)
    .await
    .unwrap();
    policy::Entity::insert(policy::ActiveModel {
        id: NotSet,
        policy_number: Set(number.into()),
        customer_id: Set(customer),
        mobile: Set(mobile.map(str::to_owned)),
        product: Set("life".into()),
        plan: Set("Jeevan".into()),
        status: Set("active".into()),
        sum_assured: Set(50_000_000),
        start_date: Set("2020-01-01".into()),
        end_date: Set(None),
        document_url: Set(None),
        number: Set(None),
        created_at: Set(0),
        updated_at: Set(0),
    })
    .exec(db)
    .await
    .unwrap();
}

/// The text a person reads: a text message's body or an interactive message's body.
pub fn shown(reply: &ReceivedRequest) -> String {
    let body = &reply.body;
    body["text"]["body"]
        .as_str()
        .or_else(|| body["interactive"]["body"]["text"].as_str())
        .unwrap_or_default()
        .to_owned()
}
