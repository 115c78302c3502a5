//! Understanding free text: which flow a short message asks for, in en, hi and ta, in native
//! script or Latin letters (Hinglish, Tanglish), with typos; and the values in it (slots).
//! Deterministic, no model, no I/O: the phrase lists come from `locales/<lang>/intents.yaml`
//! and the flows' trigger keywords, compiled once when the flow set is built.
//!
//! # Layout
//! - [`normalize`]: case, punctuation, Unicode form, repeated letters, transliteration variants.
//! - [`fuzzy`]: token similarity with an edit allowance scaled by word length.
//! - [`phrases`]: the `intents.yaml` format, its checks, and what it compiles from.
//! - [`slots`]: reference numbers, dates, amounts, yes/no.
//! - [`testset`]: the labelled test set and its scoring (`insurebot flows understand`).
//!
//! Matching: message and phrases are normalised into words; filler words ("my", "mera",
//! "pls") are dropped; each phrase scores how much of it the message holds and how much of
//! the message it explains (a Dice coefficient over fuzzy word matches, unknown words
//! counting half as much as words of another intent). The best intent wins if it scores at
//! least [`ACCEPT`] and leads the next one by [`MARGIN`]; two close candidates come back as
//! [`Understood::Ambiguous`] so the engine can ask "Did you mean A or B?".

pub mod fuzzy;
pub mod normalize;
pub mod phrases;
pub mod slots;
pub mod testset;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::diagnostic::Diagnostic;
use normalize::Script;
use phrases::Phrase;

/// Least score an intent needs to be taken.
pub const ACCEPT: f32 = 0.6;
/// Least lead of the best intent over the next; closer than this, the engine asks.
pub const MARGIN: f32 = 0.12;
/// Longest message (in words, fillers included) the matcher reads.
const MAX_WORDS: usize = 32;
/// Least score of the runner-up for the engine to offer it as a choice.
const OFFER: f32 = 0.45;

/// What a message asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Understood {
    /// One flow, clearly.
    Intent {
        /// The flow id.
        flow: String,
        /// Its score (0..=1).
        score: f32,
    },
    /// Two flows, too close to choose between: ask.
    Ambiguous {
        /// The better-scoring flow.
        first: String,
        /// The runner-up.
        second: String,
    },
    /// None of the flows.
    Nothing,
}

/// An external understanding service's answer for one text (see `crate::nlu`): intent
/// names with their confidences (0..=1), as the service ranked them. The dialogue layer
/// asks before the turn and hands the answer to the engine as data, so the engine stays pure.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ranking(pub Vec<(String, f32)>);

/// The compiled phrase lists of every language. Built by the linter with the flow set.
#[derive(Debug, Default)]
pub struct Understanding {
    /// Normalised words of all phrases, as characters (fuzzy matching works on these).
    vocab: Vec<fuzzy::Word>,
    vocab_index: HashMap<String, u32>,
    /// Vocabulary ids with their letter sets, by word length in letters: a message word is
    /// only compared with the few lengths its typo allowance reaches, and the letter cut
    /// reads one array without visiting the words it rejects.
    vocab_by_len: Vec<Vec<(u64, u32)>>,
    /// Phrase indices holding each vocabulary id: only phrases sharing a word with the
    /// message are scored (the others would score zero).
    postings: Vec<Vec<u32>>,
    /// Intent (flow id) of each phrase's `intent` index.
    intents: Vec<String>,
    phrases: Vec<Phrase>,
    fillers: HashSet<String>,
    /// Latin words → the languages whose phrase files use them (for Hinglish/Tanglish).
    latin_langs: HashMap<String, BTreeSet<String>>,
    languages: Vec<String>,
    yes: HashSet<Vec<String>>,
    no: HashSet<Vec<String>>,
    /// Words in the longest yes or no: a longer message is neither, unread.
    yes_no_words: usize,
    /// Words of the STOP, START and cancel keywords: a message with one is not guessed at
    /// ("i want to cancel my claim" is not a claim's status), as before understanding.
    veto: HashSet<String>,
    /// The flows' button titles as rendered in each language, split into words once when the
    /// flow set is built (see [`Understanding::title_words`]).
    titles: HashMap<String, Vec<Vec<char>>>,
}

