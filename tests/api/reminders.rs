//! Premium reminders and campaigns (issue 8), with a controllable clock: every offset, the
//! grace period, quiet hours, a paid premium, catch-up, a run interrupted half-way, two
//! instances, remind-later rows, pause/resume/cancel, a crash in the middle of a campaign,
//! a batch meeting rows another instance took, the API, and the consent gate (opted-out
//! contact, marketing opt-in, frequency cap). SQLite always; PostgreSQL too with
//! INSUREBOT_TEST_DATABASE_URL. The campaign helpers are shared with the console tests.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use insurebot::clock::ManualClock;
use insurebot::config::reminders::RemindersSettings;
use insurebot::config::{DatabaseUrl, MessagingSettings};
use insurebot::engine::templates_file;
use insurebot::insurer::PayLinks;
use insurebot::messaging::composer::Composer;
use insurebot::messaging::templates;
use insurebot::reminders::campaign_report;
use insurebot::reminders::campaigns::{self, Audience, NewCampaign};
use insurebot::reminders::premium::{self, Reminders};
use insurebot::store::entities::campaign::State as CampaignState;
use insurebot::store::entities::campaign_recipient::State as RecipientState;
use insurebot::store::entities::{
    campaign_recipient, contact, outbox, policy, policyholder, premium as premium_row,
    premium_reminder, reminder_send,
};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::*;

const API_TOKEN: &str = "test-api-token-0123456789";

/// 10:30 in India (05:00 UTC) on `day`: after the 10:00 run, outside the quiet hours.
fn ist_morning(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(5, 0, 0).unwrap())
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A bare migrated database with the template registry (no app: nothing is sent).
async fn bare_db(backend: &Backend) -> (DatabaseConnection, TestDb) {
    let test_db = TestDb::create(backend).await;
    let db = insurebot::store::connect(&DatabaseUrl::new(test_db.url.clone()))
        .await
        .unwrap();
    insurebot::store::migrate(&db).await.unwrap();
    let defs = templates_file::load_file(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/flows/templates/templates.yaml"
    )))
    .unwrap();
    templates::seed(&db, &defs, &[String::new()], 0)
        .await
        .unwrap();
    (db, test_db)
}

fn reminders(instance: &str) -> Reminders {
    Reminders {
        settings: RemindersSettings::default(),
        composer: Composer::new(&MessagingSettings::default()),
        pay_links: PayLinks::new(
            "https://pay.example.in/p/{policy_number}?t={token}",
            b"0123456789abcdef0123",
            chrono::Duration::hours(48),
        ),
        i18n: None,
        default_language: "en".into(),
        instance_id: instance.into(),
    }
}

/// A policy with one instalment due on `due`, registered on `mobile`.
async fn instalment(db: &DatabaseConnection, n: usize, mobile: &str, due: NaiveDate, paid: bool) {
    let customer = format!("C{n:07}");
    let number = format!("LIC{n:08}");
    let _ = policyholder::Entity::insert(policyholder::ActiveModel {
        id: NotSet,
        customer_id: Set(customer.clone()),
        name: Set(format!("Holder {n}")),
        dob: Set("1980-01-01".into()),
        created_at: Set(0),
        updated_at: Set(0),
    })
    .exec(db)
    .await
    .unwrap();
    policy::Entity::insert(policy::ActiveModel {
        id: NotSet,
        policy_number: Set(number.clone()),
        customer_id: Set(customer),
        mobile: Set(Some(mobile.to_owned())),
        product: Set("life".into()),
        plan: Set("Jeevan".into()),
        status: Set("in_force".into()),
        sum_assured: Set(50_000_000),
        start_date: Set("2020-01-01".into()),
        end_date: Set(None),
        document_url: Set(None),
        number: Set(None),
        created_at: Set(0),
        updated_at: Set(0),
    })
    .exec(db)
    .await
    .unwrap();
    premium_row::Entity::insert(premium_row::ActiveModel {
        id: NotSet,
        policy_number: Set(number),
        due_date: Set(due.to_string()),
        amount: Set(2_450_050),
        status: Set(if paid { "paid" } else { "due" }.into()),
        paid_date: Set(paid.then(|| "2026-02-20".to_owned())),
        created_at: Set(0),
        updated_at: Set(0),
    })
    .exec(db)
    .await
    .unwrap();
}

async fn sends(db: &DatabaseConnection) -> Vec<reminder_send::Model> {
    reminder_send::Entity::find().all(db).await.unwrap()
}

async fn outbox_rows(db: &DatabaseConnection) -> u64 {
    outbox::Entity::find().count(db).await.unwrap()
}

