//! sea-orm entities, one per table (see `migrations/`). Hand-written queries live beside them
//! in `store/`; every `*_at` field holds Unix milliseconds (UTC).

pub mod contact;
pub mod inbound_message;
pub mod message_status;
pub mod message_template;
pub mod outbox;
