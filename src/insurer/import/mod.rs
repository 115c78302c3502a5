//! `insurebot import policies|claims|premiums FILE.csv`: the insurer's exports into the
//! embedded tables.
//!
//! - Every row is validated; an error names its line, column and reason.
//! - All or nothing by default: one transaction, rolled back when any row is invalid.
//!   With `skip_invalid`, valid rows are imported and the report lists what was skipped.
//! - Upserts on natural keys (customer id, policy number, claim number, policy + due date), so
//!   importing the same file again updates rows instead of duplicating them.
//! - Rows are written in batches so that a million-row export imports in well under a minute
//!   (see [`Writer`]): on SQLite a multi-row `INSERT … ON CONFLICT DO UPDATE`; on PostgreSQL one
//!   JSON parameter per batch of 10,000 rows (`INSERT … SELECT … FROM json_to_recordset($1)`),
//!   which avoids the 65,535-parameter limit and the per-value bind and planning cost that made
//!   the multi-row form take 77 s for a million rows there.
//!
//! Policy rows carry their holder (customer id, name, date of birth); claims and premiums
//! refer to policies imported before them.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};
use serde::Serialize;

use crate::phone::PhoneNumber;
use crate::store::entities::{claim, policy, policyholder, premium};
use crate::store::{begin_write, now_ms};

use super::model;
use crate::engine::vocabulary;

mod rows;
mod writer;

use rows::{Cells, ChildRow, ClaimRow, HolderRow, PolicyRow, PremiumRow};
use writer::{CLAIMS, HOLDERS, POLICIES, PREMIUMS, Upsert, Writer, postgres_upsert};

/// Row errors kept for the report; further ones are only counted.
const MAX_REPORTED_ERRORS: usize = 1000;

/// Which export a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportKind {
    Policies,
    Claims,
    Premiums,
}

impl ImportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Policies => "policies",
            ImportKind::Claims => "claims",
            ImportKind::Premiums => "premiums",
        }
    }

    /// Required columns, then optional ones.
    fn columns(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            ImportKind::Policies => (
                &[
                    "policy_number",
                    "customer_id",
                    "holder_name",
                    "dob",
                    "mobile",
                    "product",
                    "plan",
                    "status",
                    "sum_assured",
                    "start_date",
                ],
                &["end_date", "document_url", "number"],
            ),
            ImportKind::Claims => (
                &[
                    "claim_number",
                    "policy_number",
                    "stage",
                    "pending_documents",
                    "filed_date",
                    "updated_date",
                ],
                &["claim_amount"],
            ),
            ImportKind::Premiums => (
                &["policy_number", "due_date", "amount", "status"],
                &["paid_date"],
            ),
        }
    }
}

/// One invalid row (or cell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    /// The column's header name, when the problem is one cell.
    pub column: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(column) => write!(f, "line {}, column {column}: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub kind: ImportKind,
    /// Data rows in the file.
    pub rows: u64,
    /// Rows written (created + updated).
    pub imported: u64,
    pub created: u64,
    pub updated: u64,
    /// Rows left out (only with `skip_invalid`), first [`MAX_REPORTED_ERRORS`] errors.
    pub skipped: Vec<RowError>,
    /// How many rows were skipped in all.
    pub skipped_rows: u64,
    /// Header columns this kind does not know (ignored).
    pub ignored_columns: Vec<String>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} rows read, {} imported ({} new, {} updated), {} skipped",
            self.kind.as_str(),
            self.rows,
            self.imported,
            self.created,
            self.updated,
            self.skipped_rows
        )?;
        if !self.ignored_columns.is_empty() {
            write!(f, "; ignored columns: {}", self.ignored_columns.join(", "))?;
        }
        for e in &self.skipped {
            write!(f, "\n  skipped {e}")?;
        }
        Ok(())
    }
}

/// Why nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: not valid CSV: {reason}")]
    Csv { line: u64, reason: String },
    #[error("line 1: missing column(s) {}; a {} file needs {}", missing.join(", "), kind.as_str(), expected.join(", "))]
    Header {
        kind: ImportKind,
        missing: Vec<String>,
        expected: Vec<String>,
    },
    #[error(
        "{} invalid row(s); nothing was imported (use --skip-invalid to import the valid rows){}",
        total,
        list(errors)
    )]
    Invalid { errors: Vec<RowError>, total: u64 },
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

fn list(errors: &[RowError]) -> String {
    errors.iter().map(|e| format!("\n  {e}")).collect()
}

/// Imports `path` as `kind` into the embedded tables (see the module doc), for a deployment
/// whose business numbers are not given: a policy naming a `number` is refused.
///
/// # Errors
/// As [`import_numbered`].
pub async fn import(
    db: &DatabaseConnection,
    kind: ImportKind,
    path: &Path,
    skip_invalid: bool,
) -> Result<ImportReport, ImportError> {
    import_numbered(db, kind, path, skip_invalid, &[]).await
}

