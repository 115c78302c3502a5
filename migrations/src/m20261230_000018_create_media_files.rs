//! The media file table (issue 18): one row per inbound media message once the pipeline has
//! fetched it (or given up), linking the message and its contact to the stored file's hash,
//! type and size. The bytes live in the media store under their hash; a row is what erasure
//! and retention find a contact's files by.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MediaFiles::Table)
                    .col(big_pk_auto(MediaFiles::Id))
                    // One outcome per message: a second fetch of the same message (another
                    // instance, a retry after a crash) cannot add a second row.
                    .col(big_integer_uniq(MediaFiles::InboundMessageId))
                    .col(big_integer(MediaFiles::ContactId))
                    // `image`, `audio`, `video`, `document` or `sticker`, as the webhook said.
                    .col(string(MediaFiles::Kind))
                    // `stored` or `failed`.
                    .col(string(MediaFiles::State))
                    // Why it failed: `too_large`, `unavailable`, `hash_mismatch`, `type_refused`.
                    .col(string_null(MediaFiles::Failure))
                    // Lower-case hex SHA-256 of the stored bytes: the store's key.
                    .col(string_null(MediaFiles::Sha256))
                    // Detected from the bytes, not taken from the sender.
                    .col(string_null(MediaFiles::MimeType))
                    .col(big_integer_null(MediaFiles::SizeBytes))
                    .col(big_integer(MediaFiles::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MediaFiles::Table, MediaFiles::InboundMessageId)
                            .to(InboundMessages::Table, InboundMessages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(MediaFiles::Table, MediaFiles::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_media_files_contact")
                    .table(MediaFiles::Table)
                    .col(MediaFiles::ContactId)
                    .to_owned(),
            )
            .await?;
        // Erasure and retention ask whether any other row still needs a file.
        manager
            .create_index(
                Index::create()
                    .name("idx_media_files_sha256")
                    .table(MediaFiles::Table)
                    .col(MediaFiles::Sha256)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MediaFiles::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MediaFiles {
    Table,
    Id,
    InboundMessageId,
    ContactId,
    Kind,
    State,
    Failure,
    Sha256,
    MimeType,
    SizeBytes,
    CreatedAt,
}

#[derive(DeriveIden)]
enum InboundMessages {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}
