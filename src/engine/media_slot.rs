//! Files in a conversation (issue 18): the kinds a step may accept ([`FileKind`]), and the
//! [`MediaRef`] a received file becomes in a slot. A media step's slot is a JSON array of
//! `MediaRef`s that actions take as an argument (`claim.intimate`, `claim.attach_documents`).
//!
//! A reference names a file in the media store by its content hash; the bytes never pass
//! through the engine (it stays pure), and the dialogue layer builds the reference from the
//! fetched file's `media_files` row.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kinds of file a contact can send, as flow files name them in `expect.media`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Image,
    Document,
    Audio,
    Video,
    Sticker,
}

impl FileKind {
    /// Every kind, in the order messages list them.
    pub const ALL: [FileKind; 5] = [
        FileKind::Image,
        FileKind::Document,
        FileKind::Audio,
        FileKind::Video,
        FileKind::Sticker,
    ];

    /// The name in flow files and on the wire (`image`, `document`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Image => "image",
            FileKind::Document => "document",
            FileKind::Audio => "audio",
            FileKind::Video => "video",
            FileKind::Sticker => "sticker",
        }
    }

    /// Parses a kind name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The fluent id of the kind's name in words ("photos", "documents"), which every
    /// locale defines (the engine's own messages, see `runtime::ENGINE_MESSAGES`).
    pub fn message_id(self) -> &'static str {
        match self {
            FileKind::Image => "media-kind-image",
            FileKind::Document => "media-kind-document",
            FileKind::Audio => "media-kind-audio",
            FileKind::Video => "media-kind-video",
            FileKind::Sticker => "media-kind-sticker",
        }
    }
}

/// Most files one media step may collect (`expect.max` is checked against it): a claim's
/// photos and bills, not an archive.
pub const MAX_FILES: u32 = 20;

/// Files a media step collects when its `max` is not given.
pub const DEFAULT_MAX_FILES: u32 = 10;

/// One received file, as kept in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    /// Lower-case hex SHA-256 of the bytes: the media store's key.
    pub sha256: String,
    /// The type detected from the bytes (not the one the phone declared).
    pub mime: String,
    /// What kind of message carried it.
    pub kind: FileKind,
    /// The document's file name as sent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// The caption typed with it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

impl MediaRef {
    /// The references a slot holds; entries that are not references are skipped (a slot
    /// written by something else must not take the files down with it).
    pub fn list(slot: Option<&Value>) -> Vec<MediaRef> {
        match slot {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A stand-in for a kept file of `kind`, told apart by `n`: conversation tests send files
    /// without bytes (the engine only counts and passes references).
    pub fn stand_in(kind: FileKind, n: u8) -> MediaRef {
        MediaRef {
            sha256: format!("{n:02x}").repeat(32),
            mime: match kind {
                FileKind::Document => "application/pdf",
                FileKind::Audio => "audio/ogg",
                FileKind::Video => "video/mp4",
                FileKind::Sticker => "image/webp",
                FileKind::Image => "image/jpeg",
            }
            .to_owned(),
            kind,
            file_name: None,
            caption: None,
        }
    }

    /// This reference as a slot entry.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_names_are_none() {
        for k in FileKind::ALL {
            assert_eq!(FileKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(FileKind::parse("photo"), None);
    }

    #[test]
    fn a_slot_lists_its_references_and_skips_other_values() {
        let r = MediaRef {
            sha256: "ab".repeat(32),
            mime: "image/jpeg".into(),
            kind: FileKind::Image,
            file_name: None,
            caption: Some("front bumper".into()),
        };
        let slot = Value::Array(vec![r.to_value(), Value::String("x".into())]);
        assert_eq!(MediaRef::list(Some(&slot)), vec![r]);
        assert!(MediaRef::list(None).is_empty());
    }
}
