//! The login storm benchmark (issue 16): many console logins at once against a real
//! `insurebot serve` process (the release build), measuring the server's peak memory
//! (VmHWM), how the attempts were answered and how fast, and `/healthz` throughout.
//!
//! Every attempt is let through the lockout (the per-address limit is raised and each wrong
//! password goes to its own email), so every one of them asks for a password check: the
//! worst case for memory. One in four is the right password of a real agent, the others
//! wrong passwords for emails that do not exist (checked against a dummy hash all the same).
//!
//! ```sh
//! cargo bench --bench login                               # SQLite, 3 rounds of 200 at once
//! LOGIN_ATTEMPTS=500 LOGIN_ROUNDS=5 cargo bench --bench login
//! LOGIN_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench login
//! LOGIN_MAX_HASHES=4 cargo bench --bench login            # console.login_max_concurrent_hashes
//! LOGIN_SERVER_BIN=/tmp/insurebot-main cargo bench --bench login   # another build, to compare
//! ```
//! The PostgreSQL URL names an admin database; the benchmark creates (and drops) its own.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{database, rss_mb, stop, wait_until_up};

const AGENT: &str = "bench@example.com";
const PASSWORD: &str = "a long enough bench password";
/// The login form's double-submit token: any value will do as long as cookie and field agree.
const CSRF: &str = "0123456789abcdef0123456789abcdef";

struct Options {
    attempts: usize,
    rounds: usize,
    max_hashes: Option<String>,
    database_url: Option<String>,
}

fn options() -> Options {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let set = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Options {
        attempts: env("LOGIN_ATTEMPTS", 200),
        rounds: env("LOGIN_ROUNDS", 3),
        max_hashes: set("LOGIN_MAX_HASHES"),
        database_url: set("LOGIN_DATABASE_URL"),
    }
}

#[tokio::main]
async fn main() {
    let options = options();
    let work = std::env::temp_dir().join(format!("insurebot-login-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let (database_url, drop_db) = database(options.database_url.as_deref(), &work, "login").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server_bin = std::env::var("LOGIN_SERVER_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_insurebot").to_owned());
    let command = |args: &[&str]| {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut c = Command::new(&server_bin);
        c.args(args)
            .current_dir(&work)
            .env("INSUREBOT_LISTEN", format!("127.0.0.1:{port}"))
            .env("INSUREBOT_DATABASE_URL", &database_url)
            .env("INSUREBOT_DIALOGUE_FLOWS_DIR", format!("{root}/flows"))
            .env("INSUREBOT_DIALOGUE_LOCALES_DIR", format!("{root}/locales"))
            .env("INSUREBOT_CONSOLE_LOGIN_MAX_FAILURES_PER_IP", "1000000")
            .env("INSUREBOT_LOG_FILTER", "error");
        if let Some(max) = &options.max_hashes {
            c.env("INSUREBOT_CONSOLE_LOGIN_MAX_CONCURRENT_HASHES", max);
        }
        c
    };
    let mut add = command(&[
        "agent",
        "add",
        "--email",
        AGENT,
        "--name",
        "Bench",
        "--role",
        "agent",
        "--password-stdin",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .expect("insurebot agent add");
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(add.wait().unwrap().success(), "agent add failed");

    let mut server = command(&["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start insurebot serve");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(options.attempts + 16)
        .build()
        .unwrap();
    wait_until_up(&http, &base).await;
    // One login first, so the dummy hash and the pools exist before the baseline.
    let warm = login(&http, &base, AGENT, PASSWORD).await;
    assert_eq!(warm.0, 303, "the agent logs in");
    let before = rss_mb(&server, "VmRSS:");
    println!(
        "login storm: {} attempts at once, {} rounds, database {}, max concurrent hashes {}",
        options.attempts,
        options.rounds,
        if database_url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        options.max_hashes.as_deref().unwrap_or("default")
    );
    println!("server memory before: {before:.1} MB (VmRSS)");
    for round in 1..=options.rounds {
        let report = storm(&http, &base, round, options.attempts).await;
        println!(
            "round {round}: {} attempts in {:.2} s: {}; slowest answer per status: {}",
            options.attempts,
            report.seconds,
            report
                .statuses
                .iter()
                .map(|(s, n)| format!("{s} x{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            report
                .slowest
                .iter()
                .map(|(s, ms)| format!("{s} {ms:.0} ms"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        println!(
            "  /healthz during the storm: {} polls, {} failed, p50 {:.1} ms, max {:.1} ms",
            report.health.len(),
            report.health_failures,
            percentile(&report.health, 0.5),
            percentile(&report.health, 1.0),
        );
        println!(
            "  server memory: peak so far {:.1} MB (VmHWM), now {:.1} MB (VmRSS)",
            rss_mb(&server, "VmHWM:"),
            rss_mb(&server, "VmRSS:")
        );
    }
    println!(
        "server peak memory (VmHWM): {:.1} MB",
        rss_mb(&server, "VmHWM:")
    );
    stop(&mut server);
    if let Some(drop_db) = drop_db {
        drop_db.await;
    }
    let _ = std::fs::remove_dir_all(&work);
}

struct Report {
    seconds: f64,
    statuses: BTreeMap<u16, usize>,
    /// The slowest answer per status, in ms.
    slowest: BTreeMap<u16, f64>,
    /// /healthz latencies in ms, polled back to back while the storm lasted.
    health: Vec<f64>,
    health_failures: usize,
}

async fn storm(http: &reqwest::Client, base: &str, round: usize, attempts: usize) -> Report {
    let running = Arc::new(AtomicBool::new(true));
    let poller = {
        let (http, url, running) = (http.clone(), format!("{base}/healthz"), running.clone());
        tokio::spawn(async move {
            let (mut times, mut failures) = (Vec::new(), 0);
            while running.load(Ordering::SeqCst) {
                let started = Instant::now();
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        times.push(started.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => failures += 1,
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (times, failures)
        })
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..attempts)
        .map(|i| {
            let (http, base) = (http.clone(), base.to_owned());
            tokio::spawn(async move {
                let t = Instant::now();
                let (status, _) = if i % 4 == 0 {
                    login(&http, &base, AGENT, PASSWORD).await
                } else {
                    let email = format!("storm{round}-{i}@example.com");
                    login(&http, &base, &email, "not the password").await
                };
                (status, t.elapsed().as_secs_f64() * 1000.0)
            })
        })
        .collect();
    let mut statuses = BTreeMap::new();
    let mut slowest: BTreeMap<u16, f64> = BTreeMap::new();
    for task in tasks {
        let (status, ms) = task.await.unwrap();
        *statuses.entry(status).or_insert(0) += 1;
        let slot = slowest.entry(status).or_insert(0.0);
        *slot = slot.max(ms);
    }
    let seconds = started.elapsed().as_secs_f64();
    running.store(false, Ordering::SeqCst);
    let (mut health, health_failures) = poller.await.unwrap();
    health.sort_by(f64::total_cmp);
    Report {
        seconds,
        statuses,
        slowest,
        health,
        health_failures,
    }
}

/// One login; the status (0 when the request failed) and the Retry-After header.
async fn login(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> (u16, Option<String>) {
    let body = format!(
        "email={}&password={}&csrf={CSRF}",
        email.replace('@', "%40"),
        password.replace(' ', "+")
    );
    match http
        .post(format!("{base}/console/login"))
        .header("cookie", format!("insurebot_login_csrf={CSRF}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
    {
        Ok(r) => (
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ),
        Err(_) => (0, None),
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}