impl Understanding {
    /// Reads `locales_dir/<lang>/intents.yaml` for every language and compiles them with the
    /// flows' keywords. Problems come back as diagnostics; bad entries are left out.
    pub(crate) fn load(
        locales_dir: &Path,
        languages: &[String],
        flows: &BTreeSet<String>,
        excluded: &BTreeSet<String>,
        keywords: &[(String, String, String, PathBuf)],
    ) -> (Understanding, Vec<Diagnostic>) {
        let (raw, diags) = phrases::read(locales_dir, languages, flows, excluded, keywords);
        let mut u = Understanding {
            languages: languages.to_vec(),
            ..Understanding::default()
        };
        for (lang, w) in &raw.fillers {
            u.fillers.insert(w.clone());
            if w.is_ascii() {
                u.latin_langs
                    .entry(w.clone())
                    .or_default()
                    .insert(lang.clone());
            }
        }
        // A phrase whose words without fillers are another intent's phrase keeps its fillers
        // ("मेरे क्लेम", my claims, against "क्लेम", a claim's status): they tell them apart.
        let stripped: Vec<Vec<String>> = raw
            .phrases
            .iter()
            .map(|(_, _, text)| {
                normalize::tokens(text)
                    .into_iter()
                    .filter(|w| !u.fillers.contains(w))
                    .collect()
            })
            .collect();
        let mut owner: HashMap<&[String], &str> = HashMap::new();
        let mut collides: HashSet<&[String]> = HashSet::new();
        for (toks, (_, flow, _)) in stripped.iter().zip(&raw.phrases) {
            match owner.get(toks.as_slice()) {
                Some(f) if *f != flow.as_str() => {
                    collides.insert(toks.as_slice());
                }
                Some(_) => {}
                None => {
                    owner.insert(toks.as_slice(), flow.as_str());
                }
            }
        }
        for ((lang, flow, text), toks) in raw.phrases.iter().zip(&stripped) {
            let intent = match u.intents.iter().position(|i| i == flow) {
                Some(i) => i,
                None => {
                    u.intents.push(flow.clone());
                    u.intents.len() - 1
                }
            };
            let keep_fillers = collides.contains(toks.as_slice());
            let mut tokens = Vec::new();
            for w in normalize::tokens(text) {
                if w.is_ascii() {
                    u.latin_langs
                        .entry(w.clone())
                        .or_default()
                        .insert(lang.clone());
                }
                if u.fillers.contains(&w) && !keep_fillers {
                    continue;
                }
                let id = match u.vocab_index.get(&w) {
                    Some(id) => *id,
                    None => {
                        u.vocab.push(fuzzy::Word::new(&w));
                        let id = (u.vocab.len() - 1) as u32;
                        u.vocab_index.insert(w, id);
                        id
                    }
                };
                tokens.push(id);
            }
            if !tokens.is_empty() {
                u.phrases.push(Phrase { intent, tokens });
            }
        }
        for (v, w) in u.vocab.iter().enumerate() {
            let len = w.chars.len();
            if u.vocab_by_len.len() <= len {
                u.vocab_by_len.resize(len + 1, Vec::new());
            }
            u.vocab_by_len[len].push((w.mask(), v as u32));
        }
        u.postings = vec![Vec::new(); u.vocab.len()];
        for (p, phrase) in u.phrases.iter().enumerate() {
            for &t in &phrase.tokens {
                let list = &mut u.postings[t as usize];
                if list.last() != Some(&(p as u32)) {
                    list.push(p as u32);
                }
            }
        }
        // Only one-word keywords veto: "all" of "stop all" must not block "all my claims".
        u.veto = raw
            .veto
            .iter()
            .map(|k| normalize::tokens(k))
            .filter(|t| t.len() == 1)
            .flatten()
            .filter(|w| !u.fillers.contains(w))
            .collect();
        u.yes = raw.yes.iter().map(|w| normalize::tokens(w)).collect();
        u.no = raw.no.iter().map(|w| normalize::tokens(w)).collect();
        u.yes_no_words = u.yes.iter().chain(&u.no).map(Vec::len).max().unwrap_or(0);
        (u, diags)
    }

