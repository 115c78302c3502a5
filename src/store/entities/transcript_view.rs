//! One sitting in which a console user read a contact's transcript (see `console::access`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "transcript_views")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub agent_id: i64,
    pub contact_id: i64,
    /// `agent`, `supervisor` or `admin`, when reading.
    pub role: String,
    pub first_at: i64,
    pub last_at: i64,
    /// Readings in the sitting: the page and each live refresh of its transcript.
    pub views: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
