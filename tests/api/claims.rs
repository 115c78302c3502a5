//! Claims from the chat (issue 18): a policyholder reports a claim with a photo through the
//! real webhook, the fake Cloud API's media endpoints and the media store (a local directory
//! or S3-compatible storage served by moto), gets a claim number, and sends a claim's pending
//! documents; the files land in `claim_documents` and stay covered by erasure. The HTTP
//! source sends the claim to the insurer's API with signed, expiring links to the files,
//! which this server serves only to a valid signature.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::response::IntoResponse;
use axum::routing::post;
use insurebot::config::{DialogueMode, PolicySourceKind};
use insurebot::store::entities::{claim, claim_document};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::media::{S3Server, jpeg, media_message, sha256_hex, stored_path};

/// Rajesh: registered on a health, a motor and a life policy of the sample data; the motor
/// policy's claim CLM-240455 waits for two documents.
const RAJESH: &str = "919812345678";
const MOTOR: &str = "M-2025/778812";

/// A PDF's signature and some filler.
fn pdf(len: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n".to_vec();
    v.extend((0..len).map(|i| (i % 251) as u8));
    v
}

fn flows(s: &mut insurebot::config::Settings) {
    s.dialogue.handler = DialogueMode::Flows;
}

/// One policyholder's side of the chat: each call sends one message and returns the bot's
/// answer (the text shown and the full request).
struct Chat<'a> {
    app: &'a TestApp,
    phone: &'a str,
    ts: i64,
}

