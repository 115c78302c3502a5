//! Contact rows found by phone number: the API's notifications and one-time passwords write
//! to numbers that may never have written to us, and need their contact row as ingest makes it.

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter,
};

use super::entities::contact;
use crate::privacy::mask;

/// Finds or creates the contact with phone number `wa_id`, as ingest does.
pub async fn contact_for_phone<C: ConnectionTrait>(
    db: &C,
    wa_id: &str,
    now: i64,
) -> Result<i64, DbErr> {
    let find = || {
        contact::Entity::find()
            .filter(contact::Column::WaId.eq(wa_id))
            .one(db)
    };
    if let Some(c) = find().await? {
        return Ok(c.id);
    }
    contact::Entity::insert(contact::ActiveModel {
        id: NotSet,
        wa_id: Set(Some(wa_id.to_owned())),
        user_id: Set(None),
        profile_name: Set(None),
        last_inbound_at: Set(None),
        lease_owner: Set(None),
        lease_until: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(OnConflict::new().do_nothing().to_owned())
    .exec_without_returning(db)
    .await?;
    find().await?.map(|c| c.id).ok_or_else(|| vanished(wa_id))
}

/// The contact was erased between its insert and the read back. The message is logged, so
/// the number is masked.
fn vanished(wa_id: &str) -> DbErr {
    DbErr::Custom(format!("contact {} vanished", mask(wa_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vanished_contact_error_names_only_the_last_digits_of_the_number() {
        let message = vanished("919812345678").to_string();
        assert!(!message.contains("919812345678"), "{message}");
        assert!(message.contains("********5678"), "{message}");
    }
}
