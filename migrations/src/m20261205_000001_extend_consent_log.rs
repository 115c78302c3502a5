//! Consent and compliance (issue 6): the consent log gains the time the consent was given
//! according to its source (a form's timestamp, Meta's `user_preferences` timestamp) and a
//! free-text detail of the proof, and an index on the address hash, which is how the consent
//! of an erased contact (or of a number not yet seen) is found.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite accepts a single change per statement.
        let columns: [ColumnDef; 2] = [
            // When the consent was given according to its source (Unix ms); `created_at` is
            // when insurebot learned of it.
            big_integer_null(ConsentLog::OccurredAt),
            // Where the proof comes from (e.g. "website form v3, session 8f2c"), or the agent.
            text_null(ConsentLog::Detail),
        ];
        for col in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(ConsentLog::Table)
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_consent_address_hash")
                    .table(ConsentLog::Table)
                    .col(ConsentLog::AddressHash)
                    .col(ConsentLog::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_consent_address_hash")
                    .table(ConsentLog::Table)
                    .to_owned(),
            )
            .await?;
        for col in [ConsentLog::Detail, ConsentLog::OccurredAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ConsentLog::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ConsentLog {
    Table,
    Id,
    AddressHash,
    OccurredAt,
    Detail,
}
