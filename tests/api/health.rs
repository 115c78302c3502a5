//! Operations endpoints.

use crate::helpers::*;

#[tokio::test]
async fn healthz_readyz_and_metrics_answer() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        assert_eq!(app.get("/healthz").await.status(), 200);
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status(), 200);
        assert_eq!(
            ready.json::<serde_json::Value>().await.unwrap()["ready"],
            true
        );

        app.post_webhook(&envelope(vec![text_message(
            "919800000001",
            &new_wamid(),
            now_secs(),
            "hi",
        )]))
        .await;
        app.wait_for_sends(1).await;
        let metrics = app.get("/metrics").await;
        assert_eq!(metrics.status(), 200);
        let text = metrics.text().await.unwrap();
        for expected in [
            "insurebot_webhooks_total{outcome=\"accepted\"} 1",
            "insurebot_inbound_messages_total 1",
            "insurebot_duplicate_messages_total 0",
            "insurebot_processing_latency_seconds_count 1",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app(&Backend::Sqlite).await;
    let response = app.get("/healthz").await;
    let id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header");
    assert!(!id.is_empty());
}

#[tokio::test]
async fn sandbox_mode_answers_through_the_built_in_fake_and_shows_the_replies() {
    // No access token: the app starts its own fake Cloud API and signs with the sandbox secret.
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.whatsapp.access_token = None;
        s.whatsapp.app_secret = None;
    })
    .await;
    let body = envelope(vec![text_message(
        "919800000501",
        &new_wamid(),
        now_secs(),
        "hello sandbox",
    )]);
    let signature = insurebot::whatsapp::signature::sign(
        insurebot::config::SANDBOX_APP_SECRET.as_bytes(),
        body.as_bytes(),
    );
    assert_eq!(
        app.post_webhook_with(body.into_bytes(), Some(&signature))
            .await
            .status(),
        200
    );
    let mut replies = Vec::new();
    for _ in 0..250 {
        replies = app
            .get("/sandbox/messages")
            .await
            .json::<Vec<serde_json::Value>>()
            .await
            .unwrap();
        if replies.iter().any(|r| r["kind"] == "send") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let send = replies
        .iter()
        .find(|r| r["kind"] == "send")
        .expect("a reply in the sandbox");
    assert_eq!(send["body"]["text"]["body"], "echo: hello sandbox");
    // The test's own fake got nothing: sandbox replies never leave the process.
    assert!(app.sent_messages().is_empty());
}

#[tokio::test]
async fn the_sandbox_route_is_absent_outside_sandbox_mode() {
    let app = spawn_app(&Backend::Sqlite).await;
    assert_eq!(app.get("/sandbox/messages").await.status(), 404);
}

/// A small write (a console event, a chunk of a streamed body) must not wait behind an
/// unacknowledged earlier one for the client's delayed ACK: the server's end of every
/// accepted connection has Nagle's algorithm off.
#[tokio::test]
async fn accepted_connections_have_nagles_delay_off() {
    let app = spawn_app(&Backend::Sqlite).await;
    let server: std::net::SocketAddr = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let client = tokio::net::TcpStream::connect(server)
        .await
        .expect("connect");
    let client_port = client.local_addr().expect("local address").port();
    // The server's end appears once axum has accepted the connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let nodelay = loop {
        if let Some(nodelay) = own_tcp_nodelay(server.port(), Some(client_port)) {
            break nodelay;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never accepted the connection"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(nodelay, "TCP_NODELAY is off on the server's end");
}
