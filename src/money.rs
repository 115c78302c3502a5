//! Money: one type, [`Paise`], for every amount insurebot shows, so the bot, the console and
//! the reminders cannot disagree about a premium. Amounts are whole paise (`i64`), as the
//! insurer tables store them; they become rupees only in flow slots (JSON numbers the flow
//! author sees as rupees) and in text, where [`Paise`]'s `Display` writes `₹12,34,567.50` with
//! Indian digit grouping (lakh, crore) and drops `.00` from whole amounts. No IO here.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of money in paise (1 rupee = 100 paise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Paise(i64);

impl Paise {
    /// An amount of `paise` paise (what the insurer tables hold).
    pub const fn new(paise: i64) -> Self {
        Self(paise)
    }

    /// The amount in paise.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// From rupees as flow slots carry them (`12340.5`), rounded to the nearest paisa; `None`
    /// when not finite or beyond what `i64` paise hold.
    pub fn from_rupees(rupees: f64) -> Option<Self> {
        let paise = (rupees * 100.0).round();
        // `as` saturates; the range check keeps a huge slot value from becoming i64::MAX.
        (paise.is_finite() && paise.abs() < 9.0e18).then_some(Self(paise as i64))
    }

    /// The amount in rupees, for flow slots (exact for any premium: f64 holds 2^53 paise).
    pub fn rupees(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// Rupees as exports and people write them (`125000`, `1,25,000.50`, `₹ 12500`,
    /// `Rs. 500`, `INR 75`); `None` for anything else (negative amounts, more than two decimals).
    pub fn parse(raw: &str) -> Option<Self> {
        let s: String = raw
            .trim()
            .trim_start_matches('₹')
            .trim_start_matches("Rs.")
            .trim_start_matches("INR")
            .chars()
            .filter(|c| !matches!(c, ',' | ' '))
            .collect();
        let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
        if whole.is_empty()
            || frac.len() > 2
            || !whole.chars().all(|c| c.is_ascii_digit())
            || !frac.chars().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let rupees: i64 = whole.parse().ok()?;
        let paise: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<2}").parse().ok()?
        };
        rupees.checked_mul(100)?.checked_add(paise).map(Self)
    }

    /// `12340.50`: the plain decimal machines expect (payment page URLs), no symbol, no grouping.
    pub fn decimal(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl fmt::Display for Paise {
    /// `₹12,34,567.50`; whole amounts without paise (`₹5,000`); `-₹5` below zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let abs = self.0.unsigned_abs();
        let (rupees, paise) = (abs / 100, abs % 100);
        let digits = rupees.to_string();
        // The last three digits, then groups of two: 1,23,45,678.
        let grouped = if digits.len() <= 3 {
            digits
        } else {
            let (head, last3) = digits.split_at(digits.len() - 3);
            let mut parts: Vec<&str> = Vec::new();
            let mut end = head.len();
            while end > 0 {
                let start = end.saturating_sub(2);
                parts.push(&head[start..end]);
                end = start;
            }
            parts.reverse();
            format!("{},{last3}", parts.join(","))
        };
        let sign = if self.0 < 0 { "-" } else { "" };
        if paise == 0 {
            write!(f, "{sign}₹{grouped}")
        } else {
            write!(f, "{sign}₹{grouped}.{paise:02}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_with_indian_grouping() {
        assert_eq!(Paise::new(0).to_string(), "₹0");
        assert_eq!(Paise::new(99_900).to_string(), "₹999");
        assert_eq!(Paise::new(500_000).to_string(), "₹5,000");
        assert_eq!(Paise::new(1_234_000).to_string(), "₹12,340");
        assert_eq!(Paise::new(12_345_600).to_string(), "₹1,23,456");
        assert_eq!(Paise::new(1_234_567_850).to_string(), "₹1,23,45,678.50");
        assert_eq!(Paise::new(5).to_string(), "₹0.05");
        assert_eq!(Paise::new(-500).to_string(), "-₹5");
        assert_eq!(Paise::new(10_000_000_000).to_string(), "₹10,00,00,000");
        // The extremes do not overflow.
        assert!(Paise::new(i64::MIN).to_string().starts_with("-₹92,23,"));
    }

    #[test]
    fn rupees_round_trip_through_slots() {
        assert_eq!(Paise::from_rupees(12340.0), Some(Paise::new(1_234_000)));
        assert_eq!(Paise::from_rupees(0.1 + 0.2), Some(Paise::new(30)));
        assert_eq!(Paise::from_rupees(f64::NAN), None);
        assert_eq!(Paise::from_rupees(1e300), None);
        assert_eq!(Paise::new(1_250_075).rupees(), 12500.75);
    }

    #[test]
    fn amounts_are_parsed_and_written_for_machines() {
        assert_eq!(Paise::parse("125000"), Some(Paise::new(12_500_000)));
        assert_eq!(Paise::parse("1,25,000.5"), Some(Paise::new(12_500_050)));
        assert_eq!(Paise::parse("₹ 12,500.75"), Some(Paise::new(1_250_075)));
        assert_eq!(Paise::parse("12.345"), None);
        assert_eq!(Paise::parse("-5"), None);
        assert_eq!(Paise::parse(""), None);
        assert_eq!(Paise::new(1_250_005).decimal(), "12500.05");
    }
}
