//! Outbound files (issue 18): `policy.document` sends the policy schedule itself as a WhatsApp
//! document (from `insurer.documents_dir` or the insurer API's `GET /policies/{n}/document`),
//! uploaded once through the Cloud API's media endpoint and its media id reused from a table;
//! limits are checked before anything goes; erasure and retention delete the files sent.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use insurebot::config::{DatabaseUrl, DialogueMode, InsurerSettings};
use insurebot::insurer::{HttpSource, Insurer};
use insurebot::media::MediaStore;
use insurebot::store::entities::{media_upload, outbound_media};
use insurebot::whatsapp::fake::ReceivedRequest;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::*;
use crate::insurer::{API_PDF, DOC_HTML, DOC_NONE, RAJESH, http_settings, spawn_insurer_api};
use crate::media::S3Server;

const HOLDER: &str = "919800000321";
const POLICY: &str = "LIC00012345678";

fn schedule_pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.7\n% policy schedule\n".to_vec();
    v.extend((0..40_000).map(|i| (i % 251) as u8));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

/// A documents directory holding [`POLICY`]'s schedule, and the schedule's bytes.
fn schedule_on_file() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let pdf = schedule_pdf();
    std::fs::write(dir.path().join(format!("{POLICY}.pdf")), &pdf).unwrap();
    (dir, pdf)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn say(app: &TestApp, from: &str, text: &str) {
    let message = text_message(from, &new_wamid(), now_secs(), text);
    app.post_webhook(&envelope(vec![message])).await;
}

fn documents(app: &TestApp) -> Vec<ReceivedRequest> {
    app.sent_messages()
        .into_iter()
        .filter(|s| s.body["type"] == "document")
        .collect()
}

