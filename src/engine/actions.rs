//! The catalogue of insurer actions flows may call: names, arguments, outcomes, result fields.
//!
//! The engine never performs an action; it emits `Effect::CallAction` and later receives
//! `Event::ActionResult`. This table is the contract with the insurer layer: the linter
//! rejects unknown actions and an `on:` that misses (or invents) an outcome, and
//! `flows/README.md` documents the same table for flow authors. Every action can also
//! return `error` (the insurer system failed or timed out), so flows must branch on it.

/// One action the insurer layer implements.
#[derive(Debug, Clone, Copy)]
pub struct ActionSpec {
    /// Name used in flow files (`action: claim.status`).
    pub name: &'static str,
    /// Slots the action reads (passed as `args`).
    pub args: &'static [&'static str],
    /// Outcomes it can return, `error` included.
    pub outcomes: &'static [&'static str],
    /// Fields of the result `data` object, merged into the conversation's slots.
    pub result_fields: &'static [&'static str],
}

/// The insurer actions as a type: the insurer layer matches them exhaustively (a new action
/// does not compile until it is implemented), and [`Action::spec`] gives each one's name,
/// arguments and outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    IdentityCheck,
    IdentityVerifyDob,
    IdentitySendOtp,
    IdentityVerifyOtp,
    PolicyList,
    PolicyDetails,
    ClaimStatus,
    ClaimListOpen,
    PolicyDocument,
    PremiumDue,
    PremiumRemindLater,
    ClaimLossTypes,
    ClaimIntimate,
    ClaimAttachDocuments,
}

impl Action {
    /// Every action, in declaration order (a test checks it is complete and in order).
    pub const ALL: [Action; 14] = [
        Action::IdentityCheck,
        Action::IdentityVerifyDob,
        Action::IdentitySendOtp,
        Action::IdentityVerifyOtp,
        Action::PolicyList,
        Action::PolicyDetails,
        Action::ClaimStatus,
        Action::ClaimListOpen,
        Action::PolicyDocument,
        Action::PremiumDue,
        Action::PremiumRemindLater,
        Action::ClaimLossTypes,
        Action::ClaimIntimate,
        Action::ClaimAttachDocuments,
    ];

