//! Issue 16, console login and identity lockouts under attack: concurrent wrong passwords
//! cannot run more password checks than the lockout allows, a login storm cannot hold more
//! than a few argon2 hashes (and their memory) at once, and date-of-birth guesses spread over
//! many WhatsApp numbers lock the policy they aim at, with lockouts that lengthen.

use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::future::join_all;
use insurebot::app::Application;
use insurebot::config::{DatabaseUrl, InsurerSettings, Settings};
use insurebot::http::console::auth::{PasswordGate, Role, create_agent};
use insurebot::insurer::{ActionResult, ImportKind, Insurer};
use insurebot::store::entities::{contact, login_failure};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, RETRY_AFTER};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::console::{PASSWORD, form};
use crate::helpers::{Backend, TestDb, backends, test_settings_for};

const ASHA: &str = "asha@example.com";

/// An app whose password gate the test can see (and occupy).
struct GatedApp {
    address: String,
    db: DatabaseConnection,
    gate: PasswordGate,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    _db: TestDb,
}

impl Drop for GatedApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn spawn_gated(backend: &Backend, customise: impl FnOnce(&mut Settings)) -> GatedApp {
    // Logins never reach the Cloud API: a closed port will do.
    let (mut settings, test_db) = test_settings_for(backend, "http://127.0.0.1:9/v21.0").await;
    customise(&mut settings);
    let app = Application::build(settings).await.expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let db = app.db();
    let gate = app.password_gate();
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    create_agent(&db, ASHA, "Asha Rao", Role::Agent, PASSWORD)
        .await
        .expect("agent");
    GatedApp {
        address,
        db,
        gate,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        stop: Some(stop),
        _db: test_db,
    }
}

impl GatedApp {
    /// POST /console/login with a double-submit token of the client's own choosing (the form
    /// only checks that cookie and field agree), so that many attempts can start at once.
    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        let token = "0123456789abcdef0123456789abcdef";
        self.http
            .post(format!("{}/console/login", self.address))
            .header(COOKIE, format!("insurebot_login_csrf={token}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("email", email),
                ("password", password),
                ("csrf", token),
            ]))
            .send()
            .await
            .expect("login request")
    }

    /// Many logins at once; their statuses and Retry-After values, in order.
    async fn storm(&self, attempts: &[(&str, &str)]) -> Vec<(StatusCode, Option<u64>)> {
        join_all(attempts.iter().map(|(email, password)| async move {
            let r = self.login(email, password).await;
            (r.status(), retry_after(&r))
        }))
        .await
    }

    async fn failure_rows(&self) -> u64 {
        login_failure::Entity::find()
            .count(&self.db)
            .await
            .expect("count")
    }
}

fn retry_after(r: &reqwest::Response) -> Option<u64> {
    r.headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn count(results: &[(StatusCode, Option<u64>)], status: StatusCode) -> usize {
    results.iter().filter(|(s, _)| *s == status).count()
}

/// Every 429 tells when to come back, within the window (15 minutes).
fn assert_refusals_say_when(results: &[(StatusCode, Option<u64>)]) {
    for (status, after) in results {
        if *status == StatusCode::TOO_MANY_REQUESTS {
            assert!(
                after.is_some_and(|s| (1..=15 * 60).contains(&s)),
                "429 without a usable Retry-After: {after:?}"
            );
        }
    }
}

#[tokio::test]
async fn thirty_concurrent_wrong_passwords_run_only_the_email_limits_checks() {
    for backend in backends() {
        // Room at the gate for every attempt: only the lockout may refuse here.
        let app = spawn_gated(&backend, |s| s.console.login_max_concurrent_hashes = 32).await;
        let attempts = vec![(ASHA, "not the password"); 30];
        let results = app.storm(&attempts).await;
        assert_eq!(
            count(&results, StatusCode::UNAUTHORIZED),
            5,
            "{backend:?}: {results:?}"
        );
        assert_eq!(count(&results, StatusCode::TOO_MANY_REQUESTS), 25);
        assert_eq!(app.gate.checks(), 5, "{backend:?}: password checks run");
        assert_refusals_say_when(&results);
        // The limit is reached: the right password is refused too, unchecked.
        let right = app.login(ASHA, PASSWORD).await;
        assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS, "{backend:?}");
        assert!(retry_after(&right).is_some());
        assert_eq!(app.gate.checks(), 5);
    }
}

