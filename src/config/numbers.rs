//! The business numbers of one deployment (`[[whatsapp.numbers]]`): a claims line, a sales
//! line, one per brand or region. Each has its own phone number id (where replies leave from
//! and the rate budget's key), display number (what agents see), sending rate, WhatsApp
//! Business Account (whose approved templates its messages use outside the window), default
//! language (a new contact who first writes to it starts in it) and the flows that answer on
//! it (a claims line need not sell policies).
//!
//! Without a list the single-number keys (`whatsapp.phone_number_id`,
//! `messaging.rate_per_second`) make a list of one, so an existing configuration keeps working
//! unchanged and the sandbox needs nothing.

use std::collections::HashSet;

use serde::Deserialize;

use super::{ConfigError, Settings, invalid};

/// One business number as configured.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NumberSettings {
    /// The phone number id from WhatsApp Manager (digits): the webhook's
    /// `metadata.phone_number_id` and the `/{id}/messages` path replies are sent to.
    pub phone_number_id: String,
    /// The number as people dial it (`+91 22 5555 0101`), shown in the console.
    #[serde(default)]
    pub display_number: Option<String>,
    /// Messages per second this number may send (Meta's tier for it). Default:
    /// `messaging.rate_per_second`.
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    /// The WhatsApp Business Account the number belongs to: its templates are the ones this
    /// number may send. Default: `whatsapp.waba_id`.
    #[serde(default)]
    pub waba_id: Option<String>,
    /// The language a contact who first writes to this number starts in (one of the
    /// locales). Default: `dialogue.default_language`.
    #[serde(default)]
    pub default_language: Option<String>,
    /// The flow ids that answer on this number (menus, keywords, free text); the consent,
    /// opt-out and hand-off keywords work everywhere. Default: every flow.
    #[serde(default)]
    pub flows: Option<Vec<String>>,
}

/// A configured number with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessNumber {
    pub phone_number_id: String,
    pub display_number: Option<String>,
    pub rate_per_second: u32,
    /// Its WhatsApp Business Account; empty when none is configured (the sandbox, or a
    /// deployment that never syncs templates): one registry then serves every number.
    pub waba_id: String,
    pub default_language: String,
    /// `None`: every flow answers.
    pub flows: Option<Vec<String>>,
}

impl Settings {
    /// The deployment's business numbers, the first being the default (what a message that
    /// names no number and answers none leaves from). Never empty.
    pub fn numbers(&self) -> Vec<BusinessNumber> {
        let wa = &self.whatsapp;
        if wa.numbers.is_empty() {
            return vec![BusinessNumber {
                phone_number_id: wa.phone_number_id.clone(),
                display_number: None,
                rate_per_second: self.messaging.rate_per_second,
                waba_id: self.default_waba(),
                default_language: self.dialogue.default_language.clone(),
                flows: None,
            }];
        }
        wa.numbers
            .iter()
            .map(|n| BusinessNumber {
                phone_number_id: n.phone_number_id.clone(),
                display_number: n.display_number.clone(),
                rate_per_second: n.rate_per_second.unwrap_or(self.messaging.rate_per_second),
                waba_id: n.waba_id.clone().unwrap_or_else(|| self.default_waba()),
                default_language: n
                    .default_language
                    .clone()
                    .unwrap_or_else(|| self.dialogue.default_language.clone()),
                flows: n.flows.clone(),
            })
            .collect()
    }

    /// `whatsapp.waba_id`, or empty when unset.
    fn default_waba(&self) -> String {
        self.whatsapp.waba_id.clone().unwrap_or_default()
    }

    /// The WhatsApp Business Account of the number `phone_number_id` (see
    /// [`BusinessNumber::waba_id`]); `None` or a number that is not configured: the first
    /// number's, where such a message leaves from.
    pub fn waba_of(&self, phone_number_id: Option<&str>) -> String {
        let mut numbers = self.numbers();
        let i = phone_number_id
            .and_then(|id| numbers.iter().position(|n| n.phone_number_id == id))
            .unwrap_or(0);
        numbers.swap_remove(i).waba_id
    }

    /// Every WhatsApp Business Account the numbers belong to, once each, the first number's
    /// first: the template registries to seed and sync.
    pub fn wabas(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in self.numbers() {
            if !out.contains(&n.waba_id) {
                out.push(n.waba_id);
            }
        }
        out
    }

    /// Whether `phone_number_id` is one of the deployment's numbers (without building the
    /// list: it is asked for every inbound message).
    pub fn serves_number(&self, phone_number_id: &str) -> bool {
        let wa = &self.whatsapp;
        if wa.numbers.is_empty() {
            return wa.phone_number_id == phone_number_id;
        }
        wa.numbers
            .iter()
            .any(|n| n.phone_number_id == phone_number_id)
    }

