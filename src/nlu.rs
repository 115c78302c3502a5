//! The optional external understanding service: one HTTP client speaking Rasa's
//! `POST /model/parse` shape, behind a timeout and the insurer API's circuit breaker. It
//! owns the wire contract and turns every failure into `None`, so the engine's built-in
//! matcher answers whenever the service is slow, down or talking nonsense.
//!
//! Request: `{"text": "...", "language": "hi", "expected_intents": ["claim_status", ...]}`
//! (Rasa reads `text` and ignores the rest). Answer: `{"intent": {"name", "confidence"},
//! "intent_ranking": [{"name", "confidence"}, ...]}`; `intent_ranking` is used when present,
//! `intent` alone otherwise. Intent names are flow ids.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::NluSettings;
use crate::engine::Ranking;
use crate::insurer::http_source::CircuitBreaker;

/// The client of `[nlu] url`.
pub struct NluClient {
    client: reqwest::Client,
    url: reqwest::Url,
    breaker: CircuitBreaker,
}

#[derive(Serialize)]
struct ParseRequest<'a> {
    text: &'a str,
    language: &'a str,
    expected_intents: &'a [String],
}

#[derive(Deserialize)]
struct ParseResponse {
    intent: Option<Scored>,
    #[serde(default)]
    intent_ranking: Vec<Scored>,
}

#[derive(Deserialize)]
struct Scored {
    name: Option<String>,
    confidence: f32,
}

impl NluClient {
    /// The client of `settings`, or `None` when no URL is set (the service is off).
    ///
    /// # Errors
    /// When the URL does not parse or the HTTP client cannot be built.
    pub fn new(settings: &NluSettings) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.url else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("nlu.url '{url}' is not a URL: {e}"))?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Some(Self {
            client,
            url,
            breaker: CircuitBreaker::new(
                "understanding service",
                settings.breaker_failures,
                Duration::from_millis(settings.breaker_cooldown_ms),
            ),
        }))
    }

    /// What the service makes of `text`; `None` on any failure or while the circuit is open.
    /// The text is never logged.
    pub async fn parse(
        &self,
        text: &str,
        language: &str,
        expected_intents: &[String],
    ) -> Option<Ranking> {
        if !self.breaker.allow() {
            return None;
        }
        let result = self.call(text, language, expected_intents).await;
        self.breaker.record(result.is_ok());
        match result {
            Ok(ranking) => Some(ranking),
            Err(problem) => {
                tracing::warn!(%problem, "understanding service failed; built-in matcher answers");
                None
            }
        }
    }

    async fn call(
        &self,
        text: &str,
        language: &str,
        expected_intents: &[String],
    ) -> Result<Ranking, String> {
        let response = self
            .client
            .post(self.url.clone())
            .json(&ParseRequest {
                text,
                language,
                expected_intents,
            })
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    "unreachable".to_owned()
                }
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let body: ParseResponse = response
            .json()
            .await
            .map_err(|_| "answer is not the /model/parse shape".to_owned())?;
        let scored = if body.intent_ranking.is_empty() {
            body.intent.into_iter().collect()
        } else {
            body.intent_ranking
        };
        Ok(Ranking(
            scored
                .into_iter()
                .filter_map(|s| Some((s.name?, s.confidence)))
                .collect(),
        ))
    }
}
