//! Owns the per-language phrase lists, `locales/<lang>/intents.yaml`: their file format, their
//! checks (a phrase for a flow that does not exist, for a STOP/START/cancel flow, an empty
//! list, one phrase for two intents, a phrase of filler words only) and their compilation into
//! the [`super::Understanding`] the runtime matches against. Translators own these files; the
//! linter reads them with the flows, so `insurebot flows check` catches their mistakes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::super::diagnostic::Diagnostic;
use super::super::loader::yaml_diagnostic;
use super::super::model::{OrderedMap, Sp};
use super::normalize;

/// The file name looked for in each language's folder.
pub const FILE_NAME: &str = "intents.yaml";

/// One language's `intents.yaml`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PhraseFile {
    /// Words that say nothing about what the person wants ("my", "mera", "pls", "hai"):
    /// ignored in messages and phrases alike.
    #[serde(default)]
    pub fillers: Vec<Sp<String>>,
    /// Words and short phrases meaning "yes", in this language's scripts.
    #[serde(default)]
    pub yes: Vec<Sp<String>>,
    /// Words and short phrases meaning "no".
    #[serde(default)]
    pub no: Vec<Sp<String>>,
    /// Flow id → the phrases that start it (the flow's trigger keywords count too).
    #[serde(default)]
    pub intents: OrderedMap<Vec<Sp<String>>>,
}

/// A phrase of one intent, in one language, as normalised word ids.
#[derive(Debug, Clone)]
pub(super) struct Phrase {
    pub intent: usize,
    pub tokens: Vec<u32>,
}

/// Everything read from the phrase files and the flows' keywords, before compilation.
#[derive(Debug, Default)]
pub(super) struct Raw {
    /// (language, flow id, phrase text)
    pub phrases: Vec<(String, String, String)>,
    /// (language, word)
    pub fillers: Vec<(String, String)>,
    pub yes: Vec<String>,
    pub no: Vec<String>,
    /// Keywords of the STOP, START and cancel flows.
    pub veto: Vec<String>,
}

/// Reads every language's phrase file and checks it against the flows.
///
/// `flows` are the flow ids, `excluded` the ids of flows that must stay whole-message
/// keywords (STOP, START, cancel), `keywords` the flows' own trigger keywords
/// `(language, flow, keyword, file)`, which are phrases too.
pub(super) fn read(
    locales_dir: &Path,
    languages: &[String],
    flows: &BTreeSet<String>,
    excluded: &BTreeSet<String>,
    keywords: &[(String, String, String, PathBuf)],
) -> (Raw, Vec<Diagnostic>) {
    let mut raw = Raw::default();
    let mut diags = Vec::new();
    // Normalised phrase → (intent, file) of its first use, for the duplicate check.
    let mut seen: HashMap<Vec<String>, (String, PathBuf)> = HashMap::new();
    for (lang, flow, kw, file) in keywords {
        if excluded.contains(flow) {
            raw.veto.push(kw.clone());
            continue;
        }
        seen.entry(normalize::tokens(kw))
            .or_insert_with(|| (flow.clone(), file.clone()));
        raw.phrases.push((lang.clone(), flow.clone(), kw.clone()));
    }
    for lang in languages {
        let path = locales_dir.join(lang).join(FILE_NAME);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // optional: without it the flows' keywords are the only phrases
        };
        let file: PhraseFile = match serde_saphyr::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                diags.push(yaml_diagnostic(&path, &e));
                continue;
            }
        };
        let filler_words: BTreeSet<String> = file
            .fillers
            .iter()
            .flat_map(|w| normalize::tokens(&w.value))
            .collect();
        for w in &filler_words {
            raw.fillers.push((lang.clone(), w.clone()));
        }
        raw.yes.extend(file.yes.iter().map(|w| w.value.clone()));
        raw.no.extend(file.no.iter().map(|w| w.value.clone()));
        for (intent, list) in file.intents.iter() {
            if !flows.contains(&intent.value) {
                diags.push(
                    Diagnostic::at(
                        &path,
                        intent,
                        format!("phrases for '{}', which is not a flow", intent.value),
                    )
                    .with_hint(
                        "an intent is the id of the flow its phrases start (flows/*.yaml `flow:`)",
                    ),
                );
                continue;
            }
            if excluded.contains(&intent.value) {
                diags.push(
                    Diagnostic::at(
                        &path,
                        intent,
                        format!(
                            "phrases for '{}': STOP, START and cancel stay whole-message keywords",
                            intent.value
                        ),
                    )
                    .with_hint("add the words to the flow's `triggers.keywords` instead; a near match must never opt anyone out"),
                );
                continue;
            }
            if list.is_empty() {
                diags.push(
                    Diagnostic::at(&path, intent, format!("no phrases for '{}'", intent.value))
                        .with_hint("list at least one phrase, or remove the intent"),
                );
                continue;
            }
            for p in list {
                let toks = normalize::tokens(&p.value);
                if toks.iter().all(|t| filler_words.contains(t)) {
                    diags.push(
                        Diagnostic::at(
                            &path,
                            p,
                            format!("phrase '{}' has only filler words", p.value),
                        )
                        .with_hint("fillers are ignored when matching; add a word that says what is wanted"),
                    );
                    continue;
                }
                match seen.get(&toks) {
                    Some((other, _)) if *other == intent.value => {}
                    Some((other, file)) => diags.push(
                        Diagnostic::at(
                            &path,
                            p,
                            format!(
                                "phrase '{}' is listed for '{}' and for '{other}'",
                                p.value, intent.value
                            ),
                        )
                        .with_hint(format!(
                            "one phrase must start one flow only; see {}",
                            file.display()
                        )),
                    ),
                    None => {
                        seen.insert(toks, (intent.value.clone(), path.clone()));
                        raw.phrases
                            .push((lang.clone(), intent.value.clone(), p.value.clone()));
                    }
                }
            }
        }
    }
    (raw, diags)
}
