//! Outbound benchmark (issue 4 targets), run with `cargo bench --bench outbound`.
//!
//! 1. Rate accuracy: for each configured rate, an outbox full of messages to distinct contacts
//!    (so the per-recipient pace never applies) is drained by the real app against the fake
//!    Cloud API on the same machine, over real HTTP. From the fake's arrival times: the
//!    sustained rate (messages / span) and the most messages in any one-second window.
//!    Target: sustained ≥ 95% of the configured rate, never above it in any sliding second
//!    (20/s is where a token bucket with a burst showed 21).
//! 2. Queueing cost: `composer::queue` inside a write transaction, as the webhook → pipeline
//!    path calls it. Target: median under 1 ms.
//!
//! Each rate runs `RUNS` times; medians are printed. `INSUREBOT_BENCH_RATES=20,80` measures
//! some rates only; `INSUREBOT_MESSAGING_RATE_WINDOW_MARGIN_MS` sets the sender's window
//! margin (default 20). SQLite by default;
//! `INSUREBOT_BENCH_DATABASE_URL=postgres://…/db` (an empty database) to use PostgreSQL.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use insurebot::app::Application;
use insurebot::config::Settings;
use insurebot::messaging::composer::{self, Composer, Intent, Purpose};
use insurebot::store::entities::contact;
use insurebot::whatsapp::fake::{FakeCloudApi, RequestKind};
use insurebot::whatsapp::outbound::OutboundBody;
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{DatabaseConnection, EntityTrait};

