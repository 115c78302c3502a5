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
    pub state: State,
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
    /// The business number its messages leave from; `None`: each contact's (the number they
    /// last wrote to), else the deployment's first.
    pub phone_number_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::text_enum! {
    /// A campaign's state, stored as its lower-case name (the column is text: no migration).
    #[derive(Default)]
    pub enum State {
        /// Created; nothing is queued until it is started.
        #[default]
        Draft = "draft",
        Running = "running",
        Paused = "paused",
        Cancelled = "cancelled",
        /// Every recipient decided.
        Completed = "completed",
    }
}
