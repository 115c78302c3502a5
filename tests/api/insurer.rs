//! The insurer layer end to end on a real database (SQLite, and PostgreSQL when configured):
//! CSV import, identity (registered number, policy number + date of birth, lockout, expiry),
//! the flow actions, the guarantee that nobody reads another person's data, and the HTTP
//! source against a real HTTP server that is slow, failing, down or talking garbage.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeZone, Utc};
use insurebot::config::{
    DatabaseUrl, DialogueMode, InsurerHttpSettings, InsurerSettings, PolicySourceKind,
};
use insurebot::insurer::{
    ActionResult, HttpSource, ImportError, ImportKind, Insurer, PolicySource, SourceError,
};
use insurebot::store::entities::{claim, contact, policy, policyholder, premium, premium_reminder};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, TestDb, backends, envelope, new_wamid, now_secs, recipient_of, shown,
    spawn_app_with, text_message,
};
use insurebot::whatsapp::fake::ReceivedRequest;

const PAY_SECRET: &str = "test-pay-link-secret-0123";
/// The sandbox contact: registered on a health, a motor and a life policy.
pub(crate) const RAJESH: &str = "919812345678";
/// Registered on two policies of her own.
const PRIYA: &str = "919876501234";
/// Registered nowhere.
const STRANGER: &str = "919800000002";

/// The sample data's own "today" (it is imported unshifted here), 11:30 in India.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 6, 0, 0).unwrap()
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/insurer/sample")
        .join(name)
}

fn settings() -> InsurerSettings {
    InsurerSettings {
        pay_link_secret: Some(SecretString::from(PAY_SECRET)),
        ..InsurerSettings::default()
    }
}

struct Fixture {
    db: DatabaseConnection,
    insurer: Insurer,
    _db: TestDb,
}

async fn database(backend: &Backend) -> (TestDb, DatabaseConnection) {
    let test_db = TestDb::create(backend).await;
    let db = insurebot::store::connect(&DatabaseUrl::new(test_db.url.clone()))
        .await
        .expect("connect");
    insurebot::store::migrate(&db).await.expect("migrate");
    (test_db, db)
}

/// A migrated database with the sample policies, claims and premiums imported.
async fn fixture(backend: &Backend) -> Fixture {
    let (test_db, db) = database(backend).await;
    for (kind, file) in [
        (ImportKind::Policies, "policies.csv"),
        (ImportKind::Claims, "claims.csv"),
        (ImportKind::Premiums, "premiums.csv"),
    ] {
        insurebot::insurer::import(&db, kind, &sample(file), false)
            .await
            .expect("sample imports");
    }
    let insurer = Insurer::from_settings(&settings(), db.clone()).expect("insurer");
    Fixture {
        db,
        insurer,
        _db: test_db,
    }
}

impl Fixture {
    async fn contact(&self, wa_id: &str) -> contact::Model {
        crate::helpers::insert_contact(&self.db, wa_id).await
    }

    async fn run(&self, who: &contact::Model, action: &str, args: Value) -> ActionResult {
        self.run_at(who, action, args, now()).await
    }

    async fn run_at(
        &self,
        who: &contact::Model,
        action: &str,
        args: Value,
        at: DateTime<Utc>,
    ) -> ActionResult {
        // The runner calls actions inside its transaction; do the same.
        let txn = insurebot::store::begin_write(&self.db).await.expect("txn");
        let result = self.insurer.run_action(&txn, who, action, &args, at).await;
        txn.commit().await.expect("commit");
        result
    }
}

fn write_temp(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.csv");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn messages(err: ImportError) -> Vec<String> {
    match err {
        ImportError::Invalid { errors, .. } => errors.iter().map(ToString::to_string).collect(),
        other => panic!("expected invalid rows, got {other}"),
    }
}

#[tokio::test]
async fn an_import_with_a_bad_row_writes_nothing_unless_told_to_skip_it() {
    for backend in backends() {
        let f = fixture(&backend).await;
        let (_dir, path) = write_temp(
            "claim_number,policy_number,stage,pending_documents,claim_amount,filed_date,updated_date\n\
             CLM-300001,H-2023/100245,intimated,2,5000,2026-11-01,2026-11-02\n\
             CLM-300002,H-2023/100245,lost,0,,2026-11-01,2026-11-02\n\
             CLM-300003,Z-0000/000000,approved,0,,2026-11-01,2026-11-02\n\
             CLM-300004,M-2025/778812,approved,0,\"12,000\",2026-11-01,2026-11-03\n",
        );
        let err = insurebot::insurer::import(&f.db, ImportKind::Claims, &path, false)
            .await
            .unwrap_err();
        assert_eq!(
            messages(err),
            vec![
                "line 3, column stage: 'lost' is not one of intimated, documents_pending, under_review, approved, settled, rejected, closed",
                "line 4, column policy_number: no policy with this number (import policies first)",
            ],
            "{backend:?}"
        );
        assert_eq!(
            claim::Entity::find().count(&f.db).await.unwrap(),
            6,
            "nothing written"
        );

        let report = insurebot::insurer::import(&f.db, ImportKind::Claims, &path, true)
            .await
            .unwrap();
        assert_eq!(
            (report.rows, report.imported, report.skipped_rows),
            (4, 2, 2)
        );
        assert_eq!(report.skipped[0].line, 3);
        assert_eq!(report.skipped[0].column.as_deref(), Some("stage"));
        assert_eq!(report.skipped[1].line, 4);
        assert_eq!(claim::Entity::find().count(&f.db).await.unwrap(), 8);
    }
}

#[tokio::test]
async fn importing_the_same_files_again_updates_rows_instead_of_duplicating_them() {
    for backend in backends() {
        let f = fixture(&backend).await;
        for (kind, file, rows) in [
            (ImportKind::Policies, "policies.csv", 7),
            (ImportKind::Claims, "claims.csv", 6),
            (ImportKind::Premiums, "premiums.csv", 11),
        ] {
            let report = insurebot::insurer::import(&f.db, kind, &sample(file), false)
                .await
                .unwrap();
            assert_eq!(
                (report.created, report.updated),
                (0, rows),
                "{kind:?} {backend:?}"
            );
        }
        assert_eq!(policy::Entity::find().count(&f.db).await.unwrap(), 7);
        assert_eq!(premium::Entity::find().count(&f.db).await.unwrap(), 11);

        // A changed export updates the stored row.
        let (_dir, path) = write_temp(
            "policy_number,due_date,amount,status,paid_date\nH-2023/100245,2026-12-05,24850,paid,2026-11-25\n",
        );
        insurebot::insurer::import(&f.db, ImportKind::Premiums, &path, false)
            .await
            .unwrap();
        let row = premium::Entity::find()
            .filter(premium::Column::PolicyNumber.eq("H-2023/100245"))
            .filter(premium::Column::DueDate.eq("2026-12-05"))
            .one(&f.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, "paid");
        assert_eq!(premium::Entity::find().count(&f.db).await.unwrap(), 11);
    }
}

