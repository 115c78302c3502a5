//! Notifications API (issue 5, part 4): one row per `Idempotency-Key` accepted by
//! `POST /api/v1/notifications`, written in the same transaction as the outbox row it queued,
//! so a repeat (or a concurrent race) with the same key returns the first answer and queues
//! nothing.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NotificationRequests::Table)
                    .col(big_pk_auto(NotificationRequests::Id))
                    // The caller's Idempotency-Key (1–128 printable ASCII characters).
                    .col(string_len_uniq(NotificationRequests::IdempotencyKey, 128))
                    // SHA-256 (hex) of the request body, to refuse a key reused for another body.
                    .col(string(NotificationRequests::RequestHash))
                    .col(string(NotificationRequests::Kind))
                    .col(big_integer_null(NotificationRequests::OutboxId))
                    // The HTTP status and JSON body of the first answer, returned to repeats.
                    .col(integer(NotificationRequests::StatusCode))
                    .col(text(NotificationRequests::Response))
                    .col(big_integer(NotificationRequests::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(NotificationRequests::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum NotificationRequests {
    Table,
    Id,
    IdempotencyKey,
    RequestHash,
    Kind,
    OutboxId,
    StatusCode,
    Response,
    CreatedAt,
}