/// Imports `path` as `kind` into the embedded tables (see the module doc). A policy's optional
/// `number` (the business number it belongs to, a phone number id) must be one of `numbers`,
/// the deployment's.
///
/// # Errors
/// [`ImportError`]: unreadable file, malformed CSV, missing columns, invalid rows (unless
/// `skip_invalid`), or a database error. Nothing is written in any of these cases.
pub async fn import_numbered(
    db: &DatabaseConnection,
    kind: ImportKind,
    path: &Path,
    skip_invalid: bool,
    numbers: &[String],
) -> Result<ImportReport, ImportError> {
    let io = |source| ImportError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(size);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("importing {}", kind.as_str()));
        bar
    });
    let result = import_reader(
        db,
        kind,
        std::io::BufReader::with_capacity(1 << 16, file),
        skip_invalid,
        Options {
            progress: progress.clone(),
            numbers: numbers.to_vec(),
            ..Options::default()
        },
    )
    .await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    result
}

/// Knobs of one import beyond the file itself.
#[derive(Default)]
pub(crate) struct Options {
    pub progress: Option<indicatif::ProgressBar>,
    /// Days added to every date but dates of birth (the sample data moves with the calendar).
    pub shift_days: i64,
    /// The deployment's business numbers (phone number ids): what a policy's `number` may be.
    pub numbers: Vec<String>,
}

/// [`import`] from any reader.
pub(crate) async fn import_reader<R: Read>(
    db: &DatabaseConnection,
    kind: ImportKind,
    reader: R,
    skip_invalid: bool,
    options: Options,
) -> Result<ImportReport, ImportError> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        // Short and long rows become row errors with a line number, not a file error.
        .flexible(true)
        .from_reader(reader);
    let header = csv
        .headers()
        .map_err(|e| csv_error(&e))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_lowercase())
        .collect::<Vec<_>>();
    let (required, optional) = kind.columns();
    let missing: Vec<String> = required
        .iter()
        .filter(|c| !header.iter().any(|h| h == *c))
        .map(|c| (*c).to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::Header {
            kind,
            missing,
            expected: required.iter().map(|c| (*c).to_owned()).collect(),
        });
    }
    let ignored_columns = header
        .iter()
        .filter(|h| !required.contains(&h.as_str()) && !optional.contains(&h.as_str()))
        .cloned()
        .collect();

    let txn = begin_write(db).await?;
    let writer = Writer::for_backend(txn.get_database_backend());
    // PostgreSQL reports per row whether it was inserted or updated; SQLite cannot, so there
    // the table is counted before and after (cheap: SQLite counts from its smallest index).
    let before = match writer {
        Writer::Sqlite => count(&txn, kind).await?,
        Writer::Postgres => 0,
    };
    let mut state = Importer {
        kind,
        header,
        skip_invalid,
        shift: chrono::Duration::days(options.shift_days),
        numbers: options.numbers,
        now_ms: now_ms(),
        writer,
        errors: Vec::new(),
        error_total: 0,
        rows: 0,
        written: 0,
        created: 0,
        seen: HashMap::new(),
        holder_dobs: HashMap::new(),
        policies: Vec::new(),
        claims: Vec::new(),
        premiums: Vec::new(),
    };
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(&e)),
        }
        let line = record.position().map_or(0, csv::Position::line);
        if record.iter().all(str::is_empty) {
            continue; // blank lines at the end of hand-edited files
        }
        state.rows += 1;
        state.row(&record, line);
        if state.pending() >= writer.batch() {
            state.flush(&txn).await?;
        }
        if let (Some(bar), Some(pos)) = (&options.progress, record.position())
            && state.rows.is_multiple_of(4096)
        {
            bar.set_position(pos.byte());
        }
    }
    state.flush(&txn).await?;
    let created = match writer {
        Writer::Sqlite => count(&txn, kind).await?.saturating_sub(before),
        Writer::Postgres => state.created,
    };
    state.errors.sort_by_key(|e| e.line);
    if state.error_total > 0 && !skip_invalid {
        txn.rollback().await?;
        return Err(ImportError::Invalid {
            errors: state.errors,
            total: state.error_total,
        });
    }
    txn.commit().await?;
    let skipped_rows = state.error_total;
    Ok(ImportReport {
        kind,
        rows: state.rows,
        imported: state.written,
        created,
        updated: state.written.saturating_sub(created),
        skipped: state.errors,
        skipped_rows,
        ignored_columns,
    })
}

fn csv_error(e: &csv::Error) -> ImportError {
    ImportError::Csv {
        line: e.position().map_or(0, csv::Position::line),
        reason: match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "not UTF-8 text (save the export as UTF-8)".into(),
            csv::ErrorKind::Io(err) => err.to_string(),
            _ => e.to_string(),
        },
    }
}

async fn count(txn: &DatabaseTransaction, kind: ImportKind) -> Result<u64, DbErr> {
    match kind {
        ImportKind::Policies => policy::Entity::find().count(txn).await,
        ImportKind::Claims => claim::Entity::find().count(txn).await,
        ImportKind::Premiums => premium::Entity::find().count(txn).await,
    }
}

