//! Flows send files from a slot (issue 18): `claim.status` returns the insurer's letter on a
//! claim (`insurer.documents_dir/claims/<claim number>.pdf`) as a file reference, and the
//! claim-status flow's `send_files:` sends it as a WhatsApp document with a caption in the
//! contact's language, before the status; outside the window the state's template goes and
//! the file does not (recorded as skipped, with why).

use std::path::Path;
use std::time::{Duration, Instant};

use insurebot::config::DialogueMode;
use insurebot::store::entities::{contact, outbound_media, outbox};
use insurebot::whatsapp::fake::ReceivedRequest;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::helpers::*;
use crate::media::sha256_hex;

/// Rajesh: registered on the sample data's health policy, whose claim CLM-240127 is settled
/// and CLM-240311 under review.
const RAJESH: &str = "919812345678";
const SETTLED: &str = "CLM-240127";
const UNDER_REVIEW: &str = "CLM-240311";

fn letter_pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.7\n% settlement letter\n".to_vec();
    v.extend((0..30_000).map(|i| (i % 241) as u8));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

/// A documents directory with [`SETTLED`]'s letter (and no other).
fn letters_on_file() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let pdf = letter_pdf();
    std::fs::create_dir_all(dir.path().join("claims")).unwrap();
    std::fs::write(dir.path().join(format!("claims/{SETTLED}.pdf")), &pdf).unwrap();
    (dir, pdf)
}

async fn app_with_letters(backend: &Backend, dir: &Path) -> TestApp {
    let dir = dir.to_owned();
    let app = spawn_app_with(backend, |s| {
        s.dialogue.handler = DialogueMode::Flows;
        s.insurer.documents_dir = Some(dir);
    })
    .await;
    assert!(
        insurebot::insurer::load_sample_if_empty(&app.db)
            .await
            .unwrap()
    );
    app
}

/// Sends Rajesh's text (WhatsApp timestamp `ts`) and waits for the bot's answer in words.
async fn say(app: &TestApp, ts: i64, text: &str) -> Vec<ReceivedRequest> {
    let before = app.sent_messages().len();
    app.post_webhook(&envelope(vec![text_message(
        RAJESH,
        &new_wamid(),
        ts,
        text,
    )]))
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let sent = app.sent_messages();
        let new: Vec<ReceivedRequest> = sent[before..].to_vec();
        // A document is never the last thing the flow says: wait for the words after it.
        if new.last().is_some_and(|s| s.body["type"] != "document") {
            return new;
        }
        assert!(
            Instant::now() < deadline,
            "no answer to {text:?}: {sent:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn of_type<'a>(sent: &'a [ReceivedRequest], kind: &str) -> Vec<&'a Value> {
    sent.iter()
        .filter(|s| s.body["type"] == kind)
        .map(|s| &s.body)
        .collect()
}

#[tokio::test]
async fn a_settled_claims_letter_goes_as_a_document_before_its_status_and_only_with_that_claim() {
    for backend in backends() {
        let (dir, pdf) = letters_on_file();
        let app = app_with_letters(&backend, dir.path()).await;
        let ts = now_secs();
        say(&app, ts, "claim status").await;
        let sent = say(&app, ts + 1, SETTLED).await;

        let docs = of_type(&sent, "document");
        assert_eq!(docs.len(), 1, "{sent:#?}");
        let document = &docs[0]["document"];
        assert_eq!(document["filename"], format!("{SETTLED}.pdf"));
        assert_eq!(
            document["caption"],
            format!("Letter on claim {SETTLED}: Settled")
        );
        let id = document["id"].as_str().expect("an uploaded media id");
        let (bytes, mime) = app.fake.media(id).expect("the id names an upload");
        assert_eq!(mime, "application/pdf");
        assert_eq!(bytes.to_vec(), pdf);
        // The file first, then the status in words.
        assert_eq!(sent[0].body["type"], "document", "{sent:#?}");
        assert!(
            shown(sent.last().unwrap()).contains(&format!("Claim {SETTLED}: Settled")),
            "{sent:#?}"
        );
        // Recorded as the contact's file (erasure and retention find it there).
        let files = outbound_media::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].source, "flow");
        assert_eq!(files[0].sha256, sha256_hex(&pdf));

        // Another claim, without a letter: its status only, the first letter not again.
        let sent = say(&app, ts + 2, "claim status").await;
        assert!(of_type(&sent, "document").is_empty(), "{sent:#?}");
        let sent = say(&app, ts + 3, UNDER_REVIEW).await;
        assert!(of_type(&sent, "document").is_empty(), "{sent:#?}");
        assert!(
            shown(sent.last().unwrap()).contains(&format!("Claim {UNDER_REVIEW}")),
            "{sent:#?}"
        );
    }
}

#[tokio::test]
async fn outside_the_window_the_status_template_goes_and_the_letter_is_recorded_as_not_sent() {
    for backend in backends() {
        let (dir, _) = letters_on_file();
        let app = app_with_letters(&backend, dir.path()).await;
        let ts = now_secs();
        say(&app, ts, "claim status").await;
        // The claim number reaches us a day late: the window has closed meanwhile.
        let rajesh = contact::Entity::find()
            .filter(contact::Column::WaId.eq(RAJESH))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        insurebot::http::console::pages::move_window_back(&app.db, rajesh.id, 26)
            .await
            .unwrap();
        let sent = say(&app, now_secs() - 25 * 3600, SETTLED).await;
        assert!(of_type(&sent, "document").is_empty(), "{sent:#?}");
        let templates = of_type(&sent, "template");
        assert_eq!(templates.len(), 1, "{sent:#?}");
        assert_eq!(templates[0]["template"]["name"], "claim_status_update");
        let skipped = outbox::Entity::find()
            .filter(outbox::Column::ContactId.eq(rajesh.id))
            .filter(outbox::Column::Reason.eq("window_closed_no_template"))
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(
            skipped.len(),
            1,
            "the letter's row says why it was not sent"
        );
    }
}

#[tokio::test]
async fn the_http_source_gives_a_claims_letter_as_a_file_reference_and_none_for_other_claims() {
    use insurebot::engine::media_slot::{FileKind, MediaRef};
    use serde_json::json;

    use crate::documents::HttpInsurer;
    use crate::insurer::{API_LETTER, spawn_insurer_api};

    let api = spawn_insurer_api().await;
    for backend in backends() {
        let source = HttpInsurer::start(&backend, &api.base_url).await;
        let (store, run) = (&source.store, |name, args| source.run(name, args));
        assert_eq!(run("identity.check", json!({})).await.outcome, "verified");

        let settled = run("claim.status", json!({ "claim_number": SETTLED })).await;
        assert_eq!(settled.outcome, "found", "{settled:?}");
        let letter = MediaRef::list(settled.data.get("claim_letter"));
        assert_eq!(
            letter,
            vec![MediaRef {
                sha256: sha256_hex(API_LETTER),
                mime: "application/pdf".into(),
                kind: FileKind::Document,
                file_name: Some(format!("{SETTLED}.pdf")),
                caption: None,
            }]
        );
        assert_eq!(
            store.size(&letter[0].sha256).await.unwrap(),
            Some(API_LETTER.len() as u64),
            "kept in the media store for the flow to send"
        );

        let other = run("claim.status", json!({ "claim_number": UNDER_REVIEW })).await;
        assert_eq!(other.data["claim_letter"], json!([]), "{other:?}");
    }
}
