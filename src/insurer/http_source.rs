//! The HTTP source: an insurer's own REST API (contract: `insurer-api.openapi.yaml` beside
//! this file). A slow or failing insurer system must turn into the action outcome `error`
//! within seconds, never a hang: every request has a timeout, reads are retried a few times
//! with exponential backoff and jitter (only on timeouts, connection failures, 429 and 5xx),
//! and a circuit breaker stops calling a system that keeps failing for a cool-down, so a dead
//! insurer costs each policyholder one fast "sorry" instead of several slow ones.
//!
//! Answers are checked against the question (the policy asked for is the policy returned, and
//! so on): a buggy API must not make us show one person another person's data.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use chrono::NaiveDate;
use reqwest::{Method, Url};
use sea_orm::DatabaseTransaction;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::InsurerHttpSettings;
use futures_util::future::BoxFuture;

use super::model::{Claim, ClaimFile, NewClaim, Policy, Premium};
use super::source::{
    DOCUMENT_MAX_BYTES, DocumentFile, PolicySource, SourceError, claim_letter_filename,
    document_filename,
};

/// Reads policies, claims and premiums from the insurer's REST API.
pub struct HttpSource {
    client: reqwest::Client,
    base: Url,
    token: Option<SecretString>,
    retries: usize,
    backoff: Duration,
    breaker: CircuitBreaker,
}

#[derive(Deserialize)]
struct PolicyList {
    policies: Vec<Policy>,
}

#[derive(Deserialize)]
struct ClaimList {
    claims: Vec<Claim>,
}

#[derive(Deserialize)]
struct PremiumList {
    premiums: Vec<Premium>,
}

#[derive(Serialize)]
struct PolicySearch<'a> {
    mobile: &'a str,
}

impl HttpSource {
    /// Builds the client from `[insurer.http]`.
    ///
    /// # Errors
    /// When the base URL is not a URL or the HTTP client cannot be built.
    pub fn new(settings: &InsurerHttpSettings) -> Result<Self, SourceError> {
        let mut base = Url::parse(&settings.base_url)
            .map_err(|_| SourceError::Garbage("insurer.http.base_url is not a URL".into()))?;
        // Url::join and path_segments_mut treat a missing trailing slash as "drop the last
        // segment"; normalise so that /v1 and /v1/ mean the same.
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.pop_if_empty();
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .map_err(|_| SourceError::Unreachable)?;
        Ok(Self {
            client,
            base,
            token: settings.token.clone(),
            retries: settings.retries as usize,
            backoff: Duration::from_millis(settings.retry_backoff_ms),
            breaker: CircuitBreaker::new(
                "insurer API",
                settings.breaker_failures,
                Duration::from_millis(settings.breaker_cooldown_ms),
            ),
        })
    }