/// The state of one import: counts, errors, rows waiting for the next batch.
struct Importer {
    kind: ImportKind,
    header: Vec<String>,
    skip_invalid: bool,
    shift: chrono::Duration,
    now_ms: i64,
    writer: Writer,
    errors: Vec<RowError>,
    error_total: u64,
    rows: u64,
    written: u64,
    /// Rows inserted rather than updated, as PostgreSQL reports them (unused on SQLite).
    created: u64,
    /// Natural key → first line, to report duplicates within the file.
    seen: HashMap<String, u64>,
    /// Customer id → (date of birth, line): one holder must have one date of birth.
    holder_dobs: HashMap<String, (NaiveDate, u64)>,
    policies: Vec<PolicyRow>,
    /// The deployment's business numbers: what a policy's `number` may be.
    numbers: Vec<String>,
    claims: Vec<ClaimRow>,
    premiums: Vec<PremiumRow>,
}

impl Importer {
    fn pending(&self) -> usize {
        self.policies.len() + self.claims.len() + self.premiums.len()
    }

    fn reject(&mut self, mut errors: Vec<RowError>) {
        self.error_total += 1;
        let room = MAX_REPORTED_ERRORS.saturating_sub(self.errors.len());
        errors.truncate(room);
        self.errors.extend(errors);
    }

    /// Whether batches are still written: not once the import will be rolled back anyway
    /// (rows are still collected then, so that references can be checked and reported).
    fn keep_rows(&self) -> bool {
        self.skip_invalid || self.error_total == 0
    }

    /// Reports a natural key seen before in this file; records it otherwise.
    fn duplicate(&mut self, key: String, column: &str, line: u64, cells: &mut Cells<'_>) {
        match self.seen.get(&key) {
            Some(first) => cells.fail(column, format!("duplicate of line {first}")),
            None => {
                self.seen.insert(key, line);
            }
        }
    }

    fn row(&mut self, record: &csv::StringRecord, line: u64) {
        let header = std::mem::take(&mut self.header);
        let mut cells = Cells {
            header: &header,
            record,
            line,
            errors: Vec::new(),
        };
        if record.len() != header.len() {
            cells.errors.push(RowError {
                line,
                column: None,
                reason: format!(
                    "has {} fields but the header has {}",
                    record.len(),
                    header.len()
                ),
            });
        } else if let Some(i) = record.iter().position(|cell| cell.contains('\0')) {
            // PostgreSQL cannot store NUL in text; say where it is instead of failing the
            // whole import with a database error.
            cells.errors.push(RowError {
                line,
                column: header.get(i).cloned(),
                reason: "contains a NUL character".into(),
            });
        } else {
            match self.kind {
                ImportKind::Policies => self.policy_row(&mut cells),
                ImportKind::Claims => self.claim_row(&mut cells),
                ImportKind::Premiums => self.premium_row(&mut cells),
            }
        }
        let errors = std::mem::take(&mut cells.errors);
        drop(cells);
        self.header = header;
        if !errors.is_empty() {
            self.reject(errors);
            // A row accepted above must not be written when a later check failed.
            self.drop_row(line);
        }
    }

    /// Only the row just read can be waiting under `line` (rows are pushed last): O(1), so a
    /// file full of invalid rows does not scan the batch once per row.
    fn drop_row(&mut self, line: u64) {
        if self.policies.last().is_some_and(|r| r.line == line) {
            self.policies.pop();
        }
        if self.claims.last().is_some_and(|r| r.line == line) {
            self.claims.pop();
        }
        if self.premiums.last().is_some_and(|r| r.line == line) {
            self.premiums.pop();
        }
    }

