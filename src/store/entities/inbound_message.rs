//! One inbound WhatsApp message, unique on its wamid.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inbound_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub wamid: String,
    pub contact_id: i64,
    pub phone_number_id: Option<String>,
    pub msg_type: String,
    /// `MessageContent` as JSON.
    pub content: Option<String>,
    /// The message object exactly as WhatsApp sent it.
    pub raw: Option<String>,
    /// WhatsApp's timestamp for the message (ms).
    pub sent_at: i64,
    pub received_at: i64,
    pub processed_at: Option<i64>,
    pub attempts: i32,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
