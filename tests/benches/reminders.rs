//! Reminders and campaigns benchmark (issue 8 targets), `cargo bench --bench reminders`.
//!
//! 1. Scheduling: 1,000,000 premiums (250,000 policies with quarterly instalments spread over
//!    a year, 20% paid) and one day's run: finding the due ones and queueing each through the
//!    composer, with its unique key, in batches. Target: under 60 s. `RUNS` runs on a fresh
//!    copy of the reminder state; the median is printed.
//! 2. Campaign rate: a 100,000-recipient campaign (CSV) driven by the real app against the
//!    fake Cloud API over HTTP. Target: the sustained rate within 5% of the configured one.
//!    `INSUREBOT_BENCH_CAMPAIGN_RECIPIENTS`, `INSUREBOT_BENCH_CAMPAIGN_RATE` and
//!    `INSUREBOT_BENCH_CAMPAIGN_RUNS` change the size, rate and number of runs (default
//!    100,000 at 500/s, sender at 1,000/s, 3 runs; the median ratio is printed). Each run
//!    prints the rate at which the runner queued as well as the rate the fake received, so a
//!    shortfall shows on which side it is.
//!
//! SQLite by default; `INSUREBOT_BENCH_DATABASE_URL=postgres://…/db` (an empty database) for
//! PostgreSQL. `INSUREBOT_BENCH_ONLY=schedule|campaign` runs one part. On a PostgreSQL server
//! with autovacuum off the bench vacuums itself (see [`autovacuum_off`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{Duration as Days, FixedOffset, NaiveDate, Utc};
use insurebot::app::Application;
use insurebot::config::reminders::RemindersSettings;
use insurebot::config::{DatabaseUrl, MessagingSettings, Settings};
use insurebot::insurer::PayLinks;
use insurebot::messaging::composer::Composer;
use insurebot::reminders::campaign_report;
use insurebot::reminders::campaigns::{self, Audience, NewCampaign};
use insurebot::reminders::premium::{self, Reminders};
use insurebot::whatsapp::fake::{FakeCloudApi, RequestKind};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};

const RUNS: usize = 3;
const POLICIES: usize = 250_000;
const PER_POLICY: usize = 4;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn db_url(dir: &tempfile::TempDir, name: &str) -> String {
    match std::env::var("INSUREBOT_BENCH_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => format!("sqlite://{}?mode=rwc", dir.path().join(name).display()),
    }
}

/// Empties `tables`. On PostgreSQL with TRUNCATE: a DELETE leaves every row behind as a dead
/// tuple until a vacuum, so each run would start slower than the one before.
async fn clear(db: &DatabaseConnection, tables: &[&str]) {
    if db.get_database_backend() == DbBackend::Postgres {
        let _ = db
            .execute_unprepared(&format!("TRUNCATE {} CASCADE", tables.join(", ")))
            .await;
        return;
    }
    for t in tables {
        let _ = db.execute_unprepared(&format!("DELETE FROM {t}")).await;
    }
}

/// Whether PostgreSQL's autovacuum is off (as on the shared development server): then the
/// bench does its work itself, with `VACUUM ANALYZE` after loading and every
/// [`VACUUM_EVERY`] during a campaign, so the figures are those of a server with the default
/// settings rather than of tables full of dead tuples and without statistics.
async fn autovacuum_off(db: &DatabaseConnection) -> bool {
    if db.get_database_backend() != DbBackend::Postgres {
        return false;
    }
    let off = db
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('autovacuum') = 'off' AS off",
        ))
        .await
        .ok()
        .flatten()
        .and_then(|r| r.try_get::<bool>("", "off").ok())
        .unwrap_or(false);
    if off {
        println!(
            "PostgreSQL autovacuum is off on this server: the bench runs VACUUM ANALYZE after loading and every {} s during a campaign, as autovacuum would",
            VACUUM_EVERY.as_secs()
        );
    }
    off
}

const VACUUM_EVERY: Duration = Duration::from_secs(30);

async fn vacuum(db: &DatabaseConnection, tables: &[&str]) {
    for t in tables {
        let _ = db.execute_unprepared(&format!("VACUUM ANALYZE {t}")).await;
    }
}

