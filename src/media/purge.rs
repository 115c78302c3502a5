//! Deleting stored files once no `media_files` or `claim_documents` row needs them: after an erasure (the
//! contact's files) and a retention run (files older than the limit). Rows go in the
//! erasure's or purge's transaction; files go after it commits, since the store is not
//! transactional: a file is deleted only when its rows are surely gone, and one whose deletion
//! fails is logged and left in the store (no row names it any more) rather than undoing the
//! erasure.

use std::collections::BTreeSet;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::MediaStore;
use crate::store::entities::{claim_document, media_file};

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

/// Deletes from the store each of `hashes` that no row names any more (a photo two people
/// sent stays until both are gone, a photo sent for a claim while the claim names it);
/// returns how many files were deleted.
pub async fn delete_unreferenced<C: ConnectionTrait>(
    db: &C,
    store: &MediaStore,
    hashes: &[String],
) -> u64 {
    let mut deleted = 0;
    for sha in hashes {
        let still_used = match media_file::Entity::find()
            .filter(media_file::Column::Sha256.eq(sha.as_str()))
            .count(db)
            .await
        {
            // A file sent for a claim stays while the claim names it.
            Ok(0) => {
                claim_document::Entity::find()
                    .filter(claim_document::Column::Sha256.eq(sha.as_str()))
                    .count(db)
                    .await
            }
            other => other,
        };
        match still_used {
            Ok(0) => match store.delete(sha).await {
                Ok(()) => deleted += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "a media file could not be deleted from the store; it is left there, named by no row")
                }
            },
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not check whether a media file is still used")
            }
        }
    }
    deleted
}