    /// True while the breaker refuses calls.
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // push() percent-encodes, so a policy number with `/` stays one segment.
            path.extend(segments);
        }
        url
    }

    /// One JSON read through the breaker and the retry loop; `Ok(None)` on 404.
    async fn read<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<Option<T>, SourceError> {
        self.call(method, url, body, "application/json", |answer| {
            answer.map(|(bytes, _)| parse_json(&bytes)).transpose()
        })
        .await
    }

    /// One request through the breaker and the retry loop: `parse` reads the answer (body and
    /// `Content-Type`, `None` on 404) inside the loop, so an unreadable answer counts as a
    /// failure for the breaker exactly like a refused call.
    async fn call<T>(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
        accept: &str,
        parse: impl Fn(Option<(Bytes, Option<String>)>) -> Result<Option<T>, SourceError>,
    ) -> Result<Option<T>, SourceError> {
        if !self.breaker.allow() {
            return Err(SourceError::CircuitOpen);
        }
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.backoff)
            .with_max_delay(self.backoff * 8)
            .with_max_times(self.retries)
            .with_jitter();
        let result = (|| async {
            parse(
                self.attempt(method.clone(), url.clone(), body.as_ref(), accept)
                    .await?,
            )
        })
        .retry(backoff)
        .when(SourceError::is_transient)
        .notify(|e, delay| {
            tracing::debug!(error = %e, ?delay, "insurer API read failed; retrying");
        })
        .await;
        self.breaker.record(result.is_ok());
        if let Err(e) = &result {
            tracing::warn!(error = %e, "insurer API read failed");
        }
        result
    }

    /// One write through the breaker, attempted once: a claim must not be filed twice
    /// because an answer was slow (the request carries an `Idempotency-Key` all the same, so
    /// an insurer that sees it twice from a proxy can tell). `Ok(None)` on 404.
    async fn write<T: DeserializeOwned>(
        &self,
        url: Url,
        body: serde_json::Value,
    ) -> Result<Option<T>, SourceError> {
        if !self.breaker.allow() {
            return Err(SourceError::CircuitOpen);
        }
        let result = self
            .attempt(Method::POST, url, Some(&body), "application/json")
            .await
            .and_then(|answer| answer.map(|(bytes, _)| parse_json(&bytes)).transpose());
        self.breaker.record(result.is_ok());
        if let Err(e) = &result {
            tracing::warn!(error = %e, "insurer API write failed");
        }
        result
    }

    async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        accept: &str,
    ) -> Result<Option<(Bytes, Option<String>)>, SourceError> {
        let mut request = self
            .client
            .request(method.clone(), url)
            .header(reqwest::header::ACCEPT, accept);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        if let Some(body) = body {
            if method == Method::POST {
                request = request.header("Idempotency-Key", uuid::Uuid::new_v4().to_string());
            }
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(SourceError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > DOCUMENT_MAX_BYTES)
        {
            return Err(SourceError::Garbage(format!(
                "answer larger than {DOCUMENT_MAX_BYTES} bytes"
            )));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase());
        let bytes = response.bytes().await.map_err(transport)?;
        if bytes.len() as u64 > DOCUMENT_MAX_BYTES {
            return Err(SourceError::Garbage(format!(
                "answer larger than {DOCUMENT_MAX_BYTES} bytes"
            )));
        }
        Ok(Some((bytes, content_type)))
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SourceError> {
    serde_json::from_slice(bytes).map_err(|e| {
        // The category and position only: serde's message may quote the payload.
        SourceError::Garbage(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

fn transport(e: reqwest::Error) -> SourceError {
    if e.is_timeout() {
        SourceError::Timeout
    } else {
        SourceError::Unreachable
    }
}

fn mismatch(what: &str) -> SourceError {
    SourceError::Garbage(format!(
        "the API answered with a different {what} than asked for"
    ))
}

#[derive(Serialize)]
struct DocumentsBody<'a> {
    files: &'a [ClaimFile],
}

impl PolicySource for HttpSource {
    fn intimate_claim<'a>(
        &'a self,
        _txn: &'a DatabaseTransaction,
        claim: &'a NewClaim,
    ) -> BoxFuture<'a, Result<Claim, SourceError>> {
        Box::pin(async move {
            let body =
                serde_json::to_value(claim).map_err(|e| SourceError::Garbage(e.to_string()))?;
            let created: Option<Claim> = self.write(self.url(&["claims"]), body).await?;
            match created {
                None => Err(SourceError::Status(404)),
                Some(c) if c.policy_number != claim.policy_number => Err(mismatch("policy")),
                Some(c)
                    if super::model::normalize_claim_number(&c.claim_number).as_deref()
                        != Some(c.claim_number.as_str()) =>
                {
                    Err(SourceError::Garbage(
                        "the new claim's number is not like CLM-123456".into(),
                    ))
                }
                Some(c) => Ok(c),
            }
        })
    }

    fn attach_documents<'a>(
        &'a self,
        _txn: &'a DatabaseTransaction,
        claim_number: &'a str,
        files: &'a [ClaimFile],
        _today: NaiveDate,
    ) -> BoxFuture<'a, Result<bool, SourceError>> {
        Box::pin(async move {
            let body = serde_json::to_value(DocumentsBody { files })
                .map_err(|e| SourceError::Garbage(e.to_string()))?;
            let claim: Option<Claim> = self
                .write(self.url(&["claims", claim_number, "documents"]), body)
                .await?;
            match claim {
                None => Ok(false),
                Some(c) if c.claim_number != claim_number => Err(mismatch("claim")),
                Some(_) => Ok(true),
            }
        })
    }

    fn policies_for_mobile<'a>(
        &'a self,
        mobile: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Policy>, SourceError>> {
        Box::pin(async move {
            // POST with the number in the body: phone numbers must not end up in access logs.
            let body = serde_json::to_value(PolicySearch { mobile })
                .map_err(|e| SourceError::Garbage(e.to_string()))?;
            let list: Option<PolicyList> = self
                .read(Method::POST, self.url(&["policies", "search"]), Some(body))
                .await?;
            let mut policies = list.map(|l| l.policies).unwrap_or_default();
            // Only what is registered on this number, whatever the API sent.
            policies.retain(|p| p.mobile.as_deref() == Some(mobile));
            Ok(policies)
        })
    }

    fn policy<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<Policy>, SourceError>> {
        Box::pin(async move {
            let policy: Option<Policy> = self
                .read(Method::GET, self.url(&["policies", policy_number]), None)
                .await?;
            match policy {
                Some(p) if p.policy_number != policy_number => Err(mismatch("policy")),
                other => Ok(other),
            }
        })
    }

    fn claim<'a>(
        &'a self,
        claim_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<Claim>, SourceError>> {
        Box::pin(async move {
            let claim: Option<Claim> = self
                .read(Method::GET, self.url(&["claims", claim_number]), None)
                .await?;
            match claim {
                Some(c) if c.claim_number != claim_number => Err(mismatch("claim")),
                other => Ok(other),
            }
        })
    }

    fn claims<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Claim>, SourceError>> {
        Box::pin(async move {
            let list: Option<ClaimList> = self
                .read(
                    Method::GET,
                    self.url(&["policies", policy_number, "claims"]),
                    None,
                )
                .await?;
            let claims = list.map(|l| l.claims).unwrap_or_default();
            if claims.iter().any(|c| c.policy_number != policy_number) {
                return Err(mismatch("policy's claims"));
            }
            Ok(claims)
        })
    }

    fn premiums<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Premium>, SourceError>> {
        Box::pin(async move {
            let list: Option<PremiumList> = self
                .read(
                    Method::GET,
                    self.url(&["policies", policy_number, "premiums"]),
                    None,
                )
                .await?;
            let mut premiums = list.map(|l| l.premiums).unwrap_or_default();
            if premiums.iter().any(|p| p.policy_number != policy_number) {
                return Err(mismatch("policy's premiums"));
            }
            premiums.sort_by_key(|p| p.due_date);
            Ok(premiums)
        })
    }

    fn policy_document<'a>(
        &'a self,
        policy_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<DocumentFile>, SourceError>> {
        let url = self.url(&["policies", policy_number, "document"]);
        Box::pin(self.document(url, document_filename(policy_number)))
    }

    fn claim_letter<'a>(
        &'a self,
        claim_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<DocumentFile>, SourceError>> {
        Box::pin(async move {
            let Some(filename) = claim_letter_filename(claim_number) else {
                return Ok(None);
            };
            self.document(self.url(&["claims", claim_number, "letter"]), filename)
                .await
        })
    }
}

impl HttpSource {
    /// A file the API serves at `url` (404: none), to be shown as `filename`.
    async fn document(
        &self,
        url: Url,
        filename: String,
    ) -> Result<Option<DocumentFile>, SourceError> {
        self.call(Method::GET, url, None, "application/pdf", |answer| {
            Ok(answer.map(|(bytes, content_type)| DocumentFile {
                bytes,
                // Checked against WhatsApp's document types by the action.
                mime_type: content_type.unwrap_or_else(|| "application/octet-stream".into()),
                filename: filename.clone(),
            }))
        })
        .await
    }
}

/// Consecutive failed calls open the circuit for a cool-down; then one trial call decides
/// whether it closes again or stays open for another cool-down.
pub struct CircuitBreaker {
    /// The system behind it, for the log ("insurer API", "understanding service").
    what: &'static str,
    threshold: u32,
    cooldown: Duration,
    state: Mutex<Breaker>,
}

#[derive(Debug, Clone, Copy)]
enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is in flight. If it never reports (its future was dropped), another
    /// trial is allowed after a further cool-down instead of staying stuck here.
    HalfOpen {
        since: Instant,
    },
}

