//! The embedded insurer data (policyholders, policies, claims, premium schedules, filled by
//! `insurebot import`) and the identity state of contacts (verifications, failed attempts and
//! lockouts, premium reminders asked for in chat).
//!
//! Natural keys (customer id, policy number, claim number, policy + due date) are unique and
//! are what rows reference: an import can upsert on them without looking surrogate ids up, and
//! re-importing a file updates rows instead of duplicating them. Dates are `YYYY-MM-DD` text
//! (they compare correctly as strings on both backends); amounts are integer paise.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Policyholders::Table)
                    .col(big_pk_auto(Policyholders::Id))
                    .col(string_uniq(Policyholders::CustomerId))
                    .col(string(Policyholders::Name))
                    .col(string(Policyholders::Dob))
                    .col(big_integer(Policyholders::CreatedAt))
                    .col(big_integer(Policyholders::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Policies::Table)
                    .col(big_pk_auto(Policies::Id))
                    .col(string_uniq(Policies::PolicyNumber))
                    .col(string(Policies::CustomerId))
                    // The WhatsApp number registered on the policy (digits with country code).
                    .col(string_null(Policies::Mobile))
                    .col(string(Policies::Product))
                    .col(string(Policies::Plan))
                    .col(string(Policies::Status))
                    .col(big_integer(Policies::SumAssured))
                    .col(string(Policies::StartDate))
                    .col(string_null(Policies::EndDate))
                    .col(string_null(Policies::DocumentUrl))
                    .col(big_integer(Policies::CreatedAt))
                    .col(big_integer(Policies::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Policies::Table, Policies::CustomerId)
                            .to(Policyholders::Table, Policyholders::CustomerId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_policies_mobile")
                    .table(Policies::Table)
                    .col(Policies::Mobile)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_policies_customer")
                    .table(Policies::Table)
                    .col(Policies::CustomerId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Claims::Table)
                    .col(big_pk_auto(Claims::Id))
                    .col(string_uniq(Claims::ClaimNumber))
                    .col(string(Claims::PolicyNumber))
                    .col(string(Claims::Stage))
                    .col(integer(Claims::PendingDocuments).default(0))
                    .col(big_integer_null(Claims::ClaimAmount))
                    .col(string(Claims::FiledDate))
                    .col(string(Claims::UpdatedDate))
                    .col(big_integer(Claims::CreatedAt))
                    .col(big_integer(Claims::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Claims::Table, Claims::PolicyNumber)
                            .to(Policies::Table, Policies::PolicyNumber)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_claims_policy")
                    .table(Claims::Table)
                    .col(Claims::PolicyNumber)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Premiums::Table)
                    .col(big_pk_auto(Premiums::Id))
                    .col(string(Premiums::PolicyNumber))
                    .col(string(Premiums::DueDate))
                    .col(big_integer(Premiums::Amount))
                    // due | paid
                    .col(string(Premiums::Status))
                    .col(string_null(Premiums::PaidDate))
                    .col(big_integer(Premiums::CreatedAt))
                    .col(big_integer(Premiums::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Premiums::Table, Premiums::PolicyNumber)
                            .to(Policies::Table, Policies::PolicyNumber)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The natural key of an instalment, and the upsert target of a re-import.
        manager
            .create_index(
                Index::create()
                    .name("uq_premiums_policy_due")
                    .table(Premiums::Table)
                    .col(Premiums::PolicyNumber)
                    .col(Premiums::DueDate)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdentityVerifications::Table)
                    .col(big_integer(IdentityVerifications::ContactId))
                    // No foreign key: with the HTTP source the policy lives in the insurer's system.
                    .col(string(IdentityVerifications::PolicyNumber))
                    // registered_number | dob
                    .col(string(IdentityVerifications::Method))
                    .col(big_integer(IdentityVerifications::VerifiedAt))
                    .primary_key(
                        Index::create()
                            .col(IdentityVerifications::ContactId)
                            .col(IdentityVerifications::PolicyNumber),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                IdentityVerifications::Table,
                                IdentityVerifications::ContactId,
                            )
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdentityAttempts::Table)
                    .col(big_integer(IdentityAttempts::ContactId).primary_key())
                    // Consecutive failed date-of-birth checks since the last success or lockout.
                    .col(integer(IdentityAttempts::FailedCount).default(0))
                    .col(big_integer_null(IdentityAttempts::LastFailedAt))
                    .col(big_integer_null(IdentityAttempts::LockedUntil))
                    .col(big_integer(IdentityAttempts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(IdentityAttempts::Table, IdentityAttempts::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PremiumReminders::Table)
                    .col(big_pk_auto(PremiumReminders::Id))
                    .col(big_integer(PremiumReminders::ContactId))
                    .col(string(PremiumReminders::PolicyNumber))
                    .col(string(PremiumReminders::DueDate))
                    .col(string(PremiumReminders::RemindOn))
                    .col(big_integer(PremiumReminders::CreatedAt))
                    .col(big_integer_null(PremiumReminders::SentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PremiumReminders::Table, PremiumReminders::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Asking twice for the same instalment moves the reminder instead of adding one.
        manager
            .create_index(
                Index::create()
                    .name("uq_premium_reminders")
                    .table(PremiumReminders::Table)
                    .col(PremiumReminders::ContactId)
                    .col(PremiumReminders::PolicyNumber)
                    .col(PremiumReminders::DueDate)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PremiumReminders::Table.into_iden(),
            IdentityAttempts::Table.into_iden(),
            IdentityVerifications::Table.into_iden(),
            Premiums::Table.into_iden(),
            Claims::Table.into_iden(),
            Policies::Table.into_iden(),
            Policyholders::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Policyholders {
    Table,
    Id,
    CustomerId,
    Name,
    Dob,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Policies {
    Table,
    Id,
    PolicyNumber,
    CustomerId,
    Mobile,
    Product,
    Plan,
    Status,
    SumAssured,
    StartDate,
    EndDate,
    DocumentUrl,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Claims {
    Table,
    Id,
    ClaimNumber,
    PolicyNumber,
    Stage,
    PendingDocuments,
    ClaimAmount,
    FiledDate,
    UpdatedDate,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Premiums {
    Table,
    Id,
    PolicyNumber,
    DueDate,
    Amount,
    Status,
    PaidDate,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum IdentityVerifications {
    Table,
    ContactId,
    PolicyNumber,
    Method,
    VerifiedAt,
}

#[derive(DeriveIden)]
enum IdentityAttempts {
    Table,
    ContactId,
    FailedCount,
    LastFailedAt,
    LockedUntil,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PremiumReminders {
    Table,
    Id,
    ContactId,
    PolicyNumber,
    DueDate,
    RemindOn,
    CreatedAt,
    SentAt,
}
