//! Campaigns (broadcasts): a MARKETING template, per-recipient parameters, an audience (a CSV
//! of numbers with per-row parameters, or a filter over contacts), a start time and a rate.
//!
//! One `campaign_recipients` row per (campaign, contact), unique. The runner moves a row from
//! `pending` to `queued` in the same transaction as the composer's outbox row, so a crash
//! leaves either both or neither, and nobody gets a second copy after a restart or from a
//! second instance. The campaign's lease makes one instance drive it at a time, which keeps
//! its rate across instances. Whether a recipient may receive marketing at all (opt-in,
//! frequency cap) is the composer's consent gate's call: a refusal is recorded as `skipped`
//! with the composer's reason, like every other reason.
//!
//! The rate is applied when queueing (a token bucket per campaign, in real time): the sender's
//! global rate (`messaging.rate_per_second`) is higher, so rows leave about as fast as they
//! are queued and replies to policyholders still find room.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use serde::{Deserialize, Serialize};

use super::ReminderError;
use crate::config::reminders::CampaignSettings;
use crate::messaging::composer::{self, Composer, Intent, Purpose, Queued, TemplateChoice};
use crate::messaging::templates;
use crate::phone::PhoneNumber;
use crate::store::begin_write;
use crate::store::entities::campaign::State as CampaignState;
use crate::store::entities::campaign_recipient::State as RecipientState;
use crate::store::entities::outbox::{Reason, State as OutboxState};
use crate::store::entities::{campaign, campaign_recipient, contact, policy};

/// How long an instance keeps driving a campaign without renewing.
pub const LEASE_MS: i64 = 15_000;

/// Who receives a campaign.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Audience {
    /// CSV text: a `phone` column (or `number`, `mobile`, `wa_id`), optionally `language`,
    /// and one column per template parameter.
    Csv {
        csv: String,
        /// Create the campaign from the valid rows and report the others (default: refuse).
        #[serde(default)]
        skip_invalid: bool,
    },
    /// Contacts matching a filter, all with the same parameters.
    Filter {
        #[serde(default)]
        filter: ContactFilter,
        /// The template's parameters, in order.
        #[serde(default)]
        params: Vec<String>,
    },
}

/// A filter over contacts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactFilter {
    /// Only contacts whose number is registered on a policy.
    #[serde(default)]
    pub has_policy: bool,
    /// Only contacts who wrote within this many days.
    #[serde(default)]
    pub active_within_days: Option<u32>,
}

/// A campaign to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewCampaign {
    pub name: String,
    /// A MARKETING template of the registry.
    pub template: String,
    #[serde(default = "default_language")]
    pub language: String,
    /// Messages per second (default `campaigns.default_rate_per_second`).
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    /// When sending may begin (Unix ms; default: as soon as it is started).
    #[serde(default)]
    pub start_at: Option<i64>,
    pub audience: Audience,
    /// The business number its messages leave from (a configured phone number id; the API
    /// checks it). Default: each contact's, else the deployment's first.
    #[serde(default)]
    pub number: Option<String>,
}

fn default_language() -> String {
    "en".to_owned()
}

/// A CSV row that could not become a recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What [`create`] made.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub id: i64,
    pub recipients: usize,
    /// Rows left out (only with `skip_invalid`).
    pub row_errors: Vec<RowError>,
}

struct Row {
    phone: String,
    language: String,
    params: Vec<String>,
}