#[tokio::test]
async fn every_offset_and_the_grace_period_get_one_reminder_and_a_paid_premium_none() {
    for backend in backends() {
        let (db, _guard) = bare_db(&backend).await;
        let today = d("2026-03-01");
        // Offsets 15, 7, 3, 1 before; 3, 10, 20 days into the grace period.
        let offsets: [i32; 7] = [15, 7, 3, 1, -3, -10, -20];
        for (i, k) in offsets.iter().enumerate() {
            let due = today + chrono::Duration::days(i64::from(*k));
            instalment(&db, i, &format!("9198000001{i:02}"), due, false).await;
        }
        // Not on an offset day, paid, and past the last grace reminder: nothing.
        instalment(
            &db,
            20,
            "919800000120",
            today + chrono::Duration::days(5),
            false,
        )
        .await;
        instalment(
            &db,
            21,
            "919800000121",
            today + chrono::Duration::days(7),
            true,
        )
        .await;
        instalment(
            &db,
            22,
            "919800000122",
            today - chrono::Duration::days(25),
            false,
        )
        .await;

        let r = reminders("a");
        let report = premium::run_day(&db, &r, today, ist_morning(today))
            .await
            .unwrap();
        assert_eq!(report.queued, 7, "{report:?}");
        let mut got: Vec<i32> = sends(&db).await.iter().map(|s| s.offset_days).collect();
        got.sort_unstable();
        let mut want = offsets.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
        assert!(
            sends(&db)
                .await
                .iter()
                .all(|s| s.state == "queued" && s.outbox_id.is_some())
        );
        assert_eq!(outbox_rows(&db).await, 7);

        // Payload: the template outside the window, the interactive message inside it.
        let row = outbox::Entity::find().one(&db).await.unwrap().unwrap();
        let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap();
        assert_eq!(payload["template"]["name"], "premium_reminder");
        assert_eq!(payload["template"]["params"].as_array().unwrap().len(), 4);
        assert!(
            payload["template"]["params"][3]
                .as_str()
                .unwrap()
                .starts_with("https://pay.example.in/p/")
        );
        let ids: Vec<&str> = payload["free_form"]["buttons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["premium.remind", "premium.paid", "agent"]);

        // The same day again (a second tick, a restart): nothing more.
        let again = premium::run_day(&db, &r, today, ist_morning(today))
            .await
            .unwrap();
        assert!(again.not_ours);
        assert_eq!(outbox_rows(&db).await, 7);
        // The next day: every instalment moved one day on; none is on an offset day.
        let next = today + chrono::Duration::days(1);
        let report = premium::run_day(&db, &r, next, ist_morning(next))
            .await
            .unwrap();
        assert_eq!(report.queued, 0, "{report:?}");
    }
}

#[tokio::test]
async fn nothing_is_queued_in_the_quiet_hours_and_queued_rows_wait_for_morning() {
    for backend in backends() {
        let (db, _guard) = bare_db(&backend).await;
        // Real dates: the outbox stamps rows with the real time, and a held row must be due
        // before the quiet hours end.
        let ist = chrono::FixedOffset::east_opt(19_800).unwrap();
        let today = Utc::now().with_timezone(&ist).date_naive();
        instalment(
            &db,
            1,
            "919800000201",
            today + chrono::Duration::days(7),
            false,
        )
        .await;
        let r = reminders("a");
        // 22:30 IST: quiet.
        let night = Utc.from_utc_datetime(&today.and_hms_opt(17, 0, 0).unwrap());
        assert_eq!(
            premium::due_date_at(&r.settings, night),
            Err(premium::Idle::Quiet)
        );
        let report = premium::run_day(&db, &r, today, night).await.unwrap();
        assert_eq!(report.queued, 0);
        assert_eq!(outbox_rows(&db).await, 0);
        // 09:45 IST: awake, but before run_at.
        let early = Utc.from_utc_datetime(&today.and_hms_opt(4, 15, 0).unwrap());
        assert_eq!(
            premium::due_date_at(&r.settings, early),
            Err(premium::Idle::BeforeRunTime)
        );
        // Queued in the morning; at night the unsent row is held until 09:00 IST.
        let report = premium::run_day(&db, &r, today, ist_morning(today))
            .await
            .unwrap();
        assert_eq!(report.queued, 1);
        let end = r
            .settings
            .quiet()
            .end_after(night, r.settings.offset())
            .unwrap();
        assert_eq!(
            end,
            Utc.from_utc_datetime(&today.succ_opt().unwrap().and_hms_opt(3, 30, 0).unwrap())
                .timestamp_millis()
        );
        let held = insurebot::reminders::hold_for_quiet_hours(&db, end, night.timestamp_millis())
            .await
            .unwrap();
        assert_eq!(held, 1);
        let row = outbox::Entity::find().one(&db).await.unwrap().unwrap();
        assert_eq!(row.next_attempt_at, end);
    }
}

#[tokio::test]
async fn a_missed_day_catches_up_with_the_latest_offset_only() {
    for backend in backends() {
        let (db, _guard) = bare_db(&backend).await;
        let day0 = d("2026-03-01");
        let r = reminders("a");
        premium::run_day(&db, &r, day0, ist_morning(day0))
            .await
            .unwrap();
        // Days 1 and 2 are missed (the server was down). Due on day 4: offsets 3 (day 1)
        // and 1 (day 3) -> only offset 1 goes on day 3. Due on day 9: offset 7 fell on day 2
        // -> caught up on day 3.
        instalment(
            &db,
            1,
            "919800000301",
            day0 + chrono::Duration::days(4),
            false,
        )
        .await;
        instalment(
            &db,
            2,
            "919800000302",
            day0 + chrono::Duration::days(9),
            false,
        )
        .await;
        let day3 = day0 + chrono::Duration::days(3);
        let report = premium::run_day(&db, &r, day3, ist_morning(day3))
            .await
            .unwrap();
        assert_eq!(report.from, "2026-03-02");
        assert_eq!(report.queued, 2, "{report:?}");
        let by_policy: BTreeMap<String, i32> = sends(&db)
            .await
            .into_iter()
            .map(|s| (s.policy_number, s.offset_days))
            .collect();
        assert_eq!(by_policy["LIC00000001"], 1);
        assert_eq!(by_policy["LIC00000002"], 7);
        assert_eq!(sends(&db).await.len(), 2);
    }
}

#[tokio::test]
async fn a_run_interrupted_half_way_is_finished_by_the_next_without_duplicates() {
    for backend in backends() {
        let (db, _guard) = bare_db(&backend).await;
        let today = d("2026-03-01");
        let n = 300;
        for i in 0..n {
            instalment(
                &db,
                i,
                &format!("9197{i:08}"),
                today + chrono::Duration::days(3),
                false,
            )
            .await;
        }
        let mut a = reminders("instance-a");
        a.settings.batch_size = 10;
        // "Crash": the run is dropped mid-way (an uncommitted batch rolls back).
        let _ = tokio::time::timeout(
            Duration::from_millis(150),
            premium::run_day(&db, &a, today, ist_morning(today)),
        )
        .await;
        let after_crash = outbox_rows(&db).await;
        // Another instance (or the restarted one) takes over once the lease has expired.
        let b = reminders("instance-b");
        let later = ist_morning(today) + chrono::Duration::minutes(2);
        let report = premium::run_day(&db, &b, today, later).await.unwrap();
        // Every instalment has a contact: a "no_contact" skip means the run's own contacts were
        // not visible to its batch (see the next test).
        assert_eq!(report.skipped, 0, "{report:?}");
        assert_eq!(
            outbox_rows(&db).await,
            n as u64,
            "crashed run had queued {after_crash}; {report:?}"
        );
        assert_eq!(report.queued + report.already_done, n, "{report:?}");
        let keys: HashSet<String> = sends(&db)
            .await
            .into_iter()
            .map(|s| s.policy_number)
            .collect();
        assert_eq!(keys.len(), n);
        let per_contact: HashSet<i64> = outbox::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.contact_id)
            .collect();
        assert_eq!(per_contact.len(), n, "one reminder per contact");
    }
}