    /// Its entry in the catalogue: the one place an action's name, arguments, outcomes and
    /// result fields are written (the match makes a new variant incomplete until it has one).
    pub fn spec(self) -> &'static ActionSpec {
        match self {
            Action::IdentityCheck => &ActionSpec {
                name: "identity.check",
                args: &[],
                outcomes: &["verified", "not_registered", "locked", "error"],
                result_fields: &["verified", "customer_name"],
            },
            Action::IdentityVerifyDob => &ActionSpec {
                name: "identity.verify_dob",
                args: &["policy_number", "dob"],
                outcomes: &["verified", "mismatch", "locked", "error"],
                result_fields: &["verified", "customer_name"],
            },
            // OTP: a code to the mobile registered on the policy, for a contact writing from
            // another number (issue 19). `sent` is also the answer for a policy that does not
            // exist or has no mobile (nothing is sent then), so typing numbers reveals nothing;
            // `otp_ref` names the code for `identity.verify_otp`.
            Action::IdentitySendOtp => &ActionSpec {
                name: "identity.send_otp",
                args: &["policy_number"],
                outcomes: &["sent", "limited", "locked", "unavailable", "error"],
                result_fields: &["otp_ref"],
            },
            Action::IdentityVerifyOtp => &ActionSpec {
                name: "identity.verify_otp",
                args: &["policy_number", "otp_ref", "otp_code"],
                outcomes: &["verified", "wrong", "expired", "locked", "error"],
                // `otp_code` comes back empty: the typed code does not stay in the slots.
                result_fields: &["verified", "customer_name", "otp_code"],
            },
            Action::PolicyList => &ActionSpec {
                name: "policy.list",
                args: &[],
                outcomes: &["none", "one", "many", "error"],
                result_fields: &["policies", "policy_count", "policy_id"],
            },
            Action::PolicyDetails => &ActionSpec {
                name: "policy.details",
                args: &["policy_id"],
                outcomes: &["found", "not_found", "error"],
                result_fields: &[
                    "policy_number",
                    "plan",
                    "policy_status",
                    "policy_type",
                    "sum_assured",
                    "next_due_date",
                ],
            },
            Action::ClaimStatus => &ActionSpec {
                name: "claim.status",
                args: &["claim_number"],
                // `documents_pending`: found, and the insurer waits for documents the contact can
                // send in the chat (`claim.attach_documents`).
                outcomes: &["found", "documents_pending", "not_found", "error"],
                // `claim_letter`: the insurer's letter on the claim (e.g. the settlement letter)
                // as files, an empty list when it has none (see MEDIA_RESULT_FIELDS).
                result_fields: &[
                    "claim_stage",
                    "claim_updated_date",
                    "pending_documents",
                    "claim_letter",
                ],
            },
            Action::ClaimListOpen => &ActionSpec {
                name: "claim.list_open",
                args: &[],
                // `unverified`: the contact is verified for no policy (e.g. it expired mid-flow), so
                // "no open claims" would be a guess; flows send it back to verification.
                outcomes: &["none", "one", "many", "unverified", "error"],
                // `claims` rows carry claim_number, claim_stage, claim_updated_date and
                // pending_documents; with `one` the same four fields are also set directly.
                result_fields: &[
                    "claims",
                    "claim_count",
                    "claim_number",
                    "claim_stage",
                    "claim_updated_date",
                    "pending_documents",
                ],
            },
            Action::PolicyDocument => &ActionSpec {
                name: "policy.document",
                args: &["policy_id"],
                // `sent`: the file itself went as a WhatsApp document (issue 18); `found`: a link.
                outcomes: &["sent", "found", "no_document", "not_found", "error"],
                result_fields: &["policy_number", "plan", "document_url"],
            },
            Action::PremiumDue => &ActionSpec {
                name: "premium.due",
                args: &["policy_id"],
                outcomes: &["due", "not_due", "error"],
                result_fields: &["policy_number", "premium_amount", "due_date", "pay_link"],
            },
            Action::PremiumRemindLater => &ActionSpec {
                name: "premium.remind_later",
                args: &["policy_id", "due_date"],
                outcomes: &["scheduled", "error"],
                result_fields: &["remind_date"],
            },
            // Claim intimation (issue 18). `loss_types` rows carry `loss_type`, one of
            // `vocabulary::LOSS_TYPES` chosen by the policy's product.
            Action::ClaimLossTypes => &ActionSpec {
                name: "claim.loss_types",
                args: &["policy_id"],
                outcomes: &["listed", "not_found", "error"],
                result_fields: &["policy_number", "plan", "policy_type", "loss_types"],
            },
            // First notice of loss: a new claim on a policy the contact is verified for, with the
            // files of a media step (`claim_files`, a list of media references).
            Action::ClaimIntimate => &ActionSpec {
                name: "claim.intimate",
                args: &[
                    "policy_id",
                    "loss_type",
                    "loss_date",
                    "loss_description",
                    "claim_files",
                ],
                outcomes: &["intimated", "not_found", "error"],
                result_fields: &["claim_number", "claim_stage"],
            },
            // Pending documents sent in the chat, to a claim the contact may see.
            Action::ClaimAttachDocuments => &ActionSpec {
                name: "claim.attach_documents",
                args: &["claim_number", "claim_files"],
                // `no_files`: "Done" before any file; the flow asks for them again.
                outcomes: &["attached", "no_files", "not_found", "error"],
                result_fields: &["documents_attached"],
            },
        }
    }

    /// The name flows use (`claim.status`).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The action a flow names, if it exists.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.name() == name)
    }

    /// Every action's catalogue entry, in [`Action::ALL`] order.
    pub fn specs() -> impl Iterator<Item = &'static ActionSpec> {
        Action::ALL.into_iter().map(Action::spec)
    }
}

/// Result fields that hold files (a list of `media_slot::MediaRef`, already in the media
/// store), by action: a `send_files:` state may send them.
pub const MEDIA_RESULT_FIELDS: &[(Action, &str)] = &[(Action::ClaimStatus, "claim_letter")];

