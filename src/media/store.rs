//! The media store: files kept by content hash in a local directory or S3-compatible object
//! storage, both through the `object_store` crate so one code path serves either.
//!
//! A file is written under a temporary key while its bytes stream in and are hashed, then
//! renamed to `sha256/<2 hex>/<64 hex>`: the final key is only known at the end, a file sent
//! twice is kept once, and a file whose hash turns out wrong never appears under a hash key.

use std::path::Path as FsPath;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::DatabaseUrl;
use crate::config::media::MediaSettings;

/// Buffer before a write reaches the store. S3 needs parts of at least 5 MiB (but the last);
/// a local file is written as the bytes come.
const S3_PART_BYTES: usize = 5 * 1024 * 1024;
const LOCAL_PART_BYTES: usize = 256 * 1024;

/// Where media files live. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MediaStore {
    inner: Arc<dyn ObjectStore>,
    part_bytes: usize,
    /// `local` or `s3`, for logs and metrics.
    pub kind: &'static str,
}

/// A file being written; [`Upload::finish`] or [`Upload::abort`] ends it.
pub struct Upload {
    store: MediaStore,
    writer: BufWriter,
    temp: Path,
    hasher: Sha256,
    size: u64,
}

/// A file that was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Lower-case hex SHA-256 of the bytes: the file's key.
    pub sha256: String,
    pub size: u64,
}

/// A valid lower-case hex SHA-256, the only thing ever turned into a key.
fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn key_for(sha256: &str) -> anyhow::Result<Path> {
    anyhow::ensure!(is_sha256_hex(sha256), "not a SHA-256 key");
    Ok(Path::from(format!("sha256/{}/{sha256}", &sha256[..2])))
}

impl MediaStore {
    /// The store the settings name: S3 when `s3_bucket` is set, else the local directory
    /// (created if missing).
    ///
    /// # Errors
    /// When the directory cannot be created or the S3 settings are incomplete.
    pub fn from_settings(
        settings: &MediaSettings,
        database_url: &DatabaseUrl,
    ) -> anyhow::Result<Self> {
        match &settings.s3_bucket {
            Some(bucket) => Self::s3(settings, bucket),
            None => Self::local(&settings.local_dir(database_url)),
        }
    }

    /// A store in `dir` (created if missing).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn local(dir: &FsPath) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the media directory {}", dir.display()))?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("cannot use the media directory {}", dir.display()))?
            // A key's directories are removed with its last file, so erasure leaves no trace.
            .with_automatic_cleanup(true);
        Ok(Self {
            inner: Arc::new(fs),
            part_bytes: LOCAL_PART_BYTES,
            kind: "local",
        })
    }

    fn s3(settings: &MediaSettings, bucket: &str) -> anyhow::Result<Self> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(&settings.s3_region)
            .with_allow_http(settings.s3_allow_http);
        if let Some(endpoint) = &settings.s3_endpoint {
            // S3-compatible services are addressed by path (`endpoint/bucket/key`).
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let (Some(id), Some(secret)) =
            (&settings.s3_access_key_id, &settings.s3_secret_access_key)
        {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret.expose_secret());
        }
        let s3 = builder
            .build()
            .context("media.s3_*: cannot set up the S3 store")?;
        Ok(Self {
            inner: Arc::new(s3),
            part_bytes: S3_PART_BYTES,
            kind: "s3",
        })
    }

    /// Starts writing a file under a temporary key.
    pub fn upload(&self) -> Upload {
        let temp = Path::from(format!("incoming/{}", uuid::Uuid::new_v4().simple()));
        Upload {
            store: self.clone(),
            writer: BufWriter::with_capacity(self.inner.clone(), temp.clone(), self.part_bytes),
            temp,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Whether a file with this hash is stored.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn contains(&self, sha256: &str) -> anyhow::Result<bool> {
        match self.inner.head(&key_for(sha256)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e).context("media store: cannot look up a file"),
        }
    }

    /// The size of the file with this hash, `None` when it is not stored (e.g. erased).
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn size(&self, sha256: &str) -> anyhow::Result<Option<u64>> {
        match self.inner.head(&key_for(sha256)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).context("media store: cannot look up a file"),
        }
    }

    /// The file's bytes as a stream, and its size.
    ///
    /// # Errors
    /// When it is not stored or the store cannot be reached.
    pub async fn get(
        &self,
        sha256: &str,
    ) -> anyhow::Result<(u64, BoxStream<'static, anyhow::Result<Bytes>>)> {
        let got = self
            .inner
            .get(&key_for(sha256)?)
            .await
            .context("media store: cannot read a file")?;
        let size = got.meta.size;
        Ok((
            size,
            got.into_stream()
                .map(|r| r.map_err(anyhow::Error::from))
                .boxed(),
        ))
    }

    /// Deletes a file; one already gone is not an error.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn delete(&self, sha256: &str) -> anyhow::Result<()> {
        match self.inner.delete(&key_for(sha256)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).context("media store: cannot delete a file"),
        }
    }
}