/// Why the test above once failed on PostgreSQL (30 outbox rows of 300): the "crash" dropped the
/// run while a batch's `BEGIN` awaited its answer, and sqlx left that connection inside a
/// transaction nothing ended. The next run's contacts were inserted on it, never committed,
/// so its batch saw no contact for 270 instalments and took their keys as "no_contact".
/// Here `begin_write` is dropped right after its first poll, again and again: afterwards no
/// session of the database may stay idle inside a transaction. What makes it pass is the
/// vendored sqlx-postgres (sqlx#4393, vendor/README.md); the published 0.9.0 fails it.
#[needs_postgres]
#[tokio::test]
async fn a_write_transaction_cancelled_while_it_begins_leaves_no_connection_inside_it() {
    use sea_orm::{ConnectionTrait, Statement};
    let backend = postgres_only();
    let (db, _guard) = bare_db(&backend).await;
    for _ in 0..20 {
        {
            let mut begin = std::pin::pin!(insurebot::store::begin_write(&db));
            std::future::poll_fn(|cx| {
                let _ = begin.as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await;
        } // Dropped here, most times with its BEGIN on the wire.
        tokio::task::yield_now().await;
    }
    let stuck = async || {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    // A cancelled begin's ROLLBACK is queued behind its BEGIN and goes out with the pool's ping
    // when the connection is taken back: give it a moment (and a leaked BEGIN the time to
    // reach the server, so that an early look does not miss it).
    let mut left = i64::MAX;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = stuck().await;
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "sessions left idle in a transaction");
    // And the pool still works: a write commits and is seen from another connection.
    let txn = insurebot::store::begin_write(&db).await.unwrap();
    txn.execute_unprepared("CREATE TABLE after_cancel (x INT)")
        .await
        .unwrap();
    txn.commit().await.unwrap();
    db.execute_unprepared("SELECT x FROM after_cancel")
        .await
        .unwrap();
}

#[tokio::test]
async fn two_instances_running_the_same_day_queue_each_reminder_once() {
    // Meaningful on PostgreSQL (real concurrency); SQLite serialises writers but must agree.
    for backend in backends() {
        let (db, _guard) = bare_db(&backend).await;
        let today = d("2026-03-01");
        let n = 120;
        for i in 0..n {
            instalment(
                &db,
                i,
                &format!("9196{i:08}"),
                today + chrono::Duration::days(1),
                false,
            )
            .await;
        }
        let (mut a, mut b) = (reminders("a"), reminders("b"));
        a.settings.batch_size = 7;
        b.settings.batch_size = 7;
        let now = ist_morning(today);
        let (ra, rb) = tokio::join!(
            premium::run_day(&db, &a, today, now),
            premium::run_day(&db, &b, today, now)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.queued + rb.queued, n, "{ra:?} {rb:?}");
        assert_eq!(outbox_rows(&db).await, n as u64);
        // Even without the lease (a day row lost), the keys stop a second copy.
        insurebot::store::entities::reminder_run::Entity::delete_many()
            .exec(&db)
            .await
            .unwrap();
        let (ra, rb) = tokio::join!(
            premium::run_day(&db, &a, today, now),
            premium::run_day(&db, &b, today, now)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.queued + rb.queued, 0);
        assert_eq!(outbox_rows(&db).await, n as u64);
    }
}

#[tokio::test]
async fn remind_me_later_rows_are_sent_once_on_their_day_unless_paid() {
    for backend in backends() {
        let (db, _guard) = bare_db(&backend).await;
        let today = d("2026-03-01");
        instalment(&db, 1, "919800000401", d("2026-03-20"), false).await;
        instalment(&db, 2, "919800000402", d("2026-03-20"), true).await;
        let r = reminders("a");
        for (i, policy) in [(1, "LIC00000001"), (2, "LIC00000002")] {
            let c = contact::Entity::insert(contact::ActiveModel {
                id: NotSet,
                wa_id: Set(Some(format!("91980000040{i}"))),
                user_id: Set(None),
                profile_name: Set(None),
                last_inbound_at: Set(None),
                lease_owner: Set(None),
                lease_until: Set(None),
                created_at: Set(0),
                updated_at: Set(0),
            })
            .exec(&db)
            .await
            .unwrap()
            .last_insert_id;
            premium_reminder::Entity::insert(premium_reminder::ActiveModel {
                id: NotSet,
                contact_id: Set(c),
                policy_number: Set(policy.into()),
                due_date: Set("2026-03-20".into()),
                remind_on: Set("2026-03-01".into()),
                created_at: Set(0),
                sent_at: Set(None),
            })
            .exec(&db)
            .await
            .unwrap();
        }
        let (queued, _) = premium::send_later(&db, &r, today, ist_morning(today))
            .await
            .unwrap();
        assert_eq!(queued, 1, "the paid instalment gets nothing");
        let (queued, _) = premium::send_later(&db, &r, today, ist_morning(today))
            .await
            .unwrap();
        assert_eq!(queued, 0);
        assert_eq!(outbox_rows(&db).await, 1);
        let later = sends(&db).await;
        assert_eq!(later.len(), 1);
        assert_eq!(
            (later[0].kind.as_str(), later[0].offset_days),
            ("later", 19)
        );
    }
}

/// Records an opt-out through the consent layer, as a STOP keyword would.
pub async fn opt_out(db: &DatabaseConnection, contact_id: i64, scope: &str) {
    use insurebot::consent::{Change, NewEntry, Scope, Source};
    let entry = NewEntry {
        contact_id: Some(contact_id),
        address_hash: None,
        change: Change::OptOut,
        scope: Scope::parse(scope).expect("a consent scope"),
        source: Source::Keyword,
        shown_text: Some("STOP".into()),
        occurred_at: None,
        detail: None,
    };
    insurebot::consent::record(db, entry, insurebot::store::now_ms())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_opted_out_contact_gets_no_premium_reminder() {
    for backend in backends() {
        let (db, _guard) = bare_db(&backend).await;
        let today = d("2026-03-01");
        instalment(
            &db,
            1,
            "919800000501",
            today + chrono::Duration::days(7),
            false,
        )
        .await;
        let r = reminders("a");
        // The contact exists and said STOP.
        let c = contact::Entity::insert(contact::ActiveModel {
            id: NotSet,
            wa_id: Set(Some("919800000501".into())),
            user_id: Set(None),
            profile_name: Set(None),
            last_inbound_at: Set(None),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(0),
            updated_at: Set(0),
        })
        .exec(&db)
        .await
        .unwrap()
        .last_insert_id;
        opt_out(&db, c, "all").await;
        let report = premium::run_day(&db, &r, today, ist_morning(today))
            .await
            .unwrap();
        assert_eq!((report.queued, report.skipped), (0, 1));
        let s = &sends(&db).await[0];
        assert_eq!(
            (s.state.as_str(), s.reason.as_deref()),
            ("skipped", Some("consent_opted_out"))
        );
    }
}

// ---- campaigns, against the running app and the fake Cloud API ----

pub async fn campaign_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.reminders.enabled = false;
        // No quiet hours: these tests run at any hour.
        s.reminders.quiet_start = "00:00".into();
        s.reminders.quiet_end = "00:00".into();
        s.api_token = Some(SecretString::from(API_TOKEN));
        s.messaging.rate_per_second = 200;
        s.campaigns.max_rate_per_second = 150;
    })
    .await
}

