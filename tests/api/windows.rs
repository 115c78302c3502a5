//! The 24-hour window per contact and business number (issue 20 item 3): Meta keeps one window
//! between a user and each business number, so a message to the claims line lets the claims
//! line send free-form text and nothing else; and the number a reminder or a notification
//! about a policy leaves from is the policy's.

use std::collections::BTreeMap;

use insurebot::config::numbers::NumberSettings;
use insurebot::store::entities::{contact, contact_window};
use insurebot::whatsapp::fake::ReceivedRequest;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::*;

use crate::numbers::{CLAIMS, SALES};

fn number(id: &str, display: &str) -> NumberSettings {
    NumberSettings {
        display_number: Some(display.to_owned()),
        ..crate::numbers::number(id, None)
    }
}

fn two_numbers(s: &mut insurebot::config::Settings) {
    crate::consent::configure(s);
    s.whatsapp.numbers = vec![
        number(CLAIMS, "+91 22 5555 0101"),
        number(SALES, "+91 22 5555 0202"),
    ];
}

async fn write_to(app: &TestApp, to: &str, from: &str, at_secs: i64, body: &str) {
    let message = text_message(from, &new_wamid(), at_secs, body);
    let response = app.post_webhook(&envelope_to(to, vec![message])).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// Asks for a notification; it must be accepted.
async fn notify(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, body) = crate::numbers::notify(app, key, body).await;
    assert_eq!(status, 202, "{body}");
    body
}

fn claim_update(phone: &str, number: &str) -> Value {
    json!({ "kind": "claim_update", "phone": phone, "number": number,
        "data": { "claim_number": "CLM-000042", "claim_stage": "approved" } })
}

/// Whether the fake received `send` as a template (outside a window) or as free-form text.
fn as_template(send: &ReceivedRequest) -> bool {
    send.body["type"] == "template"
}

/// The contact with WhatsApp number `phone`.
async fn contact_of(app: &TestApp, phone: &str) -> contact::Model {
    contact::Entity::find()
        .filter(contact::Column::WaId.eq(phone))
        .one(&app.db)
        .await
        .unwrap()
        .expect("the contact")
}

/// The contact's windows: number → start.
async fn windows(app: &TestApp, phone: &str) -> BTreeMap<String, i64> {
    let c = contact_of(app, phone).await;
    contact_window::Entity::find()
        .filter(contact_window::Column::ContactId.eq(c.id))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.phone_number_id, w.last_inbound_at))
        .collect()
}

fn opened(windows: &[(&str, i64)]) -> BTreeMap<String, i64> {
    windows
        .iter()
        .map(|(n, at)| ((*n).to_owned(), *at))
        .collect()
}

#[tokio::test]
async fn a_message_to_one_number_opens_the_window_on_that_number_only() {
    for backend in backends() {
        let app = spawn_app_with(&backend, two_numbers).await;
        let phone = "919800002001";
        let t = now_secs();
        write_to(&app, CLAIMS, phone, t, "hello").await;
        app.wait_for_sends(1).await;
        assert_eq!(
            windows(&app, phone).await,
            opened(&[(CLAIMS, t * 1000)]),
            "{backend:?}"
        );

        // From the sales line, whose window the contact never opened: the template.
        notify(&app, "w-1", claim_update(phone, SALES)).await;
        let sent = app.wait_for_sends(2).await;
        assert_eq!(sent[1].phone_number_id, SALES, "{backend:?}");
        assert!(as_template(&sent[1]), "{backend:?}: {}", sent[1].body);
        assert_eq!(sent[1].body["template"]["name"], "claim_status_update");
        // From the claims line, inside the window the contact opened there: free-form text.
        notify(&app, "w-2", claim_update(phone, CLAIMS)).await;
        let sent = app.wait_for_sends(3).await;
        assert_eq!(sent[2].phone_number_id, CLAIMS, "{backend:?}");
        assert!(!as_template(&sent[2]), "{backend:?}: {}", sent[2].body);
        assert!(text_of(&sent[2]).contains("CLM-000042"), "{backend:?}");

        // Writing to the sales line opens its window too; the claims line's stays as it was.
        write_to(&app, SALES, phone, t + 1, "hello sales").await;
        app.wait_for_sends(4).await;
        assert_eq!(
            windows(&app, phone).await,
            opened(&[(CLAIMS, t * 1000), (SALES, (t + 1) * 1000)]),
            "{backend:?}"
        );
        notify(&app, "w-3", claim_update(phone, SALES)).await;
        let sent = app.wait_for_sends(5).await;
        assert_eq!(sent[4].phone_number_id, SALES, "{backend:?}");
        assert!(!as_template(&sent[4]), "{backend:?}: {}", sent[4].body);

        // A late redelivery of an older message to the claims line (a new wamid, an older
        // time) does not move that window back.
        write_to(&app, CLAIMS, phone, t - 600, "late").await;
        app.wait_for_sends(6).await;
        assert_eq!(
            windows(&app, phone).await,
            opened(&[(CLAIMS, t * 1000), (SALES, (t + 1) * 1000)]),
            "{backend:?}"
        );
        app.assert_no_more_sends(6).await;
    }
}

