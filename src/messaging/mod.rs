//! Everything that leaves insurebot. Nothing sends directly:
//!
//! - [`composer`]: the one entry point. Callers queue an [`composer::Intent`] (free-form body
//!   for the 24-hour window, template fallback for outside it).
//! - [`gate`]: the consent gate the composer applies at queue time and again at send time.
//! - [`outbox`]: the persisted outbox; a message is a row before any HTTP call.
//! - [`sender`]: drains the outbox, deciding again at send time, with pacing, retries, the
//!   131047 template fallback and dead letters.
//! - [`handover`]: the pipeline's replies, decided in its transaction, handed to this
//!   instance's sender in memory instead of claimed back from the outbox.
//! - [`numbers`]: one line (client and pacing) per business number.
//! - [`pacing`]: the per-number and per-recipient token buckets.
//! - [`budget`]: the number's rate shared by every instance (PostgreSQL or Redis).
//! - [`inflight`]: how many sends are in flight: rate × the Cloud API's observed latency.
//! - [`templates`]: the template registry (file, `templates sync`, status webhooks).

pub mod budget;
pub mod composer;
pub mod gate;
pub mod handover;
pub mod inflight;
pub mod numbers;
pub mod outbox;
pub mod pacing;
pub mod sender;
pub mod templates;