fn csv_of(n: usize, prefix: &str) -> String {
    let mut csv = String::from("phone,customer_name,offer\n");
    for i in 0..n {
        csv.push_str(&format!("{prefix}{i:05},Name {i},Offer {i}\n"));
    }
    csv
}

/// A campaign whose recipients all opted in to marketing (as a website form would record
/// through the consent API), so the consent gate lets it through.
pub async fn create_campaign(app: &TestApp, n: usize, prefix: &str, rate: u32) -> i64 {
    let id = create_campaign_without_opt_in(app, n, prefix, rate).await;
    opt_in_recipients(&app.db, id).await;
    id
}

pub async fn opt_in_recipients(db: &DatabaseConnection, campaign_id: i64) {
    use insurebot::consent::{Change, NewEntry, Scope, Source};
    let recipients = campaign_recipient::Entity::find()
        .filter(campaign_recipient::Column::CampaignId.eq(campaign_id))
        .all(db)
        .await
        .unwrap();
    for r in recipients {
        let entry = NewEntry {
            contact_id: Some(r.contact_id),
            address_hash: None,
            change: Change::OptIn,
            scope: Scope::Marketing,
            source: Source::Api,
            shown_text: Some("Yes, send me offers (website form)".into()),
            occurred_at: None,
            detail: None,
        };
        insurebot::consent::record(db, entry, insurebot::store::now_ms())
            .await
            .unwrap();
    }
}

