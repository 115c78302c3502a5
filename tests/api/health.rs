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
