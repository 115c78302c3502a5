//! Outbound messaging (issue 4): the outbox row keeps the composer's intent (free-form and
//! template alternatives) so the sender can decide again at send time, records what was decided
//! and why, and carries the furthest delivery status; `message_templates` is the template
//! registry that several instances share.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite accepts a single change per statement.
        let columns: [ColumnDef; 9] = [
            // reply | notification | agent | campaign (for the API, logs and the consent gate).
            string(Outbox::Purpose).default("reply").to_owned(),
            // A machine-readable reason when the row ended without delivery
            // (window_closed_no_template, template_not_approved, undeliverable, …).
            string_null(Outbox::Reason),
            // What actually went out: free_form or template.
            string_null(Outbox::SentAs),
            // The 131047 fallback was taken: the next attempt must be the template, and it is
            // taken once only.
            boolean(Outbox::Fallback).default(false).to_owned(),
            // The furthest delivery status seen (sent < delivered < read < played < failed).
            string_null(Outbox::DeliveryStatus),
            integer(Outbox::DeliveryRank).default(0).to_owned(),
            big_integer_null(Outbox::DeliveryAt),
            big_integer_null(Outbox::DeliveryErrorCode),
            text_null(Outbox::DeliveryError),
        ];
        for col in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Outbox::Table)
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(MessageTemplates::Table)
                    .col(big_pk_auto(MessageTemplates::Id))
                    .col(string(MessageTemplates::Name))
                    // As approved in WhatsApp Manager: `en`, `en_US`, `hi`, `ta`, …
                    .col(string(MessageTemplates::Language))
                    // MARKETING | UTILITY | AUTHENTICATION
                    .col(string(MessageTemplates::Category))
                    // APPROVED is the only status that may be sent.
                    .col(string(MessageTemplates::Status))
                    // Set by the insurer: may reach a contact who opted out (consent gate).
                    .col(boolean(MessageTemplates::Essential).default(false))
                    // POSITIONAL ({{1}}) or NAMED ({{policy_number}})
                    .col(string(MessageTemplates::ParameterFormat))
                    // JSON array of body parameter names, in order.
                    .col(text(MessageTemplates::Params))
                    // JSON array of buttons.
                    .col(text(MessageTemplates::Buttons))
                    .col(string_null(MessageTemplates::MetaId))
                    .col(text_null(MessageTemplates::Reason))
                    // file | sync | webhook | api_error: who set the status last.
                    .col(string(MessageTemplates::Source))
                    .col(big_integer(MessageTemplates::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_message_templates_name_language")
                    .table(MessageTemplates::Table)
                    .col(MessageTemplates::Name)
                    .col(MessageTemplates::Language)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MessageTemplates::Table).to_owned())
            .await?;
        for col in [
            Outbox::Purpose,
            Outbox::Reason,
            Outbox::SentAs,
            Outbox::Fallback,
            Outbox::DeliveryStatus,
            Outbox::DeliveryRank,
            Outbox::DeliveryAt,
            Outbox::DeliveryErrorCode,
            Outbox::DeliveryError,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Outbox::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Purpose,
    Reason,
    SentAs,
    Fallback,
    DeliveryStatus,
    DeliveryRank,
    DeliveryAt,
    DeliveryErrorCode,
    DeliveryError,
}

#[derive(DeriveIden)]
enum MessageTemplates {
    Table,
    Id,
    Name,
    Language,
    Category,
    Status,
    Essential,
    ParameterFormat,
    Params,
    Buttons,
    MetaId,
    Reason,
    Source,
    UpdatedAt,
}
