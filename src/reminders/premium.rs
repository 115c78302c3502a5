//! Premium reminders: the daily scan over unpaid instalments, and the "remind me later" rows
//! the premium flow writes (`premium.remind_later`).
//!
//! A day's run, at `run_at` local time and never in the quiet hours:
//! 1. takes the day's lease in `reminder_runs` (a second instance sees it and waits);
//! 2. covers every day since the last finished run (at most `catch_up_days`), so a missed day
//!    catches up, and for each unpaid instalment whose reminder day falls in that span picks
//!    the *latest* offset only (three missed days do not become three messages);
//! 3. in batches, inserts the `reminder_sends` key (policy, due date, offset) with ON CONFLICT
//!    DO NOTHING and, only when the insert took, queues the reminder through the composer in
//!    the same transaction. A restart in the middle of a run, a second instance or a rerun
//!    finds the keys and queues nothing twice.
//!
//! The reminder carries both alternatives and the composer picks at send time: inside the
//! window an interactive message (the amount, the due date and the payment link, with reply
//! buttons "Remind me later", "I have paid" and "Talk to an agent"; WhatsApp allows three
//! reply buttons, so "Pay now" is the link itself), outside it the UTILITY template
//! `premium_reminder` with quick replies. The button ids are the premium flow's (`premium`,
//! `premium.remind`, `premium.paid`) and `agent`, so every answer is handled by the flows.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, JoinType, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::json;

use super::ReminderError;
use crate::config::reminders::{QuietHours, RemindersSettings};
use crate::engine::i18n::{I18n, args_from, display_string};
use crate::insurer::PayLinks;
use crate::messaging::composer::{self, Composer, Intent, Purpose, Queued, TemplateChoice};
use crate::money::Paise;
use crate::store::begin_write;
use crate::store::entities::reminder_send::State as SendState;
use crate::store::entities::{
    contact, conversation, policy, premium, premium_reminder, reminder_run, reminder_send,
};
use crate::whatsapp::outbound::{OutboundBody, OutboundMessage, Recipient, ReplyButton};

/// How long a run's lease lasts without renewal (renewed after every batch).
const LEASE_MS: i64 = 60_000;

/// The button ids a reminder offers; the premium flow (and the handoff flow for `agent`)
/// handle each, whether tapped on the interactive message or on the template.
pub mod button {
    pub const PAY: &str = "premium";
    pub const REMIND: &str = "premium.remind";
    pub const PAID: &str = "premium.paid";
    pub const AGENT: &str = "agent";
}

/// What a reminder run needs besides the database. Cheap to clone.
#[derive(Clone)]
pub struct Reminders {
    pub settings: RemindersSettings,
    pub composer: Composer,
    pub pay_links: PayLinks,
    /// The fluent messages for the interactive text (`None`: English built-ins).
    pub i18n: Option<Arc<I18n>>,
    pub default_language: String,
    /// Names this instance in leases.
    pub instance_id: String,
}

/// What one call of [`run_day`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    /// The run date (local), `YYYY-MM-DD`.
    pub run_date: String,
    /// The first day the run covered (earlier when catching up).
    pub from: String,
    /// Unpaid instalments with a reminder day in the span.
    pub candidates: usize,
    /// Reminders queued (outbox rows that will be sent).
    pub queued: usize,
    /// Reminders decided but not sendable (no contact number, consent, template…).
    pub skipped: usize,
    /// Keys already taken: sent by an earlier run, a crashed run or another instance.
    pub already_done: usize,
    /// Another instance holds the lease, or the day already finished.
    pub not_ours: bool,
}

/// Why nothing ran at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    Quiet,
    BeforeRunTime,
}

/// Today's local date, if the daily run is due at `now` (after `run_at`, outside quiet hours).
pub fn due_date_at(settings: &RemindersSettings, now: DateTime<Utc>) -> Result<NaiveDate, Idle> {
    let local = now.with_timezone(&settings.offset());
    if settings.quiet().contains(local.time()) {
        return Err(Idle::Quiet);
    }
    if local.time() < settings.run_time() {
        return Err(Idle::BeforeRunTime);
    }
    Ok(local.date_naive())
}

