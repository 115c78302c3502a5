//! Fetching inbound media (reference §7.1): resolve the media id with the Graph API, download
//! the short-lived URL with the bearer token, and stream the bytes into the [`MediaStore`]
//! while counting them against the kind's limit and hashing them; keep the file only when
//! the hash matches Meta's and the bytes are of a type the kind allows. The outcome is one
//! `media_files` row per message, `stored` or `failed` with a [`Failure`].
//!
//! This runs outside the pipeline's transactions, on a runtime of its own, a few files of each
//! kind at a time ([`MediaSettings::max_concurrent_downloads`]): the pipeline sets a media
//! message aside until its row exists (see `pipeline`), so a slow download holds back only its
//! own contact, whose later messages keep their order behind it.
//!
//! Why a runtime of its own: downloading, hashing and writing 100 photos at once kept the main
//! runtime's workers busy, and the acknowledgements of other webhooks (handled there) waited
//! for a turn: `cargo bench --bench media`, debug build, acks p50 447 ms / max 2.1 s during
//! the photos against 9.5 ms / 39 ms before them. On its own thread the media work is shared
//! out by the operating system, beside the webhook handlers instead of in front of them. The
//! `media_files` row is written on the database's writer (see `store::spawn_writer`), not
//! here: a transaction whose statements' answers wait for a busy thread holds SQLite's write
//! gate, and the webhook ingest behind it, for as long (one-row inserts seen holding it for
//! 130 ms).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::store::{MediaStore, Stored};
use crate::config::media::MediaSettings;
use crate::store::entities::media_file::{self, State};
use crate::store::{begin_write, now_ms};
use crate::whatsapp::inbound::MediaKind;

/// Why a media message could not be kept; each has its own answer to the policyholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Larger than the kind's limit (the answer names the limit).
    TooLarge,
    /// The id or URL did not answer (expired, 404, network) after every attempt.
    Unavailable,
    /// The bytes did not match Meta's SHA-256 after every attempt: discarded.
    HashMismatch,
    /// The bytes are not a type this kind of message may carry (an executable "photo").
    TypeRefused,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::TooLarge => "too_large",
            Failure::Unavailable => "unavailable",
            Failure::HashMismatch => "hash_mismatch",
            Failure::TypeRefused => "type_refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "too_large" => Failure::TooLarge,
            "unavailable" => Failure::Unavailable,
            "hash_mismatch" => Failure::HashMismatch,
            "type_refused" => Failure::TypeRefused,
            _ => return None,
        })
    }
}

/// One inbound media message to fetch.
#[derive(Debug, Clone)]
pub struct MediaRequest {
    pub inbound_message_id: i64,
    pub contact_id: i64,
    /// The Cloud API media id from the webhook.
    pub media_id: String,
    pub kind: MediaKind,
    /// The type the sender's phone declared (only trusted for plain text documents, which
    /// have no signature to detect).
    pub declared_mime: Option<String>,
}

/// How one attempt ended when it did not store the file.
#[derive(Debug)]
enum AttemptError {
    /// Worth another attempt (a new URL, a new download).
    Retry(Failure),
    /// Another attempt would end the same.
    Final(Failure),
}

/// Graph's media metadata (§7.1).
#[derive(Deserialize)]
struct Metadata {
    url: String,
    sha256: String,
    #[serde(default)]
    file_size: Option<u64>,
}

/// Fetches inbound media into the store. Cheap to share (`Arc`).
pub struct MediaFetcher {
    db: DatabaseConnection,
    http: reqwest::Client,
    /// The Graph base URL with its version.
    api_base: String,
    token: SecretString,
    pub store: MediaStore,
    settings: MediaSettings,
    /// Downloads at once per kind, so that a queue of photos does not hold back a document,
    /// nor a 100 MB document a photo.
    permits: KindPermits,
    /// Messages being fetched by this instance, so the sweep does not start a second fetch.
    in_flight: Mutex<HashSet<i64>>,
    /// Where downloads run: neither the SQLite writer's thread (where the pipeline that asks
    /// for them runs) nor the main runtime (where webhooks are acknowledged).
    runtime: MediaRuntime,
}

/// One download pool per media kind, each of `max_concurrent_downloads`.
struct KindPermits {
    image: Semaphore,
    video: Semaphore,
    audio: Semaphore,
    document: Semaphore,
    sticker: Semaphore,
}

