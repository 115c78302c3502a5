//! A broadcast: a marketing template, an audience, a start time and a rate.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaigns")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub template: String,
    /// The default language; a CSV row may name another.
    pub language: String,
    /// `draft`, `running`, `paused`, `cancelled` or `completed`.
    pub state: String,
    pub rate_per_second: i32,
    /// Unix ms; a running campaign sends nothing before it.
    pub start_at: i64,
    /// `csv` or `filter`.
    pub audience_kind: String,
    pub audience_detail: String,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Campaign states.
pub mod state {
    pub const DRAFT: &str = "draft";
    pub const RUNNING: &str = "running";
    pub const PAUSED: &str = "paused";
    pub const CANCELLED: &str = "cancelled";
    pub const COMPLETED: &str = "completed";
}
