//! Issue 21, items 11 and 16: the simulator starts as the sample policyholder and shows both
//! sides of a conversation; the test helpers leave no PostgreSQL databases behind.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn the_simulator_starts_as_the_sample_policyholder() {
    for backend in backends() {
        let app = spawn_sandbox_app(&backend).await;
        let page = app.get("/simulator").await;
        assert_eq!(page.status(), StatusCode::OK, "{backend:?}");
        let html = page.text().await.unwrap();
        assert!(
            html.contains(r#"<input id="phone" value="919812345678""#),
            "{backend:?}: the phone field should hold the sample policyholder: {html}"
        );
    }
}

#[tokio::test]
async fn the_simulator_lists_what_the_number_sent_with_the_bots_replies_in_order() {
    for backend in backends() {
        let app = spawn_sandbox_app(&backend).await;
        let phone = "919800002101";
        let sent = app
            .http
            .post(format!("{}/simulator/send", app.address))
            .json(&serde_json::json!({ "phone": phone, "kind": "text", "text": "hi" }))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), StatusCode::OK, "{backend:?}");
        // A page opened afterwards (another number chosen, then this one again) has only what
        // the server lists: the number's own message and the bot's reply, the message first.
        let mut listed = Value::Null;
        for _ in 0..400 {
            listed = app
                .get(&format!("/simulator/messages?phone={phone}"))
                .await
                .json()
                .await
                .unwrap();
            if listed["messages"].as_array().is_some_and(|m| !m.is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let inbound = listed["inbound"]
            .as_array()
            .unwrap_or_else(|| panic!("{backend:?}: no inbound list: {listed}"));
        assert_eq!(inbound.len(), 1, "{backend:?}: {listed}");
        assert_eq!(inbound[0]["text"], "hi", "{backend:?}: {listed}");
        let reply_at = listed["messages"][0]["at"].as_i64().expect("reply time");
        let sent_at = inbound[0]["at"].as_i64().expect("message time");
        assert!(sent_at <= reply_at, "{backend:?}: {listed}");
    }
}

/// Whether the database named at the end of `url` exists, asked over `admin_url`.
async fn database_exists(admin_url: &str, url: &str) -> bool {
    let name = url
        .split('?')
        .next()
        .and_then(|path| path.rsplit('/').next())
        .expect("a database name in the URL")
        .to_owned();
    let admin = connect_direct(admin_url).await;
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    let _ = admin.close().await;
    n == 1
}

#[needs_postgres]
#[tokio::test]
async fn a_test_database_is_dropped_when_its_test_ends_passing_or_panicking() {
    let backend = postgres_only();
    let Backend::Postgres(admin_url) = backend.clone() else {
        unreachable!()
    };
    let admin_url = admin_url.as_str();
    // A test that ends normally, with the app under test still holding connections.
    let app = spawn_sandbox_app(&backend).await;
    let url = app.database_url().to_owned();
    assert!(database_exists(admin_url, &url).await);
    drop(app);
    assert!(
        !database_exists(admin_url, &url).await,
        "left behind: {url}"
    );
    // A test that panics: its database is dropped while the panic unwinds.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let panicked = tokio::spawn(async move {
        let app = spawn_sandbox_app(&backend).await;
        tx.send(app.database_url().to_owned()).unwrap();
        panic!("a failing test");
    })
    .await;
    assert!(panicked.is_err_and(|e| e.is_panic()));
    let url = rx.await.unwrap();
    assert!(
        !database_exists(admin_url, &url).await,
        "left behind: {url}"
    );
}
