//! A message the bot could not place (issue 22), masked; no contact. See the migration.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "misunderstood_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// What was typed, masked (`privacy::mask_text`).
    pub text: String,
    /// `flow.state` it came in at, or `-`.
    pub place: String,
    pub language: String,
    pub at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
