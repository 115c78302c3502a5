//! Import benchmark (issue 5 target: 1,000,000 policy rows from CSV in under 60 s): writes a
//! realistic policies export, then times `insurer::import` into a fresh SQLite file and, when
//! `INSUREBOT_TEST_DATABASE_URL` names a PostgreSQL admin database, into a fresh PostgreSQL
//! database; a second import of the same file (every row an update) is timed too. Each run
//! uses a new database; with several runs the medians are printed at the end.
//!
//! ```sh
//! cargo bench --bench import                     # IMPORT_ROWS=1000000, IMPORT_RUNS=1
//! INSUREBOT_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench import
//! IMPORT_RUNS=3 IMPORT_TARGETS=postgres INSUREBOT_TEST_DATABASE_URL=… cargo bench --bench import
//! ```
//!
//! `IMPORT_TARGETS` is `sqlite`, `postgres` or both (comma-separated; default both, PostgreSQL
//! only when the URL is set). The counts of every pass are checked, so a fast but wrong import
//! fails the benchmark instead of winning it.

use std::io::Write;
use std::time::Instant;

use insurebot::insurer::{ImportKind, import};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let rows: u64 = env_or("IMPORT_ROWS", 1_000_000);
    let runs: usize = env_or("IMPORT_RUNS", 1).max(1);
    let targets: String = env_or("IMPORT_TARGETS", "sqlite,postgres".to_owned());
    let dir = std::env::temp_dir().join(format!("insurebot-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("policies.csv");
    write_policies(&csv, rows);
    println!(
        "import: {rows} policy rows ({} MB), {runs} run(s)",
        std::fs::metadata(&csv).unwrap().len() / 1_000_000
    );

    let admin_url = std::env::var("INSUREBOT_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let mut labels = Vec::new();
    if targets.contains("sqlite") {
        labels.push("SQLite");
    }
    if targets.contains("postgres") && admin_url.is_some() {
        labels.push("PostgreSQL");
    }
    // (label, pass) -> seconds of each run
    let mut timings: Vec<((&str, &str), Vec<f64>)> = Vec::new();
    for run in 0..runs {
        for label in &labels {
            let target = Target::create(label, &dir, admin_url.as_deref(), run).await;
            let db =
                insurebot::store::connect(&insurebot::config::DatabaseUrl::new(target.url.clone()))
                    .await
                    .unwrap();
            insurebot::store::migrate(&db).await.unwrap();
            for (pass, expected) in [("fresh", (rows, 0)), ("again (all updates)", (0, rows))] {
                let started = Instant::now();
                let report = import(&db, ImportKind::Policies, &csv, false)
                    .await
                    .unwrap();
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "{label:<10} {pass:<20} {secs:>7.2} s  ({} created, {} updated)",
                    report.created, report.updated
                );
                assert_eq!(
                    (report.created, report.updated),
                    expected,
                    "{label} {pass}: wrong counts"
                );
                match timings.iter_mut().find(|(k, _)| *k == (*label, pass)) {
                    Some((_, v)) => v.push(secs),
                    None => timings.push(((label, pass), vec![secs])),
                }
            }
            drop(db);
            target.drop().await;
        }
    }
    if runs > 1 {
        println!("medians of {runs} runs:");
        for ((label, pass), mut secs) in timings {
            secs.sort_by(f64::total_cmp);
            let listed: Vec<String> = secs.iter().map(|s| format!("{s:.2}")).collect();
            println!(
                "{label:<10} {pass:<20} {:>7.2} s  (runs: {})",
                secs[secs.len() / 2],
                listed.join(", ")
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// One fresh database to import into.
struct Target {
    url: String,
    /// PostgreSQL: the admin connection and the database to drop afterwards.
    admin: Option<(DatabaseConnection, String)>,
}

impl Target {
    async fn create(
        label: &str,
        dir: &std::path::Path,
        admin_url: Option<&str>,
        run: usize,
    ) -> Self {
        if label == "SQLite" {
            let file = dir.join(format!("import-{run}.db"));
            return Self {
                url: format!("sqlite://{}?mode=rwc", file.display()),
                admin: None,
            };
        }
        let admin_url = admin_url.expect("PostgreSQL target needs the admin URL");
        let name = format!("insurebot_bench_{}_{run}", std::process::id());
        let admin = Database::connect(admin_url).await.unwrap();
        admin
            .execute_raw(Statement::from_string(
                admin.get_database_backend(),
                format!("CREATE DATABASE {name}"),
            ))
            .await
            .unwrap();
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            admin: Some((admin, name)),
        }
    }

    async fn drop(self) {
        if let Some((admin, name)) = self.admin {
            let _ = admin
                .execute_raw(Statement::from_string(
                    admin.get_database_backend(),
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ))
                .await;
        } else if let Some(path) = self
            .url
            .strip_prefix("sqlite://")
            .and_then(|p| p.strip_suffix("?mode=rwc"))
        {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
}

/// Policies shaped like the shipped sample: a few per holder, Indian numbers and dates.
fn write_policies(path: &std::path::Path, rows: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(
        out,
        "policy_number,customer_id,holder_name,dob,mobile,product,plan,status,sum_assured,start_date,end_date,document_url"
    )
    .unwrap();
    let products = [
        ("health", "Arogya Family Floater"),
        ("motor", "Private Car Comprehensive"),
        ("life", "Term Life Plus"),
    ];
    for n in 0..rows {
        let (product, plan) = products[(n % 3) as usize];
        let holder = n / 3;
        writeln!(
            out,
            "P-{n:09},C{holder:08},Holder {holder},19{:02}-{:02}-{:02},91{:010},{product},{plan},active,{},20{:02}-01-15,,https://docs.example.in/p/{n}.pdf",
            50 + holder % 40,
            1 + holder % 12,
            1 + holder % 28,
            7_000_000_000 + holder,
            100_000 * (1 + n % 50),
            15 + n % 10,
        )
        .unwrap();
    }
}
