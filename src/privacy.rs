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
    const KEPT: usize = 160;
    // Words are masked and joined only until the kept length is reached: the rest of a
    // 4,096-character message would be cut anyway.
    let mut out = String::new();
    let mut count = 0;
    for w in text.split_whitespace() {
        if count >= KEPT {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
            count += 1;
        }
        let w = if w.chars().any(|c| c.is_numeric() || c == '@') {
            "***"
        } else {
            w
        };
        out.push_str(w);
        count += w.chars().count();
    }
    out.chars().take(KEPT).collect()
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

    /// Stopping at the kept length gives what masking every word and then cutting gave.
    #[test]
    fn long_free_text_is_cut_as_if_all_of_it_were_masked() {
        let whole = |text: &str| -> String {
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
        };
        let story: String = "my car broke down near pune, call 98123 45678 "
            .chars()
            .cycle()
            .take(4096)
            .collect();
        let hindi: String = "मेरा क्लेम कहाँ है १२ ".chars().cycle().take(4096).collect();
        let one_word = "x".repeat(4096);
        for text in [
            &story,
            &hindi,
            &one_word,
            &"  a ".repeat(100),
            &"ab".repeat(80),
        ] {
            assert_eq!(mask_text(text), whole(text), "{text:?}");
        }
        assert_eq!(mask_text(&story).chars().count(), 160);
    }

    #[test]
    fn keeps_only_the_last_four_characters() {
        assert_eq!(mask("919812345678"), "********5678");
        assert_eq!(mask("US.13491208655302741918"), "*******************1918");
        assert_eq!(mask("12345"), "*****");
        assert_eq!(mask_opt(None), "-");
    }
}