/// A policies export of `rows` rows, three policies per holder; `edit` may change any line.
fn policies_export(rows: usize, edit: impl Fn(usize, String) -> String) -> String {
    let mut text = String::from(
        "policy_number,customer_id,holder_name,dob,mobile,product,plan,status,sum_assured,start_date,end_date,document_url\n",
    );
    for n in 0..rows {
        let holder = n / 3;
        let line = format!(
            "P-{n:08},C{holder:07},Holder {holder},1980-01-{:02},91{:010},health,Plan {n},active,{},2024-01-01,,https://docs.example.in/p/{n}.pdf",
            1 + holder % 28,
            7_000_000_000 + holder,
            1000 + n,
        );
        text.push_str(&edit(n, line));
        text.push('\n');
    }
    text
}

#[tokio::test]
async fn a_large_import_gives_the_same_results_across_batch_boundaries_on_every_backend() {
    // 25,001 rows cross the SQLite (1,000) and PostgreSQL (10,000) batch sizes; holder 3333
    // owns rows 9,999 to 10,001, which straddle the first PostgreSQL batch boundary.
    const ROWS: usize = 25_001;
    for backend in backends() {
        let (_test_db, db) = database(&backend).await;
        let broken = policies_export(ROWS, |n, line| match n {
            // Data rows are file lines n + 2.
            10_000 => line.replace(",active,", ",sleeping,"),
            20_000 => line.replace("https://", "http://"),
            10_001 => line.replace("Holder 3333,", "Holder 3333 Renamed,"),
            _ => line,
        });
        let (_dir, path) = write_temp(&broken);
        let err = insurebot::insurer::import(&db, ImportKind::Policies, &path, false)
            .await
            .unwrap_err();
        assert_eq!(
            messages(err),
            vec![
                "line 10002, column status: 'sleeping' is not one of active, grace, lapsed, matured, expired, cancelled, surrendered",
                "line 20002, column document_url: must be an https:// link",
            ],
            "{backend:?}"
        );
        assert_eq!(policy::Entity::find().count(&db).await.unwrap(), 0);
        assert_eq!(policyholder::Entity::find().count(&db).await.unwrap(), 0);

        let report = insurebot::insurer::import(&db, ImportKind::Policies, &path, true)
            .await
            .unwrap();
        assert_eq!(
            (
                report.rows,
                report.imported,
                report.created,
                report.updated,
                report.skipped_rows
            ),
            (ROWS as u64, ROWS as u64 - 2, ROWS as u64 - 2, 0, 2),
            "{backend:?}"
        );
        assert_eq!(
            policyholder::Entity::find().count(&db).await.unwrap(),
            ROWS.div_ceil(3) as u64
        );
        let holder = policyholder::Entity::find()
            .filter(policyholder::Column::CustomerId.eq("C0003333"))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            holder.name, "Holder 3333 Renamed",
            "the last row of a holder wins"
        );

        // The corrected export: the two skipped rows are new, every other row an update.
        let fixed = policies_export(ROWS, |n, line| {
            if n == 7 {
                line.replace(",active,", ",lapsed,")
            } else {
                line
            }
        });
        let (_dir2, path) = write_temp(&fixed);
        let report = insurebot::insurer::import(&db, ImportKind::Policies, &path, false)
            .await
            .unwrap();
        assert_eq!(
            (report.imported, report.created, report.updated),
            (ROWS as u64, 2, ROWS as u64 - 2),
            "{backend:?}"
        );
        assert_eq!(
            policy::Entity::find().count(&db).await.unwrap(),
            ROWS as u64
        );
        let p = policy::Entity::find()
            .filter(policy::Column::PolicyNumber.eq("P-00000007"))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.status, "lapsed");
        assert!(p.updated_at >= p.created_at);
        let p = policy::Entity::find()
            .filter(policy::Column::PolicyNumber.eq("P-00020000"))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            p.document_url.as_deref(),
            Some("https://docs.example.in/p/20000.pdf")
        );
    }
}

#[tokio::test]
async fn a_nul_character_is_a_row_error_that_names_its_column() {
    for backend in backends() {
        let (_test_db, db) = database(&backend).await;
        let text = policies_export(3, |n, line| {
            if n == 1 {
                line.replace("Plan 1", "Plan\0 1")
            } else {
                line
            }
        });
        let (_dir, path) = write_temp(&text);
        let err = insurebot::insurer::import(&db, ImportKind::Policies, &path, false)
            .await
            .unwrap_err();
        assert_eq!(
            messages(err),
            ["line 3, column plan: contains a NUL character"],
            "{backend:?}"
        );
        let report = insurebot::insurer::import(&db, ImportKind::Policies, &path, true)
            .await
            .unwrap();
        assert_eq!((report.created, report.skipped_rows), (2, 1), "{backend:?}");
    }
}

#[tokio::test]
async fn a_registered_number_is_verified_and_sees_its_policies_claims_and_premiums() {
    for backend in backends() {
        let f = fixture(&backend).await;
        let rajesh = f.contact(RAJESH).await;

        let check = f.run(&rajesh, "identity.check", json!({})).await;
        assert_eq!(check.outcome, "verified", "{backend:?}");
        assert_eq!(
            check.data,
            json!({ "verified": true, "customer_name": "Rajesh Kumar Sharma" })
        );

        let list = f.run(&rajesh, "policy.list", json!({})).await;
        assert_eq!(list.outcome, "many");
        assert_eq!(list.data["policy_count"], 3);
        let ids: Vec<&str> = list.data["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["policy_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["H-2023/100245", "L-2021/009876", "M-2025/778812"]);
        assert_eq!(list.data["policies"][0]["plan"], "Arogya Family Floater");

        let details = f
            .run(
                &rajesh,
                "policy.details",
                json!({ "policy_id": "H-2023/100245" }),
            )
            .await;
        assert_eq!(details.outcome, "found");
        assert_eq!(
            details.data,
            json!({
                "policy_number": "H-2023/100245", "plan": "Arogya Family Floater",
                "policy_status": "active", "policy_type": "health", "sum_assured": 1000000.0, "next_due_date": "2026-12-05"
            })
        );

        let claim = f
            .run(
                &rajesh,
                "claim.status",
                json!({ "claim_number": "clm240455" }),
            )
            .await;
        assert_eq!(claim.outcome, "documents_pending");
        assert_eq!(
            claim.data,
            json!({ "claim_stage": "documents_pending", "claim_updated_date": "2026-11-22", "pending_documents": 2, "claim_letter": [] })
        );

        let due = f
            .run(
                &rajesh,
                "premium.due",
                json!({ "policy_id": "H-2023/100245" }),
            )
            .await;
        assert_eq!(due.outcome, "due");
        assert_eq!(due.data["premium_amount"], 24850.0);
        assert_eq!(due.data["due_date"], "2026-12-05");
        let link = due.data["pay_link"].as_str().unwrap();
        let token = link
            .strip_prefix("https://pay.example.in/p/H-2023%2F100245?t=")
            .expect(link);
        let vouched = f
            .insurer
            .pay_links()
            .verify("H-2023/100245", token, now())
            .unwrap();
        assert_eq!(vouched.amount_paise, 2_485_000);

        // The motor policy renews in two weeks: its renewal premium is due then.
        let renewal = f
            .run(
                &rajesh,
                "premium.due",
                json!({ "policy_id": "M-2025/778812" }),
            )
            .await;
        assert_eq!(
            (renewal.outcome.as_str(), &renewal.data["due_date"]),
            ("due", &json!("2026-12-10"))
        );
        let later = f
            .run(
                &rajesh,
                "premium.due",
                json!({ "policy_id": "L-2021/009876" }),
            )
            .await;
        assert_eq!(
            later.outcome, "not_due",
            "due in March: outside the 30-day window"
        );

        let remind = f
            .run(
                &rajesh,
                "premium.remind_later",
                json!({ "policy_id": "H-2023/100245", "due_date": "2026-12-05" }),
            )
            .await;
        assert_eq!(
            remind,
            ActionResult::new("scheduled", json!({ "remind_date": "2026-12-02" }))
        );
        let stored = premium_reminder::Entity::find().all(&f.db).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].contact_id, rajesh.id);
    }
}

