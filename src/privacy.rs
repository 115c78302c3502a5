//! Masking personal data before it reaches a log line: phone numbers, BSUIDs and names are
//! shown only by their last few characters.

/// `919812345678` → `********5678`; short values are masked entirely.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let keep = 4;
    let hidden = chars.len() - keep;
    let mut out = "*".repeat(hidden);
    out.extend(&chars[hidden..]);
    out
}

/// Masks an optional value; `-` when absent.
pub fn mask_opt(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), mask)
}

/// Free text as it may be kept for flow authors: every word holding a digit (phone, policy
/// and claim numbers, dates, codes, amounts) or an `@` (addresses) becomes `***`, and the
/// text is cut to 160 characters. Names in free text are not recognised; that is why only
/// messages the bot could not place are kept, without their contact, for 14 days' reading.
pub fn mask_text(text: &str) -> String {
    let masked: Vec<&str> = text
        .split_whitespace()
        .map(|w| {
            if w.chars().any(|c| c.is_numeric() || c == '@') {
                "***"
            } else {
                w
            }
        })
        .collect();
    masked.join(" ").chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_loses_its_numbers_and_addresses() {
        assert_eq!(
            mask_text("my no is 9812345678 and mail a@b.in, dob १२/०३/८५"),
            "my no is *** and mail *** dob ***"
        );
    }

    #[test]
    fn keeps_only_the_last_four_characters() {
        assert_eq!(mask("919812345678"), "********5678");
        assert_eq!(mask("US.13491208655302741918"), "*******************1918");
        assert_eq!(mask("12345"), "*****");
        assert_eq!(mask_opt(None), "-");
    }
}
