//! A "remind me later" asked for in chat: the reminders scheduler sends it on `remind_on`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "premium_reminders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub contact_id: i64,
    pub policy_number: String,
    /// `YYYY-MM-DD` of the instalment.
    pub due_date: String,
    /// `YYYY-MM-DD` the reminder is due.
    pub remind_on: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
