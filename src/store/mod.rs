//! Persistence: connecting to SQLite or PostgreSQL from one code path, migrations, and the
//! hand-written queries several layers share; the row-state enums beside their entities
//! (`entities::outbox::State`, …). Every `*_at` value is Unix milliseconds (UTC).

pub mod contacts;
pub mod entities;
pub mod lease;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait,
};

use crate::config::DatabaseUrl;

/// `CASE WHEN key = k₁ THEN v₁ WHEN key = k₂ THEN v₂ … END` over `pairs`, for a batch
/// statement that writes each row its own value; `None` when there are no pairs.
pub(crate) fn case_by<K, E>(
    key: impl ColumnTrait,
    pairs: impl IntoIterator<Item = (K, E)>,
) -> Option<sea_orm::sea_query::CaseStatement>
where
    K: Into<sea_orm::Value>,
    E: Into<sea_orm::sea_query::Expr>,
{
    let mut pairs = pairs.into_iter();
    let (first_key, first_value) = pairs.next()?;
    let first = sea_orm::sea_query::Expr::case(key.eq(first_key), first_value);
    Some(pairs.fold(first, |case, (k, value)| case.case(key.eq(k), value)))
}

/// The `n`th (from 1) bind parameter of a hand-written statement: `$n` on PostgreSQL, `?` on
/// SQLite (which numbers them by position).
pub(crate) fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// Prepared statements each connection keeps (see [`connect_pool`]).
const STATEMENT_CACHE: usize = 1024;

/// Opens the pool. SQLite gets WAL, foreign keys and a busy timeout so that concurrent writers
/// wait for each other instead of failing.
///
/// # Errors
/// When the database cannot be reached or the URL is malformed.
pub async fn connect(url: &DatabaseUrl) -> Result<DatabaseConnection, DbErr> {
    connect_pool(url, PG_POOL, Duration::from_secs(30)).await
}

/// The webhook ingest's own connection (PostgreSQL): acknowledgements never wait for a pool
/// slot behind background work (processing, sending, reminders), nor for the pool to open a
/// connection when a burst needs more. (On SQLite the ingest shares [`connect`]'s pool, whose
/// writers queue at the write gate anyway.) Getting the connection (opening it again after the
/// database went away) takes at most `acquire_timeout`: a webhook is answered 503 when the
/// database does not take it in time, and the writer should then be ready to try afresh for
/// its redelivery instead of hanging on for the shared pool's 30 s.
///
/// Its socket belongs to the runtime this is called on: call it on the thread the ingest
/// writes from ([`run_on_own_thread`]).
///
/// # Errors
/// As [`connect`].
pub async fn connect_ingest(
    url: &DatabaseUrl,
    acquire_timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    connect_pool(url, (1, 1), acquire_timeout).await
}

/// Runs the future `task` makes on a thread of its own (named `name`), with a runtime of its
/// own, until it ends. For a writer whose every statement is a round trip: on the shared
/// runtime each answer waits for a turn among the HTTP, pipeline and sender tasks, and the
/// webhooks waiting for its commit wait as long (see [`spawn_writer`] for SQLite's writers).
/// Sockets it opens are driven by this thread's runtime, not the shared one.
pub fn run_on_own_thread<F, Fut>(name: &str, task: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("start a writer's runtime");
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || runtime.block_on(task()))
        .expect("start a writer's thread");
}

/// PostgreSQL's shared pool: (max, min) connections. The min is what steady load keeps busy
/// (the pipeline's processors, the sender's recorder and claims, the sweeper), so that a
/// burst does not wait for PostgreSQL to start backends one by one.
const PG_POOL: (u32, u32) = (16, 8);

