//! Database migrations for insurebot, one file per change, named
//! `mYYYYMMDD_HHMMSS_verb_noun.rs`. They run on SQLite and PostgreSQL alike; every `*_at`
//! column holds Unix milliseconds (UTC) so that comparisons are plain integer comparisons on
//! both backends.
#![forbid(unsafe_code)]

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_ingest;
mod m20261126_000002_create_dialogue;
mod m20261127_000001_create_insurer;
mod m20261201_000001_outbound_intents_and_templates;
mod m20261203_000001_create_console;
mod m20261204_000001_index_pending_messages;
mod m20261205_000001_extend_consent_log;
mod m20261210_000001_create_reminders_and_campaigns;
mod m20261226_000001_create_notification_requests;
mod m20261227_000001_index_outbox_contact_state;
mod m20261228_000001_index_unprocessed_by_contact;
mod m20261228_000002_index_queued_outbox_by_id;
mod m20261229_000001_create_transcript_views;
mod m20261229_000016_escalate_identity_lockouts;
mod m20261230_000001_create_flow_hops;
mod m20261230_000001_create_otps;
mod m20261230_000018_create_media_files;
mod m20261231_000001_create_claim_documents;
mod m20261231_000020_create_rate_slots;
mod m20261231_000021_create_outbound_media;
mod m20261231_000022_create_misunderstood_messages;
mod m20261231_000030_numbers_outbox_number;
mod m20261231_000031_contact_windows;
mod m20261231_000032_templates_per_waba;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_ingest::Migration),
            Box::new(m20261126_000002_create_dialogue::Migration),
            Box::new(m20261127_000001_create_insurer::Migration),
            Box::new(m20261201_000001_outbound_intents_and_templates::Migration),
            Box::new(m20261203_000001_create_console::Migration),
            Box::new(m20261204_000001_index_pending_messages::Migration),
            Box::new(m20261205_000001_extend_consent_log::Migration),
            Box::new(m20261210_000001_create_reminders_and_campaigns::Migration),
            Box::new(m20261226_000001_create_notification_requests::Migration),
            Box::new(m20261227_000001_index_outbox_contact_state::Migration),
            Box::new(m20261228_000001_index_unprocessed_by_contact::Migration),
            Box::new(m20261228_000002_index_queued_outbox_by_id::Migration),
            Box::new(m20261229_000001_create_transcript_views::Migration),
            Box::new(m20261229_000016_escalate_identity_lockouts::Migration),
            Box::new(m20261230_000001_create_flow_hops::Migration),
            Box::new(m20261230_000001_create_otps::Migration),
            Box::new(m20261230_000018_create_media_files::Migration),
            Box::new(m20261231_000001_create_claim_documents::Migration),
            Box::new(m20261231_000020_create_rate_slots::Migration),
            Box::new(m20261231_000021_create_outbound_media::Migration),
            Box::new(m20261231_000022_create_misunderstood_messages::Migration),
            Box::new(m20261231_000030_numbers_outbox_number::Migration),
            Box::new(m20261231_000031_contact_windows::Migration),
            Box::new(m20261231_000032_templates_per_waba::Migration),
        ]
    }
}
