//! Fault injection against the real binary (`insurebot serve`) on a real database, over real
//! HTTP. Each test streams signed webhooks the way Meta delivers them (whatever is not answered
//! 200 is retried until it is, within a deadline), injects its fault in the middle of the
//! stream, then checks that every message was stored and processed exactly once, got its one
//! reply, and that every reply reached the fake Cloud API; the counts are printed. The faults:
//! - the server killed with SIGKILL and started again on the same database;
//! - the database going away for a few seconds (PostgreSQL: connections refused and dropped);
//! - the database locked by another connection for longer than the busy timeout (SQLite);
//! - the insurer's API slow or down, with the real dialogue flows.
//!
//! SQLite always; PostgreSQL too when `INSUREBOT_TEST_DATABASE_URL` is set. Set
//! `FAULTS_SERVER_LOGS=1` to see the servers' logs.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use insurebot::store::entities::{inbound_message, outbox};
use insurebot::whatsapp::fake::{
    FailureRule, FakeCloudApi, FakeServer, RequestKind, ScriptedError,
};
use insurebot::whatsapp::signature;
use sea_orm::{
    ConnectionTrait, Database, EntityTrait, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_insurebot");
const SECRET: &str = "fault-app-secret";
/// How long Meta's side waits for one webhook answer before it counts as failed and is retried
/// (shorter than the server's 10 s SQLite busy timeout: a webhook stuck behind a lock may be
/// stored after Meta gave up on it, and its retry must then be recognised as a duplicate).
const META_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Meta keeps retrying one webhook in these tests (Meta itself goes on for days).
const META_GIVES_UP_AFTER: Duration = Duration::from_secs(45);
/// How long the replies may take to reach the fake Cloud API once the stream is over.
const SETTLE: Duration = Duration::from_secs(40);
/// The shipped apology for an insurer system that does not answer (`common-sorry`).
const SORRY: &str = "Sorry, our system is not responding right now.";

// ---------------------------------------------------------------------------------------
// The server under test and its database.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh database for one run. PostgreSQL keeps its name and admin URL so a test can make
/// the database itself misbehave.
struct TestDb {
    url: String,
    postgres: Option<PostgresDb>,
}

struct PostgresDb {
    admin_url: String,
    name: String,
}

impl Drop for PostgresDb {
    /// Drops the database when the test ends, panicking tests included (`WITH (FORCE)`: a
    /// server under test may still hold connections). Drop cannot await, and may run while a
    /// runtime unwinds, so the statement runs on a thread of its own with a small runtime.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test database")
                .block_on(admin_execute(&admin_url, &sql));
        })
        .join();
        // Not a panic: a failed clean-up must not hide the test's own result.
        if dropped.is_err() {
            eprintln!("warning: dropping test database {} failed", self.name);
        }
    }
}

impl TestDb {
    fn label(&self) -> &'static str {
        if self.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }
}

fn sqlite_db(dir: &Path) -> TestDb {
    TestDb {
        url: format!("sqlite://{}?mode=rwc", dir.join("faults.db").display()),
        postgres: None,
    }
}

