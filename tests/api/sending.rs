//! The outbox and sender against the fake Cloud API: retries with backoff, Retry-After,
//! permanent errors, dead letters, timeouts and read receipts.

use std::time::Duration;

use insurebot::store::entities::outbox::State as OutboxState;
use insurebot::store::entities::{inbound_message, outbox};
use insurebot::whatsapp::fake::{FailureRule, RequestKind, ScriptedError};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::helpers::*;

async fn outbox_rows(app: &TestApp) -> Vec<outbox::Model> {
    outbox::Entity::find().all(&app.db).await.unwrap()
}

/// Waits until every outbox row has left the queue.
async fn wait_until_settled(app: &TestApp, rows: usize) -> Vec<outbox::Model> {
    for _ in 0..500 {
        let all = outbox_rows(app).await;
        if all.len() == rows && all.iter().all(|r| r.state != OutboxState::Queued) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("outbox did not settle: {:#?}", outbox_rows(app).await);
}

fn say(
    app: &TestApp,
    phone: &str,
    text: &str,
) -> impl std::future::Future<Output = reqwest::Response> {
    let body = envelope(vec![text_message(phone, &new_wamid(), now_secs(), text)]);
    let app_ref = app;
    async move { app_ref.post_webhook(&body).await }
}

#[tokio::test]
async fn temporary_errors_are_retried_until_the_message_goes() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        app.fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(500, 131000),
        });
        app.fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(400, 130429),
        });
        app.fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(400, 131056),
        });
        assert_eq!(say(&app, "919800000401", "retry me").await.status(), 200);
        let sent = app.wait_for_sends(1).await;
        assert_eq!(text_of(&sent[0]), "echo: retry me");
        let rows = wait_until_settled(&app, 1).await;
        assert_eq!(rows[0].state, OutboxState::Sent);
        assert_eq!(rows[0].attempts, 4);
        assert_eq!(rows[0].wamid, sent[0].wamid);
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let app = spawn_app(&Backend::Sqlite).await;
    app.fake.script(FailureRule::Next {
        count: 1,
        error: ScriptedError::new(429, 4).with_retry_after(1),
    });
    let started = std::time::Instant::now();
    say(&app, "919800000402", "later").await;
    app.wait_for_sends(1).await;
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "retried after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_permanent_error_ends_the_row_with_its_code_and_the_next_message_still_goes() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        app.fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(400, 131026),
        });
        say(&app, "919800000403", "undeliverable").await;
        let first = wait_until_settled(&app, 1).await;
        assert_eq!(first[0].state, OutboxState::Failed);
        assert_eq!(first[0].error_code, Some(131026));
        assert_eq!(first[0].attempts, 1);
        say(&app, "919800000403", "next").await;
        let sent = app.wait_for_sends(1).await;
        assert_eq!(text_of(&sent[0]), "echo: next");
    }
}

#[tokio::test]
async fn a_row_that_runs_out_of_attempts_is_dead_lettered_not_dropped() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| s.outbox.max_attempts = 3).await;
        app.fake.script(FailureRule::Rate {
            rate: 1.0,
            error: ScriptedError::new(503, 131016),
            seed: 1,
        });
        say(&app, "919800000404", "doomed").await;
        let rows = wait_until_settled(&app, 1).await;
        assert_eq!(rows[0].state, OutboxState::Dead);
        assert_eq!(rows[0].attempts, 3);
        assert_eq!(rows[0].error_code, Some(131016));
        assert!(
            rows[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("gave up after 3 attempts")
        );
        assert_eq!(app.fake.attempts(), 3);
    }
}

#[tokio::test]
async fn a_timeout_is_retried() {
    // The second attempt must finish inside the timeout too: 1 s leaves a loaded machine room.
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.whatsapp.request_timeout_ms = 1_000;
        s.outbox.unconfirmed_wait_ms = 500;
    })
    .await;
    app.fake.script(FailureRule::Delay {
        count: 1,
        delay_ms: 3_000,
    });
    say(&app, "919800000405", "slow").await;
    let rows = wait_until_settled(&app, 1).await;
    assert_eq!(rows[0].state, OutboxState::Sent);
    assert_eq!(rows[0].attempts, 2);
    // The delayed request reached the fake too, and no status webhook said so within the
    // wait: a bounded, counted duplicate.
    assert_eq!(app.sent_messages().len(), 2);
}

