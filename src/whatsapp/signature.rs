//! `X-Hub-Signature-256`: HMAC-SHA256 of the raw request body with the app secret, compared in
//! constant time before anything parses the body.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("X-Hub-Signature-256 is not of the form sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

/// Checks `header` (the raw header value, if any) against `body`.
///
/// # Errors
/// [`SignatureError`] saying whether the header was missing, malformed or wrong.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let expected = parse_header(header)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The digest a header claims, checked for form only: the webhook refuses a request without
/// one before reading its body, which may be megabytes an attacker never means to finish.
///
/// # Errors
/// [`SignatureError::Missing`] or [`SignatureError::Malformed`].
pub fn parse_header(header: Option<&[u8]>) -> Result<[u8; 32], SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    let mut digest = [0; 32];
    hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| SignatureError::Malformed)?;
    Ok(digest)
}

/// The header value for `body`: `sha256=<hex>`. Used by the fake, the simulator and tests.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_made_with_the_secret_verifies() {
        let header = sign(b"s3cret", b"{\"object\":1}");
        assert_eq!(
            verify(b"s3cret", b"{\"object\":1}", Some(header.as_bytes())),
            Ok(())
        );
    }

    #[test]
    fn known_vector_matches() {
        // python3 -c "import hmac,hashlib;print(hmac.new(b'key',b'The quick brown fox jumps over the lazy dog',hashlib.sha256).hexdigest())"
        assert_eq!(
            sign(b"key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn wrong_missing_and_malformed_signatures_are_told_apart() {
        let header = sign(b"other", b"body");
        assert_eq!(
            verify(b"s3cret", b"body", Some(header.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", b"body", None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(b"s3cret", b"body", Some(b"sha1=abc")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"s3cret", b"body", Some(b"sha256=zz")),
            Err(SignatureError::Malformed)
        );
        let good = sign(b"s3cret", b"body");
        assert_eq!(
            verify(b"s3cret", b"body!", Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
    }
}