/// Runs the reminders of local day `today`: the scan (once per day across instances) and the
/// "remind me later" rows due by then. Does nothing in the quiet hours.
///
/// # Errors
/// Database errors; what was committed before stays (and is not repeated by the next run).
#[tracing::instrument(name = "reminders.run_day", skip_all, fields(today = %today))]
pub async fn run_day(
    db: &DatabaseConnection,
    r: &Reminders,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<RunReport, ReminderError> {
    let mut report = RunReport {
        run_date: today.to_string(),
        from: today.to_string(),
        ..RunReport::default()
    };
    if quiet(&r.settings.quiet(), r, now) {
        report.not_ours = true;
        return Ok(report);
    }
    let now_ms = now.timestamp_millis();
    if !take_lease(db, r, today, now_ms).await? {
        report.not_ours = true;
        send_later(db, r, today, now).await?;
        return Ok(report);
    }
    let from = catch_up_from(db, &r.settings, today).await?;
    report.from = from.to_string();
    let picks = scan(db, &r.settings, from, today).await?;
    report.candidates = picks.len();
    let started = std::time::Instant::now();
    for chunk in picks.chunks(r.settings.batch_size as usize) {
        // Quiet hours may begin during a long run: stop, the keys let the next run go on.
        let elapsed = Duration::from_std(started.elapsed()).unwrap_or_default();
        if quiet(&r.settings.quiet(), r, now + elapsed) {
            tracing::info!("quiet hours began during the run: the rest waits for the next run");
            return Ok(report);
        }
        queue_batch(db, r, chunk, today, now, &mut report).await?;
        renew_lease(db, r, today, now_ms).await?;
    }
    reminder_run::Entity::update_many()
        .col_expr(reminder_run::Column::FinishedAt, Expr::value(now_ms))
        .col_expr(
            reminder_run::Column::Queued,
            Expr::value(i32::try_from(report.queued).unwrap_or(i32::MAX)),
        )
        .col_expr(
            reminder_run::Column::Skipped,
            Expr::value(i32::try_from(report.skipped).unwrap_or(i32::MAX)),
        )
        .col_expr(
            reminder_run::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .filter(reminder_run::Column::RunDate.eq(today.to_string()))
        .exec(db)
        .await?;
    let later = send_later(db, r, today, now).await?;
    report.queued += later.0;
    report.skipped += later.1;
    tracing::info!(
        from = %report.from, candidates = report.candidates, queued = report.queued,
        skipped = report.skipped, already_done = report.already_done,
        "premium reminders run finished"
    );
    Ok(report)
}

fn quiet(q: &QuietHours, r: &Reminders, now: DateTime<Utc>) -> bool {
    q.contains(now.with_timezone(&r.settings.offset()).time())
}

/// Takes (or keeps) the lease of `today`'s run; false when the day is finished or another
/// live instance holds it.
async fn take_lease(
    db: &DatabaseConnection,
    r: &Reminders,
    today: NaiveDate,
    now_ms: i64,
) -> Result<bool, DbErr> {
    let row = reminder_run::ActiveModel {
        run_date: Set(today.to_string()),
        lease_owner: Set(Some(r.instance_id.clone())),
        lease_until: Set(Some(now_ms + LEASE_MS)),
        started_at: Set(now_ms),
        finished_at: Set(None),
        queued: Set(0),
        skipped: Set(0),
    };
    let inserted = reminder_run::Entity::insert(row)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    if inserted == 1 {
        return Ok(true);
    }
    renew_lease(db, r, today, now_ms).await
}

async fn renew_lease(
    db: &DatabaseConnection,
    r: &Reminders,
    today: NaiveDate,
    now_ms: i64,
) -> Result<bool, DbErr> {
    let taken = reminder_run::Entity::update_many()
        .col_expr(
            reminder_run::Column::LeaseOwner,
            Expr::value(r.instance_id.clone()),
        )
        .col_expr(
            reminder_run::Column::LeaseUntil,
            Expr::value(now_ms + LEASE_MS),
        )
        .filter(reminder_run::Column::RunDate.eq(today.to_string()))
        .filter(reminder_run::Column::FinishedAt.is_null())
        .filter(
            reminder_run::Column::LeaseOwner
                .eq(r.instance_id.clone())
                .or(reminder_run::Column::LeaseUntil.lt(now_ms))
                .or(reminder_run::Column::LeaseOwner.is_null()),
        )
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
}

/// The first day this run covers: the day after the last finished run, at most
/// `catch_up_days` back; today when nothing ever ran (a new install does not replay history).
async fn catch_up_from(
    db: &DatabaseConnection,
    settings: &RemindersSettings,
    today: NaiveDate,
) -> Result<NaiveDate, DbErr> {
    let last: Option<String> = reminder_run::Entity::find()
        .select_only()
        .column(reminder_run::Column::RunDate)
        .filter(reminder_run::Column::FinishedAt.is_not_null())
        .filter(reminder_run::Column::RunDate.lt(today.to_string()))
        .order_by_desc(reminder_run::Column::RunDate)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    let earliest = today - Duration::days(i64::from(settings.catch_up_days));
    Ok(
        match last.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()) {
            Some(last) => Ord::min(Ord::max(last + Duration::days(1), earliest), today),
            None => today,
        },
    )
}

/// One instalment to remind about, with the offset chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub policy_number: String,
    pub due_date: NaiveDate,
    pub amount_paise: i64,
    pub mobile: Option<String>,
    /// Days before the due date (negative: grace period).
    pub offset_days: i32,
    /// The business number the policy belongs to: the reminder leaves from it. `None`: the
    /// number the contact last wrote to, else the deployment's first.
    pub number: Option<String>,
}

