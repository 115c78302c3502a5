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
    pub state: State,
    pub agent_id: Option<i64>,
    pub requested_at: i64,
    pub taken_at: Option<i64>,
    pub closed_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::text_enum! {
    /// A hand-off's state, stored as its lower-case name (the column is text: no migration).
    pub enum State {
        /// Queued by the bot; no agent has taken it yet.
        Waiting = "waiting",
        /// An agent is talking with the contact.
        Taken = "taken",
        /// The agent handed the conversation back to the bot.
        Closed = "closed",
        /// Withdrawn before an agent took it (the contact left, or waited too long).
        Cancelled = "cancelled",
    }
}
