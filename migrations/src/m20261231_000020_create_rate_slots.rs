//! The rate slots (issue 20): the business number's sending rate shared by every instance
//! through the database. A number sending `rate` requests per second has `rate` rows; a
//! request takes the row whose last start is at least a window old and writes its own start
//! there, so no window ever holds more than `rate` starts, whichever instances made them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RateSlots::Table)
                    // The phone number id.
                    .col(string(RateSlots::Number))
                    // 0 ..< rate.
                    .col(integer(RateSlots::Slot))
                    // When the slot's last request started, in microseconds since the epoch,
                    // by the database's clock (one clock for every instance).
                    .col(big_integer(RateSlots::StartedUs))
                    .primary_key(Index::create().col(RateSlots::Number).col(RateSlots::Slot))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RateSlots::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RateSlots {
    Table,
    Number,
    Slot,
    StartedUs,
}
