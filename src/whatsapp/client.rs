//! The Cloud API client: sends messages and read receipts over HTTPS (reqwest) and turns
//! Meta's answers into [`SentMessage`] or a classified [`SendError`].
//!
//! It does one request per call and never retries by itself: the outbox/sender owns retries,
//! pacing and the template fallback, and needs [`SendError::class`] to choose between them
//! (reference §5.4). Timeouts are whatever the injected `reqwest::Client` was built with.
//!
//! The access token lives in a `SecretString` and only leaves it for the `Authorization`
//! header; `Debug` redacts it. Logs carry the message type and Graph error codes, never the
//! recipient or the text.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use futures_util::StreamExt;

use super::outbound::{LimitError, OutboundMessage, mark_read_payload};

/// Graph codes worth retrying after a pause: throughput (130429), pair rate (131056),
/// unknown/unavailable/generic (131000, 131016, 135000), maintenance (131057), app and WABA
/// call limits (4, 80007).
pub const RETRYABLE_CODES: &[i64] = &[130429, 131056, 131000, 131016, 135000, 131057, 4, 80007];
/// Graph codes meaning the 24-hour window is closed: re-engagement (131047) and the legacy
/// On-Premises 470. The sender falls back to a template instead of retrying.
pub const WINDOW_CLOSED_CODES: &[i64] = &[131047, 470];

/// Concurrent requests planned per connection to the Graph API. HTTP/2 multiplexes streams
/// over one connection, but a server caps them (`SETTINGS_MAX_CONCURRENT_STREAMS`; RFC 9113
/// asks for no fewer than 100) and the HTTP client queues requests past that instead of
/// opening another connection: so sends are spread over `max_in_flight ÷ 100` connections.
pub const STREAMS_PER_CONNECTION: usize = 100;

/// The HTTP clients for `max_in_flight` concurrent sends (see [`STREAMS_PER_CONNECTION`]),
/// each with its own connection pool: HTTP/2 where the server offers it by ALPN (or always
/// with `h2c` over plain HTTP), HTTP/1.1 keep-alive otherwise.
///
/// # Errors
/// When the TLS backend cannot be initialised.
pub fn http_clients(
    timeout: Duration,
    h2c: bool,
    max_in_flight: usize,
) -> reqwest::Result<Vec<reqwest::Client>> {
    let count = max_in_flight.div_ceil(STREAMS_PER_CONNECTION).max(1);
    (0..count)
        .map(|_| {
            let builder = reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(Duration::from_secs(5));
            if h2c {
                builder.http2_prior_knowledge()
            } else {
                builder
            }
            .build()
        })
        .collect()
}

/// A Cloud API client bound to one business phone number.
#[derive(Clone)]
pub struct CloudApiClient {
    http: reqwest::Client,
    /// Sends and read receipts go round these (see [`http_clients`]); `http` alone by default.
    connections: std::sync::Arc<[reqwest::Client]>,
    next: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// `{api_base}/{phone_number_id}/messages`.
    messages_url: String,
    /// The Graph base URL with its version, for account-level calls (template list).
    api_base: String,
    /// The business phone number's id: uploads belong to it (the media id cache's key).
    phone_number_id: String,
    access_token: SecretString,
}

impl fmt::Debug for CloudApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudApiClient")
            .field("messages_url", &self.messages_url)
            .field("access_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Meta's acknowledgement of a send (acceptance, not delivery: that arrives as a status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// The wamid that status webhooks will refer to.
    pub message_id: String,
    /// `accepted` or `held_for_quality_assessment` when Meta says so (template sends).
    pub message_status: Option<String>,
}

/// Why a send or mark-read did not go through.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The message breaks a documented limit; nothing was sent.
    #[error("message breaks a Cloud API limit: {0}")]
    Invalid(LimitError),
    /// Meta answered with an error. `code` is 0 when the body was not a Graph error (e.g. a
    /// proxy's HTML page); the HTTP status then decides the class.
    #[error("Cloud API error {code} (HTTP {http_status}): {message}")]
    Api {
        http_status: u16,
        code: i64,
        subcode: Option<i64>,
        message: String,
        /// `error_data.details`, which Meta says to branch on together with `code`.
        details: Option<String>,
        fbtrace_id: Option<String>,
        /// From the `Retry-After` header (seconds form).
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused, reset, TLS failure or timeout. The message may or may
    /// not have been accepted.
    #[error("could not reach the Cloud API{}: {message}", if *.timeout { " (timeout)" } else { "" })]
    Transport { timeout: bool, message: String },
    /// HTTP success with a body we cannot read; the message was probably accepted.
    #[error("unexpected Cloud API response: {0}")]
    Decode(String),
}

