//! One premium reminder decided, ever: unique on (policy, due date, offset, kind).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reminder_sends")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub policy_number: String,
    /// `YYYY-MM-DD` of the instalment.
    pub due_date: String,
    /// Days before the due date; negative in the grace period.
    pub offset_days: i32,
    /// `scheduled` (the configured offsets) or `later` (asked for in chat).
    pub kind: String,
    pub contact_id: Option<i64>,
    pub outbox_id: Option<i64>,
    /// Queued, or skipped (`reason` says why: no_contact, consent, …).
    pub state: State,
    pub reason: Option<String>,
    pub run_date: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::text_enum! {
    /// What became of a reminder, stored as its lower-case name (text column: no migration).
    pub enum State {
        /// In the outbox (`outbox_id`).
        Queued = "queued",
        /// Not sent; `reason` says why (or none yet while the key row is being decided).
        Skipped = "skipped",
    }
}
