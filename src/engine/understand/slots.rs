//! Owns reading values out of free text the way people in India type them: claim and policy
//! numbers with spaces, dashes or lower case ("clm 240311"), dates day-first in numbers or
//! words ("12 march 85", "12-3-1985", "१२ मार्च १९८५", "12 மார்ச் 1985"; two-digit years are
//! past dates), and amounts ("₹1,50,000", "rs 5000/-", "1.5 lakh"). Yes and no live with the
//! phrase lists ([`super::Understanding::yes_no`]) because translators own those words.

use chrono::{Datelike, NaiveDate};

use super::{fuzzy, normalize};

/// A reference number (claim, policy) in `text`, as `fits` accepts it: the whole message
/// first, then each run of words that hold a digit, with the short word before it as a prefix
/// ("clm 240311") or without; each tried with the spaces removed, as dashes, and as typed.
/// `upper` upper-cases before trying.
pub fn reference(text: &str, upper: bool, fits: impl Fn(&str) -> bool) -> Option<String> {
    let text = if upper {
        text.to_uppercase()
    } else {
        text.to_owned()
    };
    let whole = text.trim();
    if !whole.is_empty() && fits(whole) {
        return Some(whole.to_owned());
    }
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| matches!(c, '.' | ',' | ':' | '!' | '?' | '#' | '"')))
        .filter(|w| !w.is_empty())
        .collect();
    let has_digit = |w: &str| w.chars().any(|c| c.is_ascii_digit());
    let mut i = 0;
    while i < words.len() {
        if !has_digit(words[i]) {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < words.len() && has_digit(words[end]) {
            end += 1;
        }
        // A prefix is a short word of letters ("CLM", "P", "POL"), not "policy" or "is".
        let prefix = (i > 0
            && words[i - 1].chars().count() <= 4
            && words[i - 1].chars().all(|c| c.is_alphabetic() || c == '-')
            && !NOT_PREFIXES.contains(&words[i - 1].to_uppercase().as_str()))
        .then(|| i - 1);
        for from in prefix.into_iter().chain([i]) {
            let run = &words[from..end];
            for candidate in [run.concat(), run.join("-"), run.join(" ")] {
                if fits(&candidate) {
                    return Some(candidate);
                }
            }
        }
        i = end;
    }
    None
}

/// Short words that come before a number without being part of it.
const NOT_PREFIXES: &[&str] = &[
    "NO", "IS", "MY", "ID", "NUM", "NR", "HAI", "KA", "KI", "KE", "THE", "OF", "FOR", "MERA",
    "MERI", "EN", "ENN",
];

/// Month names in English, Hindi and Tamil (with their common spellings), by month number.
const MONTHS: &[(u32, &[&str])] = &[
    (1, &["january", "jan", "जनवरी", "ஜனவரி"]),
    (
        2,
        &["february", "feb", "फरवरी", "फ़रवरी", "பிப்ரவரி", "பெப்ரவரி"],
    ),
    (3, &["march", "mar", "मार्च", "மார்ச்", "மார்ச்சு"]),
    (4, &["april", "apr", "अप्रैल", "अप्रेल", "ஏப்ரல்"]),
    (5, &["may", "मई", "மே"]),
    (6, &["june", "jun", "जून", "ஜூன்"]),
    (7, &["july", "jul", "जुलाई", "ஜூலை"]),
    (8, &["august", "aug", "अगस्त", "ஆகஸ்ட்", "ஆகஸ்டு"]),
    (
        9,
        &["september", "sep", "sept", "सितंबर", "सितम्बर", "செப்டம்பர்"],
    ),
    (10, &["october", "oct", "अक्टूबर", "अक्तूबर", "அக்டோபர்"]),
    (11, &["november", "nov", "नवंबर", "नवम्बर", "நவம்பர்"]),
    (12, &["december", "dec", "दिसंबर", "दिसम्बर", "டிசம்பர்"]),
];

/// The month a word names, typos allowed in the longer names ("febuary").
fn month(word: &str) -> Option<u32> {
    let w: Vec<char> = word.chars().collect();
    let mut best: Option<(f32, u32)> = None;
    for (m, names) in MONTHS {
        for name in *names {
            for n in normalize::tokens(name) {
                let n: Vec<char> = n.chars().collect();
                let s = fuzzy::similarity(&w, &n);
                if s >= 0.7 && best.is_none_or(|(b, _)| s > b) {
                    best = Some((s, *m));
                }
            }
        }
    }
    best.map(|(_, m)| m)
}

