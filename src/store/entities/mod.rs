//! sea-orm entities, one per table (see `migrations/`). Hand-written queries live beside them
//! in `store/`; every `*_at` field holds Unix milliseconds (UTC).

pub mod consent_log;
pub mod contact;
pub mod conversation;
pub mod handoff;
pub mod inbound_message;
pub mod message_status;
pub mod outbox;
