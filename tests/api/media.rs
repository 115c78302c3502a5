//! Inbound media (issue 18): photos and documents are resolved, downloaded with the token,
//! checked and kept in the media store (a local directory, or S3-compatible storage served by
//! a real S3 server, moto), and every failure is answered in words without holding up other
//! contacts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use insurebot::config::DialogueMode;
use insurebot::media::MediaStore;
use insurebot::store::entities::media_file;
use insurebot::whatsapp::fake::MediaFault;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// A JPEG's signature followed by `len` bytes of filler.
pub(crate) fn jpeg(len: usize, seed: u8) -> Vec<u8> {
    let mut v = vec![
        0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
    ];
    v.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    v
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One inbound media message object.
pub(crate) fn media_message(from: &str, kind: &str, media_id: &str, mime: &str) -> Value {
    json!({
        "from": from, "id": new_wamid(), "timestamp": now_secs().to_string(),
        "type": kind, kind: { "id": media_id, "mime_type": mime }
    })
}

/// Posts one webhook carrying these media messages: `(from, kind, media id, mime type)`.
async fn post_media(app: &TestApp, messages: &[(&str, &str, &str, &str)]) {
    let messages = messages
        .iter()
        .map(|(from, kind, id, mime)| media_message(from, kind, id, mime))
        .collect();
    app.post_webhook(&envelope(messages)).await;
}

/// Puts a photo and a PDF in the fake and posts them, from their senders, in one webhook.
async fn post_photo_and_pdf(app: &TestApp, photo: (&str, &[u8]), pdf: (&str, &[u8])) {
    let photo_id = app.fake.add_media(photo.1.to_vec(), "image/jpeg");
    let pdf_id = app.fake.add_media(pdf.1.to_vec(), "application/pdf");
    post_media(
        app,
        &[
            (photo.0, "image", &photo_id, "image/jpeg"),
            (pdf.0, "document", &pdf_id, "application/pdf"),
        ],
    )
    .await;
}

async fn rows(app: &TestApp) -> Vec<media_file::Model> {
    media_file::Entity::find().all(&app.db).await.unwrap()
}

/// Where the local store keeps a file.
pub(crate) fn stored_path(dir: &Path, sha: &str) -> PathBuf {
    dir.join("sha256").join(&sha[..2]).join(sha)
}

fn flows(s: &mut insurebot::config::Settings) {
    s.dialogue.handler = DialogueMode::Flows;
}

#[tokio::test]
async fn a_photo_is_downloaded_with_the_token_checked_and_kept_once_by_its_hash() {
    for backend in backends() {
        let mut media_dir = PathBuf::new();
        let app = spawn_app_with(&backend, |s| {
            flows(s);
            media_dir = s.media.dir.clone().unwrap();
        })
        .await;
        let photo = jpeg(300_000, 1);
        let id = app.fake.add_media(photo.clone(), "image/jpeg");
        // The same photo from two people: one file.
        let again = app.fake.add_media(photo.clone(), "image/jpeg");
        post_media(
            &app,
            &[
                ("919800000101", "image", &id, "image/jpeg"),
                ("919800000102", "image", &again, "image/jpeg"),
            ],
        )
        .await;
        let sends = app.wait_for_sends(2).await;
        for send in &sends {
            assert!(
                !text_of(send).contains("send it again") && !text_of(send).contains("too large"),
                "{send:?}"
            );
        }
        let rows = rows(&app).await;
        assert_eq!(rows.len(), 2);
        for row in &rows {
            assert_eq!(row.state, "stored");
            assert_eq!(row.sha256.as_deref(), Some(sha256_hex(&photo).as_str()));
            assert_eq!(row.mime_type.as_deref(), Some("image/jpeg"));
            assert_eq!(row.size_bytes, Some(photo.len() as i64));
        }
        let on_disk = std::fs::read(stored_path(&media_dir, &sha256_hex(&photo))).unwrap();
        assert_eq!(on_disk, photo);
        assert_eq!(files_under(&media_dir).len(), 1, "kept once, no temp left");
    }
}

#[tokio::test]
async fn too_large_refused_and_damaged_files_are_answered_in_words_and_not_kept() {
    for backend in backends() {
        let mut media_dir = PathBuf::new();
        let app = spawn_app_with(&backend, |s| {
            flows(s);
            s.media.max_bytes.image = 2048;
            media_dir = s.media.dir.clone().unwrap();
        })
        .await;
        let big = app.fake.add_media(jpeg(4096, 2), "image/jpeg");
        let exe = app.fake.add_media(
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00 not a photo".to_vec(),
            "image/jpeg",
        );
        let damaged = app
            .fake
            .add_media_claiming(jpeg(100, 3), "image/jpeg", &"0".repeat(64));
        for (phone, id) in [
            ("919800000111", &big),
            ("919800000112", &exe),
            ("919800000113", &damaged),
        ] {
            post_media(&app, &[(phone, "image", id, "image/jpeg")]).await;
        }
        let sends = app.wait_for_sends(3).await;
        let said = |phone: &str| {
            sends
                .iter()
                .find(|s| recipient_of(s) == phone)
                .map(text_of)
                .unwrap_or_default()
        };
        assert_eq!(
            said("919800000111"),
            "That file is too large: image files can be at most 2 KB. Please send a smaller one."
        );
        assert_eq!(
            said("919800000112"),
            "I cannot accept that file: image messages must be JPEG or PNG. Please send one of those."
        );
        assert_eq!(
            said("919800000113"),
            "Your file arrived damaged, so I discarded it. Please send it again."
        );
        let mut failures: Vec<String> = rows(&app)
            .await
            .into_iter()
            .map(|r| {
                assert_eq!(r.state, "failed");
                assert_eq!(r.sha256, None);
                r.failure.unwrap()
            })
            .collect();
        failures.sort();
        assert_eq!(failures, ["hash_mismatch", "too_large", "type_refused"]);
        assert!(files_under(&media_dir).is_empty(), "nothing kept");
        app.assert_no_more_sends(3).await;
    }
}

#[tokio::test]
async fn an_expired_url_is_retried_and_asked_again_only_when_every_attempt_failed() {
    for backend in backends() {
        let app = spawn_app_with(&backend, flows).await;
        // Two expired URLs, then the third attempt downloads.
        app.fake
            .script_media(MediaFault::DownloadNotFound { count: 2 });
        let first = app.fake.add_media(jpeg(1000, 4), "image/jpeg");
        post_media(&app, &[("919800000121", "image", &first, "image/jpeg")]).await;
        let answer = last_reply_to(&app, "919800000121").await;
        assert!(!answer.contains("send it again"), "{answer}");
        assert_eq!(rows(&app).await[0].state, "stored");
        assert_eq!(app.fake.media_downloads(), 1);

        // Three expired URLs: every attempt failed.
        app.fake
            .script_media(MediaFault::DownloadNotFound { count: 3 });
        let second = app.fake.add_media(jpeg(1000, 5), "image/jpeg");
        post_media(&app, &[("919800000122", "image", &second, "image/jpeg")]).await;
        assert_eq!(
            last_reply_to(&app, "919800000122").await,
            "I could not download your file. Please send it again."
        );
        assert_eq!(app.fake.media_downloads(), 1);
    }
}

#[tokio::test]
async fn a_slow_download_holds_up_only_its_own_contact_whose_messages_keep_their_order() {
    for backend in backends() {
        // The echo handler answers every message with what it was, so order is visible.
        let app = spawn_app(&backend).await;
        app.fake.script_media(MediaFault::DownloadDelay {
            count: 1,
            delay_ms: 2_000,
        });
        let slow = app.fake.add_media(jpeg(1000, 6), "image/jpeg");
        app.post_webhook(&envelope(vec![
            media_message("919800000131", "image", &slow, "image/jpeg"),
            text_message("919800000131", &new_wamid(), now_secs(), "after the photo"),
        ]))
        .await;
        let started = Instant::now();
        app.post_webhook(&envelope(vec![text_message(
            "919800000132",
            &new_wamid(),
            now_secs(),
            "someone else",
        )]))
        .await;
        let first = app.wait_for_sends(1).await;
        assert_eq!(recipient_of(&first[0]), "919800000132");
        assert!(
            started.elapsed() < Duration::from_millis(1_500),
            "the other contact waited {:?}",
            started.elapsed()
        );
        let all = app.wait_for_sends(3).await;
        let slow_contact: Vec<String> = all
            .iter()
            .filter(|s| recipient_of(s) == "919800000131")
            .map(text_of)
            .collect();
        assert_eq!(slow_contact.len(), 2);
        assert!(
            slow_contact[1].contains("after the photo"),
            "{slow_contact:?}"
        );
    }
}

#[tokio::test]
async fn erasure_deletes_the_contacts_files_and_retention_the_old_ones_but_not_a_file_still_used() {
    const TOKEN: &str = "media-api-token-0123456789";
    for backend in backends() {
        let mut media_dir = PathBuf::new();
        let mut media = insurebot::config::media::MediaSettings::default();
        let app = spawn_app_with(&backend, |s| {
            s.api_token = Some(TOKEN.to_owned().into());
            media_dir = s.media.dir.clone().unwrap();
            media = s.media.clone();
        })
        .await;
        let shared = jpeg(2000, 8);
        let own = b"%PDF-1.4 only the erased contact's claim form".to_vec();
        let ids = [
            app.fake.add_media(shared.clone(), "image/jpeg"),
            app.fake.add_media(own.clone(), "application/pdf"),
            app.fake.add_media(shared.clone(), "image/jpeg"),
        ];
        post_media(
            &app,
            &[
                ("919800000151", "image", &ids[0], "image/jpeg"),
                ("919800000151", "document", &ids[1], "application/pdf"),
                ("919800000152", "image", &ids[2], "image/jpeg"),
            ],
        )
        .await;
        app.wait_for_sends(3).await;
        let shared_file = stored_path(&media_dir, &sha256_hex(&shared));
        let own_file = stored_path(&media_dir, &sha256_hex(&own));
        assert!(shared_file.exists() && own_file.exists());

        let receipt = app.erase_over_api("919800000151", TOKEN).await;
        assert_eq!(receipt["tables"]["media_files"], 2, "{receipt}");
        assert_eq!(receipt["tables"]["media store files"], 1, "{receipt}");
        assert!(!own_file.exists(), "the erased contact's own file is gone");
        assert!(shared_file.exists(), "the other contact's copy stays");
        assert_eq!(rows(&app).await.len(), 1);

        // Retention: everything older than "now" goes, the last file with its row.
        let store =
            MediaStore::from_settings(&media, &insurebot::config::DatabaseUrl::new("")).unwrap();
        let report = insurebot::consent::erasure::purge_older_than(
            &app.db,
            Some(&store),
            1,
            insurebot::store::now_ms() + 2 * 24 * 3_600_000,
        )
        .await
        .unwrap();
        assert_eq!((report.media_files, report.media_store_files), (1, 1));
        assert!(!shared_file.exists());
        assert!(rows(&app).await.is_empty());
        assert!(files_under(&media_dir).is_empty());
    }
}

#[tokio::test]
async fn the_console_shows_photos_and_files_only_to_who_may_read_the_conversation_and_logs_each_view()
 {
    use crate::console::{add_agent, login};
    use insurebot::http::console::auth::Role;
    use insurebot::store::entities::{contact, transcript_view};
    use sea_orm::{ColumnTrait, QueryFilter};

    for backend in backends() {
        let app = spawn_app_with(&backend, flows).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        add_agent(&app, "sunil@example.com", Role::Supervisor).await;
        let photo = jpeg(5000, 9);
        let pdf = b"%PDF-1.4 hospital bill".to_vec();
        // The photo's sender asks for an agent (its conversation waits in the queue); the
        // document's sender never does.
        post_photo_and_pdf(&app, ("919800000161", &photo), ("919800000162", &pdf)).await;
        app.wait_for_sends(2).await;
        crate::console::queued_handoff(&app, "919800000161").await;
        let contact_of = |phone: &'static str| {
            let db = app.db.clone();
            async move {
                contact::Entity::find()
                    .filter(contact::Column::WaId.eq(phone))
                    .one(&db)
                    .await
                    .unwrap()
                    .unwrap()
                    .id
            }
        };
        // Readings of a contact's transcript recorded so far.
        let views_of = |contact: i64| {
            let db = app.db.clone();
            async move {
                transcript_view::Entity::find()
                    .filter(transcript_view::Column::ContactId.eq(contact))
                    .all(&db)
                    .await
                    .unwrap()
                    .iter()
                    .map(|v| v.views)
                    .sum::<i32>()
            }
        };
        let (queued, other) = (
            contact_of("919800000161").await,
            contact_of("919800000162").await,
        );
        let files = rows(&app).await;
        let file_of = |contact: i64| files.iter().find(|f| f.contact_id == contact).unwrap().id;
        let photo_url = format!("/console/conversations/{queued}/media/{}", file_of(queued));
        let pdf_url = format!("/console/conversations/{other}/media/{}", file_of(other));

        let agent = login(&app, "asha@example.com").await;
        let transcript = agent
            .transcript_showing(queued, |t| t.contains("class=\"thumb\""))
            .await
            // Tera escapes the slashes in attributes; the browser reads them back.
            .replace("&#x2F;", "/");
        assert!(
            transcript.contains(&format!("src=\"{photo_url}\"")),
            "{transcript}"
        );
        let views_before = views_of(queued).await;
        let shown = agent.get(&photo_url).await;
        assert_eq!(shown.status(), 200);
        assert_eq!(shown.headers()["content-type"], "image/jpeg");
        assert_eq!(shown.headers()["x-content-type-options"], "nosniff");
        assert_eq!(shown.bytes().await.unwrap().to_vec(), photo);
        let views_after = views_of(queued).await;
        assert_eq!(views_after, views_before + 1, "the view is recorded");
        // Not the agent's conversation, not in the queue: refused, and nothing recorded.
        assert_eq!(agent.get(&pdf_url).await.status(), 403);
        assert_eq!(views_of(other).await, 0);

        let supervisor = login(&app, "sunil@example.com").await;
        let download = supervisor.get(&pdf_url).await;
        assert_eq!(download.status(), 200);
        assert!(
            download.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment"),
            "a document is never rendered on the console's origin"
        );
        assert_eq!(download.bytes().await.unwrap().to_vec(), pdf);
        // A file under another conversation's URL is not found.
        let crossed = format!("/console/conversations/{queued}/media/{}", file_of(other));
        assert_eq!(supervisor.get(&crossed).await.status(), 404);
        // Logged out: the login page, not the file.
        assert_ne!(
            app.http
                .get(format!("{}{photo_url}", app.address))
                .send()
                .await
                .unwrap()
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned()),
            Some("image/jpeg".to_owned())
        );
    }
}