/// A pool for `url`; `(max, min)` connections on PostgreSQL (SQLite's are fixed below); a
/// connection is waited for (and opened) for at most `acquire_timeout`.
async fn connect_pool(
    url: &DatabaseUrl,
    (max, min): (u32, u32),
    acquire_timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.expose().to_owned());
    let ssl_mode_given =
        url.expose().contains("sslmode=") || std::env::var_os("PGSSLMODE").is_some();
    // sea-orm hands both to sqlx's one acquire timeout (the later wins), which also bounds
    // opening a connection: connect_timeout would be overwritten, so only this one is set.
    opts.sqlx_logging(false).acquire_timeout(acquire_timeout);
    if url.is_sqlite() {
        opts.max_connections(8)
            .min_connections(1)
            // sqlx pings a connection each time it hands one out; SQLite's is a file in this
            // process, nothing can drop it, and each ping is a round trip to its worker thread.
            .test_before_acquire(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
                    // As on PostgreSQL below: with sqlx's default of 100, the batch sizes'
                    // statements evicted each other and were compiled again and again.
                    .statement_cache_capacity(STATEMENT_CACHE)
            });
    } else {
        opts.max_connections(max)
            .min_connections(min)
            // sqlx pings every connection it hands out: a round trip per transaction, ~1 in 6
            // of the ingest's. A connection that was busy a moment ago is known alive; one idle
            // for a second (after a database restart, say) is still checked.
            .test_before_acquire_if_idle_for(Duration::from_secs(1))
            .map_sqlx_postgres_opts(move |o| {
                let o = match loopback_ssl_mode(&o, ssl_mode_given) {
                    Some(mode) => o.ssl_mode(mode),
                    None => o,
                };
                // A batch's statements list its ids, so each batch size is a statement of its
                // own: with sqlx's default of 100 cached per connection they evicted each
                // other and every batch paid a Parse round trip (and PostgreSQL a plan).
                o.statement_cache_capacity(STATEMENT_CACHE)
                    // The pipeline reads a contact's messages in a statement after the one
                    // that locks it, relying on each statement seeing what committed before
                    // it (see `pipeline`): whatever the database's default, insurebot's
                    // sessions run READ COMMITTED. A startup parameter: no round trip.
                    .options([("default_transaction_isolation", "read committed")])
            });
    }
    Database::connect(opts).await
}

/// Applies every pending migration and returns how many it applied. The migration crate's own
/// per-migration lines are kept at warn by [`crate::telemetry::init`]; `serve` logs this count
/// once instead, and the other commands stay quiet.
///
/// # Errors
/// When a migration fails; nothing after it is applied.
pub async fn migrate(db: &DatabaseConnection) -> Result<usize, DbErr> {
    let pending = pending_migrations(db).await?;
    Migrator::up(db, None).await?;
    Ok(pending)
}

/// How long a graceful close waits for connections still in use before giving up (the files
/// are then left as after a crash, which SQLite recovers from on the next start).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Closes a SQLite pool at a graceful stop: it first folds the write-ahead log into the
/// database file (`PRAGMA wal_checkpoint(TRUNCATE)`); once the last connection is closed
/// SQLite removes `-wal` and `-shm`, so a stopped server leaves one file behind. A PostgreSQL
/// pool is left to be dropped: closing it waits for connections that tasks still finishing
/// hold, which delayed a restart by the whole [`CLOSE_WAIT`] for nothing gained.
///
/// # Errors
/// When the checkpoint fails or connections are still in use after [`CLOSE_WAIT`].
pub async fn close(db: DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(());
    }
    db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await?;
    tokio::time::timeout(CLOSE_WAIT, db.close())
        .await
        .map_err(|_| DbErr::Custom("database connections still in use at shutdown".into()))?
}

/// How many migrations are known but not applied (0 when the schema is current).
///
/// # Errors
/// When the database cannot be queried.
pub async fn pending_migrations(db: &DatabaseConnection) -> Result<usize, DbErr> {
    Ok(Migrator::get_pending_migrations(db).await?.len())
}

/// A write transaction. On SQLite it also holds this process's write gate for the database
/// file, so writers queue in FIFO order inside the process instead of meeting SQLite's busy
/// handler, which sleeps in growing steps (up to 100 ms) and turned ordinary contention into
/// latency spikes under load. Derefs to the [`DatabaseTransaction`].
pub struct WriteTxn {
    txn: DatabaseTransaction,
    // Declared after `txn`, so the gate opens only once the transaction is gone.
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// When the writer asked for the transaction, and when it had it (see [`WriterTime`]).
    asked_at: Instant,
    opened_at: Instant,
}

/// How long a write transaction waited for the database's writer (on SQLite the write gate,
/// held by the ingest, the pipeline, the sender's results, media bookkeeping…, then
/// `BEGIN IMMEDIATE`) and how long it then held it until its commit: what the writers' debug
/// lines log, so that a saturated run accounts for the writer's every second (README, "Load
/// benchmark").
#[derive(Debug, Clone, Copy)]
pub struct WriterTime {
    pub waited: Duration,
    pub held: Duration,
}

