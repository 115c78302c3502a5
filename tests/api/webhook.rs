//! The webhook's front door: the handshake, signatures, body limits and envelope errors.

use crate::helpers::*;

#[tokio::test]
async fn handshake_echoes_the_challenge_only_for_the_right_token() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ok = app
            .get(&format!("/webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"))
            .await;
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.text().await.unwrap(), "1158201444");

        let wrong = app
            .get("/webhook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")
            .await;
        assert_eq!(wrong.status(), 403);
        let bad_mode = app
            .get(&format!(
                "/webhook?hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"
            ))
            .await;
        assert_eq!(bad_mode.status(), 403);
        let no_challenge = app
            .get(&format!(
                "/webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"
            ))
            .await;
        assert_eq!(no_challenge.status(), 403);
    }
}

#[tokio::test]
async fn a_missing_signature_is_401_and_a_wrong_one_403_and_nothing_is_stored() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let body = envelope(vec![text_message(
            "919800000001",
            &new_wamid(),
            now_secs(),
            "hi",
        )]);

        let missing = app.post_webhook_with(body.clone().into_bytes(), None).await;
        assert_eq!(missing.status(), 401);
        let wrong = signature_with("another-secret", &body);
        let forged = app
            .post_webhook_with(body.clone().into_bytes(), Some(&wrong))
            .await;
        assert_eq!(forged.status(), 403);
        let malformed = app
            .post_webhook_with(body.clone().into_bytes(), Some("sha256=xyz"))
            .await;
        assert_eq!(malformed.status(), 403);
        // Signed over different bytes: a re-serialised body must not pass.
        let reserialised: serde_json::Value = serde_json::from_str(&body).unwrap();
        let pretty = serde_json::to_string_pretty(&reserialised).unwrap();
        let sig_of_pretty = signature_with(APP_SECRET, &pretty);
        let mismatch = app
            .post_webhook_with(body.clone().into_bytes(), Some(&sig_of_pretty))
            .await;
        assert_eq!(mismatch.status(), 403);

        app.assert_no_more_sends(0).await;
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("insurebot_webhooks_total{outcome=\"missing_signature\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("insurebot_webhooks_total{outcome=\"bad_signature\"} 3"),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn garbage_truncated_and_foreign_bodies_get_a_400_with_a_reason() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let full = envelope(vec![text_message(
            "919800000001",
            &new_wamid(),
            now_secs(),
            "hi",
        )]);
        let cases: Vec<(String, &str)> = vec![
            ("not json at all".to_owned(), "not valid JSON"),
            (full[..full.len() / 2].to_owned(), "not valid JSON"),
            ("{\"hello\":\"world\"}".to_owned(), "envelope"),
            ("[1,2,3]".to_owned(), "envelope"),
        ];
        for (body, expected) in cases {
            let response = app.post_webhook(&body).await;
            assert_eq!(response.status(), 400, "body {body:?}");
            let error = response.json::<serde_json::Value>().await.unwrap()["error"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                error.to_lowercase().contains(&expected.to_lowercase()),
                "{error} should mention {expected}"
            );
        }
        app.assert_no_more_sends(0).await;
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = spawn_app_with(&Backend::Sqlite, |s| s.webhook.max_body_bytes = 4096).await;
    let big = envelope(vec![text_message(
        "919800000001",
        &new_wamid(),
        now_secs(),
        &"x".repeat(5000),
    )]);
    let response = app.post_webhook(&big).await;
    assert_eq!(response.status(), 413);
    app.assert_no_more_sends(0).await;
    let small = envelope(vec![text_message(
        "919800000001",
        &new_wamid(),
        now_secs(),
        "fits",
    )]);
    assert_eq!(app.post_webhook(&small).await.status(), 200);
}

fn signature_with(secret: &str, body: &str) -> String {
    insurebot::whatsapp::signature::sign(secret.as_bytes(), body.as_bytes())
}

#[tokio::test]
async fn past_the_queue_limit_a_webhook_gets_503_at_once_and_its_redelivery_is_stored() {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};

    let app = spawn_app_with(&Backend::Sqlite, |s| s.webhook.max_queued = 2).await;
    let ts = now_secs();
    let phone = "919800000601";
    let bodies: Vec<String> = (0..3)
        .map(|i| {
            envelope(vec![text_message(
                phone,
                &new_wamid(),
                ts + i,
                &format!("q{i}"),
            )])
        })
        .collect();
    // Another connection holds SQLite's write lock, so webhooks wait to be stored.
    let lock = app
        .db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
        .unwrap();
    let waiting =
        async { tokio::join!(app.post_webhook(&bodies[0]), app.post_webhook(&bodies[1])) };
    let refused = async {
        // The two above wait for the lock (the gauge says so); the third finds the queue full.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let metrics = app.get("/metrics").await.text().await.unwrap();
            if metrics.contains("insurebot_webhooks_waiting 2") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{metrics}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let started = std::time::Instant::now();
        let response = app.post_webhook(&bodies[2]).await;
        let answered_in = started.elapsed();
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: serde_json::Value = response.json().await.unwrap();
        // The full queue is checked before the body is parsed (a refusal, and Meta's
        // redeliveries of it, must cost little while the queue drains): a signed body that is
        // no envelope, 400 otherwise, is refused 503 too.
        let unparsed = app.post_webhook("not an envelope").await.status();
        lock.rollback().await.unwrap();
        (status, retry_after, body, answered_in, unparsed)
    };
    let ((first, second), (status, retry_after, body, answered_in, unparsed)) =
        tokio::join!(waiting, refused);
    assert_eq!(unparsed, 503);
    assert_eq!(app.post_webhook("not an envelope").await.status(), 400);
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.unwrap(), "1");
    assert!(
        body["error"].as_str().unwrap().contains("limit 2"),
        "{body}"
    );
    // Refused without waiting for the lock.
    assert!(
        answered_in < std::time::Duration::from_secs(1),
        "{answered_in:?}"
    );
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    // Meta delivers the refused one again: stored and answered like the others.
    assert_eq!(app.post_webhook(&bodies[2]).await.status(), 200);
    let sent = app.wait_for_sends(3).await;
    let mut texts: Vec<String> = sent.iter().map(text_of).collect();
    texts.sort();
    assert_eq!(texts, ["echo: q0", "echo: q1", "echo: q2"]);
    app.assert_no_more_sends(3).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"insurebot_webhooks_total{outcome="overloaded"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("insurebot_webhooks_waiting 0"),
        "{metrics}"
    );
}
