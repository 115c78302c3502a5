//! The batched upsert writer of an import: per table, its natural key and columns
//! ([`Upsert`]), and how a batch reaches each database ([`Writer`]: multi-row INSERT on
//! SQLite, one `json_to_recordset` statement on PostgreSQL).

use sea_orm::sea_query::{Alias, OnConflict};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement};
use serde::Serialize;

/// Rows per SQLite INSERT: 13 columns x 1000 stays under SQLite's parameter limit.
pub(super) const SQLITE_BATCH: usize = 1000;
/// Rows per PostgreSQL statement (one JSON parameter, ~1.5 MB for policies): large enough that
/// round trips and per-statement planning stop mattering, small enough to stay out of the way
/// of the server's memory settings.
pub(super) const POSTGRES_BATCH: usize = 10_000;
/// How one table is upserted, for both writers: its natural key and every column an import
/// writes besides `created_at`/`updated_at` (key included), with its PostgreSQL type. A
/// re-import overwrites every written column but the key and `created_at`.
pub(super) struct Upsert {
    pub(super) table: &'static str,
    pub(super) key: &'static [&'static str],
    pub(super) columns: &'static [(&'static str, &'static str)],
}

pub(super) const HOLDERS: Upsert = Upsert {
    table: "policyholders",
    key: &["customer_id"],
    columns: &[("customer_id", "text"), ("name", "text"), ("dob", "text")],
};

pub(super) const POLICIES: Upsert = Upsert {
    table: "policies",
    key: &["policy_number"],
    columns: &[
        ("policy_number", "text"),
        ("customer_id", "text"),
        ("mobile", "text"),
        ("product", "text"),
        ("plan", "text"),
        ("status", "text"),
        ("sum_assured", "bigint"),
        ("start_date", "text"),
        ("end_date", "text"),
        ("document_url", "text"),
        ("number", "text"),
    ],
};

pub(super) const CLAIMS: Upsert = Upsert {
    table: "claims",
    key: &["claim_number"],
    columns: &[
        ("claim_number", "text"),
        ("policy_number", "text"),
        ("stage", "text"),
        ("pending_documents", "integer"),
        ("claim_amount", "bigint"),
        ("filed_date", "text"),
        ("updated_date", "text"),
    ],
};

pub(super) const PREMIUMS: Upsert = Upsert {
    table: "premiums",
    key: &["policy_number", "due_date"],
    columns: &[
        ("policy_number", "text"),
        ("due_date", "text"),
        ("amount", "bigint"),
        ("status", "text"),
        ("paid_date", "text"),
    ],
};

impl Upsert {
    /// The columns a re-import overwrites.
    pub(super) fn updated(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| !self.key.contains(c))
            .chain(["updated_at"])
    }

    /// SQLite: the `ON CONFLICT` clause of the multi-row insert.
    pub(super) fn on_conflict(&self) -> OnConflict {
        OnConflict::columns(self.key.iter().map(|c| Alias::new(*c)))
            .update_columns(self.updated().map(Alias::new))
            .to_owned()
    }

    /// PostgreSQL: one batch as a JSON array of row objects (`$1`) stamped with `$2` (now, ms),
    /// answering one row with how many rows were `created` and `written`. `xmax = 0` holds for
    /// a row this statement inserted and not for one it updated.
    pub(super) fn postgres_sql(&self) -> String {
        let quoted = |c: &str| format!("\"{c}\"");
        let names: Vec<String> = self.columns.iter().map(|(c, _)| quoted(c)).collect();
        let typed: Vec<String> = self
            .columns
            .iter()
            .map(|(c, t)| format!("{} {t}", quoted(c)))
            .collect();
        let key: Vec<String> = self.key.iter().map(|c| quoted(c)).collect();
        let set: Vec<String> = self
            .updated()
            .map(|c| format!("{0} = EXCLUDED.{0}", quoted(c)))
            .collect();
        format!(
            "WITH written AS (\
             INSERT INTO \"{table}\" ({names}, \"created_at\", \"updated_at\") \
             SELECT {names}, $2, $2 FROM json_to_recordset($1::json) AS r({typed}) \
             ON CONFLICT ({key}) DO UPDATE SET {set} \
             RETURNING (xmax = 0) AS created) \
             SELECT count(*) FILTER (WHERE created) AS created, count(*) AS written FROM written",
            table = self.table,
            names = names.join(", "),
            typed = typed.join(", "),
            key = key.join(", "),
            set = set.join(", "),
        )
    }
}

/// How batches reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writer {
    /// Multi-row `INSERT … VALUES … ON CONFLICT` through sea-orm, 1,000 rows at a time.
    Sqlite,
    /// One `json_to_recordset` statement per 10,000 rows (see [`Upsert::postgres_sql`]).
    /// Alternatives not taken: `UNNEST` of one array per column needs sea-orm's
    /// `postgres-array` feature, and `COPY` into a staging table needs the raw sqlx
    /// connection, which sea-orm's transaction does not hand out (the import must stay one
    /// transaction with the rest of its statements).
    Postgres,
}

impl Writer {
    pub(super) fn for_backend(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Postgres => Writer::Postgres,
            _ => Writer::Sqlite,
        }
    }

    pub(super) fn batch(self) -> usize {
        match self {
            Writer::Sqlite => SQLITE_BATCH,
            Writer::Postgres => POSTGRES_BATCH,
        }
    }
}

/// Upserts `rows` into `spec`'s table in one PostgreSQL statement: (created, written).
pub(super) async fn postgres_upsert<T: Serialize>(
    txn: &DatabaseTransaction,
    spec: &Upsert,
    rows: &[T],
    now_ms: i64,
) -> Result<(u64, u64), DbErr> {
    let json = serde_json::to_string(rows).map_err(|e| DbErr::Custom(e.to_string()))?;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            spec.postgres_sql(),
            [json.into(), now_ms.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom(format!("upsert into {} answered no row", spec.table)))?;
    let created: i64 = row.try_get("", "created")?;
    let written: i64 = row.try_get("", "written")?;
    Ok((
        u64::try_from(created).unwrap_or(0),
        u64::try_from(written).unwrap_or(0),
    ))
}