/// Waits until `n` document messages were sent, and then for the text the flow says after
/// the last one; panics after 15 s.
async fn wait_for_documents(app: &TestApp, n: usize) -> Vec<ReceivedRequest> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let docs = documents(app);
        let after = app
            .sent_messages()
            .iter()
            .filter(|s| shown(s).contains("as a PDF"))
            .count();
        if docs.len() >= n && after >= n {
            return docs;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} documents, the fake got: {:#?}",
            app.sent_messages()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An app running the flows, with policy schedules in `dir` and `customise` on top.
async fn app_with_documents(
    backend: &Backend,
    dir: &Path,
    customise: impl FnOnce(&mut insurebot::config::Settings),
) -> TestApp {
    let dir = dir.to_owned();
    let app = spawn_app_with(backend, |s| {
        s.dialogue.handler = DialogueMode::Flows;
        s.insurer.documents_dir = Some(dir);
        customise(s);
    })
    .await;
    insert_policy(&app.db, POLICY, Some(HOLDER)).await;
    app
}

async fn uploads(app: &TestApp) -> Vec<media_upload::Model> {
    media_upload::Entity::find().all(&app.db).await.unwrap()
}

async fn sent_files(app: &TestApp) -> Vec<outbound_media::Model> {
    outbound_media::Entity::find().all(&app.db).await.unwrap()
}

/// The document a send names, as the fake holds its upload.
fn uploaded_bytes(app: &TestApp, send: &ReceivedRequest) -> Vec<u8> {
    let id = send.body["document"]["id"].as_str().expect("a media id");
    let (bytes, mime) = app.fake.media(id).expect("the id names an upload");
    assert_eq!(mime, "application/pdf");
    bytes.to_vec()
}

#[tokio::test]
async fn the_policy_schedule_goes_as_a_pdf_document_uploaded_once_and_its_media_id_reused() {
    for backend in backends() {
        let (dir, pdf) = schedule_on_file();
        let mut app = app_with_documents(&backend, dir.path(), |_| {}).await;

        say(&app, HOLDER, "policy document").await;
        let docs = wait_for_documents(&app, 1).await;
        let document = &docs[0].body["document"];
        assert_eq!(document["filename"], format!("{POLICY}.pdf"));
        // The caption names the plan and masks the number, like every flow text.
        assert_eq!(document["caption"], "Policy schedule of ••••5678 (Jeevan)");
        assert_eq!(uploaded_bytes(&app, &docs[0]), pdf);
        assert_eq!(app.fake.media_uploads(), 1);
        // The document goes first, then the flow's words about it.
        let sends = app.sent_messages();
        let at = |p: &dyn Fn(&ReceivedRequest) -> bool| sends.iter().position(p).unwrap();
        assert!(
            at(&|s| s.body["type"] == "document") < at(&|s| shown(s).contains("as a PDF")),
            "{sends:#?}"
        );

        // The same file again: the cached media id, no second upload.
        say(&app, HOLDER, "policy document").await;
        let docs = wait_for_documents(&app, 2).await;
        assert_eq!(
            docs[1].body["document"]["id"],
            docs[0].body["document"]["id"]
        );
        assert_eq!(app.fake.media_uploads(), 1);

        // The cache is a table: a restarted server still uses it.
        app.restart().await;
        say(&app, HOLDER, "policy document").await;
        let docs = wait_for_documents(&app, 3).await;
        assert_eq!(
            docs[2].body["document"]["id"],
            docs[0].body["document"]["id"]
        );
        assert_eq!(app.fake.media_uploads(), 1);

        let cached = uploads(&app).await;
        assert_eq!(cached.len(), 1, "{cached:?}");
        assert_eq!(cached[0].sha256, sha256_hex(&pdf));
        // Now to the millisecond: whole seconds put "now" up to a second early, and a send within
        // that second of the upload read as a little over 29 days.
        let days = (cached[0].expires_at - insurebot::store::now_ms()) as f64 / 86_400_000.0;
        assert!((28.9..=29.0).contains(&days), "cached for {days} days");
        // Every send is recorded as the contact's file, kept once in the store by its hash.
        let files = sent_files(&app).await;
        assert_eq!(files.len(), 3);
        assert!(files.iter().all(|f| f.sha256 == sha256_hex(&pdf)
            && f.source == "policy_document"
            && f.filename.as_deref() == Some("LIC00012345678.pdf")));
        let kept = app
            .media_dir()
            .join("sha256")
            .join(&files[0].sha256[..2])
            .join(&files[0].sha256);
        assert_eq!(std::fs::read(kept).unwrap(), pdf);
    }
}

#[tokio::test]
async fn an_expired_media_id_is_not_used_the_file_is_uploaded_again() {
    for backend in backends() {
        let (dir, pdf) = schedule_on_file();
        let app = app_with_documents(&backend, dir.path(), |_| {}).await;
        say(&app, HOLDER, "policy document").await;
        let first = wait_for_documents(&app, 1).await;

        // 29 days on (the row's expiry moved back instead of the clock forward), and Meta
        // has forgotten the upload as it does after 30.
        let row = uploads(&app).await.remove(0);
        let mut row = row.into_active_model();
        row.expires_at = Set(now_secs() * 1000 - 1);
        media_upload::Entity::update(row)
            .exec(&app.db)
            .await
            .unwrap();
        app.fake.forget_uploads();

        say(&app, HOLDER, "policy document").await;
        let docs = wait_for_documents(&app, 2).await;
        assert_eq!(app.fake.media_uploads(), 2);
        assert_ne!(
            docs[1].body["document"]["id"],
            first[0].body["document"]["id"]
        );
        assert_eq!(uploaded_bytes(&app, &docs[1]), pdf);
        let cached = uploads(&app).await;
        assert_eq!(cached.len(), 1);
        assert_eq!(
            cached[0].media_id,
            docs[1].body["document"]["id"].as_str().unwrap()
        );
    }
}

#[tokio::test]
async fn without_a_file_the_flow_answers_with_the_link_as_before() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_documents(&backend, dir.path(), |_| {}).await;
        let policy = insurebot::store::entities::policy::Entity::find()
            .filter(insurebot::store::entities::policy::Column::PolicyNumber.eq(POLICY))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        let mut policy = policy.into_active_model();
        policy.document_url = Set(Some("https://docs.example.in/LIC00012345678.pdf".into()));
        insurebot::store::entities::policy::Entity::update(policy)
            .exec(&app.db)
            .await
            .unwrap();

        say(&app, HOLDER, "policy document").await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while !app
            .sent_messages()
            .iter()
            .any(|s| shown(s).contains("https://docs.example.in/LIC00012345678.pdf"))
        {
            assert!(Instant::now() < deadline, "{:#?}", app.sent_messages());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(documents(&app).is_empty());
        assert_eq!(app.fake.media_uploads(), 0);
        assert!(sent_files(&app).await.is_empty());
    }
}

#[tokio::test]
async fn erasure_and_retention_delete_the_files_sent_and_their_upload_ids() {
    for backend in backends() {
        let (dir, pdf) = schedule_on_file();
        let app = app_with_documents(&backend, dir.path(), |_| {}).await;
        say(&app, HOLDER, "policy document").await;
        wait_for_documents(&app, 1).await;
        let store = MediaStore::local(&app.media_dir()).unwrap();
        let sha = sha256_hex(&pdf);
        assert!(store.contains(&sha).await.unwrap());

        let hasher = insurebot::consent::AddressHasher::new(secrecy::SecretString::from(HASH_KEY));
        let receipt = insurebot::consent::erasure::erase(
            &app.db,
            &hasher,
            Some(&store),
            HOLDER,
            now_secs() * 1000,
        )
        .await
        .unwrap()
        .expect("the contact existed");
        assert_eq!(receipt.tables["outbound_media"], 1);
        assert_eq!(receipt.tables["media store files"], 1);
        assert!(!store.contains(&sha).await.unwrap());
        assert!(sent_files(&app).await.is_empty());
        assert!(
            uploads(&app).await.is_empty(),
            "the upload id went with the file"
        );

        // Retention: a file sent long ago goes with the message bodies of its time.
        insert_policy(&app.db, "LIC00087654321", Some("919800000323")).await;
        std::fs::write(dir.path().join("LIC00087654321.pdf"), &pdf).unwrap();
        say(&app, "919800000323", "policy document").await;
        wait_for_documents(&app, 2).await;
        assert!(store.contains(&sha).await.unwrap());
        let later = now_secs() * 1000 + 400 * 86_400_000;
        let report =
            insurebot::consent::erasure::purge_older_than(&app.db, Some(&store), 365, later)
                .await
                .unwrap();
        assert_eq!(report.outbound_media, 1);
        assert_eq!(report.media_store_files, 1);
        assert!(!store.contains(&sha).await.unwrap());
    }
}

