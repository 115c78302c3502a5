//! A console login: the SHA-256 of the cookie value, its CSRF token and its expiry.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_sessions")]
pub struct Model {
    /// Hex SHA-256 of the session cookie's value (the value itself is never stored).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub agent_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