#[tokio::test]
async fn an_unregistered_number_is_verified_by_policy_number_and_date_of_birth() {
    for backend in backends() {
        let f = fixture(&backend).await;
        let anjali = f.contact(STRANGER).await;
        let check = f.run(&anjali, "identity.check", json!({})).await;
        assert_eq!(
            check,
            ActionResult::new("not_registered", json!({ "verified": false }))
        );
        assert_eq!(
            f.run(&anjali, "policy.list", json!({})).await.outcome,
            "none"
        );

        // As the flow saves them: upper case policy number, date as yyyy-mm-dd.
        let ok = f
            .run(
                &anjali,
                "identity.verify_dob",
                json!({ "policy_number": "M-2024/556120", "dob": "1992-12-05" }),
            )
            .await;
        assert_eq!(
            ok,
            ActionResult::new(
                "verified",
                json!({ "verified": true, "customer_name": "Anjali Deshpande" })
            ),
            "{backend:?}"
        );
        let list = f.run(&anjali, "policy.list", json!({})).await;
        assert_eq!(list.outcome, "one");
        assert_eq!(list.data["policy_id"], "M-2024/556120");
        let claim = f
            .run(
                &anjali,
                "claim.status",
                json!({ "claim_number": "CLM-240501" }),
            )
            .await;
        assert_eq!(
            claim.outcome, "documents_pending",
            "three documents pending"
        );
        assert_eq!(
            f.run(&anjali, "identity.check", json!({})).await.outcome,
            "verified",
            "an earlier verification still counts"
        );
    }
}

#[tokio::test]
async fn three_wrong_dates_of_birth_lock_verification_out_for_the_configured_time() {
    for backend in backends() {
        let f = fixture(&backend).await;
        let someone = f.contact(STRANGER).await;
        let attempt = |dob: &str| json!({ "policy_number": "M-2024/556120", "dob": dob });

        for expected in ["mismatch", "mismatch", "locked"] {
            let r = f
                .run(&someone, "identity.verify_dob", attempt("1992-05-12"))
                .await;
            assert_eq!(
                r,
                ActionResult::new(expected, json!({ "verified": false })),
                "{backend:?}"
            );
        }
        // Even the right answer is refused while locked, and identity.check says so too.
        let right = f
            .run(&someone, "identity.verify_dob", attempt("1992-12-05"))
            .await;
        assert_eq!(right.outcome, "locked");
        assert_eq!(
            f.run(&someone, "identity.check", json!({})).await.outcome,
            "locked"
        );
        assert_eq!(
            f.run(&someone, "policy.list", json!({})).await.outcome,
            "none"
        );

        // After the lockout (30 minutes by default) the right answer verifies.
        let later = now() + chrono::Duration::minutes(31);
        let r = f
            .run_at(
                &someone,
                "identity.verify_dob",
                attempt("1992-12-05"),
                later,
            )
            .await;
        assert_eq!(r.outcome, "verified");

        // An unknown policy number counts as a failure too (it must not reveal which exist).
        let unknown = json!({ "policy_number": "Q-0000/000001", "dob": "1992-12-05" });
        let r = f
            .run_at(&someone, "identity.verify_dob", unknown, later)
            .await;
        assert_eq!(r.outcome, "mismatch");
    }
}

