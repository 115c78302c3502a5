//! Signed, expiring links to claim files (issue 18): how the files a policyholder sent for a
//! claim reach the insurer's system behind the HTTP source. The insurer fetches
//! `{base}/files/claims/{sha256}?expires={unix}&sig={hex}`; the route (`http::claim_files`)
//! serves the file only while the signature holds and the time has not passed, and only
//! for a file some claim document names. No login: the signature is the authentication, so
//! the insurer's system needs no account here, and a leaked link dies on its own.
//!
//! `sig` is the first 16 bytes (hex) of HMAC-SHA256(key, `claim-file|v1|{sha256}|{expires}`);
//! the prefix keeps these tokens apart from payment tokens signed with the same secret.

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Signature bytes kept in the link (128 bits, as for payment links).
const SIG_BYTES: usize = 16;

/// Why a file link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FileLinkError {
    #[error("the file link is malformed")]
    Malformed,
    #[error("the file link's signature is wrong")]
    BadSignature,
    #[error("the file link has expired")]
    Expired,
}

/// Builds and checks claim file links.
#[derive(Clone)]
pub struct FileLinks {
    /// This server's public base URL as the insurer's system reaches it; empty: not set.
    base: String,
    key: Vec<u8>,
    ttl: chrono::Duration,
}

impl std::fmt::Debug for FileLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLinks")
            .field("base", &self.base)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl FileLinks {
    pub fn new(base: &str, key: &[u8], ttl: chrono::Duration) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_vec(),
            ttl,
        }
    }

    /// The link to the file `sha256` and when it stops working; `None` when no base URL is
    /// configured (`insurer.http.file_link_base`).
    pub fn link(&self, sha256: &str, now: DateTime<Utc>) -> Option<(String, DateTime<Utc>)> {
        if self.base.is_empty() {
            return None;
        }
        let expires_at = now + self.ttl;
        let expires = expires_at.timestamp();
        let sig = hex::encode(&self.mac(sha256, expires)[..SIG_BYTES]);
        let url = format!(
            "{}/files/claims/{sha256}?expires={expires}&sig={sig}",
            self.base
        );
        Some((url, expires_at))
    }

    /// Checks a link's `expires` and `sig` for the file `sha256`.
    ///
    /// # Errors
    /// [`FileLinkError`] when malformed, forged (or for another file), or expired.
    pub fn verify(
        &self,
        sha256: &str,
        expires: &str,
        sig: &str,
        now: DateTime<Utc>,
    ) -> Result<(), FileLinkError> {
        let expires: i64 = expires.parse().map_err(|_| FileLinkError::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| FileLinkError::Malformed)?;
        if sig.len() != SIG_BYTES {
            return Err(FileLinkError::Malformed);
        }
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(message(sha256, expires).as_bytes());
        // Constant-time comparison of the kept prefix.
        mac.verify_truncated_left(&sig)
            .map_err(|_| FileLinkError::BadSignature)?;
        if now.timestamp() >= expires {
            return Err(FileLinkError::Expired);
        }
        Ok(())
    }

    fn mac(&self, sha256: &str, expires: i64) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(message(sha256, expires).as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

fn message(sha256: &str, expires: i64) -> String {
    format!("claim-file|v1|{sha256}|{expires}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn links() -> FileLinks {
        FileLinks::new(
            "https://bot.example.in/",
            b"0123456789abcdef",
            chrono::Duration::hours(1),
        )
    }

    fn parts(url: &str) -> (String, String) {
        let q = url.split_once('?').unwrap().1;
        let mut exp = String::new();
        let mut sig = String::new();
        for kv in q.split('&') {
            match kv.split_once('=').unwrap() {
                ("expires", v) => exp = v.to_owned(),
                ("sig", v) => sig = v.to_owned(),
                _ => {}
            }
        }
        (exp, sig)
    }

    #[test]
    fn a_link_opens_its_own_file_until_it_expires_and_no_other() {
        let now = Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap();
        let sha = "ab".repeat(32);
        let (url, until) = links().link(&sha, now).unwrap();
        assert!(url.starts_with(&format!("https://bot.example.in/files/claims/{sha}?")));
        assert_eq!(until, now + chrono::Duration::hours(1));
        let (exp, sig) = parts(&url);
        assert_eq!(links().verify(&sha, &exp, &sig, now), Ok(()));
        assert_eq!(
            links().verify(&"cd".repeat(32), &exp, &sig, now),
            Err(FileLinkError::BadSignature)
        );
        let later = (now + chrono::Duration::hours(2)).timestamp().to_string();
        assert_eq!(
            links().verify(&sha, &later, &sig, now),
            Err(FileLinkError::BadSignature),
            "a longer life cannot be written into the link"
        );
        assert_eq!(
            links().verify(&sha, &exp, &sig, until),
            Err(FileLinkError::Expired)
        );
        assert_eq!(
            links().verify(&sha, "soon", &sig, now),
            Err(FileLinkError::Malformed)
        );
        let none = FileLinks::new("", b"k", chrono::Duration::hours(1));
        assert!(none.link(&sha, now).is_none());
    }
}