    /// The first number's phone number id: where a message that names no number and answers
    /// none leaves from (without building the list: the webhook asks for it).
    pub fn first_number_id(&self) -> &str {
        let wa = &self.whatsapp;
        wa.numbers
            .first()
            .map_or(wa.phone_number_id.as_str(), |n| n.phone_number_id.as_str())
    }

    /// How agents see the number `phone_number_id`: its display number when configured
    /// (`+91 22 5555 0101`), else the id itself.
    pub fn number_label(&self, phone_number_id: &str) -> String {
        self.whatsapp
            .numbers
            .iter()
            .find(|n| n.phone_number_id == phone_number_id)
            .and_then(|n| n.display_number.clone())
            .unwrap_or_else(|| phone_number_id.to_owned())
    }

    /// Checks the list: each entry's values, and no phone number id twice.
    ///
    /// # Errors
    /// The first wrong entry, named by its place in the list (`whatsapp.numbers[2].rate_per_second`).
    pub(super) fn check_numbers(&self) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for (i, n) in self.whatsapp.numbers.iter().enumerate() {
            let key = |field: &str| format!("whatsapp.numbers[{i}].{field}");
            if n.phone_number_id.is_empty()
                || !n.phone_number_id.chars().all(|c| c.is_ascii_digit())
            {
                return Err(invalid(
                    &key("phone_number_id"),
                    "must be the numeric phone number id from WhatsApp Manager",
                ));
            }
            if !seen.insert(n.phone_number_id.as_str()) {
                return Err(invalid(
                    &key("phone_number_id"),
                    format!(
                        "{} is configured twice (each number once)",
                        n.phone_number_id
                    ),
                ));
            }
            if n.rate_per_second
                .is_some_and(|r| !(1..=10_000).contains(&r))
            {
                return Err(invalid(
                    &key("rate_per_second"),
                    "must be between 1 and 10000",
                ));
            }
            if n.waba_id
                .as_ref()
                .is_some_and(|w| w.is_empty() || !w.chars().all(|c| c.is_ascii_digit()))
            {
                return Err(invalid(
                    &key("waba_id"),
                    "must be the numeric WhatsApp Business Account id",
                ));
            }
            if n.flows.as_ref().is_some_and(Vec::is_empty) {
                return Err(invalid(
                    &key("flows"),
                    "lists no flow (leave it out for every flow)",
                ));
            }
        }
        Ok(())
    }

    /// Checks each number's `default_language` against the loaded `languages` and its
    /// `flows` against the loaded flow ids (known only once the flows and locales are read,
    /// so not part of loading the settings).
    ///
    /// # Errors
    /// The first entry naming a language or flow that does not exist, with the nearest one
    /// that does (`whatsapp.numbers[1].flows: no flow "claim_stats" (did you mean
    /// "claim_status"?)`).
    pub fn check_numbers_against(
        &self,
        languages: &[&str],
        flow_ids: &[&str],
    ) -> Result<(), ConfigError> {
        for (i, n) in self.whatsapp.numbers.iter().enumerate() {
            let key = |field: &str| format!("whatsapp.numbers[{i}].{field}");
            if let Some(language) = &n.default_language
                && !languages.contains(&language.as_str())
            {
                return Err(invalid(
                    &key("default_language"),
                    format!(
                        "no locale \"{language}\"{} (locales: {})",
                        did_you_mean(language, languages),
                        languages.join(", ")
                    ),
                ));
            }
            for flow in n.flows.iter().flatten() {
                if !flow_ids.contains(&flow.as_str()) {
                    return Err(invalid(
                        &key("flows"),
                        format!("no flow \"{flow}\"{}", did_you_mean(flow, flow_ids)),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// ` (did you mean "x"?)` for the known name nearest to `wrong`, when one is near (at most a
/// third of its letters different); else nothing.
fn did_you_mean(wrong: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (edit_distance(wrong, k), *k))
        .filter(|(d, k)| *d <= k.chars().count().max(3) / 3)
        .min()
        .map(|(_, k)| format!(" (did you mean \"{k}\"?)"))
        .unwrap_or_default()
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str) -> Result<Settings, ConfigError> {
        Settings::from_sources(Some(file), &Default::default())
    }

    #[test]
    fn without_a_list_the_single_number_keys_make_a_list_of_one() {
        let s = load("[whatsapp]\nphone_number_id = \"123\"\n[messaging]\nrate_per_second = 20\n")
            .unwrap();
        let numbers = s.numbers();
        assert_eq!(numbers.len(), 1);
        assert_eq!(numbers[0].phone_number_id, "123");
        assert_eq!(numbers[0].rate_per_second, 20);
    }

    #[test]
    fn a_list_fills_each_numbers_defaults_from_the_single_number_keys() {
        let s = load(
            "[[whatsapp.numbers]]\nphone_number_id = \"111\"\ndisplay_number = \"+91 1\"\n\
             [[whatsapp.numbers]]\nphone_number_id = \"222\"\nrate_per_second = 5\n",
        )
        .unwrap();
        let numbers = s.numbers();
        assert_eq!(numbers.len(), 2);
        assert_eq!(numbers[0].phone_number_id, "111");
        assert_eq!(numbers[0].display_number.as_deref(), Some("+91 1"));
        assert_eq!(numbers[0].rate_per_second, 80);
        assert_eq!(numbers[1].display_number, None);
        assert_eq!(numbers[1].rate_per_second, 5);
    }

    #[test]
    fn a_number_configured_twice_is_refused_naming_its_entry() {
        let e = load("[[whatsapp.numbers]]\nphone_number_id = \"111\"\n[[whatsapp.numbers]]\nphone_number_id = \"111\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("whatsapp.numbers[1].phone_number_id"), "{e}");
        assert!(e.contains("configured twice"), "{e}");
    }

    #[test]
    fn wrong_values_in_an_entry_are_refused_naming_the_field() {
        for (entry, field) in [
            (
                "phone_number_id = \"12ab\"",
                "whatsapp.numbers[0].phone_number_id",
            ),
            (
                "phone_number_id = \"1\"\nrate_per_second = 0",
                "whatsapp.numbers[0].rate_per_second",
            ),
            (
                "phone_number_id = \"1\"\nwaba_id = \"WABA-5\"",
                "whatsapp.numbers[0].waba_id",
            ),
            (
                "phone_number_id = \"1\"\nflows = []",
                "whatsapp.numbers[0].flows",
            ),
            (
                "phone_number_id = \"1\"\nflow = [\"claim_status\"]",
                "unknown field `flow`",
            ),
        ] {
            let e = load(&format!("[[whatsapp.numbers]]\n{entry}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{entry}: {e}");
        }
    }

    #[test]
    fn an_entry_without_its_phone_number_id_is_refused_naming_the_field() {
        let e = load("[[whatsapp.numbers]]\ndisplay_number = \"+91 1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("phone_number_id"), "{e}");
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn each_number_has_its_waba_language_and_flows_else_the_deployments() {
        let s = load(
            "[whatsapp]\nwaba_id = \"900\"\n[dialogue]\ndefault_language = \"hi\"\n\
             [[whatsapp.numbers]]\nphone_number_id = \"111\"\n\
             [[whatsapp.numbers]]\nphone_number_id = \"222\"\nwaba_id = \"901\"\n\
             default_language = \"ta\"\nflows = [\"claim_status\"]\n\
             [[whatsapp.numbers]]\nphone_number_id = \"333\"\nwaba_id = \"900\"\n",
        )
        .unwrap();
        let numbers = s.numbers();
        assert_eq!(numbers[0].waba_id, "900");
        assert_eq!(numbers[0].default_language, "hi");
        assert_eq!(numbers[0].flows, None);
        assert_eq!(numbers[1].waba_id, "901");
        assert_eq!(numbers[1].default_language, "ta");
        assert_eq!(numbers[1].flows, Some(vec!["claim_status".to_owned()]));
        assert_eq!(s.waba_of(Some("222")), "901");
        assert_eq!(s.waba_of(Some("333")), "900");
        assert_eq!(s.waba_of(None), "900", "no number: the first's");
        assert_eq!(
            s.wabas(),
            ["900", "901"],
            "each WABA once, the first number's first"
        );
        // No WABA anywhere (the sandbox): one registry, named by the empty id.
        assert_eq!(load("").unwrap().wabas(), [""]);
    }

    #[test]
    fn a_numbers_language_and_flows_are_checked_against_what_is_loaded_with_a_hint() {
        let s = load(
            "[[whatsapp.numbers]]\nphone_number_id = \"111\"\n\
             [[whatsapp.numbers]]\nphone_number_id = \"222\"\nflows = [\"claim_status\", \"claim_stats\"]\n",
        )
        .unwrap();
        let flows = ["claim_status", "policy_lookup", "menu"];
        let e = s
            .check_numbers_against(&["en", "hi", "ta"], &flows)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                r#"whatsapp.numbers[1].flows: no flow "claim_stats" (did you mean "claim_status"?)"#
            ),
            "{e}"
        );
        let s =
            load("[[whatsapp.numbers]]\nphone_number_id = \"111\"\ndefault_language = \"tam\"\n")
                .unwrap();
        let e = s
            .check_numbers_against(&["en", "hi", "ta"], &flows)
            .unwrap_err()
            .to_string();
        assert!(e.contains("whatsapp.numbers[0].default_language"), "{e}");
        assert!(e.contains(r#"no locale "tam" (did you mean "ta"?)"#), "{e}");
        // Nothing near: no guess.
        let s = load("[[whatsapp.numbers]]\nphone_number_id = \"111\"\nflows = [\"renewals\"]\n")
            .unwrap();
        let e = s
            .check_numbers_against(&["en"], &flows)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with(r#"no flow "renewals""#), "{e}");
        assert!(s.check_numbers_against(&["en"], &["renewals"]).is_ok());
    }
}