    fn policy_row(&mut self, c: &mut Cells<'_>) {
        let shift = self.shift;
        let number = c.raw("policy_number").to_owned();
        let policy_number = model::normalize_policy_number(&number);
        if policy_number.is_none() {
            c.fail(
                "policy_number",
                format!("'{number}' is not a policy number (4-30 letters, digits, / or -)"),
            );
        }
        let customer_id = c.text("customer_id", 64);
        let holder_name = c.text("holder_name", 200);
        let dob = c.date("dob", chrono::Duration::zero());
        let raw_mobile = c.raw("mobile").to_owned();
        let mobile = if raw_mobile.is_empty() {
            None
        } else {
            let m = PhoneNumber::from_export(&raw_mobile)
                .ok()
                .map(PhoneNumber::into_string);
            if m.is_none() {
                c.fail(
                    "mobile",
                    "is not a mobile number (10 digits, or + and the country code)",
                );
            }
            m
        };
        let product = c.one_of("product", vocabulary::PRODUCTS);
        let plan = c.text("plan", 200);
        let status = c.one_of("status", vocabulary::POLICY_STATUSES);
        let sum_assured = c.amount("sum_assured");
        let start = c.date("start_date", shift);
        let end = c.optional_date("end_date", shift);
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            c.fail("end_date", "is before start_date");
        }
        if let Some(d) = dob
            && d >= chrono::Utc::now().date_naive()
        {
            c.fail("dob", "is not in the past");
        }
        let number = c.optional("number");
        if let Some(n) = &number
            && !self.numbers.contains(n)
        {
            c.fail(
                "number",
                if self.numbers.is_empty() {
                    format!("'{n}' is not one of this deployment's business numbers (none given to the import)")
                } else {
                    format!(
                        "'{n}' is not one of this deployment's business numbers ({})",
                        self.numbers.join(", ")
                    )
                },
            );
        }
        let document_url = c.optional("document_url");
        if let Some(url) = &document_url
            && !url.starts_with("https://")
        {
            c.fail("document_url", "must be an https:// link");
        }
        if let (Some(d), false) = (dob, customer_id.is_empty()) {
            match self.holder_dobs.get(&customer_id) {
                Some((first, first_line)) if *first != d => c.fail(
                    "dob",
                    format!("differs from line {first_line} for the same customer_id"),
                ),
                Some(_) => {}
                None => {
                    self.holder_dobs.insert(customer_id.clone(), (d, c.line));
                }
            }
        }
        if let Some(n) = &policy_number {
            self.duplicate(n.clone(), "policy_number", c.line, c);
        }
        let (Some(policy_number), Some(dob), Some(sum_assured), Some(start)) =
            (policy_number, dob, sum_assured, start)
        else {
            return;
        };
        if !c.errors.is_empty() {
            return;
        }
        self.policies.push(PolicyRow {
            line: c.line,
            holder_name,
            dob: dob.to_string(),
            policy_number,
            customer_id,
            mobile,
            product,
            plan,
            status,
            sum_assured,
            start_date: start.to_string(),
            end_date: end.map(|d| d.to_string()),
            document_url,
            number,
        });
    }

    fn claim_row(&mut self, c: &mut Cells<'_>) {
        let shift = self.shift;
        let raw = c.raw("claim_number").to_owned();
        let claim_number = model::normalize_claim_number(&raw);
        if claim_number.is_none() {
            c.fail("claim_number", format!("'{raw}' is not like CLM-123456"));
        }
        let policy_number = self.policy_ref(c);
        let stage = c.one_of("stage", vocabulary::CLAIM_STAGES);
        let raw_pending = c.raw("pending_documents").to_owned();
        let pending = raw_pending.parse::<u16>().ok();
        if pending.is_none() {
            c.fail(
                "pending_documents",
                format!("'{raw_pending}' is not a whole number from 0"),
            );
        }
        let amount = if c.raw("claim_amount").is_empty() {
            None
        } else {
            c.amount("claim_amount")
        };
        let filed = c.date("filed_date", shift);
        let updated = c.date("updated_date", shift);
        if let (Some(f), Some(u)) = (filed, updated)
            && u < f
        {
            c.fail("updated_date", "is before filed_date");
        }
        if let Some(n) = &claim_number {
            self.duplicate(n.clone(), "claim_number", c.line, c);
        }
        let (Some(claim_number), Some(policy_number), Some(pending), Some(filed), Some(updated)) =
            (claim_number, policy_number, pending, filed, updated)
        else {
            return;
        };
        if !c.errors.is_empty() {
            return;
        }
        self.claims.push(ClaimRow {
            line: c.line,
            claim_number,
            policy_number,
            stage,
            pending_documents: i32::from(pending),
            claim_amount: amount,
            filed_date: filed.to_string(),
            updated_date: updated.to_string(),
        });
    }

    fn premium_row(&mut self, c: &mut Cells<'_>) {
        let shift = self.shift;
        let policy_number = self.policy_ref(c);
        let due = c.date("due_date", shift);
        let amount = c.amount("amount");
        let status = c.one_of("status", vocabulary::PREMIUM_STATUSES);
        let paid = c.optional_date("paid_date", shift);
        if status == "paid" && paid.is_none() && c.raw("paid_date").is_empty() {
            c.fail("paid_date", "is required when status is paid");
        }
        if let (Some(n), Some(d)) = (&policy_number, due) {
            self.duplicate(format!("{n}|{d}"), "due_date", c.line, c);
        }
        let (Some(policy_number), Some(due), Some(amount)) = (policy_number, due, amount) else {
            return;
        };
        if !c.errors.is_empty() {
            return;
        }
        self.premiums.push(PremiumRow {
            line: c.line,
            policy_number,
            due_date: due.to_string(),
            amount,
            status,
            paid_date: paid.map(|d| d.to_string()),
        });
    }

    fn policy_ref(&self, c: &mut Cells<'_>) -> Option<String> {
        let raw = c.raw("policy_number").to_owned();
        let n = model::normalize_policy_number(&raw);
        if n.is_none() {
            c.fail(
                "policy_number",
                format!("'{raw}' is not a policy number (4-30 letters, digits, / or -)"),
            );
        }
        n
    }

    /// Writes the waiting rows; claims and premiums whose policy does not exist become errors.
    async fn flush(&mut self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        match self.kind {
            ImportKind::Policies => self.flush_policies(txn).await,
            ImportKind::Claims => {
                let mut rows = std::mem::take(&mut self.claims);
                self.check_policies_exist(txn, &mut rows).await?;
                if rows.is_empty() || !self.keep_rows() {
                    return Ok(());
                }
                let now = self.now_ms;
                let models = |rows: Vec<ClaimRow>| {
                    rows.into_iter().map(move |r| claim::ActiveModel {
                        id: NotSet,
                        claim_number: Set(r.claim_number),
                        policy_number: Set(r.policy_number),
                        stage: Set(r.stage),
                        pending_documents: Set(r.pending_documents),
                        claim_amount: Set(r.claim_amount),
                        filed_date: Set(r.filed_date),
                        updated_date: Set(r.updated_date),
                        // What the chat records of a claim it filed; an import leaves it.
                        loss_type: NotSet,
                        loss_date: NotSet,
                        description: NotSet,
                        intimated_by_contact_id: NotSet,
                        created_at: Set(now),
                        updated_at: Set(now),
                    })
                };
                self.write(txn, &CLAIMS, rows, |rows| {
                    claim::Entity::insert_many(models(rows))
                        .on_conflict(CLAIMS.on_conflict())
                        .exec_without_returning(txn)
                })
                .await
            }
            ImportKind::Premiums => {
                let mut rows = std::mem::take(&mut self.premiums);
                self.check_policies_exist(txn, &mut rows).await?;
                if rows.is_empty() || !self.keep_rows() {
                    return Ok(());
                }
                let now = self.now_ms;
                let models = |rows: Vec<PremiumRow>| {
                    rows.into_iter().map(move |r| premium::ActiveModel {
                        id: NotSet,
                        policy_number: Set(r.policy_number),
                        due_date: Set(r.due_date),
                        amount: Set(r.amount),
                        status: Set(r.status),
                        paid_date: Set(r.paid_date),
                        created_at: Set(now),
                        updated_at: Set(now),
                    })
                };
                self.write(txn, &PREMIUMS, rows, |rows| {
                    premium::Entity::insert_many(models(rows))
                        .on_conflict(PREMIUMS.on_conflict())
                        .exec_without_returning(txn)
                })
                .await
            }
        }
    }

    /// Writes one batch of `spec`'s rows: as JSON on PostgreSQL, through `sqlite_insert`
    /// (the entity's multi-row insert) on SQLite; counts what was written and created.
    async fn write<T, F>(
        &mut self,
        txn: &DatabaseTransaction,
        spec: &Upsert,
        rows: Vec<T>,
        sqlite_insert: impl FnOnce(Vec<T>) -> F,
    ) -> Result<(), DbErr>
    where
        T: Serialize,
        F: std::future::Future<Output = Result<u64, DbErr>>,
    {
        match self.writer {
            Writer::Postgres => {
                let (created, written) = postgres_upsert(txn, spec, &rows, self.now_ms).await?;
                self.created += created;
                self.written += written;
            }
            Writer::Sqlite => {
                self.written += rows.len() as u64;
                sqlite_insert(rows).await?;
            }
        }
        Ok(())
    }

    async fn flush_policies(&mut self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        let rows = std::mem::take(&mut self.policies);
        if rows.is_empty() || !self.keep_rows() {
            return Ok(());
        }
        // One holder may own many policies in a batch; PostgreSQL refuses to upsert the same
        // key twice in one statement, so keep one row per customer id (the last one, as a
        // row-by-row import would leave it).
        let mut holders: HashMap<&str, HolderRow<'_>> = HashMap::new();
        for r in &rows {
            holders.insert(
                &r.customer_id,
                HolderRow {
                    customer_id: &r.customer_id,
                    name: &r.holder_name,
                    dob: &r.dob,
                },
            );
        }
        let holders: Vec<HolderRow<'_>> = holders.into_values().collect();
        let now = self.now_ms;
        match self.writer {
            Writer::Postgres => {
                postgres_upsert(txn, &HOLDERS, &holders, now).await?;
            }
            Writer::Sqlite => {
                let models = holders.iter().map(|h| policyholder::ActiveModel {
                    id: NotSet,
                    customer_id: Set(h.customer_id.to_owned()),
                    name: Set(h.name.to_owned()),
                    dob: Set(h.dob.to_owned()),
                    created_at: Set(now),
                    updated_at: Set(now),
                });
                policyholder::Entity::insert_many(models)
                    .on_conflict(HOLDERS.on_conflict())
                    .exec_without_returning(txn)
                    .await?;
            }
        }
        drop(holders);
        let models = |rows: Vec<PolicyRow>| {
            rows.into_iter().map(move |r| policy::ActiveModel {
                id: NotSet,
                policy_number: Set(r.policy_number),
                customer_id: Set(r.customer_id),
                mobile: Set(r.mobile),
                product: Set(r.product),
                plan: Set(r.plan),
                status: Set(r.status),
                sum_assured: Set(r.sum_assured),
                start_date: Set(r.start_date),
                end_date: Set(r.end_date),
                document_url: Set(r.document_url),
                number: Set(r.number),
                created_at: Set(now),
                updated_at: Set(now),
            })
        };
        self.write(txn, &POLICIES, rows, |rows| {
            policy::Entity::insert_many(models(rows))
                .on_conflict(POLICIES.on_conflict())
                .exec_without_returning(txn)
        })
        .await
    }

    async fn check_policies_exist<T: ChildRow>(
        &mut self,
        txn: &DatabaseTransaction,
        rows: &mut Vec<T>,
    ) -> Result<(), DbErr> {
        if rows.is_empty() {
            return Ok(());
        }
        let wanted: HashSet<&str> = rows.iter().map(ChildRow::policy_number).collect();
        let found: HashSet<String> = policy::Entity::find()
            .select_only()
            .column(policy::Column::PolicyNumber)
            .filter(policy::Column::PolicyNumber.is_in(wanted))
            .into_tuple::<String>()
            .all(txn)
            .await?
            .into_iter()
            .collect();
        let mut missing = Vec::new();
        rows.retain(|r| {
            let ok = found.contains(r.policy_number());
            if !ok {
                missing.push(r.line());
            }
            ok
        });
        for line in missing {
            self.reject(vec![RowError {
                line,
                column: Some("policy_number".into()),
                reason: "no policy with this number (import policies first)".into(),
            }]);
        }
        Ok(())
    }
}

