//! A contact's 24-hour customer service window on one business number: Meta opens it between
//! one user and one business phone number, so each number the contact wrote to has its own.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "contact_windows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub contact_id: i64,
    /// The business number written to (its phone number id).
    #[sea_orm(primary_key, auto_increment = false)]
    pub phone_number_id: String,
    /// WhatsApp timestamp (ms) of the contact's newest message to this number: the window's
    /// start.
    pub last_inbound_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