/// A new database next to `INSUREBOT_TEST_DATABASE_URL`, when it is set.
async fn postgres_db() -> Option<TestDb> {
    let admin_url = std::env::var("INSUREBOT_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())?;
    let name = format!("insurebot_test_{}", uuid::Uuid::new_v4().simple());
    admin_execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    Some(TestDb {
        url: format!("{base}/{name}"),
        postgres: Some(PostgresDb { admin_url, name }),
    })
}

/// SQLite in `dir`, then PostgreSQL when configured.
async fn databases(dir: &Path) -> Vec<TestDb> {
    let mut all = vec![sqlite_db(dir)];
    all.extend(postgres_db().await);
    all
}

/// Runs one statement over a connection to the admin (`postgres`) database.
async fn admin_execute(admin_url: &str, sql: &str) {
    let admin = Database::connect(admin_url)
        .await
        .expect("PostgreSQL admin");
    admin
        .execute_raw(Statement::from_string(admin.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    admin.close().await.unwrap();
}

/// How to start `insurebot serve`: the same port, database and fake on every (re)start.
struct Target {
    dir: PathBuf,
    port: u16,
    database_url: String,
    api_base: String,
    /// Settings on top of the common ones (the echo handler, fast outbox retries).
    env: Vec<(&'static str, String)>,
}

impl Target {
    fn new(dir: &Path, db: &TestDb, fake: &FakeServer) -> Target {
        Target {
            dir: dir.to_owned(),
            port: free_port(),
            database_url: db.url.clone(),
            api_base: fake.base_url.clone(),
            env: Vec::new(),
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits until it says it is ready.
    async fn start(&self) -> Server {
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .current_dir(&self.dir)
            .env("INSUREBOT_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("INSUREBOT_DATABASE_URL", &self.database_url)
            .env("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "fault-token")
            .env("INSUREBOT_WHATSAPP_APP_SECRET", SECRET)
            .env("INSUREBOT_WHATSAPP_VERIFY_TOKEN", "fault-verify")
            .env("INSUREBOT_WHATSAPP_API_BASE", &self.api_base)
            .env("INSUREBOT_PRIVACY_HASH_KEY", "fault-hash-key-0123456789")
            .env("INSUREBOT_INSURER_PAY_LINK_SECRET", "fault-pay-link-secret")
            .env("INSUREBOT_DIALOGUE_HANDLER", "echo")
            .env("INSUREBOT_MESSAGING_RATE_PER_SECOND", "5000")
            // Each contact sends 20 messages; Meta's per-recipient pace (20, then one per 6 s)
            // is not what these tests measure.
            .env("INSUREBOT_MESSAGING_PAIR_BURST", "1000")
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
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if std::env::var_os("FAULTS_SERVER_LOGS").is_none() {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let server = Server {
            child: command.spawn().expect("start insurebot serve"),
            killed: false,
        };
        wait_ready(&self.base()).await;
        server
    }
}

struct Server {
    child: Child,
    killed: bool,
}

impl Server {
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

async fn wait_ready(base: &str) {
    let http = reqwest::Client::new();
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

/// The fake Cloud API, answering each request after 200 ms like the real one, so that some
/// sends are always in flight when a fault strikes; `failing` makes one send in ten fail with
/// a 500 (retried by the sender).
async fn fake_cloud_api(failing: bool) -> (FakeCloudApi, FakeServer) {
    let (fake, server) = FakeCloudApi::start().await.unwrap();
    fake.script(FailureRule::Delay {
        count: u32::MAX,
        delay_ms: 200,
    });
    if failing {
        fake.script(FailureRule::Rate {
            rate: 0.1,
            error: ScriptedError::new(500, 131000),
            seed: 7,
        });
    }
    (fake, server)
}

// ---------------------------------------------------------------------------------------
// Meta's side: the stream of webhooks, delivered and retried.

/// One inbound message and the signed webhook that carries it.
struct Inbound {
    wamid: String,
    text: String,
    body: String,
}

/// `per_contact` messages from each of `contacts` contacts, interleaved, with increasing
/// WhatsApp timestamps per contact; `text(contact, i)` is what each says.
fn traffic(
    tag: &str,
    contacts: usize,
    per_contact: usize,
    text: impl Fn(usize, usize) -> String,
) -> Vec<Inbound> {
    let ts = Utc::now().timestamp();
    let mut messages = Vec::new();
    for i in 0..per_contact {
        for c in 0..contacts {
            let phone = format!("9198000009{c:02}");
            let wamid = format!("wamid.{tag}{c}x{i}x{}", std::process::id());
            let text = text(c, i);
            let body = webhook(&phone, &wamid, ts + i as i64, &text);
            messages.push(Inbound { wamid, text, body });
        }
    }
    messages
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

/// What happened to one webhook on Meta's side.
#[derive(Debug, Default)]
struct Delivery {
    attempts: u32,
    /// The non-200 statuses it was answered with, in order.
    refused_with: Vec<u16>,
    /// Attempts that got no answer at all (connection refused or reset, timeout).
    no_answer: u32,
    /// When it was answered 200; `None` if Meta gave up.
    acked_at: Option<DateTime<Utc>>,
    /// How long the attempt answered 200 took.
    ack_took: Duration,
}

/// POSTs the webhook until it is answered 200, backing off between attempts as Meta does,
/// until `give_up_at`.
async fn deliver_like_meta(
    http: reqwest::Client,
    base: String,
    body: String,
    give_up_at: Instant,
) -> Delivery {
    let sig = signature::sign(SECRET.as_bytes(), body.as_bytes());
    let mut delivery = Delivery::default();
    let mut backoff = Duration::from_millis(200);
    loop {
        delivery.attempts += 1;
        let started = Instant::now();
        let answer = http
            .post(format!("{base}/webhook"))
            .header("x-hub-signature-256", &sig)
            .header("content-type", "application/json")
            .body(body.clone())
            .timeout(META_TIMEOUT)
            .send()
            .await;
        match answer.map(|r| r.status()) {
            Ok(status) if status.is_success() => {
                delivery.acked_at = Some(Utc::now());
                delivery.ack_took = started.elapsed();
                return delivery;
            }
            Ok(status) => delivery.refused_with.push(status.as_u16()),
            Err(_) => delivery.no_answer += 1,
        }
        if Instant::now() + backoff > give_up_at {
            return delivery;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// How many webhooks have had their first attempt; a fault waits on it to strike mid-stream.
#[derive(Clone, Default)]
struct Progress(Arc<AtomicUsize>);

impl Progress {
    async fn reached(&self, n: usize) {
        while self.0.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Starts one delivery every `spacing`, in order, each retried independently (Meta delivers
/// concurrently and does not wait for a refused webhook before sending the next).
async fn stream_like_meta(
    base: &str,
    messages: &[Inbound],
    spacing: Duration,
    progress: Progress,
) -> Vec<Delivery> {
    let http = reqwest::Client::new();
    let give_up_at = Instant::now() + META_GIVES_UP_AFTER;
    let mut tasks = Vec::new();
    for message in messages {
        tasks.push(tokio::spawn(deliver_like_meta(
            http.clone(),
            base.to_owned(),
            message.body.clone(),
            give_up_at,
        )));
        progress.0.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(spacing).await;
    }
    let mut deliveries = Vec::new();
    for task in tasks {
        deliveries.push(task.await.expect("delivery task"));
    }
    deliveries
}

// ---------------------------------------------------------------------------------------
// One run: stream, fault, then the exactly-once and all-sent checks.

/// One fault run: who receives the webhooks, what they carry, and what each reply must be.
struct Run<'a> {
    /// Printed with the counts, e.g. "PostgreSQL, database outage".
    label: String,
    target: &'a Target,
    fake: &'a FakeCloudApi,
    messages: Vec<Inbound>,
    /// Time between the first attempts of two webhooks: the stream must outlast the fault.
    spacing: Duration,
    /// Whether the text of one message's reply is the right one.
    reply_ok: fn(&Inbound, &str) -> bool,
}

/// The counts of one run.
#[derive(Debug, Default)]
struct Report {
    webhooks: usize,
    acked_first_time: usize,
    /// Webhooks that needed more than one attempt.
    retried: usize,
    /// Non-200 answers by status, over all attempts.
    refusals: BTreeMap<u16, usize>,
    /// Attempts without any answer (connection refused, reset or timed out).
    no_answer: u32,
    /// Webhooks Meta gave up on: never answered 200.
    never_acked: usize,
    /// The longest a successful webhook attempt took to be answered.
    slowest_ack: Duration,
    stored: usize,
    unprocessed: usize,
    /// Messages whose handler failed at least once (attempts recorded).
    handler_failures: usize,
    /// Messages that did not queue exactly one reply, with how many they queued.
    not_one_reply: Vec<(String, usize)>,
    /// Reply rows the fake Cloud API never received.
    unsent: Vec<i64>,
    /// Replies whose text was not the expected one.
    wrong_replies: Vec<String>,
    sends: usize,
    /// Sends beyond the first of the same reply: a send whose result was never recorded (a
    /// crash, or a database lost for longer than the outbox lease) goes out again.
    duplicate_sends: usize,
    /// The longest time from a webhook's 200 to its reply's arrival at the fake.
    slowest_reply: Duration,
    /// From the moment the fault was over and every webhook acknowledged to the arrival of the
    /// last reply: how long the server took to catch up.
    caught_up_in: Duration,
}

impl Report {
    fn print(&self, label: &str) {
        println!(
            "{label}:\n  webhooks: {} sent, {} acked first time, {} retried, refusals {:?}, \
             {} attempts unanswered, {} never acked, slowest 200 took {:.1} s\n  \
             messages: {} stored, {} unprocessed, {} handler failures\n  \
             replies: {} sends, {} unsent, {} wrong, {} duplicate sends, slowest {:.1} s after \
             its webhook's 200, caught up {:.1} s after the fault",
            self.webhooks,
            self.acked_first_time,
            self.retried,
            self.refusals,
            self.no_answer,
            self.never_acked,
            self.slowest_ack.as_secs_f64(),
            self.stored,
            self.unprocessed,
            self.handler_failures,
            self.sends,
            self.unsent.len(),
            self.wrong_replies.len(),
            self.duplicate_sends,
            self.slowest_reply.as_secs_f64(),
            self.caught_up_in.as_secs_f64(),
        );
    }

    fn refused(&self, status: u16) -> usize {
        self.refusals.get(&status).copied().unwrap_or_default()
    }

    /// Every webhook acknowledged in the end, stored and processed once, one reply each, and
    /// every reply sent with the right text.
    fn assert_exactly_once_and_all_sent(&self) {
        assert_eq!(self.never_acked, 0, "webhooks never answered 200");
        assert_eq!(
            self.stored, self.webhooks,
            "each message stored exactly once"
        );
        assert_eq!(self.unprocessed, 0, "messages left unprocessed");
        assert!(
            self.not_one_reply.is_empty(),
            "messages without exactly one reply: {:?}",
            self.not_one_reply
        );
        assert!(
            self.unsent.is_empty(),
            "replies never sent: {:?}",
            self.unsent
        );
        assert!(
            self.wrong_replies.is_empty(),
            "unexpected replies: {:?}",
            self.wrong_replies
        );
        // Only a crash (or a lost database) between "sent" and "recorded" can duplicate: at
        // most the sends in flight.
        assert!(
            self.duplicate_sends <= 64,
            "{} duplicate sends",
            self.duplicate_sends
        );
    }
}

/// Streams `run.messages` at the server while `fault` runs alongside (it gets the stream's
/// progress to pick its moment), redelivers a few acknowledged webhooks as Meta does, waits
/// for the replies, then counts. Returns the counts (printed already) and what `fault`
/// returned; the caller asserts.
async fn run_with_fault<F, T>(run: Run<'_>, fault: impl FnOnce(Progress) -> F) -> (Report, T)
where
    F: Future<Output = T>,
{
    let progress = Progress::default();
    let base = run.target.base();
    let (deliveries, (faulted, fault_over_at)) = tokio::join!(
        stream_like_meta(&base, &run.messages, run.spacing, progress.clone()),
        async {
            let faulted = fault(progress.clone()).await;
            (faulted, Utc::now())
        },
    );
    // Meta also redelivers some webhooks it did get a 200 for.
    let http = reqwest::Client::new();
    let give_up_at = Instant::now() + META_GIVES_UP_AFTER;
    for message in run.messages.iter().take(20) {
        let redelivery =
            deliver_like_meta(http.clone(), base.clone(), message.body.clone(), give_up_at).await;
        assert!(
            redelivery.acked_at.is_some(),
            "a redelivered webhook was refused"
        );
    }

    let db = Database::connect(run.target.database_url.as_str())
        .await
        .unwrap();
    let deadline = Instant::now() + SETTLE;
    let (stored, replies, sends) = loop {
        let stored = inbound_message::Entity::find().all(&db).await.unwrap();
        let replies = outbox::Entity::find().all(&db).await.unwrap();
        let sends = sends_by_outbox_row(run.fake);
        let settled = stored.iter().all(|m| m.processed_at.is_some())
            && replies.iter().all(|r| sends.contains_key(&r.id));
        if (settled && stored.len() >= run.messages.len()) || Instant::now() > deadline {
            break (stored, replies, sends);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    db.close().await.unwrap();

    let mut report = Report {
        webhooks: run.messages.len(),
        stored: stored.len(),
        unprocessed: stored.iter().filter(|m| m.processed_at.is_none()).count(),
        handler_failures: stored.iter().filter(|m| m.attempts > 0).count(),
        sends: sends.values().map(|s| s.len()).sum(),
        duplicate_sends: sends.values().map(|s| s.len() - 1).sum(),
        ..Report::default()
    };
    for delivery in &deliveries {
        report.acked_first_time +=
            usize::from(delivery.attempts == 1 && delivery.acked_at.is_some());
        report.retried += usize::from(delivery.attempts > 1);
        report.never_acked += usize::from(delivery.acked_at.is_none());
        report.no_answer += delivery.no_answer;
        report.slowest_ack = report.slowest_ack.max(delivery.ack_took);
        for status in &delivery.refused_with {
            *report.refusals.entry(*status).or_default() += 1;
        }
    }
    let id_of: HashMap<&str, i64> = stored.iter().map(|m| (m.wamid.as_str(), m.id)).collect();
    let all_acked_at = deliveries
        .iter()
        .filter_map(|d| d.acked_at)
        .chain([fault_over_at])
        .max()
        .unwrap_or(fault_over_at);
    for (message, delivery) in run.messages.iter().zip(&deliveries) {
        let Some(inbound_id) = id_of.get(message.wamid.as_str()) else {
            continue;
        };
        let mine: Vec<&outbox::Model> = replies
            .iter()
            .filter(|r| r.in_reply_to == Some(*inbound_id))
            .collect();
        if mine.len() != 1 {
            report
                .not_one_reply
                .push((message.text.clone(), mine.len()));
        }
        for reply in mine {
            let Some(arrivals) = sends.get(&reply.id) else {
                report.unsent.push(reply.id);
                continue;
            };
            let (text, arrived_at) = &arrivals[0];
            if !(run.reply_ok)(message, text) {
                report
                    .wrong_replies
                    .push(format!("{} -> {text}", message.text));
            }
            if let Some(acked_at) = delivery.acked_at {
                let took = (*arrived_at - acked_at).to_std().unwrap_or_default();
                report.slowest_reply = report.slowest_reply.max(took);
            }
            let after_fault = (*arrived_at - all_acked_at).to_std().unwrap_or_default();
            report.caught_up_in = report.caught_up_in.max(after_fault);
        }
    }
    report.print(&run.label);
    (report, faulted)
}

/// The fake's message sends grouped by the outbox row they carry (`biz_opaque_callback_data`
/// is `outbox:<id>`): the reply text and the arrival time of each.
fn sends_by_outbox_row(fake: &FakeCloudApi) -> HashMap<i64, Vec<(String, DateTime<Utc>)>> {
    let mut by_row: HashMap<i64, Vec<(String, DateTime<Utc>)>> = HashMap::new();
    for request in fake.received() {
        if request.kind != RequestKind::Send {
            continue;
        }
        let Some(row) = request.body["biz_opaque_callback_data"]
            .as_str()
            .and_then(|c| c.strip_prefix("outbox:"))
            .and_then(|id| id.parse().ok())
        else {
            continue;
        };
        by_row
            .entry(row)
            .or_default()
            .push((reply_text(&request.body), request.received_at));
    }
    by_row
}

/// The text a policyholder reads: a text message's body or an interactive message's body.
fn reply_text(body: &Value) -> String {
    body["text"]["body"]
        .as_str()
        .or_else(|| body["interactive"]["body"]["text"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A send whose result could not be recorded during the fault must not wait for its 30 s
/// outbox lease to expire and then go out a second time: once the database is back, the
/// sender records it and catches up in seconds.
fn assert_no_reply_waits_for_a_lease(report: &Report) {
    assert_eq!(report.duplicate_sends, 0, "replies sent twice");
    assert!(
        report.caught_up_in < Duration::from_secs(15),
        "the last reply came {:.1} s after the fault was over",
        report.caught_up_in.as_secs_f64()
    );
}

fn is_echo(message: &Inbound, reply: &str) -> bool {
    reply.strip_prefix("echo: ") == Some(message.text.as_str())
}

fn is_sorry(_: &Inbound, reply: &str) -> bool {
    reply.starts_with(SORRY)
}

// ---------------------------------------------------------------------------------------
// The faults.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_and_answers_every_message() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        // Meta misbehaves too: some sends fail with 500 and are retried.
        let (fake, fake_server) = fake_cloud_api(true).await;
        let target = Target::new(dir.path(), &db, &fake_server);
        let server = target.start().await;
        let messages = traffic("KILL", 10, 20, |c, i| format!("contact {c} message {i}"));
        let kill_at = messages.len() / 2;
        let run = Run {
            label: format!("{}, SIGKILL", db.label()),
            target: &target,
            fake: &fake,
            messages,
            spacing: Duration::from_millis(10),
            reply_ok: is_echo,
        };
        let target = &target;
        let (report, _server) = run_with_fault(run, |progress| async move {
            let mut server = server;
            progress.reached(kill_at).await;
            server.kill9();
            // Down long enough for the stream to meet a dead port, then back on the same
            // database; Meta retries what it never got a 200 for.
            tokio::time::sleep(Duration::from_millis(500)).await;
            target.start().await
        })
        .await;
        assert!(
            report.no_answer > 0,
            "the kill should have left some webhooks unanswered"
        );
        report.assert_exactly_once_and_all_sent();
    }
}

// PostgreSQL only: reported ignored, with the reason, where it is not configured.
#[insurebot_test_macros::needs_postgres]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_under_load_is_answered_503_and_loses_nothing_once_it_is_back() {
    let db = postgres_db().await.expect(
        "built with INSUREBOT_TEST_DATABASE_URL set, and it is unset now: run it through \
         `cargo test` (it rebuilds the test)",
    );
    let pg = db.postgres.as_ref().expect("a PostgreSQL database");
    let dir = tempfile::tempdir().unwrap();
    let (fake, fake_server) = fake_cloud_api(false).await;
    let target = Target::new(dir.path(), &db, &fake_server);
    let _server = target.start().await;
    let messages = traffic("DOWN", 10, 20, |c, i| format!("contact {c} message {i}"));
    let strike_at = messages.len() / 4;
    let run = Run {
        label: "PostgreSQL, database outage".to_owned(),
        target: &target,
        fake: &fake,
        messages,
        spacing: Duration::from_millis(20),
        reply_ok: is_echo,
    };
    let (report, ()) = run_with_fault(run, |progress| async move {
        progress.reached(strike_at).await;
        // What a restarting database looks like to the server, without restarting the server
        // other tests share: new connections refused, existing ones dropped.
        admin_execute(
            &pg.admin_url,
            &format!(
                "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS false",
                pg.name
            ),
        )
        .await;
        admin_execute(
            &pg.admin_url,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND pid <> pg_backend_pid()",
                pg.name
            ),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        admin_execute(
            &pg.admin_url,
            &format!("ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS true", pg.name),
        )
        .await;
    })
    .await;
    assert!(
        report.refused(503) > 0,
        "webhooks during the outage should have been answered 503"
    );
    report.assert_exactly_once_and_all_sent();
    assert_no_reply_waits_for_a_lease(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_delays_webhooks_and_loses_nothing_once_it_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(dir.path());
    let (fake, fake_server) = fake_cloud_api(false).await;
    let target = Target::new(dir.path(), &db, &fake_server);
    let _server = target.start().await;
    let messages = traffic("LOCK", 10, 20, |c, i| format!("contact {c} message {i}"));
    let strike_at = messages.len() / 4;
    let run = Run {
        label: "SQLite, write lock held elsewhere".to_owned(),
        target: &target,
        fake: &fake,
        messages,
        spacing: Duration::from_millis(25),
        reply_ok: is_echo,
    };
    let url = db.url.as_str();
    let (report, held) = run_with_fault(run, |progress| async move {
        progress.reached(strike_at).await;
        // Another connection (a backup script, an operator's sqlite3 shell) takes the write
        // lock and keeps it past the server's 10 s busy timeout.
        let other = Database::connect(url).await.unwrap();
        let lock = other
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
            .expect("take the write lock");
        let taken = Instant::now();
        tokio::time::sleep(Duration::from_secs(12)).await;
        lock.rollback().await.unwrap();
        other.close().await.unwrap();
        taken.elapsed()
    })
    .await;
    println!("the write lock was held for {:.1} s", held.as_secs_f64());
    assert!(
        report.retried > 0,
        "webhooks during the lock should have been refused or timed out, and retried"
    );
    report.assert_exactly_once_and_all_sent();
    assert_no_reply_waits_for_a_lease(&report);
}

/// How the insurer's API misbehaves.
#[derive(Clone, Copy, Debug)]
enum InsurerFault {
    /// Accepts connections and never answers: every read runs into the timeout.
    Slow,
    /// Nothing listens: every connection is refused.
    Down,
}

/// The insurer's API with `fault`: its base URL, and how many connections it accepted.
async fn broken_insurer_api(fault: InsurerFault) -> (String, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    match fault {
        InsurerFault::Slow => {
            let accepted = accepted.clone();
            tokio::spawn(async move {
                // Held open and never read: the request waits for an answer that never comes.
                let mut held = Vec::new();
                while let Ok((socket, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    held.push(socket);
                }
            });
        }
        InsurerFault::Down => drop(listener),
    }
    (base_url, accepted)
}

/// Policyholders ask for their policies while the insurer's API is slow or down: the real
/// flows, the shipped insurer timeouts, retries and circuit breaker.
async fn insurer_fault_run(fault: InsurerFault) {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let (fake, fake_server) = fake_cloud_api(false).await;
        let (insurer_url, accepted) = broken_insurer_api(fault).await;
        let mut target = Target::new(dir.path(), &db, &fake_server);
        target.env = vec![
            ("INSUREBOT_DIALOGUE_HANDLER", "flows".to_owned()),
            (
                "INSUREBOT_DIALOGUE_FLOWS_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/flows").to_owned(),
            ),
            (
                "INSUREBOT_DIALOGUE_LOCALES_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/locales").to_owned(),
            ),
            ("INSUREBOT_DIALOGUE_WATCH", "false".to_owned()),
            ("INSUREBOT_INSURER_SOURCE", "http".to_owned()),
            ("INSUREBOT_INSURER_HTTP_BASE_URL", insurer_url),
            (
                "INSUREBOT_INSURER_HTTP_TOKEN",
                "fault-insurer-token".to_owned(),
            ),
        ];
        let _server = target.start().await;
        let asks = ["policy", "my policy", "policy details"];
        let run = Run {
            label: format!("{}, insurer API {fault:?}", db.label()),
            target: &target,
            fake: &fake,
            messages: traffic("INS", 10, 3, |_, i| asks[i % asks.len()].to_owned()),
            spacing: Duration::from_millis(50),
            reply_ok: is_sorry,
        };
        let (report, ()) = run_with_fault(run, |_| async {}).await;
        println!(
            "  the insurer API accepted {} connections",
            accepted.load(Ordering::SeqCst)
        );
        report.assert_exactly_once_and_all_sent();
        // The shipped settings give up on one read after 3 attempts of 1.5 s (4.8 s with the
        // backoff) and open the circuit after 5 failed reads. On SQLite those first reads run
        // one after another (a message's actions run inside its write transaction), about
        // 25 s; 40 s is generous and still fails for a hang or a missing breaker (30 slow
        // reads in a row would take 2.5 minutes).
        assert!(
            report.slowest_reply < Duration::from_secs(40),
            "a reply came {:.1} s after its webhook's 200",
            report.slowest_reply.as_secs_f64()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_insurer_api_costs_each_message_one_apology_and_loses_nothing() {
    insurer_fault_run(InsurerFault::Slow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_insurer_api_costs_each_message_one_apology_and_loses_nothing() {
    insurer_fault_run(InsurerFault::Down).await;
}

/// A send that reached Meta while the server was killed: its status webhook (which names the
/// row, `biz_opaque_callback_data` = `outbox:<id>`) gave the row the wamid while the send waited
/// for its answer, and the server died before it could record the send. The restarted server
/// takes its lease back and records the row sent instead of sending it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_meta_took_before_a_sigkill_is_not_sent_again_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let (fake, fake_server) = FakeCloudApi::start().await.unwrap();
        // The first send is taken at once and answered only after the kill; any later one is
        // answered at once.
        fake.script(FailureRule::Delay {
            count: 1,
            delay_ms: 60_000,
        });
        let target = Target::new(dir.path(), &db, &fake_server);
        let mut server = target.start().await;
        let http = reqwest::Client::new();
        let post = |body: String| {
            let signature = signature::sign(SECRET.as_bytes(), body.as_bytes());
            http.post(format!("{}/webhook", target.base()))
                .header("content-type", "application/json")
                .header("x-hub-signature-256", signature)
                .body(body)
                .send()
        };
        let now = Utc::now().timestamp();
        let message = webhook("919800000990", "wamid.KILLSENT1", now, "are you there");
        assert_eq!(post(message).await.unwrap().status(), 200);
        let sent = wait_for(|| fake_sends(&fake).into_iter().next()).await;
        let wamid = sent.wamid.clone().expect("the fake gave the send a wamid");
        let callback = sent.body["biz_opaque_callback_data"]
            .as_str()
            .expect("every send names its row")
            .to_owned();
        assert_eq!(
            post(status_webhook(&wamid, &callback, now))
                .await
                .unwrap()
                .status(),
            200
        );
        let conn = Database::connect(&db.url).await.unwrap();
        let outbox_row = || async { outbox::Entity::find().one(&conn).await.unwrap().unwrap() };
        // The status reached the row while its send is still in flight.
        let in_flight =
            wait_for_async(|| async { Some(outbox_row().await).filter(|row| row.wamid.is_some()) })
                .await;
        assert_eq!(in_flight.state, outbox::State::Queued, "{in_flight:#?}");
        assert!(in_flight.lease_owner.is_some(), "{in_flight:#?}");

        server.kill9();
        let _server = target.start().await;
        let row = wait_for_async(|| async {
            Some(outbox_row().await).filter(|row| row.state != outbox::State::Queued)
        })
        .await;
        assert_eq!(
            (row.state, row.wamid.as_deref(), row.attempts),
            (outbox::State::Sent, Some(wamid.as_str()), 1),
            "{}: {row:#?}",
            db.label()
        );
        // Time for a second send to reach the fake, had one gone.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert_eq!(fake_sends(&fake).len(), 1, "{}: sent twice", db.label());
        println!(
            "{}: the send Meta took before the kill was recorded sent after the restart, once",
            db.label()
        );
    }
}

fn fake_sends(fake: &FakeCloudApi) -> Vec<insurebot::whatsapp::fake::ReceivedRequest> {
    fake.received()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Send)
        .collect()
}

/// Meta's `sent` status webhook for `wamid`, echoing the send's callback data.
fn status_webhook(wamid: &str, callback: &str, timestamp: i64) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550000000", "phone_number_id": "100000000000001" },
            "statuses": [{ "id": wamid, "status": "sent", "timestamp": timestamp.to_string(),
                           "recipient_id": "919800000990", "biz_opaque_callback_data": callback }]
        }}]}]
    })
    .to_string()
}

/// Polls `ready` every 50 ms until it gives a value; panics after 15 s.
async fn wait_for<T>(ready: impl Fn() -> Option<T>) -> T {
    wait_for_async(|| std::future::ready(ready())).await
}

/// [`wait_for`] with an asynchronous check.
async fn wait_for_async<T, F: Future<Output = Option<T>>>(ready: impl Fn() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = ready().await {
            return value;
        }
        assert!(Instant::now() < deadline, "waited 15 s in vain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