/// A real S3-compatible server (moto) on a free port, stopped on drop; or the one
/// `INSUREBOT_TEST_S3_ENDPOINT` names.
pub(crate) struct S3Server {
    /// The server's URL, e.g. `http://127.0.0.1:9000`.
    pub(crate) endpoint: String,
    child: Option<Child>,
}

impl S3Server {
    pub(crate) async fn start() -> S3Server {
        if let Ok(endpoint) = std::env::var("INSUREBOT_TEST_S3_ENDPOINT")
            && !endpoint.is_empty()
        {
            return S3Server {
                endpoint,
                child: None,
            };
        }
        let bin = std::env::var("INSUREBOT_TEST_MOTO_SERVER").unwrap_or_else(|_| {
            format!(
                "{}/.cache/insurebot-moto/bin/moto_server",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        assert!(
            Path::new(&bin).exists(),
            "the S3 tests need moto's server at {bin}: python3 -m venv ~/.cache/insurebot-moto && \
             ~/.cache/insurebot-moto/bin/pip install 'moto[server]' (.ci/run does this), or set \
             INSUREBOT_TEST_S3_ENDPOINT to an S3-compatible server"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let server = S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(&server.endpoint).await.is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// Points `settings`' media store at `bucket` on this server (moto takes any key).
    pub(crate) fn configure(&self, settings: &mut insurebot::config::Settings, bucket: &str) {
        settings.media.s3_bucket = Some(bucket.to_owned());
        settings.media.s3_endpoint = Some(self.endpoint.clone());
        settings.media.s3_allow_http = true;
        settings.media.s3_access_key_id = Some("testing".into());
        settings.media.s3_secret_access_key = Some("testing".to_owned().into());
    }

    /// Creates a bucket (moto accepts the unsigned request).
    pub(crate) async fn bucket(&self, name: &str) {
        let resp = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "create bucket: {}",
            resp.status()
        );
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[needs_s3]
#[tokio::test]
async fn photos_and_documents_go_to_s3_compatible_storage_when_a_bucket_is_set() {
    let s3 = S3Server::start().await;
    for (n, backend) in backends().into_iter().enumerate() {
        let bucket = format!("insurebot-test-{n}-{}", std::process::id());
        s3.bucket(&bucket).await;
        let mut media = insurebot::config::media::MediaSettings::default();
        let app = spawn_app_with(&backend, |s| {
            s3.configure(s, &bucket);
            media = s.media.clone();
        })
        .await;
        // Larger than one 5 MiB part: the store uploads it in parts.
        let pdf = {
            let mut v = b"%PDF-1.7\n".to_vec();
            v.extend((0..6 * 1024 * 1024).map(|i| (i % 251) as u8));
            v
        };
        let photo = jpeg(50_000, 7);
        post_photo_and_pdf(&app, ("919800000142", &photo), ("919800000141", &pdf)).await;
        app.wait_for_sends(2).await;
        let rows = rows(&app).await;
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.state == "stored"), "{rows:?}");

        let store =
            MediaStore::from_settings(&media, &insurebot::config::DatabaseUrl::new("")).unwrap();
        assert_eq!(store.kind, "s3");
        for bytes in [&pdf, &photo] {
            let (size, mut stream) = store.get(&sha256_hex(bytes)).await.unwrap();
            assert_eq!(size, bytes.len() as u64);
            let mut got = Vec::new();
            while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                got.extend_from_slice(&chunk.unwrap());
            }
            assert_eq!(&got, bytes);
        }
    }
}

/// The text of the latest send to `phone`, waiting up to 15 s for one.
async fn last_reply_to(app: &TestApp, phone: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(send) = app
            .sent_messages()
            .iter()
            .rev()
            .find(|s| recipient_of(s) == phone)
        {
            return text_of(send);
        }
        assert!(Instant::now() < deadline, "no reply to {phone}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}