impl<'a> Chat<'a> {
    /// Rajesh's chat, with the sample insurer data loaded.
    async fn rajesh_with_sample_data(app: &'a TestApp) -> Chat<'a> {
        assert!(
            insurebot::insurer::load_sample_if_empty(&app.db)
                .await
                .unwrap()
        );
        Chat {
            app,
            phone: RAJESH,
            ts: now_secs(),
        }
    }

    async fn send(&mut self, message: Value) -> (String, Value) {
        let before = self.app.sent_messages().len();
        self.app.post_webhook(&envelope(vec![message])).await;
        let sent = self.app.wait_for_sends(before + 1).await;
        let last = sent.last().unwrap();
        assert_eq!(recipient_of(last), self.phone);
        (shown(last), last.body.clone())
    }

    fn next_ts(&mut self) -> i64 {
        self.ts += 1;
        self.ts
    }

    async fn text(&mut self, body: &str) -> (String, Value) {
        let ts = self.next_ts();
        self.send(text_message(self.phone, &new_wamid(), ts, body))
            .await
    }

    async fn tap(&mut self, kind: &str, id: &str) -> (String, Value) {
        let ts = self.next_ts();
        self.send(json!({
            "from": self.phone, "id": new_wamid(), "timestamp": ts.to_string(), "type": "interactive",
            "interactive": { "type": kind, kind: { "id": id, "title": id } }
        }))
        .await
    }

    /// Puts the file in the fake Cloud API and sends it as a media message.
    async fn file(&mut self, kind: &str, bytes: &[u8], mime: &str) -> (String, Value) {
        let id = self.app.fake.add_media(bytes.to_vec(), mime);
        let mut message = media_message(self.phone, kind, &id, mime);
        message["timestamp"] = json!(self.next_ts().to_string());
        self.send(message).await
    }
}

/// Ids of the buttons or list rows of an interactive message.
fn choices(body: &Value) -> Vec<String> {
    let i = &body["interactive"];
    let mut ids: Vec<String> = i["action"]["buttons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["reply"]["id"].as_str().map(str::to_owned))
        .collect();
    for section in i["action"]["sections"].as_array().into_iter().flatten() {
        for row in section["rows"].as_array().into_iter().flatten() {
            ids.extend(row["id"].as_str().map(str::to_owned));
        }
    }
    ids
}

/// The whole first notice of loss with one photo; returns the new claim number.
async fn report_a_motor_accident(app: &TestApp, photo: &[u8]) -> String {
    let mut chat = Chat::rajesh_with_sample_data(app).await;
    let (text, body) = chat.text("report a claim").await;
    assert!(text.contains("Which policy"), "{text}");
    assert!(choices(&body).contains(&MOTOR.to_owned()), "{body}");
    let (text, body) = chat.tap("list_reply", MOTOR).await;
    assert!(text.contains("What happened?"), "{text}");
    // A motor policy: accidents and theft, not hospitalisation.
    let offered = choices(&body);
    assert!(offered.contains(&"accident".to_owned()), "{offered:?}");
    assert!(
        !offered.contains(&"hospitalisation".to_owned()),
        "{offered:?}"
    );
    let (text, _) = chat.tap("list_reply", "accident").await;
    assert!(text.contains("When did it happen?"), "{text}");
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Duration::days(2);
    let (text, _) = chat.text(&tomorrow.format("%d/%m/%Y").to_string()).await;
    assert!(
        text.contains("already passed"),
        "a future date is refused: {text}"
    );
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(3);
    let (text, _) = chat.text(&day.format("%d/%m/%Y").to_string()).await;
    assert!(text.contains("describe briefly"), "{text}");
    let (text, body) = chat
        .text("A truck hit the rear of my car at a signal.")
        .await;
    assert!(text.contains("send photos"), "{text}");
    assert_eq!(choices(&body), ["files.done"]);
    let (text, body) = chat.file("image", photo, "image/jpeg").await;
    assert!(text.contains("1 file received"), "{text}");
    assert_eq!(choices(&body), ["files.done"], "Done comes with the answer");
    let (text, _) = chat.tap("button_reply", "files.done").await;
    assert!(text.contains("What happened: Accident"), "{text}");
    assert!(
        text.contains(&format!("When: {}", day.format("%d/%m/%Y"))),
        "{text}"
    );
    assert!(text.contains("Files: 1"), "{text}");
    let (text, _) = chat.tap("button_reply", "intimate.confirm").await;
    claim_number_in(&text)
}

/// The claim number the confirmation names.
fn claim_number_in(text: &str) -> String {
    let number = text
        .split("Your claim number is ")
        .nth(1)
        .and_then(|rest| rest.get(..10))
        .unwrap_or_else(|| panic!("no claim number in {text}"));
    assert!(number.starts_with("CLM-"), "{text}");
    number.to_owned()
}

/// The claim and its documents as the embedded tables keep them.
async fn stored_claim(app: &TestApp, number: &str) -> (claim::Model, Vec<claim_document::Model>) {
    let row = claim::Entity::find()
        .filter(claim::Column::ClaimNumber.eq(number))
        .one(&app.db)
        .await
        .unwrap()
        .expect("the claim is stored");
    let docs = claim_document::Entity::find()
        .filter(claim_document::Column::ClaimNumber.eq(number))
        .all(&app.db)
        .await
        .unwrap();
    (row, docs)
}

#[tokio::test]
async fn a_policyholder_reports_a_claim_with_a_photo_and_gets_a_claim_number() {
    for backend in backends() {
        let mut media_dir = PathBuf::new();
        let app = spawn_app_with(&backend, |s| {
            flows(s);
            media_dir = s.media.dir.clone().unwrap();
        })
        .await;
        let photo = jpeg(120_000, 3);
        let number = report_a_motor_accident(&app, &photo).await;
        let (row, docs) = stored_claim(&app, &number).await;
        assert_eq!(row.policy_number, MOTOR);
        assert_eq!(row.stage, "intimated");
        assert_eq!(row.loss_type.as_deref(), Some("accident"));
        assert_eq!(
            row.description.as_deref(),
            Some("A truck hit the rear of my car at a signal.")
        );
        assert!(row.intimated_by_contact_id.is_some());
        assert_eq!(docs.len(), 1, "{docs:?}");
        assert_eq!(docs[0].sha256, sha256_hex(&photo));
        assert_eq!(docs[0].mime_type, "image/jpeg");
        assert_eq!(docs[0].kind, "image");
        assert_eq!(
            std::fs::read(stored_path(&media_dir, &docs[0].sha256)).unwrap(),
            photo,
            "the claim's file is the photo in the media store"
        );
    }
}

#[needs_s3]
#[tokio::test]
async fn a_claim_reported_with_s3_storage_keeps_its_photo_in_the_bucket() {
    let s3 = S3Server::start().await;
    for (n, backend) in backends().into_iter().enumerate() {
        let bucket = format!("insurebot-claims-{n}-{}", std::process::id());
        s3.bucket(&bucket).await;
        let mut media = insurebot::config::media::MediaSettings::default();
        let app = spawn_app_with(&backend, |s| {
            flows(s);
            s.media.s3_bucket = Some(bucket.clone());
            s.media.s3_endpoint = Some(s3.endpoint.clone());
            s.media.s3_allow_http = true;
            s.media.s3_access_key_id = Some("testing".into());
            s.media.s3_secret_access_key = Some("testing".to_owned().into());
            media = s.media.clone();
        })
        .await;
        let photo = jpeg(80_000, 9);
        let number = report_a_motor_accident(&app, &photo).await;
        let (_, docs) = stored_claim(&app, &number).await;
        assert_eq!(docs.len(), 1);
        let store = insurebot::media::MediaStore::from_settings(
            &media,
            &insurebot::config::DatabaseUrl::new(""),
        )
        .unwrap();
        assert_eq!(store.kind, "s3");
        let (size, mut stream) = store.get(&docs[0].sha256).await.unwrap();
        assert_eq!(size, photo.len() as u64);
        let mut got = Vec::new();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, photo);
    }
}

#[tokio::test]
async fn pending_documents_are_sent_from_the_claims_status_and_erasure_removes_them() {
    const TOKEN: &str = "claims-api-token-0123456789";
    for backend in backends() {
        let mut media_dir = PathBuf::new();
        let mut media = insurebot::config::media::MediaSettings::default();
        let app = spawn_app_with(&backend, |s| {
            flows(s);
            s.api_token = Some(TOKEN.to_owned().into());
            media_dir = s.media.dir.clone().unwrap();
            media = s.media.clone();
        })
        .await;
        let mut chat = Chat::rajesh_with_sample_data(&app).await;
        chat.text("claim status").await;
        let (text, body) = chat.text("CLM-240455").await;
        assert!(text.contains("2 documents are pending"), "{text}");
        assert_eq!(
            choices(&body),
            ["claim.send_documents", "claim.another", "menu"]
        );
        let (text, _) = chat.tap("button_reply", "claim.send_documents").await;
        assert!(text.contains("claim CLM-240455"), "{text}");
        // Done before any file: asked again, nothing sent to the claim.
        let (text, _) = chat.tap("button_reply", "files.done").await;
        assert!(text.contains("pending documents"), "{text}");
        let bill = pdf(40_000);
        let (text, _) = chat.file("document", &bill, "application/pdf").await;
        assert!(text.contains("1 file received"), "{text}");
        // An audio note where photos and documents are wanted: the kinds, in words.
        let ogg = b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
        let (text, _) = chat.file("audio", &ogg, "audio/ogg").await;
        assert!(
            text.contains("This step accepts: photos, documents (PDF)"),
            "{text}"
        );
        let (text, _) = chat.tap("button_reply", "files.done").await;
        assert!(
            text.contains("1 file was added to claim CLM-240455"),
            "{text}"
        );
        let (row, docs) = stored_claim(&app, "CLM-240455").await;
        assert_eq!(row.pending_documents, 1, "one of two is in");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].sha256, sha256_hex(&bill));
        assert_eq!(docs[0].mime_type, "application/pdf");
        let path = stored_path(&media_dir, &docs[0].sha256);
        assert!(path.exists());

