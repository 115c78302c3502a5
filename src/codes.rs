//! One-time codes' cryptography, apart from the OTP feature so that the composer (which opens
//! a sealed code when it renders the template) and [`crate::otp`] (which draws, hashes and
//! seals it) both depend on it rather than on each other: a code drawn from the OS CSPRNG,
//! its keyed hash (HMAC-SHA256, compared in constant time) and its seal for the outbox
//! (XChaCha20-Poly1305 bound to the OTP's id), under two keys derived from `otp.secret`.

use chacha20poly1305::aead::{Aead, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{KeyInit, Mac};
use rand::{Rng, TryRngCore};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// A code sealed for the outbox: hex of the 24-byte nonce and the ciphertext.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedCode(String);

impl std::fmt::Debug for SealedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedCode(***)")
    }
}

/// The two keys derived from `otp.secret`: one for the stored hashes, one for the seal.
#[derive(Clone)]
pub struct CodeKey {
    hash_key: [u8; 32],
    seal: XChaCha20Poly1305,
}

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKey(***)")
    }
}

fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl CodeKey {
    pub fn new(secret: &SecretString) -> Self {
        let secret = secret.expose_secret().as_bytes();
        // Separate keys, so a hash never doubles as a seal key.
        let hash_key = derive(secret, b"insurebot otp hash v1");
        let seal_key = derive(secret, b"insurebot otp seal v1");
        Self {
            hash_key,
            seal: XChaCha20Poly1305::new(&seal_key.into()),
        }
    }

    fn mac(&self, otp_id: &str, code: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.hash_key).expect("32-byte key");
        mac.update(otp_id.as_bytes());
        mac.update(b":");
        mac.update(code.as_bytes());
        mac
    }

    /// The stored form of `code` for OTP `otp_id`: hex HMAC-SHA256.
    pub fn hash(&self, otp_id: &str, code: &str) -> String {
        hex::encode(self.mac(otp_id, code).finalize().into_bytes())
    }

    /// Whether `code` is the one hashed as `stored`, compared in constant time (the MAC's own
    /// verification); a malformed stored hash never matches.
    pub fn matches(&self, otp_id: &str, code: &str, stored: &str) -> bool {
        let Ok(expected) = hex::decode(stored) else {
            return false;
        };
        self.mac(otp_id, code).verify_slice(&expected).is_ok()
    }

    /// Seals `code` for the outbox row of OTP `otp_id`.
    pub fn seal(&self, otp_id: &str, code: &str) -> SealedCode {
        let mut nonce = [0u8; 24];
        os_rng().unwrap_err().fill(&mut nonce[..]);
        let sealed = self
            .seal
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: code.as_bytes(),
                    aad: otp_id.as_bytes(),
                },
            )
            .expect("sealing a short code cannot fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        SealedCode(hex::encode(out))
    }

    /// Opens a code sealed by [`CodeKey::seal`] for the same OTP; `None` when it was sealed
    /// under another key or for another OTP, or is damaged.
    pub fn unseal(&self, otp_id: &str, sealed: &SealedCode) -> Option<String> {
        let bytes = hex::decode(&sealed.0).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().ok()?;
        let plain = self
            .seal
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: otp_id.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

/// The operating system's CSPRNG (a failure to read it is fatal: no weak fallback).
fn os_rng() -> rand::rngs::OsRng {
    rand::rngs::OsRng
}

/// A fresh code of `len` digits, each uniform over 0–9, from the OS CSPRNG.
pub fn new_code(len: u32) -> String {
    let mut rng = os_rng().unwrap_err();
    (0..len)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CodeKey {
        CodeKey::new(&SecretString::from("a-test-otp-secret-0123"))
    }

    #[test]
    fn codes_have_the_asked_length_and_only_digits() {
        for len in [4, 6, 10] {
            let c = new_code(len);
            assert_eq!(c.len(), len as usize);
            assert!(c.chars().all(|ch| ch.is_ascii_digit()), "{c}");
        }
        // 1,000 six-digit codes: a broken generator (constant, or few values) repeats a lot.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            seen.insert(new_code(6));
        }
        assert!(seen.len() > 990, "{} distinct codes of 1000", seen.len());
    }

    #[test]
    fn a_hash_matches_only_its_code_and_its_otp() {
        let k = key();
        let h = k.hash("otp_a", "123456");
        assert!(!h.contains("123456"));
        assert!(k.matches("otp_a", "123456", &h));
        assert!(!k.matches("otp_a", "123457", &h));
        assert!(!k.matches("otp_b", "123456", &h));
        assert!(!k.matches("otp_a", "123456", "not hex"));
        let other = CodeKey::new(&SecretString::from("another-otp-secret-0123"));
        assert!(!other.matches("otp_a", "123456", &h));
    }

    #[test]
    fn a_seal_opens_only_for_its_otp_under_its_key() {
        let k = key();
        let sealed = k.seal("otp_a", "123456");
        assert!(!sealed.0.contains("123456"));
        assert_eq!(k.unseal("otp_a", &sealed).as_deref(), Some("123456"));
        assert_eq!(k.unseal("otp_b", &sealed), None);
        let other = CodeKey::new(&SecretString::from("another-otp-secret-0123"));
        assert_eq!(other.unseal("otp_a", &sealed), None);
        assert_eq!(k.unseal("otp_a", &SealedCode("00".into())), None);
        // Two seals of one code differ (a fresh nonce each time).
        assert_ne!(k.seal("otp_a", "123456"), sealed);
        assert_eq!(format!("{sealed:?}"), "SealedCode(***)");
    }
}