#[tokio::test]
async fn a_window_closed_on_the_number_sends_the_template_though_another_number_is_open() {
    // The number's own window decides, not the contact's newest message to any number.
    for backend in backends() {
        let app = spawn_app_with(&backend, two_numbers).await;
        let phone = "919800002101";
        write_to(&app, SALES, phone, now_secs(), "hello").await;
        app.wait_for_sends(1).await;
        // The claims line's window closed a day ago; the sales line's is open now.
        let c = contact_of(&app, phone).await;
        contact_window::Entity::insert(contact_window::ActiveModel {
            contact_id: sea_orm::Set(c.id),
            phone_number_id: sea_orm::Set(CLAIMS.to_owned()),
            last_inbound_at: sea_orm::Set(insurebot::store::now_ms() - 26 * 3_600_000),
        })
        .exec_without_returning(&app.db)
        .await
        .unwrap();
        notify(&app, "w-4", claim_update(phone, CLAIMS)).await;
        let sent = app.wait_for_sends(2).await;
        assert_eq!(sent[1].phone_number_id, CLAIMS, "{backend:?}");
        assert!(as_template(&sent[1]), "{backend:?}: {}", sent[1].body);
        app.assert_no_more_sends(2).await;
    }
}

const POLICIES_HEADER: &str = "policy_number,customer_id,holder_name,dob,mobile,product,plan,status,sum_assured,start_date,end_date,number\n";

/// Imports `rows` (after [`POLICIES_HEADER`]) as the deployment with both numbers would.
pub(crate) async fn import_policies(
    db: &sea_orm::DatabaseConnection,
    rows: &str,
) -> Result<insurebot::insurer::ImportReport, insurebot::insurer::ImportError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policies.csv");
    std::fs::write(&path, format!("{POLICIES_HEADER}{rows}")).unwrap();
    insurebot::insurer::import_numbered(
        db,
        insurebot::insurer::ImportKind::Policies,
        &path,
        false,
        &[CLAIMS.to_owned(), SALES.to_owned()],
    )
    .await
}