#[tokio::test]
async fn the_right_password_among_concurrent_wrong_ones_gets_no_extra_checks() {
    for backend in backends() {
        let app = spawn_gated(&backend, |s| s.console.login_max_concurrent_hashes = 32).await;
        let mut attempts = vec![(ASHA, "not the password"); 29];
        attempts.insert(14, (ASHA, PASSWORD));
        let results = app.storm(&attempts).await;
        // The limit counts failures: at most 5 wrong passwords are checked whatever the
        // order; the right one is checked at most once and, when it wins, takes back only its
        // own count (so a wrong one may take its place, or the five places may all have been
        // held while the rest arrived).
        let wrong = count(&results, StatusCode::UNAUTHORIZED);
        let right = count(&results, StatusCode::SEE_OTHER);
        assert!(
            wrong <= 5 && right <= 1 && wrong + right >= 5,
            "{backend:?}: {results:?}"
        );
        assert_eq!(app.gate.checks(), (wrong + right) as u64, "{backend:?}");
        assert_eq!(
            count(&results, StatusCode::TOO_MANY_REQUESTS),
            30 - wrong - right
        );
        assert_refusals_say_when(&results);
        // Up to the limit with more wrong passwords, then even the right one is refused.
        for _ in wrong..5 {
            assert_eq!(
                app.login(ASHA, "wrong again").await.status(),
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(
            app.failure_rows().await,
            10,
            "5 failures x (email, address)"
        );
        let after = app.login(ASHA, PASSWORD).await;
        assert_eq!(after.status(), StatusCode::TOO_MANY_REQUESTS, "{backend:?}");
        assert!(retry_after(&after).is_some());
    }
}

#[tokio::test]
async fn the_right_password_takes_back_only_its_own_count() {
    for backend in backends() {
        let app = spawn_gated(&backend, |_| {}).await;
        for _ in 0..4 {
            let r = app.login(ASHA, "not the password").await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{backend:?}");
        }
        // Under the limit: the right password works, and the four failures stay counted.
        assert_eq!(
            app.login(ASHA, PASSWORD).await.status(),
            StatusCode::SEE_OTHER
        );
        assert_eq!(app.failure_rows().await, 8, "{backend:?}");
        assert_eq!(
            app.login(ASHA, "not the password").await.status(),
            StatusCode::UNAUTHORIZED
        );
        // Five failures in the window: refused, even the right password.
        let refused = app.login(ASHA, PASSWORD).await;
        assert_eq!(
            refused.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{backend:?}"
        );
        assert!(retry_after(&refused).is_some_and(|s| (1..=15 * 60).contains(&s)));
    }
}

#[tokio::test]
async fn concurrent_attempts_on_many_emails_run_only_the_address_limits_checks() {
    for backend in backends() {
        let app = spawn_gated(&backend, |s| s.console.login_max_concurrent_hashes = 32).await;
        let emails: Vec<String> = (0..25).map(|i| format!("guess{i}@example.com")).collect();
        let attempts: Vec<(&str, &str)> = emails.iter().map(|e| (e.as_str(), "pw")).collect();
        let results = app.storm(&attempts).await;
        assert_eq!(
            count(&results, StatusCode::UNAUTHORIZED),
            20,
            "{backend:?}: {results:?}"
        );
        assert_eq!(count(&results, StatusCode::TOO_MANY_REQUESTS), 5);
        assert_eq!(app.gate.checks(), 20);
        assert_refusals_say_when(&results);
        // A real agent from the same address is refused while the address is over its limit.
        let right = app.login(ASHA, PASSWORD).await;
        assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS, "{backend:?}");
    }
}

#[tokio::test]
async fn a_login_that_finds_every_password_check_place_taken_is_answered_503_at_once() {
    for backend in backends() {
        let app = spawn_gated(&backend, |s| s.console.login_max_concurrent_hashes = 2).await;
        let occupied = app.gate.occupy_all().await;
        // Were they queued for a place, these would wait until the test's end.
        let results = app.storm(&vec![(ASHA, PASSWORD); 20]).await;
        for (status, after) in &results {
            assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{backend:?}");
            assert_eq!(*after, Some(1), "503 says to retry in a second");
        }
        assert_eq!(app.gate.checks(), 0, "{backend:?}: nothing hashed");
        assert_eq!(
            app.failure_rows().await,
            0,
            "nothing counted against the limits"
        );
        let health = app
            .http
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        drop(occupied);
        let right = app.login(ASHA, PASSWORD).await;
        assert_eq!(right.status(), StatusCode::SEE_OTHER, "{backend:?}");
        assert_eq!(app.gate.checks(), 1);
    }
}

#[tokio::test]
async fn healthz_answers_during_a_login_storm_and_no_more_than_the_gate_hash_at_once() {
    for backend in backends() {
        let app = spawn_gated(&backend, |s| {
            s.console.login_max_concurrent_hashes = 2;
            s.console.login_max_failures_per_ip = 1000;
        })
        .await;
        let emails: Vec<String> = (0..60).map(|i| format!("storm{i}@example.com")).collect();
        let attempts: Vec<(&str, &str)> = emails.iter().map(|e| (e.as_str(), "pw")).collect();
        let (tx, mut done) = oneshot::channel::<()>();
        let health = async {
            let mut answered = 0;
            loop {
                let r = app
                    .http
                    .get(format!("{}/healthz", app.address))
                    .send()
                    .await
                    .expect("healthz answers during the storm");
                assert_eq!(r.status(), StatusCode::OK);
                answered += 1;
                if done.try_recv().is_ok() {
                    return answered;
                }
                tokio::task::yield_now().await;
            }
        };
        let storm = async {
            let results = app.storm(&attempts).await;
            let _ = tx.send(());
            results
        };
        let (results, answered) = tokio::join!(storm, health);
        assert!(answered >= 1);
        let wrong = count(&results, StatusCode::UNAUTHORIZED);
        let busy = count(&results, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(wrong + busy, 60, "{backend:?}: {results:?}");
        // Every 401 was checked, no 503 was: checks and counted failures match the 401s.
        assert_eq!(app.gate.checks(), wrong as u64, "{backend:?}");
        assert_eq!(app.failure_rows().await, 2 * wrong as u64);
        assert!(
            app.gate.peak() <= 2,
            "{backend:?}: {} hashes at once",
            app.gate.peak()
        );
        for (status, after) in &results {
            if *status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(*after, Some(1));
            }
        }
    }
}

// --- Identity: date-of-birth guesses per policy, escalating lockouts -------------------------

/// The sample data's own "today", 11:30 in India.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 6, 0, 0).unwrap()
}