    /// Which flow `text` asks for, among the flows `allowed` lets through.
    pub fn intent(&self, text: &str, allowed: impl Fn(&str) -> bool) -> Understood {
        // Long messages are stories, not requests: better the menu than a guess.
        let Some(all) = normalize::tokens_within(text, MAX_WORDS) else {
            return Understood::Nothing;
        };
        let filler: Vec<bool> = all.iter().map(|w| self.fillers.contains(w)).collect();
        let content = filler.iter().filter(|f| !**f).count();
        if content == 0 || content > 16 || all.iter().any(|w| self.veto.contains(w)) {
            return Understood::Nothing;
        }
        let words: Vec<fuzzy::Word> = all.iter().map(|w| fuzzy::Word::new(w)).collect();
        // sims[i][v]: how alike message word i is to vocabulary word v (sparse).
        let sims: Vec<Vec<(u32, f32)>> = all
            .iter()
            .zip(&words)
            .zip(&filler)
            .map(|((text, w), is_filler)| match self.vocab_index.get(text) {
                Some(id) => vec![(*id, 1.0)],
                // Fillers only ever match themselves (in phrases that keep them).
                None if *is_filler => Vec::new(),
                None => self.alike(w),
            })
            .collect();
        // How much a message word left unexplained by a phrase costs: a word of another
        // intent counts fully, an unknown word half, a number a quarter (it is a slot), a
        // filler nothing.
        let cost: Vec<f32> = words
            .iter()
            .zip(&sims)
            .zip(&filler)
            .map(|((w, s), f)| {
                if *f {
                    0.0
                } else if !s.is_empty() {
                    1.0
                } else if w.chars.iter().any(char::is_ascii_digit) {
                    0.25
                } else {
                    0.5
                }
            })
            .collect();
        // Only phrases sharing a word with the message can score above zero.
        let mut candidates: Vec<u32> = sims
            .iter()
            .flatten()
            .flat_map(|(v, _)| self.postings[*v as usize].iter().copied())
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let mut best = vec![0f32; self.intents.len()];
        for p in candidates.iter().map(|p| &self.phrases[*p as usize]) {
            if !allowed(&self.intents[p.intent]) {
                continue;
            }
            let mut used = [false; MAX_WORDS];
            let mut matched = 0f32;
            for &t in &p.tokens {
                let mut pick: Option<(usize, f32)> = None;
                for (i, s) in sims.iter().enumerate() {
                    if used[i] {
                        continue;
                    }
                    if let Some((_, v)) = s.iter().find(|(id, _)| *id == t)
                        && pick.is_none_or(|(_, b)| *v > b)
                    {
                        pick = Some((i, *v));
                    }
                }
                if let Some((i, v)) = pick {
                    used[i] = true;
                    matched += v;
                }
            }
            if matched == 0.0 {
                continue;
            }
            let rest: f32 = (0..words.len())
                .filter(|i| !used[*i])
                .map(|i| cost[i])
                .sum();
            let score = 2.0 * matched / (p.tokens.len() as f32 + matched + rest);
            if score > best[p.intent] {
                best[p.intent] = score;
            }
        }
        let mut ranked: Vec<(usize, f32)> = best
            .into_iter()
            .enumerate()
            .filter(|(_, s)| *s > 0.0)
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        match ranked.as_slice() {
            [] => Understood::Nothing,
            [(a, sa), (b, sb), ..] if *sa >= OFFER && *sb >= OFFER && sa - sb < MARGIN => {
                Understood::Ambiguous {
                    first: self.intents[*a].clone(),
                    second: self.intents[*b].clone(),
                }
            }
            [(a, sa), ..] if *sa >= ACCEPT => Understood::Intent {
                flow: self.intents[*a].clone(),
                score: *sa,
            },
            _ => Understood::Nothing,
        }
    }

    /// The vocabulary words a message word not in the vocabulary is like, with how alike.
    /// Only the lengths the word's typo allowance reaches are looked at, and the letter cut
    /// rejects most of those before any edit distance is computed.
    fn alike(&self, w: &fuzzy::Word) -> Vec<(u32, f32)> {
        let len = w.chars.len();
        let mut out = Vec::new();
        // Words of three letters or fewer must be exact: the vocabulary lookup has said no.
        if fuzzy::allowance(len, len).is_none() {
            return out;
        }
        for (vlen, ids) in (len.saturating_sub(2)..=len + 2)
            .filter_map(|l| self.vocab_by_len.get(l).map(|ids| (l, ids)))
        {
            let Some(allowed) = fuzzy::allowance(len, vlen) else {
                continue;
            };
            let mask = w.mask();
            for &(vmask, v) in ids {
                if !fuzzy::letters_may_be_alike(mask, vmask, allowed) {
                    continue;
                }
                let vw = &self.vocab[v as usize];
                let s = fuzzy::similarity(&w.chars, &vw.chars);
                if s > 0.0 {
                    out.push((v, s));
                }
            }
        }
        // Ascending ids, as a scan of the whole vocabulary gave them.
        out.sort_unstable_by_key(|(v, _)| *v);
        out
    }

    /// The language `text` is written in, when it says so: Devanagari is Hindi, Tamil script
    /// Tamil, and Latin letters with words only the Hindi (or Tamil) phrase files use are
    /// Hinglish (Tanglish). `None` for English, or when nothing tells.
    pub fn language_of(&self, text: &str) -> Option<&str> {
        let want = match normalize::script_of(text) {
            Script::Devanagari => "hi",
            Script::Tamil => "ta",
            Script::Other => return None,
            Script::Latin => {
                let mut votes: HashMap<&str, u32> = HashMap::new();
                for w in normalize::tokens(text) {
                    if let Some(langs) = self.latin_langs.get(&w)
                        && !langs.contains(super::i18n::FALLBACK_LANG)
                    {
                        for l in langs {
                            *votes.entry(l.as_str()).or_default() += 1;
                        }
                    }
                }
                let mut v: Vec<(&str, u32)> = votes.into_iter().collect();
                v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                let winner = match v.as_slice() {
                    [(l, a), (_, b), ..] if a > b => *l,
                    [(l, _)] => *l,
                    _ => return None,
                };
                return self
                    .languages
                    .iter()
                    .find(|l| *l == winner)
                    .map(String::as_str);
            }
        };
        self.languages
            .iter()
            .find(|l| *l == want)
            .map(String::as_str)
    }

