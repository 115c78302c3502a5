//! A partial index of the queued outbox rows in id order, for the sender's claim ("the oldest
//! due rows, one per contact"). It answered from `idx_outbox_due` (state, next_attempt_at),
//! where every reply handed over in memory leaves an entry (it is stored queued, then sent):
//! PostgreSQL's bitmap scan visited all of them that vacuum had not removed yet, and with
//! autovacuum off a claim that found nothing took 39 ms after 30 s at 3,000/s, the costliest
//! statement of the run. Scanned in id order, the claim stops at its limit, and PostgreSQL
//! marks the dead entries it passes so the next scan skips them. The claim writes the state
//! as a literal: a partial index serves only a query whose condition it can prove.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_queued")
                    .table(Outbox::Table)
                    .col(Outbox::Id)
                    .and_where(Expr::col(Outbox::State).eq("queued"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_outbox_queued")
                    .table(Outbox::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    State,
}
