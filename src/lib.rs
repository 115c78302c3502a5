//! insurebot: a self-hosted WhatsApp chatbot server for insurers.
//!
//! # Layout
//! - [`config`]: settings from defaults, `insurebot.toml` and `INSUREBOT_*` variables.
//! - [`whatsapp`]: the Cloud API boundary (signatures, wire types, client, fake server).
//! - [`engine`]: the pure dialogue engine: flow files, linter, fluent text, `step()`.
//! - [`dialogue`]: the runner around the engine: loads and saves conversations, performs effects.
//! - [`store`]: database connection, migrations, entities and queries.
//! - [`insurer`]: policy data (imported tables or the insurer's API), identity checks, flow actions.
//! - [`media`]: inbound photos and documents: the media store and the downloads into it.
//! - [`pipeline`]: hands stored inbound messages to the dialogue layer, one per contact at a time.
//! - [`messaging`]: the persisted outbox and the sender that drains it.
//! - [`http`]: every route and layer (webhook, health, metrics, console).
//! - [`console`]: the agents' web console (queue, hand-off, dashboard) and the flow simulator.
//! - [`consent`]: the consent log and the gate the composer applies; erasure and retention.
//! - [`reminders`]: premium reminders and campaigns: when to send, and never twice.
//! - [`otp`]: one-time passwords: the OTP API and the chat's code to a registered mobile.
//! - [`app`]: builds one instance; `main` and the integration tests start the same thing.
//! - [`codes`]: one-time codes: drawn, keyed-hashed, sealed for the outbox.
//! - [`chat`]: `insurebot chat`, the bot in a terminal through the real webhook path.
//! - [`metrics`]: Prometheus counters of one app instance.
//! - [`money`]: [`money::Paise`], the one type every amount is formatted through.
//! - [`phone`]: [`phone::PhoneNumber`], the one type every phone number is parsed into.
//! - [`telemetry`], [`privacy`]: logging, and masking personal data in it.
#![forbid(unsafe_code)]

pub mod app;
pub mod chat;
pub mod codes;
pub mod config;
pub mod consent;
pub mod console;
pub mod dialogue;
pub mod engine;
pub mod http;
pub mod insurer;
pub mod media;
pub mod messaging;
pub mod metrics;
pub mod money;
pub mod otp;
pub mod phone;
pub mod pipeline;
pub mod privacy;
pub mod reminders;
pub mod store;
pub mod telemetry;
pub mod whatsapp;
