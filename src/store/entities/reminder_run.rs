//! One day's premium-reminder scan: its lease (one instance scans at a time) and its result.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reminder_runs")]
pub struct Model {
    /// `YYYY-MM-DD` in the scheduler's timezone.
    #[sea_orm(primary_key, auto_increment = false)]
    pub run_date: String,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub started_at: i64,
    /// Set when the scan finished; a run without it is taken over after its lease.
    pub finished_at: Option<i64>,
    pub queued: i32,
    pub skipped: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
