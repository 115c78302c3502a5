//! Integration tests: the real app on port 0 with a fresh database each (SQLite always,
//! PostgreSQL too when INSUREBOT_TEST_DATABASE_URL is set), a fake Cloud API on its own port,
//! and signed webhooks over real HTTP.

mod helpers;

mod browser;
mod campaign_console;
mod claim_letters;
mod claims;
mod consent;
mod consent_property;
mod console;
mod console_attach;
mod dialogue;
mod documents;
mod first_hour_chat;
mod flow_diagrams;
mod hardening_auth;
mod hardening_concurrency;
mod hardening_edge;
mod hardening_ingest;
mod hardening_privacy;
mod hardening_tests;
mod health;
mod ingest;
mod insurer;
mod media;
mod newcomer;
mod nlu_service;
mod notifications;
mod number_lines;
mod numbers;
mod openapi;
mod otp;
mod outbound;
mod pipeline;
mod postgres;
mod reminders;
mod scale;
mod sending;
mod shared_budget;
mod throughput;
mod understanding;
mod webhook;
mod windows;