#[tokio::test]
async fn an_import_refuses_a_policy_number_line_not_configured_naming_row_and_column() {
    for backend in backends() {
        let app = spawn_app_with(&backend, two_numbers).await;
        let err = import_policies(
            &app.db,
            "H-2026/000101,C9101,Asha Rao,1980-01-01,919800002201,health,Floater,active,500000,2026-01-01,2027-01-01,106540352249999\n",
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 2, column number: '106540352249999' is not one of this deployment's business numbers"),
            "{backend:?}: {err}"
        );
        assert!(
            err.contains(SALES),
            "{backend:?}: the configured ones are named: {err}"
        );
        // A configured number (or none) is stored with the policy.
        import_policies(
            &app.db,
            "H-2026/000101,C9101,Asha Rao,1980-01-01,919800002201,health,Floater,active,500000,2026-01-01,2027-01-01,106540352240002\n\
             H-2026/000102,C9102,Ravi Rao,1980-01-01,919800002202,health,Floater,active,500000,2026-01-01,2027-01-01,\n",
        )
        .await
        .unwrap();
        let mut stored: Vec<(String, Option<String>)> =
            insurebot::store::entities::policy::Entity::find()
                .all(&app.db)
                .await
                .unwrap()
                .into_iter()
                .map(|p| (p.policy_number, p.number))
                .collect();
        stored.sort();
        assert_eq!(
            stored,
            [
                ("H-2026/000101".to_owned(), Some(SALES.to_owned())),
                ("H-2026/000102".to_owned(), None)
            ],
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn a_premium_reminder_leaves_from_its_policys_number() {
    use insurebot::reminders::premium;
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            two_numbers(s);
            // The sender holds reminders in quiet hours; this test runs at any hour.
            s.reminders.quiet_start = "00:00".into();
            s.reminders.quiet_end = "00:00".into();
        })
        .await;
        // The policyholder of the sales-line policy last wrote to the claims line; the other
        // policy names no line and its holder wrote to the sales line.
        let (asha, ravi) = ("919800002301", "919800002302");
        write_to(&app, CLAIMS, asha, now_secs(), "hello").await;
        write_to(&app, SALES, ravi, now_secs(), "hello").await;
        app.wait_for_sends(2).await;
        import_policies(
            &app.db,
            &format!(
                "H-2026/000301,C9301,Asha Rao,1980-01-01,{asha},health,Floater,active,500000,2026-01-01,2027-01-01,{SALES}\n\
                 H-2026/000302,C9302,Ravi Rao,1980-01-01,{ravi},health,Floater,active,500000,2026-01-01,2027-01-01,\n"
            ),
        )
        .await
        .unwrap();
        let today = chrono::Utc::now().date_naive();
        let due = today + chrono::Duration::days(7);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("premiums.csv");
        std::fs::write(
            &path,
            format!(
                "policy_number,due_date,amount,status\nH-2026/000301,{due},2450,due\nH-2026/000302,{due},2450,due\n"
            ),
        )
        .unwrap();
        insurebot::insurer::import(
            &app.db,
            insurebot::insurer::ImportKind::Premiums,
            &path,
            false,
        )
        .await
        .unwrap();

        let mut settings = insurebot::config::Settings::default();
        two_numbers(&mut settings);
        let r = premium::Reminders {
            settings: Default::default(),
            composer: insurebot::messaging::composer::Composer::from_settings(&settings),
            pay_links: insurebot::insurer::PayLinks::new(
                "https://pay.example.in/p/{policy_number}?t={token}",
                b"0123456789abcdef0123",
                chrono::Duration::hours(48),
            ),
            i18n: None,
            default_language: "en".into(),
            instance_id: "windows-test".into(),
        };
        let morning =
            chrono::TimeZone::from_utc_datetime(&chrono::Utc, &today.and_hms_opt(5, 0, 0).unwrap());
        let report = premium::run_day(&app.db, &r, today, morning).await.unwrap();
        assert_eq!(report.queued, 2, "{backend:?}: {report:?}");
        let sent = app.wait_for_sends(4).await;
        let to = |phone: &str| {
            sent[2..]
                .iter()
                .find(|s| recipient_of(s) == phone)
                .unwrap_or_else(|| panic!("{backend:?}: no reminder to {phone}"))
                .clone()
        };
        // The policy's line, though Asha wrote to the other; its window is closed there.
        let to_asha = to(asha);
        assert_eq!(to_asha.phone_number_id, SALES, "{backend:?}");
        assert!(as_template(&to_asha), "{backend:?}: {}", to_asha.body);
        assert_eq!(to_asha.body["template"]["name"], "premium_reminder");
        // No line on the policy: the one the contact wrote to, whose window is open.
        let to_ravi = to(ravi);
        assert_eq!(to_ravi.phone_number_id, SALES, "{backend:?}");
        assert!(!as_template(&to_ravi), "{backend:?}: {}", to_ravi.body);
        app.assert_no_more_sends(4).await;
    }
}

#[tokio::test]
async fn a_notification_naming_a_policy_leaves_from_the_policys_number() {
    for backend in backends() {
        let app = spawn_app_with(&backend, two_numbers).await;
        let phone = "919800002401";
        import_policies(
            &app.db,
            &format!(
                "H-2026/000401,C9401,Asha Rao,1980-01-01,{phone},health,Floater,active,500000,2026-01-01,2027-01-01,{SALES}\n"
            ),
        )
        .await
        .unwrap();
        let claim = |key_number: Option<&str>| {
            let mut body = json!({ "kind": "claim_update", "policy_number": "H-2026/000401",
                "data": { "claim_number": "CLM-000043", "claim_stage": "approved" } });
            if let Some(n) = key_number {
                body["number"] = json!(n);
            }
            body
        };
        // Naming no number: the policy's, although the deployment's first is the claims line.
        notify(&app, "p-1", claim(None)).await;
        let sent = app.wait_for_sends(1).await;
        assert_eq!(sent[0].phone_number_id, SALES, "{backend:?}");
        // Naming one: that one wins over the policy's.
        notify(&app, "p-2", claim(Some(CLAIMS))).await;
        let sent = app.wait_for_sends(2).await;
        assert_eq!(sent[1].phone_number_id, CLAIMS, "{backend:?}");
        app.assert_no_more_sends(2).await;
    }
}

