//! sea-orm entities, one per table (see `migrations/`). Hand-written queries live beside them
//! in `store/`; every `*_at` field holds Unix milliseconds (UTC). Row states are enums beside
//! their tables ([`text_enum!`]), stored as the lower-case names the text columns always held.

/// An enum stored in a text column as one fixed string per variant: the sea-orm `ActiveEnum`
/// (so a model field, a filter and an update take the enum, never a string), plus `as_str`,
/// `parse`, `Display` and a serde `Serialize` as that same string (what the API and the console
/// show, and read back). Each string is written once, in the variant's `= "..."`.
///
/// The column stays text, so existing rows read as before and no migration is needed; a value
/// no variant names fails the row's read with a database type error rather than passing
/// through unchecked.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:tt, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, sea_orm::EnumIter, sea_orm::DeriveActiveEnum,
        )]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        pub enum $name {
            $( $(#[$vmeta])* #[sea_orm(string_value = $value)] $variant, )+
        }

        impl $name {
            /// The string stored in the column.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $value, )+
                }
            }

            /// The variant stored as `text`, if any.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $( $value => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }

        /// Compares with the stored string, as a test reading a row or an answer does.
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).ok_or_else(|| {
                    serde::de::Error::unknown_variant(&text, &[$($value),+])
                })
            }
        }
    };
}
pub(crate) use text_enum;

pub mod agent;
pub mod agent_session;
pub mod campaign;
pub mod campaign_recipient;
pub mod claim;
pub mod claim_document;
pub mod consent_log;
pub mod contact;
pub mod contact_window;
pub mod conversation;
pub mod flow_hop;
pub mod handoff;
pub mod identity_attempt;
pub mod identity_policy_attempt;
pub mod identity_verification;
pub mod inbound_message;
pub mod login_failure;
pub mod media_file;
pub mod media_upload;
pub mod message_status;
pub mod message_template;
pub mod misunderstood_message;
pub mod notification_request;
pub mod otp;
pub mod outbound_media;
pub mod outbox;
pub mod policy;
pub mod policyholder;
pub mod premium;
pub mod premium_reminder;
pub mod reminder_run;
pub mod reminder_send;
pub mod transcript_view;
