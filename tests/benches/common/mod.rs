//! What the benchmarks that start a real `insurebot serve` share: a database of their own for
//! the run, waiting until the server answers, reading its memory, and stopping it.

use std::future::Future;
use std::pin::Pin;
use std::process::{Child, Command};
use std::time::Duration;

/// Drops the run's PostgreSQL database when awaited.
pub type DropDatabase = Pin<Box<dyn Future<Output = ()>>>;

/// A database URL for one run: a SQLite file `{name}.db` in `work`, or, with a PostgreSQL
/// admin URL, a fresh database `insurebot_{name}_{pid}` beside it and the future that drops it.
pub async fn database(
    admin_url: Option<&str>,
    work: &std::path::Path,
    name: &str,
) -> (String, Option<DropDatabase>) {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let Some(admin_url) = admin_url else {
        let file = work.join(format!("{name}.db"));
        return (format!("sqlite://{}?mode=rwc", file.display()), None);
    };
    let db_name = format!("insurebot_{name}_{}", std::process::id());
    let admin = Database::connect(admin_url)
        .await
        .expect("connect to PostgreSQL");
    let backend = admin.get_database_backend();
    admin
        .execute_raw(Statement::from_string(
            backend,
            format!("CREATE DATABASE {db_name}"),
        ))
        .await
        .expect("create the run's database");
    // The admin URL's database swapped for the run's; its query (sslmode, host) kept.
    let (path, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
    let base = path.rsplit_once('/').map_or(path, |(b, _)| b);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let url = format!("{base}/{db_name}{query}");
    let drop: DropDatabase = Box::pin(async move {
        let _ = admin
            .execute_raw(Statement::from_string(
                backend,
                format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
            ))
            .await;
    });
    (url, Some(drop))
}

/// Waits (up to 30 s) until `base`'s `/readyz` answers 200.
pub async fn wait_until_up(http: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become ready");
}

/// A memory figure of the server from /proc (Linux): `VmRSS:` now, `VmHWM:` its peak, in MB.
pub fn rss_mb(server: &Child, field: &str) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Stops the server with SIGTERM (a graceful shutdown) and waits for it.
pub fn stop(server: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
}