pub async fn create_campaign_without_opt_in(
    app: &TestApp,
    n: usize,
    prefix: &str,
    rate: u32,
) -> i64 {
    let settings = insurebot::config::reminders::CampaignSettings {
        default_rate_per_second: 10,
        max_rate_per_second: 150,
    };
    campaigns::create(
        &app.db,
        &settings,
        "",
        NewCampaign {
            name: "renewal offer".into(),
            template: "policy_offer".into(),
            language: "en".into(),
            rate_per_second: Some(rate),
            start_at: None,
            number: None,
            audience: Audience::Csv {
                csv: csv_of(n, prefix),
                skip_invalid: false,
            },
        },
        Utc::now(),
    )
    .await
    .unwrap()
    .id
}

pub fn campaign_sends(app: &TestApp) -> Vec<String> {
    app.sent_messages()
        .iter()
        .filter(|r| r.body["template"]["name"] == "policy_offer")
        .map(recipient_of)
        .collect()
}

pub async fn wait_until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ok().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_campaign_sends_at_its_rate_and_pauses_resumes_and_cancels() {
    for backend in backends() {
        let app = campaign_app(&backend).await;
        let id = create_campaign(&app, 60, "91970", 20).await;
        assert_eq!(campaign_report(&app.db, id).await.unwrap().pending, 60);
        // A draft sends nothing.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(campaign_sends(&app).is_empty());

        let t0 = std::time::Instant::now();
        campaigns::start(&app.db, id, Utc::now()).await.unwrap();
        wait_until("20 sends", async || campaign_sends(&app).len() >= 20).await;
        // 20/s: the first 20 cannot all go in much under a second.
        assert!(
            t0.elapsed() >= Duration::from_millis(800),
            "{:?}",
            t0.elapsed()
        );

        campaigns::pause(&app.db, id, Utc::now()).await.unwrap();
        // Rows queued before the pause (the loop may have read the campaign as running just
        // before it) still go: wait until they have, rather than for a fixed time.
        let settled = async || {
            let report = campaign_report(&app.db, id).await.unwrap();
            report.queued == 0 && report.sent as usize == campaign_sends(&app).len()
        };
        wait_until("the rows queued before the pause land", settled).await;
        let paused_at = campaign_sends(&app).len();
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            campaign_sends(&app).len(),
            paused_at,
            "nothing while paused"
        );
        assert!(campaigns::pause(&app.db, id, Utc::now()).await.is_err());

        campaigns::resume(&app.db, id, Utc::now()).await.unwrap();
        wait_until("more after resume", async || {
            campaign_sends(&app).len() >= paused_at + 10
        })
        .await;
        campaigns::cancel(&app.db, id, Utc::now()).await.unwrap();
        wait_until("the rows being sent at the cancel land", settled).await;
        let sent = campaign_sends(&app);
        assert!(sent.len() < 60, "cancel stopped the rest");
        let unique: HashSet<&String> = sent.iter().collect();
        assert_eq!(unique.len(), sent.len(), "nobody got two copies");
        let report = campaign_report(&app.db, id).await.unwrap();
        assert_eq!(report.state, CampaignState::Cancelled);
        assert_eq!(report.pending, 0);
        assert_eq!(report.sent as usize, sent.len(), "{report:?}");
        assert_eq!(
            report.sent + report.skipped.values().sum::<u64>() + report.queued,
            60,
            "{report:?}"
        );
        assert!(report.skipped.contains_key("cancelled"), "{report:?}");
        assert!(campaigns::resume(&app.db, id, Utc::now()).await.is_err());
    }
}

