//! Import benchmark (issue 5 target: 1,000,000 policy rows from CSV in under 60 s): writes a
//! realistic policies export, then times `insurer::import` into a fresh SQLite file and, when
//! `INSUREBOT_TEST_DATABASE_URL` names a PostgreSQL admin database, into a fresh PostgreSQL
//! database; a second import of the same file (every row an update) is timed too.
//!
//! ```sh
//! cargo bench --bench import                     # IMPORT_ROWS=1000000 by default
//! INSUREBOT_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench import
//! ```

use std::io::Write;
use std::time::Instant;

use insurebot::insurer::{ImportKind, import};
use sea_orm::{ConnectionTrait, Database, Statement};

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::var("IMPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("insurebot-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("policies.csv");
    write_policies(&csv, rows);
    println!(
        "import: {rows} policy rows ({} MB)",
        std::fs::metadata(&csv).unwrap().len() / 1_000_000
    );

    let mut targets = vec![(
        "SQLite",
        format!("sqlite://{}?mode=rwc", dir.join("import.db").display()),
        None,
    )];
    if let Ok(admin) = std::env::var("INSUREBOT_TEST_DATABASE_URL")
        && !admin.is_empty()
    {
        let name = format!("insurebot_bench_{}", std::process::id());
        let db = Database::connect(admin.as_str()).await.unwrap();
        db.execute_raw(Statement::from_string(
            db.get_database_backend(),
            format!("CREATE DATABASE {name}"),
        ))
        .await
        .unwrap();
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(b, _)| b)
            .to_owned();
        targets.push(("PostgreSQL", format!("{base}/{name}"), Some((db, name))));
    }
    for (label, url, admin) in targets {
        let db = insurebot::store::connect(&insurebot::config::DatabaseUrl::new(url))
            .await
            .unwrap();
        insurebot::store::migrate(&db).await.unwrap();
        for pass in ["fresh", "again (all updates)"] {
            let started = Instant::now();
            let report = import(&db, ImportKind::Policies, &csv, false)
                .await
                .unwrap();
            println!(
                "{label:<10} {pass:<20} {:>7.2} s  ({} created, {} updated)",
                started.elapsed().as_secs_f64(),
                report.created,
                report.updated
            );
        }
        drop(db);
        if let Some((admin, name)) = admin {
            let _ = admin
                .execute_raw(Statement::from_string(
                    admin.get_database_backend(),
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ))
                .await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
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
