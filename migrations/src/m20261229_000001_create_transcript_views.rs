//! The transcript view log (issue 16): who read whose conversation in the console, and when.
//! Insurance chats carry health and financial data, so every reading of a transcript is
//! recorded for the admins (DPDP Act accountability). A row holds ids and times only: the
//! person is the contact row, which erasure turns into an anonymous tombstone, so the audit
//! row survives erasure without keeping anything personal.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TranscriptViews::Table)
                    .col(big_pk_auto(TranscriptViews::Id))
                    // No foreign keys: an audit row must outlive whatever it points to, and
                    // must never block (or cascade from) a change to agents or contacts.
                    .col(big_integer(TranscriptViews::AgentId))
                    .col(big_integer(TranscriptViews::ContactId))
                    // The agent's role when reading (a supervisor may read any conversation).
                    .col(string(TranscriptViews::Role))
                    // The first and the latest reading of one sitting: opening the page starts
                    // one; the page's live refreshes extend it (see console::access).
                    .col(big_integer(TranscriptViews::FirstAt))
                    .col(big_integer(TranscriptViews::LastAt))
                    .col(integer(TranscriptViews::Views).default(1))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_transcript_views_agent_contact")
                    .table(TranscriptViews::Table)
                    .col(TranscriptViews::AgentId)
                    .col(TranscriptViews::ContactId)
                    .col(TranscriptViews::LastAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_transcript_views_contact")
                    .table(TranscriptViews::Table)
                    .col(TranscriptViews::ContactId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TranscriptViews::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum TranscriptViews {
    Table,
    Id,
    AgentId,
    ContactId,
    Role,
    FirstAt,
    LastAt,
    Views,
}
