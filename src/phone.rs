//! [`PhoneNumber`]: a mobile number as WhatsApp writes it (`wa_id`: 8 to 15 digits, country
//! code first), the one type every boundary parses phone numbers into. Two readings, because
//! two kinds of input exist:
//! - [`PhoneNumber::parse`] for numbers given as international numbers (the API, the CLI, a
//!   WhatsApp id): punctuation is dropped, but a national form is refused with the reason,
//!   since no country code starts with 0 and guessing one would message a stranger;
//! - [`PhoneNumber::from_export`] for insurers' files and systems (policy imports, campaign
//!   CSVs, the insurer API, the simulator), which store Indian mobiles nationally: `09812345678`
//!   and `9812345678` become `919812345678`.
//!
//! Before this type the four parsers disagreed: `09812345678` became `919812345678` on import
//! but stayed `09812345678` in a campaign CSV, so the campaign went to a number that does not
//! exist on WhatsApp.

use std::fmt;

/// The country code a national (10-digit or 0-prefixed) number in an insurer's export is read
/// with: the insurers this serves are Indian.
const EXPORT_COUNTRY_CODE: &str = "91";

/// A phone number in WhatsApp's form: digits only, country code first, 8 to 15 of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

/// Why a text is not a phone number; its `Display` is a sentence fragment for API problems
/// ("phone: may contain only digits…").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("is empty")]
    Empty,
    #[error("may contain only digits, spaces, '-', '(', ')', '.' and a leading '+'")]
    Characters,
    #[error("starts with 0: write it with the country code first (for India 91…)")]
    NationalForm,
    #[error("must have 8 to 15 digits with the country code (got {0})")]
    Length(usize),
}

impl PhoneNumber {
    /// An international number: `+91 98123-45678`, `919812345678`, `0091 98123 45678`.
    ///
    /// # Errors
    /// What is wrong, as a [`PhoneError`].
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let (plus, digits) = digits_of(raw)?;
        let digits = match digits.strip_prefix("00") {
            // The international call prefix, as in 0091…
            Some(rest) if !plus => rest.to_owned(),
            _ if digits.starts_with('0') => return Err(PhoneError::NationalForm),
            _ => digits,
        };
        Self::checked(digits)
    }

    /// A number from an insurer's data: as [`parse`](Self::parse), and an Indian national form
    /// (`09812345678`, or ten digits starting 6 to 9) gets the country code.
    ///
    /// # Errors
    /// What is wrong, as a [`PhoneError`].
    pub fn from_export(raw: &str) -> Result<Self, PhoneError> {
        let (plus, digits) = digits_of(raw)?;
        // "00…" is the international call prefix, not a national number.
        if !plus && !digits.starts_with("00") {
            if digits.len() == 11
                && let Some(national) = digits.strip_prefix('0')
            {
                return Self::checked(format!("{EXPORT_COUNTRY_CODE}{national}"));
            }
            if digits.len() == 10 && digits.starts_with(['6', '7', '8', '9']) {
                return Self::checked(format!("{EXPORT_COUNTRY_CODE}{digits}"));
            }
        }
        Self::parse(raw)
    }

    /// The digits, as stored and as WhatsApp's `wa_id`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    fn checked(digits: String) -> Result<Self, PhoneError> {
        if (8..=15).contains(&digits.len()) {
            Ok(Self(digits))
        } else {
            Err(PhoneError::Length(digits.len()))
        }
    }
}

/// Whether the text starts with '+', and its digits; refuses anything but digits and the
/// punctuation people write numbers with.
fn digits_of(raw: &str) -> Result<(bool, String), PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
    {
        return Err(PhoneError::Characters);
    }
    Ok((plus, rest.chars().filter(char::is_ascii_digit).collect()))
}

impl fmt::Display for PhoneNumber {
    /// The digits. Personal data: log it only through [`crate::privacy`]'s masking.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Result<String, PhoneError> {
        PhoneNumber::parse(raw).map(PhoneNumber::into_string)
    }

    fn exported(raw: &str) -> Result<String, PhoneError> {
        PhoneNumber::from_export(raw).map(PhoneNumber::into_string)
    }

    #[test]
    fn international_numbers_lose_their_punctuation() {
        for raw in [
            "919812345678",
            "+91 98123 45678",
            "+91 (98123) 45-678",
            " +91.98123.45678 ",
            "0091 98123 45678",
        ] {
            assert_eq!(parsed(raw).as_deref(), Ok("919812345678"), "{raw}");
        }
        assert_eq!(parsed("+44 20 7946 0958").as_deref(), Ok("442079460958"));
    }

    #[test]
    fn the_strict_reading_refuses_with_the_reason() {
        assert_eq!(parsed(""), Err(PhoneError::Empty));
        assert_eq!(parsed("  "), Err(PhoneError::Empty));
        assert_eq!(parsed("98123abc78"), Err(PhoneError::Characters));
        assert_eq!(parsed("91+9812345678"), Err(PhoneError::Characters));
        assert_eq!(parsed("09812345678"), Err(PhoneError::NationalForm));
        assert_eq!(parsed("12345"), Err(PhoneError::Length(5)));
        assert_eq!(parsed("1234567890123456"), Err(PhoneError::Length(16)));
        assert!(PhoneError::Length(5).to_string().contains("8 to 15"));
    }

    #[test]
    fn exports_read_indian_national_forms_with_the_country_code() {
        for raw in [
            "9812345678",
            "09812345678",
            "098123-45678",
            "+91 98123-45678",
            "919812345678",
        ] {
            assert_eq!(exported(raw).as_deref(), Ok("919812345678"), "{raw}");
        }
        // A '+' number is international as written, even with ten digits.
        assert_eq!(exported("+4420794609").as_deref(), Ok("4420794609"));
        assert_eq!(exported("+44 20 7946 0958").as_deref(), Ok("442079460958"));
        assert_eq!(exported("00441234567").as_deref(), Ok("441234567"));
        assert_eq!(exported("12345"), Err(PhoneError::Length(5)));
        assert_eq!(exported("98123abc78"), Err(PhoneError::Characters));
    }
}
