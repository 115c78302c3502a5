//! Payment links: the configured URL pattern filled with the policy number and an HMAC-signed,
//! expiring token, so that the insurer's payment page can trust the amount and due date in
//! the link without calling back, and a forwarded or guessed link stops working.
//!
//! Token: `{expires_unix}.{due_yyyymmdd}.{amount_paise}.{sig}` where `sig` is the first 16
//! bytes (hex) of HMAC-SHA256(secret, `v1|{policy_number}|{due}|{amount}|{expires}`).

use chrono::{DateTime, NaiveDate, Utc};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Signature length kept in the link: 128 bits is plenty for an expiring token and keeps the
/// URL short enough to read in a chat.
const SIG_BYTES: usize = 16;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayLinkError {
    #[error("the payment token is malformed")]
    Malformed,
    #[error("the payment token's signature is wrong")]
    BadSignature,
    #[error("the payment token has expired")]
    Expired,
}

/// What a valid token vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayToken {
    pub due_date: NaiveDate,
    pub amount_paise: i64,
    pub expires_at: DateTime<Utc>,
}

/// Builds and checks payment links.
#[derive(Clone)]
pub struct PayLinks {
    pattern: String,
    key: Vec<u8>,
    ttl: chrono::Duration,
}

impl std::fmt::Debug for PayLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayLinks")
            .field("pattern", &self.pattern)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl PayLinks {
    /// `pattern` holds `{policy_number}` and `{token}` (and optionally `{amount}`, `{due_date}`).
    pub fn new(pattern: impl Into<String>, key: &[u8], ttl: chrono::Duration) -> Self {
        Self {
            pattern: pattern.into(),
            key: key.to_vec(),
            ttl,
        }
    }

    /// The link for paying one instalment, valid until `now + ttl`.
    pub fn link(
        &self,
        policy_number: &str,
        due_date: NaiveDate,
        amount_paise: i64,
        now: DateTime<Utc>,
    ) -> String {
        let expires = (now + self.ttl).timestamp();
        let due = due_date.format("%Y%m%d").to_string();
        let sig = hex::encode(&self.mac(policy_number, &due, amount_paise, expires)[..SIG_BYTES]);
        let token = format!("{expires}.{due}.{amount_paise}.{sig}");
        self.pattern
            .replace("{policy_number}", &encode_component(policy_number))
            .replace("{token}", &token)
            .replace(
                "{amount}",
                &crate::money::Paise::new(amount_paise).decimal(),
            )
            .replace("{due_date}", &due_date.format("%Y-%m-%d").to_string())
    }

    /// Checks a token taken from a link for `policy_number` (what the payment page does).
    ///
    /// # Errors
    /// [`PayLinkError`] when the token is malformed, forged, for another policy, or expired.
    pub fn verify(
        &self,
        policy_number: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<PayToken, PayLinkError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [expires, due, amount, sig] = parts[..] else {
            return Err(PayLinkError::Malformed);
        };
        let expires: i64 = expires.parse().map_err(|_| PayLinkError::Malformed)?;
        let amount_paise: i64 = amount.parse().map_err(|_| PayLinkError::Malformed)?;
        let due_date =
            NaiveDate::parse_from_str(due, "%Y%m%d").map_err(|_| PayLinkError::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| PayLinkError::Malformed)?;
        if sig.len() != SIG_BYTES {
            return Err(PayLinkError::Malformed);
        }
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(message(policy_number, due, amount_paise, expires).as_bytes());
        // Constant-time comparison of the kept prefix.
        mac.verify_truncated_left(&sig)
            .map_err(|_| PayLinkError::BadSignature)?;
        let expires_at = DateTime::from_timestamp(expires, 0).ok_or(PayLinkError::Malformed)?;
        if now >= expires_at {
            return Err(PayLinkError::Expired);
        }
        Ok(PayToken {
            due_date,
            amount_paise,
            expires_at,
        })
    }

    fn mac(&self, policy_number: &str, due: &str, amount_paise: i64, expires: i64) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(message(policy_number, due, amount_paise, expires).as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

fn message(policy_number: &str, due: &str, amount_paise: i64, expires: i64) -> String {
    format!("v1|{policy_number}|{due}|{amount_paise}|{expires}")
}

/// Percent-encodes everything but unreserved characters (policy numbers may contain `/`).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> PayLinks {
        PayLinks::new(
            "https://pay.example.in/p/{policy_number}?t={token}",
            b"0123456789abcdef-secret",
            chrono::Duration::hours(24),
        )
    }

    fn due() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
    }

    #[test]
    fn a_link_carries_a_token_that_verifies_until_it_expires() {
        let now = Utc::now();
        let url = links().link("H-2024/001", due(), 1_250_000, now);
        assert!(
            url.starts_with("https://pay.example.in/p/H-2024%2F001?t="),
            "{url}"
        );
        let token = url.split("?t=").nth(1).unwrap();
        let ok = links().verify("H-2024/001", token, now).unwrap();
        assert_eq!(ok.amount_paise, 1_250_000);
        assert_eq!(ok.due_date, due());
        assert_eq!(
            links().verify("H-2024/001", token, now + chrono::Duration::hours(25)),
            Err(PayLinkError::Expired)
        );
    }

    #[test]
    fn a_token_for_another_policy_or_amount_is_refused() {
        let now = Utc::now();
        let url = links().link("H-2024/001", due(), 1_250_000, now);
        let token = url.split("?t=").nth(1).unwrap();
        assert_eq!(
            links().verify("M-2024/002", token, now),
            Err(PayLinkError::BadSignature)
        );
        let tampered = token.replacen(".1250000.", ".100.", 1);
        assert_eq!(
            links().verify("H-2024/001", &tampered, now),
            Err(PayLinkError::BadSignature)
        );
        assert_eq!(
            links().verify("H-2024/001", "garbage", now),
            Err(PayLinkError::Malformed)
        );
        let other_key = PayLinks::new(
            "x{token}",
            b"another-key-entirely",
            chrono::Duration::hours(1),
        );
        assert_eq!(
            other_key.verify("H-2024/001", token, now),
            Err(PayLinkError::BadSignature)
        );
    }
}
