//! The fake Cloud API's media endpoints (reference §7): what the pipeline resolves and
//! downloads for inbound media, and where outbound files are uploaded.
//!
//! - `GET /{version}/{media_id}`: the metadata Meta answers (`url`, `mime_type`, `sha256`,
//!   `file_size`, `id`), bearer token required; an unknown id is Graph's 404.
//! - `GET /_fake/media/{media_id}`: the download `url` points here; like Meta's lookaside URL
//!   it needs the same bearer token (401 without).
//! - `POST /{version}/{phone_number_id}/media`: a multipart upload (`file`, `type`,
//!   `messaging_product=whatsapp`) answered `{"id": …}`; the file can then be downloaded.
//! - `DELETE /{version}/{media_id}`: forgets an upload, `{"success": true}`.
//!
//! Tests put files in with [`FakeCloudApi::add_media`] (what a WhatsApp user's phone uploads
//! before the webhook arrives) and script faults with [`FakeCloudApi::script_media`].

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{FakeCloudApi, graph_error, has_bearer_token, invalid_parameter};

/// Meta's overall media limit (100 MB): larger uploads are refused like Meta refuses them.
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024;

/// One file the fake holds.
#[derive(Clone)]
pub(super) struct StoredMedia {
    bytes: Bytes,
    mime_type: String,
    /// What the metadata claims; normally the bytes' hash, a test may make it lie.
    sha256: String,
    /// Uploaded through the API (not added by a test as inbound media).
    uploaded: bool,
}

/// A scripted media misbehaviour, consumed in the order added (one per request at most).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MediaFault {
    /// The next `count` downloads answer 404, as an expired lookaside URL does.
    DownloadNotFound { count: u32 },
    /// The next `count` downloads wait `delay_ms` before sending the body (a slow network).
    DownloadDelay { count: u32, delay_ms: u64 },
}

impl FakeCloudApi {
    /// Stores `bytes` as an inbound file and returns its media id (what a webhook carries).
    pub fn add_media(&self, bytes: impl Into<Bytes>, mime_type: &str) -> String {
        let bytes = bytes.into();
        let sha256 = hex::encode(Sha256::digest(&bytes));
        self.add_media_claiming(bytes, mime_type, &sha256)
    }

    /// Like [`Self::add_media`] with metadata that claims `sha256` whatever the bytes are
    /// (a file corrupted in transit, as the pipeline sees it).
    pub fn add_media_claiming(
        &self,
        bytes: impl Into<Bytes>,
        mime_type: &str,
        sha256: &str,
    ) -> String {
        let mut st = self.lock();
        st.seq_media += 1;
        let id = format!("{}", 9_000_000_000_000u64 + st.seq_media);
        st.media.insert(
            id.clone(),
            StoredMedia {
                bytes: bytes.into(),
                mime_type: mime_type.to_owned(),
                sha256: sha256.to_owned(),
                uploaded: false,
            },
        );
        id
    }

    /// The bytes and MIME type of a file the fake holds (an upload, for tests).
    pub fn media(&self, id: &str) -> Option<(Bytes, String)> {
        self.lock()
            .media
            .get(id)
            .map(|m| (m.bytes.clone(), m.mime_type.clone()))
    }

    /// How many uploads were accepted (a cached media id saves one).
    pub fn media_uploads(&self) -> u64 {
        self.lock().media_uploads
    }

    /// Forgets every upload, as Meta does after 30 days (tests of an expired media id).
    pub fn forget_uploads(&self) {
        let mut st = self.lock();
        st.media.retain(|_, m| !m.uploaded);
    }

    /// How many downloads of stored files were answered with their bytes.
    pub fn media_downloads(&self) -> u64 {
        self.lock().media_downloads
    }

    /// Adds a media fault (see [`MediaFault`]).
    pub fn script_media(&self, fault: MediaFault) {
        self.lock().media_faults.push(fault);
    }

    /// The first fault with requests left, consumed.
    fn take_media_fault(&self) -> Option<MediaFault> {
        let mut st = self.lock();
        let fault = st.media_faults.iter_mut().find_map(|f| match f {
            MediaFault::DownloadNotFound { count } | MediaFault::DownloadDelay { count, .. }
                if *count > 0 =>
            {
                *count -= 1;
                Some(f.clone())
            }
            _ => None,
        });
        st.media_faults.retain(|f| match f {
            MediaFault::DownloadNotFound { count } | MediaFault::DownloadDelay { count, .. } => {
                *count > 0
            }
        });
        fault
    }
}

fn unauthorized() -> Response {
    graph_error(401, 190, None, "Invalid OAuth access token", None, None)
}

/// Graph's answer to an id it does not know.
fn unknown_object(id: &str) -> Response {
    graph_error(
        404,
        100,
        Some(33),
        &format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        ),
        None,
        None,
    )
}

pub(super) async fn metadata(
    State(fake): State<FakeCloudApi>,
    Path((_version, media_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !has_bearer_token(&headers) {
        return unauthorized();
    }
    let Some(m) = fake.lock().media.get(&media_id).cloned() else {
        return unknown_object(&media_id);
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "url": format!("http://{host}/_fake/media/{media_id}"),
        "mime_type": m.mime_type,
        "sha256": m.sha256,
        "file_size": m.bytes.len(),
        "id": media_id,
    }))
    .into_response()
}

