//! The business numbers of one deployment (`[[whatsapp.numbers]]`): a claims line, a sales
//! line, one per brand or region. Each has its own phone number id (where replies leave from
//! and the rate budget's key), display number (what agents see) and sending rate. (One
//! WhatsApp Business Account's templates and one default language serve them all so far:
//! `whatsapp.waba_id`, `dialogue.default_language`.)
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
}

/// A configured number with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessNumber {
    pub phone_number_id: String,
    pub display_number: Option<String>,
    pub rate_per_second: u32,
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
            }];
        }
        wa.numbers
            .iter()
            .map(|n| BusinessNumber {
                phone_number_id: n.phone_number_id.clone(),
                display_number: n.display_number.clone(),
                rate_per_second: n.rate_per_second.unwrap_or(self.messaging.rate_per_second),
            })
            .collect()
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
        }
        Ok(())
    }
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
            // Not per number (yet): one WABA and one default language serve every number.
            (
                "phone_number_id = \"1\"\nwaba_id = \"5\"",
                "unknown field `waba_id`",
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
}