impl WriterTime {
    #[must_use]
    pub fn waited_us(&self) -> u64 {
        u64::try_from(self.waited.as_micros()).unwrap_or(u64::MAX)
    }

    #[must_use]
    pub fn held_us(&self) -> u64 {
        u64::try_from(self.held.as_micros()).unwrap_or(u64::MAX)
    }
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

// So `&txn` works wherever sea-orm takes a connection, exactly like the transaction itself.
#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}

impl WriteTxn {
    /// Commits.
    ///
    /// # Errors
    /// Database errors; nothing is written then.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Commits, and says how long the transaction waited for the writer and held it.
    ///
    /// # Errors
    /// As [`Self::commit`].
    pub async fn commit_timed(self) -> Result<WriterTime, DbErr> {
        let (asked_at, opened_at) = (self.asked_at, self.opened_at);
        self.txn.commit().await?;
        Ok(WriterTime {
            waited: opened_at - asked_at,
            held: opened_at.elapsed(),
        })
    }

    /// Rolls back.
    ///
    /// # Errors
    /// Database errors.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

/// Starts a transaction that will write. On SQLite it is `BEGIN IMMEDIATE` behind the
/// process's write gate: a deferred transaction that later upgrades to a writer fails with
/// SQLITE_BUSY at once instead of waiting, and the gate keeps in-process writers from
/// contending at all (other processes still meet the busy timeout).
///
/// # Errors
/// When no connection is available or the lock cannot be taken within the busy timeout.
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
    begin_write_as(db, false).await
}

/// [`begin_write`] for a writer someone is waiting on (the webhook ingest: Meta's request is
/// open until it commits): on SQLite it goes before writers that have not yet queued at the
/// gate, so background work (processing, sending, reminders) delays acknowledgements by at
/// most the transactions already in line.
///
/// # Errors
/// As [`begin_write`].
pub async fn begin_write_urgent(db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
    begin_write_as(db, true).await
}

async fn begin_write_as(db: &DatabaseConnection, urgent: bool) -> Result<WriteTxn, DbErr> {
    let asked_at = Instant::now();
    if db.get_database_backend() == DbBackend::Sqlite {
        // On the writer thread a transaction's statements run without suspending (see
        // `sqlite_writer_runtime`), so a writer that just committed would take the free gate
        // again before the thread's other writers (the ingest, with its webhooks waiting) ran
        // to queue at it. A turn for them first.
        tokio::task::yield_now().await;
        let gate = sqlite_write_gate(db).enter(urgent).await;
        let txn = db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        Ok(WriteTxn {
            txn,
            _gate: Some(gate),
            asked_at,
            opened_at: Instant::now(),
        })
    } else {
        // A plain begin: cancelling it is safe with the vendored sqlx-postgres, whose begin
        // queues the ROLLBACK for a BEGIN whose answer its caller did not wait for (sqlx#4393,
        // vendor/README.md). The published 0.9.0 left that connection in the pool inside a
        // transaction nothing ended.
        let txn = db.begin().await?;
        Ok(WriteTxn {
            txn,
            _gate: None,
            asked_at,
            opened_at: Instant::now(),
        })
    }
}

/// This process's queue of writers to one SQLite file: FIFO, except that urgent writers go
/// before ordinary ones that arrive while they wait.
#[derive(Default)]
struct WriteGate {
    lock: Arc<tokio::sync::Mutex<()>>,
    urgent_waiting: AtomicUsize,
    urgent_gone: tokio::sync::Notify,
}

impl WriteGate {
    async fn enter(&self, urgent: bool) -> tokio::sync::OwnedMutexGuard<()> {
        if urgent {
            self.urgent_waiting.fetch_add(1, Ordering::SeqCst);
            let guard = self.lock.clone().lock_owned().await;
            if self.urgent_waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.urgent_gone.notify_waiters();
            }
            return guard;
        }
        loop {
            // Created before the check, so a notify between the check and the wait counts.
            let gone = self.urgent_gone.notified();
            if self.urgent_waiting.load(Ordering::SeqCst) == 0 {
                return self.lock.clone().lock_owned().await;
            }
            gone.await;
        }
    }
}