#[tokio::test]
async fn a_crash_in_the_middle_of_a_campaign_sends_nobody_a_second_copy() {
    for backend in backends() {
        let mut app = campaign_app(&backend).await;
        let id = create_campaign(&app, 80, "91971", 40).await;

        // A batch whose transaction never commits (the process died inside it): the
        // recipients stay pending and no outbox row exists.
        let c = insurebot::store::entities::campaign::Entity::find_by_id(id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        let batch = campaign_recipient::Entity::find()
            .filter(campaign_recipient::Column::CampaignId.eq(id))
            .all(&app.db)
            .await
            .unwrap();
        {
            let txn = insurebot::store::begin_write(&app.db).await.unwrap();
            mark_running(&*txn, id).await;
            let composer = Composer::new(&MessagingSettings::default());
            let n = campaigns::queue_rows(&txn, &composer, &c, &batch[..5], 0)
                .await
                .unwrap();
            assert_eq!(n, 5);
            drop(txn);
        }
        assert_eq!(campaign_report(&app.db, id).await.unwrap().pending, 80);

        campaigns::start(&app.db, id, Utc::now()).await.unwrap();
        wait_until("some sends", async || campaign_sends(&app).len() >= 15).await;
        app.restart().await;
        wait_until("all sends", async || campaign_sends(&app).len() >= 80).await;
        app.assert_no_more_sends(app.sent_messages().len()).await;
        let sent = campaign_sends(&app);
        let unique: HashSet<&String> = sent.iter().collect();
        assert_eq!((sent.len(), unique.len()), (80, 80));
        wait_until("completed", async || {
            campaign_report(&app.db, id).await.unwrap().state == CampaignState::Completed
        })
        .await;
        let report = campaign_report(&app.db, id).await.unwrap();
        assert_eq!((report.total, report.sent), (80, 80), "{report:?}");
    }
}

/// A drafted marketing campaign to six opted-in recipients, and its recipient rows in order.
async fn six_recipient_campaign(
    db: &sea_orm::DatabaseConnection,
) -> (i64, Vec<campaign_recipient::Model>) {
    let id = draft_csv_campaign(db, csv_of(6, "91982"), Some(10)).await;
    opt_in_recipients(db, id).await;
    let batch = campaign_recipient::Entity::find()
        .filter(campaign_recipient::Column::CampaignId.eq(id))
        .order_by_asc(campaign_recipient::Column::Id)
        .all(db)
        .await
        .unwrap();
    (id, batch)
}

#[tokio::test]
async fn rows_read_while_running_are_not_queued_once_the_campaign_is_paused() {
    for backend in backends() {
        let (db, _guard) = bare_db(&backend).await;
        let (id, batch) = six_recipient_campaign(&db).await;
        mark_running(&db, id).await;
        // The worker read the campaign and its next rows as running; the pause commits first.
        let c = insurebot::store::entities::campaign::Entity::find_by_id(id)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        campaigns::pause(&db, id, Utc::now()).await.unwrap();
        let txn = insurebot::store::begin_write(&db).await.unwrap();
        let composer = Composer::new(&MessagingSettings::default());
        let queued = campaigns::queue_rows(&txn, &composer, &c, &batch, 0)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        assert_eq!(queued, 0, "nothing queued after the pause");
        assert_eq!(outbox_rows(&db).await, 0);
        let report = campaign_report(&db, id).await.unwrap();
        assert_eq!((report.state, report.pending), (CampaignState::Paused, 6));
    }
}

/// Puts a campaign in `running` directly, as its worker sees it (rows are queued only then),
/// without starting this app's worker on it.
async fn mark_running(db: &impl sea_orm::ConnectionTrait, id: i64) {
    insurebot::store::entities::campaign::Entity::update_many()
        .col_expr(
            insurebot::store::entities::campaign::Column::State,
            sea_orm::sea_query::Expr::value(CampaignState::Running),
        )
        .filter(insurebot::store::entities::campaign::Column::Id.eq(id))
        .exec(db)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_batch_leaves_alone_the_recipients_another_instance_already_took() {
    for backend in backends() {
        let (db, _guard) = bare_db(&backend).await;
        let (id, batch) = six_recipient_campaign(&db).await;
        // The fifth recipient never opted in: the composer refuses it, with its reason.
        insurebot::store::entities::consent_log::Entity::delete_many()
            .filter(
                insurebot::store::entities::consent_log::Column::ContactId.eq(batch[4].contact_id),
            )
            .exec(&db)
            .await
            .unwrap();
        let c = insurebot::store::entities::campaign::Entity::find_by_id(id)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        let composer = Composer::new(&MessagingSettings::default());
        mark_running(&db, id).await;
        // Another instance took the first three and committed.
        let txn = insurebot::store::begin_write(&db).await.unwrap();
        assert_eq!(
            campaigns::queue_rows(&txn, &composer, &c, &batch[..3], 0)
                .await
                .unwrap(),
            3
        );
        txn.commit().await.unwrap();

        // This one still sees all six as pending (read before): it queues only the rest.
        let txn = insurebot::store::begin_write(&db).await.unwrap();
        let queued = campaigns::queue_rows(&txn, &composer, &c, &batch, 0)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        assert_eq!(queued, 2, "two of the three left; the fifth is refused");
        assert_eq!(outbox_rows(&db).await, 6, "one outbox row per recipient");
        let rows = campaign_recipient::Entity::find()
            .filter(campaign_recipient::Column::CampaignId.eq(id))
            .order_by_asc(campaign_recipient::Column::Id)
            .all(&db)
            .await
            .unwrap();
        let outbox_ids: HashSet<Option<i64>> = rows.iter().map(|r| r.outbox_id).collect();
        assert_eq!(outbox_ids.len(), 6, "{rows:?}");
        assert!(rows.iter().all(|r| r.outbox_id.is_some()), "{rows:?}");
        let states: Vec<(RecipientState, Option<&str>)> = rows
            .iter()
            .map(|r| (r.state, r.reason.as_deref()))
            .collect();
        assert_eq!(
            states,
            [
                (RecipientState::Queued, None),
                (RecipientState::Queued, None),
                (RecipientState::Queued, None),
                (RecipientState::Queued, None),
                (RecipientState::Skipped, Some("consent_no_marketing_opt_in")),
                (RecipientState::Queued, None),
            ]
        );
    }
}

#[needs_postgres]
#[tokio::test]
async fn two_instances_drive_one_campaign_without_duplicates() {
    let backend = postgres_only();
    let app = campaign_app(&backend).await;
    let _peer = app.start_peer().await;
    let id = create_campaign(&app, 100, "91972", 100).await;
    campaigns::start(&app.db, id, Utc::now()).await.unwrap();
    wait_until("all sends", async || campaign_sends(&app).len() >= 100).await;
    app.assert_no_more_sends(app.sent_messages().len()).await;
    let sent = campaign_sends(&app);
    let unique: HashSet<&String> = sent.iter().collect();
    assert_eq!((sent.len(), unique.len()), (100, 100));
}

#[tokio::test]
async fn the_campaign_api_creates_with_row_errors_starts_and_reports() {
    for backend in backends() {
        let app = campaign_app(&backend).await;
        let post = |path: String, body: serde_json::Value| {
            app.http
                .post(format!("{}{path}", app.address))
                .bearer_auth(API_TOKEN)
                .json(&body)
                .send()
        };
        let csv = "phone,customer_name,offer\n919800000601,Asha,10% off\nabc,Ravi,5% off\n919800000602,,2% off\n919800000603,Mala,3% off\n";
        let body = json!({ "name": "offer", "template": "policy_offer",
            "audience": { "kind": "csv", "csv": csv } });
        let resp = post("/api/v1/campaigns".into(), body.clone())
            .await
            .unwrap();
        assert_eq!(resp.status(), 422);
        let v: serde_json::Value = resp.json().await.unwrap();
        // One problem per invalid row, in the API's one error body.
        let rows: Vec<(&str, &str)> = v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["field"].as_str().unwrap(), p["problem"].as_str().unwrap()))
            .collect();
        assert_eq!(rows.len(), 2, "{v}");
        for ((field, problem), line) in rows.into_iter().zip([3, 4]) {
            assert_eq!(field, "audience.csv");
            assert!(problem.starts_with(&format!("line {line}: ")), "{problem}");
        }
        // A UTILITY template is refused for campaigns.
        let utility = json!({ "name": "x", "template": "premium_reminder",
            "audience": { "kind": "filter", "params": ["a", "b", "c", "d"] } });
        assert_eq!(
            post("/api/v1/campaigns".into(), utility)
                .await
                .unwrap()
                .status(),
            422
        );

        let mut ok = body;
        ok["audience"]["skip_invalid"] = json!(true);
        ok["rate_per_second"] = json!(50);
        let resp = post("/api/v1/campaigns".into(), ok).await.unwrap();
        assert_eq!(resp.status(), 201);
        let created: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(created["recipients"], 2);
        let id = created["id"].as_i64().unwrap();
        opt_in_recipients(&app.db, id).await;
        let resp = post(format!("/api/v1/campaigns/{id}/start"), json!({}))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            post(format!("/api/v1/campaigns/{id}/resume"), json!({}))
                .await
                .unwrap()
                .status(),
            409
        );
        wait_until("sent", async || campaign_sends(&app).len() >= 2).await;
        wait_until("report", async || {
            let r: serde_json::Value = app
                .http
                .get(format!("{}/api/v1/campaigns/{id}", app.address))
                .bearer_auth(API_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["sent"] == 2 && r["state"] == "completed"
        })
        .await;
        let unauthorised = app.get(&format!("/api/v1/campaigns/{id}")).await;
        assert_eq!(unauthorised.status(), 401);
    }
}

