//! The WhatsApp Cloud API boundary: wire types for webhooks (`inbound`) and sends
//! (`outbound`), the HTTP client that sends (`client`), and a fake Cloud API (`fake`) used in
//! sandbox mode and by tests.
//!
//! Nothing here knows about conversations, consent or the database; it only speaks Meta's
//! protocol. Reference: `whatsapp-cloud-api.md` in the shared docs.

pub mod client;
pub mod fake;
pub mod inbound;
pub mod outbound;
pub mod signature;
