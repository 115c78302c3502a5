//! insurebot: a self-hosted WhatsApp chatbot server for insurers.
//!
//! # Layout
//! - [`config`]: settings from defaults, `insurebot.toml` and `INSUREBOT_*` variables.
//! - [`whatsapp`]: the Cloud API boundary (signatures, wire types, client, fake server).
//! - [`store`]: database connection, migrations, entities and queries.
//! - [`pipeline`]: hands stored inbound messages to the dialogue layer, one per contact at a time.
//! - [`metrics`]: Prometheus counters of one app instance.
#![forbid(unsafe_code)]

pub mod config;
pub mod metrics;
pub mod pipeline;
pub mod store;
pub mod whatsapp;
pub mod messaging;
pub mod privacy;
