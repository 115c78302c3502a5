//! An index for the pipeline's sweep ("which contacts have unprocessed messages?"): the
//! existing index leads with the contact, so the sweep scanned every message ever received.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_inbound_unprocessed")
                    .table(InboundMessages::Table)
                    .col(InboundMessages::ProcessedAt)
                    .col(InboundMessages::ContactId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_inbound_unprocessed")
                    .table(InboundMessages::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum InboundMessages {
    Table,
    ProcessedAt,
    ContactId,
}
