//! insurebot: a self-hosted WhatsApp chatbot server for insurers.
//!
//! # Layout
//! From the bottom up; a module imports only modules listed below it (`tests/layering.py`
//! fails on an import circle, and on `config` or `engine` importing anything but a leaf).
//!
//! Leaves, importing nothing else of the crate:
//! - [`whatsapp`]: the Cloud API boundary (signatures, wire types, client, fake server).
//! - [`phone`]: [`phone::PhoneNumber`], the one type every phone number is parsed into.
//! - [`money`]: [`money::Paise`], the one type every amount is formatted through.
//! - [`clock`]: [`clock::Clock`], where "now" comes from (tests move a [`clock::ManualClock`]).
//! - [`codes`]: one-time codes: drawn, keyed-hashed, sealed for the outbox.
//! - [`metrics`]: Prometheus counters of one app instance.
//! - [`privacy`]: masking personal data in logs.
//!
//! The floor:
//! - [`config`]: settings from defaults, `insurebot.toml` and `INSUREBOT_*` variables, every
//!   section (reminders, OTP, media, office hours) included.
//! - [`engine`]: the pure dialogue engine: flow files, linter, fluent text, `step()`.
//! - [`telemetry`]: the logging set-up (format and filter from the settings).
//!
//! Domain and persistence:
//! - [`store`]: database connection, migrations, entities and shared queries.
//! - [`consent`]: the consent log (derived state, hashed addresses); erasure and retention.
//! - [`messaging`]: everything that leaves: the composer, the consent gate it applies, the
//!   persisted outbox, the sender that drains it, the in-memory handover, template registry.
//! - [`otp`]: one-time passwords: codes for the OTP API and the chat's identity check.
//! - [`insurer`]: policy data (imported tables or the insurer's API), identity checks, flow actions.
//! - [`media`]: inbound photos and documents: the media store and the downloads into it.
//! - [`ingest`]: the webhook's durable ingest, and the pipeline that hands each stored message
//!   to the dialogue layer, one per contact at a time.
//! - [`nlu`]: the optional external understanding service (Rasa's `/model/parse` shape),
//!   asked before a turn's transaction; the built-in matcher answers when it fails.
//! - [`handoff`]: the hand-off to a person: the `handoff` table and its rules (request,
//!   cancel, take, transfer, close, requeue), in the caller's transaction.
//! - [`dialogue`]: the runner around the engine: the message handler, the effects, the
//!   timers, the conversation row.
//! - [`reminders`]: premium reminders and campaigns: when to send, and never twice.
//! - [`notifications`]: what the insurer's systems ask to tell a policyholder (a claim update,
//!   a premium due): the kinds, the recipient, the text, queued once per idempotency key.
//!
//! The surfaces:
//! - [`http`]: every route and layer: webhook, health, metrics, the API (`/api/v1`, campaigns,
//!   OTP, notifications, consent) and the agents' console (`http::console`).
//! - [`app`]: builds one instance; `main` and the integration tests start the same thing.
//! - [`cli`]: the command line's commands (agents, campaigns and reminders).
//! - [`chat`]: `insurebot chat`, the bot in a terminal through the real webhook path.
#![forbid(unsafe_code)]

pub mod app;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod codes;
pub mod config;
pub mod consent;
pub mod dialogue;
pub mod engine;
pub mod handoff;
pub mod http;
pub mod ingest;
pub mod insurer;
pub mod media;
pub mod messaging;
pub mod metrics;
pub mod money;
pub mod nlu;
pub mod notifications;
pub mod otp;
pub mod phone;
pub mod privacy;
pub mod reminders;
pub mod store;
pub mod telemetry;
pub mod whatsapp;
