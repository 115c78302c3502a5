//! The 24-hour window per contact and business number (issue 20): Meta opens a customer
//! service window between one user and one business phone number, so a message to the claims
//! line does not let the sales line send free-form text. `contact_windows` keeps the newest
//! inbound message time per (contact, number); `contacts.last_inbound_at` stays as the
//! newest on any number (the agents' timers read that: a message on any line is a sign of
//! life).
//!
//! Backfilled from the stored inbound messages: each (contact, number) pair's newest message
//! time, which is exactly what the ingest writes from now on. Messages whose webhook named no
//! number (Meta's always name one) belong to the deployment's first number, which the
//! migration does not know: a contact with only such messages gets no row, and the composer
//! reads `contacts.last_inbound_at` as their window on the first number.
//!
//! Policies may name the business number they belong to (`policies.number`, a phone number
//! id): premium reminders and notifications about the policy leave from it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ContactWindows::Table)
                    .col(big_integer(ContactWindows::ContactId))
                    .col(string(ContactWindows::PhoneNumberId))
                    .col(big_integer(ContactWindows::LastInboundAt))
                    .primary_key(
                        Index::create()
                            .col(ContactWindows::ContactId)
                            .col(ContactWindows::PhoneNumberId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ContactWindows::Table, ContactWindows::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO contact_windows (contact_id, phone_number_id, last_inbound_at) \
                 SELECT contact_id, phone_number_id, MAX(sent_at) FROM inbound_messages \
                 WHERE phone_number_id IS NOT NULL GROUP BY contact_id, phone_number_id",
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Policies::Table)
                    .add_column(string_null(Policies::Number))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Policies::Table)
                    .drop_column(Policies::Number)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(ContactWindows::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ContactWindows {
    Table,
    ContactId,
    PhoneNumberId,
    LastInboundAt,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Policies {
    Table,
    Number,
}
