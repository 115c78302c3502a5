//! The furthest delivery status seen for one outbound wamid.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message_statuses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub wamid: String,
    pub status: String,
    pub rank: i32,
    pub status_at: i64,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub error_details: Option<String>,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
