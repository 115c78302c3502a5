//! One contact's conversation with the bot: the engine's state as JSON.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub contact_id: i64,
    /// `engine::Conversation` as JSON.
    pub state: String,
    pub flow: Option<String>,
    pub flow_state: Option<String>,
    pub flow_version: Option<String>,
    /// `bot`, `waiting_for_agent`, `with_agent` or `opted_out_quiet`.
    pub mode: String,
    pub language: String,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
