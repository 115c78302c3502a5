//! Prometheus metrics of one app instance, served at `/metrics`. Each app owns its registry
//! (no global recorder), so several apps in one test process keep separate counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Every counter and histogram the service exports.
pub struct Metrics {
    registry: Registry,
    /// Webhook POSTs by outcome: accepted, missing_signature, bad_signature, bad_envelope,
    /// too_large, store_error, store_timeout (the database did not take it within
    /// `webhook.store_timeout_ms`), overloaded.
    pub webhooks: Family<OutcomeLabel, Counter>,
    /// Webhooks waiting to be stored right now (kept by the ingest queue); past
    /// `webhook.max_queued` they are refused with 503, so this is the one to alert on.
    pub webhooks_waiting: Gauge,
    /// Webhook items refused although the rest of their webhook was stored, by reason:
    /// message_id_too_long, status_id_too_long, sender_id_too_long (see `webhook.max_id_bytes`),
    /// unknown_number (a message to a business number not configured).
    pub webhook_items_refused: Family<ReasonLabel, Counter>,
    /// Webhook values stored other than as sent, by reason: nul_character (a string whose NUL
    /// characters became U+FFFD), time_not_positive, time_out_of_range, time_ahead (a
    /// timestamp replaced by the receive time).
    pub webhook_values_replaced: Family<ReasonLabel, Counter>,
    /// Inbound messages stored for the first time.
    pub inbound_messages: Counter,
    /// Inbound messages whose wamid was already stored (redeliveries).
    pub duplicate_messages: Counter,
    /// Delivery statuses received, by outcome: applied or ignored (stale/repeat).
    pub statuses: Family<OutcomeLabel, Counter>,
    /// Seconds from a message's arrival at the webhook to the end of its processing.
    pub processing_latency: Histogram,
    /// Inbound messages whose handler failed, by outcome: retried or abandoned.
    pub processing_failures: Family<OutcomeLabel, Counter>,
    /// Outbound send attempts by result: sent, retry, failed, dead.
    pub outbound_sends: Family<OutcomeLabel, Counter>,
    /// Replies handed from the pipeline to the sender in memory, by outcome: sent on their
    /// queue-time decision (`on_queue_decision`), or `released` to the outbox (decided again
    /// when claimed: the decision went stale while the sender was saturated).
    pub handoffs: Family<OutcomeLabel, Counter>,
    /// API calls refused at the token check, by outcome: unauthorized (a wrong token) or
    /// throttled (429: too many wrong tokens from the address).
    pub api_refusals: Family<OutcomeLabel, Counter>,
    /// Console login attempts by outcome: ok, wrong (password checked and wrong, or no such
    /// agent), limited (429: too many failures), busy (503: every password check place taken).
    pub console_logins: Family<OutcomeLabel, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("insurebot");
        let webhooks = Family::<OutcomeLabel, Counter>::default();
        registry.register("webhooks", "Webhook requests by outcome", webhooks.clone());
        let webhooks_waiting = Gauge::default();
        registry.register(
            "webhooks_waiting",
            "Webhooks waiting to be stored",
            webhooks_waiting.clone(),
        );
        let webhook_items_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "webhook_items_refused",
            "Webhook items refused (the rest of the webhook stored), by reason",
            webhook_items_refused.clone(),
        );
        let webhook_values_replaced = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "webhook_values_replaced",
            "Webhook values stored other than as sent (NUL characters, unusable timestamps), by reason",
            webhook_values_replaced.clone(),
        );
        let inbound_messages = Counter::default();
        registry.register(
            "inbound_messages",
            "Inbound messages stored",
            inbound_messages.clone(),
        );
        let duplicate_messages = Counter::default();
        registry.register(
            "duplicate_messages",
            "Inbound messages already stored (redelivered webhooks)",
            duplicate_messages.clone(),
        );
        let statuses = Family::<OutcomeLabel, Counter>::default();
        registry.register("statuses", "Delivery statuses by outcome", statuses.clone());
        let processing_latency = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register(
            "processing_latency_seconds",
            "Time from webhook arrival to the end of processing",
            processing_latency.clone(),
        );
        let processing_failures = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "processing_failures",
            "Inbound messages whose processing failed",
            processing_failures.clone(),
        );
        let outbound_sends = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "outbound_sends",
            "Outbound send attempts by result",
            outbound_sends.clone(),
        );
        let handoffs = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "handoffs",
            "Replies handed to the sender in memory, by outcome",
            handoffs.clone(),
        );
        let api_refusals = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "api_refusals",
            "API calls refused at the token check, by outcome",
            api_refusals.clone(),
        );
        let console_logins = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "console_logins",
            "Console login attempts by outcome",
            console_logins.clone(),
        );
        Self {
            registry,
            webhooks,
            webhooks_waiting,
            webhook_items_refused,
            webhook_values_replaced,
            inbound_messages,
            duplicate_messages,
            statuses,
            processing_latency,
            processing_failures,
            outbound_sends,
            handoffs,
            api_refusals,
            console_logins,
        }
    }

    /// Counts one event in a labelled family.
    pub fn count(family: &Family<OutcomeLabel, Counter>, outcome: &'static str) {
        family.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