#[tokio::test]
async fn campaigns_reach_only_opted_in_contacts_within_the_frequency_cap() {
    for backend in backends() {
        let app = campaign_app(&backend).await;
        // Without a marketing opt-in: skipped with the consent gate's reason.
        let id = create_campaign_without_opt_in(&app, 3, "91973", 50).await;
        let c = campaign_recipient::Entity::find()
            .filter(campaign_recipient::Column::CampaignId.eq(id))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        opt_out(&app.db, c.contact_id, "marketing").await;
        campaigns::start(&app.db, id, Utc::now()).await.unwrap();
        wait_until("decided", async || {
            campaign_report(&app.db, id).await.unwrap().state == CampaignState::Completed
        })
        .await;
        let report = campaign_report(&app.db, id).await.unwrap();
        assert_eq!(report.sent, 0, "{report:?}");
        assert_eq!(
            report.skipped.values().sum::<u64>() as usize,
            3,
            "{report:?}"
        );
        assert!(
            report
                .skipped
                .keys()
                .all(|reason| reason.starts_with("consent_")),
            "{report:?}"
        );
        // Opted in: the cap (2 per 7 days) lets two campaigns through and stops the third.
        for round in 0..3 {
            let next = create_campaign(&app, 2, "91974", 50).await;
            campaigns::start(&app.db, next, Utc::now()).await.unwrap();
            wait_until("decided", async || {
                let r = campaign_report(&app.db, next).await.unwrap();
                r.state == CampaignState::Completed && r.queued == 0
            })
            .await;
            let report = campaign_report(&app.db, next).await.unwrap();
            if round < 2 {
                assert_eq!(
                    report.skipped.values().sum::<u64>(),
                    0,
                    "round {round}: {report:?}"
                );
            } else {
                assert_eq!(
                    report.skipped.get("consent_marketing_cap"),
                    Some(&2),
                    "{report:?}"
                );
            }
        }
        let _ = RecipientState::Skipped;
    }
}