pub(super) async fn delete(
    State(fake): State<FakeCloudApi>,
    Path((_version, media_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !has_bearer_token(&headers) {
        return unauthorized();
    }
    match fake.lock().media.remove(&media_id) {
        Some(_) => axum::Json(json!({ "success": true })).into_response(),
        None => unknown_object(&media_id),
    }
}

pub(super) async fn download(
    State(fake): State<FakeCloudApi>,
    Path(media_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !has_bearer_token(&headers) {
        return unauthorized();
    }
    let mut delay = None;
    match fake.take_media_fault() {
        Some(MediaFault::DownloadNotFound { .. }) => {
            return (StatusCode::NOT_FOUND, "URL signature expired").into_response();
        }
        Some(MediaFault::DownloadDelay { delay_ms, .. }) => {
            delay = Some(Duration::from_millis(delay_ms));
        }
        None => {}
    }
    let Some(m) = fake.lock().media.get(&media_id).cloned() else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    fake.lock().media_downloads += 1;
    let mut resp = m.bytes.into_response();
    if let Ok(v) = HeaderValue::from_str(&m.mime_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

pub(super) async fn upload(
    State(fake): State<FakeCloudApi>,
    Path((_version, _phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    if !has_bearer_token(&headers) {
        return unauthorized();
    }
    let mut file: Option<(Bytes, Option<String>)> = None;
    let mut mime_type = None;
    let mut product = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return invalid_parameter(&format!("The multipart body is malformed: {e}")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let content_type = field.content_type().map(str::to_owned);
        let Ok(data) = field.bytes().await else {
            return invalid_parameter("The multipart body is malformed.");
        };
        match name.as_str() {
            "file" => file = Some((data, content_type)),
            "type" => mime_type = Some(String::from_utf8_lossy(&data).into_owned()),
            "messaging_product" => product = Some(String::from_utf8_lossy(&data).into_owned()),
            _ => {}
        }
    }
    if product.as_deref() != Some("whatsapp") {
        return invalid_parameter("messaging_product must be \"whatsapp\".");
    }
    let Some((bytes, part_type)) = file else {
        return invalid_parameter("The file parameter is missing.");
    };
    let Some(mime_type) = mime_type.or(part_type).filter(|t| !t.is_empty()) else {
        return invalid_parameter("The type parameter is missing.");
    };
    if bytes.is_empty() || bytes.len() > MAX_UPLOAD_BYTES {
        return invalid_parameter("The file is empty or larger than 100 MB.");
    }
    let id = fake.add_media(bytes, &mime_type);
    {
        let mut st = fake.lock();
        st.media_uploads += 1;
        if let Some(m) = st.media.get_mut(&id) {
            m.uploaded = true;
        }
    }
    axum::Json(json!({ "id": id })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatsapp::fake::tests::start;

    #[tokio::test]
    async fn metadata_then_download_with_the_token_gives_the_bytes() {
        let (fake, server) = start().await;
        let id = fake.add_media(&b"\xff\xd8\xff\xe0 a photo"[..], "image/jpeg");
        let http = reqwest::Client::new();
        let url = format!("{}/{id}", server.base_url);
        assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
        let meta: serde_json::Value = http
            .get(&url)
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["mime_type"], "image/jpeg");
        assert_eq!(meta["file_size"], 12);
        assert_eq!(
            meta["sha256"],
            hex::encode(Sha256::digest(b"\xff\xd8\xff\xe0 a photo"))
        );
        let download = meta["url"].as_str().unwrap();
        assert_eq!(http.get(download).send().await.unwrap().status(), 401);
        let resp = http.get(download).bearer_auth("t").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/jpeg");
        assert_eq!(
            &resp.bytes().await.unwrap()[..],
            b"\xff\xd8\xff\xe0 a photo"
        );
        assert_eq!(fake.media_downloads(), 1);
    }

    #[tokio::test]
    async fn unknown_ids_are_graph_404s_and_faults_are_consumed_in_order() {
        let (fake, server) = start().await;
        let http = reqwest::Client::new();
        let resp = http
            .get(format!("{}/123", server.base_url))
            .bearer_auth("t")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], 100);

        let id = fake.add_media(&b"%PDF-1.4"[..], "application/pdf");
        fake.script_media(MediaFault::DownloadNotFound { count: 2 });
        let download = format!("http://{}/_fake/media/{id}", server.addr);
        for expected in [404, 404, 200] {
            let status = http.get(&download).bearer_auth("t").send().await.unwrap();
            assert_eq!(status.status(), expected);
        }
    }

    #[tokio::test]
    async fn an_upload_can_be_downloaded_and_deleted() {
        let (fake, server) = start().await;
        let boundary = "XyZ";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\napplication/pdf\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7 schedule\r\n\
             --{boundary}--\r\n"
        );
        let http = reqwest::Client::new();
        let upload = format!("{}/106540352242922/media", server.base_url);
        let resp = http
            .post(&upload)
            .bearer_auth("t")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (bytes, mime) = fake.media(&id).unwrap();
        assert_eq!(&bytes[..], b"%PDF-1.7 schedule");
        assert_eq!(mime, "application/pdf");

        // Without the product field Meta refuses the upload.
        let refused = http
            .post(&upload)
            .bearer_auth("t")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body.replace("whatsapp\r\n", "other\r\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);

        let url = format!("{}/{id}", server.base_url);
        let deleted = http.delete(&url).bearer_auth("t").send().await.unwrap();
        assert_eq!(deleted.status(), 200);
        assert!(fake.media(&id).is_none());
    }
}
