//! Media (issue 18): the media store, fetching the photos and documents policyholders send
//! from the Cloud API into it, and uploading the files insurebot sends.
//!
//! - (`[media]`, where files are kept and the limits per kind: [`crate::config::media`].)
//! - [`store`]: the store itself, a local directory or S3-compatible object storage, keyed by
//!   content hash.
//! - [`fetch`]: resolve a media id, download it with the bearer token, check it and store
//!   it, outside any transaction; the outcome is a `media_files` row the dialogue reads.
//! - [`uploads`]: outbound files (policy schedules, agents' attachments): their rows, and the
//!   cached media id of each file's upload to the Cloud API.
//! - [`purge`]: deleting files no row needs any more (erasure, retention).

pub mod fetch;
pub mod purge;
pub mod store;
pub mod uploads;

pub use fetch::{Failure, MediaFetcher};
pub use store::MediaStore;