        // Retention of chat bodies keeps a claim's file: the claim still names it.
        let store = insurebot::media::MediaStore::from_settings(
            &media,
            &insurebot::config::DatabaseUrl::new(""),
        )
        .unwrap();
        let report = insurebot::consent::erasure::purge_older_than(
            &app.db,
            Some(&store),
            1,
            insurebot::store::now_ms() + 2 * 24 * 3_600_000,
        )
        .await
        .unwrap();
        assert!(report.media_files >= 1, "{report:?}");
        assert!(path.exists(), "retention left the claim's file alone");

        // Erasure of the contact: the claim document and its file go; the claim stays.
        let receipt = app.erase_over_api(RAJESH, TOKEN).await;
        assert_eq!(receipt["tables"]["claim_documents"], 1, "{receipt}");
        let (row, docs) = stored_claim(&app, "CLM-240455").await;
        assert!(docs.is_empty(), "{docs:?}");
        assert_eq!(row.policy_number, MOTOR, "the insurer's claim stays");
        assert!(!path.exists(), "the file left the store");
    }
}

/// What the stand-in insurer API received.
#[derive(Default)]
struct Received {
    claims: Vec<Value>,
    documents: Vec<(String, Value)>,
}

/// The stand-in's claim CLM-777002 on the motor policy, waiting for `pending` documents.
fn pending_claim(pending: u32) -> Value {
    json!({
        "claim_number": "CLM-777002", "policy_number": MOTOR, "stage": "documents_pending",
        "pending_documents": pending, "filed_date": "2026-11-20", "updated_date": "2026-11-22"
    })
}