impl KindPermits {
    fn new(per_kind: usize) -> Self {
        Self {
            image: Semaphore::new(per_kind),
            video: Semaphore::new(per_kind),
            audio: Semaphore::new(per_kind),
            document: Semaphore::new(per_kind),
            sticker: Semaphore::new(per_kind),
        }
    }

    fn for_kind(&self, kind: &MediaKind) -> &Semaphore {
        match kind {
            MediaKind::Image => &self.image,
            MediaKind::Video => &self.video,
            MediaKind::Audio { .. } => &self.audio,
            MediaKind::Document => &self.document,
            MediaKind::Sticker => &self.sticker,
        }
    }
}

/// The media work's runtime: one worker thread (and the blocking threads the local store
/// writes files on), shut down without waiting when the fetcher goes, since a runtime may
/// not be dropped inside another's tasks.
struct MediaRuntime(Option<tokio::runtime::Runtime>);

impl MediaRuntime {
    fn start() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("media")
            .enable_all()
            .build()
            .context("cannot start the media runtime")?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("media runtime until dropped")
            .handle()
    }
}

impl Drop for MediaRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for MediaFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaFetcher")
            .field("api_base", &self.api_base)
            .field("store", &self.store.kind)
            .finish_non_exhaustive()
    }
}

impl MediaFetcher {
    /// A fetcher talking to `api_base` with `token`, on a runtime of its own.
    ///
    /// # Errors
    /// When the HTTP client or the runtime cannot be built.
    pub fn new(
        db: DatabaseConnection,
        api_base: &str,
        token: SecretString,
        store: MediaStore,
        settings: MediaSettings,
    ) -> anyhow::Result<Self> {
        // No overall timeout, unlike the sending client: a 100 MB document takes a while. A
        // stalled transfer is cut by the read timeout instead.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the media HTTP client")?;
        Ok(Self {
            db,
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            token,
            store,
            permits: KindPermits::new(settings.max_concurrent_downloads as usize),
            settings,
            in_flight: Mutex::new(HashSet::new()),
            runtime: MediaRuntime::start()?,
        })
    }

    /// Starts fetching `request` in the background unless this instance already is; `done`
    /// runs when its row is written (or the attempt was abandoned on a database error, for
    /// the sweep to start again).
    pub fn start(self: &Arc<Self>, request: MediaRequest, done: impl FnOnce() + Send + 'static) {
        let id = request.inbound_message_id;
        if !self
            .in_flight
            .lock()
            .expect("media in-flight set")
            .insert(id)
        {
            return;
        }
        let me = self.clone();
        self.runtime.handle().spawn(async move {
            if let Err(e) = me.fetch_and_record(&request).await {
                tracing::warn!(message_id = id, error = %e, "media fetch not recorded; the sweep retries");
            }
            me.in_flight.lock().expect("media in-flight set").remove(&id);
            done();
        });
    }

