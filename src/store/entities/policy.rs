//! A policy of the embedded insurer data, keyed by its policy number.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "policies")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub policy_number: String,
    pub customer_id: String,
    /// The WhatsApp number registered on the policy: digits with the country code.
    pub mobile: Option<String>,
    pub product: String,
    pub plan: String,
    pub status: String,
    /// Paise.
    pub sum_assured: i64,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    pub end_date: Option<String>,
    pub document_url: Option<String>,
    /// The business number (phone number id) the policy belongs to: reminders and
    /// notifications about it leave from there. `None`: the deployment's usual choice.
    pub number: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