/// A send whose answer does not come in time may still have reached Meta. Its status webhook
/// names the row (callback data `outbox:<id>`): the row is recorded sent with that wamid and
/// not sent again. Without the status it is sent again once the wait is over (above).
#[tokio::test]
async fn a_timed_out_send_that_meta_took_is_not_sent_twice() {
    for backend in backends() {
        let (app, wamid, callback) =
            an_unanswered_send(&backend, "919800000408", 1_000, 4_000, 3_000).await;
        // The timeout is recorded: the row waits to be sent again.
        let row = wait_for_row(&app, |r| r.attempts == 1 && r.state == OutboxState::Queued).await;
        assert_eq!(callback, format!("outbox:{}", row.id));
        assert_eq!(row.wamid, None);
        post_status(&app, &wamid, "sent", &callback).await;
        let row = wait_for_row(&app, |r| r.state == OutboxState::Sent).await;
        assert_eq!(row.wamid.as_deref(), Some(wamid.as_str()));
        assert_eq!(row.delivery_status.as_deref(), Some("sent"));
        assert_eq!(row.attempts, 1);
        // Past the wait: still the one send.
        tokio::time::sleep(Duration::from_millis(4_500)).await;
        assert_eq!(app.sent_messages().len(), 1);
        // A later status of the message moves the row like any other.
        post_status(&app, &wamid, "delivered", &callback).await;
        let row = wait_for_row(&app, |r| r.delivery_status.as_deref() == Some("delivered")).await;
        assert_eq!(row.state, OutboxState::Sent);
    }
}

/// Meta's `sent` status usually comes within seconds, often before the send's own answer
/// times out: the row in flight takes the wamid, and the timeout then records it sent.
#[tokio::test]
async fn a_send_whose_status_comes_before_its_timeout_is_not_sent_twice() {
    for backend in backends() {
        let (app, wamid, callback) =
            an_unanswered_send(&backend, "919800000409", 2_000, 1_000, 5_000).await;
        post_status(&app, &wamid, "sent", &callback).await;
        // Still in flight: the row has the wamid but waits for its attempt to end.
        let row = wait_for_row(&app, |r| r.wamid.is_some()).await;
        assert_eq!(row.wamid.as_deref(), Some(wamid.as_str()));
        assert!(row.lease_owner.is_some(), "{row:#?}");
        // The timeout ends it: sent, once, with the status applied.
        let row = wait_for_row(&app, |r| r.attempts == 1 && r.lease_owner.is_none()).await;
        assert_eq!(row.state, OutboxState::Sent);
        assert_eq!(row.wamid.as_deref(), Some(wamid.as_str()));
        assert_eq!(row.delivery_status.as_deref(), Some("sent"));
        assert!(
            row.last_error
                .as_deref()
                .unwrap_or_default()
                .contains("timeout"),
            "{row:#?}"
        );
        // Past the wait and the fake's delay: still the one send.
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        assert_eq!(app.sent_messages().len(), 1);
    }
}

/// An app whose Cloud API requests time out after `timeout_ms` and whose timed-out sends wait
/// `wait_ms`, and a message from `phone` whose reply the fake takes at once but answers only
/// after `answer_after_ms`: the app, and the reply's wamid and callback data as the fake got them.
async fn an_unanswered_send(
    backend: &Backend,
    phone: &str,
    timeout_ms: u64,
    wait_ms: u64,
    answer_after_ms: u64,
) -> (TestApp, String, String) {
    let app = spawn_app_with(backend, |s| {
        s.whatsapp.request_timeout_ms = timeout_ms;
        s.outbox.unconfirmed_wait_ms = wait_ms;
    })
    .await;
    app.fake.script(FailureRule::Delay {
        count: 1,
        delay_ms: answer_after_ms,
    });
    say(&app, phone, "slow").await;
    let sent = app.wait_for_sends(1).await;
    let wamid = sent[0].wamid.clone().unwrap();
    let callback = sent[0].body["biz_opaque_callback_data"]
        .as_str()
        .unwrap()
        .to_owned();
    (app, wamid, callback)
}

/// Posts Meta's status webhook for `wamid`, echoing the send's callback data.
async fn post_status(app: &TestApp, wamid: &str, delivery: &str, callback: &str) {
    let mut update = status(wamid, delivery, now_secs());
    update["biz_opaque_callback_data"] = callback.into();
    let answer = app.post_webhook(&status_envelope(vec![update])).await;
    assert_eq!(answer.status(), 200);
}

