//! Owns the labelled test set (`flows/understanding/test-set.yaml`) and its scoring: intent
//! accuracy per language and script, the wrong-intent rate, a confusion list, and the share
//! of dates, amounts, reference numbers and yes/no read right. `insurebot flows understand`
//! prints the [`Report`]; a `cargo test` holds the shipped flows to [`Targets`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chrono::NaiveDate;
use serde::Deserialize;

use super::super::flowset::FlowSet;
use super::normalize::{self, Script};
use super::{Understood, slots};

/// The label of utterances that ask for none of the flows.
pub const NONE: &str = "none";

/// The test set file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSet {
    /// The day two-digit years and "past" are counted from, so results do not drift.
    pub today: NaiveDate,
    /// Language → intent (flow id, or `none`) → utterances.
    pub intents: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Values to read out of free text.
    #[serde(default)]
    pub slots: Vec<SlotCase>,
}

/// One slot utterance: what kind of value, the text, and the value expected (`-` for none).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotCase {
    /// `date`, `amount`, `claim_number`, `policy_number` or `yes_no`.
    pub kind: String,
    /// What the person typed.
    pub text: String,
    /// The value: `YYYY-MM-DD`, a number, the number as stored, `yes`/`no`, or `-`.
    pub want: String,
}

/// The targets of issue 22.
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    /// Least share of utterances whose intent is right.
    pub intent_accuracy: f64,
    /// Least share of slot values read right.
    pub slot_accuracy: f64,
    /// Most share of utterances given a wrong intent (asking or "none" is not wrong).
    pub wrong_rate: f64,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            intent_accuracy: 0.90,
            slot_accuracy: 0.95,
            wrong_rate: 0.02,
        }
    }
}

/// Reads a test set.
///
/// # Errors
/// The file cannot be read or is not a test set; the message names the file and the place.
pub fn load(path: &Path) -> Result<TestSet, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Counts for one group of utterances.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Utterances.
    pub total: usize,
    /// Right intent (or rightly none).
    pub right: usize,
    /// A different intent than labelled (the costly mistake).
    pub wrong: usize,
    /// "Did you mean …?" asked.
    pub asked: usize,
}

impl Tally {
    fn share(n: usize, total: usize) -> f64 {
        if total == 0 {
            1.0
        } else {
            n as f64 / total as f64
        }
    }
    /// Right / total.
    pub fn accuracy(&self) -> f64 {
        Self::share(self.right, self.total)
    }
    /// Wrong / total.
    pub fn wrong_rate(&self) -> f64 {
        Self::share(self.wrong, self.total)
    }
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// Every intent utterance.
    pub all: Tally,
    /// By language and script ("hi latin", "ta native", "en latin").
    pub groups: BTreeMap<String, Tally>,
    /// Missed and wrong utterances: (language, text, label, what came out).
    pub confusions: Vec<(String, String, String, String)>,
    /// By slot kind: (right, total).
    pub slots: BTreeMap<String, (usize, usize)>,
    /// Slot cases read wrong: (kind, text, want, got).
    pub slot_misses: Vec<(String, String, String, String)>,
}

impl Report {
    /// Share of slot values read right, over all kinds.
    pub fn slot_accuracy(&self) -> f64 {
        let (r, t) = self
            .slots
            .values()
            .fold((0, 0), |(r, t), (a, b)| (r + a, t + b));
        Tally::share(r, t)
    }

    /// Whether the run meets `targets`.
    pub fn meets(&self, targets: Targets) -> bool {
        self.all.accuracy() >= targets.intent_accuracy
            && self.all.wrong_rate() <= targets.wrong_rate
            && self.slot_accuracy() >= targets.slot_accuracy
    }
}

/// What the engine makes of `text` as a first message: a whole-message keyword first (as the
/// runtime does), then the matcher. The flow id, `none`, or `ask A|B`.
pub fn classify(flows: &FlowSet, text: &str) -> String {
    if let Some(f) = flows.keyword_flow(text) {
        return f.id.as_str().to_owned();
    }
    match flows.understanding().intent(text, |_| true) {
        Understood::Intent { flow, .. } => flow,
        Understood::Ambiguous { first, second } => format!("ask {first}|{second}"),
        Understood::Nothing => NONE.to_owned(),
    }
}