#[needs_s3]
#[tokio::test]
async fn the_policy_schedule_is_kept_in_s3_compatible_storage_and_sent_from_there() {
    let s3 = S3Server::start().await;
    for (n, backend) in backends().into_iter().enumerate() {
        let bucket = format!("insurebot-docs-{n}-{}", std::process::id());
        s3.bucket(&bucket).await;
        let (dir, pdf) = schedule_on_file();
        let mut media = insurebot::config::media::MediaSettings::default();
        let app = app_with_documents(&backend, dir.path(), |s| {
            s3.configure(s, &bucket);
            media = s.media.clone();
        })
        .await;
        say(&app, HOLDER, "policy document").await;
        let docs = wait_for_documents(&app, 1).await;
        assert_eq!(uploaded_bytes(&app, &docs[0]), pdf);
        let store = MediaStore::from_settings(&media, &DatabaseUrl::new("")).unwrap();
        assert_eq!(store.kind, "s3");
        assert!(store.contains(&sha256_hex(&pdf)).await.unwrap());
        // Nothing went to the local directory.
        assert!(!app.media_dir().join("sha256").exists());
    }
}

/// Rajesh's side of the insurer layer over the stand-in insurer API, with a local media store,
/// on a fresh migrated database: actions run as the flow runner runs them.
pub(crate) struct HttpInsurer {
    pub db: sea_orm::DatabaseConnection,
    pub insurer: Insurer,
    pub store: MediaStore,
    pub rajesh: insurebot::store::entities::contact::Model,
    _test_db: TestDb,
}

impl HttpInsurer {
    pub(crate) async fn start(backend: &Backend, api_base: &str) -> Self {
        let test_db = TestDb::create(backend).await;
        let db = insurebot::store::connect(&DatabaseUrl::new(test_db.url.clone()))
            .await
            .unwrap();
        insurebot::store::migrate(&db).await.unwrap();
        let store = MediaStore::local(&test_db.media_dir).unwrap();
        let insurer = Insurer::new(
            Arc::new(HttpSource::new(&http_settings(api_base)).unwrap()),
            InsurerSettings::default(),
        )
        .with_media(Some(store.clone()));
        let rajesh = insert_contact(&db, RAJESH).await;
        Self {
            db,
            insurer,
            store,
            rajesh,
            _test_db: test_db,
        }
    }

    /// Runs one action in its own write transaction.
    pub(crate) async fn run(
        &self,
        name: &'static str,
        args: serde_json::Value,
    ) -> insurebot::insurer::ActionResult {
        let txn = insurebot::store::begin_write(&self.db).await.unwrap();
        let r = self
            .insurer
            .run_action(&txn, &self.rajesh, name, &args, chrono::Utc::now())
            .await;
        txn.commit().await.unwrap();
        r
    }
}

/// The insurer API's `GET /policies/{n}/document`: the file when it is a PDF, the link when
/// there is none or when it is something WhatsApp would refuse.
#[tokio::test]
async fn the_http_source_gives_the_schedule_file_and_anything_else_falls_back_to_the_link() {
    let api = spawn_insurer_api().await;
    for backend in backends() {
        let source = HttpInsurer::start(&backend, &api.base_url).await;
        let (store, run) = (&source.store, |name, args| source.run(name, args));
        assert_eq!(run("identity.check", json!({})).await.outcome, "verified");
        let args = json!({ "policy_id": "H-2023/100245" });

        api.set_document(crate::insurer::DOC_PDF);
        let sent = run("policy.document", args.clone()).await;
        assert_eq!(sent.outcome, "sent", "{sent:?}");
        let file = sent.attachment.expect("the schedule file");
        assert_eq!(file.filename, "H-2023_100245.pdf");
        assert_eq!(file.mime_type, "application/pdf");
        assert_eq!(file.stored.sha256, sha256_hex(API_PDF));
        assert!(store.contains(&file.stored.sha256).await.unwrap());

        for answer in [DOC_HTML, DOC_NONE] {
            api.set_document(answer);
            let linked = run("policy.document", args.clone()).await;
            assert_eq!(linked.outcome, "found", "answer {answer}: {linked:?}");
            assert!(linked.attachment.is_none());
            assert_eq!(
                linked.data["document_url"],
                "https://docs.insurer.example/H-2023-100245.pdf"
            );
        }
    }
}