/// What this process keeps per SQLite file (tests run many apps on different files): the
/// write gate, and the writers' thread once one is started.
#[derive(Default)]
struct SqliteFile {
    gate: Arc<WriteGate>,
    writer: std::sync::OnceLock<tokio::runtime::Handle>,
}

fn sqlite_file(db: &DatabaseConnection) -> Arc<SqliteFile> {
    static FILES: LazyLock<Mutex<HashMap<PathBuf, Arc<SqliteFile>>>> =
        LazyLock::new(Default::default);
    let file = db
        .get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_owned();
    FILES
        .lock()
        .expect("SQLite file registry")
        .entry(file)
        .or_default()
        .clone()
}

fn sqlite_write_gate(db: &DatabaseConnection) -> Arc<WriteGate> {
    sqlite_file(db).gate.clone()
}

/// Starts `task` where a writer of `db` runs best. On SQLite that is a thread of its own per
/// database file, shared by the writers that take turns at the write gate (the ingest, the
/// pipeline, the send results): each of their statements is a round trip to SQLite's worker
/// thread, and on the shared runtime every return waited for a turn among the HTTP tasks,
/// while the gate, and everyone behind it, waited too. On PostgreSQL it is the current runtime.
pub fn spawn_writer<F>(db: &DatabaseConnection, task: F) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    if db.get_database_backend() == DbBackend::Sqlite {
        sqlite_writer_runtime(db).spawn(task)
    } else {
        tokio::spawn(task)
    }
}

/// One writer thread per SQLite file in this process, running for the life of the process.
fn sqlite_writer_runtime(db: &DatabaseConnection) -> tokio::runtime::Handle {
    sqlite_file(db)
        .writer
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("start the SQLite writer runtime");
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("sqlite-writer".to_owned())
                .spawn(move || {
                    // The writers' statements run here, not on sqlx's worker thread of the
                    // connection: each would otherwise be two thread wake-ups, and on a busy
                    // machine two waits for a core, all while the write gate is held (the
                    // patch in vendor/sqlx-sqlite; README, "Load benchmark").
                    sea_orm::sqlx::sqlite::run_statements_on_this_thread();
                    runtime.block_on(std::future::pending::<()>())
                })
                .expect("start the SQLite writer thread");
            handle
        })
        .clone()
}

/// The TLS mode for a PostgreSQL server on this machine reached over TCP, when the URL (or
/// `PGSSLMODE`) chose none: `disable`. The default `prefer` encrypts loopback traffic, which
/// never leaves the kernel, and both ends pay for it on every round trip (`cargo bench --bench
/// load`, PostgreSQL on 127.0.0.1, 3,000/s offered: 2,997/s answered either way, acks p99
/// 24.5–26.4 ms with TLS and 19.8–20.7 ms without, 0.24 and 0.22 ms server CPU per message).
/// A mode written in the URL is always obeyed (a server whose pg_hba.conf demands TLS even on
/// loopback needs `sslmode=require`: sqlx's `allow` does not fall back to TLS); other hosts
/// keep `prefer`.
fn loopback_ssl_mode(
    opts: &sea_orm::sqlx::postgres::PgConnectOptions,
    given: bool,
) -> Option<sea_orm::sqlx::postgres::PgSslMode> {
    let host = opts
        .get_host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!given && opts.get_socket().is_none() && loopback)
        .then_some(sea_orm::sqlx::postgres::PgSslMode::Disable)
}

