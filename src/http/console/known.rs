//! "What the bot knows" on the conversation page: the conversation's saved slots as labelled
//! values, masked as the bot masks them when it speaks (policy numbers to their last four
//! characters, amounts in ₹ with Indian grouping, dates dd/mm/yyyy; see
//! [`crate::engine::i18n::display_value`]). Two things are never shown: links (a pay link is
//! a bearer token for paying that premium, a document link may carry an access token) and the
//! date of birth typed to verify (with the policy number it is what proves identity to the
//! bot). Lists (the policies or claims a flow listed) are summarised field by field, never
//! dumped as JSON.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::engine::i18n::display_value;

/// What replaces a link.
pub const LINK_HIDDEN: &str = "a link (not shown)";
/// What replaces a verification secret.
pub const SECRET_HIDDEN: &str = "given (not shown)";

/// One labelled value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    pub label: String,
    pub value: String,
}

/// The slots as the agent sees them, in the slots' (alphabetical) order.
pub fn facts(slots: &BTreeMap<String, Value>) -> Vec<Fact> {
    slots
        .iter()
        .map(|(key, value)| Fact {
            label: label(key),
            value: show(key, value),
        })
        .collect()
}

/// `premium_amount` → `Premium amount`; a few keys get the words an agent would use.
fn label(key: &str) -> String {
    let known = match key {
        "policy_id" => Some("Chosen policy"),
        "dob" => Some("Date of birth"),
        "policy_count" => Some("Policies found"),
        "claim_count" => Some("Open claims found"),
        _ => None,
    };
    if let Some(l) = known {
        return l.to_owned();
    }
    let words = key.replace('_', " ");
    let mut chars = words.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

fn is_link(key: &str, value: &Value) -> bool {
    key.ends_with("link")
        || key.ends_with("url")
        || value.as_str().is_some_and(|s| s.contains("://"))
}

fn is_secret(key: &str) -> bool {
    matches!(key, "dob" | "date_of_birth" | "otp" | "pin" | "password")
}

/// One value: masked scalars, a hidden link or secret, or a list summarised item by item.
fn show(key: &str, value: &Value) -> String {
    if is_link(key, value) {
        return LINK_HIDDEN.to_owned();
    }
    if is_secret(key) {
        return SECRET_HIDDEN.to_owned();
    }
    match value {
        Value::Null => "-".to_owned(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Array(items) if items.is_empty() => "none".to_owned(),
        Value::Array(items) => items
            .iter()
            .map(|item| show(key, item))
            .collect::<Vec<_>>()
            .join("; "),
        Value::Object(fields) => fields
            .iter()
            // A list row's id repeats another field of the row (the policy number).
            .filter(|(k, _)| !k.ends_with("_id"))
            .map(|(k, v)| format!("{}: {}", label(k).to_lowercase(), show(k, v)))
            .collect::<Vec<_>>()
            .join(", "),
        scalar => display_value(key, scalar).unwrap_or_else(|| "-".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts_of(v: Value) -> Vec<(String, String)> {
        let slots: BTreeMap<String, Value> = serde_json::from_value(v).unwrap();
        facts(&slots)
            .into_iter()
            .map(|f| (f.label, f.value))
            .collect()
    }

    #[test]
    fn policy_numbers_are_masked_links_and_birth_dates_hidden() {
        let shown = facts_of(json!({
            "policy_id": "H-2023/100245",
            "policy_number": "H-2023/100245",
            "premium_amount": 12340.0,
            "due_date": "2026-01-15",
            "pay_link": "https://pay.example.in/p/H-2023%2F100245?t=1.2.3.abc",
            "document_url": "https://docs.example.in/x?token=secret",
            "dob": "1980-02-01",
            "policies": [
                { "policy_id": "H-2023/100245", "plan": "Arogya", "policy_number": "H-2023/100245" }
            ],
            "claims": [],
            "verified": true,
        }));
        let text: String = shown.iter().map(|(l, v)| format!("{l}={v}\n")).collect();
        assert!(!text.contains("100245"), "{text}");
        assert!(
            !text.contains("https://") && !text.contains("t=1.2.3"),
            "{text}"
        );
        assert!(!text.contains("1980") && !text.contains("01/02"), "{text}");
        assert!(
            !text.contains('{') && !text.contains('['),
            "no JSON: {text}"
        );
        let get = |label: &str| {
            shown
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("Chosen policy"), Some("••••0245"));
        assert_eq!(get("Premium amount"), Some("₹12,340"));
        assert_eq!(get("Due date"), Some("15/01/2026"));
        assert_eq!(get("Pay link"), Some(LINK_HIDDEN));
        assert_eq!(get("Document url"), Some(LINK_HIDDEN));
        assert_eq!(get("Date of birth"), Some(SECRET_HIDDEN));
        assert_eq!(
            get("Policies"),
            Some("plan: Arogya, policy number: ••••0245")
        );
        assert_eq!(get("Claims"), Some("none"));
        assert_eq!(get("Verified"), Some("yes"));
    }
}
