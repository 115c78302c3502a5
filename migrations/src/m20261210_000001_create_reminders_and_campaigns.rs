//! Premium reminders and campaigns (issue 8).
//!
//! Every proactive message has a row whose unique key says "this was decided once":
//! `reminder_sends` (one per instalment, due date and offset, ever) and `campaign_recipients`
//! (one per campaign and contact). The row is written in the same transaction as the outbox
//! row it queues, so a crash leaves both or neither, and a restart, a second instance or a
//! catch-up run can never queue a second copy. `reminder_runs` is the lease that lets one
//! instance do a day's scan while the others wait (the unique keys stay the real guarantee).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The scan looks instalments up by due date; without this it reads the whole table.
        manager
            .create_index(
                Index::create()
                    .name("idx_premiums_due_date")
                    .table(Premiums::Table)
                    .col(Premiums::DueDate)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReminderRuns::Table)
                    // `YYYY-MM-DD` in the scheduler's timezone.
                    .col(string(ReminderRuns::RunDate).primary_key())
                    .col(string_null(ReminderRuns::LeaseOwner))
                    .col(big_integer_null(ReminderRuns::LeaseUntil))
                    .col(big_integer(ReminderRuns::StartedAt))
                    .col(big_integer_null(ReminderRuns::FinishedAt))
                    .col(integer(ReminderRuns::Queued).default(0))
                    .col(integer(ReminderRuns::Skipped).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReminderSends::Table)
                    .col(big_pk_auto(ReminderSends::Id))
                    .col(string(ReminderSends::PolicyNumber))
                    .col(string(ReminderSends::DueDate))
                    // Days before the due date (negative: days after, in the grace period);
                    // `later` reminders asked for in chat use the premium_reminders row id
                    // through `kind` instead.
                    .col(integer(ReminderSends::OffsetDays))
                    // scheduled | later
                    .col(string(ReminderSends::Kind))
                    .col(big_integer_null(ReminderSends::ContactId))
                    .col(big_integer_null(ReminderSends::OutboxId))
                    // queued | skipped
                    .col(string(ReminderSends::State))
                    .col(string_null(ReminderSends::Reason))
                    .col(string(ReminderSends::RunDate))
                    .col(big_integer(ReminderSends::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_reminder_sends")
                    .table(ReminderSends::Table)
                    .col(ReminderSends::PolicyNumber)
                    .col(ReminderSends::DueDate)
                    .col(ReminderSends::OffsetDays)
                    .col(ReminderSends::Kind)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Campaigns::Table)
                    .col(big_pk_auto(Campaigns::Id))
                    .col(string(Campaigns::Name))
                    .col(string(Campaigns::Template))
                    .col(string(Campaigns::Language))
                    // draft | running | paused | cancelled | completed
                    .col(string(Campaigns::State))
                    .col(integer(Campaigns::RatePerSecond))
                    .col(big_integer(Campaigns::StartAt))
                    // csv | filter, and what it was (file name or the filter as JSON).
                    .col(string(Campaigns::AudienceKind))
                    .col(text(Campaigns::AudienceDetail))
                    // The instance that drives the campaign now (one at a time keeps the rate).
                    .col(string_null(Campaigns::LeaseOwner))
                    .col(big_integer_null(Campaigns::LeaseUntil))
                    .col(big_integer(Campaigns::CreatedAt))
                    .col(big_integer(Campaigns::UpdatedAt))
                    .col(big_integer_null(Campaigns::StartedAt))
                    .col(big_integer_null(Campaigns::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignRecipients::Table)
                    .col(big_pk_auto(CampaignRecipients::Id))
                    .col(big_integer(CampaignRecipients::CampaignId))
                    .col(big_integer(CampaignRecipients::ContactId))
                    // JSON array of the template's body parameters for this recipient.
                    .col(text(CampaignRecipients::Params))
                    .col(string(CampaignRecipients::Language))
                    // pending | queued | skipped | cancelled
                    .col(string(CampaignRecipients::State))
                    .col(string_null(CampaignRecipients::Reason))
                    .col(big_integer_null(CampaignRecipients::OutboxId))
                    .col(big_integer_null(CampaignRecipients::QueuedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CampaignRecipients::Table, CampaignRecipients::CampaignId)
                            .to(Campaigns::Table, Campaigns::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CampaignRecipients::Table, CampaignRecipients::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_campaign_recipients")
                    .table(CampaignRecipients::Table)
                    .col(CampaignRecipients::CampaignId)
                    .col(CampaignRecipients::ContactId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The runner takes the next pending recipients of a campaign in id order.
        manager
            .create_index(
                Index::create()
                    .name("idx_campaign_recipients_state")
                    .table(CampaignRecipients::Table)
                    .col(CampaignRecipients::CampaignId)
                    .col(CampaignRecipients::State)
                    .col(CampaignRecipients::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CampaignRecipients::Table.into_iden(),
            Campaigns::Table.into_iden(),
            ReminderSends::Table.into_iden(),
            ReminderRuns::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_premiums_due_date")
                    .table(Premiums::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Premiums {
    Table,
    DueDate,
}

#[derive(DeriveIden)]
enum ReminderRuns {
    Table,
    RunDate,
    LeaseOwner,
    LeaseUntil,
    StartedAt,
    FinishedAt,
    Queued,
    Skipped,
}

#[derive(DeriveIden)]
enum ReminderSends {
    Table,
    Id,
    PolicyNumber,
    DueDate,
    OffsetDays,
    Kind,
    ContactId,
    OutboxId,
    State,
    Reason,
    RunDate,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    Id,
    Name,
    Template,
    Language,
    State,
    RatePerSecond,
    StartAt,
    AudienceKind,
    AudienceDetail,
    LeaseOwner,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum CampaignRecipients {
    Table,
    Id,
    CampaignId,
    ContactId,
    Params,
    Language,
    State,
    Reason,
    OutboxId,
    QueuedAt,
}