/// Looks an action up by name.
pub fn find(name: &str) -> Option<&'static ActionSpec> {
    Action::from_name(name).map(Action::spec)
}

/// The action a state names, resolved against the catalogue once, when the flow file is read:
/// the runner then calls it without looking the name up again. An unknown name is kept as
/// written for the linter's diagnostic (a flow set with one never loads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRef {
    Known(Action),
    Unknown(String),
}

impl ActionRef {
    /// The catalogue's action, unless the name is unknown.
    pub fn known(&self) -> Option<Action> {
        match self {
            ActionRef::Known(action) => Some(*action),
            ActionRef::Unknown(_) => None,
        }
    }

    /// The name as the flow wrote it.
    pub fn name(&self) -> &str {
        match self {
            ActionRef::Known(action) => action.name(),
            ActionRef::Unknown(name) => name,
        }
    }
}

impl std::fmt::Display for ActionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for ActionRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for ActionRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match Action::from_name(&name) {
            Some(action) => ActionRef::Known(action),
            None => ActionRef::Unknown(name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enum_and_the_catalogue_list_the_same_actions_in_the_same_order() {
        // `ALL` complete: the last variant's index is its length less one.
        assert_eq!(Action::ClaimAttachDocuments as usize + 1, Action::ALL.len());
        for (i, action) in Action::ALL.into_iter().enumerate() {
            assert_eq!(action as usize, i, "{action:?} out of order");
            assert_eq!(Action::from_name(action.name()), Some(action));
        }
        assert_eq!(Action::from_name("policy.cancel"), None);
    }

    /// `schema` (the text of `flows/schema.json`) with the list of action names a state's
    /// `action:` may take replaced by the catalogue's, in catalogue order and the file's own
    /// indentation.
    fn schema_with_actions(schema: &str) -> String {
        let action = schema
            .find("\"action\": {")
            .expect("flows/schema.json has an \"action\" property");
        let open = action + schema[action..].find("\"enum\": [").expect("an enum") + 9;
        let close = open + schema[open..].find(']').expect("the enum's end");
        // The indentation of the closing bracket's line, and one level (two spaces) more for
        // the items.
        let line_start = schema[..close].rfind('\n').map_or(0, |i| i + 1);
        let outer = &schema[line_start..close];
        let items: Vec<String> = Action::specs()
            .map(|a| format!("{outer}  \"{}\"", a.name))
            .collect();
        format!(
            "{}\n{}\n{outer}{}",
            &schema[..open],
            items.join(",\n"),
            &schema[close..]
        )
    }

    /// `flows/schema.json` is generated from the catalogue, not kept in step by hand: adding
    /// an action to [`Action`] and running `UPDATE_SCHEMA=1 cargo test --lib flows_schema`
    /// writes the new list; without it, a list that differs fails here.
    #[test]
    fn flows_schema_lists_the_catalogue_actions() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/schema.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let generated = schema_with_actions(&text);
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        assert!(
            text == generated,
            "flows/schema.json's action list differs from the Action catalogue in src/engine/actions.rs; \
             regenerate it: UPDATE_SCHEMA=1 cargo test --lib flows_schema"
        );
        let schema: serde_json::Value = serde_json::from_str(&generated).unwrap();
        let names = &schema["$defs"]["state"]["properties"]["action"]["enum"];
        assert_eq!(names.as_array().map(Vec::len), Some(Action::ALL.len()));
    }

    #[test]
    fn the_generated_list_replaces_any_old_one() {
        let old = "{\n  \"action\": {\n    \"enum\": [\n      \"x.gone\"\n    ],\n    \"description\": \"d\"\n  }\n}\n";
        let new = schema_with_actions(old);
        let value: serde_json::Value = serde_json::from_str(&new).unwrap();
        let names: Vec<&str> = value["action"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(names, Action::specs().map(|a| a.name).collect::<Vec<_>>());
        assert!(new.contains("\n      \"identity.check\",\n"), "{new}");
        assert!(
            new.ends_with("\n    ],\n    \"description\": \"d\"\n  }\n}\n"),
            "{new}"
        );
    }
}
