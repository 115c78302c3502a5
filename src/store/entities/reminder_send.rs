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
    /// `queued` or `skipped` (`reason` says why: no_contact, consent, …).
    pub state: String,
    pub reason: Option<String>,
    pub run_date: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
