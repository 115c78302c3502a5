//! Outbound files (issue 18): `outbound_media`, one row per file sent to a contact (a policy
//! schedule, an agent's attachment), which erasure and retention find the contact's sent files
//! by; and `media_uploads`, the media id Meta gave each uploaded file, per file hash and
//! business number, so one file is uploaded once per 30 days and not once per send, across
//! restarts and instances.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OutboundMedia::Table)
                    .col(big_pk_auto(OutboundMedia::Id))
                    .col(big_integer(OutboundMedia::ContactId))
                    // `policy_document` or `agent`.
                    .col(string(OutboundMedia::Source))
                    // `image` or `document`.
                    .col(string(OutboundMedia::Kind))
                    // Lower-case hex SHA-256: the media store's key.
                    .col(string(OutboundMedia::Sha256))
                    .col(string(OutboundMedia::MimeType))
                    .col(string_null(OutboundMedia::Filename))
                    .col(big_integer(OutboundMedia::SizeBytes))
                    .col(big_integer(OutboundMedia::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OutboundMedia::Table, OutboundMedia::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbound_media_contact")
                    .table(OutboundMedia::Table)
                    .col(OutboundMedia::ContactId)
                    .to_owned(),
            )
            .await?;
        // Erasure and retention ask whether any other row still needs a file.
        manager
            .create_index(
                Index::create()
                    .name("idx_outbound_media_sha256")
                    .table(OutboundMedia::Table)
                    .col(OutboundMedia::Sha256)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MediaUploads::Table)
                    .col(big_pk_auto(MediaUploads::Id))
                    .col(string(MediaUploads::Sha256))
                    .col(string(MediaUploads::PhoneNumberId))
                    .col(string(MediaUploads::MediaId))
                    // When the id stops being used (a day before Meta forgets the upload).
                    .col(big_integer(MediaUploads::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        // One id per file and number: a second upload (a race between instances) replaces it.
        manager
            .create_index(
                Index::create()
                    .name("idx_media_uploads_file_number")
                    .table(MediaUploads::Table)
                    .col(MediaUploads::Sha256)
                    .col(MediaUploads::PhoneNumberId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MediaUploads::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(OutboundMedia::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OutboundMedia {
    Table,
    Id,
    ContactId,
    Source,
    Kind,
    Sha256,
    MimeType,
    Filename,
    SizeBytes,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MediaUploads {
    Table,
    Id,
    Sha256,
    PhoneNumberId,
    MediaId,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}
