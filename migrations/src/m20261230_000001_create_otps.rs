//! One-time passwords (issue 19): one row per code sent, by the API or by the chat's identity
//! check. The code itself is never stored: only an HMAC of it keyed with `otp.secret`, and
//! (until it is sent) a sealed copy inside the outbox row that carries it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Otps::Table)
                    // `otp_` + 32 hex characters: random, so an id reveals nothing about others.
                    .col(string_len(Otps::Id, 64).primary_key())
                    .col(string_len(Otps::Purpose, 64))
                    // Keyed hash of the recipient's number (the consent log's hash), for the
                    // per-number limit; survives the contact's erasure like the consent log.
                    .col(string_len(Otps::PhoneHash, 64))
                    .col(big_integer(Otps::ContactId))
                    // HMAC-SHA256(otp.secret, id ":" code), hex.
                    .col(string_len(Otps::CodeHash, 64))
                    // pending | verified | locked (expired is read from expires_at).
                    .col(string_len(Otps::State, 16))
                    .col(integer(Otps::Attempts).default(0))
                    .col(integer(Otps::MaxAttempts))
                    .col(big_integer(Otps::CreatedAt))
                    .col(big_integer(Otps::ExpiresAt))
                    .col(big_integer_null(Otps::VerifiedAt))
                    .col(big_integer_null(Otps::OutboxId))
                    // api | chat
                    .col(string_len(Otps::Origin, 8))
                    // The chat path: who asked (a contact writing from another number) and for
                    // which policy; a verified code verifies that contact for that policy.
                    .col(big_integer_null(Otps::RequesterContactId))
                    .col(string_len_null(Otps::PolicyNumber, 64))
                    // The API's Idempotency-Key and the SHA-256 of the body it came with.
                    .col(string_len_null(Otps::IdempotencyKey, 128))
                    .col(string_len_null(Otps::RequestHash, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_otps_idempotency_key")
                    .table(Otps::Table)
                    .col(Otps::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The rate limits count recent codes per number and per purpose.
        manager
            .create_index(
                Index::create()
                    .name("ix_otps_phone_hash_created_at")
                    .table(Otps::Table)
                    .col(Otps::PhoneHash)
                    .col(Otps::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_otps_purpose_created_at")
                    .table(Otps::Table)
                    .col(Otps::Purpose)
                    .col(Otps::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // The chat's pending code of a contact.
        manager
            .create_index(
                Index::create()
                    .name("ix_otps_requester_contact_id")
                    .table(Otps::Table)
                    .col(Otps::RequesterContactId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Otps::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Otps {
    Table,
    Id,
    Purpose,
    PhoneHash,
    ContactId,
    CodeHash,
    State,
    Attempts,
    MaxAttempts,
    CreatedAt,
    ExpiresAt,
    VerifiedAt,
    OutboxId,
    Origin,
    RequesterContactId,
    PolicyNumber,
    IdempotencyKey,
    RequestHash,
}