/// Multi-row INSERTs of generated values (digits and fixed words only, so inlining is safe).
async fn fill(db: &DatabaseConnection, today: NaiveDate) {
    clear(
        db,
        &[
            "campaign_recipients",
            "campaigns",
            "reminder_sends",
            "reminder_runs",
            "outbox",
            "premium_reminders",
            "identity_verifications",
            "identity_attempts",
            "conversations",
            "inbound_messages",
            "contacts",
            "premiums",
            "claims",
            "policies",
            "policyholders",
        ],
    )
    .await;
    let start = today - Days::days(60);
    let chunk = 1000;
    for base in (0..POLICIES).step_by(chunk) {
        let range = base..(base + chunk).min(POLICIES);
        let holders: Vec<String> = range
            .clone()
            .map(|i| format!("('C{i:07}','Holder {i}','1980-01-01',0,0)"))
            .collect();
        let policies: Vec<String> = range
            .clone()
            .map(|i| {
                format!(
                    "('P{i:08}','C{i:07}','9190{i:08}','life','Jeevan','in_force',50000000,'2020-01-01',0,0)"
                )
            })
            .collect();
        let mut premiums = Vec::with_capacity(chunk * PER_POLICY);
        for i in range {
            for q in 0..PER_POLICY {
                // Quarterly, each policy on its own day of the year.
                let due = start + Days::days(((i * 7) % 91 + q * 91) as i64);
                let paid = i % 5 == 0;
                premiums.push(format!(
                    "('P{i:08}','{due}',2450050,'{}',{},0,0)",
                    if paid { "paid" } else { "due" },
                    if paid { "'2026-01-01'" } else { "NULL" }
                ));
            }
        }
        let txn = insurebot::store::begin_write(db).await.unwrap();
        txn.execute_unprepared(&format!(
            "INSERT INTO policyholders (customer_id,name,dob,created_at,updated_at) VALUES {}",
            holders.join(",")
        ))
        .await
        .unwrap();
        txn.execute_unprepared(&format!(
            "INSERT INTO policies (policy_number,customer_id,mobile,product,plan,status,sum_assured,start_date,created_at,updated_at) VALUES {}",
            policies.join(",")
        ))
        .await
        .unwrap();
        txn.execute_unprepared(&format!(
            "INSERT INTO premiums (policy_number,due_date,amount,status,paid_date,created_at,updated_at) VALUES {}",
            premiums.join(",")
        ))
        .await
        .unwrap();
        txn.commit().await.unwrap();
    }
}

async fn schedule_bench(dir: &tempfile::TempDir) {
    let url = db_url(dir, "schedule.db");
    let db = insurebot::store::connect(&DatabaseUrl::new(url))
        .await
        .unwrap();
    insurebot::store::migrate(&db).await.unwrap();
    let defs = insurebot::engine::templates_file::load_file(std::path::Path::new(
        "flows/templates/templates.yaml",
    ))
    .unwrap();
    insurebot::messaging::templates::seed(&db, &defs, &[String::new()], 0)
        .await
        .unwrap();
    let ist = FixedOffset::east_opt(19_800).unwrap();
    let today = Utc::now().with_timezone(&ist).date_naive();
    let t = Instant::now();
    fill(&db, today).await;
    println!(
        "filled {} premiums on {} policies in {:.1} s",
        POLICIES * PER_POLICY,
        POLICIES,
        t.elapsed().as_secs_f64()
    );
    if autovacuum_off(&db).await {
        vacuum(&db, &["policyholders", "policies", "premiums"]).await;
    }
    let r = Reminders {
        settings: RemindersSettings::default(),
        composer: Composer::new(&MessagingSettings::default()),
        pay_links: PayLinks::new(
            "https://pay.example.in/p/{policy_number}?t={token}",
            b"bench-key-0123456789",
            Days::hours(48),
        ),
        i18n: Some(std::sync::Arc::new(
            insurebot::engine::i18n::I18n::load(std::path::Path::new("locales")).0,
        )),
        default_language: "en".into(),
        instance_id: "bench".into(),
    };
    let now = chrono::TimeZone::from_utc_datetime(&Utc, &today.and_hms_opt(5, 0, 0).unwrap());
    println!("run | candidates | queued | seconds");
    let mut secs = Vec::new();
    for run in 0..RUNS {
        // Each run starts with no reminder state and no contacts (every policyholder new).
        clear(
            &db,
            &["reminder_sends", "reminder_runs", "outbox", "contacts"],
        )
        .await;
        let t = Instant::now();
        let report = premium::run_day(&db, &r, today, now).await.unwrap();
        let s = t.elapsed().as_secs_f64();
        println!(
            "{run:>3} | {:>10} | {:>6} | {s:>7.2}",
            report.candidates, report.queued
        );
        secs.push(s);
    }
    println!(
        "scheduling over {} premiums: median {:.2} s (target < 60 s)",
        POLICIES * PER_POLICY,
        median(secs)
    );
}