/// A stand-in insurer API that serves one policy and takes claims.
async fn spawn_claims_api() -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let policy = json!({
        "policy_number": MOTOR, "holder_name": "Rajesh Kumar Sharma", "holder_dob": "1978-04-12",
        "mobile": RAJESH, "product": "motor", "plan": "Private Car Comprehensive", "status": "active",
        "sum_assured_paise": 65_000_000, "start_date": "2025-12-10"
    });
    let search = policy.clone();
    let one = policy.clone();
    let app = axum::Router::new()
        .route(
            "/v1/policies/search",
            post(move || {
                let p = search.clone();
                async move { axum::Json(json!({ "policies": [p] })) }
            }),
        )
        .route(
            "/v1/policies/{number}",
            axum::routing::get(move |UrlPath(number): UrlPath<String>| {
                let p = one.clone();
                async move {
                    if number == MOTOR {
                        axum::Json(p).into_response()
                    } else {
                        axum::http::StatusCode::NOT_FOUND.into_response()
                    }
                }
            }),
        )
        .route(
            "/v1/claims",
            post(
                |State(r): State<Arc<Mutex<Received>>>, axum::Json(body): axum::Json<Value>| async move {
                    r.lock().unwrap().claims.push(body.clone());
                    (
                        axum::http::StatusCode::CREATED,
                        axum::Json(json!({
                            "claim_number": "CLM-777001", "policy_number": body["policy_number"],
                            "stage": "intimated", "pending_documents": 0,
                            "filed_date": body["filed_date"], "updated_date": body["filed_date"]
                        })),
                    )
                },
            ),
        )
        .route(
            "/v1/claims/{number}",
            axum::routing::get(|UrlPath(number): UrlPath<String>| async move {
                if number == "CLM-777002" {
                    axum::Json(pending_claim(1)).into_response()
                } else {
                    axum::http::StatusCode::NOT_FOUND.into_response()
                }
            }),
        )
        .route(
            "/v1/claims/{number}/documents",
            post(
                |State(r): State<Arc<Mutex<Received>>>,
                 UrlPath(number): UrlPath<String>,
                 axum::Json(body): axum::Json<Value>| async move {
                    if number != "CLM-777002" {
                        return axum::http::StatusCode::NOT_FOUND.into_response();
                    }
                    r.lock().unwrap().documents.push((number, body));
                    axum::Json(pending_claim(0)).into_response()
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, received)
}

/// Where the insurer reaches this server (the test reaches the app by its own address).
const LINK_BASE: &str = "https://bot.insurer.example";

#[tokio::test]
async fn the_http_source_sends_the_claim_with_signed_links_that_only_open_their_file() {
    for backend in backends() {
        let (api_base, received) = spawn_claims_api().await;
        let app = spawn_app_with(&backend, |s| {
            flows(s);
            s.insurer.source = PolicySourceKind::Http;
            s.insurer.http.base_url = api_base.clone();
            s.insurer.http.file_link_base = LINK_BASE.to_owned();
        })
        .await;
        let photo = jpeg(60_000, 5);
        let mut chat = Chat {
            app: &app,
            phone: RAJESH,
            ts: now_secs(),
        };
        let (text, _) = chat.text("report a claim").await;
        assert!(
            text.contains("What happened?"),
            "one policy: no list: {text}"
        );
        chat.tap("list_reply", "theft").await;
        let day = chrono::Utc::now().date_naive() - chrono::Duration::days(2);
        chat.text(&day.format("%d/%m/%Y").to_string()).await;
        chat.text("My car was stolen from outside my house.").await;
        chat.file("image", &photo, "image/jpeg").await;
        chat.tap("button_reply", "files.done").await;
        let (text, _) = chat.tap("button_reply", "intimate.confirm").await;
        assert!(text.contains("Your claim number is CLM-777001"), "{text}");

        let sent = received.lock().unwrap().claims.clone();
        assert_eq!(sent.len(), 1, "filed once");
        let claim = &sent[0];
        assert_eq!(claim["policy_number"], MOTOR);
        assert_eq!(claim["loss_type"], "theft");
        assert_eq!(claim["loss_date"], day.to_string());
        let file = &claim["files"][0];
        assert_eq!(file["sha256"], sha256_hex(&photo));
        assert_eq!(file["mime"], "image/jpeg");
        assert!(claim.get("contact_id").is_none(), "{claim}");
        let url = file["url"].as_str().unwrap().to_owned();
        assert!(file["link_expires_at"].as_str().is_some(), "{file}");

        // The insurer fetches the file by the link (here: its path, against the app).
        let path_and_query = url.strip_prefix(LINK_BASE).unwrap();
        let got = app.get(path_and_query).await;
        assert_eq!(got.status(), 200);
        assert_eq!(got.headers()["content-type"], "image/jpeg");
        assert_eq!(got.bytes().await.unwrap().to_vec(), photo);
        // A tampered signature, another file, or an expiry moved later: refused.
        let forged = path_and_query.replace("sig=", "sig=00");
        assert_eq!(app.get(&forged).await.status(), 403);
        let other = path_and_query.replace(&sha256_hex(&photo), &"ab".repeat(32));
        assert_eq!(app.get(&other).await.status(), 403);
        let (_, query) = path_and_query.split_once('?').unwrap();
        let expires: i64 = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("expires="))
            .unwrap()
            .parse()
            .unwrap();
        let later = path_and_query.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 86_400),
        );
        assert_eq!(app.get(&later).await.status(), 403);
        let no_sig = path_and_query.split_once('?').unwrap().0;
        assert_eq!(app.get(no_sig).await.status(), 403);

        // Pending documents go to the insurer's claim the same way.
        chat.text("claim status").await;
        let (text, body) = chat.text("CLM-777002").await;
        assert!(text.contains("One document is pending"), "{text}");
        assert_eq!(choices(&body)[0], "claim.send_documents");
        chat.tap("button_reply", "claim.send_documents").await;
        let bill = pdf(9_000);
        chat.file("document", &bill, "application/pdf").await;
        let (text, _) = chat.tap("button_reply", "files.done").await;
        assert!(
            text.contains("1 file was added to claim CLM-777002"),
            "{text}"
        );
        let docs = received.lock().unwrap().documents.clone();
        assert_eq!(docs.len(), 1);
        let file = &docs[0].1["files"][0];
        assert_eq!(file["sha256"], sha256_hex(&bill));
        let link = file["url"]
            .as_str()
            .unwrap()
            .strip_prefix(LINK_BASE)
            .unwrap();
        let got = app.get(link).await;
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().to_vec(), bill);
    }
}