fn parse_csv(
    text: &str,
    params: &[String],
    default_language: &str,
) -> Result<(Vec<Row>, Vec<RowError>), ReminderError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| {
            ReminderError::Invalid(
                "audience.csv",
                format!("the CSV header cannot be read: {e}"),
            )
        })?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let Some(phone_col) = col(&["phone", "number", "mobile", "wa_id"]) else {
        return Err(ReminderError::Invalid(
            "audience.csv",
            "the CSV needs a `phone` column".into(),
        ));
    };
    let language_col = col(&["language"]);
    let mut param_cols = Vec::new();
    for p in params {
        match headers.iter().position(|h| h == p) {
            Some(i) => param_cols.push(i),
            None => {
                return Err(ReminderError::Invalid(
                    "audience.csv",
                    format!("the CSV needs a `{p}` column (a parameter of the template)"),
                ));
            }
        }
    }
    let (mut rows, mut errors, mut seen) = (Vec::new(), Vec::new(), HashMap::new());
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(RowError {
                    line,
                    message: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let get = |c: usize| record.get(c).unwrap_or("").to_owned();
        // A campaign list is an export of the insurer's data, read as the policy import reads it.
        let number = match PhoneNumber::from_export(&get(phone_col)) {
            Ok(number) => number.into_string(),
            Err(e) => {
                errors.push(RowError {
                    line,
                    message: format!("the phone number {e}"),
                });
                continue;
            }
        };
        if let Some(first) = seen.insert(number.clone(), line) {
            errors.push(RowError {
                line,
                message: format!("the same number as line {first}"),
            });
            continue;
        }
        let values: Vec<String> = param_cols.iter().map(|c| get(*c)).collect();
        if let Some((name, _)) = params.iter().zip(&values).find(|(_, v)| v.is_empty()) {
            errors.push(RowError {
                line,
                message: format!("`{name}` is empty"),
            });
            continue;
        }
        rows.push(Row {
            phone: number,
            language: language_col
                .map(get)
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| default_language.to_owned()),
            params: values,
        });
    }
    Ok((rows, errors))
}

/// A NUL character anywhere in the request is refused by field: PostgreSQL's text cannot hold
/// it (the insert, or already the template lookup, would fail there and not on SQLite).
fn refuse_nul(new: &NewCampaign) -> Result<(), ReminderError> {
    let mut texts: Vec<(&'static str, &str)> = vec![
        ("name", &new.name),
        ("template", &new.template),
        ("language", &new.language),
    ];
    match &new.audience {
        Audience::Csv { csv, .. } => texts.push(("audience.csv", csv)),
        Audience::Filter { params, .. } => {
            texts.extend(params.iter().map(|p| ("audience.params", p.as_str())));
        }
    }
    match texts.into_iter().find(|(_, text)| text.contains('\0')) {
        Some((field, _)) => Err(ReminderError::Invalid(
            field,
            "must not contain NUL characters (U+0000)".into(),
        )),
        None => Ok(()),
    }
}