    /// `Some(true)` for a yes, `Some(false)` for a no, in any language or script.
    pub fn yes_no(&self, text: &str) -> Option<bool> {
        let t = normalize::tokens_within(text, self.yes_no_words)?;
        if self.yes.contains(&t) {
            Some(true)
        } else if self.no.contains(&t) {
            Some(false)
        } else {
            None
        }
    }

    /// What an external service's `ranking` asks for, among the intents this set knows that
    /// `allowed` lets through (names it does not know are ignored: a service trained on more
    /// intents than the flows have must not start a flow that does not exist). The same rule
    /// as the built-in matcher: the best is taken at [`ACCEPT`] with a lead of [`MARGIN`];
    /// two close ones at [`OFFER`] or more are asked about. `None` when the ranking settles
    /// nothing (too unsure, or a STOP/cancel word is in the text): the built-in matcher
    /// decides then.
    pub fn from_ranking(
        &self,
        text: &str,
        ranking: &Ranking,
        allowed: impl Fn(&str) -> bool,
    ) -> Option<Understood> {
        if normalize::tokens(text)
            .iter()
            .any(|w| self.veto.contains(w))
        {
            return None;
        }
        let mut known: Vec<(&str, f32)> = ranking
            .0
            .iter()
            .filter(|(name, c)| {
                c.is_finite() && self.intents.iter().any(|i| i == name) && allowed(name)
            })
            .map(|(name, c)| (name.as_str(), *c))
            .collect();
        known.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut seen = HashSet::new();
        known.retain(|(name, _)| seen.insert(*name));
        let (best, score) = *known.first()?;
        let second = known.get(1).copied();
        match second {
            Some((other, s)) if s >= OFFER && score - s < MARGIN => Some(Understood::Ambiguous {
                first: best.to_owned(),
                second: other.to_owned(),
            }),
            _ if score >= ACCEPT && second.is_none_or(|(_, s)| score - s >= MARGIN) => {
                Some(Understood::Intent {
                    flow: best.to_owned(),
                    score,
                })
            }
            _ => None,
        }
    }

    /// The flows phrases name, for reports.
    pub fn intents(&self) -> &[String] {
        &self.intents
    }

    /// Splits the button titles the flows show (as rendered) into words now, so reading a
    /// message as a title does not split every title again.
    pub(crate) fn learn_titles(&mut self, titles: impl IntoIterator<Item = String>) {
        for title in titles {
            self.titles
                .entry(title)
                .or_insert_with_key(|t| title_words(t));
        }
    }

    /// `title`'s words as [`pick_title`] compares them: split when the flow set was built,
    /// or now for a title it did not show then (a list row read from data).
    pub fn title_words(&self, title: &str) -> Cow<'_, [Vec<char>]> {
        match self.titles.get(title) {
            Some(words) => Cow::Borrowed(words),
            None => Cow::Owned(title_words(title)),
        }
    }
}

/// A title's normalised words, as letters.
fn title_words(title: &str) -> Vec<Vec<char>> {
    normalize::tokens(title)
        .iter()
        .map(|w| w.chars().collect())
        .collect()
}

/// The one title `text` names with typos allowed ("premum due" for "Premium due"): same
/// number of words, each alike enough. `None` when no title or more than one is that close.
pub fn pick_title(text: &str, titles: &[String]) -> Option<usize> {
    let titles: Vec<Vec<Vec<char>>> = titles.iter().map(|t| title_words(t)).collect();
    pick_title_words(text, &titles)
}

/// [`pick_title`] with each title already split into words ([`Understanding::title_words`]).
pub fn pick_title_words<T: AsRef<[Vec<char>]>>(text: &str, titles: &[T]) -> Option<usize> {
    // A message with more words than the longest title names none of them.
    let longest = titles.iter().map(|t| t.as_ref().len()).max()?;
    let words: Vec<Vec<char>> = normalize::tokens_within(text, longest)?
        .iter()
        .map(|w| w.chars().collect())
        .collect();
    if words.is_empty() {
        return None;
    }
    let mut found = None;
    for (i, t) in titles.iter().enumerate() {
        let t = t.as_ref();
        if t.len() == words.len()
            && t.iter()
                .zip(&words)
                .all(|(a, b)| fuzzy::similarity(a, b) > 0.0)
        {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests;
