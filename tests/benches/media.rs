//! The media benchmark (issue 18): inbound photos and documents against a real
//! `insurebot serve` (release build), its media fetched from the fake Cloud API running in
//! this process, over real HTTP, into the local media store.
//!
//! (a) 100 contacts each send a 5 MB photo at once: every file must be stored with the hash the
//!     metadata claims, the server's peak memory (VmHWM) stay under 200 MB, and the acks of the
//!     other webhooks sent meanwhile (text messages, one after the other) stay under 50 ms at
//!     the 99th percentile.
//! (b) One 100 MB document, on a fresh server: it must stream to the store, the server's peak
//!     memory growing by less than 20 MB over its peak before the document.
//!
//! ```sh
//! cargo bench --bench media                       # SQLite
//! MEDIA_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench media
//! MEDIA_SERVER_BIN=/tmp/insurebot-main cargo bench --bench media   # another build
//! MEDIA_PHOTOS=100 MEDIA_PHOTO_MB=5 MEDIA_DOCUMENT_MB=100 cargo bench --bench media
//! ```
//! It exits non-zero when a target is missed. The PostgreSQL URL names an admin database; the
//! benchmark creates (and drops) its own.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{database, rss_mb, stop, wait_until_up};
use insurebot::store::entities::media_file;
use insurebot::whatsapp::fake::FakeCloudApi;
use insurebot::whatsapp::signature;
use sea_orm::{Database, EntityTrait};
use serde_json::json;
use sha2::{Digest, Sha256};

