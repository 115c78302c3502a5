//! The sender: drains the outbox through the Cloud API client. Rows of different contacts go
//! out concurrently, rows of one contact in order. Temporary errors (timeouts, 5xx, 429,
//! throughput and pair-rate limits) are retried with exponential backoff and full jitter,
//! honouring Retry-After; permanent errors end the row with their code and reason; a row that
//! exhausts its attempts is dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::outbox::{self, AttemptResult};
use crate::config::OutboxSettings;
use crate::metrics::Metrics;
use crate::privacy::mask;
use crate::store::entities::{inbound_message, outbox as outbox_row};
use crate::store::now_ms;
use crate::whatsapp::client::{CloudApiClient, ErrorClass, SendError};
use crate::whatsapp::outbound::{OutboundMessage, Recipient};

/// Rows claimed per round.
const BATCH: u64 = 64;
/// How often the outbox is polled when nobody wakes the sender (retries come due, other
/// instances' rows).
const POLL: Duration = Duration::from_millis(250);

/// Drains the outbox. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    pub db: DatabaseConnection,
    pub client: Arc<CloudApiClient>,
    pub settings: OutboxSettings,
    pub metrics: Arc<Metrics>,
    pub instance_id: String,
    /// Notified whenever a row is queued, so the sender need not wait for the next poll.
    pub wake: Arc<Notify>,
    /// Mark the inbound message read once its reply is sent.
    pub mark_read: bool,
}

impl Sender {
    /// Sends until `stop` is cancelled; the round in flight finishes first.
    pub async fn run(self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let sent_any = match outbox::claim_due(&self.db, &self.instance_id, BATCH).await {
                Ok(rows) if rows.is_empty() => false,
                Ok(rows) => {
                    let mut round = JoinSet::new();
                    for row in rows {
                        let this = self.clone();
                        round.spawn(async move { this.send_row(row).await });
                    }
                    while round.join_next().await.is_some() {}
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox claim failed");
                    false
                }
            };
            if sent_any {
                // More may be due right away (the next row of each contact).
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn send_row(&self, row: outbox_row::Model) {
        let result = match serde_json::from_str::<OutboundMessage>(&row.payload) {
            Ok(message) => self.attempt(&row, &message).await,
            Err(e) => AttemptResult::Failed {
                code: None,
                reason: format!("unreadable payload: {e}"),
            },
        };
        let outcome = match &result {
            AttemptResult::Sent { .. } => "sent",
            AttemptResult::Retry { .. } => "retry",
            AttemptResult::Failed { .. } => "failed",
            AttemptResult::Dead { .. } => "dead",
        };
        Metrics::count(&self.metrics.outbound_sends, outcome);
        match &result {
            AttemptResult::Sent { .. } => tracing::debug!(outbox_id = row.id, "sent"),
            AttemptResult::Retry { reason, .. } => {
                tracing::info!(outbox_id = row.id, attempt = row.attempts + 1, %reason, "send will be retried")
            }
            AttemptResult::Failed { reason, code } | AttemptResult::Dead { reason, code } => {
                tracing::warn!(outbox_id = row.id, outcome, code = ?code, %reason, "send ended without delivery")
            }
        }
        if let Err(e) = outbox::record_attempt(&self.db, &row, &result).await {
            // The lease expires and the row is tried again: at worst a counted duplicate.
            tracing::error!(outbox_id = row.id, error = %e, "could not record send result");
        }
        if let (AttemptResult::Sent { .. }, Some(inbound_id), true) =
            (&result, row.in_reply_to, self.mark_read)
        {
            self.mark_inbound_read(inbound_id).await;
        }
    }

    async fn attempt(&self, row: &outbox_row::Model, message: &OutboundMessage) -> AttemptResult {
        let recipient = match &message.to {
            Recipient::Phone(p) | Recipient::UserId(p) => mask(p),
        };
        tracing::debug!(outbox_id = row.id, %recipient, "sending");
        match self.client.send(message).await {
            Ok(sent) => AttemptResult::Sent {
                wamid: sent.message_id,
            },
            Err(error) => self.classify(row, &error),
        }
    }

    fn classify(&self, row: &outbox_row::Model, error: &SendError) -> AttemptResult {
        let code = match error {
            SendError::Api { code, .. } => Some(*code),
            _ => None,
        };
        let reason = error.to_string();
        match error.class() {
            ErrorClass::Retryable { retry_after } => {
                let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
                if attempts >= self.settings.max_attempts {
                    return AttemptResult::Dead {
                        code,
                        reason: format!("gave up after {attempts} attempts: {reason}"),
                    };
                }
                let delay = backoff(&self.settings, attempts, retry_after);
                AttemptResult::Retry {
                    next_attempt_at: now_ms() + delay.as_millis() as i64,
                    code,
                    reason,
                }
            }
            // The template fallback for a closed window belongs to the composer; until a row
            // carries one, the reason is recorded instead of retrying a message that cannot go.
            ErrorClass::WindowClosed => AttemptResult::Failed {
                code,
                reason: format!("window_closed: {reason}"),
            },
            ErrorClass::Permanent => AttemptResult::Failed { code, reason },
        }
    }

    async fn mark_inbound_read(&self, inbound_id: i64) {
        let wamid = match inbound_message::Entity::find_by_id(inbound_id)
            .one(&self.db)
            .await
        {
            Ok(Some(row)) => row.wamid,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not look up message to mark read");
                return;
            }
        };
        // Best effort: a missing read receipt must never hold up or fail the conversation.
        if let Err(e) = self.client.mark_read(&wamid).await {
            tracing::info!(error = %e, "mark-as-read failed");
        }
    }
}

/// Exponential backoff with full jitter, never shorter than the server's Retry-After.
pub fn backoff(settings: &OutboxSettings, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = settings
        .retry_base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let cap = exp.min(settings.retry_max_ms).max(1);
    let jittered = Duration::from_millis(rand::rng().random_range(cap / 2..=cap));
    retry_after.map_or(jittered, |after| jittered.max(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let s = OutboxSettings {
            max_attempts: 8,
            retry_base_ms: 100,
            retry_max_ms: 1000,
        };
        for _ in 0..50 {
            let first = backoff(&s, 1, None);
            assert!(
                (50..=100).contains(&(first.as_millis() as u64)),
                "{first:?}"
            );
            let third = backoff(&s, 3, None);
            assert!(
                (200..=400).contains(&(third.as_millis() as u64)),
                "{third:?}"
            );
            let late = backoff(&s, 30, None);
            assert!(
                (500..=1000).contains(&(late.as_millis() as u64)),
                "{late:?}"
            );
            let told = backoff(&s, 1, Some(Duration::from_secs(5)));
            assert_eq!(told, Duration::from_secs(5));
        }
    }
}
