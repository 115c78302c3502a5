//! Conversation state per contact, the hand-off queue, and the append-only consent log.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Conversations::Table)
                    .col(big_integer(Conversations::ContactId).primary_key())
                    // The engine's `Conversation` as JSON; the columns beside it are copies
                    // for queries (which flow, which mode) and never the source of truth.
                    .col(text(Conversations::State))
                    .col(string_null(Conversations::Flow))
                    .col(string_null(Conversations::FlowState))
                    .col(string_null(Conversations::FlowVersion))
                    .col(string(Conversations::Mode))
                    .col(string(Conversations::Language))
                    .col(big_integer(Conversations::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Conversations::Table, Conversations::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Handoffs::Table)
                    .col(big_pk_auto(Handoffs::Id))
                    .col(big_integer(Handoffs::ContactId))
                    .col(text(Handoffs::Reason))
                    .col(string(Handoffs::Language))
                    // waiting → taken → closed (or cancelled by the contact)
                    .col(string(Handoffs::State))
                    .col(big_integer_null(Handoffs::AgentId))
                    .col(big_integer(Handoffs::RequestedAt))
                    .col(big_integer_null(Handoffs::TakenAt))
                    .col(big_integer_null(Handoffs::ClosedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Handoffs::Table, Handoffs::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_handoffs_state")
                    .table(Handoffs::Table)
                    .col(Handoffs::State)
                    .col(Handoffs::RequestedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ConsentLog::Table)
                    .col(big_pk_auto(ConsentLog::Id))
                    // Nullable so erasure can detach the person while the log keeps honouring
                    // the opt-out through the one-way hash of the number.
                    .col(big_integer_null(ConsentLog::ContactId))
                    .col(string_null(ConsentLog::AddressHash))
                    // opt_out | opt_in
                    .col(string(ConsentLog::Change))
                    // all | service | marketing
                    .col(string(ConsentLog::Scope))
                    // keyword | button | user_preferences | api | agent | error_131050
                    .col(string(ConsentLog::Source))
                    // The exact text the contact was shown or sent.
                    .col(text_null(ConsentLog::ShownText))
                    .col(big_integer(ConsentLog::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ConsentLog::Table, ConsentLog::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_consent_contact")
                    .table(ConsentLog::Table)
                    .col(ConsentLog::ContactId)
                    .col(ConsentLog::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ConsentLog::Table.into_iden(),
            Handoffs::Table.into_iden(),
            Conversations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    ContactId,
    State,
    Flow,
    FlowState,
    FlowVersion,
    Mode,
    Language,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Handoffs {
    Table,
    Id,
    ContactId,
    Reason,
    Language,
    State,
    AgentId,
    RequestedAt,
    TakenAt,
    ClosedAt,
}

#[derive(DeriveIden)]
enum ConsentLog {
    Table,
    Id,
    ContactId,
    AddressHash,
    Change,
    Scope,
    Source,
    ShownText,
    CreatedAt,
}