/// A date typed day first, relative to `today` for two-digit years (always in the past:
/// "85" is 1985, "05" is 2005 until 2105). `None` when it is not a real date.
pub fn date(text: &str, today: NaiveDate) -> Option<NaiveDate> {
    // Digits apart from letters ("12march", "12th"), separators as spaces.
    let mut spaced = String::new();
    let mut prev_digit: Option<bool> = None;
    for c in text.chars() {
        let c = match c {
            '०'..='९' => char::from(b'0' + (c as u32 - '०' as u32) as u8),
            '௦'..='௯' => char::from(b'0' + (c as u32 - '௦' as u32) as u8),
            c => c,
        };
        let digit = c.is_ascii_digit();
        if c.is_alphanumeric() || matches!(c, '\u{0900}'..='\u{097F}' | '\u{0B80}'..='\u{0BFF}') {
            if prev_digit.is_some_and(|p| p != digit) {
                spaced.push(' ');
            }
            spaced.push(c);
            prev_digit = Some(digit);
        } else {
            spaced.push(' ');
            prev_digit = None;
        }
    }
    let mut numbers: Vec<&str> = Vec::new();
    let mut month_word: Option<u32> = None;
    for w in spaced.split_whitespace() {
        if w.chars().all(|c| c.is_ascii_digit()) {
            numbers.push(w);
        } else if matches!(w.to_lowercase().as_str(), "st" | "nd" | "rd" | "th" | "of") {
            // "12th of March"
        } else if let Some(m) = normalize::tokens(w).first().and_then(|t| month(t)) {
            if month_word.replace(m).is_some() {
                return None;
            }
        } else {
            return None; // a word that is not part of a date
        }
    }
    let num = |s: &str| s.parse::<i32>().ok();
    let year = |s: &str| -> Option<i32> {
        let y = num(s)?;
        match s.len() {
            4 => Some(y),
            2 => {
                let this = today.year();
                let century = this - this % 100;
                Some(if century + y <= this {
                    century + y
                } else {
                    century - 100 + y
                })
            }
            _ => None,
        }
    };
    let (d, m, y) = match (month_word, numbers.as_slice()) {
        // "12 march 1985", "march 12 1985"
        (Some(m), [a, b]) if a.len() <= 2 => (num(a)?, m as i32, year(b)?),
        (Some(m), [a, b]) if b.len() <= 2 => (num(b)?, m as i32, year(a)?),
        // "1985-03-12"
        (None, [a, b, c]) if a.len() == 4 => (num(c)?, num(b)?, num(a)?),
        // "12/3/85", "12-03-1985", "12 3 1985"
        (None, [a, b, c]) if a.len() <= 2 && b.len() <= 2 => (num(a)?, num(b)?, year(c)?),
        // "12031985", "120385"
        (None, [a]) if a.len() == 8 => (num(&a[..2])?, num(&a[2..4])?, num(&a[4..])?),
        _ => return None,
    };
    NaiveDate::from_ymd_opt(y, u32::try_from(m).ok()?, u32::try_from(d).ok()?)
}

/// Multipliers people write after an amount.
const SCALES: &[(&str, f64)] = &[
    ("lakh", 1e5),
    ("lakhs", 1e5),
    ("lac", 1e5),
    ("lacs", 1e5),
    ("l", 1e5),
    ("लाख", 1e5),
    ("லட்சம்", 1e5),
    ("crore", 1e7),
    ("crores", 1e7),
    ("cr", 1e7),
    ("करोड़", 1e7),
    ("करोड", 1e7),
    ("கோடி", 1e7),
    ("k", 1e3),
    ("thousand", 1e3),
    ("hazar", 1e3),
    ("hazaar", 1e3),
    ("हज़ार", 1e3),
    ("हजार", 1e3),
    ("ஆயிரம்", 1e3),
];

/// Currency words that may stand before or after an amount.
const CURRENCY: &[&str] = &[
    "₹",
    "rs",
    "rs.",
    "inr",
    "rupees",
    "rupee",
    "rupaye",
    "rupay",
    "रुपये",
    "रुपए",
    "रु",
    "ரூபாய்",
    "ரூ",
];