/// The unpaid instalments with a reminder day in `[from, today]`, each with its latest offset.
async fn scan(
    db: &DatabaseConnection,
    settings: &RemindersSettings,
    from: NaiveDate,
    today: NaiveDate,
) -> Result<Vec<Pick>, DbErr> {
    let offsets = settings.all_offsets();
    let mut due_dates = BTreeSet::new();
    let mut day = from;
    while day <= today {
        for k in &offsets {
            due_dates.insert(day + Duration::days(i64::from(*k)));
        }
        day += Duration::days(1);
    }
    // The entities declare no relations; this one is built where it is used.
    let rel = premium::Entity::belongs_to(policy::Entity)
        .from(premium::Column::PolicyNumber)
        .to(policy::Column::PolicyNumber)
        .into();
    type Row = (String, String, i64, Option<String>, String, Option<String>);
    let rows: Vec<Row> = premium::Entity::find()
        .select_only()
        .column(premium::Column::PolicyNumber)
        .column(premium::Column::DueDate)
        .column(premium::Column::Amount)
        .column(policy::Column::Mobile)
        .column(policy::Column::Status)
        .column(policy::Column::Number)
        .join(JoinType::InnerJoin, rel)
        .filter(premium::Column::DueDate.is_in(due_dates.iter().map(ToString::to_string)))
        .filter(premium::Column::Status.ne("paid"))
        .filter(premium::Column::PaidDate.is_null())
        .order_by_asc(premium::Column::DueDate)
        .order_by_asc(premium::Column::PolicyNumber)
        .into_tuple()
        .all(db)
        .await?;
    let mut picks = Vec::with_capacity(rows.len());
    for (policy_number, due, amount, mobile, status, number) in rows {
        // A policy that ended (surrendered, terminated, lapsed past revival) gets no reminder.
        if matches!(
            status.to_ascii_lowercase().as_str(),
            "terminated" | "surrendered" | "matured" | "cancelled" | "claimed"
        ) {
            continue;
        }
        let Ok(due_date) = NaiveDate::parse_from_str(&due, "%Y-%m-%d") else {
            continue;
        };
        // The latest reminder day not after today: the offsets sorted ascending give the
        // latest remind day first (remind day = due - offset).
        let Some(offset_days) = offsets.iter().copied().find(|k| {
            let day = due_date - Duration::days(i64::from(*k));
            day >= from && day <= today
        }) else {
            continue;
        };
        picks.push(Pick {
            policy_number,
            due_date,
            amount_paise: amount,
            mobile,
            offset_days,
            number,
        });
    }
    Ok(picks)
}

