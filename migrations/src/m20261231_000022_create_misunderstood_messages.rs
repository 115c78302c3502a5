//! Misunderstood messages (issue 22): free text the bot could not place, masked (numbers and
//! addresses replaced) before it is stored, with the flow state it came in at and the
//! conversation's language, so flow authors see on the dashboard which phrases to add. No
//! contact: the list is for improving phrase lists, not about people.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MisunderstoodMessages::Table)
                    .col(big_pk_auto(MisunderstoodMessages::Id))
                    // Masked by privacy::mask_text before it gets here.
                    .col(string(MisunderstoodMessages::Text))
                    // `flow.state`, or `-` between conversations.
                    .col(string(MisunderstoodMessages::Place))
                    .col(string(MisunderstoodMessages::Language))
                    .col(big_integer(MisunderstoodMessages::At))
                    .to_owned(),
            )
            .await?;
        // The dashboard reads the last 14 days.
        manager
            .create_index(
                Index::create()
                    .name("idx_misunderstood_messages_at")
                    .table(MisunderstoodMessages::Table)
                    .col(MisunderstoodMessages::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MisunderstoodMessages::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MisunderstoodMessages {
    Table,
    Id,
    Text,
    Place,
    Language,
    At,
}
