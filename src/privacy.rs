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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_four_characters() {
        assert_eq!(mask("919812345678"), "********5678");
        assert_eq!(mask("US.13491208655302741918"), "*******************1918");
        assert_eq!(mask("12345"), "*****");
        assert_eq!(mask_opt(None), "-");
    }
}