/// What the sender should do about a [`SendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later, after `retry_after` when Meta said how long.
    Retryable { retry_after: Option<Duration> },
    /// The 24-hour window is closed: send an approved template instead.
    WindowClosed,
    /// Retrying will not help; record the failure (and alert for account-level codes).
    Permanent,
}

impl SendError {
    /// Classifies per reference §5.4: window codes first, then rate/availability codes, HTTP
    /// 5xx and 429 and transport failures are retryable, everything else is permanent.
    ///
    /// `Decode` is permanent on purpose: the request succeeded at HTTP level, so Meta most
    /// likely accepted the message and a retry would send it twice.
    pub fn class(&self) -> ErrorClass {
        match self {
            SendError::Invalid(_) | SendError::Decode(_) => ErrorClass::Permanent,
            SendError::Transport { .. } => ErrorClass::Retryable { retry_after: None },
            SendError::Api {
                http_status,
                code,
                retry_after,
                ..
            } => {
                if WINDOW_CLOSED_CODES.contains(code) {
                    ErrorClass::WindowClosed
                } else if RETRYABLE_CODES.contains(code)
                    || *http_status >= 500
                    || *http_status == 429
                {
                    ErrorClass::Retryable {
                        retry_after: *retry_after,
                    }
                } else {
                    ErrorClass::Permanent
                }
            }
        }
    }
}

impl CloudApiClient {
    /// A client for `phone_number_id`. `api_base` includes the Graph version, e.g.
    /// `https://graph.facebook.com/v23.0` (a trailing `/` is ignored).
    pub fn new(
        http: reqwest::Client,
        api_base: &str,
        phone_number_id: &str,
        access_token: SecretString,
    ) -> Self {
        let api_base = api_base.trim_end_matches('/').to_owned();
        CloudApiClient {
            connections: std::sync::Arc::from([http.clone()]),
            next: std::sync::Arc::default(),
            http,
            messages_url: format!("{api_base}/{phone_number_id}/messages"),
            api_base,
            phone_number_id: phone_number_id.to_owned(),
            access_token,
        }
    }

    /// The business phone number this client sends from.
    pub fn phone_number_id(&self) -> &str {
        &self.phone_number_id
    }