/// The current time as Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::{DatabaseUrl, begin_write, connect, loopback_ssl_mode};
    use sea_orm::ConnectionTrait;
    use sea_orm::sqlx::postgres::{PgConnectOptions, PgSslMode};

    fn mode(url: &str) -> Option<PgSslMode> {
        let opts: PgConnectOptions = url.parse().expect("a PostgreSQL URL");
        loopback_ssl_mode(&opts, url.contains("sslmode="))
    }

    #[test]
    fn loopback_tcp_goes_without_tls_unless_the_url_names_a_mode() {
        for url in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db",
            "postgres://u@127.0.0.2/db",
        ] {
            assert!(matches!(mode(url), Some(PgSslMode::Disable)), "{url}");
        }
        for url in [
            "postgres://u@127.0.0.1:5432/db?sslmode=require",
            "postgres://u@db.internal:5432/db",
            "postgres://u@10.0.0.5/db",
            "postgres://u@localhost/db?host=/var/run/postgresql",
        ] {
            assert!(mode(url).is_none(), "{url}");
        }
    }

    #[tokio::test]
    async fn a_timed_commit_says_how_long_it_waited_behind_another_writer_and_held_the_gate() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::new(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("gate.db").display()
        ));
        let db = connect(&url).await.unwrap();
        let first = begin_write(&db).await.unwrap();
        let second = {
            let db = db.clone();
            tokio::spawn(async move {
                let txn = begin_write(&db).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                txn.commit_timed().await.unwrap()
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let first_time = first.commit_timed().await.unwrap();
        let second_time = second.await.unwrap();
        assert!(
            first_time.held >= std::time::Duration::from_millis(100),
            "{first_time:?}"
        );
        // The second waited at the gate while the first held it, then held it itself.
        assert!(
            second_time.waited >= std::time::Duration::from_millis(90),
            "{second_time:?}"
        );
        assert!(
            second_time.held >= std::time::Duration::from_millis(30),
            "{second_time:?}"
        );
        assert_eq!(
            second_time.held_us(),
            u64::try_from(second_time.held.as_micros()).unwrap()
        );
    }

    /// A pool of one SQLite connection whose update hook records the name of the thread each
    /// row change ran on, with the names so far.
    async fn one_connection_naming_threads(
        dir: &std::path::Path,
    ) -> (
        sea_orm::DatabaseConnection,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        let options = SqliteConnectOptions::new()
            .filename(dir.join("threads.db"))
            .create_if_missing(true)
            .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let mut conn = pool.acquire().await.unwrap();
            let mut handle = conn.lock_handle().await.unwrap();
            let seen = seen.clone();
            handle.set_update_hook(move |_| {
                let name = std::thread::current().name().unwrap_or("?").to_owned();
                seen.lock().unwrap().push(name);
            });
        }
        let db = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
        db.execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        (db, seen)
    }

    async fn values(db: &sea_orm::DatabaseConnection) -> Vec<i64> {
        db.query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT x FROM t ORDER BY x",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<i64>(0).unwrap())
        .collect()
    }

    #[tokio::test]
    async fn the_sqlite_writer_thread_runs_its_statements_itself_and_other_threads_hand_them_to_sqlx()
     {
        let dir = tempfile::tempdir().unwrap();
        let (db, seen) = one_connection_naming_threads(dir.path()).await;
        db.execute_unprepared("INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        let writer = db.clone();
        super::spawn_writer(&db, async move {
            let txn = begin_write(&writer).await.unwrap();
            txn.execute_unprepared("INSERT INTO t VALUES (2)")
                .await
                .unwrap();
            txn.commit().await.unwrap();
        })
        .await
        .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        // From the test's runtime, the statement went to the connection's own worker thread
        // (sqlx's); from the writer's thread it ran there, with no hand-off.
        assert!(seen[0].starts_with("sqlx-sqlite-worker-"), "{seen:?}");
        assert_eq!(seen[1], "sqlite-writer", "{seen:?}");
        assert_eq!(values(&db).await, [1, 2]);
    }

    #[tokio::test]
    async fn on_the_writer_thread_a_dropped_transaction_is_rolled_back_before_the_next_one_begins()
    {
        let dir = tempfile::tempdir().unwrap();
        let (db, seen) = one_connection_naming_threads(dir.path()).await;
        let writer = db.clone();
        super::spawn_writer(&db, async move {
            for round in 0..50 {
                // Dropped without a commit: its ROLLBACK goes to the worker without being
                // waited for, and the next BEGIN, on the same connection, must come after it.
                let dropped = begin_write(&writer).await.unwrap();
                dropped
                    .execute_unprepared("INSERT INTO t VALUES (-1)")
                    .await
                    .unwrap();
                drop(dropped);
                let kept = begin_write(&writer).await.unwrap();
                kept.execute_unprepared(&format!("INSERT INTO t VALUES ({round})"))
                    .await
                    .unwrap();
                kept.commit().await.unwrap();
            }
        })
        .await
        .unwrap();
        assert_eq!(values(&db).await, (0..50).collect::<Vec<i64>>());
        // The hook sees a change when it is made, rolled back or not. Those made while the
        // worker still had the ROLLBACK to run went to the worker, in order behind it.
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 100, "{seen:?}");
        assert!(seen.iter().any(|name| name == "sqlite-writer"), "{seen:?}");
    }
}