/// Anjali's motor policy: no registered number, verified by date of birth only.
const ANJALI_POLICY: &str = "M-2024/556120";
const ANJALI_DOB: &str = "1992-12-05";

struct Identity {
    db: DatabaseConnection,
    insurer: Insurer,
    next_number: std::sync::atomic::AtomicU64,
    _db: TestDb,
}

async fn identity(backend: &Backend) -> Identity {
    let test_db = TestDb::create(backend).await;
    let db = insurebot::store::connect(&DatabaseUrl::new(test_db.url.clone()))
        .await
        .expect("connect");
    insurebot::store::migrate(&db).await.expect("migrate");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/insurer/sample/policies.csv");
    insurebot::insurer::import(&db, ImportKind::Policies, &sample, false)
        .await
        .expect("sample policies");
    let settings = InsurerSettings {
        pay_link_secret: Some(SecretString::from("test-pay-link-secret-0123")),
        ..InsurerSettings::default()
    };
    Identity {
        insurer: Insurer::from_settings(&settings, db.clone()).expect("insurer"),
        db,
        next_number: std::sync::atomic::AtomicU64::new(0),
        _db: test_db,
    }
}

impl Identity {
    /// A contact on a WhatsApp number registered on no policy.
    async fn stranger(&self) -> contact::Model {
        let n = self
            .next_number
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::helpers::insert_contact(&self.db, &format!("9190000{n:05}")).await
    }

    /// `identity.verify_dob` as the runner calls it: inside a write transaction.
    async fn verify(
        &self,
        who: &contact::Model,
        policy: &str,
        dob: &str,
        at: DateTime<Utc>,
    ) -> String {
        let args: Value = json!({ "policy_number": policy, "dob": dob });
        let txn = insurebot::store::begin_write(&self.db).await.expect("txn");
        let result: ActionResult = self
            .insurer
            .run_action(&txn, who, "identity.verify_dob", &args, at)
            .await;
        txn.commit().await.expect("commit");
        result.outcome
    }
}