/// The simulator's phone: sends through its routes, reads the bot's replies back from it.
struct Simulator<'a> {
    app: &'a TestApp,
    phone: &'a str,
}

impl Simulator<'_> {
    async fn replies(&self) -> Vec<Value> {
        let listed: Value = self
            .app
            .get(&format!("/simulator/messages?phone={}", self.phone))
            .await
            .json()
            .await
            .unwrap();
        listed["messages"].as_array().cloned().unwrap_or_default()
    }

    /// Waits for the next reply after `before` replies and returns what it shows.
    async fn next_reply(&self, before: usize) -> (String, Value) {
        for _ in 0..600 {
            let replies = self.replies().await;
            if replies.len() > before {
                let body = replies.last().unwrap()["body"].clone();
                let text = body["text"]["body"]
                    .as_str()
                    .or_else(|| body["interactive"]["body"]["text"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                return (text, body);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("no reply from the simulator after {before}");
    }

    async fn send(&self, kind: &str, text: &str, id: &str) -> (String, Value) {
        let before = self.replies().await.len();
        let sent = self
            .app
            .http
            .post(format!("{}/simulator/send", self.app.address))
            .json(&json!({ "phone": self.phone, "kind": kind, "text": text, "id": id }))
            .send()
            .await
            .unwrap();
        assert!(sent.status().is_success(), "{}", sent.status());
        self.next_reply(before).await
    }

    /// Attaches a file on the page: a multipart upload, as the browser sends it.
    async fn attach(&self, bytes: &[u8], mime: &str, name: &str) -> (String, Value) {
        let before = self.replies().await.len();
        let boundary = "simulatorboundary7MA4YWxk";
        let mut body = Vec::new();
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n{}\r\n",
                self.phone
            )
            .bytes(),
        );
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n"
            )
            .bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend(format!("\r\n--{boundary}--\r\n").bytes());
        let request = |with_header: bool| {
            let mut r = self
                .app
                .http
                .post(format!("{}/simulator/attach", self.app.address))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body.clone());
            if with_header {
                r = r.header("x-simulator", "1");
            }
            r
        };
        // A cross-site form cannot set the header: without it nothing is sent.
        let refused = request(false).send().await.unwrap();
        assert_eq!(refused.status(), 409);
        let sent = request(true).send().await.unwrap();
        assert!(sent.status().is_success(), "{}", sent.status());
        self.next_reply(before).await
    }
}