/// Finds or creates the contacts of `mobiles` (a policyholder who never wrote to the bot has
/// no contact yet). Outside the batch transaction: contacts are idempotent by `wa_id`.
pub(crate) async fn contacts_for(
    db: &DatabaseConnection,
    mobiles: &[String],
    now_ms: i64,
) -> Result<HashMap<String, contact::Model>, DbErr> {
    let find = || {
        contact::Entity::find()
            .filter(contact::Column::WaId.is_in(mobiles.iter().cloned()))
            .all(db)
    };
    let mut found: HashMap<String, contact::Model> = find()
        .await?
        .into_iter()
        .filter_map(|c| c.wa_id.clone().map(|w| (w, c)))
        .collect();
    let missing: Vec<contact::ActiveModel> = mobiles
        .iter()
        .filter(|m| !found.contains_key(*m))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|m| contact::ActiveModel {
            id: NotSet,
            wa_id: Set(Some(m.clone())),
            user_id: Set(None),
            profile_name: Set(None),
            last_inbound_at: Set(None),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(now_ms),
            updated_at: Set(now_ms),
        })
        .collect();
    if !missing.is_empty() {
        contact::Entity::insert_many(missing)
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .exec_without_returning(db)
            .await?;
        found = find()
            .await?
            .into_iter()
            .filter_map(|c| c.wa_id.clone().map(|w| (w, c)))
            .collect();
    }
    Ok(found)
}

