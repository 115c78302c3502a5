//! One approved (or not) message template in one language: the template registry's shared
//! state, so every instance sees a PAUSED template at once.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message_templates")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The WhatsApp Business Account whose template this is (`''`: the registry of a
    /// deployment that names none). Unique with `name` and `language`.
    pub waba_id: String,
    pub name: String,
    pub language: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    pub category: String,
    /// Meta's status; only `APPROVED` may be sent.
    pub status: String,
    /// Marked essential by the insurer (the consent gate may let it reach opted-out contacts).
    pub essential: bool,
    /// `POSITIONAL` or `NAMED`.
    pub parameter_format: String,
    /// JSON array of body parameter names, in order.
    pub params: String,
    /// JSON array of `TemplateButton`s.
    pub buttons: String,
    pub meta_id: Option<String>,
    pub reason: Option<String>,
    /// Who set the status last: `file`, `sync`, `webhook` or `api_error`.
    pub source: String,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