#[tokio::test]
async fn a_verification_expires_after_the_configured_time() {
    for backend in backends() {
        let f = fixture(&backend).await;
        let anjali = f.contact(STRANGER).await;
        let r = f
            .run(
                &anjali,
                "identity.verify_dob",
                json!({ "policy_number": "M-2024/556120", "dob": "05/12/1992" }),
            )
            .await;
        assert_eq!(r.outcome, "verified");
        let args = json!({ "policy_id": "M-2024/556120" });
        let within = now() + chrono::Duration::minutes(29);
        let after = now() + chrono::Duration::minutes(31);
        assert_eq!(
            f.run_at(&anjali, "policy.details", args.clone(), within)
                .await
                .outcome,
            "found"
        );
        assert_eq!(
            f.run_at(&anjali, "policy.details", args.clone(), after)
                .await
                .outcome,
            "not_found"
        );
        assert_eq!(
            f.run_at(&anjali, "policy.list", json!({}), after)
                .await
                .outcome,
            "none"
        );
        assert_eq!(
            f.run_at(&anjali, "premium.due", args, after).await.outcome,
            "error"
        );
        assert_eq!(
            f.run_at(&anjali, "identity.check", json!({}), after)
                .await
                .outcome,
            "not_registered",
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn a_verified_contact_gets_its_own_open_claims_and_policy_documents_and_nobody_elses() {
    for backend in backends() {
        let f = fixture(&backend).await;
        let rajesh = f.contact(RAJESH).await;
        let priya = f.contact(PRIYA).await;
        let mohammed = f.contact("919900122334").await; // one policy, no claims
        let anjali = f.contact(STRANGER).await; // no registered number: verifies by date of birth
        for who in [&rajesh, &priya, &mohammed] {
            assert_eq!(
                f.run(who, "identity.check", json!({})).await.outcome,
                "verified"
            );
        }

        // Several open claims: a list, most recently updated first; the settled one is left
        // out.
        let open = f.run(&rajesh, "claim.list_open", json!({})).await;
        assert_eq!(
            open,
            ActionResult::new(
                "many",
                json!({ "claim_count": 2, "claims": [
                    { "claim_number": "CLM-240311", "claim_stage": "under_review",
                      "claim_updated_date": "2026-11-24", "pending_documents": 0 },
                    { "claim_number": "CLM-240455", "claim_stage": "documents_pending",
                      "claim_updated_date": "2026-11-22", "pending_documents": 2 }
                ]})
            ),
            "{backend:?}"
        );
        // One open claim (the rejected one is closed): shown directly.
        let open = f.run(&priya, "claim.list_open", json!({})).await;
        assert_eq!(open.outcome, "one");
        assert_eq!(open.data["claim_number"], "CLM-239980");
        assert_eq!(open.data["claim_stage"], "approved");
        assert_eq!(open.data["claim_count"], 1);
        // None.
        assert_eq!(
            f.run(&mohammed, "claim.list_open", json!({})).await,
            ActionResult::new("none", json!({ "claims": [], "claim_count": 0 }))
        );
        // Not verified yet: the flow must verify first, whatever the arguments say.
        let forged =
            json!({ "contact_id": rajesh.id, "wa_id": RAJESH, "policy_id": "H-2023/100245" });
        assert_eq!(
            f.run(&anjali, "claim.list_open", forged.clone()).await,
            ActionResult::bare("unverified")
        );
        assert_eq!(
            f.run(&anjali, "policy.document", forged).await,
            ActionResult::bare("not_found")
        );
        f.run(
            &anjali,
            "identity.verify_dob",
            json!({ "policy_number": "M-2024/556120", "dob": "1992-12-05" }),
        )
        .await;
        let open = f.run(&anjali, "claim.list_open", json!({})).await;
        assert_eq!(
            (open.outcome.as_str(), &open.data["claim_number"]),
            ("one", &json!("CLM-240501"))
        );

        // The document of one's own policy; a clear answer when there is none on file.
        let document = f
            .run(
                &rajesh,
                "policy.document",
                json!({ "policy_id": "m-2025/778812" }),
            )
            .await;
        assert_eq!(
            document,
            ActionResult::new(
                "found",
                json!({ "policy_number": "M-2025/778812", "plan": "Private Car Comprehensive",
                        "document_url": "https://docs.example.in/policies/M-2025-778812.pdf" })
            )
        );
        let none_on_file = f
            .run(
                &priya,
                "policy.document",
                json!({ "policy_id": "L-2019/004512" }),
            )
            .await;
        assert_eq!(
            none_on_file,
            ActionResult::new(
                "no_document",
                json!({ "policy_number": "L-2019/004512", "plan": "Jeevan Suraksha Term Plan" })
            )
        );
        // Someone else's policy, whoever asks: as if it did not exist.
        for (who, other) in [
            (&priya, "H-2023/100245"),
            (&rajesh, "L-2019/004512"),
            (&anjali, "L-2021/009876"),
        ] {
            assert_eq!(
                f.run(who, "policy.document", json!({ "policy_id": other }))
                    .await,
                ActionResult::bare("not_found"),
                "{other}"
            );
        }

        // Once the verification expires, neither reveals anything.
        let later = now() + chrono::Duration::minutes(31);
        assert_eq!(
            f.run_at(&rajesh, "claim.list_open", json!({}), later).await,
            ActionResult::bare("unverified")
        );
        assert_eq!(
            f.run_at(
                &rajesh,
                "policy.document",
                json!({ "policy_id": "H-2023/100245" }),
                later
            )
            .await,
            ActionResult::bare("not_found")
        );
    }
}

/// Everything a contact might type or a broken flow might pass, aimed at other people's data.
fn hostile_policy_ids() -> Vec<Value> {
    vec![
        json!("L-2019/004512"),
        json!("l-2019/004512"),
        json!("  L-2019/004512 "),
        json!("H-2024/220981"),
        json!("1"),
        json!(1),
        json!(2),
        json!("%"),
        json!("*"),
        json!("' OR '1'='1"),
        json!("L-2019/004512' --"),
        json!(""),
        json!(null),
        json!(["L-2019/004512"]),
        json!({ "policy_id": "L-2019/004512" }),
    ]
}

fn hostile_claim_numbers() -> Vec<Value> {
    vec![
        json!("CLM-239980"),
        json!("clm239980"),
        json!(" CLM-238812 "),
        json!("CLM-240501"),
        json!("CLM-000000"),
        json!("CLM-%"),
        json!(239980),
        json!("' OR 1=1 --"),
    ]
}

#[tokio::test]
async fn a_contact_never_reads_another_persons_policy_or_claim_whatever_it_types() {
    for backend in backends() {
        let f = fixture(&backend).await;
        let rajesh = f.contact(RAJESH).await;
        let priya = f.contact(PRIYA).await;
        let stranger = f.contact(STRANGER).await;
        assert_eq!(
            f.run(&rajesh, "identity.check", json!({})).await.outcome,
            "verified"
        );
        assert_eq!(
            f.run(&priya, "identity.check", json!({})).await.outcome,
            "verified"
        );

        // Words that appear only in other people's records.
        let foreign = [
            "Priya",
            "Venkataraman",
            "Jeevan",
            "Individual",
            "Anjali",
            "Two Wheeler",
            "004512",
            "220981",
            "556120",
            "Approved",
            "Rejected",
            "Intimated",
            "239980",
            "240501",
        ];
        let leaks = |r: &ActionResult| {
            let text = r.data.to_string();
            foreign
                .iter()
                .find(|w| text.contains(*w))
                .map(|w| (*w).to_owned())
        };

        for who in [&rajesh, &stranger] {
            for id in hostile_policy_ids() {
                // Extra args naming someone else are ignored: the contact comes from the runner.
                let args = json!({ "policy_id": id, "due_date": "2026-12-01",
                                   "contact_id": priya.id, "wa_id": PRIYA, "mobile": PRIYA });
                for action in [
                    "policy.details",
                    "premium.due",
                    "premium.remind_later",
                    "policy.document",
                ] {
                    let r = f.run(who, action, args.clone()).await;
                    assert!(
                        matches!(r.outcome.as_str(), "not_found" | "error"),
                        "{action} {id} for contact {} gave {r:?} ({backend:?})",
                        who.id
                    );
                    assert_eq!(leaks(&r), None, "{action} {id}: {r:?}");
                }
            }
            for number in hostile_claim_numbers() {
                let args = json!({ "claim_number": number, "contact_id": priya.id });
                let r = f.run(who, "claim.status", args).await;
                assert_eq!(
                    r,
                    ActionResult::bare("not_found"),
                    "claim {number} ({backend:?})"
                );
            }
            for action in ["policy.list", "identity.check", "claim.list_open"] {
                let r = f
                    .run(
                        who,
                        action,
                        json!({ "wa_id": PRIYA, "contact_id": priya.id }),
                    )
                    .await;
                assert_eq!(leaks(&r), None, "{action}: {r:?}");
            }
        }
        // Someone else's policy number with a wrong date of birth verifies nothing.
        let r = f
            .run(
                &stranger,
                "identity.verify_dob",
                json!({ "policy_number": "L-2019/004512", "dob": "1978-04-12" }),
            )
            .await;
        assert_eq!(r.outcome, "mismatch");
        assert_eq!(leaks(&r), None);
        assert!(
            premium_reminder::Entity::find()
                .all(&f.db)
                .await
                .unwrap()
                .is_empty(),
            "no reminder was scheduled on anyone else's policy"
        );
        // And the owners still see their own.
        let own = f
            .run(
                &priya,
                "claim.status",
                json!({ "claim_number": "CLM-239980" }),
            )
            .await;
        assert_eq!(own.outcome, "found");
    }
}

#[tokio::test]
async fn every_action_answers_only_with_the_outcomes_and_fields_the_engine_catalogue_declares() {
    let f = fixture(&Backend::Sqlite).await;
    let rajesh = f.contact(RAJESH).await;
    let stranger = f.contact(STRANGER).await;
    let args = [
        json!({}),
        json!({ "policy_id": "H-2023/100245", "claim_number": "CLM-240311", "due_date": "2026-12-05",
                "policy_number": "H-2023/100245", "dob": "1978-04-12" }),
        json!({ "policy_id": "L-2021/009876", "claim_number": "CLM-999999", "due_date": "x",
                "policy_number": "H-2023/100245", "dob": "1978-04-13" }),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for who in [&stranger, &rajesh] {
        for spec in insurebot::engine::actions::Action::specs() {
            for a in &args {
                let r = f.run(who, spec.name, a.clone()).await;
                assert!(
                    spec.outcomes.contains(&r.outcome.as_str()),
                    "{}: undeclared outcome {}",
                    spec.name,
                    r.outcome
                );
                for key in r.data.as_object().expect("data is an object").keys() {
                    assert!(
                        spec.result_fields.contains(&key.as_str()),
                        "{}: undeclared result field {key}",
                        spec.name
                    );
                }
                seen.insert(format!("{}:{}", spec.name, r.outcome));
            }
        }
    }
    // The walk above reached the interesting outcomes, not just `error`.
    for expected in [
        "identity.check:verified",
        "identity.check:not_registered",
        "identity.verify_dob:mismatch",
        "identity.verify_dob:verified",
        "policy.list:many",
        "policy.list:one",
        "policy.details:found",
        "policy.details:not_found",
        "claim.status:found",
        "claim.status:not_found",
        "premium.due:due",
        "premium.due:not_due",
        "premium.remind_later:scheduled",
        "premium.remind_later:error",
        "claim.list_open:many",
        "claim.list_open:one",
        "policy.document:found",
        "policy.document:not_found",
    ] {
        assert!(seen.contains(expected), "{expected} not reached: {seen:?}");
    }
}

#[tokio::test]
async fn an_unknown_action_is_an_error() {
    let f = fixture(&Backend::Sqlite).await;
    let rajesh = f.contact(RAJESH).await;
    let r = f.run(&rajesh, "policy.delete_everything", json!({})).await;
    assert_eq!(r, ActionResult::error());
}

#[tokio::test]
async fn the_sandbox_starts_with_the_sample_policies_loaded() {
    let app = spawn_app_with(&Backend::Sqlite, |s| s.whatsapp.access_token = None).await;
    let owned = policy::Entity::find()
        .filter(policy::Column::Mobile.eq(RAJESH))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(owned, 3);
}

// ---------------------------------------------------------------------------------------
// The HTTP source against a real HTTP server.

pub(crate) const MODE_OK: u8 = 0;
pub(crate) const MODE_SLOW: u8 = 1;
pub(crate) const MODE_500: u8 = 2;
const MODE_GARBAGE: u8 = 3;
const MODE_WRONG_POLICY: u8 = 4;
const TOKEN: &str = "insurer-api-token";

/// A stand-in for an insurer's API whose behaviour the test switches at run time.
#[derive(Default)]
struct InsurerApi {
    mode: AtomicU8,
    hits: AtomicUsize,
    /// In MODE_500, answer this many requests with 500 and then behave (0 = always 500).
    failures_left: AtomicUsize,
    /// What `GET /policies/{n}/document` answers: [`DOC_PDF`], [`DOC_HTML`] or [`DOC_NONE`].
    document: AtomicU8,
}

/// The policy schedule the stand-in API serves for Rajesh's health policy.
pub(crate) const API_PDF: &[u8] = b"%PDF-1.7\n% Arogya Family Floater schedule\n%%EOF\n";
/// The stand-in's letter on the settled claim CLM-240127 (`GET /claims/{n}/letter`).
pub(crate) const API_LETTER: &[u8] = b"%PDF-1.7\n% Settlement letter CLM-240127\n%%EOF\n";
pub(crate) const DOC_PDF: u8 = 0;
/// A login page instead of the file (a misconfigured document service).
pub(crate) const DOC_HTML: u8 = 1;
pub(crate) const DOC_NONE: u8 = 2;

pub(crate) struct ApiServer {
    state: Arc<InsurerApi>,
    pub(crate) base_url: String,
    _task: tokio::task::JoinHandle<()>,
}

fn policy_json(number: &str) -> Value {
    json!({
        "policy_number": number, "holder_name": "Rajesh Kumar Sharma", "holder_dob": "1978-04-12",
        "mobile": RAJESH, "product": "health", "plan": "Arogya Family Floater", "status": "active",
        "sum_assured_paise": 100_000_000, "start_date": "2023-12-05", "end_date": "2027-12-04",
        "document_url": format!("https://docs.insurer.example/{}.pdf", number.replace('/', "-"))
    })
}

async fn behave(api: &InsurerApi, headers: &HeaderMap) -> Option<Response> {
    api.hits.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return Some(StatusCode::UNAUTHORIZED.into_response());
    }
    match api.mode.load(Ordering::SeqCst) {
        MODE_SLOW => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            None
        }
        MODE_500 => {
            let left = api.failures_left.load(Ordering::SeqCst);
            if left == 0 {
                return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
            if left == 1 {
                api.mode.store(MODE_OK, Ordering::SeqCst);
            }
            api.failures_left.store(left - 1, Ordering::SeqCst);
            Some(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        MODE_GARBAGE => Some(
            (
                [("content-type", "application/json")],
                "{\"policy_number\": [1, 2",
            )
                .into_response(),
        ),
        _ => None,
    }
}

/// The stand-in insurer API on a free port (also used by the notifications tests).
pub(crate) async fn spawn_insurer_api() -> ApiServer {
    let state = Arc::new(InsurerApi::default());
    let app = axum::Router::new()
        .route(
            "/v1/policies/search",
            post(|State(api): State<Arc<InsurerApi>>, headers: HeaderMap, body: axum::Json<Value>| async move {
                if let Some(r) = behave(&api, &headers).await {
                    return r;
                }
                let policies = if body["mobile"] == RAJESH {
                    // A buggy API also returns someone else's policy: it must be dropped.
                    let mut other = policy_json("L-2019/004512");
                    other["mobile"] = json!(PRIYA);
                    vec![policy_json("H-2023/100245"), other]
                } else {
                    vec![]
                };
                axum::Json(json!({ "policies": policies })).into_response()
            }),
        )
        .route(
            "/v1/policies/{number}",
            get(|State(api): State<Arc<InsurerApi>>, headers: HeaderMap, UrlPath(number): UrlPath<String>| async move {
                if let Some(r) = behave(&api, &headers).await {
                    return r;
                }
                match number.as_str() {
                    "H-2023/100245" if api.mode.load(Ordering::SeqCst) == MODE_WRONG_POLICY => {
                        axum::Json(policy_json("L-2019/004512")).into_response()
                    }
                    "H-2023/100245" => axum::Json(policy_json(&number)).into_response(),
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route(
            "/v1/policies/{number}/premiums",
            get(|State(api): State<Arc<InsurerApi>>, headers: HeaderMap, UrlPath(number): UrlPath<String>| async move {
                if let Some(r) = behave(&api, &headers).await {
                    return r;
                }
                axum::Json(json!({ "premiums": [
                    { "policy_number": number, "due_date": "2026-12-05", "amount_paise": 2_485_000, "status": "due" },
                    { "policy_number": number, "due_date": "2025-12-05", "amount_paise": 2_340_000, "status": "paid", "paid_date": "2025-12-01" }
                ]}))
                .into_response()
            }),
        )
        .route(
            "/v1/policies/{number}/claims",
            get(|State(api): State<Arc<InsurerApi>>, headers: HeaderMap, UrlPath(number): UrlPath<String>| async move {
                if let Some(r) = behave(&api, &headers).await {
                    return r;
                }
                let owner = if api.mode.load(Ordering::SeqCst) == MODE_WRONG_POLICY {
                    "L-2019/004512" // a buggy API answers with another policy's claims
                } else {
                    number.as_str()
                };
                match number.as_str() {
                    "H-2023/100245" => axum::Json(json!({ "claims": [
                        { "claim_number": "CLM-240311", "policy_number": owner, "stage": "under_review",
                          "pending_documents": 1, "filed_date": "2026-11-10", "updated_date": "2026-11-24" },
                        { "claim_number": "CLM-240127", "policy_number": owner, "stage": "settled",
                          "pending_documents": 0, "filed_date": "2026-06-02", "updated_date": "2026-06-20" }
                    ]}))
                    .into_response(),
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route(
            "/v1/policies/{number}/document",
            get(|State(api): State<Arc<InsurerApi>>, headers: HeaderMap, UrlPath(number): UrlPath<String>| async move {
                if let Some(r) = behave(&api, &headers).await {
                    return r;
                }
                match (number.as_str(), api.document.load(Ordering::SeqCst)) {
                    ("H-2023/100245", DOC_PDF) => {
                        ([(axum::http::header::CONTENT_TYPE, "application/pdf")], API_PDF).into_response()
                    }
                    ("H-2023/100245", DOC_HTML) => {
                        ([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], "<html>login</html>").into_response()
                    }
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route(
            "/v1/claims/{number}/letter",
            get(|State(api): State<Arc<InsurerApi>>, headers: HeaderMap, UrlPath(number): UrlPath<String>| async move {
                if let Some(r) = behave(&api, &headers).await {
                    return r;
                }
                // The settled claim has a letter; every other claim answers 404.
                match number.as_str() {
                    "CLM-240127" => ([(axum::http::header::CONTENT_TYPE, "application/pdf")], API_LETTER).into_response(),
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route(
            "/v1/claims/{number}",
            get(|State(api): State<Arc<InsurerApi>>, headers: HeaderMap, UrlPath(number): UrlPath<String>| async move {
                if let Some(r) = behave(&api, &headers).await {
                    return r;
                }
                match number.as_str() {
                    "CLM-240311" => axum::Json(json!({
                        "claim_number": number, "policy_number": "H-2023/100245", "stage": "under_review",
                        "pending_documents": 0, "filed_date": "2026-11-10", "updated_date": "2026-11-24"
                    }))
                    .into_response(),
                    // Settled, with a letter (`/claims/{n}/letter`).
                    "CLM-240127" => axum::Json(json!({
                        "claim_number": number, "policy_number": "H-2023/100245", "stage": "settled",
                        "pending_documents": 0, "filed_date": "2026-06-02", "updated_date": "2026-06-20"
                    }))
                    .into_response(),
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    ApiServer {
        state,
        base_url,
        _task: task,
    }
}

pub(crate) fn http_settings(base_url: &str) -> InsurerHttpSettings {
    InsurerHttpSettings {
        base_url: base_url.to_owned(),
        token: Some(SecretString::from(TOKEN)),
        timeout_ms: 300,
        retries: 2,
        retry_backoff_ms: 10,
        breaker_failures: 3,
        breaker_cooldown_ms: 400,
        ..InsurerHttpSettings::default()
    }
}

impl ApiServer {
    pub(crate) fn set(&self, mode: u8) {
        self.state.mode.store(mode, Ordering::SeqCst);
    }
    pub(crate) fn set_document(&self, answer: u8) {
        self.state.document.store(answer, Ordering::SeqCst);
    }
    pub(crate) fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn the_http_source_reads_policies_claims_and_premiums_from_the_insurer_api() {
    let api = spawn_insurer_api().await;
    let source = HttpSource::new(&http_settings(&api.base_url)).unwrap();
    let mine = source.policies_for_mobile(RAJESH).await.unwrap();
    assert_eq!(
        mine.len(),
        1,
        "a policy registered on another number is dropped"
    );
    assert_eq!(mine[0].policy_number, "H-2023/100245");
    assert!(
        source
            .policies_for_mobile(STRANGER)
            .await
            .unwrap()
            .is_empty()
    );
    let p = source.policy("H-2023/100245").await.unwrap().unwrap();
    assert_eq!(p.sum_assured_paise, 100_000_000);
    assert_eq!(source.policy("X-0000/0000").await.unwrap(), None);
    let c = source.claim("CLM-240311").await.unwrap().unwrap();
    assert_eq!(c.stage, "under_review");
    assert_eq!(source.claim("CLM-999999").await.unwrap(), None);
    let premiums = source.premiums("H-2023/100245").await.unwrap();
    assert_eq!(
        premiums[0].due_date.to_string(),
        "2025-12-05",
        "sorted by due date"
    );

    // Without the bearer token the API refuses, and that is an error, not an empty answer.
    let mut no_token = http_settings(&api.base_url);
    no_token.token = None;
    let source = HttpSource::new(&no_token).unwrap();
    assert!(matches!(
        source.policy("H-2023/100245").await,
        Err(SourceError::Status(401))
    ));
}

#[tokio::test]
async fn the_flow_actions_work_over_the_http_source() {
    let api = spawn_insurer_api().await;
    let (test_db, db) = database(&Backend::Sqlite).await;
    let insurer = Insurer::new(
        Arc::new(HttpSource::new(&http_settings(&api.base_url)).unwrap()),
        settings(),
    );
    let f = Fixture {
        db,
        insurer,
        _db: test_db,
    };
    let rajesh = f.contact(RAJESH).await;
    assert_eq!(
        f.run(&rajesh, "identity.check", json!({})).await.outcome,
        "verified"
    );
    let list = f.run(&rajesh, "policy.list", json!({})).await;
    assert_eq!(
        (list.outcome.as_str(), &list.data["policy_id"]),
        ("one", &json!("H-2023/100245"))
    );
    let due = f
        .run(
            &rajesh,
            "premium.due",
            json!({ "policy_id": "H-2023/100245" }),
        )
        .await;
    assert_eq!(due.outcome, "due");
    let claim = f
        .run(
            &rajesh,
            "claim.status",
            json!({ "claim_number": "CLM-240311" }),
        )
        .await;
    assert_eq!(claim.data["claim_stage"], "under_review");
    let open = f.run(&rajesh, "claim.list_open", json!({})).await;
    assert_eq!(
        open,
        ActionResult::new(
            "one",
            json!({
                "claim_number": "CLM-240311", "claim_stage": "under_review",
                "claim_updated_date": "2026-11-24", "pending_documents": 1, "claim_count": 1,
                "claims": [{ "claim_number": "CLM-240311", "claim_stage": "under_review",
                             "claim_updated_date": "2026-11-24", "pending_documents": 1 }]
            })
        ),
        "the settled claim is left out"
    );
    let document = f
        .run(
            &rajesh,
            "policy.document",
            json!({ "policy_id": "H-2023/100245" }),
        )
        .await;
    assert_eq!(
        document,
        ActionResult::new(
            "found",
            json!({ "policy_number": "H-2023/100245", "plan": "Arogya Family Floater",
                    "document_url": "https://docs.insurer.example/H-2023-100245.pdf" })
        )
    );

    // A slow insurer: the action answers `error` within seconds instead of hanging.
    api.set(MODE_SLOW);
    let started = Instant::now();
    let r = f
        .run(
            &rajesh,
            "policy.details",
            json!({ "policy_id": "H-2023/100245" }),
        )
        .await;
    assert_eq!(r, ActionResult::error());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    // Garbage, or an answer about another policy, is an error too, never shown.
    api.set(MODE_GARBAGE);
    let r = f
        .run(
            &rajesh,
            "policy.details",
            json!({ "policy_id": "H-2023/100245" }),
        )
        .await;
    assert_eq!(r, ActionResult::error());
    api.set(MODE_WRONG_POLICY);
    let r = f
        .run(
            &rajesh,
            "policy.details",
            json!({ "policy_id": "H-2023/100245" }),
        )
        .await;
    assert_eq!(r, ActionResult::error());
    for action in ["policy.document", "claim.list_open"] {
        let r = f
            .run(&rajesh, action, json!({ "policy_id": "H-2023/100245" }))
            .await;
        assert_eq!(r, ActionResult::error(), "{action}");
    }
}

#[tokio::test]
async fn a_slow_insurer_times_out_after_the_retries_within_seconds() {
    let api = spawn_insurer_api().await;
    let source = HttpSource::new(&http_settings(&api.base_url)).unwrap();
    api.set(MODE_SLOW);
    let started = Instant::now();
    let r = source.policy("H-2023/100245").await;
    assert!(matches!(r, Err(SourceError::Timeout)), "{r:?}");
    let took = started.elapsed();
    // 3 attempts of 300 ms plus a little backoff.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(api.hits(), 3, "a read is retried twice");
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_and_garbage_is_not() {
    let api = spawn_insurer_api().await;
    let source = HttpSource::new(&http_settings(&api.base_url)).unwrap();
    api.state.failures_left.store(2, Ordering::SeqCst);
    api.set(MODE_500);
    let p = source.policy("H-2023/100245").await.unwrap();
    assert!(p.is_some(), "the third attempt succeeds");
    assert_eq!(api.hits(), 3);

    api.set(MODE_GARBAGE);
    let r = source.policy("H-2023/100245").await;
    assert!(matches!(r, Err(SourceError::Garbage(_))), "{r:?}");
    assert_eq!(api.hits(), 4, "unreadable answers are not retried");
}

#[tokio::test]
async fn a_down_insurer_is_an_error_at_once() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let source = HttpSource::new(&http_settings(&base)).unwrap();
    let started = Instant::now();
    let r = source.policies_for_mobile(RAJESH).await;
    assert!(matches!(r, Err(SourceError::Unreachable)), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn consecutive_failures_open_the_circuit_and_a_good_trial_closes_it() {
    let api = spawn_insurer_api().await;
    let source = HttpSource::new(&http_settings(&api.base_url)).unwrap();
    api.set(MODE_500); // failures_left = 0: always 500
    for _ in 0..3 {
        assert!(matches!(
            source.policy("H-2023/100245").await,
            Err(SourceError::Status(500))
        ));
    }
    assert!(source.circuit_open());
    let hits = api.hits();
    assert_eq!(hits, 9, "3 calls x 3 attempts");

    // Open: answered at once, without calling the insurer.
    let started = Instant::now();
    assert!(matches!(
        source.policy("H-2023/100245").await,
        Err(SourceError::CircuitOpen)
    ));
    // No request is made: well under one retry's backoff, even on a loaded machine.
    assert!(started.elapsed() < Duration::from_millis(250));
    assert_eq!(api.hits(), hits);

    // After the cool-down one trial goes out; the insurer has recovered, so the circuit closes.
    api.set(MODE_OK);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(source.policy("H-2023/100245").await.unwrap().is_some());
    assert!(!source.circuit_open());
    assert!(source.claim("CLM-240311").await.unwrap().is_some());
}

// ---------------------------------------------------------------------------------------
// Whole conversations: the shipped flows over the webhook, the real insurer layer behind them.

/// One policyholder's side of a chat with the running app; replies are counted across all
/// chats of the app, and each message here is answered before the next is sent.
struct Chat<'a> {
    app: &'a TestApp,
    phone: &'a str,
}

impl Chat<'_> {
    async fn send(&self, message: Value) -> ReceivedRequest {
        let before = self.app.sent_messages().len();
        self.app.post_webhook(&envelope(vec![message])).await;
        let sent = self.app.wait_for_sends(before + 1).await;
        let reply = sent[before].clone();
        assert_eq!(recipient_of(&reply), self.phone);
        reply
    }

    async fn say(&self, text: &str) -> ReceivedRequest {
        self.send(text_message(self.phone, &new_wamid(), now_secs(), text))
            .await
    }

    /// A tap on a row of a list message (or one the contact's client forged).
    async fn pick(&self, row_id: &str) -> ReceivedRequest {
        self.send(json!({
            "from": self.phone, "id": new_wamid(), "timestamp": now_secs().to_string(),
            "type": "interactive",
            "interactive": { "type": "list_reply", "list_reply": { "id": row_id, "title": row_id } }
        }))
        .await
    }
}

/// The ids of a list message's rows (empty for any other message).
fn rows(reply: &ReceivedRequest) -> Vec<String> {
    reply.body["interactive"]["action"]["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["rows"].as_array().cloned().unwrap_or_default())
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn in_a_conversation_open_claims_and_documents_reach_their_owner_only_and_strangers_verify_first()
 {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| s.dialogue.handler = DialogueMode::Flows).await;
        assert!(
            insurebot::insurer::load_sample_if_empty(&app.db)
                .await
                .unwrap()
        );
        let rajesh = Chat {
            app: &app,
            phone: RAJESH,
        };
        let priya = Chat {
            app: &app,
            phone: PRIYA,
        };
        let stranger = Chat {
            app: &app,
            phone: STRANGER,
        };

        // Two open claims (the settled one is left out): a list, then the chosen claim.
        let list = rajesh.say("my claims").await;
        assert_eq!(rows(&list), ["CLM-240311", "CLM-240455"], "{backend:?}");
        assert_eq!(
            shown(&list),
            "You have 2 open claims. Which one would you like to see?"
        );
        let status = rajesh.pick("CLM-240455").await;
        assert!(
            shown(&status).starts_with("Claim CLM-240455: Documents pending"),
            "{}",
            status.body
        );
        // The document, after choosing among three policies.
        let list = rajesh.say("policy document").await;
        assert_eq!(
            rows(&list),
            ["H-2023/100245", "L-2021/009876", "M-2025/778812"]
        );
        let document = rajesh.pick("H-2023/100245").await;
        assert_eq!(
            shown(&document),
            "Here is the document of policy ••••0245 (Arogya Family Floater):\n\
             https://docs.example.in/policies/H-2023-100245.pdf"
        );

        // Not verified: asked to verify first, for claims and documents alike.
        let ask = "To keep your data safe, please type your policy number.";
        assert_eq!(shown(&stranger.say("my claims").await), ask);
        assert_eq!(shown(&stranger.say("document").await), ask);
        // Someone else's policy number with a wrong date of birth gets nothing.
        stranger.say("H-2023/100245").await;
        let wrong = stranger.say("01/01/1980").await;
        assert_eq!(
            shown(&wrong),
            "Sorry, those details do not match our records."
        );

        // Priya has one open claim (her rejected claim is closed): shown at once.
        let status = priya.say("my claims").await;
        assert!(
            shown(&status).starts_with("Claim CLM-239980: Approved"),
            "{}",
            status.body
        );
        // Her policies have no document on file; a forged row naming Rajesh's policy gets
        // nothing of his.
        let list = priya.say("document").await;
        assert_eq!(rows(&list), ["H-2024/220981", "L-2019/004512"]);
        let forged = priya.pick("H-2023/100245").await;
        let none_on_file = priya.pick("L-2019/004512").await;
        assert!(
            shown(&none_on_file).starts_with("We do not have a digital copy of policy ••••4512"),
            "{}",
            none_on_file.body
        );

        for reply in app
            .sent_messages()
            .iter()
            .filter(|r| recipient_of(r) != RAJESH)
            .chain([&forged])
        {
            let text = reply.body.to_string();
            for secret in [
                "docs.example.in",
                "CLM-240311",
                "CLM-240455",
                "Arogya Family",
            ] {
                assert!(!text.contains(secret), "{secret} leaked: {text}");
            }
        }
    }
}

#[tokio::test]
async fn in_a_conversation_open_claims_and_documents_come_from_the_insurer_api() {
    let api = spawn_insurer_api().await;
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.dialogue.handler = DialogueMode::Flows;
        s.insurer.source = PolicySourceKind::Http;
        s.insurer.http = http_settings(&api.base_url);
    })
    .await;
    let rajesh = Chat {
        app: &app,
        phone: RAJESH,
    };
    let status = rajesh.say("my claims").await;
    assert_eq!(
        shown(&status),
        "Claim CLM-240311: Under review (updated 24/11/2026).\nOne document is pending."
    );
    // The API has the schedule itself (`GET /policies/{n}/document`): it goes as a PDF
    // document (issue 18), then the flow says so.
    let before = app.sent_messages().len();
    let document = rajesh.say("policy document").await;
    assert_eq!(document.body["type"], "document", "{}", document.body);
    assert_eq!(document.body["document"]["filename"], "H-2023_100245.pdf");
    let id = document.body["document"]["id"].as_str().unwrap();
    assert_eq!(app.fake.media(id).unwrap().0.as_ref(), API_PDF);
    let after = app.wait_for_sends(before + 2).await;
    assert_eq!(
        shown(&after[before + 1]),
        "Above is the schedule of policy ••••0245 (Arogya Family Floater) as a PDF. Keep it for your records."
    );
    // Without the file, the link as before.
    api.set_document(DOC_NONE);
    let document = rajesh.say("policy document").await;
    assert_eq!(
        shown(&document),
        "Here is the document of policy ••••0245 (Arogya Family Floater):\n\
         https://docs.insurer.example/H-2023-100245.pdf"
    );
    let stranger = Chat {
        app: &app,
        phone: STRANGER,
    };
    assert_eq!(
        shown(&stranger.say("my claims").await),
        "To keep your data safe, please type your policy number."
    );
    // The insurer's system goes down: a polite apology within seconds, not a hang.
    api.set(MODE_SLOW);
    let started = Instant::now();
    let sorry = rajesh.say("my claims").await;
    assert!(
        shown(&sorry).starts_with("Sorry, our system is not responding"),
        "{}",
        sorry.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