/// Creates a campaign in state `draft` with its recipients. Its template must be in the
/// registry of `waba`, the WhatsApp Business Account of the number it leaves from.
///
/// # Errors
/// [`ReminderError::Invalid`] for an unknown or non-MARKETING template, a bad rate or CSV
/// header; [`ReminderError::Rows`] when rows are invalid and `skip_invalid` is off; database
/// errors.
pub async fn create(
    db: &DatabaseConnection,
    settings: &CampaignSettings,
    waba: &str,
    new: NewCampaign,
    now: DateTime<Utc>,
) -> Result<Created, ReminderError> {
    let now_ms = now.timestamp_millis();
    refuse_nul(&new)?;
    let Some(info) = templates::lookup(db, waba, &new.template, &new.language).await? else {
        return Err(ReminderError::Invalid(
            "template",
            if waba.is_empty() {
                format!(
                    "template {} ({}) is not in the registry",
                    new.template, new.language
                )
            } else {
                format!(
                    "template {} ({}) is not in the registry of WABA {waba}, the WhatsApp Business Account of the campaign's number",
                    new.template, new.language
                )
            },
        ));
    };
    if info.category != crate::engine::templates_file::Category::Marketing.as_str() {
        return Err(ReminderError::Invalid(
            "template",
            format!(
                "campaigns send MARKETING templates; {} is {}",
                new.template, info.category
            ),
        ));
    }
    let rate = new
        .rate_per_second
        .unwrap_or(settings.default_rate_per_second);
    if rate == 0 || rate > settings.max_rate_per_second {
        return Err(ReminderError::Invalid(
            "rate_per_second",
            format!(
                "rate_per_second must be between 1 and {}",
                settings.max_rate_per_second
            ),
        ));
    }
    if new.name.trim().is_empty() {
        return Err(ReminderError::Invalid(
            "name",
            "a campaign needs a name".into(),
        ));
    }
    let (rows, row_errors, kind, detail) = match &new.audience {
        Audience::Csv { csv, skip_invalid } => {
            let (rows, errors) = parse_csv(csv, &info.params, &new.language)?;
            if !errors.is_empty() && !skip_invalid {
                return Err(ReminderError::Rows(errors));
            }
            (rows, errors, "csv", format!("{} rows", rows_len(csv)))
        }
        Audience::Filter { filter, params } => {
            if params.len() != info.params.len() {
                return Err(ReminderError::Invalid(
                    "audience.params",
                    format!(
                        "template {} takes {} parameters ({}), {} were given",
                        new.template,
                        info.params.len(),
                        info.params.join(", "),
                        params.len()
                    ),
                ));
            }
            let rows = filter_contacts(db, filter, now_ms)
                .await?
                .into_iter()
                .map(|phone| Row {
                    phone,
                    language: new.language.clone(),
                    params: params.clone(),
                })
                .collect();
            (
                rows,
                Vec::new(),
                "filter",
                serde_json::to_string(filter).unwrap_or_default(),
            )
        }
    };
    let txn = begin_write(db).await?;
    let id = campaign::Entity::insert(campaign::ActiveModel {
        id: NotSet,
        name: Set(new.name.trim().to_owned()),
        template: Set(new.template.clone()),
        language: Set(new.language.clone()),
        state: Set(CampaignState::Draft),
        rate_per_second: Set(i32::try_from(rate).unwrap_or(i32::MAX)),
        start_at: Set(new.start_at.unwrap_or(now_ms)),
        audience_kind: Set(kind.to_owned()),
        audience_detail: Set(detail),
        lease_owner: Set(None),
        lease_until: Set(None),
        created_at: Set(now_ms),
        updated_at: Set(now_ms),
        started_at: Set(None),
        finished_at: Set(None),
        phone_number_id: Set(new.number.clone()),
    })
    .exec(&txn)
    .await?
    .last_insert_id;
    txn.commit().await?;
    let mut count = 0;
    for chunk in rows.chunks(500) {
        let phones: Vec<String> = chunk.iter().map(|r| r.phone.clone()).collect();
        let contacts = super::premium::contacts_for(db, &phones, now_ms).await?;
        let models: Vec<campaign_recipient::ActiveModel> = chunk
            .iter()
            .filter_map(|r| {
                let c = contacts.get(&r.phone)?;
                Some(campaign_recipient::ActiveModel {
                    id: NotSet,
                    campaign_id: Set(id),
                    contact_id: Set(c.id),
                    params: Set(serde_json::to_string(&r.params).unwrap_or_default()),
                    language: Set(r.language.clone()),
                    state: Set(RecipientState::Pending),
                    reason: Set(None),
                    outbox_id: Set(None),
                    queued_at: Set(None),
                })
            })
            .collect();
        count += models.len();
        if !models.is_empty() {
            campaign_recipient::Entity::insert_many(models)
                .on_conflict(OnConflict::new().do_nothing().to_owned())
                .exec_without_returning(db)
                .await?;
        }
    }
    tracing::info!(
        campaign_id = id,
        recipients = count,
        invalid_rows = row_errors.len(),
        "campaign created"
    );
    Ok(Created {
        id,
        recipients: count,
        row_errors,
    })
}

fn rows_len(csv: &str) -> usize {
    csv.lines().count().saturating_sub(1)
}