    /// Fetches and writes the message's `media_files` row.
    ///
    /// # Errors
    /// When the row cannot be written.
    pub async fn fetch_and_record(&self, request: &MediaRequest) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let outcome = self.fetch(request).await;
        let fetched_in = started.elapsed();
        let (state, failure, stored, mime) = match &outcome {
            Ok((stored, mime)) => (State::Stored, None, Some(stored), Some(mime.clone())),
            Err(f) => (State::Failed, Some(f.as_str().to_owned()), None, None),
        };
        tracing::info!(
            message_id = request.inbound_message_id,
            kind = request.kind.as_str(),
            outcome = failure.as_deref().unwrap_or(state.as_str()),
            size = stored.map(|s| s.size),
            store = self.store.kind,
            fetched_in_ms = fetched_in.as_millis() as u64,
            "inbound media fetched"
        );
        let row = media_file::ActiveModel {
            id: NotSet,
            inbound_message_id: Set(request.inbound_message_id),
            contact_id: Set(request.contact_id),
            kind: Set(request.kind.as_str().to_owned()),
            state: Set(state),
            failure: Set(failure),
            sha256: Set(stored.map(|s| s.sha256.clone())),
            mime_type: Set(mime),
            size_bytes: Set(stored.map(|s| s.size as i64)),
            created_at: Set(now_ms()),
        };
        // On the database's writer, where the transaction's statements are answered without
        // waiting for this runtime (see the module's note).
        let (written, result) = tokio::sync::oneshot::channel();
        let db = self.db.clone();
        let message_id = request.inbound_message_id;
        crate::store::spawn_writer(&self.db, async move {
            let _ = written.send(record(&db, row, message_id).await);
        });
        result
            .await
            .context("the database writer stopped before the media row was written")?
            .context("cannot record the media file")
    }

    /// Fetches with retries; the stored file and its detected type, or why not. Call it on
    /// the media runtime (as [`start`](Self::start) does).
    pub async fn fetch(&self, request: &MediaRequest) -> Result<(Stored, String), Failure> {
        // The id goes into a URL path: only what Meta's ids look like.
        if request.media_id.is_empty()
            || request.media_id.len() > 128
            || !request
                .media_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Failure::Unavailable);
        }
        let limit = self.settings.max_bytes.for_kind(&request.kind);
        let mut last = Failure::Unavailable;
        for attempt in 0..self.settings.download_attempts {
            if attempt > 0 {
                let pause = self
                    .settings
                    .retry_base_ms
                    .saturating_mul(1 << (attempt - 1).min(10));
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            let _permit = self
                .permits
                .for_kind(&request.kind)
                .acquire()
                .await
                .expect("media permits never close");
            match self.attempt(request, limit).await {
                Ok(done) => return Ok(done),
                Err(AttemptError::Final(f)) => return Err(f),
                Err(AttemptError::Retry(f)) => {
                    tracing::debug!(
                        message_id = request.inbound_message_id,
                        attempt,
                        failure = f.as_str(),
                        "media attempt failed"
                    );
                    last = f;
                }
            }
        }
        Err(last)
    }

    async fn attempt(
        &self,
        request: &MediaRequest,
        limit: u64,
    ) -> Result<(Stored, String), AttemptError> {
        use AttemptError::{Final, Retry};
        let token = self.token.expose_secret();
        let resp = self
            .http
            .get(format!("{}/{}", self.api_base, request.media_id))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|_| Retry(Failure::Unavailable))?;
        let status = resp.status();
        if !status.is_success() {
            // 404: the id expired or is not there yet; 5xx and 429: Meta's side. Anything
            // else (401, 400) will not change by asking again.
            return Err(
                if status.as_u16() == 404 || status.as_u16() == 429 || status.is_server_error() {
                    Retry(Failure::Unavailable)
                } else {
                    Final(Failure::Unavailable)
                },
            );
        }
        let meta: Metadata = resp.json().await.map_err(|_| Retry(Failure::Unavailable))?;
        if meta.file_size.is_some_and(|s| s > limit) {
            return Err(Final(Failure::TooLarge));
        }
        let mut resp = self
            .http
            .get(&meta.url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|_| Retry(Failure::Unavailable))?;
        if !resp.status().is_success() {
            // The URL lives minutes: the next attempt asks for a new one.
            return Err(Retry(Failure::Unavailable));
        }
        let mut upload = self.store.upload();
        let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
        let mut mime = None;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(_) => {
                    upload.abort().await;
                    return Err(Retry(Failure::Unavailable));
                }
            };
            if upload.size() + chunk.len() as u64 > limit {
                upload.abort().await;
                return Err(Final(Failure::TooLarge));
            }
            if mime.is_none() && head.len() < SNIFF_BYTES {
                let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                if head.len() == SNIFF_BYTES {
                    // Refused before the rest of an executable is downloaded.
                    match detect_type(&request.kind, &head, request.declared_mime.as_deref()) {
                        Some(m) => mime = Some(m),
                        None => {
                            upload.abort().await;
                            return Err(Final(Failure::TypeRefused));
                        }
                    }
                }
            }
            if let Err(e) = upload.write(chunk).await {
                upload.abort().await;
                tracing::warn!(error = %e, "media store write failed");
                return Err(Retry(Failure::Unavailable));
            }
        }
        let mime = match mime {
            Some(m) => m,
            None => match detect_type(&request.kind, &head, request.declared_mime.as_deref()) {
                Some(m) => m,
                None => {
                    upload.abort().await;
                    return Err(Final(Failure::TypeRefused));
                }
            },
        };
        match upload.finish(Some(&meta.sha256.to_ascii_lowercase())).await {
            Ok(Some(stored)) => Ok((stored, mime)),
            Ok(None) => Err(Retry(Failure::HashMismatch)),
            Err(e) => {
                tracing::warn!(error = %e, "media store write failed");
                Err(Retry(Failure::Unavailable))
            }
        }
    }
}

