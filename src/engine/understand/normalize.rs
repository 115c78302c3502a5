//! Owns text normalisation for matching: what two spellings of the same word have in common.
//! Case, punctuation, Unicode normal form (NFKC, nukta and candrabindu folded, joiners
//! dropped), native digits, repeated letters and the common variants of Latin transliteration
//! ("kattanum"/"katanum", "dikhao"/"dikao", "meera"/"mira") all disappear here, on both the
//! phrase lists and the message, so the matcher compares like with like.

use unicode_normalization::UnicodeNormalization;

/// The message's writing system, for answering in the writer's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Latin letters (English, Hinglish, Tanglish).
    Latin,
    /// Devanagari (Hindi).
    Devanagari,
    /// Tamil.
    Tamil,
    /// No letters at all (digits, emoji).
    Other,
}

/// The script most letters of `text` are written in.
pub fn script_of(text: &str) -> Script {
    let (mut latin, mut deva, mut tamil) = (0u32, 0u32, 0u32);
    for c in text.chars() {
        match c {
            'a'..='z' | 'A'..='Z' => latin += 1,
            '\u{0900}'..='\u{097F}' => deva += 1,
            '\u{0B80}'..='\u{0BFF}' => tamil += 1,
            _ => {}
        }
    }
    let top = latin.max(deva).max(tamil);
    if top == 0 {
        Script::Other
    } else if deva == top {
        Script::Devanagari
    } else if tamil == top {
        Script::Tamil
    } else {
        Script::Latin
    }
}

/// The normalised words of `text`, in order.
pub fn tokens(text: &str) -> Vec<String> {
    tokens_within(text, usize::MAX).unwrap_or_default()
}

/// The normalised words of `text`, or `None` as soon as there are more than `max`: the rest
/// of a long message is never normalised (a 4,096-character story costs what its first
/// words cost).
pub fn tokens_within(text: &str, max: usize) -> Option<Vec<String>> {
    let mut out = Vec::new();
    if text.is_ascii() {
        // NFKC leaves ASCII as it is and no ASCII character is dropped or folded, so a Latin
        // message is cut at its separators byte by byte, without the Unicode machinery.
        for w in text
            .as_bytes()
            .split(|b| !b.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if out.len() == max {
                return None;
            }
            let mut word = w.to_ascii_lowercase();
            if word.iter().all(u8::is_ascii_lowercase) {
                latin_variant_in_place(&mut word);
            }
            out.push(String::from_utf8(word).expect("ASCII is UTF-8"));
        }
        return Some(out);
    }
    tokens_of_any_script(text, max)
}

/// [`tokens_within`] for text in any script: NFKC, lower case and the folds, char by char.
fn tokens_of_any_script(text: &str, max: usize) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.nfkc().flat_map(char::to_lowercase) {
        match fold(c) {
            Fold::Keep(c) => word.push(c),
            Fold::Drop => {}
            Fold::Split => {
                flush(&mut word, &mut out);
                if out.len() > max {
                    return None;
                }
            }
        }
    }
    flush(&mut word, &mut out);
    (out.len() <= max).then_some(out)
}

fn flush(word: &mut String, out: &mut Vec<String>) {
    if word.is_empty() {
        return;
    }
    let w = std::mem::take(word);
    out.push(if w.bytes().all(|b| b.is_ascii_lowercase()) {
        let mut b = w.into_bytes();
        latin_variant_in_place(&mut b);
        String::from_utf8(b).expect("ASCII is UTF-8")
    } else {
        w
    });
}

enum Fold {
    Keep(char),
    Drop,
    Split,
}

fn fold(c: char) -> Fold {
    match c {
        // Nukta: "दस्तावेज़" and "दस्तावेज" are the same word as people type it (NFKC leaves
        // the nukta as a separate mark because the precomposed letters are exclusions).
        '\u{093C}' | '\u{200C}' | '\u{200D}' | '\u{FE0F}' => Fold::Drop,
        // Candrabindu is typed as anusvara as often as not.
        '\u{0901}' => Fold::Keep('\u{0902}'),
        '०'..='९' => Fold::Keep(char::from(b'0' + (c as u32 - '०' as u32) as u8)),
        '௦'..='௯' => Fold::Keep(char::from(b'0' + (c as u32 - '௦' as u32) as u8)),
        '\u{0964}' | '\u{0965}' => Fold::Split,
        '\u{0900}'..='\u{097F}' | '\u{0B80}'..='\u{0BFF}' => Fold::Keep(c),
        c if c.is_alphanumeric() => Fold::Keep(c),
        _ => Fold::Split,
    }
}

/// One spelling for the many ways a Hindi or Tamil word is written in Latin letters: long
/// vowels doubled or not ("ee"/"i", "oo"/"u"), aspirates with or without "h" ("kh"/"k",
/// "th"/"t"), "w"/"v", "z"/"j", "ph"/"f", and doubled consonants. English words go through
/// the same folding on both sides, so they still match themselves.
pub fn latin_variant(w: &str) -> String {
    let mut b = w.as_bytes().to_vec();
    latin_variant_in_place(&mut b);
    String::from_utf8(b).expect("only ASCII bytes are moved or rewritten")
}