    /// Uploads a file (`POST /{phone_number_id}/media`, multipart with `messaging_product`,
    /// `type` and `file`) and returns its media id, which Meta keeps for 30 days. `body` is
    /// streamed (`file` yields exactly `size` bytes): the file is never held in memory whole.
    /// `filename` only names the part.
    ///
    /// # Errors
    /// What Meta or the network answered; a success without `id` is `Decode`.
    #[tracing::instrument(name = "whatsapp.upload_media", skip_all, fields(size))]
    pub async fn upload_media(
        &self,
        file: futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
        size: u64,
        mime_type: &str,
        filename: &str,
    ) -> Result<String, SendError> {
        // Hand-written multipart: reqwest's `multipart` feature would add mime_guess for a
        // form of three fixed fields, and this way the file part stays a stream.
        let boundary = format!("insurebot-{}", uuid::Uuid::new_v4().simple());
        // Quotes and line breaks would end the header early; the name is cosmetic.
        let safe_name: String = filename
            .chars()
            .map(|c| if c == '"' || c.is_control() { '_' } else { c })
            .collect();
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n{mime_type}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{safe_name}\"\r\n\
             Content-Type: {mime_type}\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let length = head.len() as u64 + size + tail.len() as u64;
        let parts = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(head))])
            .chain(file)
            .chain(futures_util::stream::iter([Ok(bytes::Bytes::from(tail))]));
        let resp = self
            .http
            .post(format!("{}/{}/media", self.api_base, self.phone_number_id))
            .bearer_auth(self.access_token.expose_secret())
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(reqwest::Body::wrap_stream(parts))
            .send()
            .await
            .map_err(transport)?;
        let bytes = success_body(resp).await?;
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|e| SendError::Decode(format!("upload response is not JSON: {e}")))?;
        answer
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| SendError::Decode("upload response without \"id\"".into()))
    }

    /// Spreads sends and read receipts over `connections` (from [`http_clients`]) in turn;
    /// an empty list keeps the one client.
    #[must_use]
    pub fn with_connections(mut self, connections: Vec<reqwest::Client>) -> Self {
        if !connections.is_empty() {
            self.connections = connections.into();
        }
        self
    }

    /// Validates and sends one message.
    ///
    /// # Errors
    /// [`SendError::Invalid`] before any request when a limit is broken; otherwise what Meta
    /// or the network answered. Use [`SendError::class`] to decide what to do.
    #[tracing::instrument(name = "whatsapp.send", skip_all, fields(message_type = msg.body.type_name()))]
    pub async fn send(&self, msg: &OutboundMessage) -> Result<SentMessage, SendError> {
        msg.validate().map_err(SendError::Invalid)?;
        if msg.body.stored_file().is_some() {
            // The sender uploads first (`media::uploads`); a stored file here is a bug.
            return Err(SendError::Invalid(LimitError::new(
                "file",
                "a stored file must be uploaded before it is sent",
            )));
        }
        let answer = self.post(&msg.to_wire()).await?;
        let first = answer.get("messages").and_then(|m| m.get(0));
        let Some(message_id) = first
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
        else {
            return Err(SendError::Decode(
                "success response without messages[0].id".into(),
            ));
        };
        // No wamid in the log: a wamid is base64 that embeds the recipient's phone number.
        tracing::debug!("message accepted");
        Ok(SentMessage {
            message_id: message_id.to_owned(),
            message_status: first
                .and_then(|m| m.get("message_status"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// Marks an inbound message (and the ones before it) as read.
    ///
    /// # Errors
    /// As for [`Self::send`], minus `Invalid`.
    #[tracing::instrument(name = "whatsapp.mark_read", skip_all)]
    pub async fn mark_read(&self, message_id: &str) -> Result<(), SendError> {
        let answer = self.post(&mark_read_payload(message_id)).await?;
        if answer.get("success").and_then(Value::as_bool) == Some(true) {
            Ok(())
        } else {
            Err(SendError::Decode(
                "mark-read response without \"success\": true".into(),
            ))
        }
    }

    /// Every message template of the WhatsApp Business Account
    /// (`GET /{waba_id}/message_templates`), following Graph paging to the end.
    ///
    /// # Errors
    /// What Meta or the network answered (`SendError::Api`, `Transport`, `Decode`).
    #[tracing::instrument(name = "whatsapp.list_templates", skip_all)]
    pub async fn list_templates(&self, waba_id: &str) -> Result<Vec<RemoteTemplate>, SendError> {
        let mut url = format!(
            "{}/{waba_id}/message_templates?fields=id,name,language,status,category,parameter_format,rejected_reason,components&limit=100",
            self.api_base
        );
        let mut out = Vec::new();
        // A bound on pages, so a misbehaving `paging.next` cannot loop forever.
        for _ in 0..1000 {
            let resp = self
                .http
                .get(&url)
                .bearer_auth(self.access_token.expose_secret())
                .send()
                .await
                .map_err(transport)?;
            let bytes = success_body(resp).await?;
            let page: TemplatePage = serde_json::from_slice(&bytes)
                .map_err(|e| SendError::Decode(format!("template list: {e}")))?;
            out.extend(page.data);
            match page.paging.and_then(|p| p.next) {
                Some(next) if !next.is_empty() => url = next,
                _ => return Ok(out),
            }
        }
        Err(SendError::Decode(
            "template list has more than 1000 pages".into(),
        ))
    }

    async fn post(&self, body: &Value) -> Result<Value, SendError> {
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = self.connections[turn % self.connections.len()]
            .post(&self.messages_url)
            .bearer_auth(self.access_token.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(transport)?;
        let bytes = success_body(resp).await.inspect_err(|err| {
            if let SendError::Api {
                code, http_status, ..
            } = err
            {
                tracing::debug!(code, http_status, "Cloud API refused the request");
            }
        })?;
        // serde_json's message names a position, not content: safe to keep.
        serde_json::from_slice(&bytes)
            .map_err(|e| SendError::Decode(format!("success response is not JSON: {e}")))
    }
}

/// The body of a successful answer; any other status becomes the Graph error it carries.
async fn success_body(resp: reqwest::Response) -> Result<bytes::Bytes, SendError> {
    let status = resp.status();
    let retry_after = parse_retry_after(resp.headers());
    let bytes = resp.bytes().await.map_err(transport)?;
    if status.is_success() {
        Ok(bytes)
    } else {
        Err(api_error(status.as_u16(), &bytes, retry_after))
    }
}

/// One template as the Graph API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteTemplate {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub language: String,
    pub status: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub parameter_format: Option<String>,
    #[serde(default)]
    pub rejected_reason: Option<String>,
    #[serde(default)]
    pub components: Vec<Value>,
}

#[derive(Deserialize)]
struct TemplatePage {
    #[serde(default)]
    data: Vec<RemoteTemplate>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

fn transport(e: reqwest::Error) -> SendError {
    let timeout = e.is_timeout();
    // reqwest's top-level message is generic ("error sending request"); the cause chain says
    // what happened (refused, reset, TLS). The URL carries no secret but is dropped as noise.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    SendError::Transport { timeout, message }
}

/// `Retry-After` in its seconds form; the HTTP-date form is not used by Graph and is ignored.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

/// Reads Meta's `{"error": {...}}` (§3.6), falling back to code 0 for non-Graph bodies.
fn api_error(http_status: u16, body: &[u8], retry_after: Option<Duration>) -> SendError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .filter(|e| e.is_object());
    let Some(err) = err else {
        return SendError::Api {
            http_status,
            code: 0,
            subcode: None,
            message: format!("HTTP {http_status} without a Graph error body"),
            details: None,
            fbtrace_id: None,
            retry_after,
        };
    };
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    SendError::Api {
        http_status,
        code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
        subcode: err.get("error_subcode").and_then(Value::as_i64),
        message: s(err.get("message")).unwrap_or_default(),
        details: s(err.get("error_data").and_then(|d| d.get("details"))),
        fbtrace_id: s(err.get("fbtrace_id")),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatsapp::fake::{
        FailureRule, FakeCloudApi, FakeServer, RequestKind, ScriptedError,
    };
    use crate::whatsapp::outbound::{
        OutboundBody, Recipient, ReplyButton, TemplateComponent, TemplateParameter,
    };

    const PNID: &str = "106540352242922";
    const TOKEN: &str = "EAAG-super-secret-token";

    async fn start() -> (FakeCloudApi, FakeServer) {
        let fake = FakeCloudApi::new();
        let server = fake
            .clone()
            .spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        (fake, server)
    }

    fn client_for(server: &FakeServer) -> CloudApiClient {
        client_with(server, reqwest::Client::new())
    }

    fn client_with(server: &FakeServer, http: reqwest::Client) -> CloudApiClient {
        CloudApiClient::new(http, &server.base_url, PNID, SecretString::from(TOKEN))
    }

    fn text(body: &str) -> OutboundMessage {
        OutboundMessage {
            to: Recipient::Phone("919812345678".into()),
            body: OutboundBody::Text {
                body: body.into(),
                preview_url: false,
            },
            reply_to: None,
            callback_data: Some("outbox:1".into()),
        }
    }

    fn api(http_status: u16, code: i64) -> SendError {
        SendError::Api {
            http_status,
            code,
            subcode: None,
            message: String::new(),
            details: None,
            fbtrace_id: None,
            retry_after: None,
        }
    }

    #[tokio::test]
    async fn send_text_reaches_the_fake_exactly_as_wire_json() {
        let (fake, server) = start().await;
        let msg = text("Your premium of ₹1,499 is due on 10 June.");
        let sent = client_for(&server).send(&msg).await.unwrap();

        let got = fake.received();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, RequestKind::Send);
        assert_eq!(got[0].phone_number_id, PNID);
        assert_eq!(got[0].version, "v23.0");
        assert_eq!(got[0].body, msg.to_wire());
        assert_eq!(got[0].wamid.as_deref(), Some(sent.message_id.as_str()));
        assert!(sent.message_id.starts_with("wamid."));
        assert_eq!(sent.message_status, None);
    }

    #[tokio::test]
    async fn template_send_reports_message_status_and_ids_are_fresh() {
        let (_fake, server) = start().await;
        let client = client_for(&server);
        let msg = OutboundMessage {
            to: Recipient::UserId("IN.1349120865530274191".into()),
            body: OutboundBody::Template {
                name: "premium_due_reminder".into(),
                language: "en_US".into(),
                components: vec![TemplateComponent::Body {
                    parameters: vec![TemplateParameter::Text {
                        name: None,
                        text: "Priya".into(),
                    }],
                }],
            },
            reply_to: None,
            callback_data: None,
        };
        let a = client.send(&msg).await.unwrap();
        let b = client.send(&msg).await.unwrap();
        assert_eq!(a.message_status.as_deref(), Some("accepted"));
        assert_ne!(a.message_id, b.message_id);
    }

    #[tokio::test]
    async fn mark_read_is_sent_and_recorded() {
        let (fake, server) = start().await;
        client_for(&server)
            .mark_read("wamid.INBOUND1")
            .await
            .unwrap();
        let got = fake.received();
        assert_eq!(got[0].kind, RequestKind::MarkRead);
        assert_eq!(got[0].wamid, None);
        assert_eq!(got[0].body, mark_read_payload("wamid.INBOUND1"));
    }

    #[tokio::test]
    async fn invalid_message_never_leaves() {
        let (fake, server) = start().await;
        let mut msg = text("pick");
        msg.body = OutboundBody::Buttons {
            header: None,
            body: "pick".into(),
            footer: None,
            buttons: vec![ReplyButton {
                id: "a".into(),
                title: "A title that is far too long".into(),
            }],
        };
        let err = client_for(&server).send(&msg).await.unwrap_err();
        let SendError::Invalid(limit) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(limit.field, "buttons[0].title");
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert_eq!(fake.attempts(), 0);
    }

    #[tokio::test]
    async fn pair_rate_limit_is_retryable_with_retry_after_then_recovers() {
        let (fake, server) = start().await;
        fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError {
                subcode: Some(2_494_071),
                details: Some("too many messages to the same phone number".into()),
                ..ScriptedError::new(400, 131056).with_retry_after(7)
            },
        });
        let client = client_for(&server);
        let err = client.send(&text("one")).await.unwrap_err();
        match &err {
            SendError::Api {
                http_status,
                code,
                subcode,
                message,
                details,
                fbtrace_id,
                retry_after,
            } => {
                assert_eq!(
                    (*http_status, *code, *subcode),
                    (400, 131056, Some(2_494_071))
                );
                assert_eq!(message, "(#131056) Scripted failure");
                assert_eq!(
                    details.as_deref(),
                    Some("too many messages to the same phone number")
                );
                assert!(fbtrace_id.is_some());
                assert_eq!(*retry_after, Some(Duration::from_secs(7)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.class(),
            ErrorClass::Retryable {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        // The rule was for one request only.
        client.send(&text("two")).await.unwrap();
        assert_eq!(fake.received().len(), 1);
        assert_eq!(fake.attempts(), 2);
    }

    #[tokio::test]
    async fn re_engagement_error_means_window_closed() {
        let (fake, server) = start().await;
        fake.script(FailureRule::Next {
            count: 2,
            error: ScriptedError::new(400, 131047),
        });
        let client = client_for(&server);
        for _ in 0..2 {
            let err = client.send(&text("late reply")).await.unwrap_err();
            assert_eq!(err.class(), ErrorClass::WindowClosed);
        }
        client.send(&text("late reply")).await.unwrap();
    }

    #[tokio::test]
    async fn server_errors_are_retryable_and_bad_requests_permanent() {
        let (fake, server) = start().await;
        let client = client_for(&server);
        fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(503, 1),
        });
        let err = client.send(&text("x")).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
        fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(400, 131026),
        });
        let err = client.send(&text("x")).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
    }

    #[tokio::test]
    async fn wrong_base_url_gives_api_error_without_graph_body() {
        let (_fake, server) = start().await;
        // Missing the version segment: the fake has no such route.
        let base = server.base_url.trim_end_matches("/v23.0");
        let client = CloudApiClient::new(
            reqwest::Client::new(),
            base,
            PNID,
            SecretString::from(TOKEN),
        );
        let err = client.send(&text("x")).await.unwrap_err();
        assert!(
            matches!(
                err,
                SendError::Api {
                    http_status: 404,
                    code: 0,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Permanent);
    }

    #[tokio::test]
    async fn slow_answer_times_out_but_meta_already_has_the_message() {
        let (fake, server) = start().await;
        fake.script(FailureRule::Delay {
            count: 1,
            delay_ms: 2_000,
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let err = client_with(&server, http)
            .send(&text("x"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SendError::Transport { timeout: true, .. }),
            "{err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Retryable { retry_after: None });
        // The duplicate risk the outbox must bound: accepted, yet the client saw a failure.
        assert_eq!(fake.received().len(), 1);
    }

    #[tokio::test]
    async fn stopped_server_is_a_transport_error() {
        let (_fake, server) = start().await;
        let client = client_for(&server);
        server.shutdown().await;
        let err = client.send(&text("x")).await.unwrap_err();
        assert!(
            matches!(err, SendError::Transport { timeout: false, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("could not reach the Cloud API:")
        );
    }

    #[tokio::test]
    async fn success_without_message_id_is_a_decode_error() {
        let (fake, server) = start().await;
        // A 200 carrying an error body: the fake can say that, a well-behaved Meta does not.
        fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(200, 1),
        });
        let err = client_for(&server).send(&text("x")).await.unwrap_err();
        assert!(matches!(err, SendError::Decode(_)), "{err:?}");
        assert_eq!(err.class(), ErrorClass::Permanent);
        fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(200, 1),
        });
        let err = client_for(&server).mark_read("wamid.X").await.unwrap_err();
        assert!(matches!(err, SendError::Decode(_)), "{err:?}");
    }

    #[tokio::test]
    async fn seeded_failure_rate_repeats_exactly() {
        let (fake, server) = start().await;
        let client = client_for(&server);
        let mut runs = Vec::new();
        for _ in 0..2 {
            fake.reset();
            fake.script(FailureRule::Rate {
                rate: 0.5,
                error: ScriptedError::new(400, 130429),
                seed: 7,
            });
            let mut pattern = Vec::new();
            for i in 0..20 {
                pattern.push(client.send(&text(&format!("m{i}"))).await.is_ok());
            }
            runs.push(pattern);
        }
        assert_eq!(runs[0], runs[1]);
        let ok = runs[0].iter().filter(|x| **x).count();
        assert!((1..20).contains(&ok), "rate 0.5 gave {ok}/20 successes");
        assert_eq!(fake.received().len(), ok);
    }

    #[test]
    fn classification_follows_the_reference_table() {
        for code in [130429, 131056, 131000, 131016, 135000, 131057, 4, 80007] {
            assert_eq!(
                api(400, code).class(),
                ErrorClass::Retryable { retry_after: None },
                "{code}"
            );
        }
        for code in [131047, 470] {
            assert_eq!(api(400, code).class(), ErrorClass::WindowClosed, "{code}");
        }
        for code in [
            131048, 131049, 131050, 131026, 131008, 132000, 132015, 190, 10, 368, 0,
        ] {
            assert_eq!(api(400, code).class(), ErrorClass::Permanent, "{code}");
        }
        assert_eq!(
            api(500, 0).class(),
            ErrorClass::Retryable { retry_after: None }
        );
        assert_eq!(
            api(429, 0).class(),
            ErrorClass::Retryable { retry_after: None }
        );
        assert_eq!(api(401, 190).class(), ErrorClass::Permanent);
        let t = SendError::Transport {
            timeout: false,
            message: "refused".into(),
        };
        assert_eq!(t.class(), ErrorClass::Retryable { retry_after: None });
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h), None);
        h.insert(RETRY_AFTER, " 30 ".parse().unwrap());
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(30)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let client = CloudApiClient::new(
            reqwest::Client::new(),
            "https://graph.facebook.com/v23.0/",
            PNID,
            SecretString::from(TOKEN),
        );
        let dbg = format!("{client:?}");
        assert!(!dbg.contains(TOKEN), "{dbg}");
        assert!(
            dbg.contains("https://graph.facebook.com/v23.0/106540352242922/messages"),
            "{dbg}"
        );
    }
}