/// The one outbox row, once `ready` holds for it; panics after 10 s.
async fn wait_for_row(app: &TestApp, ready: impl Fn(&outbox::Model) -> bool) -> outbox::Model {
    for _ in 0..500 {
        if let [row] = outbox_rows(app).await.as_slice()
            && ready(row)
        {
            return row.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the outbox row did not get there: {:#?}",
        outbox_rows(app).await
    );
}

#[tokio::test]
async fn the_answered_message_is_marked_read_after_the_reply() {
    let app = spawn_app(&Backend::Sqlite).await;
    let wamid = new_wamid();
    app.post_webhook(&envelope(vec![text_message(
        "919800000406",
        &wamid,
        now_secs(),
        "read me",
    )]))
    .await;
    app.wait_for_sends(1).await;
    let mut read = Vec::new();
    for _ in 0..200 {
        read = app
            .fake
            .received()
            .into_iter()
            .filter(|r| r.kind == RequestKind::MarkRead)
            .collect();
        if !read.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].body["message_id"], wamid.as_str());
}

#[tokio::test]
async fn read_receipts_can_be_switched_off() {
    let app = spawn_app_with(&Backend::Sqlite, |s| s.mark_read = false).await;
    say(&app, "919800000407", "quiet").await;
    app.wait_for_sends(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.fake
            .received()
            .iter()
            .all(|r| r.kind == RequestKind::Send)
    );
}

#[tokio::test]
async fn a_reply_waits_behind_its_contacts_earlier_row_that_is_being_retried() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        app.fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(429, 4).with_retry_after(1),
        });
        let phone = "919800000451";
        say(&app, phone, "first").await;
        for _ in 0..500 {
            if app.fake.attempts() >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(app.fake.attempts(), 1, "the first reply was tried once");
        // The first reply waits for its retry; the second must not overtake it, although it
        // could go at once.
        say(&app, phone, "second").await;
        let sent = app.wait_for_sends(2).await;
        let texts: Vec<String> = sent.iter().map(text_of).collect();
        assert_eq!(texts, ["echo: first", "echo: second"]);
        app.assert_no_more_sends(2).await;
    }
}

#[tokio::test]
async fn a_handed_over_reply_whose_decision_went_stale_is_decided_again_through_the_outbox() {
    // One send at a time, and the first takes 4 s: the second contact's reply, decided at
    // once, waits for the sender longer than a queue-time decision stands.
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.messaging.max_in_flight = 1;
        s.whatsapp.request_timeout_ms = 10_000;
    })
    .await;
    app.fake.script(FailureRule::Delay {
        count: 1,
        delay_ms: 4_000,
    });
    say(&app, "919800000452", "slow").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    say(&app, "919800000453", "waiting").await;
    let sent = app.wait_for_sends(2).await;
    let mut texts: Vec<String> = sent.iter().map(text_of).collect();
    texts.sort();
    assert_eq!(texts, ["echo: slow", "echo: waiting"]);
    app.assert_no_more_sends(2).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"insurebot_handoffs_total{outcome="released"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"insurebot_handoffs_total{outcome="on_queue_decision"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_sender_that_falls_behind_holds_processing_back_instead_of_piling_up_stale_replies() {
    // One send at a time, 150 ms each: ~6 replies a second, while 30 policyholders write
    // one every 40 ms. Processing may hand over only a little more than the sender has
    // started; the rest wait as unprocessed messages, so no handed-over reply waits long
    // enough to go stale. (Unbounded, every message was processed as it came, the later
    // replies waited over 2 s for the sender, went stale and took the outbox's claim path:
    // the `released` count below.)
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.messaging.max_in_flight = 1;
        s.mark_read = false;
    })
    .await;
    app.fake.script(FailureRule::Delay {
        count: 1_000,
        delay_ms: 150,
    });
    let contacts = 30;
    for n in 0..contacts {
        let response = say(&app, &format!("9198000006{n:02}"), "hello").await;
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let processed = inbound_message::Entity::find()
        .filter(inbound_message::Column::ProcessedAt.is_not_null())
        .count(&app.db)
        .await
        .unwrap() as usize;
    let sending = app.fake.received_count(RequestKind::Send);
    // Ahead of the sender: two handed-over rows per send in flight, plus the batch that
    // waits for that room (the messages that came while it waited, a few here). Unbounded,
    // all but the last one or two were processed by now (~30 against ~9 sends). Relative to
    // the sends seen, not a fixed count: on a slow machine the loop above takes longer and
    // the sender gets further meanwhile.
    assert!(
        processed <= sending + 10,
        "{processed} of {contacts} processed while {sending} replies reached the fake"
    );
    let sent = app.wait_for_sends(contacts).await;
    assert_eq!(sent.len(), contacts);
    app.assert_no_more_sends(contacts).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !metrics.contains(r#"insurebot_handoffs_total{outcome="released"}"#),
        "no reply went stale: {metrics}"
    );
}
