//! Identity lockouts per policy and escalating (issue 16): failed date-of-birth checks are
//! also counted per policy number, whichever WhatsApp numbers they come from, and both
//! counters remember how many lockouts followed one another, so a repeat lasts longer.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Lockouts in the current series (0: none yet); the next lasts the step after it.
        manager
            .alter_table(
                Table::alter()
                    .table(IdentityAttempts::Table)
                    .add_column(integer(IdentityAttempts::Lockouts).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IdentityPolicyAttempts::Table)
                    // Normalised as typed, known or not: locking an unknown number the same
                    // way keeps lockouts from telling which policy numbers exist.
                    .col(string(IdentityPolicyAttempts::PolicyNumber).primary_key())
                    // Failed checks in a row (counted before the check, see `identity`).
                    .col(integer(IdentityPolicyAttempts::FailedCount).default(0))
                    .col(big_integer_null(IdentityPolicyAttempts::LastFailedAt))
                    .col(big_integer_null(IdentityPolicyAttempts::LockedUntil))
                    .col(integer(IdentityPolicyAttempts::Lockouts).default(0))
                    .col(big_integer(IdentityPolicyAttempts::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(IdentityPolicyAttempts::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(IdentityAttempts::Table)
                    .drop_column(IdentityAttempts::Lockouts)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum IdentityAttempts {
    Table,
    Lockouts,
}

#[derive(DeriveIden)]
enum IdentityPolicyAttempts {
    Table,
    PolicyNumber,
    FailedCount,
    LastFailedAt,
    LockedUntil,
    Lockouts,
    UpdatedAt,
}
