//! From the webhook to the dialogue: what arrives is stored durably and then handed on, one
//! message at a time per contact.
//!
//! - [`store`]: the durable, idempotent ingest of a webhook's messages and statuses, in the
//!   transaction the webhook's `200` waits for.
//! - [`pipeline`]: hands each stored inbound message to the dialogue layer, one per contact at a
//!   time, under the per-contact lease every writer of a conversation takes.
//! - [`echo`]: the echo handler (`dialogue = "echo"`), for diagnostics and the pipeline's tests.

pub mod echo;
pub mod pipeline;
pub mod store;