const RUNS: usize = 3;
/// Seconds of sending per run at the configured rate.
const SECONDS: u32 = 4;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn settings(db_url: &str, api_base: &str, rate: u32) -> Settings {
    let env: BTreeMap<String, String> = [
        ("INSUREBOT_DATABASE_URL", db_url),
        ("INSUREBOT_LISTEN", "127.0.0.1:0"),
        ("INSUREBOT_WHATSAPP_APP_SECRET", "bench-secret"),
        ("INSUREBOT_WHATSAPP_VERIFY_TOKEN", "bench-verify"),
        ("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "bench-token"),
        ("INSUREBOT_PRIVACY_HASH_KEY", "bench-hash-key-0123456789"),
        ("INSUREBOT_INSURER_PAY_LINK_SECRET", "bench-pay-link-secret"),
        ("INSUREBOT_WHATSAPP_API_BASE", api_base),
        ("INSUREBOT_LOG_FILTER", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut s = Settings::from_sources(None, &env).expect("bench settings");
    s.messaging.rate_per_second = rate;
    s.messaging.max_in_flight = 128;
    // To see what another window margin costs and buys.
    if let Ok(margin) = std::env::var("INSUREBOT_MESSAGING_RATE_WINDOW_MARGIN_MS") {
        s.messaging.rate_window_margin_ms = margin.parse().expect("a number of milliseconds");
    }
    s
}

async fn fresh_db(dir: &tempfile::TempDir, name: &str) -> String {
    match std::env::var("INSUREBOT_BENCH_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
            // Start from empty tables each run.
            use sea_orm::ConnectionTrait;
            for t in ["outbox", "inbound_messages", "message_statuses", "contacts"] {
                let _ = db.execute_unprepared(&format!("DELETE FROM {t}")).await;
            }
            url
        }
        _ => format!("sqlite://{}?mode=rwc", dir.path().join(name).display()),
    }
}

async fn fill(db: &DatabaseConnection, n: usize, run: usize) -> Vec<Duration> {
    let composer = Composer::new(&Default::default());
    let mut queue_times = Vec::with_capacity(n);
    for i in 0..n {
        let c = contact::ActiveModel {
            id: NotSet,
            wa_id: Set(Some(format!("9198{run:02}{i:07}"))),
            user_id: Set(None),
            profile_name: Set(None),
            last_inbound_at: Set(Some(now_ms())),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(now_ms()),
            updated_at: Set(now_ms()),
        };
        let id = contact::Entity::insert(c)
            .exec(db)
            .await
            .unwrap()
            .last_insert_id;
        let txn = insurebot::store::begin_write(db).await.unwrap();
        let t0 = Instant::now();
        composer::queue(
            &*txn,
            &composer,
            Intent {
                contact_id: id,
                in_reply_to: None,
                purpose: Purpose::Reply,
                free_form: Some(OutboundBody::Text {
                    body: format!("bench {i}"),
                    preview_url: false,
                }),
                template: None,
            },
        )
        .await
        .unwrap();
        queue_times.push(t0.elapsed());
        txn.commit().await.unwrap();
    }
    queue_times
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// (sustained messages/s, most messages in any one-second window)
fn measure(times_ms: &mut [i64]) -> (f64, usize) {
    times_ms.sort_unstable();
    let n = times_ms.len();
    let span = (times_ms[n - 1] - times_ms[0]) as f64 / 1000.0;
    let mut max = 0;
    let mut j = 0;
    for i in 0..n {
        while j < n && times_ms[j] < times_ms[i] + 1000 {
            j += 1;
        }
        max = max.max(j - i);
    }
    ((n - 1) as f64 / span, max)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, server) = FakeCloudApi::start().await.unwrap();
    let mut all_queue_times = Vec::new();
    println!("rate/s | run | messages | sustained/s | % of rate | max in any 1 s");
    let mut summary = Vec::new();
    // INSUREBOT_BENCH_RATES=20,80 to measure some rates only.
    let rates: Vec<u32> = std::env::var("INSUREBOT_BENCH_RATES").map_or_else(
        |_| vec![20, 80, 500, 1000],
        |list| {
            list.split(',')
                .map(|r| r.trim().parse().expect("a rate"))
                .collect()
        },
    );
    for rate in rates {
        let mut sustained = Vec::new();
        let mut peaks = Vec::new();
        for run in 0..RUNS {
            fake.reset();
            let url = fresh_db(&dir, &format!("bench-{rate}-{run}.db")).await;
            let n = (rate * SECONDS) as usize;
            // Build once to migrate, fill the outbox while no sender runs, then serve.
            let app = Application::build(settings(&url, &server.base_url, rate))
                .await
                .unwrap();
            let queue_times = fill(&app.db(), n, run).await;
            all_queue_times.extend(queue_times);
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let handle = tokio::spawn(app.run_until_stopped(async {
                let _ = rx.await;
            }));
            let deadline = Instant::now() + Duration::from_secs(u64::from(SECONDS) * 4 + 30);
            while fake.received().len() < n {
                assert!(
                    Instant::now() < deadline,
                    "only {} of {n} sent",
                    fake.received().len()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = tx.send(());
            handle.await.unwrap().unwrap();
            let mut times: Vec<i64> = fake
                .received()
                .iter()
                .filter(|r| r.kind == RequestKind::Send)
                .map(|r| r.received_at.timestamp_millis())
                .collect();
            let (rate_seen, peak) = measure(&mut times);
            println!(
                "{rate:>6} | {run:>3} | {n:>8} | {rate_seen:>11.1} | {:>8.1}% | {peak:>5}",
                100.0 * rate_seen / f64::from(rate)
            );
            sustained.push(rate_seen);
            peaks.push(peak);
        }
        summary.push((
            rate,
            median(sustained),
            *peaks.iter().max().unwrap(),
            median(peaks),
        ));
    }
    println!();
    println!("median over {RUNS} runs:");
    for (rate, s, worst_peak, median_peak) in summary {
        println!(
            "  {rate:>5}/s configured: sustained {s:.1}/s ({:.1}%), max in any 1 s window: median {median_peak}, worst {worst_peak} (limit {rate})",
            100.0 * s / f64::from(rate)
        );
    }
    let mut us: Vec<f64> = all_queue_times
        .iter()
        .map(|d| d.as_secs_f64() * 1e6)
        .collect();
    us.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "composer::queue inside the write transaction ({} calls): median {:.0} µs, p90 {:.0} µs, p99 {:.0} µs",
        us.len(),
        us[us.len() / 2],
        us[us.len() * 9 / 10],
        us[us.len() * 99 / 100]
    );
    server.shutdown().await;
}
