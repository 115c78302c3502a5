//! The sender at its configured rate against a slow Cloud API (issue 20): concurrency follows
//! rate × observed latency, never above the rate in any sliding second, over HTTP/2 (h2c to
//! the fake) or HTTP/1.1 keep-alive.
//!
//! The rows are queued in one transaction before the measurement, so what is measured is the
//! sender, not how fast the test's debug build ingests webhooks; the figures are ratios over a
//! window of several seconds, robust on a loaded machine.

use std::time::Duration;

use chrono::{DateTime, Utc};
use insurebot::config::MessagingSettings;
use insurebot::messaging::composer::{self, Composer, Intent, Purpose};
use insurebot::store::entities::contact;
use insurebot::whatsapp::fake::{ReceivedRequest, RequestKind};
use insurebot::whatsapp::outbound::OutboundBody;
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{EntityTrait, TransactionTrait};

use crate::helpers::*;

/// Queues one essential notification to each of `n` new contacts (window open), in one
/// transaction, so the whole backlog appears at once.
async fn queue_backlog(app: &TestApp, n: usize) {
    let now = chrono::Utc::now().timestamp_millis();
    let composer = Composer::new(&MessagingSettings::default());
    let contacts: Vec<contact::ActiveModel> = (0..n)
        .map(|i| contact::ActiveModel {
            id: NotSet,
            wa_id: Set(Some(format!("9198{i:08}"))),
            user_id: Set(None),
            profile_name: Set(None),
            last_inbound_at: Set(Some(now)),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .collect();
    let txn = app.db.begin().await.unwrap();
    for chunk in contacts.chunks(200) {
        contact::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await
            .unwrap();
    }
    let ids: Vec<i64> = contact::Entity::find()
        .all(&txn)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids.len(), n);
    for (i, contact_id) in ids.into_iter().enumerate() {
        let intent = Intent {
            contact_id,
            in_reply_to: None,
            purpose: Purpose::Notification {
                kind: "claim_update".into(),
                essential: true,
            },
            free_form: Some(OutboundBody::Text {
                body: format!("update {i}"),
                preview_url: false,
            }),
            template: None,
        };
        composer::queue(&txn, &composer, intent).await.unwrap();
    }
    txn.commit().await.unwrap();
}

/// Waits until the fake has received `n` sends; panics after `within`.
async fn wait_for(app: &TestApp, n: usize, within: Duration) -> Vec<ReceivedRequest> {
    let deadline = std::time::Instant::now() + within;
    while app.fake.received_count(RequestKind::Send) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "expected {n} sends within {within:?}, the fake got {}",
            app.fake.received_count(RequestKind::Send)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.sent_messages()
}

/// The most requests that arrived in any one second (half-open), as Meta counts them.
fn most_in_any_second(at: &[DateTime<Utc>]) -> usize {
    (0..at.len())
        .map(|i| {
            at[i..]
                .iter()
                .take_while(|t| **t < at[i] + chrono::Duration::seconds(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Requests per second while the backlog lasts: counted over as many whole windows of
/// `window_ms` (the pacer's window: a second and its margin) as fit between one window after
/// the first request (the sender has measured the latency by then) and the last. Whole
/// windows, because the limit lets a window's requests come in a burst (several instances
/// asking at once): a count over any other span would depend on where the bursts fall.
fn sustained_rate(at: &[DateTime<Utc>], window_ms: u64) -> f64 {
    let window = chrono::Duration::milliseconds(window_ms as i64);
    let from = at[0] + window;
    let whole = (at[at.len() - 1] - from).num_milliseconds() / window_ms as i64;
    assert!(
        whole >= 3,
        "{} requests in {} ms: too short a time to measure a sustained rate",
        at.len(),
        (at[at.len() - 1] - at[0]).num_milliseconds()
    );
    let to = from + window * whole as i32;
    let counted = at.iter().filter(|t| **t >= from && **t < to).count();
    counted as f64 / (to - from).num_milliseconds() as f64 * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_keeps_its_rate_against_a_slow_cloud_api_and_never_exceeds_it() {
    // 100/s against a 1 s round trip needs ~100 sends in flight: the old fixed 64 sent 64/s
    // (80% of the 80/s the window below allows). 500 rows: six seconds of sending. A low rate
    // and a long round trip rather than the reverse: the same concurrency for less CPU, on a
    // machine the suite keeps busy.
    const RATE: u32 = 100;
    const ROWS: usize = 500;
    // The app, the fake and the test share this loaded machine's two cores (with the rest of
    // the suite and builds: load averages of 8-17 seen), which hold a request up between the
    // pacer and the fake by a hundred milliseconds and more now and then, far more than the
    // network does in production: a margin that covers it (as in hardening_concurrency), so
    // what is tested is the sender, not the scheduler. The window then allows RATE / 1.25.
    const MARGIN_MS: u64 = 250;
    let allowed = f64::from(RATE) * 1000.0 / (1000 + MARGIN_MS) as f64;
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.messaging.rate_per_second = RATE;
            s.messaging.rate_window_margin_ms = MARGIN_MS;
            s.whatsapp.h2c = true;
        })
        .await;
        app.fake.set_latency(Duration::from_secs(1));
        queue_backlog(&app, ROWS).await;
        let sent = wait_for(&app, ROWS, Duration::from_secs(60)).await;

        let mut at: Vec<DateTime<Utc>> = sent.iter().map(|r| r.received_at).collect();
        at.sort_unstable();
        let most = most_in_any_second(&at);
        assert!(
            most <= RATE as usize,
            "{most} requests arrived within one second (limit {RATE})"
        );
        let rate = sustained_rate(&at, 1000 + MARGIN_MS);
        eprintln!("{backend:?}: sustained {rate:.1}/s, at most {most} in a second");
        assert!(
            rate >= 0.9 * allowed,
            "sustained {rate:.1}/s, under 90% of the {allowed:.1}/s the window allows"
        );
        assert!(
            sent.iter().all(|r| r.http_version == "HTTP/2.0"),
            "with whatsapp.h2c the sends go over HTTP/2: {:?}",
            sent.iter()
                .map(|r| &r.http_version)
                .collect::<std::collections::BTreeSet<_>>()
        );
    }
}

#[tokio::test]
async fn without_h2c_the_sends_go_over_http1_keep_alive() {
    let app = spawn_app(&Backend::Sqlite).await;
    queue_backlog(&app, 3).await;
    let sent = wait_for(&app, 3, Duration::from_secs(15)).await;
    assert!(
        sent.iter().all(|r| r.http_version == "HTTP/1.1"),
        "{:?}",
        sent.iter().map(|r| &r.http_version).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_fake_answers_after_the_latency_it_is_given() {
    let app = spawn_app(&Backend::Sqlite).await;
    let set = app
        .http
        .post(format!(
            "{}/_fake/latency",
            app.fake_base_url().rsplit_once('/').unwrap().0
        ))
        .json(&serde_json::json!({ "ms": 300 }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204);
    assert_eq!(app.fake.latency(), Duration::from_millis(300));
    let started = std::time::Instant::now();
    let answer = app
        .http
        .post(format!(
            "{}/{PHONE_NUMBER_ID}/messages",
            app.fake_base_url()
        ))
        .bearer_auth("t")
        .json(&serde_json::json!({
            "messaging_product": "whatsapp",
            "to": "919800000001",
            "type": "text",
            "text": { "body": "hi" }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // A lower bound only: the answer may come later on a loaded machine, never sooner.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_take_no_rate_token() {
    // 60 policyholders write at once: 60 replies at 20/s, each followed by a read receipt.
    // Were receipts to take a token like a send, replies and receipts together would stay
    // within 20 in every second (and the replies would get half the rate); they come on top.
    const RATE: u32 = 20;
    const CONTACTS: usize = 60;
    // As above: a margin for this machine's scheduler, so the pacer's limit is clear of the
    // jitter on the way to the fake.
    const MARGIN_MS: u64 = 250;
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.messaging.rate_per_second = RATE;
            s.messaging.rate_window_margin_ms = MARGIN_MS;
            s.mark_read = true;
        })
        .await;
        let messages = (0..CONTACTS)
            .map(|i| text_message(&format!("9197{i:08}"), &new_wamid(), now_secs(), "hi"))
            .collect();
        assert_eq!(app.post_webhook(&envelope(messages)).await.status(), 200);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let received = loop {
            let received = app.fake.received();
            let read = received
                .iter()
                .filter(|r| r.kind == RequestKind::MarkRead)
                .count();
            if read >= CONTACTS {
                break received;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{backend:?}: {read} of {CONTACTS} read receipts within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let times = |kind: Option<RequestKind>| {
            let mut at: Vec<DateTime<Utc>> = received
                .iter()
                .filter(|r| kind.is_none_or(|k| r.kind == k))
                .map(|r| r.received_at)
                .collect();
            at.sort_unstable();
            at
        };
        let replies = most_in_any_second(&times(Some(RequestKind::Send)));
        let requests = most_in_any_second(&times(None));
        eprintln!("{backend:?}: at most {replies} replies, {requests} requests in a second");
        assert!(
            replies <= RATE as usize,
            "{backend:?}: {replies} replies within one second (limit {RATE})"
        );
        assert!(
            requests > RATE as usize * 5 / 4,
            "{backend:?}: replies and receipts together at most {requests} in a second: the receipts took rate tokens"
        );
    }
}

/// `instances` instances sending one backlog from one number at 50/s: at most 50 in any
/// sliding second at the fake, and at least 95% of what the window allows over the backlog.
async fn instances_share_the_rate(backend: &Backend, instances: usize, redis: bool) {
    const RATE: u32 = 50;
    const ROWS: usize = 250;
    // As above, a margin for this machine's scheduler, wider with several instances (more
    // tasks between the take and the fake): the window allows 33.3/s. The sink saw 52 in a
    // second with the production margin (20 ms) and 53 with 250 ms under the loaded suite.
    const MARGIN_MS: u64 = 500;
    let allowed = f64::from(RATE) * 1000.0 / (1000 + MARGIN_MS) as f64;
    // Tests share the one Redis: each its own number, so its own key.
    let number = format!("9{}", uuid::Uuid::new_v4().as_u128() % 10u128.pow(14));
    let app = spawn_app_with(backend, |s| {
        s.messaging.rate_per_second = RATE;
        s.messaging.rate_window_margin_ms = MARGIN_MS;
        s.whatsapp.phone_number_id = number.clone();
        s.messaging.shared_rate = true;
        if redis {
            s.redis_url = Some("redis://127.0.0.1:6379".to_owned().into());
        }
    })
    .await;
    let mut peers = Vec::new();
    for _ in 1..instances {
        peers.push(app.start_peer().await);
    }
    queue_backlog(&app, ROWS).await;
    let sent = wait_for(&app, ROWS, Duration::from_secs(60)).await;
    let mut at: Vec<DateTime<Utc>> = sent.iter().map(|r| r.received_at).collect();
    at.sort_unstable();
    let most = most_in_any_second(&at);
    let store = if redis { "Redis" } else { "the database" };
    assert!(
        most <= RATE as usize,
        "{instances} instances through {store}: {most} requests arrived within one second (limit {RATE})"
    );
    let rate = sustained_rate(&at, 1000 + MARGIN_MS);
    eprintln!(
        "{instances} instances on {backend:?} through {store}: sustained {rate:.1}/s, at most {most} in a second"
    );
    // 95% through either store. Through PostgreSQL it was 85%, when each waiting send asked
    // the database on its own and a slow take moved its start by its whole round trip (86.5-
    // 91.5% under the suite's load); one take at a time per instance, moved only by its real
    // lateness, sustained 99.4-100% in seven runs at load averages of 4-8 beside a build.
    let floor = 0.95;
    assert!(
        rate >= floor * allowed,
        "{instances} instances through {store}: sustained {rate:.1}/s, under {:.0}% of the {allowed:.1}/s the window allows",
        floor * 100.0
    );
    for mut peer in peers {
        peer.shutdown().await;
    }
}

#[needs_postgres]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_instances_hold_one_rate_through_postgresql() {
    let backend = postgres_only();
    instances_share_the_rate(&backend, 2, false).await;
    instances_share_the_rate(&backend, 3, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_instances_hold_one_rate_through_redis() {
    for backend in backends() {
        instances_share_the_rate(&backend, 2, true).await;
        instances_share_the_rate(&backend, 3, true).await;
    }
}
