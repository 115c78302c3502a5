//! A request for a person: queued by the bot, taken and closed by an agent.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "handoffs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub contact_id: i64,
    pub reason: String,
    pub language: String,
    /// `waiting`, `taken`, `closed` or `cancelled`.
    pub state: String,
    pub agent_id: Option<i64>,
    pub requested_at: i64,
    pub taken_at: Option<i64>,
    pub closed_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Hand-off row states.
pub mod state {
    pub const WAITING: &str = "waiting";
    pub const TAKEN: &str = "taken";
    pub const CLOSED: &str = "closed";
    pub const CANCELLED: &str = "cancelled";
}
