//! The agent console (issue 7): agents with a role and an argon2id password hash, their
//! login sessions, and the failed logins that throttle guessing.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .col(big_pk_auto(Agents::Id))
                    // Stored lower-cased so logins are case-insensitive on both backends.
                    .col(string_uniq(Agents::Email))
                    .col(string(Agents::Name))
                    // agent | supervisor | admin
                    .col(string(Agents::Role))
                    // PHC string: $argon2id$v=19$m=…,t=…,p=…$salt$hash
                    .col(text(Agents::PasswordHash))
                    .col(boolean(Agents::Active).default(true))
                    .col(big_integer(Agents::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AgentSessions::Table)
                    // SHA-256 of the cookie value: a leaked database does not hand out sessions.
                    .col(string(AgentSessions::Id).primary_key())
                    .col(big_integer(AgentSessions::AgentId))
                    // Per-session CSRF token, echoed in every form.
                    .col(string(AgentSessions::CsrfToken))
                    .col(big_integer(AgentSessions::CreatedAt))
                    .col(big_integer(AgentSessions::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AgentSessions::Table, AgentSessions::AgentId)
                            .to(Agents::Table, Agents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(LoginFailures::Table)
                    .col(big_pk_auto(LoginFailures::Id))
                    // `email:<address>` or `ip:<address>`: one row per failed attempt and key.
                    .col(string(LoginFailures::Key))
                    .col(big_integer(LoginFailures::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_login_failures_key_at")
                    .table(LoginFailures::Table)
                    .col(LoginFailures::Key)
                    .col(LoginFailures::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            LoginFailures::Table.into_iden(),
            AgentSessions::Table.into_iden(),
            Agents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    Email,
    Name,
    Role,
    PasswordHash,
    Active,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AgentSessions {
    Table,
    Id,
    AgentId,
    CsrfToken,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    Id,
    Key,
    At,
}