const SECRET: &str = "media-secret";
const MB: usize = 1024 * 1024;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A file of `len` bytes starting with `magic`, different for each `seed` (distinct hashes:
/// the store keeps one file per hash, and this measures 100 files, not one).
fn file(magic: &[u8], len: usize, seed: u64) -> Vec<u8> {
    let mut v = magic.to_vec();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < len {
        // xorshift: incompressible filler, cheap to make.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

const JPEG: &[u8] = &[
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
];
const PDF: &[u8] = b"%PDF-1.7\n";

struct Server {
    child: Child,
    base: String,
    database_url: String,
    drop_db: Option<common::DropDatabase>,
    work: std::path::PathBuf,
}

async fn start(api_base: &str, name: &str) -> Server {
    let work = std::env::temp_dir().join(format!("insurebot-media-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let admin = std::env::var("MEDIA_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let (database_url, drop_db) = database(admin.as_deref(), &work, name).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = env!("CARGO_MANIFEST_DIR");
    let server_bin = std::env::var("MEDIA_SERVER_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_insurebot").to_owned());
    let child = Command::new(server_bin)
        .arg("serve")
        .current_dir(&work)
        .env("INSUREBOT_LISTEN", format!("127.0.0.1:{port}"))
        .env("INSUREBOT_DATABASE_URL", &database_url)
        .env("INSUREBOT_MEDIA_DIR", work.join("media"))
        .env("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "media-token")
        .env("INSUREBOT_PRIVACY_HASH_KEY", "media-hash-key-0123456789")
        .env("INSUREBOT_INSURER_PAY_LINK_SECRET", "media-pay-link-secret")
        .env("INSUREBOT_WHATSAPP_APP_SECRET", SECRET)
        .env("INSUREBOT_WHATSAPP_VERIFY_TOKEN", "media-verify")
        .env("INSUREBOT_WHATSAPP_API_BASE", api_base)
        // The number its webhooks name: a message to another number is refused.
        .env("INSUREBOT_WHATSAPP_PHONE_NUMBER_ID", "106540352242922")
        .env("INSUREBOT_DIALOGUE_FLOWS_DIR", format!("{root}/flows"))
        .env("INSUREBOT_DIALOGUE_LOCALES_DIR", format!("{root}/locales"))
        .env(
            "INSUREBOT_LOG_FILTER",
            std::env::var("MEDIA_LOG_FILTER").unwrap_or_else(|_| "warn".to_owned()),
        )
        .env("INSUREBOT_MESSAGING_RATE_PER_SECOND", "10000")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start insurebot serve");
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&reqwest::Client::new(), &base).await;
    Server {
        child,
        base,
        database_url,
        drop_db,
        work,
    }
}

impl Server {
    async fn finish(mut self) {
        stop(&mut self.child);
        if let Some(drop_db) = self.drop_db.take() {
            drop_db.await;
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn envelope(phone: &str, message: serde_json::Value) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "WABA", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550000000", "phone_number_id": "106540352242922" },
            "contacts": [{ "profile": { "name": "Bench" }, "wa_id": phone }],
            "messages": [message]
        }}]}]
    })
    .to_string()
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn wamid() -> String {
    format!(
        "wamid.MEDIA{}x{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

fn now_secs() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

fn media_webhook(phone: &str, kind: &str, media_id: &str, mime: &str) -> String {
    envelope(
        phone,
        json!({ "from": phone, "id": wamid(), "timestamp": now_secs(), "type": kind,
                kind: { "id": media_id, "mime_type": mime } }),
    )
}

fn text_webhook(phone: &str, body: &str) -> String {
    envelope(
        phone,
        json!({ "from": phone, "id": wamid(), "timestamp": now_secs(), "type": "text",
                "text": { "body": body } }),
    )
}

/// Posts a signed webhook; its ack time.
async fn post(http: &reqwest::Client, base: &str, body: String) -> Duration {
    let sig = signature::sign(SECRET.as_bytes(), body.as_bytes());
    let started = Instant::now();
    let response = http
        .post(format!("{base}/webhook"))
        .header("x-hub-signature-256", sig)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("webhook");
    let took = started.elapsed();
    assert!(
        response.status().is_success(),
        "webhook answered {}",
        response.status()
    );
    took
}

/// Waits until the server has written `n` media rows (stored or failed); panics after `limit`.
async fn wait_for_rows(database_url: &str, n: usize, limit: Duration) -> Vec<media_file::Model> {
    let db = Database::connect(database_url).await.expect("connect");
    let deadline = Instant::now() + limit;
    loop {
        let rows = media_file::Entity::find()
            .all(&db)
            .await
            .unwrap_or_default();
        if rows.len() >= n {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} files fetched in {limit:?}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The files of the local store, by hash, read back and hashed again.
fn stored_hashes(dir: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let Ok(prefixes) = std::fs::read_dir(dir.join("sha256")) else {
        return out;
    };
    for prefix in prefixes.flatten() {
        for f in std::fs::read_dir(prefix.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let bytes = std::fs::read(f.path()).unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            assert_eq!(sha256_hex(&bytes), name, "a stored file matches its key");
            out.insert(name);
        }
    }
    out
}

/// Text webhooks sent one after the other (10 ms apart) from `contacts` numbers until
/// stopped: the "other webhooks" whose acks are measured.
struct Probe {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<(f64, f64)>>,
}

impl Probe {
    /// Starts probing; each ack is kept as (seconds since `t0` when it was sent, ms it took).
    fn start(http: &reqwest::Client, base: &str, t0: Instant, first_contact: usize) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (http, base) = (http.clone(), base.to_owned());
        let task = tokio::spawn(async move {
            let mut acks = Vec::new();
            let mut n = first_contact;
            while !*stopped.borrow() {
                n += 1;
                let sent_at = t0.elapsed().as_secs_f64();
                let took = post(
                    &http,
                    &base,
                    text_webhook(&format!("9170000{:05}", n % 2000), "hi"),
                )
                .await;
                acks.push((sent_at, took.as_secs_f64() * 1000.0));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            acks
        });
        Self { stop, task }
    }

    async fn finish(self) -> Vec<(f64, f64)> {
        self.stop.send(true).unwrap();
        self.task.await.unwrap()
    }
}

/// The acks second by second while the photos came in (count, p50, max), and the slowest
/// ones with when they were sent: where the time goes shows as when it goes.
fn print_timeline(timeline: &[(f64, f64)], fetched_in: Duration) {
    let seconds = fetched_in.as_secs_f64().ceil() as usize;
    let mut line = String::from("  acks by second (n p50/max ms):");
    for s in 0..seconds.min(60) {
        let mut in_second: Vec<f64> = timeline
            .iter()
            .filter(|(at, _)| *at as usize == s)
            .map(|a| a.1)
            .collect();
        in_second.sort_by(f64::total_cmp);
        line.push_str(&format!(
            " [{s}s {} {:.0}/{:.0}]",
            in_second.len(),
            percentile(&in_second, 0.5),
            percentile(&in_second, 1.0)
        ));
    }
    println!("{line}");
    let mut slowest = timeline.to_vec();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    let slowest: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|(at, ms)| format!("{ms:.1} ms at {at:.2} s"))
        .collect();
    println!("  slowest acks: {}", slowest.join(", "));
}

/// The fake Cloud API on a runtime of its own: serving 100 downloads of 5 MB must not delay
/// the probe's own tasks in this process, or the bench would time itself, not the server.
async fn spawn_fake(
    fake: &FakeCloudApi,
) -> (
    insurebot::whatsapp::fake::FakeServer,
    tokio::runtime::Runtime,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("fake-cloud-api")
        .enable_all()
        .build()
        .expect("the fake's runtime");
    let server = runtime
        .spawn(fake.clone().spawn(SocketAddr::from(([127, 0, 0, 1], 0))))
        .await
        .expect("the fake starts")
        .expect("the fake binds");
    (server, runtime)
}

#[tokio::main]
async fn main() {
    let photos = env_usize("MEDIA_PHOTOS", 100);
    let photo_bytes = env_usize("MEDIA_PHOTO_MB", 5) * MB - 64 * 1024;
    let document_bytes = env_usize("MEDIA_DOCUMENT_MB", 100) * MB;
    let fake = FakeCloudApi::new();
    let (fake_server, fake_runtime) = spawn_fake(&fake).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let mut missed = Vec::new();

    // (a) 100 photos at once, other webhooks meanwhile.
    let server = start(&fake_server.base_url, "photos").await;
    println!(
        "media (a): {photos} contacts send a {:.1} MB photo each at once; database {}",
        photo_bytes as f64 / MB as f64,
        if server.database_url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let files: Vec<Vec<u8>> = (0..photos)
        .map(|i| file(JPEG, photo_bytes, i as u64 + 1))
        .collect();
    let expected: std::collections::BTreeSet<String> =
        files.iter().map(|f| sha256_hex(f)).collect();
    let ids: Vec<String> = files
        .into_iter()
        .map(|f| fake.add_media(f, "image/jpeg"))
        .collect();
    // The same probe without media first: what the acks cost on this machine and build
    // anyway, so that what the photos add can be told apart.
    let quiet_secs = env_usize("MEDIA_QUIET_SECS", 3);
    let quiet = Probe::start(&http, &server.base, Instant::now(), 0);
    tokio::time::sleep(Duration::from_secs(quiet_secs as u64)).await;
    let mut quiet = quiet.finish().await;
    quiet.sort_by(|a, b| a.1.total_cmp(&b.1));
    let quiet_ms: Vec<f64> = quiet.iter().map(|a| a.1).collect();
    println!(
        "  acks of {} webhooks before the photos ({quiet_secs} s, no media): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        quiet_ms.len(),
        percentile(&quiet_ms, 0.5),
        percentile(&quiet_ms, 0.99),
        percentile(&quiet_ms, 1.0)
    );
    let before_mb = rss_mb(&server.child, "VmHWM:");
    let started = Instant::now();
    let probe = Probe::start(&http, &server.base, started, 1000);
    let sends: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (http, base) = (http.clone(), server.base.clone());
            let body = media_webhook(&format!("9180000{i:05}"), "image", id, "image/jpeg");
            tokio::spawn(async move { post(&http, &base, body).await })
        })
        .collect();
    let mut media_acks = Vec::new();
    for s in sends {
        media_acks.push(s.await.unwrap().as_secs_f64() * 1000.0);
    }
    let rows = wait_for_rows(&server.database_url, photos, Duration::from_secs(300)).await;
    let fetched_in = started.elapsed();
    let timeline = probe.finish().await;
    let mut acks: Vec<f64> = timeline.iter().map(|a| a.1).collect();
    acks.sort_by(f64::total_cmp);
    media_acks.sort_by(f64::total_cmp);
    let peak_mb = rss_mb(&server.child, "VmHWM:");
    let stored = rows.iter().filter(|r| r.state == "stored").count();
    let row_hashes: std::collections::BTreeSet<String> =
        rows.iter().filter_map(|r| r.sha256.clone()).collect();
    let on_disk = stored_hashes(&server.work.join("media"));
    let all_match = row_hashes == expected && on_disk == expected;
    println!(
        "  stored {stored} of {photos} in {:.1} s; hashes of rows and files match the metadata: {all_match}",
        fetched_in.as_secs_f64()
    );
    println!(
        "  server peak memory (VmHWM): {peak_mb:.1} MB (target < 200), {before_mb:.1} MB before"
    );
    println!(
        "  acks of {} other webhooks meanwhile: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 < 50)",
        acks.len(),
        percentile(&acks, 0.5),
        percentile(&acks, 0.99),
        percentile(&acks, 1.0)
    );
    println!(
        "  acks of the {photos} media webhooks: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&media_acks, 0.5),
        percentile(&media_acks, 0.99)
    );
    print_timeline(&timeline, fetched_in);
    if stored != photos || !all_match {
        missed.push("(a) every photo stored with its hash");
    }
    if peak_mb.is_nan() || peak_mb >= 200.0 {
        missed.push("(a) peak memory < 200 MB");
    }
    if percentile(&acks, 0.99) >= 50.0 {
        missed.push("(a) other acks p99 < 50 ms");
    }
    server.finish().await;

    // (b) One 100 MB document on a fresh server.
    let server = start(&fake_server.base_url, "document").await;
    // Warm up the paths a document takes (webhook, pipeline, fetch, store) with a small one,
    // so the growth measured is the big file's, not first-use allocations.
    let warm = file(PDF, 256 * 1024, 7);
    let warm_id = fake.add_media(warm, "application/pdf");
    post(
        &http,
        &server.base,
        media_webhook("919900000001", "document", &warm_id, "application/pdf"),
    )
    .await;
    wait_for_rows(&server.database_url, 1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_mb = rss_mb(&server.child, "VmHWM:");
    let document = file(PDF, document_bytes, 99);
    let document_hash = sha256_hex(&document);
    let doc_id = fake.add_media(document, "application/pdf");
    let started = Instant::now();
    post(
        &http,
        &server.base,
        media_webhook("919900000002", "document", &doc_id, "application/pdf"),
    )
    .await;
    let rows = wait_for_rows(&server.database_url, 2, Duration::from_secs(300)).await;
    let took = started.elapsed();
    let after_mb = rss_mb(&server.child, "VmHWM:");
    let row = rows
        .iter()
        .find(|r| r.size_bytes == Some(document_bytes as i64));
    let ok = row.is_some_and(|r| r.sha256.as_deref() == Some(document_hash.as_str()));
    let on_disk = stored_hashes(&server.work.join("media")).contains(&document_hash);
    let growth = after_mb - before_mb;
    println!(
        "media (b): a {} MB document stored in {:.1} s with its hash: {} (on disk: {on_disk})",
        document_bytes / MB,
        took.as_secs_f64(),
        ok
    );
    println!(
        "  server peak memory (VmHWM): {before_mb:.1} MB before, {after_mb:.1} MB after: growth {growth:.1} MB (target < 20)"
    );
    if !ok || !on_disk {
        missed.push("(b) the document stored with its hash");
    }
    if growth.is_nan() || growth >= 20.0 {
        missed.push("(b) memory growth < 20 MB");
    }
    server.finish().await;
    drop(fake_server);
    fake_runtime.shutdown_background();

    if missed.is_empty() {
        println!("media: every target met");
    } else {
        println!("media: targets missed: {}", missed.join("; "));
        std::process::exit(1);
    }
}
