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
