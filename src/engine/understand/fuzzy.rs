//! Owns the typo tolerance: a token-level edit distance (with transpositions) whose allowance
//! grows with the word's length, so "premum" is "premium" but "pay" is never "day".
//! [`Word`] carries what rejects most pairs before any edit distance is computed (length and
//! a bit set of the letters), so the matcher can compare a message word with the whole
//! vocabulary cheaply.

/// How alike two normalised words are, 0.0 (not the same word) to 1.0 (identical).
///
/// Words of up to three letters must match exactly; four or five letters allow one edit;
/// longer words two. The score falls with each edit relative to the word's length, so an
/// exact match always beats a near one.
pub fn similarity(a: &[char], b: &[char]) -> f32 {
    if a == b {
        return 1.0;
    }
    let Some(allowed) = allowance(a.len(), b.len()) else {
        return 0.0;
    };
    match distance(a, b, allowed) {
        Some(d) => 1.0 - d as f32 / a.len().max(b.len()) as f32,
        None => 0.0,
    }
}

/// How many edits [`similarity`] allows between words of these lengths; `None` when they
/// cannot be alike at all (too short, or lengths too far apart).
pub fn allowance(a_len: usize, b_len: usize) -> Option<usize> {
    let allowed = match a_len.min(b_len) {
        0..=3 => return None,
        4..=5 => 1,
        _ => 2,
    };
    (a_len.abs_diff(b_len) <= allowed).then_some(allowed)
}

/// A normalised word with its letters as a bit set, for cutting pairs that cannot be alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The letters.
    pub chars: Vec<char>,
    /// One bit per letter (by code point modulo 64).
    mask: u64,
}

impl Word {
    /// The word `w`.
    pub fn new(w: &str) -> Word {
        let chars: Vec<char> = w.chars().collect();
        let mask = chars.iter().fold(0u64, |m, c| m | 1 << (*c as u32 % 64));
        Word { chars, mask }
    }

    /// The word's letters as a bit set (one bit per letter, by code point modulo 64).
    pub fn mask(&self) -> u64 {
        self.mask
    }
}

/// Whether two words with these letter sets could be within `allowed` edits. A letter of one
/// word that the other lacks entirely costs at least one edit (a deletion or substitution; a
/// transposition only swaps letters both have), so more such letters than `allowed`, on
/// either side, rule the pair out. Letters sharing a bit only make the count smaller, so the
/// cut never rejects a pair that is alike.
pub fn letters_may_be_alike(a: u64, b: u64, allowed: usize) -> bool {
    (a & !b).count_ones() as usize <= allowed && (b & !a).count_ones() as usize <= allowed
}

/// Optimal-string-alignment distance, or `None` once it exceeds `max`. Words longer than the
/// stack buffer are compared exactly (no message word that long is a typo of a phrase word).
fn distance(a: &[char], b: &[char], max: usize) -> Option<usize> {
    const N: usize = 40;
    if a.len() >= N || b.len() >= N {
        return None;
    }
    let mut rows = [[0usize; N]; 3];
    // Which of the rows is two back, one back and current: the roles turn each round (moving
    // the rows themselves copied a kilobyte per letter).
    let (mut back2, mut back1, mut cur) = (0, 1, 2);
    for (j, cell) in rows[back1].iter_mut().enumerate().take(b.len() + 1) {
        *cell = j;
    }
    for i in 1..=a.len() {
        rows[cur][0] = i;
        let mut best = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (rows[back1][j] + 1)
                .min(rows[cur][j - 1] + 1)
                .min(rows[back1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(rows[back2][j - 2] + 1);
            }
            rows[cur][j] = v;
            best = best.min(v);
        }
        if best > max {
            return None;
        }
        (back2, back1, cur) = (back1, cur, back2);
    }
    let d = rows[back1][b.len()];
    (d <= max).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(a: &str, b: &str) -> f32 {
        similarity(
            &a.chars().collect::<Vec<_>>(),
            &b.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn allowance_grows_with_length() {
        assert_eq!(sim("pay", "day"), 0.0);
        assert!(sim("premum", "premium") > 0.8);
        assert!(sim("stauts", "status") > 0.6);
        assert!(sim("polcy", "policy") > 0.8);
        assert_eq!(sim("menu", "mango"), 0.0);
        assert!(sim("premium", "premium") > sim("premum", "premium"));
        assert!(sim("பாலிசி", "பாலிசீ") > 0.8);
    }
}
