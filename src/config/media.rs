//! `[media]` settings: where inbound files are kept (a local directory, or S3-compatible
//! object storage when `s3_bucket` is set) and how they are fetched from the Cloud API.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use crate::config::env::{EnvSection, Var};
use crate::config::{ConfigError, DatabaseUrl, invalid};
use crate::whatsapp::inbound::MediaKind;

const MB: u64 = 1024 * 1024;

/// Meta's own size limits (reference §7.2); the configured limits may only be lower.
pub const META_LIMITS: KindLimits = KindLimits {
    image: 5 * MB,
    audio: 16 * MB,
    video: 16 * MB,
    document: 100 * MB,
    sticker: 500 * 1024,
};

/// A byte limit per media kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KindLimits {
    pub image: u64,
    pub audio: u64,
    pub video: u64,
    pub document: u64,
    pub sticker: u64,
}

impl Default for KindLimits {
    fn default() -> Self {
        META_LIMITS
    }
}

impl KindLimits {
    /// The limit for `kind`, in bytes.
    pub fn for_kind(&self, kind: &MediaKind) -> u64 {
        match kind {
            MediaKind::Image => self.image,
            MediaKind::Audio { .. } => self.audio,
            MediaKind::Video => self.video,
            MediaKind::Document => self.document,
            MediaKind::Sticker => self.sticker,
        }
    }

    fn entries(&self) -> [(&'static str, u64, u64); 5] {
        [
            ("IMAGE", self.image, META_LIMITS.image),
            ("AUDIO", self.audio, META_LIMITS.audio),
            ("VIDEO", self.video, META_LIMITS.video),
            ("DOCUMENT", self.document, META_LIMITS.document),
            ("STICKER", self.sticker, META_LIMITS.sticker),
        ]
    }
}

/// A byte count as people read it: `5 MB`, `500 KB`, `512 bytes`.
pub fn describe_bytes(bytes: u64) -> String {
    if bytes >= MB && bytes.is_multiple_of(MB) {
        format!("{} MB", bytes / MB)
    } else if bytes >= MB {
        format!("{:.1} MB", bytes as f64 / MB as f64)
    } else if bytes >= 1024 {
        format!("{} KB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// The types a kind of media message may carry, as the answer to a refused file names them
/// (what `fetch::detect_type` accepts).
pub fn accepted_types(kind: &MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "JPEG or PNG",
        MediaKind::Sticker => "WebP",
        MediaKind::Audio { .. } => "AAC, AMR, MP3, MP4 or OGG audio",
        MediaKind::Video => "MP4 or 3GP video",
        MediaKind::Document => "PDF, Office, image or plain text files",
    }
}

/// `[media]`: the media store and downloads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSettings {
    /// Directory of the local store; unset, `media/` beside the SQLite database file (or in
    /// the working directory on PostgreSQL). Ignored when `s3_bucket` is set.
    pub dir: Option<PathBuf>,
    /// Bucket of S3-compatible object storage; set it to share files between instances.
    pub s3_bucket: Option<String>,
    /// Endpoint of an S3-compatible service (MinIO, Ceph, …); unset, AWS itself.
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<SecretString>,
    /// Allow an `http://` endpoint (a service on the same host or network only).
    pub s3_allow_http: bool,
    /// Largest file accepted per kind, in bytes (at most Meta's own limits).
    pub max_bytes: KindLimits,
    /// Download attempts per file (metadata and download again each time: the URL expires).
    pub download_attempts: u32,
    /// Pause before the second attempt in milliseconds; doubles for each further one.
    pub retry_base_ms: u64,
    /// Files of one kind downloaded at once by this instance; the others of that kind wait
    /// their turn, so memory stays bounded however many arrive together, and a queue of
    /// photos does not hold back a document (nor a big document the photos).
    pub max_concurrent_downloads: u32,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            dir: None,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: false,
            max_bytes: KindLimits::default(),
            download_attempts: 3,
            retry_base_ms: 500,
            max_concurrent_downloads: 8,
        }
    }
}