/// The conversation language of each contact (the default when it never chose one).
async fn languages(db: &DatabaseConnection, ids: &[i64]) -> Result<HashMap<i64, String>, DbErr> {
    Ok(conversation::Entity::find()
        .select_only()
        .column(conversation::Column::ContactId)
        .column(conversation::Column::Language)
        .filter(conversation::Column::ContactId.is_in(ids.iter().copied()))
        .into_tuple::<(i64, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

async fn queue_batch(
    db: &DatabaseConnection,
    r: &Reminders,
    picks: &[Pick],
    today: NaiveDate,
    now: DateTime<Utc>,
    report: &mut RunReport,
) -> Result<(), ReminderError> {
    let now_ms = now.timestamp_millis();
    let mobiles: Vec<String> = picks.iter().filter_map(|p| p.mobile.clone()).collect();
    let contacts = contacts_for(db, &mobiles, now_ms).await?;
    // `contacts_for` has just created every missing contact, so a mobile without one means
    // that write did not land (stop 29 saw it: a connection left inside a transaction). An
    // error the next run retries, not reminders recorded as "no_contact" for good.
    let missing = mobiles
        .iter()
        .filter(|m| !contacts.contains_key(*m))
        .count();
    if missing > 0 {
        return Err(ReminderError::ContactsMissing(missing));
    }
    let ids: Vec<i64> = contacts.values().map(|c| c.id).collect();
    let langs = languages(db, &ids).await?;
    let txn = begin_write(db).await?;
    for pick in picks {
        let contact = pick.mobile.as_ref().and_then(|m| contacts.get(m));
        let key = reminder_send::ActiveModel {
            id: NotSet,
            policy_number: Set(pick.policy_number.clone()),
            due_date: Set(pick.due_date.to_string()),
            offset_days: Set(pick.offset_days),
            kind: Set("scheduled".to_owned()),
            contact_id: Set(contact.map(|c| c.id)),
            outbox_id: Set(None),
            state: Set(SendState::Skipped),
            reason: Set(Some("no_contact".to_owned())),
            run_date: Set(today.to_string()),
            created_at: Set(now_ms),
        };
        let inserted = reminder_send::Entity::insert(key)
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .exec_without_returning(&txn)
            .await?;
        if inserted == 0 {
            report.already_done += 1;
            continue;
        }
        let Some(contact) = contact else {
            report.skipped += 1;
            continue;
        };
        let language = langs
            .get(&contact.id)
            .cloned()
            .unwrap_or_else(|| r.default_language.clone());
        let intent = reminder_intent(r, contact, pick, &language, now);
        let queued =
            composer::queue_from(&txn, &r.composer, intent, pick.number.as_deref()).await?;
        record(&txn, pick, "scheduled", &queued).await?;
        match queued {
            Queued::Row(_) => report.queued += 1,
            Queued::Skipped { .. } => report.skipped += 1,
        }
    }
    txn.commit().await?;
    Ok(())
}

/// Writes the outcome of the composer onto the key row.
async fn record<C: ConnectionTrait>(
    db: &C,
    pick: &Pick,
    kind: &str,
    queued: &Queued,
) -> Result<(), DbErr> {
    let (state, reason, row) = match queued {
        Queued::Row(id) => (SendState::Queued, None, *id),
        Queued::Skipped { row, reason } => (SendState::Skipped, Some(reason.to_string()), *row),
    };
    reminder_send::Entity::update_many()
        .col_expr(reminder_send::Column::State, Expr::value(state))
        .col_expr(reminder_send::Column::Reason, Expr::value(reason))
        .col_expr(reminder_send::Column::OutboxId, Expr::value(row))
        .filter(reminder_send::Column::PolicyNumber.eq(pick.policy_number.clone()))
        .filter(reminder_send::Column::DueDate.eq(pick.due_date.to_string()))
        .filter(reminder_send::Column::OffsetDays.eq(pick.offset_days))
        .filter(reminder_send::Column::Kind.eq(kind))
        .exec(db)
        .await?;
    Ok(())
}

/// The reminder for one instalment: the interactive message for an open window and the
/// UTILITY template for a closed one; the composer picks at send time.
pub fn reminder_intent(
    r: &Reminders,
    contact: &contact::Model,
    pick: &Pick,
    language: &str,
    now: DateTime<Utc>,
) -> Intent {
    let amount = Paise::new(pick.amount_paise);
    let link = r
        .pay_links
        .link(&pick.policy_number, pick.due_date, pick.amount_paise, now);
    let due = pick.due_date.to_string();
    let params = vec![
        display_string("policy_number", &pick.policy_number),
        amount.to_string(),
        display_string("due_date", &due),
        link.clone(),
    ];
    let slots = [
        ("policy_number", json!(pick.policy_number)),
        ("premium_amount", json!(amount.rupees())),
        ("due_date", json!(due)),
        ("pay_link", json!(link)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let args = args_from(&slots);
    let text = |id: &str, fallback: &str| match &r.i18n {
        Some(i18n) if i18n.has(language, id) => i18n.render_lossy(language, id, Some(&args)),
        Some(i18n) if i18n.has("en", id) => i18n.render_lossy("en", id, Some(&args)),
        _ => fallback.to_owned(),
    };
    let body = format!(
        "{}\n\n{}",
        text(
            "premium-due",
            &format!(
                "Premium of {} for policy {} is due on {}.",
                params[1], params[0], params[2]
            )
        ),
        text("reminder-pay-link", &format!("Pay now: {link}"))
    );
    let buttons = vec![
        ReplyButton {
            id: button::REMIND.into(),
            title: text("btn-remind", "Remind me later"),
        },
        ReplyButton {
            id: button::PAID.into(),
            title: text("btn-paid", "I have paid"),
        },
        ReplyButton {
            id: button::AGENT.into(),
            title: text("btn-agent", "Talk to an agent"),
        },
    ];
    let interactive = OutboundBody::Buttons {
        header: None,
        body: body.clone(),
        footer: None,
        buttons,
    };
    // A translation that breaks a Cloud API limit (a long title) must not stop the run: fall
    // back to the same text without buttons, which the composer accepts.
    let fits = OutboundMessage {
        to: Recipient::Phone(contact.wa_id.clone().unwrap_or_else(|| "0".into())),
        body: interactive.clone(),
        reply_to: None,
        callback_data: None,
    }
    .validate()
    .is_ok();
    let free_form = if fits {
        interactive
    } else {
        OutboundBody::Text {
            body,
            preview_url: true,
        }
    };
    Intent {
        contact_id: contact.id,
        in_reply_to: None,
        purpose: Purpose::Notification {
            kind: "premium_reminder".into(),
            essential: false,
        },
        free_form: Some(free_form),
        template: Some(TemplateChoice {
            name: r.settings.template.clone(),
            language: language.to_owned(),
            params,
        }),
    }
}

/// Sends the "remind me later" rows due by `today`; returns (queued, skipped). Each row is
/// claimed by setting `sent_at` in the transaction that queues it, so it goes once even with
/// several instances; an instalment paid since is marked sent without a message.
///
/// # Errors
/// Database and composer errors.
pub async fn send_later(
    db: &DatabaseConnection,
    r: &Reminders,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(usize, usize), ReminderError> {
    let now_ms = now.timestamp_millis();
    let rows = premium_reminder::Entity::find()
        .filter(premium_reminder::Column::SentAt.is_null())
        .filter(premium_reminder::Column::RemindOn.lte(today.to_string()))
        .order_by_asc(premium_reminder::Column::Id)
        .limit(u64::from(r.settings.batch_size))
        .all(db)
        .await?;
    let (mut queued, mut skipped) = (0, 0);
    for row in rows {
        let txn = begin_write(db).await?;
        let claimed = premium_reminder::Entity::update_many()
            .col_expr(premium_reminder::Column::SentAt, Expr::value(now_ms))
            .filter(premium_reminder::Column::Id.eq(row.id))
            .filter(premium_reminder::Column::SentAt.is_null())
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            continue;
        }
        let instalment = premium::Entity::find()
            .filter(premium::Column::PolicyNumber.eq(row.policy_number.clone()))
            .filter(premium::Column::DueDate.eq(row.due_date.clone()))
            .one(&txn)
            .await?;
        let contact = contact::Entity::find_by_id(row.contact_id)
            .one(&txn)
            .await?;
        let (Some(instalment), Some(contact), Ok(due_date)) = (
            instalment,
            contact,
            NaiveDate::parse_from_str(&row.due_date, "%Y-%m-%d"),
        ) else {
            txn.commit().await?;
            continue;
        };
        if instalment.status == "paid" || instalment.paid_date.is_some() {
            txn.commit().await?;
            continue;
        }
        let remind_on = NaiveDate::parse_from_str(&row.remind_on, "%Y-%m-%d").unwrap_or(today);
        let number: Option<Option<String>> = policy::Entity::find()
            .select_only()
            .column(policy::Column::Number)
            .filter(policy::Column::PolicyNumber.eq(row.policy_number.clone()))
            .into_tuple()
            .one(&txn)
            .await?;
        let pick = Pick {
            policy_number: row.policy_number.clone(),
            due_date,
            amount_paise: instalment.amount,
            mobile: contact.wa_id.clone(),
            offset_days: i32::try_from((due_date - remind_on).num_days()).unwrap_or(0),
            number: number.flatten(),
        };
        let key = reminder_send::ActiveModel {
            id: NotSet,
            policy_number: Set(pick.policy_number.clone()),
            due_date: Set(row.due_date.clone()),
            offset_days: Set(pick.offset_days),
            kind: Set("later".to_owned()),
            contact_id: Set(Some(contact.id)),
            outbox_id: Set(None),
            state: Set(SendState::Skipped),
            reason: Set(None),
            run_date: Set(today.to_string()),
            created_at: Set(now_ms),
        };
        if reminder_send::Entity::insert(key)
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .exec_without_returning(&txn)
            .await?
            == 0
        {
            // The same reminder (instalment and day) already went once.
            txn.commit().await?;
            continue;
        }
        let language = languages(db, &[contact.id])
            .await?
            .remove(&contact.id)
            .unwrap_or_else(|| r.default_language.clone());
        let intent = reminder_intent(r, &contact, &pick, &language, now);
        let result =
            composer::queue_from(&txn, &r.composer, intent, pick.number.as_deref()).await?;
        record(&txn, &pick, "later", &result).await?;
        txn.commit().await?;
        match result {
            Queued::Row(_) => queued += 1,
            Queued::Skipped { .. } => skipped += 1,
        }
    }
    Ok((queued, skipped))
}
