//! Flow hops (issue 23): every move of a conversation from one flow state to the next, so the
//! console's flow diagrams can show how many conversations entered each state and left it by
//! each edge. A row holds flow and state ids and a time only, no contact: a funnel needs
//! counts, not people, so erasure and retention have nothing to find here.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FlowHops::Table)
                    .col(big_pk_auto(FlowHops::Id))
                    // The state left; none when the conversation was between flows.
                    .col(string_null(FlowHops::FromFlow))
                    .col(string_null(FlowHops::FromState))
                    // `state`, `end` or `agent` (engine::HopTo).
                    .col(string(FlowHops::ToKind))
                    .col(string_null(FlowHops::ToFlow))
                    .col(string_null(FlowHops::ToState))
                    .col(big_integer(FlowHops::At))
                    .to_owned(),
            )
            .await?;
        // The flow page reads the last 14 days.
        manager
            .create_index(
                Index::create()
                    .name("idx_flow_hops_at")
                    .table(FlowHops::Table)
                    .col(FlowHops::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FlowHops::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum FlowHops {
    Table,
    Id,
    FromFlow,
    FromState,
    ToKind,
    ToFlow,
    ToState,
    At,
}
