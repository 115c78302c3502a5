//! The conversation row: one per contact, the engine's [`Conversation`] as JSON beside the
//! columns the console and reports filter on (flow, state, mode, language).

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

use crate::engine::{Conversation, Mode};
use crate::store::entities::conversation;
use crate::store::now_ms;

/// The stored conversation of a contact, if any.
///
/// # Errors
/// Database errors, or a stored state that no longer parses.
pub async fn load<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
) -> anyhow::Result<Option<Conversation>> {
    let row = conversation::Entity::find_by_id(contact_id).one(db).await?;
    Ok(row.as_ref().and_then(parse))
}

/// The conversation a stored row holds; `None` for a state from an incompatible version
/// (the contact starts afresh rather than being wedged).
pub(super) fn parse(row: &conversation::Model) -> Option<Conversation> {
    match serde_json::from_str(&row.state) {
        Ok(conversation) => Some(conversation),
        Err(e) => {
            tracing::warn!(contact_id = row.contact_id, error = %e, "stored conversation unreadable; starting a new one");
            None
        }
    }
}

/// Stores `conversation` for the contact (insert or replace).
///
/// # Errors
/// Database errors.
pub async fn save<C: ConnectionTrait>(
    db: &C,
    contact_id: i64,
    conversation: &Conversation,
) -> Result<(), DbErr> {
    upsert(db, vec![row_for(contact_id, conversation)?]).await
}

/// The row `conversation` is stored as.
pub(super) fn row_for(
    contact_id: i64,
    conversation: &Conversation,
) -> Result<conversation::ActiveModel, DbErr> {
    let state = serde_json::to_string(conversation).map_err(|e| DbErr::Custom(e.to_string()))?;
    let position = conversation.position.as_ref();
    Ok(conversation::ActiveModel {
        contact_id: Set(contact_id),
        state: Set(state),
        flow: Set(position.map(|p| p.flow.to_string())),
        flow_state: Set(position.map(|p| p.state.to_string())),
        flow_version: Set(position.map(|p| p.flow_version.clone())),
        mode: Set(mode_name(conversation.mode).into()),
        language: Set(conversation.language.clone()),
        updated_at: Set(now_ms()),
    })
}

/// Stores conversation rows (insert or replace), with one statement.
pub(super) async fn upsert<C: ConnectionTrait>(
    db: &C,
    rows: Vec<conversation::ActiveModel>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    conversation::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(conversation::Column::ContactId)
                .update_columns([
                    conversation::Column::State,
                    conversation::Column::Flow,
                    conversation::Column::FlowState,
                    conversation::Column::FlowVersion,
                    conversation::Column::Mode,
                    conversation::Column::Language,
                    conversation::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

pub(super) fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Bot => "bot",
        Mode::WaitingForAgent => "waiting_for_agent",
        Mode::WithAgent => "with_agent",
        Mode::OptedOutQuiet => "opted_out_quiet",
    }
}