/// An amount in rupees: "₹ 1,23,456.50", "Rs. 500/-", "1.5 lakh", "2 करोड़", "5k".
pub fn amount(text: &str) -> Option<f64> {
    let lower = text.to_lowercase().replace("rs.", "rs ");
    let mut t = String::new();
    let mut prev_digit = false;
    for c in lower.chars() {
        let c = match c {
            '०'..='९' => char::from(b'0' + (c as u32 - '०' as u32) as u8),
            '௦'..='௯' => char::from(b'0' + (c as u32 - '௦' as u32) as u8),
            c => c,
        };
        match c {
            ',' => {}
            '₹' => t.push_str(" ₹ "),
            c if c.is_ascii_digit() || c == '.' => {
                if !prev_digit && t.ends_with(|p: char| p.is_alphabetic()) {
                    t.push(' ');
                }
                t.push(c);
            }
            c => {
                if prev_digit && c.is_alphabetic() {
                    t.push(' ');
                }
                t.push(c);
            }
        }
        prev_digit = c.is_ascii_digit() || c == '.';
    }
    let t = t.replace("/-", " ");
    let mut value: Option<f64> = None;
    let mut scaled = false;
    for w in t.split_whitespace() {
        let w = w.trim_end_matches(['.', '!']);
        if w.is_empty() || CURRENCY.contains(&w) || w == "/" {
            continue;
        }
        if let Some((_, s)) = SCALES.iter().find(|(n, _)| *n == w) {
            if scaled {
                return None;
            }
            value = Some(value? * s);
            scaled = true;
        } else if value.is_none() && w.chars().all(|c| c.is_ascii_digit() || c == '.') {
            value = Some(w.parse::<f64>().ok()?);
        } else {
            return None;
        }
    }
    value.filter(|v| v.is_finite() && *v >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, day)
    }

    #[test]
    fn dates_in_indian_forms() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        for (text, want) in [
            ("12 march 85", d(1985, 3, 12)),
            ("12-3-1985", d(1985, 3, 12)),
            ("12/03/85", d(1985, 3, 12)),
            ("12.3.1985", d(1985, 3, 12)),
            ("1985-03-12", d(1985, 3, 12)),
            ("12th March, 1985", d(1985, 3, 12)),
            ("march 12 1985", d(1985, 3, 12)),
            ("12mar1985", d(1985, 3, 12)),
            ("१२ मार्च १९८५", d(1985, 3, 12)),
            ("12 மார்ச் 1985", d(1985, 3, 12)),
            ("5 sept 05", d(2005, 9, 5)),
            ("5 sep 27", d(1927, 9, 5)),
            ("12 febuary 1990", d(1990, 2, 12)),
            ("12031985", d(1985, 3, 12)),
            ("31/02/1990", None),
            ("08/15/1980", None),
            ("my birthday", None),
        ] {
            assert_eq!(date(text, today), want, "{text}");
        }
    }

    #[test]
    fn amounts_with_rupees_commas_and_lakh() {
        for (text, want) in [
            ("₹1,50,000", Some(150000.0)),
            ("rs 5000/-", Some(5000.0)),
            ("Rs.500", Some(500.0)),
            ("1.5 lakh", Some(150000.0)),
            ("2 lakhs rupees", Some(200000.0)),
            ("2 करोड़", Some(2e7)),
            ("५ हजार", Some(5000.0)),
            ("5k", Some(5000.0)),
            ("3 லட்சம்", Some(300000.0)),
            ("five", None),
            ("lakh", None),
        ] {
            assert_eq!(amount(text), want, "{text}");
        }
    }

    #[test]
    fn reference_numbers_with_spaces_dashes_and_lower_case() {
        let re = regex::Regex::new("^CLM-?[0-9]{6}$").unwrap();
        let fits = |s: &str| re.is_match(s);
        assert_eq!(
            reference("clm 240311", true, fits).as_deref(),
            Some("CLM240311")
        );
        assert_eq!(
            reference("CLM-240311", true, fits).as_deref(),
            Some("CLM-240311")
        );
        assert_eq!(
            reference("my claim no is clm-240311 pls", true, fits).as_deref(),
            Some("CLM-240311")
        );
        assert_eq!(reference("my claim is late", true, fits), None);
        assert_eq!(reference("claim no 240311", true, fits), None);
        let policy = regex::Regex::new("^[A-Z0-9/-]{6,20}$").unwrap();
        assert_eq!(
            reference("policy no p 1234 5678", true, |s| policy.is_match(s)).as_deref(),
            Some("P12345678")
        );
    }
}
