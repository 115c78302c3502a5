//! Templates per WhatsApp Business Account (issue 20): each business number belongs to a
//! WABA, and a template approved in one WABA may not be sent from a number of another, so the
//! registry keeps each WABA's templates apart: `message_templates.waba_id`, and the unique key
//! becomes (WABA, name, language). Rows from before have `''`, the registry of a deployment
//! that names no WABA; a deployment that does name one adopts them into its first number's
//! WABA when it next starts (`messaging::templates::seed`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD_KEY: &str = "idx_message_templates_name_language";
const NEW_KEY: &str = "idx_message_templates_waba_name_language";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MessageTemplates::Table)
                    .add_column(string(MessageTemplates::WabaId).default(""))
                    .to_owned(),
            )
            .await?;
        swap_key(manager, OLD_KEY, NEW_KEY, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Only one copy of each template fits the old key: keep the oldest (from before
        // templates were per WABA, or the first WABA's, which adopted those).
        manager
            .get_connection()
            .execute_unprepared(
                "DELETE FROM message_templates WHERE id NOT IN \
                 (SELECT MIN(id) FROM message_templates GROUP BY name, language)",
            )
            .await?;
        swap_key(manager, NEW_KEY, OLD_KEY, false).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MessageTemplates::Table)
                    .drop_column(MessageTemplates::WabaId)
                    .to_owned(),
            )
            .await
    }
}

/// Drops the unique key `old` and creates `new`: on (WABA, name, language) when `per_waba`,
/// else on (name, language).
async fn swap_key(
    manager: &SchemaManager<'_>,
    old: &str,
    new: &str,
    per_waba: bool,
) -> Result<(), DbErr> {
    manager
        .drop_index(
            Index::drop()
                .name(old)
                .table(MessageTemplates::Table)
                .to_owned(),
        )
        .await?;
    let mut key = Index::create();
    key.name(new).table(MessageTemplates::Table).unique();
    if per_waba {
        key.col(MessageTemplates::WabaId);
    }
    manager
        .create_index(
            key.col(MessageTemplates::Name)
                .col(MessageTemplates::Language)
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden)]
enum MessageTemplates {
    Table,
    WabaId,
    Name,
    Language,
}
