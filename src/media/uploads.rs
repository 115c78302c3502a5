//! Outbound files (issue 18): the files insurebot sends (a policy schedule, an agent's
//! attachment), kept in the media store by hash with an `outbound_media` row naming the
//! contact (what erasure and retention find them by), and the media id of each file's upload
//! to the Cloud API, cached in `media_uploads` per file and business number.
//!
//! Meta keeps an upload for 30 days; the cached id is used for 29, so a message never names an
//! upload that expires on its way. The cache is a table, not memory: it survives restarts and
//! is shared by every instance. Two instances racing on one file both upload it and the later
//! id wins; both ids work, so the race costs one upload and nothing else.

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
};

use super::MediaStore;
use super::store::Stored;
use crate::store::entities::{media_upload, outbound_media};
use crate::whatsapp::client::{CloudApiClient, SendError};
use crate::whatsapp::outbound::OutboundMediaKind;

/// How long a media id is used after its upload: a day less than Meta keeps the file.
pub const CACHE_FOR_MS: i64 = 29 * 24 * 60 * 60 * 1000;

/// Why a stored file could not be turned into a media id.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// The file is not in the store any more (erased since the message was queued).
    #[error("the file is no longer in the media store")]
    Gone,
    /// The store could not be read (unreachable, refused).
    #[error("media store: {0:#}")]
    Store(anyhow::Error),
    #[error("upload refused: {0}")]
    Api(#[from] SendError),
}

/// Uploads stored files to the Cloud API once per 29 days. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Uploader {
    pub db: DatabaseConnection,
    pub store: MediaStore,
}

impl Uploader {
    /// The media id of the stored file `sha256`: the cached one while it is fresh, else a new
    /// upload (streamed from the store) whose id is cached.
    ///
    /// # Errors
    /// See [`UploadError`]; `Api` errors classify like sends ([`SendError::class`]).
    #[tracing::instrument(name = "media.upload", skip_all)]
    pub async fn media_id(
        &self,
        client: &CloudApiClient,
        sha256: &str,
        mime_type: &str,
        filename: &str,
        now: i64,
    ) -> Result<String, UploadError> {
        let number = client.phone_number_id();
        let cached = media_upload::Entity::find()
            .filter(media_upload::Column::Sha256.eq(sha256))
            .filter(media_upload::Column::PhoneNumberId.eq(number))
            .filter(media_upload::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?;
        if let Some(row) = cached {
            return Ok(row.media_id);
        }
        let (size, stream) = self.store.get(sha256).await.map_err(|e| {
            let gone = e.chain().any(|c| {
                c.downcast_ref::<object_store::Error>()
                    .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. }))
            });
            if gone {
                UploadError::Gone
            } else {
                UploadError::Store(e)
            }
        })?;
        let stream = stream.map(|r| r.map_err(std::io::Error::other)).boxed();
        let media_id = client
            .upload_media(stream, size, mime_type, filename)
            .await?;
        remember(&self.db, sha256, number, &media_id, now + CACHE_FOR_MS).await?;
        tracing::debug!(size, "file uploaded; its media id is cached");
        Ok(media_id)
    }
}

/// Caches `media_id` for the file and number until `expires_at`.
async fn remember<C: ConnectionTrait>(
    db: &C,
    sha256: &str,
    number: &str,
    media_id: &str,
    expires_at: i64,
) -> Result<(), sea_orm::DbErr> {
    let row = media_upload::ActiveModel {
        id: NotSet,
        sha256: Set(sha256.to_owned()),
        phone_number_id: Set(number.to_owned()),
        media_id: Set(media_id.to_owned()),
        expires_at: Set(expires_at),
    };
    media_upload::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                media_upload::Column::Sha256,
                media_upload::Column::PhoneNumberId,
            ])
            .update_columns([
                media_upload::Column::MediaId,
                media_upload::Column::ExpiresAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Writes `bytes` to the store under their hash (a file kept once however often it is sent).
///
/// # Errors
/// When the store refuses the write.
pub async fn store_bytes(store: &MediaStore, bytes: Bytes) -> anyhow::Result<Stored> {
    let mut upload = store.upload();
    // The store buffers up to a part; chunks keep a big file from being one huge write.
    for chunk in bytes.chunks(1024 * 1024) {
        if let Err(e) = upload.write(bytes.slice_ref(chunk)).await {
            upload.abort().await;
            return Err(e);
        }
    }
    upload
        .finish(None)
        .await?
        .context("media store: a file without an expected hash was not kept")
}

/// A file in the store with what it is, ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub kind: OutboundMediaKind,
    pub stored: Stored,
    pub mime_type: String,
}

/// What is recorded of one file sent to a contact.
#[derive(Debug, Clone)]
pub struct SentFile<'a> {
    pub contact_id: i64,
    /// `policy_document` or `agent`.
    pub source: &'a str,
    pub kind: OutboundMediaKind,
    pub stored: &'a Stored,
    pub mime_type: &'a str,
    pub filename: Option<&'a str>,
}

/// Records that `file` goes to its contact (in the caller's transaction, with the message).
///
/// # Errors
/// Database errors.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    file: &SentFile<'_>,
    now: i64,
) -> Result<(), sea_orm::DbErr> {
    outbound_media::Entity::insert(outbound_media::ActiveModel {
        id: NotSet,
        contact_id: Set(file.contact_id),
        source: Set(file.source.to_owned()),
        kind: Set(file.kind.as_str().to_owned()),
        sha256: Set(file.stored.sha256.clone()),
        mime_type: Set(file.mime_type.to_owned()),
        filename: Set(file.filename.map(str::to_owned)),
        size_bytes: Set(i64::try_from(file.stored.size).unwrap_or(i64::MAX)),
        created_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}
