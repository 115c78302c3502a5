//! Security headers on every console and simulator response (pages, fragments, event streams,
//! static files and error pages alike), added by one layer around [`super::router`]:
//!
//! - `Content-Security-Policy`: scripts, styles and connections from this origin only, no
//!   inline script or style (the pages load their scripts from `/console/static/`), forms
//!   post only here, no `<base>`, and no framing (`frame-ancestors 'none'`);
//! - `X-Frame-Options: DENY` for browsers that predate `frame-ancestors`;
//! - `X-Content-Type-Options: nosniff`;
//! - `Referrer-Policy: no-referrer`: console URLs carry contact ids;
//! - `Cache-Control: no-store` where the handler set no caching of its own: pages with a
//!   policyholder's conversation must not stay in the browser's disk cache;
//! - `Strict-Transport-Security` when the console is served over HTTPS, which the app knows
//!   from `console.secure_cookies` (the operator's statement that it is) or from
//!   `X-Forwarded-Proto: https` set by a TLS-terminating proxy, the same rule as the Secure
//!   cookie. A client could send that header itself over plain HTTP, but browsers ignore HSTS
//!   received over plain HTTP (RFC 6797, 8.1), so a forged header changes nothing.

use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::config::ConsoleSettings;

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// Whether the request reached the console over HTTPS (see the module doc); also decides the
/// session cookie's `Secure` flag.
pub fn served_over_https(secure_cookies: bool, headers: &HeaderMap) -> bool {
    secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// What the layer needs from the settings, taken once when the router is built.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    secure_cookies: bool,
    /// `max-age=…`, or `None` when HSTS is turned off.
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    pub fn from_settings(settings: &ConsoleSettings) -> Self {
        Self {
            secure_cookies: settings.secure_cookies,
            hsts: (settings.hsts_max_age_secs > 0).then(|| {
                HeaderValue::from_str(&format!("max-age={}", settings.hsts_max_age_secs))
                    .expect("digits are a valid header value")
            }),
        }
    }

    /// The middleware: runs the request, then sets the headers on whatever it answered.
    pub async fn apply(self, request: Request, next: Next) -> Response {
        let https = served_over_https(self.secure_cookies, request.headers());
        let mut response = next.run(request).await;
        let h = response.headers_mut();
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        if !h.contains_key(CACHE_CONTROL) {
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if https && let Some(hsts) = &self.hsts {
            h.insert(STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        response
    }
}