async fn filter_contacts(
    db: &DatabaseConnection,
    filter: &ContactFilter,
    now_ms: i64,
) -> Result<Vec<String>, DbErr> {
    let mut q = contact::Entity::find()
        .select_only()
        .column(contact::Column::WaId)
        .filter(contact::Column::WaId.is_not_null());
    if filter.has_policy {
        let mobiles: HashSet<String> = policy::Entity::find()
            .select_only()
            .column(policy::Column::Mobile)
            .filter(policy::Column::Mobile.is_not_null())
            .into_tuple::<String>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let all: Vec<Option<String>> = q.clone().into_tuple().all(db).await?;
        let mut out: Vec<String> = all
            .into_iter()
            .flatten()
            .filter(|w| mobiles.contains(w))
            .collect();
        if let Some(days) = filter.active_within_days {
            let active: HashSet<String> = active_since(db, now_ms, days).await?;
            out.retain(|w| active.contains(w));
        }
        return Ok(out);
    }
    if let Some(days) = filter.active_within_days {
        q = q.filter(contact::Column::LastInboundAt.gte(now_ms - i64::from(days) * 86_400_000));
    }
    Ok(q.order_by_asc(contact::Column::Id)
        .into_tuple::<Option<String>>()
        .all(db)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

async fn active_since(
    db: &DatabaseConnection,
    now_ms: i64,
    days: u32,
) -> Result<HashSet<String>, DbErr> {
    Ok(contact::Entity::find()
        .select_only()
        .column(contact::Column::WaId)
        .filter(contact::Column::LastInboundAt.gte(now_ms - i64::from(days) * 86_400_000))
        .into_tuple::<Option<String>>()
        .all(db)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

async fn get(db: &DatabaseConnection, id: i64) -> Result<campaign::Model, ReminderError> {
    campaign::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ReminderError::UnknownCampaign(id))
}

/// Moves campaign `id` from one of `from` to `to`; the error names the current state.
async fn transition(
    db: &DatabaseConnection,
    id: i64,
    from: &[CampaignState],
    to: CampaignState,
    action: &'static str,
    now_ms: i64,
) -> Result<(), ReminderError> {
    let mut update = campaign::Entity::update_many()
        .col_expr(campaign::Column::State, Expr::value(to))
        .col_expr(campaign::Column::UpdatedAt, Expr::value(now_ms))
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::State.is_in(from.iter().copied()));
    if to == CampaignState::Running && action == "start" {
        update = update.col_expr(campaign::Column::StartedAt, Expr::value(now_ms));
    }
    if to == CampaignState::Cancelled {
        update = update.col_expr(campaign::Column::FinishedAt, Expr::value(now_ms));
    }
    if update.exec(db).await?.rows_affected == 1 {
        tracing::info!(
            campaign_id = id,
            action,
            state = %to,
            "campaign state changed"
        );
        return Ok(());
    }
    let current = get(db, id).await?;
    Err(ReminderError::WrongState {
        id,
        state: current.state,
        action,
    })
}

/// `draft` → `running`; sending begins at the campaign's start time.
///
/// # Errors
/// Unknown campaign, wrong state, database errors.
pub async fn start(
    db: &DatabaseConnection,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), ReminderError> {
    transition(
        db,
        id,
        &[CampaignState::Draft],
        CampaignState::Running,
        "start",
        now.timestamp_millis(),
    )
    .await
}

/// `running` → `paused`: nothing more is queued (rows already in the outbox still go).
///
/// # Errors
/// Unknown campaign, wrong state, database errors.
pub async fn pause(
    db: &DatabaseConnection,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), ReminderError> {
    transition(
        db,
        id,
        &[CampaignState::Running],
        CampaignState::Paused,
        "pause",
        now.timestamp_millis(),
    )
    .await
}

/// `paused` → `running`.
///
/// # Errors
/// Unknown campaign, wrong state, database errors.
pub async fn resume(
    db: &DatabaseConnection,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), ReminderError> {
    transition(
        db,
        id,
        &[CampaignState::Paused],
        CampaignState::Running,
        "resume",
        now.timestamp_millis(),
    )
    .await
}

/// Cancels a campaign that has not ended: pending recipients become `cancelled`, and queued
/// outbox rows no sender holds yet are withdrawn (`skipped`, reason `campaign_cancelled`).
///
/// # Errors
/// Unknown campaign, wrong state, database errors.
pub async fn cancel(
    db: &DatabaseConnection,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), ReminderError> {
    let now_ms = now.timestamp_millis();
    transition(
        db,
        id,
        &[
            CampaignState::Draft,
            CampaignState::Running,
            CampaignState::Paused,
        ],
        CampaignState::Cancelled,
        "cancel",
        now_ms,
    )
    .await?;
    let txn = begin_write(db).await?;
    campaign_recipient::Entity::update_many()
        .col_expr(
            campaign_recipient::Column::State,
            Expr::value(RecipientState::Cancelled),
        )
        .filter(campaign_recipient::Column::CampaignId.eq(id))
        .filter(campaign_recipient::Column::State.eq(RecipientState::Pending))
        .exec(&txn)
        .await?;
    let queued = sea_orm::sea_query::Query::select()
        .column(campaign_recipient::Column::OutboxId)
        .from(campaign_recipient::Entity)
        .and_where(campaign_recipient::Column::CampaignId.eq(id))
        .and_where(campaign_recipient::Column::OutboxId.is_not_null())
        .to_owned();
    use crate::store::entities::outbox as row;
    use sea_orm::sea_query::ExprTrait;
    row::Entity::update_many()
        .col_expr(row::Column::State, Expr::value(OutboxState::Skipped))
        .col_expr(row::Column::Reason, Expr::value(Reason::CampaignCancelled))
        .col_expr(row::Column::UpdatedAt, Expr::value(now_ms))
        .filter(row::Column::State.eq(OutboxState::Queued))
        .filter(
            row::Column::LeaseUntil
                .is_null()
                .or(row::Column::LeaseUntil.lt(now_ms)),
        )
        .filter(Expr::col(row::Column::Id).in_subquery(queued))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// Running campaigns whose start time has come.
///
/// # Errors
/// Database errors.
pub async fn due(db: &DatabaseConnection, now_ms: i64) -> Result<Vec<campaign::Model>, DbErr> {
    campaign::Entity::find()
        .filter(campaign::Column::State.eq(CampaignState::Running))
        .filter(campaign::Column::StartAt.lte(now_ms))
        .order_by_asc(campaign::Column::Id)
        .all(db)
        .await
}

/// Takes or renews this instance's lease on a running campaign.
///
/// # Errors
/// Database errors.
pub async fn lease(
    db: &DatabaseConnection,
    id: i64,
    owner: &str,
    now_ms: i64,
) -> Result<bool, DbErr> {
    use sea_orm::sea_query::ExprTrait;
    let r = campaign::Entity::update_many()
        .col_expr(campaign::Column::LeaseOwner, Expr::value(owner))
        .col_expr(campaign::Column::LeaseUntil, Expr::value(now_ms + LEASE_MS))
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::State.eq(CampaignState::Running))
        .filter(
            campaign::Column::LeaseOwner
                .eq(owner)
                .or(campaign::Column::LeaseOwner.is_null())
                .or(campaign::Column::LeaseUntil.lt(now_ms)),
        )
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Queues up to `limit` pending recipients of campaign `c`, one transaction for the lot; marks
/// the campaign `completed` when none is left. Returns how many outbox rows were queued
/// (composer refusals are recorded but not counted: they use none of the rate).
///
/// # Errors
/// Database and composer errors (the transaction rolls back: the rows stay pending).
pub async fn queue_next(
    db: &DatabaseConnection,
    composer: &Composer,
    c: &campaign::Model,
    limit: u64,
    now_ms: i64,
) -> Result<usize, ReminderError> {
    if limit == 0 {
        return Ok(0);
    }
    let batch = campaign_recipient::Entity::find()
        .filter(campaign_recipient::Column::CampaignId.eq(c.id))
        .filter(campaign_recipient::Column::State.eq(RecipientState::Pending))
        .order_by_asc(campaign_recipient::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    if batch.is_empty() {
        campaign::Entity::update_many()
            .col_expr(
                campaign::Column::State,
                Expr::value(CampaignState::Completed),
            )
            .col_expr(campaign::Column::FinishedAt, Expr::value(now_ms))
            .col_expr(campaign::Column::UpdatedAt, Expr::value(now_ms))
            .filter(campaign::Column::Id.eq(c.id))
            .filter(campaign::Column::State.eq(CampaignState::Running))
            .exec(db)
            .await?;
        tracing::info!(
            campaign_id = c.id,
            "campaign completed: every recipient decided"
        );
        return Ok(0);
    }
    let txn = begin_write(db).await?;
    let queued = queue_rows(&txn, composer, c, &batch, now_ms).await?;
    txn.commit().await?;
    Ok(queued)
}

/// The transactional half of [`queue_next`]: `pending` → `queued` and the outbox row, both in
/// `txn`. Public so a test can drop the transaction half-way (a crash) and see nothing sent.
///
/// Besides the composer's own work, a batch costs four statements whatever its size (take,
/// see what was taken, record the decisions, commit): on PostgreSQL every statement is a
/// round trip, and two per recipient were a fifth of the runner's time.
///
/// # Errors
/// Database and composer errors.
pub async fn queue_rows<C: ConnectionTrait>(
    txn: &C,
    composer: &Composer,
    c: &campaign::Model,
    batch: &[campaign_recipient::Model],
    now_ms: i64,
) -> Result<usize, ReminderError> {
    if batch.is_empty() {
        return Ok(0);
    }
    // The campaign must still be running as its rows are queued: a pause or cancel that
    // committed first wins, and none can commit in between. An UPDATE, not a SELECT: on
    // PostgreSQL it locks the campaign row and re-reads it after a concurrent change, so a
    // pause either waits for these rows (they were queued before it) or is seen. Without it,
    // rows read as `running` just before a pause were queued and sent after it.
    let still_running = campaign::Entity::update_many()
        .col_expr(campaign::Column::State, Expr::col(campaign::Column::State))
        .filter(campaign::Column::Id.eq(c.id))
        .filter(campaign::Column::State.eq(CampaignState::Running))
        .exec(txn)
        .await?
        .rows_affected
        == 1;
    if !still_running {
        return Ok(0);
    }
    let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
    // One compare-and-set for the batch: a row another instance (or a previous life of this
    // one) took is left alone. The rows this statement took are the only `queued` ones
    // without an outbox row, because whoever takes a row records its outbox row before
    // committing; on PostgreSQL a row another transaction is taking waits for it to end.
    campaign_recipient::Entity::update_many()
        .col_expr(
            campaign_recipient::Column::State,
            Expr::value(RecipientState::Queued),
        )
        .col_expr(campaign_recipient::Column::QueuedAt, Expr::value(now_ms))
        .filter(campaign_recipient::Column::Id.is_in(ids.clone()))
        .filter(campaign_recipient::Column::State.eq(RecipientState::Pending))
        .exec(txn)
        .await?;
    let taken: HashSet<i64> = campaign_recipient::Entity::find()
        .select_only()
        .column(campaign_recipient::Column::Id)
        .filter(campaign_recipient::Column::Id.is_in(ids))
        .filter(campaign_recipient::Column::State.eq(RecipientState::Queued))
        .filter(campaign_recipient::Column::OutboxId.is_null())
        .into_tuple::<i64>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    let mut queued = 0;
    let mut decided = Vec::with_capacity(taken.len());
    for r in batch.iter().filter(|r| taken.contains(&r.id)) {
        let params: Vec<String> = serde_json::from_str(&r.params).unwrap_or_default();
        let result = composer::queue_from(
            txn,
            composer,
            Intent {
                contact_id: r.contact_id,
                in_reply_to: None,
                purpose: Purpose::Campaign { campaign_id: c.id },
                // Marketing goes as the template even inside the window: the approved text
                // is what the insurer signed off, and a free-form promotion would dodge the
                // template category rules.
                free_form: None,
                template: Some(TemplateChoice {
                    name: c.template.clone(),
                    language: r.language.clone(),
                    params,
                }),
            },
            c.phone_number_id.as_deref(),
        )
        .await?;
        decided.push(match result {
            Queued::Row(outbox_id) => {
                queued += 1;
                Decided {
                    id: r.id,
                    outbox_id,
                    skipped: None,
                }
            }
            Queued::Skipped { row, reason } => Decided {
                id: r.id,
                outbox_id: row,
                skipped: Some(reason.to_string()),
            },
        });
    }
    record_decisions(txn, &decided).await?;
    Ok(queued)
}

/// What the composer made of one taken recipient.
struct Decided {
    id: i64,
    outbox_id: i64,
    /// The composer's reason when it refused (the row is `skipped`).
    skipped: Option<String>,
}

/// Records every decision of a batch in one UPDATE: `queued` (or `skipped` with the reason)
/// and the outbox row, chosen per recipient with `CASE id`.
async fn record_decisions<C: ConnectionTrait>(txn: &C, decided: &[Decided]) -> Result<(), DbErr> {
    let Some(first) = decided.first() else {
        return Ok(());
    };
    let is = |d: &Decided| campaign_recipient::Column::Id.eq(d.id);
    let outbox_id = decided[1..]
        .iter()
        .fold(Expr::case(is(first), first.outbox_id), |case, d| {
            case.case(is(d), d.outbox_id)
        });
    let mut state = Expr::value(RecipientState::Queued);
    let mut reason = Expr::value(Option::<String>::None);
    let skipped: Vec<&Decided> = decided.iter().filter(|d| d.skipped.is_some()).collect();
    if let Some((one, rest)) = skipped.split_first() {
        let states = rest
            .iter()
            .fold(Expr::case(is(one), RecipientState::Skipped), |case, d| {
                case.case(is(d), RecipientState::Skipped)
            });
        let reasons = rest
            .iter()
            .fold(Expr::case(is(one), one.skipped.clone()), |case, d| {
                case.case(is(d), d.skipped.clone())
            });
        state = states.finally(RecipientState::Queued).into();
        reason = reasons.finally(Option::<String>::None).into();
    }
    campaign_recipient::Entity::update_many()
        .col_expr(campaign_recipient::Column::State, state)
        .col_expr(campaign_recipient::Column::Reason, reason)
        .col_expr(campaign_recipient::Column::OutboxId, outbox_id.into())
        .filter(campaign_recipient::Column::Id.is_in(decided.iter().map(|d| d.id)))
        .exec(txn)
        .await?;
    Ok(())
}

/// Progress and results of one campaign (the API, the CLI and the console render it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignReport {
    pub id: i64,
    pub name: String,
    pub template: String,
    pub state: CampaignState,
    pub rate_per_second: i32,
    pub start_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Every recipient.
    pub total: u64,
    /// Not decided yet.
    pub pending: u64,
    /// In the outbox, not sent yet.
    pub queued: u64,
    /// Accepted by the Cloud API (includes delivered and read).
    pub sent: u64,
    /// Delivered to the phone (includes read).
    pub delivered: u64,
    pub read: u64,
    /// Failed, by reason (outbox reason or the Cloud API error code, e.g. `131049`).
    pub failed: BTreeMap<String, u64>,
    /// Not sent on purpose, by reason (`consent`, `template_not_approved`,
    /// `campaign_cancelled`, `cancelled` for recipients never queued, …).
    pub skipped: BTreeMap<String, u64>,
}

impl CampaignReport {
    /// Recipients decided (everything but `pending` and `queued`), for a progress bar.
    pub fn done(&self) -> u64 {
        self.total.saturating_sub(self.pending + self.queued)
    }
}

/// The report of campaign `id`: recipients joined with their outbox rows and the delivery
/// statuses Meta sent (`message_statuses`).
///
/// # Errors
/// Unknown campaign, database errors.
pub async fn campaign_report(
    db: &DatabaseConnection,
    id: i64,
) -> Result<CampaignReport, ReminderError> {
    let c = get(db, id).await?;
    let mut one = reports(db, vec![c]).await?;
    Ok(one.pop().unwrap_or_default())
}

/// The reports of `campaigns`, in their order, from one grouped query (the console's list
/// and `GET /api/v1/campaigns` would otherwise run one query per campaign).
///
/// # Errors
/// Database errors.
pub async fn reports(
    db: &DatabaseConnection,
    campaigns: Vec<campaign::Model>,
) -> Result<Vec<CampaignReport>, DbErr> {
    if campaigns.is_empty() {
        return Ok(Vec::new());
    }
    // Ids are integers from the database, so formatting them in is safe.
    let ids = campaigns
        .iter()
        .map(|c| c.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT r.campaign_id AS cid, r.state AS rstate, r.reason AS rreason, \
         o.state AS ostate, o.reason AS oreason, \
         COALESCE(m.status, o.delivery_status) AS dstatus, \
         COALESCE(m.error_code, o.delivery_error_code) AS dcode, o.error_code AS ocode, \
         COUNT(*) AS n \
         FROM campaign_recipients r \
         LEFT JOIN outbox o ON o.id = r.outbox_id \
         LEFT JOIN message_statuses m ON m.wamid = o.wamid \
         WHERE r.campaign_id IN ({ids}) \
         GROUP BY r.campaign_id, r.state, r.reason, o.state, o.reason, \
         COALESCE(m.status, o.delivery_status), \
         COALESCE(m.error_code, o.delivery_error_code), o.error_code"
    );
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    let mut out: Vec<CampaignReport> = campaigns
        .into_iter()
        .map(|c| CampaignReport {
            id: c.id,
            name: c.name,
            template: c.template,
            state: c.state,
            rate_per_second: c.rate_per_second,
            start_at: c.start_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            ..CampaignReport::default()
        })
        .collect();
    let at: HashMap<i64, usize> = out.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    for row in rows {
        let cid: i64 = row.try_get("", "cid")?;
        let Some(rep) = at.get(&cid).map(|i| &mut out[*i]) else {
            continue;
        };
        let rstate: String = row.try_get("", "rstate")?;
        let rreason: Option<String> = row.try_get("", "rreason")?;
        let ostate: Option<String> = row.try_get("", "ostate")?;
        let oreason: Option<String> = row.try_get("", "oreason")?;
        let dstatus: Option<String> = row.try_get("", "dstatus")?;
        let dcode: Option<i64> = row.try_get("", "dcode")?;
        let ocode: Option<i64> = row.try_get("", "ocode")?;
        let n = u64::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0);
        rep.total += n;
        let bump = |map: &mut BTreeMap<String, u64>, key: String| {
            *map.entry(key).or_default() += n;
        };
        let ostate = ostate.as_deref().and_then(OutboxState::parse);
        match (RecipientState::parse(&rstate), ostate) {
            (Some(RecipientState::Pending), _) => rep.pending += n,
            (Some(RecipientState::Cancelled), _) => bump(&mut rep.skipped, "cancelled".into()),
            (_, Some(OutboxState::Queued)) => rep.queued += n,
            (_, Some(OutboxState::Sent)) => match dstatus.as_deref() {
                Some("failed") => bump(
                    &mut rep.failed,
                    dcode.map_or_else(|| "failed".to_owned(), |c| c.to_string()),
                ),
                status => {
                    rep.sent += n;
                    if matches!(status, Some("delivered" | "read" | "played")) {
                        rep.delivered += n;
                    }
                    if matches!(status, Some("read" | "played")) {
                        rep.read += n;
                    }
                }
            },
            (_, Some(OutboxState::Failed | OutboxState::Dead)) => bump(
                &mut rep.failed,
                oreason
                    .or_else(|| ocode.map(|c| c.to_string()))
                    .unwrap_or_else(|| "failed".into()),
            ),
            (_, Some(OutboxState::Skipped)) => bump(
                &mut rep.skipped,
                oreason.or(rreason).unwrap_or_else(|| "skipped".into()),
            ),
            _ => bump(
                &mut rep.skipped,
                rreason.unwrap_or_else(|| "unknown".into()),
            ),
        }
    }
    Ok(out)
}

/// Every campaign, newest first (for `GET /api/v1/campaigns`).
///
/// # Errors
/// Database errors.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<campaign::Model>, DbErr> {
    campaign::Entity::find()
        .order_by_desc(campaign::Column::Id)
        .all(db)
        .await
}

/// The newest `limit` campaigns, newest first (the console's list).
///
/// # Errors
/// Database errors.
pub async fn newest(db: &DatabaseConnection, limit: u64) -> Result<Vec<campaign::Model>, DbErr> {
    campaign::Entity::find()
        .order_by_desc(campaign::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_checked_one_by_one() {
        let text = "phone,name,offer,language\n\
                    +91 98000 00001,Asha,10% off,hi\n\
                    12,Ravi,5% off,\n\
                    919800000001,Asha again,1% off,\n\
                    919800000002,,2% off,\n\
                    919800000003,Mala,3% off,\n";
        let (rows, errors) = parse_csv(text, &["name".into(), "offer".into()], "en").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].phone, "919800000001");
        assert_eq!(rows[0].language, "hi");
        assert_eq!(rows[1].language, "en");
        assert_eq!(rows[1].params, vec!["Mala".to_owned(), "3% off".to_owned()]);
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(errors[1].message.contains("line 2"));
        assert!(parse_csv("number\n1", &["offer".into()], "en").is_err());
        assert!(parse_csv("name\nx", &[], "en").is_err());
    }
}