/// The sample data set's own "today": its dates move by (today - anchor) when loaded, so
/// "due soon" stays due soon whenever the sandbox starts.
const SAMPLE_ANCHOR: (i32, u32, u32) = (2026, 11, 26);

/// Loads the sample policies, claims and premiums (`src/insurer/sample/`) when the embedded
/// tables hold no policy; true when it loaded them. The sandbox calls this at start.
///
/// # Errors
/// Database errors (the shipped files themselves are tested to be valid).
pub async fn load_sample_if_empty(db: &DatabaseConnection) -> Result<bool, ImportError> {
    load_sample_as_of(db, chrono::Utc::now().date_naive()).await
}

/// [`load_sample_if_empty`] as if today were `today`: every sample date moves by
/// `today - SAMPLE_ANCHOR` days, so statuses, due dates and claims agree with `today`.
async fn load_sample_as_of(db: &DatabaseConnection, today: NaiveDate) -> Result<bool, ImportError> {
    if policy::Entity::find().count(db).await? > 0 {
        return Ok(false);
    }
    let (y, m, d) = SAMPLE_ANCHOR;
    let anchor = NaiveDate::from_ymd_opt(y, m, d).expect("valid anchor date");
    let shift_days = (today - anchor).num_days();
    for (kind, text) in [
        (ImportKind::Policies, super::sample::POLICIES),
        (ImportKind::Claims, super::sample::CLAIMS),
        (ImportKind::Premiums, super::sample::PREMIUMS),
    ] {
        import_reader(
            db,
            kind,
            text.as_bytes(),
            false,
            Options {
                progress: None,
                shift_days,
                numbers: Vec::new(),
            },
        )
        .await?;
    }
    tracing::info!("sandbox: loaded the sample policies, claims and premiums");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseUrl;

    const HEADER: &str = "policy_number,customer_id,holder_name,dob,mobile,product,plan,status,sum_assured,start_date,end_date\n";

    async fn db() -> (tempfile::TempDir, DatabaseConnection) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = crate::store::connect(&DatabaseUrl::new(url)).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        (dir, db)
    }

    async fn run(
        db: &DatabaseConnection,
        kind: ImportKind,
        text: &str,
        skip: bool,
    ) -> Result<ImportReport, ImportError> {
        import_reader(db, kind, text.as_bytes(), skip, Options::default()).await
    }

    fn invalid(result: Result<ImportReport, ImportError>) -> Vec<String> {
        match result {
            Err(ImportError::Invalid { errors, .. }) => {
                errors.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected invalid rows, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn one_bad_row_imports_nothing_and_names_line_and_column() {
        let (_dir, db) = db().await;
        let text = format!(
            "{HEADER}P-1001,C1,Asha Rao,1980-01-15,9812300001,health,Arogya,active,500000,2024-01-01,\n\
             P-1002,C2,Ravi Iyer,31/02/1975,9812300002,motor,Car,active,3,00,000,2024-01-01,\n\
             P-1003,C3,Meena Das,1990-05-05,98123,life,Term,sleeping,100,2024-01-01,2023-01-01\n"
        );
        let errors = invalid(run(&db, ImportKind::Policies, &text, false).await);
        assert_eq!(
            errors,
            vec![
                "line 3: has 13 fields but the header has 11",
                "line 4, column mobile: is not a mobile number (10 digits, or + and the country code)",
                "line 4, column status: 'sleeping' is not one of active, grace, lapsed, matured, expired, cancelled, surrendered",
                "line 4, column end_date: is before start_date",
            ]
        );
        assert_eq!(policy::Entity::find().count(&db).await.unwrap(), 0);
        assert_eq!(policyholder::Entity::find().count(&db).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn skip_invalid_imports_the_good_rows_and_reports_the_rest() {
        let (_dir, db) = db().await;
        let text = format!(
            "{HEADER}P-1001,C1,Asha Rao,1980-01-15,9812300001,health,Arogya,active,500000,2024-01-01,\n\
             P-1002,C2,Ravi Iyer,31/02/1975,9812300002,motor,Car,active,300000,2024-01-01,\n\
             P-1003,C3,Meena Das,15/08/1990,+91 98123 00003,Life,Term,Active,\"1,00,000.50\",01/04/2024,\n"
        );
        let report = run(&db, ImportKind::Policies, &text, true).await.unwrap();
        assert_eq!((report.rows, report.imported, report.created), (3, 2, 2));
        assert_eq!(report.skipped_rows, 1);
        assert_eq!(
            report.skipped[0].to_string(),
            "line 3, column dob: '31/02/1975' is not a date (use YYYY-MM-DD or DD/MM/YYYY)"
        );
        let p = policy::Entity::find()
            .filter(policy::Column::PolicyNumber.eq("P-1003"))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.mobile.as_deref(), Some("919812300003"));
        assert_eq!(p.sum_assured, 10_000_050);
        assert_eq!((p.product.as_str(), p.status.as_str()), ("life", "active"));
        assert_eq!(p.start_date, "2024-04-01");
    }

    #[tokio::test]
    async fn reimporting_updates_instead_of_duplicating() {
        let (_dir, db) = db().await;
        let first = format!(
            "{HEADER}P-1001,C1,Asha Rao,1980-01-15,9812300001,health,Arogya,active,500000,2024-01-01,\n"
        );
        run(&db, ImportKind::Policies, &first, false).await.unwrap();
        let second = format!(
            "{HEADER}P-1001,C1,Asha R. Rao,1980-01-15,9812300009,health,Arogya Plus,lapsed,700000,2024-01-01,\n\
             P-1002,C1,Asha R. Rao,1980-01-15,9812300009,motor,Car,active,300000,2024-01-01,\n"
        );
        let report = run(&db, ImportKind::Policies, &second, false)
            .await
            .unwrap();
        assert_eq!((report.imported, report.created, report.updated), (2, 1, 1));
        assert_eq!(policy::Entity::find().count(&db).await.unwrap(), 2);
        assert_eq!(policyholder::Entity::find().count(&db).await.unwrap(), 1);
        let p = policy::Entity::find()
            .filter(policy::Column::PolicyNumber.eq("P-1001"))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.plan.as_str(), p.status.as_str()),
            ("Arogya Plus", "lapsed")
        );
        assert_eq!(p.mobile.as_deref(), Some("919812300009"));
    }

    #[tokio::test]
    async fn duplicates_and_conflicting_holders_within_a_file_are_errors() {
        let (_dir, db) = db().await;
        let text = format!(
            "{HEADER}P-1001,C1,Asha Rao,1980-01-15,9812300001,health,Arogya,active,500000,2024-01-01,\n\
             p-1001,C1,Asha Rao,1980-01-15,9812300001,health,Arogya,active,500000,2024-01-01,\n\
             P-1002,C1,Asha Rao,1981-01-15,9812300001,motor,Car,active,500000,2024-01-01,\n"
        );
        let errors = invalid(run(&db, ImportKind::Policies, &text, false).await);
        assert_eq!(
            errors,
            vec![
                "line 3, column policy_number: duplicate of line 2",
                "line 4, column dob: differs from line 2 for the same customer_id",
            ]
        );
    }

    #[tokio::test]
    async fn claims_and_premiums_must_refer_to_imported_policies() {
        let (_dir, db) = db().await;
        let policies = format!(
            "{HEADER}P-1001,C1,Asha Rao,1980-01-15,9812300001,health,Arogya,active,500000,2024-01-01,\n"
        );
        run(&db, ImportKind::Policies, &policies, false)
            .await
            .unwrap();
        let claims = "claim_number,policy_number,stage,pending_documents,filed_date,updated_date\n\
                      CLM-000001,P-1001,Under Review,1,2026-01-02,2026-01-05\n\
                      CLM-000002,P-9999,approved,0,2026-01-02,2026-01-05\n\
                      CLM-3,P-1001,approved,-1,2026-01-02,2026-01-01\n";
        let errors = invalid(run(&db, ImportKind::Claims, claims, false).await);
        assert_eq!(
            errors,
            vec![
                "line 3, column policy_number: no policy with this number (import policies first)",
                "line 4, column claim_number: 'CLM-3' is not like CLM-123456",
                "line 4, column pending_documents: '-1' is not a whole number from 0",
                "line 4, column updated_date: is before filed_date",
            ]
        );
        assert_eq!(claim::Entity::find().count(&db).await.unwrap(), 0);
        let premiums = "policy_number,due_date,amount,status,paid_date\n\
                        P-1001,2026-12-05,24850,due,\n\
                        P-1001,05/12/2026,24850,due,\n";
        let errors = invalid(run(&db, ImportKind::Premiums, premiums, false).await);
        assert_eq!(errors, vec!["line 3, column due_date: duplicate of line 2"]);
    }

    #[tokio::test]
    async fn a_file_without_the_required_columns_is_refused_before_any_row() {
        let (_dir, db) = db().await;
        let err = run(
            &db,
            ImportKind::Premiums,
            "policy_number,amount\nP-1,5\n",
            false,
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: missing column(s) due_date, status; a premiums file needs policy_number, due_date, amount, status"
        );
    }

    #[tokio::test]
    async fn the_sample_data_loads_once() {
        let (_dir, db) = db().await;
        assert!(load_sample_if_empty(&db).await.unwrap());
        assert!(!load_sample_if_empty(&db).await.unwrap());
        assert_eq!(policy::Entity::find().count(&db).await.unwrap(), 7);
        assert_eq!(claim::Entity::find().count(&db).await.unwrap(), 6);
        assert_eq!(premium::Entity::find().count(&db).await.unwrap(), 11);
        let owned = policy::Entity::find()
            .filter(policy::Column::Mobile.eq("919812345678"))
            .count(&db)
            .await
            .unwrap();
        assert!(owned >= 2, "the sandbox contact owns several policies");
    }

    /// The story the sandbox tells holds on any day it starts: an active policy has begun and
    /// not ended and owes nothing overdue, every unpaid premium of an active policy falls due
    /// today or later, the policy in grace has a premium overdue by less than the grace
    /// period, payments and claims lie in the past, and the sandbox contact has a premium due
    /// in the coming weeks.
    #[tokio::test]
    async fn the_sample_data_is_consistent_with_the_day_it_is_loaded() {
        const GRACE_DAYS: i64 = 30;
        let parse = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        for today in ["2026-11-26", "2026-12-03", "2027-02-28", "2031-07-15"] {
            let today = parse(today);
            let (_dir, db) = db().await;
            assert!(load_sample_as_of(&db, today).await.unwrap());
            let policies = policy::Entity::find().all(&db).await.unwrap();
            let premiums = premium::Entity::find().all(&db).await.unwrap();
            let claims = claim::Entity::find().all(&db).await.unwrap();
            let unpaid_of = |number: &str| -> Vec<NaiveDate> {
                premiums
                    .iter()
                    .filter(|p| p.policy_number == number && p.status == "due")
                    .map(|p| parse(&p.due_date))
                    .collect()
            };
            for p in &policies {
                let start = parse(&p.start_date);
                let end = p.end_date.as_deref().map(parse);
                let number = &p.policy_number;
                assert!(start <= today, "{today}: {number} starts {start}");
                let overdue: Vec<i64> = unpaid_of(number)
                    .into_iter()
                    .filter(|due| *due < today)
                    .map(|due| (today - due).num_days())
                    .collect();
                match p.status.as_str() {
                    "active" => {
                        assert!(
                            end.is_none_or(|end| end >= today),
                            "{today}: {number} is active but ended {end:?}"
                        );
                        assert!(
                            overdue.is_empty(),
                            "{today}: active {number} has premiums overdue by {overdue:?} days"
                        );
                    }
                    "grace" => assert!(
                        !overdue.is_empty() && overdue.iter().all(|d| *d <= GRACE_DAYS),
                        "{today}: {number} in grace, overdue by {overdue:?} days"
                    ),
                    "lapsed" => assert!(
                        overdue.iter().any(|d| *d > GRACE_DAYS),
                        "{today}: {number} lapsed without a premium past the grace period"
                    ),
                    other => panic!("{today}: {number} has an unexpected sample status {other}"),
                }
            }
            for p in premiums.iter().filter(|p| p.status == "paid") {
                let paid = parse(p.paid_date.as_deref().expect("a paid premium has a date"));
                assert!(
                    paid <= today,
                    "{today}: {} paid in the future",
                    p.policy_number
                );
            }
            for c in &claims {
                let (filed, updated) = (parse(&c.filed_date), parse(&c.updated_date));
                assert!(
                    filed <= updated && updated <= today,
                    "{today}: {} filed {filed}, updated {updated}",
                    c.claim_number
                );
                let policy = policies
                    .iter()
                    .find(|p| p.policy_number == c.policy_number)
                    .expect("a claim's policy is in the sample");
                assert!(parse(&policy.start_date) <= filed, "{}", c.claim_number);
            }
            let sandbox_due_soon = policies
                .iter()
                .filter(|p| p.mobile.as_deref() == Some("919812345678"))
                .flat_map(|p| unpaid_of(&p.policy_number))
                .any(|due| due >= today && (due - today).num_days() <= 21);
            assert!(
                sandbox_due_soon,
                "{today}: nothing due soon for the sandbox contact"
            );
        }
    }
}