/// Runs the whole set against `flows`.
pub fn evaluate(flows: &FlowSet, set: &TestSet) -> Report {
    let mut report = Report::default();
    for (lang, intents) in &set.intents {
        for (label, texts) in intents {
            for text in texts {
                let got = classify(flows, text);
                let script = match normalize::script_of(text) {
                    Script::Latin | Script::Other => "latin",
                    Script::Devanagari | Script::Tamil => "native",
                };
                let right = got == *label;
                let asked = got.starts_with("ask ");
                let wrong = !right && !asked && got != NONE;
                for t in [
                    &mut report.all,
                    report.groups.entry(format!("{lang} {script}")).or_default(),
                ] {
                    t.total += 1;
                    t.right += usize::from(right);
                    t.wrong += usize::from(wrong);
                    t.asked += usize::from(asked);
                }
                if !right {
                    report
                        .confusions
                        .push((lang.clone(), text.clone(), label.clone(), got));
                }
            }
        }
    }
    for case in &set.slots {
        let got = read_slot(flows, &case.kind, &case.text, set.today);
        let e = report.slots.entry(case.kind.clone()).or_default();
        e.1 += 1;
        if got == case.want {
            e.0 += 1;
        } else {
            report
                .slot_misses
                .push((case.kind.clone(), case.text.clone(), case.want.clone(), got));
        }
    }
    report
}

/// The value of kind `kind` in `text`, as the test set writes it (`-` for none).
fn read_slot(flows: &FlowSet, kind: &str, text: &str, today: NaiveDate) -> String {
    let none = || "-".to_owned();
    match kind {
        "date" => slots::date(text, today)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(none),
        "amount" => super::super::runtime::parse_number(text)
            .or_else(|| slots::amount(text))
            .map(|v| v.to_string())
            .unwrap_or_else(none),
        // The shipped flows' patterns (claim_status.yaml, identity.yaml).
        "claim_number" => {
            let re = regex::Regex::new("^CLM-?[0-9]{6}$").expect("a valid pattern");
            slots::reference(text, true, |c| re.is_match(c)).unwrap_or_else(none)
        }
        "policy_number" => {
            let re = regex::Regex::new("^[A-Z0-9/-]{6,20}$").expect("a valid pattern");
            slots::reference(text, true, |c| re.is_match(c)).unwrap_or_else(none)
        }
        "yes_no" => match flows.understanding().yes_no(text) {
            Some(true) => "yes".to_owned(),
            Some(false) => "no".to_owned(),
            None => none(),
        },
        other => format!("unknown slot kind '{other}'"),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |x: f64| x * 100.0;
        writeln!(f, "intents by language and script:")?;
        for (group, t) in &self.groups {
            writeln!(
                f,
                "  {group:<10} {:>5.1}% right  {:>4.1}% wrong  {} asked  ({} utterances)",
                pct(t.accuracy()),
                pct(t.wrong_rate()),
                t.asked,
                t.total
            )?;
        }
        writeln!(
            f,
            "  {:<10} {:>5.1}% right  {:>4.1}% wrong  {} asked  ({} utterances)",
            "all",
            pct(self.all.accuracy()),
            pct(self.all.wrong_rate()),
            self.all.asked,
            self.all.total
        )?;
        if !self.confusions.is_empty() {
            writeln!(f, "confusions (language: text → labelled / understood):")?;
            for (lang, text, want, got) in &self.confusions {
                writeln!(f, "  {lang}: \"{text}\" → {want} / {got}")?;
            }
        }
        writeln!(f, "dates and numbers:")?;
        for (kind, (r, t)) in &self.slots {
            writeln!(f, "  {kind:<14} {r}/{t}")?;
        }
        writeln!(f, "  {:<14} {:.1}%", "all", pct(self.slot_accuracy()))?;
        for (kind, text, want, got) in &self.slot_misses {
            writeln!(f, "  miss {kind}: \"{text}\" → want {want}, got {got}")?;
        }
        Ok(())
    }
}