/// Inserts a message's `media_files` row (kept as it is when one exists).
async fn record(
    db: &DatabaseConnection,
    row: media_file::ActiveModel,
    message_id: i64,
) -> Result<(), sea_orm::DbErr> {
    let txn = begin_write(db).await?;
    media_file::Entity::insert(row)
        .on_conflict(
            OnConflict::column(media_file::Column::InboundMessageId)
                .do_nothing()
                .to_owned(),
        )
        .try_insert()
        .exec(&*txn)
        .await?;
    let time = txn.commit_timed().await?;
    tracing::debug!(
        message_id,
        gate_wait_us = time.waited_us(),
        held_us = time.held_us(),
        "media row recorded"
    );
    Ok(())
}

/// Bytes looked at to detect a file's type.
const SNIFF_BYTES: usize = 8192;

/// The type of a file from its first bytes, when `kind` may carry it: images are JPEG or PNG,
/// stickers WebP, audio and video what their signatures say; a document is anything but an
/// executable or script, and a plain text document (no signature) only when declared as
/// text and free of NUL bytes. `None`: refused.
pub fn detect_type(kind: &MediaKind, head: &[u8], declared: Option<&str>) -> Option<String> {
    let sniffed = infer::get(head);
    if let Some(t) = &sniffed
        && (t.matcher_type() == infer::MatcherType::App || t.mime_type() == "text/x-shellscript")
    {
        return None;
    }
    let mime = sniffed.map(|t| t.mime_type().to_owned());
    let family = |prefix: &str| mime.clone().filter(|m| m.starts_with(prefix));
    match kind {
        MediaKind::Image => mime.filter(|m| m == "image/jpeg" || m == "image/png"),
        MediaKind::Sticker => mime.filter(|m| m == "image/webp"),
        MediaKind::Video => family("video/"),
        MediaKind::Audio { .. } => {
            family("audio/").or_else(|| mime.clone().filter(|m| m == "video/mp4"))
        }
        MediaKind::Document => match mime {
            Some(m) => Some(m),
            None => {
                let declared = declared?.split(';').next()?.trim().to_ascii_lowercase();
                (matches!(declared.as_str(), "text/plain" | "text/csv") && !head.contains(&0))
                    .then_some(declared)
            }
        },
    }
}

/// The `media_files` rows of these inbound messages (stored or failed).
///
/// # Errors
/// Database errors.
pub async fn outcomes<C: ConnectionTrait>(
    db: &C,
    inbound_message_ids: &[i64],
) -> Result<Vec<media_file::Model>, sea_orm::DbErr> {
    if inbound_message_ids.is_empty() {
        return Ok(Vec::new());
    }
    media_file::Entity::find()
        .filter(media_file::Column::InboundMessageId.is_in(inbound_message_ids.iter().copied()))
        .all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01";
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    const EXE: &[u8] = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00";

    #[test]
    fn the_type_comes_from_the_bytes_not_the_name() {
        let image = MediaKind::Image;
        let doc = MediaKind::Document;
        assert_eq!(
            detect_type(&image, JPEG, Some("image/jpeg")).as_deref(),
            Some("image/jpeg")
        );
        // A "jpg" that is an executable, or a PDF sent as a photo.
        assert_eq!(detect_type(&image, EXE, Some("image/jpeg")), None);
        assert_eq!(detect_type(&image, PDF, Some("image/jpeg")), None);
        assert_eq!(
            detect_type(&doc, PDF, Some("application/pdf")).as_deref(),
            Some("application/pdf")
        );
        assert_eq!(detect_type(&doc, ELF, Some("application/pdf")), None);
        assert_eq!(detect_type(&doc, EXE, Some("application/pdf")), None);
        assert_eq!(
            detect_type(&doc, b"#!/bin/sh\nrm -rf /\n", Some("text/plain")),
            None
        );
        // Text has no signature: kept only when declared as text.
        assert_eq!(
            detect_type(&doc, b"claim notes", Some("text/plain; charset=utf-8")).as_deref(),
            Some("text/plain")
        );
        assert_eq!(
            detect_type(&doc, b"claim notes", Some("application/pdf")),
            None
        );
        assert_eq!(detect_type(&doc, b"bin\0ary", Some("text/plain")), None);
    }

    #[test]
    fn failures_round_trip_by_name() {
        for f in [
            Failure::TooLarge,
            Failure::Unavailable,
            Failure::HashMismatch,
            Failure::TypeRefused,
        ] {
            assert_eq!(Failure::parse(f.as_str()), Some(f));
        }
        assert_eq!(Failure::parse("other"), None);
    }
}
