//! Erasure of one contact's personal data, and the retention purge of old message bodies.
//!
//! Erasure (`insurebot contacts erase --phone N`, `DELETE /api/v1/contacts/{phone}`) runs in
//! one transaction and returns a receipt with a count per table:
//! - `inbound_messages`: content, raw payload and error text cleared (the row and its wamid
//!   stay, so a redelivered webhook is still recognised as a duplicate and not answered);
//! - `outbox`: payload bodies replaced by a redaction marker, error texts cleared; rows still
//!   queued are cancelled (`skipped`, reason `erased`);
//! - `conversations` (slots, answers), `handoffs`, `identity_verifications`,
//!   `identity_attempts`, `premium_reminders`: deleted;
//! - `campaign_recipients`: template parameters (a name, a policy number) cleared; a recipient
//!   not queued yet is skipped (`erased`), as its outbox row would have been cancelled;
//! - `otps`: the one-time passwords sent to the contact or asked for by it in the chat
//!   (their hashes, the policy asked about): deleted;
//! - `reminder_sends`: unlinked from the contact (the row stays: it is what keeps a premium
//!   reminder from going twice, keyed by the insurer's policy number, not by the person);
//! - `transcript_views`: kept as they are, and counted. The rows say which console user read
//!   this contact's conversation and when, by ids and times only; once the contact row below
//!   is a tombstone they name nobody, and the record of who accessed the data before it was
//!   erased is the accountability the log exists for (deleting it would let an erasure hide
//!   an improper reading);
//! - `media_files` (files received) and `outbound_media` (files sent: policy schedules,
//!   agents' attachments): deleted, and after the commit the files themselves from the media
//!   store (`media store files`) with their cached upload ids, except a file another
//!   contact's row still names;
//! - `claim_documents` (files sent for a claim in the chat): deleted, their files with the
//!   media files above; `claims` the contact filed in the chat stay (the insurer's record of
//!   the policy) with the description cleared and the link to the contact removed;
//! - `contacts`: phone number, BSUID and profile name cleared; the row stays as an anonymous
//!   tombstone so the counts above keep a valid owner.
//!
//! What stays is what honouring the opt-out needs: the consent log, each entry carrying the
//! keyed hash of the number. A new message from the same number creates a new contact whose
//! consent is found by that hash (see [`super::entries_for_contact`]); if the number had opted
//! out it is still opted out, and its first conversation starts quiet.
//!
//! Retention (`privacy.retention_days`, a periodic task and `insurebot retention run`)
//! clears message bodies older than the limit: inbound content and raw payloads of processed
//! messages, and payloads of outbox rows no longer queued; and media files received or sent
//! before the limit (their `media_files` and `outbound_media` rows, then the files). A file
//! some `claim_documents` row names stays: it is part of a claim, which retention of chat
//! bodies does not shorten.

use std::collections::BTreeMap;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityName, EntityTrait,
    PaginatorTrait, QueryFilter,
};
use serde::Serialize;

use super::{AddressHasher, backfill_hash, contact_by_phone};
use crate::media::MediaStore;
use crate::media::purge::{delete_outbound_rows, delete_rows, delete_unreferenced};
use crate::privacy::mask;
use crate::store::begin_write;
use crate::store::entities::campaign_recipient::State as RecipientState;
use crate::store::entities::outbox::{Reason, State as OutboxState};
use crate::store::entities::{
    campaign_recipient, claim, claim_document, consent_log, contact, conversation, flow_hop,
    handoff, identity_attempt, identity_verification, inbound_message, media_file,
    misunderstood_message, otp, outbound_media, outbox, premium_reminder, reminder_send,
    transcript_view,
};
use crate::store::lease::ReleaseLease;

/// What replaces an erased outbox payload.
pub const ERASED_PAYLOAD: &str = r#"{"redacted":"erasure"}"#;
/// What replaces an outbox payload past the retention limit.
pub const PURGED_PAYLOAD: &str = r#"{"redacted":"retention"}"#;