impl MediaSettings {
    /// The local store's directory: `dir`, else `media/` beside the SQLite file.
    pub fn local_dir(&self, database_url: &DatabaseUrl) -> PathBuf {
        if let Some(dir) = &self.dir {
            return dir.clone();
        }
        let url = database_url.expose();
        let file = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .map(|rest| rest.split('?').next().unwrap_or(rest))
            .filter(|path| !path.is_empty() && !path.starts_with(':'));
        match file.and_then(|f| Path::new(f).parent()) {
            Some(parent) => parent.join("media"),
            None => PathBuf::from("media"),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (kind, value, meta) in self.max_bytes.entries() {
            if value == 0 || value > meta {
                return Err(invalid(
                    &format!("INSUREBOT_MEDIA_MAX_BYTES_{kind}"),
                    format!(
                        "must be between 1 and {meta} (the Cloud API's own limit), not {value}"
                    ),
                ));
            }
        }
        if self.download_attempts == 0 || self.download_attempts > 10 {
            return Err(invalid(
                "INSUREBOT_MEDIA_DOWNLOAD_ATTEMPTS",
                "must be between 1 and 10",
            ));
        }
        if self.max_concurrent_downloads == 0 {
            return Err(invalid(
                "INSUREBOT_MEDIA_MAX_CONCURRENT_DOWNLOADS",
                "must be at least 1",
            ));
        }
        if self.s3_bucket.is_some()
            && self.s3_access_key_id.is_some() != self.s3_secret_access_key.is_some()
        {
            return Err(invalid(
                "INSUREBOT_MEDIA_S3_ACCESS_KEY_ID",
                "set it together with INSUREBOT_MEDIA_S3_SECRET_ACCESS_KEY (or neither, to use the environment's AWS credentials)",
            ));
        }
        if let Some(endpoint) = &self.s3_endpoint {
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                return Err(invalid(
                    "INSUREBOT_MEDIA_S3_ENDPOINT",
                    "must be an http(s) URL",
                ));
            }
            if endpoint.starts_with("http://") && !self.s3_allow_http {
                return Err(invalid(
                    "INSUREBOT_MEDIA_S3_ENDPOINT",
                    "is http://; set INSUREBOT_MEDIA_S3_ALLOW_HTTP=true to allow an unencrypted endpoint",
                ));
            }
        }
        Ok(())
    }
}

impl EnvSection for MediaSettings {
    fn set_env(&mut self, name: &str, var: &Var<'_>) -> Result<bool, ConfigError> {
        match name {
            "DIR" => self.dir = Some(var.path()),
            "S3_BUCKET" => self.s3_bucket = Some(var.text()).filter(|v| !v.is_empty()),
            "S3_ENDPOINT" => self.s3_endpoint = Some(var.text()).filter(|v| !v.is_empty()),
            "S3_REGION" => self.s3_region = var.text(),
            "S3_ACCESS_KEY_ID" => self.s3_access_key_id = Some(var.text()),
            "S3_SECRET_ACCESS_KEY" => self.s3_secret_access_key = var.secret(),
            "S3_ALLOW_HTTP" => self.s3_allow_http = var.parse()?,
            "MAX_BYTES_IMAGE" => self.max_bytes.image = var.parse()?,
            "MAX_BYTES_AUDIO" => self.max_bytes.audio = var.parse()?,
            "MAX_BYTES_VIDEO" => self.max_bytes.video = var.parse()?,
            "MAX_BYTES_DOCUMENT" => self.max_bytes.document = var.parse()?,
            "MAX_BYTES_STICKER" => self.max_bytes.sticker = var.parse()?,
            "DOWNLOAD_ATTEMPTS" => self.download_attempts = var.parse()?,
            "RETRY_BASE_MS" => self.retry_base_ms = var.parse()?,
            "MAX_CONCURRENT_DOWNLOADS" => self.max_concurrent_downloads = var.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_directory_is_beside_the_sqlite_file() {
        let s = MediaSettings::default();
        let db = |u: &str| DatabaseUrl::new(u);
        assert_eq!(
            s.local_dir(&db("sqlite:///var/lib/insurebot/bot.db?mode=rwc")),
            PathBuf::from("/var/lib/insurebot/media")
        );
        assert_eq!(
            s.local_dir(&db("sqlite://insurebot.db?mode=rwc")),
            PathBuf::from("media")
        );
        assert_eq!(s.local_dir(&db("sqlite::memory:")), PathBuf::from("media"));
        assert_eq!(
            s.local_dir(&db("postgres://u@h/db")),
            PathBuf::from("media")
        );
    }

    #[test]
    fn limits_above_meta_and_half_s3_credentials_are_refused_by_name() {
        let mut s = MediaSettings::default();
        s.max_bytes.image = META_LIMITS.image + 1;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.starts_with("INSUREBOT_MEDIA_MAX_BYTES_IMAGE:"), "{e}");

        let mut s = MediaSettings {
            s3_bucket: Some("b".into()),
            s3_access_key_id: Some("k".into()),
            ..MediaSettings::default()
        };
        assert!(s.validate().is_err());
        s.s3_secret_access_key = Some(SecretString::from("s"));
        assert!(s.validate().is_ok());
        s.s3_endpoint = Some("http://127.0.0.1:9000".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("S3_ALLOW_HTTP"), "{e}");
    }
}
