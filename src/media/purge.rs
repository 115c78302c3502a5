//! Deleting stored files once no `media_files` (received), `outbound_media` (sent) or
//! `claim_documents` (sent for a claim) row needs them: after an erasure (the contact's files)
//! and a retention run (files older than the limit). A deleted file's cached upload id goes
//! with it, so nothing names it any more. Rows go in the
//! erasure's or purge's transaction; files go after it commits, since the store is not
//! transactional: a file is deleted only when its rows are surely gone, and one whose deletion
//! fails is logged and left in the store (no row names it any more) rather than undoing the
//! erasure.

use std::collections::BTreeSet;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::MediaStore;
use crate::store::entities::{claim_document, media_file, media_upload, outbound_media};

/// Deletes the rows `filter` selects and returns the hashes of the files they named.
///
/// # Errors
/// Database errors.
pub async fn delete_rows<C: ConnectionTrait>(
    txn: &C,
    filter: sea_orm::Condition,
) -> Result<(u64, Vec<String>), sea_orm::DbErr> {
    let hashes: BTreeSet<String> = media_file::Entity::find()
        .filter(filter.clone())
        .all(txn)
        .await?
        .into_iter()
        .filter_map(|r| r.sha256)
        .collect();
    let deleted = media_file::Entity::delete_many()
        .filter(filter)
        .exec(txn)
        .await?
        .rows_affected;
    Ok((deleted, hashes.into_iter().collect()))
}

/// Deletes the sent-file rows `filter` selects and returns the hashes of the files they named.
///
/// # Errors
/// Database errors.
pub async fn delete_outbound_rows<C: ConnectionTrait>(
    txn: &C,
    filter: sea_orm::Condition,
) -> Result<(u64, Vec<String>), sea_orm::DbErr> {
    let hashes: BTreeSet<String> = outbound_media::Entity::find()
        .filter(filter.clone())
        .all(txn)
        .await?
        .into_iter()
        .map(|r| r.sha256)
        .collect();
    let deleted = outbound_media::Entity::delete_many()
        .filter(filter)
        .exec(txn)
        .await?
        .rows_affected;
    Ok((deleted, hashes.into_iter().collect()))
}

/// Whether any received, sent or claim file row still names `sha`.
async fn still_used<C: ConnectionTrait>(db: &C, sha: &str) -> Result<bool, sea_orm::DbErr> {
    let received = media_file::Entity::find()
        .filter(media_file::Column::Sha256.eq(sha))
        .count(db)
        .await?;
    if received > 0 {
        return Ok(true);
    }
    let sent = outbound_media::Entity::find()
        .filter(outbound_media::Column::Sha256.eq(sha))
        .count(db)
        .await?;
    if sent > 0 {
        return Ok(true);
    }
    // A file sent for a claim stays while the claim names it.
    let claimed = claim_document::Entity::find()
        .filter(claim_document::Column::Sha256.eq(sha))
        .count(db)
        .await?;
    Ok(claimed > 0)
}

/// Deletes from the store each of `hashes` that no row names any more (a photo two people
/// sent stays until both are gone, a photo sent for a claim while the claim names it), with
/// its cached upload ids; returns how many files were deleted.
pub async fn delete_unreferenced<C: ConnectionTrait>(
    db: &C,
    store: &MediaStore,
    hashes: &[String],
) -> u64 {
    let mut deleted = 0;
    for sha in hashes {
        match still_used(db, sha).await {
            Ok(false) => match store.delete(sha).await {
                Ok(()) => {
                    deleted += 1;
                    // Meta drops uploads after 30 days by itself; our id must not outlive
                    // the file, or a later send would name an erased file.
                    if let Err(e) = media_upload::Entity::delete_many()
                        .filter(media_upload::Column::Sha256.eq(sha.as_str()))
                        .exec(db)
                        .await
                    {
                        tracing::warn!(error = %e, "could not forget a deleted file's upload id");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a media file could not be deleted from the store; it is left there, named by no row")
                }
            },
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not check whether a media file is still used")
            }
        }
    }
    deleted
}