impl CircuitBreaker {
    pub fn new(what: &'static str, threshold: u32, cooldown: Duration) -> Self {
        Self {
            what,
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(Breaker::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // A panic while holding this lock cannot leave the state half-written (it is Copy).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May a call go out now?
    pub fn allow(&self) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        let trial_due = match *state {
            Breaker::Closed { .. } => return true,
            Breaker::Open { until } => now >= until,
            Breaker::HalfOpen { since } => now >= since + self.cooldown,
        };
        if trial_due {
            *state = Breaker::HalfOpen { since: now };
        }
        trial_due
    }

    /// Reports how an allowed call ended.
    pub fn record(&self, ok: bool) {
        let mut state = self.lock();
        *state = match (*state, ok) {
            (Breaker::Closed { .. }, true) => Breaker::Closed { failures: 0 },
            (Breaker::HalfOpen { .. } | Breaker::Open { .. }, true) => {
                tracing::info!(system = self.what, "answering again: circuit closed");
                Breaker::Closed { failures: 0 }
            }
            (Breaker::Closed { failures }, false) if failures + 1 < self.threshold => {
                Breaker::Closed {
                    failures: failures + 1,
                }
            }
            (_, false) => {
                tracing::warn!(
                    system = self.what,
                    cooldown_ms = self.cooldown.as_millis() as u64,
                    "keeps failing: circuit open"
                );
                Breaker::Open {
                    until: Instant::now() + self.cooldown,
                }
            }
        };
    }

    /// True while calls are refused (open, before its cool-down ended).
    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), Breaker::Open { until } if Instant::now() < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_file_documents_every_call_the_client_makes() {
        let doc: serde_json::Value =
            serde_saphyr::from_str(include_str!("insurer-api.openapi.yaml")).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/policies/search", "post"),
            ("/policies/{policy_number}", "get"),
            ("/policies/{policy_number}/claims", "get"),
            ("/policies/{policy_number}/premiums", "get"),
            ("/policies/{policy_number}/document", "get"),
            ("/claims/{claim_number}", "get"),
            ("/claims", "post"),
            ("/claims/{claim_number}/documents", "post"),
        ] {
            assert!(
                paths[path][method].is_object(),
                "{method} {path} is documented"
            );
        }
        // Every field the client requires is required in the contract.
        let required = |schema: &str| -> Vec<String> {
            doc["components"]["schemas"][schema]["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            required("Policy"),
            [
                "policy_number",
                "holder_name",
                "holder_dob",
                "product",
                "plan",
                "status",
                "sum_assured_paise",
                "start_date"
            ]
        );
        assert_eq!(
            required("Claim"),
            [
                "claim_number",
                "policy_number",
                "stage",
                "pending_documents",
                "filed_date",
                "updated_date"
            ]
        );
        assert_eq!(
            required("Premium"),
            ["policy_number", "due_date", "amount_paise", "status"]
        );
    }

    #[test]
    fn a_new_claim_is_sent_as_the_contract_describes_it() {
        use crate::engine::media_slot::{FileKind, MediaRef};
        let doc: serde_json::Value =
            serde_saphyr::from_str(include_str!("insurer-api.openapi.yaml")).unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();
        let claim = NewClaim {
            policy_number: "M-2025/778812".into(),
            loss_type: "accident".into(),
            loss_date: date,
            description: "A truck hit the car.".into(),
            filed_date: date,
            files: vec![ClaimFile {
                file: MediaRef {
                    sha256: "ab".repeat(32),
                    mime: "image/jpeg".into(),
                    kind: FileKind::Image,
                    file_name: Some("bumper.jpg".into()),
                    caption: Some("rear".into()),
                },
                contact_id: 7,
                url: "https://bot.example/files/claims/x?expires=1&sig=2".into(),
                link_expires_at: "2026-01-16T00:00:00+00:00".into(),
            }],
            contact_id: 7,
        };
        let sent = serde_json::to_value(&claim).unwrap();
        for (schema, value) in [("NewClaim", &sent), ("ClaimFile", &sent["files"][0])] {
            let s = &doc["components"]["schemas"][schema];
            let props = s["properties"].as_object().unwrap();
            let keys = value.as_object().unwrap();
            for key in keys.keys() {
                assert!(
                    props.contains_key(key),
                    "{schema}.{key} is not in the contract"
                );
            }
            for req in s["required"].as_array().unwrap() {
                assert!(
                    keys.contains_key(req.as_str().unwrap()),
                    "{schema} needs {req}"
                );
            }
        }
        assert!(sent.get("contact_id").is_none(), "internal ids stay here");
    }

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_closes_after_a_good_trial() {
        let b = CircuitBreaker::new("test", 3, Duration::from_millis(50));
        for _ in 0..2 {
            assert!(b.allow());
            b.record(false);
        }
        assert!(b.allow());
        b.record(true); // a success resets the count
        for _ in 0..3 {
            assert!(b.allow());
            b.record(false);
        }
        assert!(b.is_open());
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow(), "one trial after the cool-down");
        assert!(!b.allow(), "only one trial at a time");
        b.record(false);
        assert!(!b.allow(), "a failed trial opens it again");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow());
        b.record(true);
        assert!(b.allow() && b.allow(), "closed again");
    }
}
