//! Issue 21: the test helpers leave no PostgreSQL databases behind (item 16).

use insurebot::config::DialogueMode;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::helpers::*;

/// A sandbox app (no access token) running the flows, as `serve` runs without configuration.
async fn sandbox(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.dialogue.handler = DialogueMode::Flows;
        s.whatsapp.access_token = None;
        s.whatsapp.app_secret = None;
    })
    .await
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

#[tokio::test]
async fn a_test_database_is_dropped_when_its_test_ends_passing_or_panicking() {
    let Some(backend) = postgres_only("a_test_database_is_dropped_when_its_test_ends") else {
        return;
    };
    let Backend::Postgres(admin_url) = backend.clone() else {
        unreachable!()
    };
    let admin_url = admin_url.as_str();
    // A test that ends normally, with the app under test still holding connections.
    let app = sandbox(&backend).await;
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
        let app = sandbox(&backend).await;
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