#[tokio::test]
async fn the_console_shows_the_window_on_each_number() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            two_numbers(s);
            s.dialogue.handler = insurebot::config::DialogueMode::Flows;
        })
        .await;
        crate::console::add_agent(
            &app,
            "asha@example.com",
            insurebot::http::console::auth::Role::Agent,
        )
        .await;
        let phone = "919800002501";
        // Wrote to the sales line over a day ago (closed), and asks the claims line for an agent.
        write_to(&app, SALES, phone, now_secs(), "hello").await;
        app.wait_for_sends(1).await;
        contact_window::Entity::update_many()
            .col_expr(
                contact_window::Column::LastInboundAt,
                sea_orm::sea_query::Expr::value(insurebot::store::now_ms() - 26 * 3_600_000),
            )
            .exec(&app.db)
            .await
            .unwrap();
        // `envelope` writes to the helpers' number, the claims line.
        let waiting = crate::console::queued_handoff(&app, phone).await;
        let agent = crate::console::login(&app, "asha@example.com").await;
        let taken = agent.take(waiting.id).await;
        assert!(taken.status().is_redirection(), "{backend:?}");
        let page = agent
            .get(&format!("/console/conversations/{}", waiting.contact_id))
            .await
            .text()
            .await
            .unwrap();
        // The conversation's line (where replies leave from) decides; the other is shown.
        assert!(
            page.contains("id=\"window-state\">Window with +91 22 5555 0101: open until"),
            "{backend:?}: {page}"
        );
        assert!(
            page.contains("Window with +91 22 5555 0202: the 24-hour window closed at"),
            "{backend:?}: {page}"
        );
    }
}

#[tokio::test]
async fn the_migration_opens_each_window_from_the_stored_messages() {
    use insurebot::store::entities::inbound_message;
    use migrations::{Migrator, MigratorTrait};
    use sea_orm::ActiveValue::{NotSet, Set};
    for backend in backends() {
        let test_db = TestDb::create(&backend).await;
        let db =
            insurebot::store::connect(&insurebot::config::DatabaseUrl::new(test_db.url.clone()))
                .await
                .unwrap();
        // The schema as it was before the windows were kept per number.
        let before = Migrator::migrations()
            .iter()
            .position(|m| m.name().contains("_000031_"))
            .expect("migration 000031");
        Migrator::up(&db, Some(u32::try_from(before).unwrap()))
            .await
            .unwrap();
        let contact_id = insert_contact(&db, "919800002601").await.id;
        let lone = insert_contact(&db, "919800002602").await.id;
        // Two messages to the claims line, one to the sales line, one naming no number.
        for (contact, number, at) in [
            (contact_id, Some(CLAIMS), 1_000),
            (contact_id, Some(CLAIMS), 3_000),
            (contact_id, Some(SALES), 2_000),
            (lone, None, 4_000),
        ] {
            inbound_message::Entity::insert(inbound_message::ActiveModel {
                id: NotSet,
                wamid: Set(new_wamid()),
                contact_id: Set(contact),
                phone_number_id: Set(number.map(str::to_owned)),
                msg_type: Set("text".into()),
                content: Set(None),
                raw: Set(None),
                sent_at: Set(at),
                received_at: Set(at),
                processed_at: Set(Some(at)),
                attempts: Set(0),
                last_error: Set(None),
            })
            .exec_without_returning(&db)
            .await
            .unwrap();
        }
        Migrator::up(&db, Some(1)).await.unwrap();
        let mut rows: Vec<(i64, String, i64)> = contact_window::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|w| (w.contact_id, w.phone_number_id, w.last_inbound_at))
            .collect();
        rows.sort();
        let mut want = vec![
            (contact_id, CLAIMS.to_owned(), 3_000),
            (contact_id, SALES.to_owned(), 2_000),
        ];
        want.sort();
        // The message naming no number opens no row: the composer reads the contact's own
        // window start as the first number's.
        assert_eq!(rows, want, "{backend:?}");
    }
}
