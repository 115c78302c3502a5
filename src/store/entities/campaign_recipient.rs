//! One contact of a campaign: unique on (campaign, contact), so nobody is queued twice.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaign_recipients")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub campaign_id: i64,
    pub contact_id: i64,
    /// JSON array of the template's body parameters.
    pub params: String,
    pub language: String,
    pub state: State,
    pub reason: Option<String>,
    pub outbox_id: Option<i64>,
    pub queued_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::text_enum! {
    /// A recipient's state, stored as its lower-case name (the column is text: no migration).
    pub enum State {
        Pending = "pending",
        /// An outbox row exists; its state says whether it was sent.
        Queued = "queued",
        /// The composer refused at queue time (`reason`: consent, template_not_approved, …).
        Skipped = "skipped",
        Cancelled = "cancelled",
    }
}