/// Proof of one erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The anonymous contact row that remains.
    pub contact_id: i64,
    /// The keyed hash under which the consent log keeps honouring the contact's choices.
    pub address_hash: String,
    pub erased_at: i64,
    /// Rows changed or deleted, per table.
    pub tables: BTreeMap<&'static str, u64>,
    /// Consent log entries kept (never erased: they are the proof of the contact's choices).
    pub consent_entries_kept: u64,
}

/// Erases the contact with phone number `phone` (already normalised, see
/// [`crate::phone::PhoneNumber`]). `Ok(None)` when no contact has that number.
///
/// # Errors
/// Database errors; nothing is erased then.
pub async fn erase(
    db: &DatabaseConnection,
    hasher: &AddressHasher,
    media: Option<&MediaStore>,
    phone: &str,
    now: i64,
) -> Result<Option<Receipt>, DbErr> {
    let txn = begin_write(db).await?;
    let Some(contact) = contact_by_phone(&txn, phone).await? else {
        return Ok(None);
    };
    let id = contact.id;
    let hash = hasher.hash(phone);
    let mut tables = BTreeMap::new();

    // Entries written before hashes were kept get the number's hash now, or the opt-out
    // would be lost with the number.
    tables.insert(
        "consent_log (hash filled in)",
        backfill_hash(&txn, id, &hash).await?,
    );
    let inbound = inbound_message::Entity::update_many()
        .col_expr(
            inbound_message::Column::Content,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            inbound_message::Column::Raw,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            inbound_message::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(inbound_message::Column::ContactId.eq(id))
        .exec(&txn)
        .await?;
    tables.insert("inbound_messages", inbound.rows_affected);
    // Never send what was queued for a person who asked to be forgotten.
    let cancelled = outbox::Entity::update_many()
        .col_expr(outbox::Column::State, Expr::value(OutboxState::Skipped))
        .col_expr(outbox::Column::Reason, Expr::value(Reason::Erased))
        .release_lease()
        .filter(outbox::Column::ContactId.eq(id))
        .filter(outbox::Column::State.eq(OutboxState::Queued))
        .exec(&txn)
        .await?;
    tables.insert("outbox (queued, cancelled)", cancelled.rows_affected);
    let redacted = outbox::Entity::update_many()
        .col_expr(outbox::Column::Payload, Expr::value(ERASED_PAYLOAD))
        .col_expr(
            outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            outbox::Column::DeliveryError,
            Expr::value(Option::<String>::None),
        )
        .filter(outbox::Column::ContactId.eq(id))
        .exec(&txn)
        .await?;
    tables.insert("outbox", redacted.rows_affected);
    // Each of these tables keys its rows by `contact_id`; the receipt counts them by table name.
    for table in [
        conversation::Entity.table_name(),
        handoff::Entity.table_name(),
        identity_verification::Entity.table_name(),
        identity_attempt::Entity.table_name(),
        premium_reminder::Entity.table_name(),
    ] {
        let delete = Query::delete()
            .from_table(table)
            .and_where(Expr::col("contact_id").eq(id))
            .to_owned();
        tables.insert(table, txn.execute(&delete).await?.rows_affected());
    }
    tables.insert(
        "campaign_recipients (pending, skipped)",
        campaign_recipient::Entity::update_many()
            .col_expr(
                campaign_recipient::Column::State,
                Expr::value(RecipientState::Skipped),
            )
            .col_expr(
                campaign_recipient::Column::Reason,
                Expr::value(Reason::Erased),
            )
            .filter(campaign_recipient::Column::ContactId.eq(id))
            .filter(campaign_recipient::Column::State.eq(RecipientState::Pending))
            .exec(&txn)
            .await?
            .rows_affected,
    );
    tables.insert(
        "campaign_recipients",
        campaign_recipient::Entity::update_many()
            .col_expr(campaign_recipient::Column::Params, Expr::value("[]"))
            .filter(campaign_recipient::Column::ContactId.eq(id))
            .exec(&txn)
            .await?
            .rows_affected,
    );
    tables.insert(
        "otps",
        otp::Entity::delete_many()
            .filter(
                sea_orm::Condition::any()
                    .add(otp::Column::ContactId.eq(id))
                    .add(otp::Column::RequesterContactId.eq(id)),
            )
            .exec(&txn)
            .await?
            .rows_affected,
    );
    tables.insert(
        "reminder_sends (unlinked)",
        reminder_send::Entity::update_many()
            .col_expr(
                reminder_send::Column::ContactId,
                Expr::value(Option::<i64>::None),
            )
            .filter(reminder_send::Column::ContactId.eq(id))
            .exec(&txn)
            .await?
            .rows_affected,
    );
    // Kept (see the module doc): ids and times, anonymous once the contact is a tombstone.
    tables.insert(
        "transcript_views (kept, anonymous)",
        transcript_view::Entity::find()
            .filter(transcript_view::Column::ContactId.eq(id))
            .count(&txn)
            .await?,
    );
    let (media_rows, mut media_hashes) = delete_rows(
        &txn,
        sea_orm::Condition::all().add(media_file::Column::ContactId.eq(id)),
    )
    .await?;
    tables.insert("media_files", media_rows);
    // Files sent to the contact (policy schedules, agents' attachments) are theirs too.
    let (sent_rows, sent_hashes) = delete_outbound_rows(
        &txn,
        sea_orm::Condition::all().add(outbound_media::Column::ContactId.eq(id)),
    )
    .await?;
    tables.insert("outbound_media", sent_rows);
    media_hashes.extend(sent_hashes);
    // Files the contact sent for claims (issue 18): the rows go, and the files with the chat's
    // own below. The claims stay (the insurer's record, keyed by policy) without the
    // contact's link and own words.
    let claim_hashes: Vec<String> = claim_document::Entity::find()
        .filter(claim_document::Column::ContactId.eq(id))
        .all(&txn)
        .await?
        .into_iter()
        .map(|r| r.sha256)
        .collect();
    tables.insert(
        "claim_documents",
        claim_document::Entity::delete_many()
            .filter(claim_document::Column::ContactId.eq(id))
            .exec(&txn)
            .await?
            .rows_affected,
    );
    tables.insert(
        "claims (filed in the chat: unlinked, description cleared)",
        claim::Entity::update_many()
            .col_expr(
                claim::Column::IntimatedByContactId,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                claim::Column::Description,
                Expr::value(Option::<String>::None),
            )
            .filter(claim::Column::IntimatedByContactId.eq(id))
            .exec(&txn)
            .await?
            .rows_affected,
    );
    media_hashes.extend(claim_hashes);
    media_hashes.sort();
    media_hashes.dedup();
    let tombstone = contact::Entity::update_many()
        .col_expr(contact::Column::WaId, Expr::value(Option::<String>::None))
        .col_expr(contact::Column::UserId, Expr::value(Option::<String>::None))
        .col_expr(
            contact::Column::ProfileName,
            Expr::value(Option::<String>::None),
        )
        .release_lease()
        .col_expr(contact::Column::UpdatedAt, Expr::value(now))
        .filter(contact::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    tables.insert("contacts", tombstone.rows_affected);
    let kept = consent_log::Entity::find()
        .filter(
            consent_log::Column::ContactId
                .eq(id)
                .or(consent_log::Column::AddressHash.eq(hash.clone())),
        )
        .count(&txn)
        .await?;
    txn.commit().await?;
    if let Some(store) = media {
        tables.insert(
            "media store files",
            delete_unreferenced(db, store, &media_hashes).await,
        );
    }
    tracing::info!(contact_id = id, phone = %mask(phone), ?tables, consent_entries_kept = kept, "contact erased");
    Ok(Some(Receipt {
        contact_id: id,
        address_hash: hash,
        erased_at: now,
        tables,
        consent_entries_kept: kept,
    }))
}

/// What one retention run cleared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// Bodies older than this (Unix ms) were cleared.
    pub cutoff: i64,
    pub inbound_messages: u64,
    pub outbox: u64,
    /// Flow hops (the flow pages' funnels) older than the cutoff, deleted: they name no
    /// contact, but one is written per state a conversation enters, so they must not pile up.
    pub flow_hops: u64,
    /// `media_files` rows older than the cutoff, deleted.
    pub media_files: u64,
    /// `outbound_media` rows (files sent) older than the cutoff, deleted.
    pub outbound_media: u64,
    /// Their files deleted from the media store (a file still named by a newer row stays).
    pub media_store_files: u64,
    /// `misunderstood_messages` rows (masked text kept for the dashboard) older than the
    /// cutoff, deleted. They hold no contact, so erasure cannot find a person's rows; this
    /// age limit is what bounds them.
    pub misunderstood_messages: u64,
}

/// Clears message bodies older than `days` days, and deletes flow hops and misunderstood
/// messages as old. Unprocessed inbound messages and queued outbox rows are left alone: they
/// are still needed.
///
/// # Errors
/// Database errors.
pub async fn purge_older_than(
    db: &DatabaseConnection,
    media: Option<&MediaStore>,
    days: u32,
    now: i64,
) -> Result<RetentionReport, DbErr> {
    let cutoff = now - i64::from(days) * 24 * 3_600_000;
    let txn = begin_write(db).await?;
    let inbound = inbound_message::Entity::update_many()
        .col_expr(
            inbound_message::Column::Content,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            inbound_message::Column::Raw,
            Expr::value(Option::<String>::None),
        )
        .filter(inbound_message::Column::ReceivedAt.lt(cutoff))
        .filter(inbound_message::Column::ProcessedAt.is_not_null())
        .filter(
            inbound_message::Column::Content
                .is_not_null()
                .or(inbound_message::Column::Raw.is_not_null()),
        )
        .exec(&txn)
        .await?;
    let outbound = outbox::Entity::update_many()
        .col_expr(outbox::Column::Payload, Expr::value(PURGED_PAYLOAD))
        .filter(outbox::Column::CreatedAt.lt(cutoff))
        .filter(outbox::Column::State.ne(OutboxState::Queued))
        .filter(outbox::Column::Payload.not_like(r#"{"redacted"%"#))
        .exec(&txn)
        .await?;
    let hops = flow_hop::Entity::delete_many()
        .filter(flow_hop::Column::At.lt(cutoff))
        .exec(&txn)
        .await?;
    let misunderstood = misunderstood_message::Entity::delete_many()
        .filter(misunderstood_message::Column::At.lt(cutoff))
        .exec(&txn)
        .await?;
    let (media_rows, mut media_hashes) = delete_rows(
        &txn,
        sea_orm::Condition::all().add(media_file::Column::CreatedAt.lt(cutoff)),
    )
    .await?;
    let (sent_rows, sent_hashes) = delete_outbound_rows(
        &txn,
        sea_orm::Condition::all().add(outbound_media::Column::CreatedAt.lt(cutoff)),
    )
    .await?;
    media_hashes.extend(sent_hashes);
    media_hashes.sort();
    media_hashes.dedup();
    txn.commit().await?;
    let media_store_files = match media {
        Some(store) => delete_unreferenced(db, store, &media_hashes).await,
        None => 0,
    };
    let report = RetentionReport {
        cutoff,
        inbound_messages: inbound.rows_affected,
        outbox: outbound.rows_affected,
        flow_hops: hops.rows_affected,
        media_files: media_rows,
        outbound_media: sent_rows,
        media_store_files,
        misunderstood_messages: misunderstood.rows_affected,
    };
    tracing::info!(
        days,
        inbound = report.inbound_messages,
        outbox = report.outbox,
        flow_hops = report.flow_hops,
        media_files = report.media_files,
        outbound_media = report.outbound_media,
        misunderstood = report.misunderstood_messages,
        "retention purge"
    );
    Ok(report)
}