#[tokio::test]
async fn the_simulator_reports_a_claim_with_a_photo_through_the_real_media_path() {
    for backend in backends() {
        let app = spawn_sandbox_app(&backend).await;
        let sim = Simulator {
            app: &app,
            phone: RAJESH,
        };
        let (text, _) = sim.send("text", "report a claim", "").await;
        assert!(text.contains("Which policy"), "{text}");
        sim.send("list", "Private Car", MOTOR).await;
        sim.send("list", "Accident", "accident").await;
        let day = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
        sim.send("text", &day.format("%d/%m/%Y").to_string(), "")
            .await;
        let (text, _) = sim
            .send("text", "Scraped the left door on a pillar.", "")
            .await;
        assert!(text.contains("send photos"), "{text}");
        let photo = jpeg(30_000, 11);
        let (text, _) = sim.attach(&photo, "image/jpeg", "door.jpg").await;
        assert!(text.contains("1 file received"), "{text}");
        let (text, _) = sim
            .attach(&pdf(5_000), "application/pdf", "estimate.pdf")
            .await;
        assert!(text.contains("2 files received"), "{text}");
        let (text, _) = sim.send("button", "Done", "files.done").await;
        assert!(text.contains("Files: 2"), "{text}");
        let (text, _) = sim
            .send("button", "Register claim", "intimate.confirm")
            .await;
        let number = claim_number_in(&text);
        let (_, docs) = stored_claim(&app, &number).await;
        let mut kinds: Vec<(String, String)> = docs
            .iter()
            .map(|d| (d.kind.clone(), d.sha256.clone()))
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                ("document".to_owned(), sha256_hex(&pdf(5_000))),
                ("image".to_owned(), sha256_hex(&photo))
            ]
        );
        assert_eq!(
            docs.iter()
                .find(|d| d.kind == "document")
                .and_then(|d| d.file_name.clone())
                .as_deref(),
            Some("estimate.pdf")
        );
    }
}

#[tokio::test]
async fn the_claim_number_arrives_as_a_template_when_the_window_closed_meanwhile() {
    for backend in backends() {
        let app = spawn_app_with(&backend, flows).await;
        let mut chat = Chat::rajesh_with_sample_data(&app).await;
        chat.text("report a claim").await;
        chat.tap("list_reply", MOTOR).await;
        chat.tap("list_reply", "fire").await;
        let day = chrono::Utc::now().date_naive() - chrono::Duration::days(4);
        chat.text(&day.format("%d/%m/%Y").to_string()).await;
        chat.text("The engine caught fire on the highway.").await;
        let (text, _) = chat.tap("button_reply", "files.done").await;
        assert!(text.contains("Files: 0"), "{text}");
        // The confirmation reaches us a day late (the phone was offline): the window has
        // closed by the time the claim number is sent.
        let contact = insurebot::store::entities::contact::Entity::find()
            .filter(insurebot::store::entities::contact::Column::WaId.eq(RAJESH))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        insurebot::http::console::pages::move_window_back(&app.db, contact.id, 26)
            .await
            .unwrap();
        chat.ts = now_secs() - 25 * 3600;
        let (_, body) = chat.tap("button_reply", "intimate.confirm").await;
        assert_eq!(body["type"], "template", "{body}");
        assert_eq!(body["template"]["name"], "claim_intimated");
        let number = body["template"]["components"][0]["parameters"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"));
        assert!(number.starts_with("CLM-"), "{body}");
        let (row, _) = stored_claim(&app, number).await;
        assert_eq!(row.loss_type.as_deref(), Some("fire"));
    }
}
