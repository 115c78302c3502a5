//! Agents attach files (issue 18): `POST /console/conversations/{contact}/attach` (multipart)
//! sends a PDF or a photo in a conversation the agent holds while the window is open, under
//! the text reply's rules; the transcript shows it; bad files are refused in words.

use insurebot::config::DialogueMode;
use insurebot::http::console::auth::Role;
use insurebot::store::entities::outbound_media;
use reqwest::StatusCode;
use reqwest::header::COOKIE;
use sea_orm::EntityTrait;

use crate::console::{AgentClient, add_agent, login, queued_handoff};
use crate::helpers::*;

/// One multipart part: `(name, file name, content type, bytes)`.
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

async fn post_multipart(agent: &AgentClient, path: &str, parts: &[Part<'_>]) -> reqwest::Response {
    let boundary = "insurebot-test-boundary";
    let mut body = Vec::new();
    for (name, file_name, content_type, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = file_name {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(t) = content_type {
            body.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    agent
        .http
        .post(format!("{}{path}", agent.base))
        .header(COOKIE, format!("insurebot_session={}", agent.cookie))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A small PDF (also picked through the real form in `browser.rs`).
pub(crate) fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n% claim form\n".to_vec();
    v.extend((0..20_000).map(|i| (i % 199) as u8));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

fn attach_path(contact_id: i64) -> String {
    format!("/console/conversations/{contact_id}/attach")
}

#[tokio::test]
async fn an_agent_attaches_a_pdf_while_the_window_is_open_and_the_transcript_shows_it() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| s.dialogue.handler = DialogueMode::Flows).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        let queued = queued_handoff(&app, "919800000801").await;
        let agent = login(&app, "asha@example.com").await;
        let path = attach_path(queued.contact_id);
        let file = pdf();

        // Not taken yet: refused like a text reply.
        let refused = post_multipart(
            &agent,
            &path,
            &[
                ("csrf", None, None, agent.csrf.as_bytes()),
                (
                    "file",
                    Some("claim-form.pdf"),
                    Some("application/pdf"),
                    &file,
                ),
            ],
        )
        .await;
        assert_eq!(refused.status(), StatusCode::CONFLICT);
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("Take the conversation before replying.")
        );

        let before = app.sent_messages().len();
        agent.take(queued.id).await;
        // The conversation page offers the form, posting here with the session's token.
        let page = agent
            .get(&format!("/console/conversations/{}", queued.contact_id))
            .await
            .text()
            .await
            .unwrap();
        let form = page
            .split("<form")
            .find(|f| f.contains("id=\"attach-form\""))
            .unwrap_or_else(|| panic!("no attach form: {page}"));
        assert!(form.contains(&format!("action=\"{path}\"")), "{form}");
        assert!(form.contains("enctype=\"multipart/form-data\""), "{form}");
        assert!(form.contains(&agent.csrf), "{form}");
        // Without the form's CSRF token nothing is kept.
        let forged = post_multipart(
            &agent,
            &path,
            &[(
                "file",
                Some("claim-form.pdf"),
                Some("application/pdf"),
                &file,
            )],
        )
        .await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);

        let sent = post_multipart(
            &agent,
            &path,
            &[
                ("csrf", None, None, agent.csrf.as_bytes()),
                (
                    "file",
                    Some("claim-form.pdf"),
                    Some("application/pdf"),
                    &file,
                ),
                (
                    "caption",
                    None,
                    None,
                    "Please sign and send back page 2".as_bytes(),
                ),
            ],
        )
        .await;
        assert_eq!(
            sent.status(),
            StatusCode::SEE_OTHER,
            "{}",
            sent.text().await.unwrap()
        );
        let sends = app.wait_for_sends(before + 1).await;
        let document = sends
            .iter()
            .find(|s| s.body["type"] == "document")
            .unwrap_or_else(|| panic!("no document sent: {sends:#?}"));
        assert_eq!(recipient_of(document), "919800000801");
        assert_eq!(document.body["document"]["filename"], "claim-form.pdf");
        assert_eq!(
            document.body["document"]["caption"],
            "Please sign and send back page 2"
        );
        let id = document.body["document"]["id"].as_str().unwrap();
        assert_eq!(app.fake.media(id).unwrap().0.as_ref(), file.as_slice());

        let fragment = agent
            .transcript_showing(queued.contact_id, |f| {
                f.contains("[document: claim-form.pdf]")
            })
            .await;
        assert!(
            fragment.contains("Please sign and send back page 2"),
            "{fragment}"
        );
        let rows = outbound_media::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (
                rows[0].source.as_str(),
                rows[0].kind.as_str(),
                rows[0].contact_id
            ),
            ("agent", "document", queued.contact_id)
        );
    }
}

#[tokio::test]
async fn a_photo_goes_as_an_image_and_files_whatsapp_would_refuse_are_refused_in_words() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| s.dialogue.handler = DialogueMode::Flows).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        let queued = queued_handoff(&app, "919800000802").await;
        let agent = login(&app, "asha@example.com").await;
        agent.take(queued.id).await;
        let path = attach_path(queued.contact_id);
        let csrf = agent.csrf.clone();
        let post = |name: &'static str, declared: &'static str, bytes: Vec<u8>| {
            let (agent, path, csrf) = (&agent, path.clone(), csrf.clone());
            async move {
                post_multipart(
                    agent,
                    &path,
                    &[
                        ("csrf", None, None, csrf.as_bytes()),
                        ("file", Some(name), Some(declared), &bytes),
                    ],
                )
                .await
            }
        };

        // An executable named like a PDF: its bytes say what it is.
        let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
        exe.extend([0u8; 200]);
        let refused = post("invoice.pdf", "application/pdf", exe).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("file: not a type WhatsApp delivers"),
        );
        // A photo over WhatsApp's 5 MB image limit.
        let mut big = vec![
            0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
        ];
        big.resize(5 * 1024 * 1024 + 1, 7);
        let refused = post("damage.jpg", "image/jpeg", big).await;
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("image.size: 5242881 bytes, the limit is 5242880 bytes (5 MB)")
        );
        assert!(
            !app.media_dir().join("sha256").exists(),
            "nothing refused is kept in the store"
        );

        let mut photo = vec![
            0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
        ];
        photo.extend((0..30_000).map(|i| (i % 13) as u8));
        let before = app.sent_messages().len();
        let sent = post("C:\\Users\\asha\\garage.jpg", "image/jpeg", photo.clone()).await;
        assert_eq!(sent.status(), StatusCode::SEE_OTHER);
        let sends = app.wait_for_sends(before + 1).await;
        let image = sends.iter().find(|s| s.body["type"] == "image").unwrap();
        // Photos carry no file name.
        assert!(
            image.body["image"].get("filename").is_none(),
            "{}",
            image.body
        );
        let id = image.body["image"]["id"].as_str().unwrap();
        assert_eq!(
            app.fake.media(id).unwrap(),
            (photo.into(), "image/jpeg".to_owned())
        );

        // Once the window has closed, only templates: the file is refused before it is read.
        insurebot::http::console::pages::move_window_back(&app.db, queued.contact_id, 25)
            .await
            .unwrap();
        let closed = post("claim-form.pdf", "application/pdf", pdf()).await;
        assert_eq!(closed.status(), StatusCode::CONFLICT);
        assert!(
            closed
                .text()
                .await
                .unwrap()
                .contains("The 24-hour window has closed: only approved templates can be sent.")
        );
        app.assert_no_more_sends(before + 1).await;
    }
}