#[test]
fn the_manual_clock_moves_only_when_told() {
    let t = Utc.with_ymd_and_hms(2026, 3, 1, 5, 0, 0).unwrap();
    let clock = ManualClock::new(t);
    use insurebot::clock::Clock;
    assert_eq!(clock.now(), t);
    clock.advance(chrono::Duration::days(1));
    assert_eq!(clock.now(), t + chrono::Duration::days(1));
}

/// A campaign list is read as the policy import reads mobiles: `09800000611` and
/// `9800000611` are the Indian number `919800000611` (before, the CSV kept `09800000611`, a
/// number that does not exist on WhatsApp), so they are one recipient, not two.
#[tokio::test]
async fn campaign_csv_numbers_in_national_form_get_the_country_code() {
    for backend in backends() {
        let app = campaign_app(&backend).await;
        let csv = "phone,customer_name,offer\n09800000611,Asha,10% off\n+91 98000-00612,Ravi,5% off\n9800000611,Asha,10% off\n";
        let body = json!({ "name": "offer", "template": "policy_offer",
            "audience": { "kind": "csv", "csv": csv, "skip_invalid": true } });
        let resp = app
            .http
            .post(format!("{}/api/v1/campaigns", app.address))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let created: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(created["recipients"], 2, "{created}");
        let problems = created["row_errors"].to_string();
        assert!(problems.contains("the same number as line 2"), "{problems}");
        let mut numbers: Vec<String> = contact::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|c| c.wa_id)
            .collect();
        numbers.sort();
        assert_eq!(numbers, ["919800000611", "919800000612"]);
    }
}

/// One phone number, one normalisation (issue 17): an insurer's national form `09812345678`
/// is the same WhatsApp number in a policy import and in a campaign CSV, so the campaign
/// reaches the contact the policy belongs to (the parsers once disagreed, and the campaign
/// went to `09812345678`, a number WhatsApp does not have).
#[tokio::test]
async fn a_national_number_is_the_same_number_in_an_import_and_a_campaign_csv() {
    for backend in backends() {
        let (db, _guard) = bare_db(&backend).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policies.csv");
        std::fs::write(
            &path,
            "policy_number,customer_id,holder_name,dob,mobile,product,plan,status,sum_assured,start_date,end_date,document_url\n\
             H-2026/000001,C9001,Asha Rao,1980-01-01,09812345678,health,Family Floater,active,500000,2026-01-01,2027-01-01,\n",
        )
        .unwrap();
        insurebot::insurer::import(&db, insurebot::insurer::ImportKind::Policies, &path, false)
            .await
            .unwrap();
        let imported = policy::Entity::find()
            .one(&db)
            .await
            .unwrap()
            .unwrap()
            .mobile;
        assert_eq!(imported.as_deref(), Some("919812345678"), "{backend:?}");

        let csv = "phone,customer_name,offer\n09812345678,Asha,10% off\n".to_owned();
        let id = draft_csv_campaign(&db, csv, None).await;
        let recipient = campaign_recipient::Entity::find()
            .filter(campaign_recipient::Column::CampaignId.eq(id))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        let to = contact::Entity::find_by_id(recipient.contact_id)
            .one(&db)
            .await
            .unwrap()
            .unwrap()
            .wa_id;
        assert_eq!(
            to, imported,
            "{backend:?}: the campaign's number is the policy's"
        );
    }
}

/// A drafted `policy_offer` campaign to the numbers of `csv`; its id.
async fn draft_csv_campaign(
    db: &sea_orm::DatabaseConnection,
    csv: String,
    rate_per_second: Option<u32>,
) -> i64 {
    let settings = insurebot::config::reminders::CampaignSettings {
        default_rate_per_second: 10,
        max_rate_per_second: 150,
    };
    let new = NewCampaign {
        name: "renewal offer".into(),
        template: "policy_offer".into(),
        language: "en".into(),
        rate_per_second,
        start_at: None,
        number: None,
        audience: Audience::Csv {
            csv,
            skip_invalid: false,
        },
    };
    campaigns::create(db, &settings, "", new, Utc::now())
        .await
        .unwrap()
        .id
}
