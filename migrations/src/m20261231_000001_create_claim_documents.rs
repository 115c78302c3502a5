//! Claims from the chat (issue 18): the embedded `claims` table learns what a first notice of
//! loss says (loss type, date, description) and which contact filed it, and
//! `claim_documents` lists the files sent for a claim. The bytes stay in the media store under
//! their hash; a row is what erasure finds a contact's claim files by, and what keeps a file
//! in the store after the chat's own media rows are purged by retention.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for col in [
            string_null(Claims::LossType),
            string_null(Claims::LossDate),
            text_null(Claims::Description),
            big_integer_null(Claims::IntimatedByContactId),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Claims::Table)
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(ClaimDocuments::Table)
                    .col(big_pk_auto(ClaimDocuments::Id))
                    .col(string(ClaimDocuments::ClaimNumber))
                    // Who sent it; erasure deletes the contact's rows (and then the files no
                    // other row names).
                    .col(big_integer(ClaimDocuments::ContactId))
                    // Lower-case hex SHA-256: the media store's key.
                    .col(string(ClaimDocuments::Sha256))
                    .col(string(ClaimDocuments::MimeType))
                    // `image` or `document` (the kinds a media step accepts).
                    .col(string(ClaimDocuments::Kind))
                    .col(string_null(ClaimDocuments::FileName))
                    .col(big_integer(ClaimDocuments::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ClaimDocuments::Table, ClaimDocuments::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_claim_documents_claim")
                    .table(ClaimDocuments::Table)
                    .col(ClaimDocuments::ClaimNumber)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_claim_documents_contact")
                    .table(ClaimDocuments::Table)
                    .col(ClaimDocuments::ContactId)
                    .to_owned(),
            )
            .await?;
        // The purge asks whether any row still needs a file, and the signed file route
        // whether a file belongs to a claim at all.
        manager
            .create_index(
                Index::create()
                    .name("idx_claim_documents_sha256")
                    .table(ClaimDocuments::Table)
                    .col(ClaimDocuments::Sha256)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ClaimDocuments::Table).to_owned())
            .await?;
        for col in [
            Claims::LossType,
            Claims::LossDate,
            Claims::Description,
            Claims::IntimatedByContactId,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Claims::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Claims {
    Table,
    LossType,
    LossDate,
    Description,
    IntimatedByContactId,
}

#[derive(DeriveIden)]
enum ClaimDocuments {
    Table,
    Id,
    ClaimNumber,
    ContactId,
    Sha256,
    MimeType,
    Kind,
    FileName,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}