/// [`latin_variant`] on the word's own bytes: every step writes no more than it has read, so
/// the word is rewritten where it lies, with no allocation.
fn latin_variant_in_place(b: &mut Vec<u8>) {
    // Runs of three or more ("pleeease") are emphasis, not spelling; runs of two are kept
    // for the pairs below ("ee", "oo").
    let (mut r, mut w) = (0, 0);
    while r < b.len() {
        let c = b[r];
        let mut j = r;
        while j < b.len() && b[j] == c {
            j += 1;
        }
        let run = if j - r >= 3 { 1 } else { j - r };
        for _ in 0..run {
            b[w] = c;
            w += 1;
        }
        r = j;
    }
    b.truncate(w);
    // One pass for "ee"→i, "oo"→u, "ph"→f, w→v, z→j, q→k (none of them makes or breaks
    // another's pattern, so doing them at once is doing them in turn), then an "h" after a
    // consonant it aspirates and a letter repeating the one before are dropped.
    let (mut r, mut w) = (0, 0);
    let mut prev: Option<u8> = None;
    while r < b.len() {
        let (c, read) = match (b[r], b.get(r + 1)) {
            (b'e', Some(b'e')) => (b'i', 2),
            (b'o', Some(b'o')) => (b'u', 2),
            (b'p', Some(b'h')) => (b'f', 2),
            (b'w', _) => (b'v', 1),
            (b'z', _) => (b'j', 1),
            (b'q', _) => (b'k', 1),
            (c, _) => (c, 1),
        };
        r += read;
        if c == b'h' && prev.is_some_and(|p| b"kgcjtdpbs".contains(&p)) {
            continue;
        }
        if prev == Some(c) {
            continue;
        }
        b[w] = c;
        w += 1;
        prev = Some(c);
    }
    b.truncate(w);
}

/// The spelling [`latin_variant`] had as a chain of replacements, kept to check the one-pass
/// version against.
#[cfg(test)]
fn latin_variant_by_replacing(w: &str) -> String {
    let mut s = String::with_capacity(w.len());
    let b = w.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let mut j = i;
        while j < b.len() && b[j] == b[i] {
            j += 1;
        }
        let run = if j - i >= 3 { 1 } else { j - i };
        for _ in 0..run {
            s.push(b[i] as char);
        }
        i = j;
    }
    let s = s
        .replace("ee", "i")
        .replace("oo", "u")
        .replace("ph", "f")
        .replace('w', "v")
        .replace('z', "j")
        .replace('q', "k");
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<u8> = None;
    for &c in s.as_bytes() {
        if c == b'h' && prev.is_some_and(|p| b"kgcjtdpbs".contains(&p)) {
            continue;
        }
        if prev == Some(c) {
            continue;
        }
        out.push(c as char);
        prev = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_within_stops_past_the_limit() {
        assert_eq!(
            tokens_within("Claim, status!", 2),
            Some(vec!["claim".to_owned(), "status".to_owned()])
        );
        assert_eq!(tokens_within("claim status pls", 2), None);
        assert_eq!(tokens_within("", 0), Some(vec![]));
        assert_eq!(tokens_within(&"pay ".repeat(1000), 32), None);
        assert_eq!(tokens(&"pay ".repeat(1000)).len(), 1000);
    }

    /// Every word of up to six letters over the letters the folds touch (and two they do
    /// not) is spelled the same by the one-pass fold as by the replacement chain it replaced.
    #[test]
    fn the_one_pass_latin_fold_spells_as_the_replacement_chain_did() {
        let letters = b"eophwzqkat";
        let mut words = vec![String::new()];
        let mut all = Vec::new();
        for _ in 0..6 {
            words = words
                .iter()
                .flat_map(|w| letters.iter().map(move |c| format!("{w}{}", *c as char)))
                .collect();
            all.extend(words.iter().cloned());
        }
        assert_eq!(all.len(), 1_111_110);
        for w in &all {
            assert_eq!(latin_variant(w), latin_variant_by_replacing(w), "{w}");
        }
        for w in [
            "pleeease", "kattanum", "dikhao", "phoool", "zzhqqh", "wheee",
        ] {
            assert_eq!(latin_variant(w), latin_variant_by_replacing(w), "{w}");
        }
    }

    /// The byte-by-byte cut of ASCII text gives what the Unicode path gives.
    #[test]
    fn ascii_text_is_cut_as_the_unicode_path_cuts_it() {
        for text in [
            "",
            "Claim STATUS??",
            "  claim-status / pls!!",
            "CLM 240311, dob 12/03/85",
            "mera claim kahan hai",
            "Pleeease   show   POLICY_no 42a",
            "my car broke down near pune and the towing guy wants cash",
            "a b c d e",
        ] {
            for max in [0, 1, 2, 3, 4, 32, usize::MAX] {
                assert_eq!(
                    tokens_within(text, max),
                    tokens_of_any_script(text, max),
                    "{text:?} within {max}"
                );
            }
        }
    }

    #[test]
    fn case_punctuation_and_repeats_do_not_matter() {
        assert_eq!(tokens("Claim STATUS??"), tokens("claim status"));
        assert_eq!(tokens("pleeease"), tokens("please"));
        assert_eq!(tokens("kattanum"), tokens("katanum"));
        assert_eq!(tokens("dikhao"), tokens("dikao"));
        assert_eq!(tokens("dastaavej"), tokens("dastavej"));
    }

    #[test]
    fn unicode_forms_and_nukta_fold() {
        assert_eq!(tokens("दस्तावेज़"), tokens("दस्तावेज"));
        // Precomposed U+095B and the decomposed pair are one word.
        assert_eq!(tokens("\u{095B}"), tokens("\u{091C}\u{093C}"));
        assert_eq!(tokens("मेरा क्लेम।"), vec!["मेरा", "क्लेम"]);
        assert_eq!(tokens("௧௨ ३"), vec!["12", "3"]);
    }

    #[test]
    fn scripts_are_told_apart() {
        assert_eq!(script_of("mera claim"), Script::Latin);
        assert_eq!(script_of("मेरा क्लेम claim"), Script::Devanagari);
        assert_eq!(script_of("என் க்ளைம்"), Script::Tamil);
        assert_eq!(script_of("123"), Script::Other);
    }
}
