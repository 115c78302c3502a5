//! One move of a conversation between flow states (see `dialogue::hops`); no contact.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_hops")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub from_flow: Option<String>,
    pub from_state: Option<String>,
    /// `state`, `end` or `agent`.
    pub to_kind: String,
    pub to_flow: Option<String>,
    pub to_state: Option<String>,
    pub at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
