//! Contacts, inbound messages, delivery statuses and the outbox: what the webhook ingests and
//! what the sender drains.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Contacts::Table)
                    .col(big_pk_auto(Contacts::Id))
                    // Either identity may be missing: usernames hide the phone, old payloads lack the BSUID.
                    .col(string_null(Contacts::WaId).unique_key())
                    .col(string_null(Contacts::UserId).unique_key())
                    .col(string_null(Contacts::ProfileName))
                    // Start of the 24-hour window: the newest inbound message's WhatsApp timestamp.
                    .col(big_integer_null(Contacts::LastInboundAt))
                    // Which instance processes this contact's messages right now, and until when.
                    .col(string_null(Contacts::LeaseOwner))
                    .col(big_integer_null(Contacts::LeaseUntil))
                    .col(big_integer(Contacts::CreatedAt))
                    .col(big_integer(Contacts::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(InboundMessages::Table)
                    .col(big_pk_auto(InboundMessages::Id))
                    // The wamid: the unique key that makes a redelivered webhook a no-op.
                    .col(string_uniq(InboundMessages::Wamid))
                    .col(big_integer(InboundMessages::ContactId))
                    .col(string_null(InboundMessages::PhoneNumberId))
                    .col(string(InboundMessages::MsgType))
                    // Parsed content (JSON) and the message object as received; erasure empties both.
                    .col(text_null(InboundMessages::Content))
                    .col(text_null(InboundMessages::Raw))
                    .col(big_integer(InboundMessages::SentAt))
                    .col(big_integer(InboundMessages::ReceivedAt))
                    .col(big_integer_null(InboundMessages::ProcessedAt))
                    .col(integer(InboundMessages::Attempts).default(0))
                    .col(text_null(InboundMessages::LastError))
                    .foreign_key(
                        ForeignKey::create()
                            .from(InboundMessages::Table, InboundMessages::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_inbound_pending")
                    .table(InboundMessages::Table)
                    .col(InboundMessages::ContactId)
                    .col(InboundMessages::ProcessedAt)
                    .col(InboundMessages::SentAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(big_pk_auto(Outbox::Id))
                    .col(big_integer(Outbox::ContactId))
                    .col(big_integer_null(Outbox::InReplyTo))
                    // The OutboundMessage as JSON, exactly what will be sent.
                    .col(text(Outbox::Payload))
                    // queued → sent | failed | dead
                    .col(string(Outbox::State))
                    .col(integer(Outbox::Attempts).default(0))
                    .col(big_integer(Outbox::NextAttemptAt))
                    .col(string_null(Outbox::LeaseOwner))
                    .col(big_integer_null(Outbox::LeaseUntil))
                    .col(string_null(Outbox::Wamid).unique_key())
                    .col(big_integer_null(Outbox::ErrorCode))
                    .col(text_null(Outbox::LastError))
                    .col(big_integer(Outbox::CreatedAt))
                    .col(big_integer(Outbox::UpdatedAt))
                    .col(big_integer_null(Outbox::SentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Outbox::Table, Outbox::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_due")
                    .table(Outbox::Table)
                    .col(Outbox::State)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_contact")
                    .table(Outbox::Table)
                    .col(Outbox::ContactId)
                    .col(Outbox::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MessageStatuses::Table)
                    // One row per outbound wamid holding its furthest status: statuses arrive out
                    // of order and may repeat, and a status never moves backwards.
                    .col(string(MessageStatuses::Wamid).primary_key())
                    .col(string(MessageStatuses::Status))
                    .col(integer(MessageStatuses::Rank))
                    .col(big_integer(MessageStatuses::StatusAt))
                    .col(big_integer_null(MessageStatuses::ErrorCode))
                    .col(text_null(MessageStatuses::ErrorTitle))
                    .col(text_null(MessageStatuses::ErrorDetails))
                    .col(big_integer(MessageStatuses::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MessageStatuses::Table.into_iden(),
            Outbox::Table.into_iden(),
            InboundMessages::Table.into_iden(),
            Contacts::Table.into_iden(),
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
    WaId,
    UserId,
    ProfileName,
    LastInboundAt,
    LeaseOwner,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum InboundMessages {
    Table,
    Id,
    Wamid,
    ContactId,
    PhoneNumberId,
    MsgType,
    Content,
    Raw,
    SentAt,
    ReceivedAt,
    ProcessedAt,
    Attempts,
    LastError,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    ContactId,
    InReplyTo,
    Payload,
    State,
    Attempts,
    NextAttemptAt,
    LeaseOwner,
    LeaseUntil,
    Wamid,
    ErrorCode,
    LastError,
    CreatedAt,
    UpdatedAt,
    SentAt,
}

#[derive(DeriveIden)]
enum MessageStatuses {
    Table,
    Wamid,
    Status,
    Rank,
    StatusAt,
    ErrorCode,
    ErrorTitle,
    ErrorDetails,
    UpdatedAt,
}
