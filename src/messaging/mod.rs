//! Everything that leaves insurebot: the persisted outbox and the sender that drains it.
//! Nothing sends directly; a message is an outbox row before any HTTP call.

pub mod outbox;
pub mod sender;