fn settings(db_url: &str, api_base: &str, sender_rate: u32, max_campaign: u32) -> Settings {
    let env: BTreeMap<String, String> = [
        ("INSUREBOT_DATABASE_URL", db_url),
        ("INSUREBOT_LISTEN", "127.0.0.1:0"),
        ("INSUREBOT_WHATSAPP_APP_SECRET", "bench-secret"),
        ("INSUREBOT_WHATSAPP_VERIFY_TOKEN", "bench-verify"),
        ("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "bench-token"),
        ("INSUREBOT_WHATSAPP_API_BASE", api_base),
        ("INSUREBOT_PRIVACY_HASH_KEY", "bench-hash-key-0123456789"),
        ("INSUREBOT_INSURER_PAY_LINK_SECRET", "bench-pay-link-secret"),
        ("INSUREBOT_LOG_FILTER", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut s = Settings::from_sources(None, &env).expect("bench settings");
    s.messaging.rate_per_second = sender_rate;
    s.messaging.max_in_flight = 128;
    s.campaigns.max_rate_per_second = max_campaign;
    s.reminders.enabled = false;
    s.reminders.quiet_start = "00:00".into();
    s.reminders.quiet_end = "00:00".into();
    s
}

/// `(n - 1) / (last - first)` over millisecond timestamps: the sustained rate per second.
fn sustained(times: &mut [i64]) -> (f64, f64) {
    times.sort_unstable();
    let span = (times[times.len() - 1] - times[0]) as f64 / 1000.0;
    ((times.len() - 1) as f64 / span, span)
}

/// What one campaign run measured.
struct CampaignRun {
    /// Sends per second at the fake Cloud API, from the first to the last.
    sent_rate: f64,
    /// Recipients moved to the outbox per second by the campaign runner.
    queued_rate: f64,
}

async fn campaign_run(dir: &tempfile::TempDir, run: usize, n: usize, rate: u32) -> CampaignRun {
    let (fake, server) = FakeCloudApi::start().await.unwrap();
    let url = db_url(dir, &format!("campaign-{run}.db"));
    let s = settings(&url, &server.base_url, rate * 2, rate);
    let app = Application::build(s.clone()).await.unwrap();
    let db = app.db();
    clear(
        &db,
        &[
            "campaign_recipients",
            "campaigns",
            "message_statuses",
            "outbox",
            "consent_log",
            "contacts",
        ],
    )
    .await;
    let mut csv = String::from("phone,customer_name,offer\n");
    for i in 0..n {
        csv.push_str(&format!("9189{i:08},Name {i},Offer {i}\n"));
    }
    let t = Instant::now();
    let created = campaigns::create(
        &db,
        &s.campaigns,
        "",
        NewCampaign {
            name: "bench".into(),
            template: "policy_offer".into(),
            language: "en".into(),
            rate_per_second: Some(rate),
            start_at: None,
            number: None,
            audience: Audience::Csv {
                csv,
                skip_invalid: false,
            },
        },
        Utc::now(),
    )
    .await
    .unwrap();
    // Marketing needs a recorded opt-in (the consent gate); every recipient gave one, as a
    // website form would record through the consent API. One statement: a generated id only.
    db.execute_unprepared(&format!(
        "INSERT INTO consent_log (contact_id, change, scope, source, shown_text, created_at) \
         SELECT contact_id, 'opt_in', 'marketing', 'api', 'bench opt-in', 0 \
         FROM campaign_recipients WHERE campaign_id = {}",
        created.id
    ))
    .await
    .unwrap();
    println!(
        "run {run}: campaign of {} recipients created and opted in in {:.1} s",
        created.recipients,
        t.elapsed().as_secs_f64()
    );
    let busy = ["outbox", "campaign_recipients", "contacts", "consent_log"];
    let vacuums = autovacuum_off(&db).await;
    if vacuums {
        vacuum(&db, &busy).await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    campaigns::start(&db, created.id, Utc::now()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs((n as u64 / u64::from(rate)) * 2 + 60);
    let mut vacuumed = Instant::now();
    // `attempts()` is a counter; `received()` clones every recorded request under the fake's
    // lock, which at 100,000 requests costs enough CPU to slow the very thing measured.
    loop {
        let sent = fake.attempts() as usize;
        if sent >= n {
            break;
        }
        assert!(Instant::now() < deadline, "only {sent} of {n} sent");
        if vacuums && vacuumed.elapsed() >= VACUUM_EVERY {
            vacuum(&db, &busy[..2]).await;
            vacuumed = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut times: Vec<i64> = fake
        .received()
        .iter()
        .filter(|r| r.kind == RequestKind::Send)
        .map(|r| r.received_at.timestamp_millis())
        .collect();
    let (sent_rate, span) = sustained(&mut times);
    // Per-second counts over the full seconds of the run (the first and last are partial).
    let first = times[0] / 1000;
    let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
    for t in &times {
        *per_second.entry(t / 1000 - first).or_default() += 1;
    }
    let last = *per_second.keys().max().unwrap();
    let full: Vec<f64> = per_second
        .iter()
        .filter(|(s, _)| **s > 0 && **s < last)
        .map(|(_, c)| *c as f64)
        .collect();
    let max = full.iter().copied().fold(0.0, f64::max);
    let min = full.iter().copied().fold(f64::MAX, f64::min);
    let mut queued_at: Vec<i64> = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT queued_at FROM campaign_recipients WHERE campaign_id = {} AND queued_at IS NOT NULL",
                created.id
            ),
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<i64>("", "queued_at").unwrap())
        .collect();
    let (queued_rate, _) = sustained(&mut queued_at);
    let t = Instant::now();
    let report = campaign_report(&db, created.id).await.unwrap();
    let report_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "run {run}: {n} at {rate}/s: sent {sent_rate:.1}/s = {:.3} of the rate (queued {queued_rate:.1}/s = {:.3}); per full second median {:.0}, min {min:.0}, max {max:.0}; span {span:.1} s; report in {report_ms:.0} ms: sent {} queued {} pending {}",
        sent_rate / f64::from(rate),
        queued_rate / f64::from(rate),
        median(full),
        report.sent,
        report.queued,
        report.pending
    );
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
    server.shutdown().await;
    CampaignRun {
        sent_rate,
        queued_rate,
    }
}

async fn campaign_bench(dir: &tempfile::TempDir) {
    let n: usize = env_or("INSUREBOT_BENCH_CAMPAIGN_RECIPIENTS", 100_000);
    let rate: u32 = env_or("INSUREBOT_BENCH_CAMPAIGN_RATE", 500);
    let runs: usize = env_or("INSUREBOT_BENCH_CAMPAIGN_RUNS", RUNS).max(1);
    let mut sent = Vec::new();
    let mut queued = Vec::new();
    for run in 0..runs {
        let r = campaign_run(dir, run, n, rate).await;
        sent.push(r.sent_rate / f64::from(rate));
        queued.push(r.queued_rate / f64::from(rate));
    }
    println!(
        "campaign of {n} at {rate}/s over {runs} run(s): achieved / configured rate, median {:.3} (sent at the fake Cloud API; queued {:.3}); target within 5%",
        median(sent),
        median(queued)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let only = std::env::var("INSUREBOT_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "schedule" {
        schedule_bench(&dir).await;
    }
    if only.is_empty() || only == "campaign" {
        campaign_bench(&dir).await;
    }
}