#[tokio::test]
async fn date_of_birth_guesses_spread_over_many_numbers_lock_that_policy() {
    for backend in backends() {
        let id = identity(&backend).await;
        // One wrong guess per number, well under each number's own limit (3).
        for expected in ["mismatch", "mismatch", "mismatch", "mismatch", "locked"] {
            let guesser = id.stranger().await;
            let outcome = id
                .verify(&guesser, ANJALI_POLICY, "1990-01-01", now())
                .await;
            assert_eq!(outcome, expected, "{backend:?}");
        }
        // The policy is locked for everyone, even with the right date of birth...
        let anjali = id.stranger().await;
        assert_eq!(
            id.verify(&anjali, ANJALI_POLICY, ANJALI_DOB, now()).await,
            "locked",
            "{backend:?}"
        );
        // ...but only that policy: the same number verifies another one.
        assert_eq!(
            id.verify(&anjali, "H-2024/220981", "1985-09-23", now())
                .await,
            "verified"
        );
        // An unknown number locks the same way: lockouts tell nothing about which exist.
        for expected in ["mismatch", "mismatch", "mismatch", "mismatch", "locked"] {
            let guesser = id.stranger().await;
            let outcome = id
                .verify(&guesser, "Q-0000/000001", "1990-01-01", now())
                .await;
            assert_eq!(outcome, expected, "{backend:?}: unknown policy");
        }
        // After the first lockout (30 minutes) the right answer verifies.
        let later = now() + Duration::minutes(31);
        assert_eq!(
            id.verify(&anjali, ANJALI_POLICY, ANJALI_DOB, later).await,
            "verified",
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn concurrent_guesses_from_many_numbers_make_no_more_checks_than_the_policy_limit() {
    for backend in backends() {
        let id = identity(&backend).await;
        let mut guessers = Vec::new();
        for _ in 0..12 {
            guessers.push(id.stranger().await);
        }
        let outcomes = join_all(
            guessers
                .iter()
                .map(|g| id.verify(g, ANJALI_POLICY, "1990-01-01", now())),
        )
        .await;
        let mismatches = outcomes.iter().filter(|o| *o == "mismatch").count();
        let locked = outcomes.iter().filter(|o| *o == "locked").count();
        // Four failures answered as such, the fifth locks, the rest are refused unchecked.
        assert_eq!((mismatches, locked), (4, 8), "{backend:?}: {outcomes:?}");
    }
}

#[tokio::test]
async fn repeated_lockouts_of_a_number_last_30_minutes_then_2_hours_then_24() {
    for backend in backends() {
        let id = identity(&backend).await;
        let guesser = id.stranger().await;
        // A different unknown policy per guess: only the number's own count is at work here.
        let mut guess = 0;
        let mut three_wrong = |at: DateTime<Utc>| {
            let numbers: Vec<String> = (0..3)
                .map(|_| {
                    guess += 1;
                    format!("Q-0000/{guess:06}")
                })
                .collect();
            let (id, guesser) = (&id, &guesser);
            async move {
                let mut outcomes = Vec::new();
                for n in &numbers {
                    outcomes.push(id.verify(guesser, n, "1990-01-01", at).await);
                }
                outcomes
            }
        };
        let locked_at_the_third = ["mismatch", "mismatch", "locked"];
        let t0 = now();
        assert_eq!(three_wrong(t0).await, locked_at_the_third, "{backend:?}");
        let right = |at| id.verify(&guesser, ANJALI_POLICY, ANJALI_DOB, at);
        assert_eq!(right(t0 + Duration::minutes(29)).await, "locked");
        // Second lockout, right after the first: 2 hours.
        let t1 = t0 + Duration::minutes(31);
        assert_eq!(three_wrong(t1).await, locked_at_the_third, "{backend:?}");
        assert_eq!(right(t1 + Duration::minutes(119)).await, "locked");
        // Third: 24 hours.
        let t2 = t1 + Duration::minutes(121);
        assert_eq!(three_wrong(t2).await, locked_at_the_third, "{backend:?}");
        assert_eq!(right(t2 + Duration::hours(23)).await, "locked");
        // Fourth: 24 hours again (the last step repeats).
        let t3 = t2 + Duration::hours(24) + Duration::minutes(1);
        assert_eq!(three_wrong(t3).await, locked_at_the_third, "{backend:?}");
        assert_eq!(right(t3 + Duration::hours(23)).await, "locked");
        // A day after that lockout ended, the series is over: the next lockout is 30 minutes.
        let t4 = t3 + Duration::hours(48) + Duration::minutes(1);
        assert_eq!(three_wrong(t4).await, locked_at_the_third, "{backend:?}");
        assert_eq!(
            right(t4 + Duration::minutes(31)).await,
            "verified",
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn repeated_lockouts_of_a_policy_lengthen_too() {
    for backend in backends() {
        let id = identity(&backend).await;
        let five_wrong = |at: DateTime<Utc>| {
            let id = &id;
            async move {
                let mut last = String::new();
                for _ in 0..5 {
                    let guesser = id.stranger().await;
                    last = id.verify(&guesser, ANJALI_POLICY, "1990-01-01", at).await;
                }
                last
            }
        };
        let t0 = now();
        assert_eq!(five_wrong(t0).await, "locked", "{backend:?}");
        let t1 = t0 + Duration::minutes(31);
        assert_eq!(five_wrong(t1).await, "locked", "{backend:?}");
        // The second lockout lasts 2 hours, not 30 minutes.
        let anjali = id.stranger().await;
        assert_eq!(
            id.verify(
                &anjali,
                ANJALI_POLICY,
                ANJALI_DOB,
                t1 + Duration::minutes(61)
            )
            .await,
            "locked",
            "{backend:?}"
        );
        assert_eq!(
            id.verify(
                &anjali,
                ANJALI_POLICY,
                ANJALI_DOB,
                t1 + Duration::minutes(121)
            )
            .await,
            "verified",
            "{backend:?}"
        );
    }
}
