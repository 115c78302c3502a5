//! The console's one error type. Its responses never show internals: a database error is
//! logged with its cause and answered with a plain "something went wrong" page.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use sea_orm::DbErr;

/// Every way a console request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No valid session: the browser is sent to the login page.
    #[error("not logged in")]
    Unauthenticated,
    /// Logged in, but the role is too low for this page or action.
    #[error("your role does not allow this")]
    Forbidden,
    /// An agent asked for a conversation that is neither waiting in the queue nor theirs.
    #[error("this conversation is not in the queue or yours; only a supervisor can open it")]
    NotYours,
    /// The form's CSRF token is missing or does not match the session's.
    #[error("the form has expired; reload the page and try again")]
    Csrf,
    #[error("not found")]
    NotFound,
    /// Login limiting: too many failures for this email or address; answered with
    /// `Retry-After`.
    #[error("too many failed logins; try again in a few minutes")]
    TooManyAttempts {
        /// When an attempt leaves the window, in seconds.
        retry_after_secs: u64,
    },
    /// Every password check the server runs at once is under way (see
    /// [`PasswordGate`](super::auth::PasswordGate)): 503 with `Retry-After: 1`. Not 429: it
    /// is no fault of this client, it passes within a second, and it must not read as the
    /// lockout (which 429 means here).
    #[error("the server is busy checking other logins; try again in a moment")]
    Busy,
    /// A request that lost a race or breaks a rule; the text is for the agent.
    #[error("{0}")]
    Conflict(String),
    /// A form field that cannot be accepted (an attachment's type, name or caption); the
    /// text names the field and what it accepts.
    #[error("{0}")]
    Invalid(String),
    /// An attachment over WhatsApp's size limit; the text names the limit.
    #[error("{0}")]
    TooLarge(String),
    /// The console is not available in this mode (e.g. the simulator outside sandbox mode).
    #[error("not available")]
    Unavailable,
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The console's result type.
pub type Result<T, E = ConsoleError> = std::result::Result<T, E>;

impl ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::SEE_OTHER,
            Self::Forbidden | Self::Csrf | Self::NotYours => StatusCode::FORBIDDEN,
            Self::NotFound | Self::Unavailable => StatusCode::NOT_FOUND,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Db(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let retry_after = match &self {
            Self::TooManyAttempts { retry_after_secs } => Some(*retry_after_secs),
            Self::Busy => Some(1),
            _ => None,
        };
        let message = match &self {
            Self::Unauthenticated => return Redirect::to("/console/login").into_response(),
            Self::Db(e) => {
                tracing::error!(error.cause_chain = ?e, error.message = %e, "console request failed");
                "Something went wrong. Please try again.".to_owned()
            }
            Self::Internal(e) => {
                tracing::error!(error.cause_chain = ?e, error.message = %e, "console request failed");
                "Something went wrong. Please try again.".to_owned()
            }
            other => {
                tracing::info!(status = status.as_u16(), reason = %other, "console request refused");
                other.to_string()
            }
        };
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code}</title>\
             <link rel=\"stylesheet\" href=\"/console/static/console.css\"></head>\
             <body><main class=\"narrow\"><h1>{code}</h1><p role=\"alert\">{msg}</p>\
             <p><a href=\"/console/queue\">Back to the queue</a></p></main></body></html>",
            code = status.as_u16(),
            msg = tera::escape_html(&message),
        );
        let mut response = (status, Html(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