impl Upload {
    /// Appends bytes; memory use is bounded by the store's part size, not the file size.
    ///
    /// # Errors
    /// When the store refuses the write.
    pub async fn write(&mut self, chunk: Bytes) -> anyhow::Result<()> {
        self.hasher.update(&chunk);
        self.size += chunk.len() as u64;
        self.writer
            .put(chunk)
            .await
            .context("media store: cannot write a file")
    }

    /// The bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hash of the bytes written so far, without finishing.
    pub fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// Completes the file and moves it to its hash key (dropping it when that file is
    /// already stored). Pass `expected` to keep it only when the hash matches: otherwise the
    /// temporary file is deleted and `Ok(None)` returned.
    ///
    /// # Errors
    /// When the store refuses the write or the rename.
    pub async fn finish(mut self, expected: Option<&str>) -> anyhow::Result<Option<Stored>> {
        let sha256 = self.sha256();
        if expected.is_some_and(|e| !e.eq_ignore_ascii_case(&sha256)) {
            self.abort().await;
            return Ok(None);
        }
        self.writer
            .shutdown()
            .await
            .context("media store: cannot complete a file")?;
        let store = &self.store.inner;
        let key = key_for(&sha256)?;
        // Kept once per content: a second copy is dropped, not renamed over the first.
        if self.store.contains(&sha256).await? {
            let _ = store.delete(&self.temp).await;
        } else {
            store
                .rename(&self.temp, &key)
                .await
                .context("media store: cannot move a file to its key")?;
        }
        Ok(Some(Stored {
            sha256,
            size: self.size,
        }))
    }

    /// Abandons the file; what was written is deleted (best effort).
    pub async fn abort(mut self) {
        let _ = self.writer.abort().await;
        let _ = self.store.inner.delete(&self.temp).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(store: &MediaStore, sha: &str) -> Vec<u8> {
        let (_, mut s) = store.get(sha).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_file_is_kept_once_by_hash_and_a_mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::local(dir.path()).unwrap();
        let body = b"the same photo twice";
        let expected = hex::encode(Sha256::digest(body));
        for _ in 0..2 {
            let mut up = store.upload();
            up.write(Bytes::from_static(&body[..8])).await.unwrap();
            up.write(Bytes::from_static(&body[8..])).await.unwrap();
            let stored = up.finish(Some(&expected)).await.unwrap().unwrap();
            assert_eq!(stored.sha256, expected);
            assert_eq!(stored.size, body.len() as u64);
        }
        assert_eq!(collect(&store, &expected).await, body);
        assert_eq!(
            store.size(&expected).await.unwrap(),
            Some(body.len() as u64)
        );
        let files: Vec<_> = walk(dir.path());
        assert_eq!(files.len(), 1, "{files:?}");

        let mut up = store.upload();
        up.write(Bytes::from_static(b"tampered")).await.unwrap();
        assert_eq!(up.finish(Some(&expected)).await.unwrap(), None);
        assert_eq!(walk(dir.path()).len(), 1);

        store.delete(&expected).await.unwrap();
        assert!(!store.contains(&expected).await.unwrap());
        assert_eq!(store.size(&expected).await.unwrap(), None);
        assert!(walk(dir.path()).is_empty());
        store.delete(&expected).await.unwrap();
    }

    #[test]
    fn only_hex_hashes_become_keys() {
        assert!(key_for("../../etc/passwd").is_err());
        assert!(key_for(&"A".repeat(64)).is_err());
        assert!(key_for(&"a".repeat(64)).is_ok());
    }

    fn walk(dir: &FsPath) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
