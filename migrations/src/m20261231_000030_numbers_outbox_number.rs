//! Several business numbers (issue 20): each outbox row records the number it leaves from,
//! `phone_number_id`, and so does each campaign (the number its messages leave from). A reply takes the number its inbound message came to
//! (`inbound_messages.phone_number_id`, stored since the ingest was written); a notification,
//! campaign or OTP the number its caller chose. NULL (rows queued before this migration, or
//! naming none): the deployment's first number.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(string_null(Outbox::PhoneNumberId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Campaigns::Table)
                    .add_column(string_null(Campaigns::PhoneNumberId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Campaigns::Table)
                    .drop_column(Campaigns::PhoneNumberId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::PhoneNumberId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    PhoneNumberId,
}

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    PhoneNumberId,
}
