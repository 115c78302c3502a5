//! The flow linter: one `check` used by server start-up and by `insurebot flows check`.
//!
//! It reports every problem it can find in one pass (not only the first), each with
//! `file:line:column` and, where there is an obvious fix, a hint. A flow set that passes is
//! returned as a [`FlowSet`]: the only way to get one, so the runtime can rely on every target,
//! message id and pattern being valid.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::actions::{self, MEDIA_RESULT_FIELDS};
use super::diagnostic::{Diagnostic, Severity};
use super::flowset::{EngineSettings, Flow, FlowSet, normalize_keyword};
use super::i18n::{DATA_VALUES, FALLBACK_LANG, I18n, value_message_id};
use super::loader::{self, LoadedFlow};
use super::media_slot::{FileKind, MAX_FILES};
use super::model::{Expect, FlowFile, FlowId, Role, SendFiles, Sp, State, StateId, Target, limits};
use super::runtime::ENGINE_MESSAGES;
use super::understand::Understanding;

/// Checks flows and locales, reporting every problem.
///
/// Problems that make the rest meaningless are reported alone, in this order: a locales
/// directory that is not there (every language and message id would look wrong), a flows
/// directory that cannot be read, and locales without the fallback language. A flow file that
/// does not parse gets its one error; the other files are still linted, without the errors
/// that would only come from its absence (see [`check_loaded_without`]).
///
/// # Errors
/// All diagnostics (errors and warnings) when at least one is an error.
pub fn check(flows_dir: &Path, locales_dir: &Path) -> Result<FlowSet, Vec<Diagnostic>> {
    if let Some(missing) = missing_locales_dir(locales_dir) {
        return Err(vec![missing]);
    }
    let (loaded, mut diags) = loader::load_dir(flows_dir);
    let (i18n, i18n_diags) = I18n::load(locales_dir);
    let unreadable_flows_dir = loaded.is_empty() && diags.iter().any(|d| d.file == flows_dir);
    if unreadable_flows_dir {
        return Err(diags);
    }
    if !i18n.has_language(FALLBACK_LANG) {
        // `I18n::load` says why (no `en` folder, a bad folder name, an unreadable file).
        return Err(i18n_diags);
    }
    let unparsed: Vec<String> = diags
        .iter()
        .filter_map(|d| loader::presumed_flow_id(&d.file))
        .collect();
    diags.extend(i18n_diags);
    diags.extend(template_fallbacks(
        &loaded,
        &flows_dir.join(TEMPLATE_REGISTRY),
    ));
    check_loaded_without(loaded, &unparsed, i18n, locales_dir, diags)
}

/// The one diagnostic for a locales directory that is not there (a flows folder copied
/// without the `locales` folder beside it), or `None` when it is a directory.
fn missing_locales_dir(locales_dir: &Path) -> Option<Diagnostic> {
    let problem = match std::fs::metadata(locales_dir) {
        Ok(m) if m.is_dir() => return None,
        Ok(_) => "is not a directory".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        Err(e) => format!("cannot be read: {e}"),
    };
    Some(
        Diagnostic::error(
            locales_dir,
            0,
            0,
            format!(
                "the locales directory {problem}; the flows' languages and message ids are \
                 checked against it, so nothing else was checked"
            ),
        )
        .with_hint(
            "put the `locales` folder (`<lang>/*.ftl`) beside the flows folder, or name it: \
             `flows check DIR --locales LOCALES_DIR` (for `serve`: `dialogue.locales_dir`)",
        ),
    )
}

/// The template registry beside the flows, which their `template:` fallbacks are checked
/// against.
pub const TEMPLATE_REGISTRY: &str = "templates/templates.yaml";

/// Every state's `template:` fallback names a template of the registry at `registry` and gives
/// it as many parameters as it has. A fallback that fails here would be skipped at send time
/// (`template_unknown`, `template_params`), after the window closed: the policyholder would
/// get nothing. Without a registry file (templates only from `insurebot templates sync`)
/// there is nothing to check against.
fn template_fallbacks(loaded: &[LoadedFlow], registry: &Path) -> Vec<Diagnostic> {
    if !registry.exists() {
        return Vec::new();
    }
    let defs = match crate::engine::templates_file::load_file(registry) {
        Ok(defs) => defs,
        Err(e) => return vec![Diagnostic::error(registry, 0, 0, e.to_string())],
    };
    let mut diags = Vec::new();
    for lf in loaded {
        for (_, state) in &lf.file.states.0 {
            let Some(t) = &state.template else { continue };
            let Some(def) = defs.iter().find(|d| d.name == t.name.value) else {
                let mut d = Diagnostic::at(
                    &lf.path,
                    &t.name,
                    format!(
                        "template '{}' is not in {}",
                        t.name.value,
                        registry.display()
                    ),
                );
                d.hint = Some(
                    match did_you_mean(&t.name.value, defs.iter().map(|d| d.name.as_str())) {
                        Some(m) => format!("did you mean '{m}'?"),
                        None => "add it to the registry once it is approved in WhatsApp Manager"
                            .to_owned(),
                    },
                );
                diags.push(d);
                continue;
            };
            if t.params.len() != def.params.len() {
                diags.push(
                    Diagnostic::at(
                        &lf.path,
                        &t.name,
                        format!(
                            "template '{}' takes {} parameters, this state gives {}",
                            def.name,
                            def.params.len(),
                            t.params.len()
                        ),
                    )
                    .with_hint(format!("its parameters: {}", def.params.join(", "))),
                );
            }
        }
    }
    diags
}

/// Every code of every data value kind (policy status, claim stage, policy type:
/// [`DATA_VALUES`]) has its text in every language, so a Hindi reply never says "Active".
/// A message an English file has and another language lacks is already reported by the
/// every-id-in-every-language check; here the rest: codes English lacks too.
fn data_values(i18n: &I18n, locales_dir: &Path) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for (slot, codes) in DATA_VALUES {
        for code in *codes {
            let Some(id) = value_message_id(slot, code) else {
                continue;
            };
            for lang in i18n.languages() {
                let reported = lang != FALLBACK_LANG && i18n.has(FALLBACK_LANG, &id);
                if i18n.has(lang, &id) || reported {
                    continue;
                }
                diags.push(
                    Diagnostic::error(
                        &locales_dir.join(lang),
                        0,
                        0,
                        format!("{slot} '{code}' has no text in '{lang}' (message '{id}')"),
                    )
                    .with_hint(format!(
                        "add `{id} = …` to {}/flows.ftl: insurer data shows it in replies",
                        locales_dir.join(lang).display()
                    )),
                );
            }
        }
    }
    diags
}

/// Same as [`check`] for flows already parsed (used by tests and the reload path).
///
/// # Errors
/// All diagnostics when at least one is an error.
pub fn check_loaded(
    loaded: Vec<LoadedFlow>,
    i18n: I18n,
    locales_dir: &Path,
    diags: Vec<Diagnostic>,
) -> Result<FlowSet, Vec<Diagnostic>> {
    check_loaded_without(loaded, &[], i18n, locales_dir, diags)
}

/// [`check_loaded`] when the flows `unparsed` are in files that did not parse (their errors
/// are in `diags`): references to them are not reported as unknown flows, and no role is
/// reported missing (one of them may fill it). Their own error is the one to fix first;
/// reporting what follows from it would bury it.
fn check_loaded_without(
    loaded: Vec<LoadedFlow>,
    unparsed: &[String],
    i18n: I18n,
    locales_dir: &Path,
    mut diags: Vec<Diagnostic>,
) -> Result<FlowSet, Vec<Diagnostic>> {
    let mut cx = Lint {
        i18n: &i18n,
        locales_dir,
        diags: Vec::new(),
        flow_ids: loaded
            .iter()
            .map(|f| f.file.flow.value.clone())
            .chain(unparsed.iter().cloned())
            .collect(),
    };
    let mut flows: BTreeMap<String, Flow> = BTreeMap::new();
    let mut roles: BTreeMap<Role, (String, PathBuf)> = BTreeMap::new();
    let mut keywords: HashMap<String, (String, PathBuf)> = HashMap::new();
    let mut buttons: HashMap<String, (String, PathBuf)> = HashMap::new();
    // (language, flow, keyword, file): the keywords are phrases of the understanding too.
    let mut phrases: Vec<(String, String, String, PathBuf)> = Vec::new();

    for mut lf in loaded {
        let path = lf.path.clone();
        let fid = lf.file.flow.value.clone();
        let id = match FlowId::parse(&fid) {
            Ok(id) => id,
            Err(e) => {
                cx.diags.push(Diagnostic::at(&path, &lf.file.flow, e));
                continue;
            }
        };
        if let Some(prev) = flows.get(&fid) {
            cx.diags.push(
                Diagnostic::at(&path, &lf.file.flow, format!("duplicate flow id '{fid}'"))
                    .with_hint(format!(
                        "'{fid}' is already defined in {}",
                        prev.path.display()
                    )),
            );
            continue;
        }
        cx.flow(&path, &mut lf.file);
        if let Some(role) = &lf.file.role {
            if let Some((other, other_path)) = roles.get(&role.value) {
                cx.diags.push(
                    Diagnostic::at(
                        &path,
                        role,
                        format!(
                            "role '{}' is already filled by flow '{other}'",
                            role.value.as_str()
                        ),
                    )
                    .with_hint(format!("see {}", other_path.display())),
                );
            } else {
                roles.insert(role.value, (fid.clone(), path.clone()));
            }
        }
        for (lang, words) in &lf.file.triggers.keywords {
            for w in words {
                phrases.push((lang.clone(), fid.clone(), w.value.clone(), path.clone()));
                let key = normalize_keyword(&w.value);
                if key.is_empty() {
                    cx.diags
                        .push(Diagnostic::at(&path, w, "empty trigger keyword"));
                    continue;
                }
                match keywords.get(&key) {
                    Some((other, op)) => cx.diags.push(
                        Diagnostic::at(
                            &path,
                            w,
                            format!(
                                "trigger keyword '{}' is also used by flow '{other}'",
                                w.value
                            ),
                        )
                        .with_hint(format!(
                            "keywords must start one flow only; see {}",
                            op.display()
                        )),
                    ),
                    None => {
                        keywords.insert(key, (fid.clone(), path.clone()));
                    }
                }
            }
        }
        for b in &lf.file.triggers.buttons {
            match buttons.get(&b.value) {
                Some((other, op)) => cx.diags.push(
                    Diagnostic::at(
                        &path,
                        b,
                        format!(
                            "trigger button '{}' is also used by flow '{other}'",
                            b.value
                        ),
                    )
                    .with_hint(format!("see {}", op.display())),
                ),
                None => {
                    buttons.insert(b.value.clone(), (fid.clone(), path.clone()));
                }
            }
        }
        flows.insert(
            fid,
            Flow {
                id,
                path,
                version: lf.version,
                file: lf.file,
            },
        );
    }

    if unparsed.is_empty() {
        cx.roles(&flows, &roles);
    }
    cx.locales();
    // STOP, START and cancel stay whole-message keywords: a near match must not opt out.
    let excluded: BTreeSet<String> = roles
        .iter()
        .filter(|(r, _)| matches!(r, Role::OptOut | Role::OptIn | Role::Cancel))
        .map(|(_, (f, _))| f.clone())
        .collect();
    let languages: Vec<String> = i18n.languages().map(str::to_owned).collect();
    let (mut understanding, found) = Understanding::load(
        locales_dir,
        &languages,
        // Flows that failed to parse still exist: their phrases are not "unknown".
        &flows
            .keys()
            .cloned()
            .chain(unparsed.iter().cloned())
            .collect(),
        &excluded,
        &phrases,
    );
    cx.diags.extend(found);
    understanding.learn_titles(
        flows
            .values()
            .flat_map(|f| f.file.states.iter().map(|(_, st)| st))
            .flat_map(|st| {
                st.buttons.iter().flat_map(|b| {
                    languages
                        .iter()
                        .filter_map(|lang| i18n.render(lang, &b.title.value, None).ok())
                })
            }),
    );
    diags.append(&mut cx.diags);
    diags.extend(data_values(&i18n, locales_dir));

    if diags.iter().any(|d| d.severity == Severity::Error) {
        diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        return Err(diags);
    }
    Ok(FlowSet {
        flows,
        i18n,
        longest_keyword: keywords.keys().map(String::len).max().unwrap_or(0),
        keywords: keywords.into_iter().map(|(k, (f, _))| (k, f)).collect(),
        trigger_buttons: buttons.into_iter().map(|(k, (f, _))| (k, f)).collect(),
        roles: roles.into_iter().map(|(r, (f, _))| (r, f)).collect(),
        understanding,
        settings: EngineSettings::default(),
        warnings: diags,
    })
}

/// `locales/` beside the flows folder (`flows/` → `locales/`).
pub fn default_locales_dir(flows_dir: &Path) -> PathBuf {
    flows_dir
        .parent()
        .map(|p| p.join("locales"))
        .unwrap_or_else(|| PathBuf::from("locales"))
}

struct Lint<'a> {
    i18n: &'a I18n,
    locales_dir: &'a Path,
    diags: Vec<Diagnostic>,
    flow_ids: HashSet<String>,
}

/// Which length limit a rendered text must respect.
#[derive(Clone, Copy)]
enum TextKind {
    Body,
    Header,
    Footer,
    ButtonTitle,
    RowTitle,
    RowDescription,
    SectionTitle,
    ListButton,
    Plain,
    Caption,
}

impl TextKind {
    fn limit(self) -> (usize, &'static str) {
        match self {
            TextKind::Body => (limits::BODY, "an interactive body"),
            TextKind::Header => (limits::HEADER, "a header"),
            TextKind::Footer => (limits::FOOTER, "a footer"),
            TextKind::ButtonTitle => (limits::BUTTON_TITLE, "a button title"),
            TextKind::RowTitle => (limits::ROW_TITLE, "a list row title"),
            TextKind::RowDescription => (limits::ROW_DESCRIPTION, "a list row description"),
            TextKind::SectionTitle => (limits::SECTION_TITLE, "a list section title"),
            TextKind::ListButton => (limits::LIST_BUTTON, "the list button label"),
            TextKind::Plain => (limits::TEXT_BODY, "a text message"),
            TextKind::Caption => (limits::CAPTION, "a file's caption"),
        }
    }
}

impl Lint<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Checks a message id exists in every language and, for titles, fits after rendering.
    fn message(
        &mut self,
        path: &Path,
        id: &Sp<String>,
        kind: TextKind,
        rendered: &mut Vec<String>,
    ) {
        let langs: Vec<String> = self.i18n.languages().map(str::to_owned).collect();
        let mut missing = Vec::new();
        for lang in &langs {
            if !self.i18n.has(lang, &id.value) {
                missing.push(lang.clone());
                continue;
            }
            // Titles have no arguments; bodies may, so only titles must render cleanly.
            let text = match self.i18n.render(lang, &id.value, None) {
                Ok(t) => t,
                Err(e) => {
                    if !matches!(kind, TextKind::Body | TextKind::Plain | TextKind::Caption) {
                        self.push(Diagnostic::at(path, id, format!("{e}")));
                    }
                    self.i18n.render_placeholders(lang, &id.value, None)
                }
            };
            let (max, what) = kind.limit();
            let n = limits::len(&text);
            if n > max {
                self.push(
                    Diagnostic::at(
                        path,
                        id,
                        format!(
                            "'{}' in '{lang}' is {n} characters; {what} may have at most {max}",
                            id.value
                        ),
                    )
                    .with_hint(format!(
                        "shorten \"{text}\" in {}/{lang}",
                        self.locales_dir.display()
                    )),
                );
            }
            if lang == FALLBACK_LANG || rendered.is_empty() {
                rendered.push(text);
            }
        }
        if !missing.is_empty() {
            let mut d = Diagnostic::at(
                path,
                id,
                format!(
                    "message '{}' is missing in {}",
                    id.value,
                    missing.join(", ")
                ),
            );
            let suggestion = langs
                .first()
                .and_then(|l| did_you_mean(&id.value, self.i18n.ids(l)));
            d.hint = Some(match suggestion {
                Some(s) if missing.len() == langs.len() => format!("did you mean '{s}'?"),
                _ => format!(
                    "add it to {}",
                    missing
                        .iter()
                        .map(|l| format!("{}/{l}/*.ftl", self.locales_dir.display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            self.push(d);
        }
    }

    /// Checks a media step: known kinds, each once; `max` within bounds and only with
    /// `media`; a slot for the files and a button to leave (the "Done").
    fn media_expect(&mut self, path: &Path, sid: &Sp<String>, st: &State, e: &Expect) {
        let Some(kinds) = &e.media else {
            if let Some(max) = &e.max {
                self.push(Diagnostic::at(
                    path,
                    max,
                    "`max` only counts files: it needs `media`",
                ));
            }
            return;
        };
        let names = FileKind::ALL.map(FileKind::as_str).join(", ");
        if kinds.is_empty() {
            self.push(
                Diagnostic::at(path, sid, "`expect.media` lists no kind of file")
                    .with_hint(format!("name one or more of {names}")),
            );
        }
        let mut seen = HashSet::new();
        for k in kinds {
            if FileKind::parse(&k.value).is_none() {
                let mut d = Diagnostic::at(path, k, format!("'{}' is not a kind of file", k.value));
                d.hint = Some(
                    match did_you_mean(&k.value, FileKind::ALL.map(FileKind::as_str).into_iter()) {
                        Some(m) => format!("did you mean '{m}'?"),
                        None => format!("the kinds are {names}"),
                    },
                );
                self.push(d);
            } else if !seen.insert(k.value.as_str()) {
                self.push(Diagnostic::at(
                    path,
                    k,
                    format!("'{}' is listed twice", k.value),
                ));
            }
        }
        if let Some(max) = &e.max
            && !(1..=MAX_FILES).contains(&max.value)
        {
            self.push(Diagnostic::at(
                path,
                max,
                format!(
                    "`max` is {}; a media step takes 1 to {MAX_FILES} files",
                    max.value
                ),
            ));
        }
        if st.save.is_none() {
            self.push(
                Diagnostic::at(
                    path,
                    sid,
                    format!(
                        "state '{}' collects files but has no `save:` slot for them",
                        sid.value
                    ),
                )
                .with_hint("add `save: <slot>`; actions take the slot as an argument"),
            );
        }
        if st.buttons.is_empty() {
            self.push(
                Diagnostic::at(
                    path,
                    sid,
                    format!(
                        "state '{}' collects files but has no button to finish",
                        sid.value
                    ),
                )
                .with_hint("add a button such as `{ id: done, title: btn-done }`"),
            );
        }
    }

    fn target(&mut self, path: &Path, flow: &FlowFile, t: &Sp<String>) {
        match Target::parse(&t.value) {
            Target::End | Target::Return => {}
            Target::State(s) => {
                if !flow.states.contains_key(&s) {
                    let mut d = Diagnostic::at(path, t, format!("state '{s}' does not exist"));
                    if let Some(m) = did_you_mean(&s, flow.states.keys()) {
                        d.hint = Some(format!("did you mean '{m}'?"));
                    } else {
                        d.hint = Some(
                            "targets are a state of this flow, flow:<id>, end or return".to_owned(),
                        );
                    }
                    self.push(d);
                }
            }
            Target::Flow(f) => self.flow_ref(path, t, &f),
        }
    }

    fn flow_ref(&mut self, path: &Path, at: &Sp<String>, f: &str) {
        if !self.flow_ids.contains(f) {
            let mut d = Diagnostic::at(path, at, format!("flow '{f}' does not exist"));
            if let Some(m) = did_you_mean(f, self.flow_ids.iter().map(String::as_str)) {
                d.hint = Some(format!("did you mean 'flow:{m}'?"));
            }
            self.push(d);
        }
    }

    /// Checks a `send_files:` state: its slot holds files in this flow (a media step saves
    /// it, or an action the flow calls returns it as files), and its caption exists in every
    /// language and fits WhatsApp's 1024 characters.
    fn send_files(&mut self, path: &Path, flow: &FlowFile, send: &SendFiles) {
        let slot = send.slot.value.as_str();
        let saved_by_media_step = flow.states.iter().any(|(_, other)| {
            other.expect.as_ref().is_some_and(|e| e.media.is_some())
                && other.save.as_ref().is_some_and(|s| s.value == slot)
        });
        let returned_by_action = MEDIA_RESULT_FIELDS.iter().any(|(action, field)| {
            *field == slot
                && flow.states.iter().any(|(_, other)| {
                    other
                        .action
                        .as_ref()
                        .is_some_and(|a| a.value.known() == Some(*action))
                })
        });
        if !saved_by_media_step && !returned_by_action {
            let sources: Vec<String> = MEDIA_RESULT_FIELDS
                .iter()
                .map(|(action, field)| format!("`{field}` ({})", action.name()))
                .collect();
            self.push(
                Diagnostic::at(
                    path,
                    &send.slot,
                    format!(
                        "slot '{slot}' holds no files in this flow: no media step saves it and no action it calls returns it"
                    ),
                )
                .with_hint(format!(
                    "name the `save:` slot of a step with `expect: {{ media: [...] }}`, or an action's file field: {}",
                    sources.join(", ")
                )),
            );
        }
        if let Some(caption) = &send.caption {
            self.message(path, caption, TextKind::Caption, &mut Vec::new());
        }
    }

    fn flow(&mut self, path: &Path, flow: &mut FlowFile) {
        let langs: BTreeSet<String> = self.i18n.languages().map(str::to_owned).collect();
        if !flow.states.contains_key(&flow.start.value) {
            let mut d = Diagnostic::at(
                path,
                &flow.start,
                format!("start state '{}' does not exist", flow.start.value),
            );
            if let Some(m) = did_you_mean(&flow.start.value, flow.states.keys()) {
                d.hint = Some(format!("did you mean '{m}'?"));
            }
            self.push(d);
        }
        for lang in flow.triggers.keywords.keys() {
            if !langs.contains(lang) {
                self.push(
                    Diagnostic::error(
                        path,
                        0,
                        0,
                        format!("trigger keywords for unknown language '{lang}'"),
                    )
                    .with_hint(format!(
                        "shipped languages: {}",
                        langs.iter().cloned().collect::<Vec<_>>().join(", ")
                    )),
                );
            }
        }
        if let Some(role) = &flow.role
            && matches!(role.value, Role::OptOut | Role::OptIn | Role::Cancel)
        {
            for lang in &langs {
                if flow
                    .triggers
                    .keywords
                    .get(lang)
                    .is_none_or(|k| k.is_empty())
                {
                    self.push(
                        Diagnostic::at(
                            path,
                            role,
                            format!(
                                "the {} flow has no keywords in '{lang}'",
                                role.value.as_str()
                            ),
                        )
                        .with_hint(
                            "STOP, START and cancel must work in every shipped language (cancel \
                             alone opts out)",
                        ),
                    );
                }
            }
        }

        // Compile patterns first (mutable pass), then check everything else.
        for st in flow.states.values_mut() {
            if let Some(text) = st.expect.as_mut().and_then(|e| e.text.as_mut())
                && let Some(p) = &text.pattern
            {
                match regex::Regex::new(&p.value) {
                    Ok(r) => text.regex = Some(r),
                    Err(e) => {
                        let detail = e.to_string();
                        let last = detail.lines().last().unwrap_or("").trim();
                        let last = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                        self.push(
                            Diagnostic::at(path, p, format!("invalid pattern: {last}"))
                                .with_hint("patterns use Rust regex syntax; quote them in YAML"),
                        );
                    }
                }
            }
        }

        for (sid, st) in flow.states.iter() {
            self.state(path, flow, sid, st);
        }
        self.reachability(path, flow);
        self.loops(path, flow);
    }

    fn state(&mut self, path: &Path, flow: &FlowFile, sid: &Sp<String>, st: &State) {
        if let Err(e) = StateId::parse(&sid.value) {
            self.push(Diagnostic::at(path, sid, e));
        }
        if matches!(sid.value.as_str(), "end" | "return") {
            self.push(
                Diagnostic::at(
                    path,
                    sid,
                    format!("'{}' is reserved and cannot name a state", sid.value),
                )
                .with_hint("pick another name; `next: end` already ends the conversation"),
            );
        }
        if let Some(send) = &st.send_files {
            self.send_files(path, flow, send);
        }
        let mut scratch = Vec::new();
        let interactive = !st.buttons.is_empty() || st.list_from.is_some();
        if let Some(say) = &st.say {
            let kind = if interactive {
                TextKind::Body
            } else {
                TextKind::Plain
            };
            self.message(path, say, kind, &mut scratch);
        } else if interactive {
            self.push(
                Diagnostic::at(
                    path,
                    sid,
                    format!("state '{}' offers choices but says nothing", sid.value),
                )
                .with_hint("WhatsApp needs a body text for buttons and lists: add `say:`"),
            );
        }
        for (field, kind) in [
            (&st.header, TextKind::Header),
            (&st.footer, TextKind::Footer),
        ] {
            if let Some(id) = field {
                self.message(path, id, kind, &mut scratch);
            }
        }
        if let Some(lang) = &st.set_language
            && !self.i18n.has_language(&lang.value)
        {
            self.push(Diagnostic::at(
                path,
                lang,
                format!("language '{}' is not shipped", lang.value),
            ));
        }

        // Buttons and lists.
        if st.buttons.len() > limits::MAX_ROWS {
            self.push(
                Diagnostic::at(
                    path,
                    sid,
                    format!(
                        "state '{}' has {} buttons; at most {} fit in a list",
                        sid.value,
                        st.buttons.len(),
                        limits::MAX_ROWS
                    ),
                )
                .with_hint("split the choices over two states, e.g. a 'more' row"),
            );
        }
        if !st.buttons.is_empty() && st.list_from.is_some() {
            self.push(Diagnostic::at(
                path,
                sid,
                "a state can have `buttons` or `list_from`, not both",
            ));
        }
        let is_list = st.buttons.len() > limits::MAX_BUTTONS;
        let title_kind = if is_list {
            TextKind::RowTitle
        } else {
            TextKind::ButtonTitle
        };
        let mut seen_ids: HashMap<&str, &Sp<String>> = HashMap::new();
        let mut titles: BTreeMap<String, Vec<&Sp<String>>> = BTreeMap::new();
        for b in &st.buttons {
            if seen_ids.insert(b.id.value.as_str(), &b.id).is_some() {
                self.push(
                    Diagnostic::at(
                        path,
                        &b.id,
                        format!(
                            "duplicate button id '{}' in state '{}'",
                            b.id.value, sid.value
                        ),
                    )
                    .with_hint("button ids must be unique within a message"),
                );
            }
            if b.id.value.trim() != b.id.value
                || b.id.value.is_empty()
                || b.id.value.len() > limits::ID
            {
                self.push(Diagnostic::at(
                    path,
                    &b.id,
                    "button ids must be 1–200 characters without surrounding spaces",
                ));
            }
            let mut rendered = Vec::new();
            self.message(path, &b.title, title_kind, &mut rendered);
            if let Some(t) = rendered.first() {
                titles.entry(t.to_lowercase()).or_default().push(&b.title);
            }
            if let Some(d) = &b.description {
                if !is_list {
                    self.push(
                        Diagnostic::warning(path, d.referenced.line() as u32, d.referenced.column() as u32,
                            "descriptions are shown only in lists (4 or more buttons); this one is ignored"),
                    );
                }
                self.message(path, d, TextKind::RowDescription, &mut scratch);
            }
            if let Some(s) = &b.section {
                self.message(path, s, TextKind::SectionTitle, &mut scratch);
            }
            match &b.goto {
                Some(t) => self.target(path, flow, t),
                None if st.next.is_none() => self.push(
                    Diagnostic::at(path, &b.id, format!("button '{}' goes nowhere", b.id.value))
                        .with_hint("add `goto:` to the button or `next:` to the state"),
                ),
                None => {}
            }
        }
        for (t, ids) in &titles {
            if ids.len() > 1 {
                self.push(
                    Diagnostic::at(
                        path,
                        ids[1],
                        format!(
                            "two buttons of state '{}' show the same title \"{t}\"",
                            sid.value
                        ),
                    )
                    .with_hint("WhatsApp rejects a message whose button titles repeat"),
                );
            }
        }
        if is_list {
            let sectioned = st.buttons.iter().filter(|b| b.section.is_some()).count();
            if sectioned != 0 && sectioned != st.buttons.len() {
                self.push(Diagnostic::at(
                    path,
                    sid,
                    "either every row of a list has a `section` or none has",
                ));
            }
            match &st.list_button {
                Some(l) => self.message(path, l, TextKind::ListButton, &mut scratch),
                None => self.push(
                    Diagnostic::at(path, sid, format!("state '{}' has {} buttons, so it is a list and needs `list_button`", sid.value, st.buttons.len()))
                        .with_hint("add `list_button: <message id>` (the label of the button that opens the list)"),
                ),
            }
        } else if let Some(l) = &st.list_button {
            self.message(path, l, TextKind::ListButton, &mut scratch);
        }
        if let Some(lf) = &st.list_from {
            self.message(path, &lf.title, TextKind::Plain, &mut scratch);
            if let Some(d) = &lf.description {
                self.message(path, d, TextKind::Plain, &mut scratch);
            }
            self.message(path, &lf.button, TextKind::ListButton, &mut scratch);
            if st.next.is_none() {
                self.push(Diagnostic::at(
                    path,
                    &lf.items,
                    "a `list_from` state needs `next:` for the chosen row",
                ));
            }
        }

        if let Some(t) = &st.template {
            let ok = !t.name.value.is_empty()
                && t.name
                    .value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                self.push(
                    Diagnostic::at(
                        path,
                        &t.name,
                        format!(
                            "template name '{}' is not a WhatsApp template name",
                            t.name.value
                        ),
                    )
                    .with_hint("template names are lower-case letters, digits and '_'"),
                );
            }
        }

        // Actions.
        match &st.action {
            Some(a) => match a.value.known().map(actions::Action::spec) {
                None => {
                    let mut d = Diagnostic::at(path, a, format!("unknown action '{}'", a.value));
                    d.hint = Some(
                        match did_you_mean(a.value.name(), actions::Action::specs().map(|a| a.name))
                        {
                            Some(m) => format!("did you mean '{m}'?"),
                            None => "see the action table in flows/README.md".to_owned(),
                        },
                    );
                    self.push(d);
                }
                Some(spec) => {
                    for outcome in spec.outcomes {
                        if !st.on.contains_key(outcome) {
                            self.push(
                                Diagnostic::at(path, a, format!("action '{}' can return '{outcome}' but `on` has no branch for it", a.value))
                                    .with_hint(format!("add `{outcome}: <target>` under `on:`")),
                            );
                        }
                    }
                    for (k, _) in st.on.iter() {
                        if !spec.outcomes.contains(&k.value.as_str()) {
                            self.push(
                                Diagnostic::at(
                                    path,
                                    k,
                                    format!("action '{}' never returns '{}'", a.value, k.value),
                                )
                                .with_hint(format!(
                                    "its outcomes are: {}",
                                    spec.outcomes.join(", ")
                                )),
                            );
                        }
                    }
                }
            },
            None => {
                if let Some((k, _)) = st.on.iter().next() {
                    self.push(Diagnostic::at(
                        path,
                        k,
                        "`on` branches only make sense with an `action`",
                    ));
                }
                if let Some(a) = st.args.first() {
                    self.push(Diagnostic::at(
                        path,
                        a,
                        "`args` only make sense with an `action`",
                    ));
                }
            }
        }
        for (_, t) in st.on.iter() {
            self.target(path, flow, t);
        }

        // Answers.
        if let Some(e) = &st.expect {
            let kinds = [
                e.text.is_some(),
                e.number.is_some(),
                e.date.is_some(),
                e.choice == Some(true),
                e.media.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if kinds != 1 {
                self.push(
                    Diagnostic::at(path, sid, format!("`expect` of state '{}' must name exactly one of text, number, date, choice, media", sid.value)),
                );
            }
            self.media_expect(path, sid, st, e);
            if e.choice == Some(true) && st.buttons.is_empty() && st.list_from.is_none() {
                self.push(Diagnostic::at(
                    path,
                    sid,
                    "`expect: { choice: true }` needs `buttons` or `list_from`",
                ));
            }
            if let Some(n) = &e.number
                && let (Some(lo), Some(hi)) = (n.min, n.max)
                && lo > hi
            {
                self.push(Diagnostic::at(
                    path,
                    sid,
                    "`number.min` is larger than `number.max`",
                ));
            }
            if let Some(d) = &e.date
                && d.past
                && d.future
            {
                self.push(Diagnostic::at(
                    path,
                    sid,
                    "a date cannot be both `past` and `future`",
                ));
            }
            if let Some(inv) = &e.invalid {
                self.message(path, inv, TextKind::Plain, &mut scratch);
            }
            if let Some(t) = &e.on_fail {
                self.target(path, flow, t);
            }
            // A media step is left only by its buttons, like a choice.
            let by_buttons = e.choice == Some(true) || e.media.is_some();
            let needs_next = !by_buttons || st.buttons.iter().any(|b| b.goto.is_none());
            if needs_next && st.next.is_none() {
                self.push(Diagnostic::at(
                    path,
                    sid,
                    format!("state '{}' expects an answer but has no `next:`", sid.value),
                ));
            }
        }
        if let Some(s) = &st.save
            && st.expect.is_none()
            && st.buttons.is_empty()
            && st.list_from.is_none()
        {
            self.push(Diagnostic::at(
                path,
                s,
                "`save` needs an answer: add `expect`, `buttons` or `list_from`",
            ));
        }
        if st.action.is_some() && (st.expect.is_some() || interactive) {
            self.push(Diagnostic::at(
                path,
                sid,
                "a state cannot both call an action and wait for the contact; split it in two",
            ));
        }
        if st.handoff.is_some()
            && (st.action.is_some()
                || st.expect.is_some()
                || interactive
                || st.next.is_some()
                || st.call.is_some())
        {
            self.push(
                Diagnostic::at(path, sid, "a `handoff` state hands the conversation over; it cannot also act, ask or go on")
                    .with_hint("say something first and hand off; the agent continues from there"),
            );
        }
        if let Some(c) = &st.call {
            self.flow_ref(path, c, &c.value);
            if st.next.is_none() {
                self.push(Diagnostic::at(
                    path,
                    c,
                    "`call` needs `next:` (where to continue when the called flow returns)",
                ));
            }
            if st.waits() {
                self.push(Diagnostic::at(
                    path,
                    c,
                    "a `call` state cannot also wait for an answer or an action",
                ));
            }
        }
        if let Some(n) = &st.next {
            self.target(path, flow, n);
        } else if !st.waits() && st.call.is_none() {
            self.push(
                Diagnostic::at(
                    path,
                    sid,
                    format!("state '{}' does nothing next", sid.value),
                )
                .with_hint("add `next:` (a state, flow:<id>, end or return), buttons or `expect`"),
            );
        }
    }

    /// States no transition reaches from `start`.
    fn reachability(&mut self, path: &Path, flow: &FlowFile) {
        let seen = reachable(flow);
        for (k, _) in flow.states.iter() {
            if !seen.contains(k.value.as_str()) {
                self.push(
                    Diagnostic::at(
                        path,
                        k,
                        format!(
                            "state '{}' is unreachable from '{}'",
                            k.value, flow.start.value
                        ),
                    )
                    .with_hint("remove it, or point a `next`, `goto` or `on` at it"),
                );
            }
        }
    }

    /// Cycles of states that never wait and never leave: the engine would spin forever.
    fn loops(&mut self, path: &Path, flow: &FlowFile) {
        let mut reported: HashSet<String> = HashSet::new();
        for (k, _) in flow.states.iter() {
            let mut chain: Vec<&str> = Vec::new();
            let mut cur = k.value.as_str();
            while let Some(st) = flow.states.get(cur) {
                if st.waits() || st.call.is_some() {
                    break;
                }
                if let Some(pos) = chain.iter().position(|s| *s == cur) {
                    let cycle = &chain[pos..];
                    let mut key: Vec<&str> = cycle.to_vec();
                    key.sort();
                    if reported.insert(key.join(",")) {
                        let at = flow
                            .states
                            .iter()
                            .find(|(kk, _)| kk.value == cycle[0])
                            .map(|(kk, _)| kk)
                            .unwrap_or(k);
                        self.push(
                            Diagnostic::at(path, at, format!("states {} form a loop with no way out", cycle.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(" → ")))
                                .with_hint("one of them must wait (buttons, expect, action), hand off, end, or go to another flow"),
                        );
                    }
                    break;
                }
                chain.push(cur);
                match st.next.as_ref().map(|n| Target::parse(&n.value)) {
                    Some(Target::State(n)) => {
                        match flow.states.iter().find(|(kk, _)| kk.value == n) {
                            Some((kk, _)) => cur = kk.value.as_str(),
                            None => break,
                        }
                    }
                    _ => break,
                }
            }
        }
    }

    /// Every role is filled; menu and agent have a trigger button (offered by the engine).
    fn roles(&mut self, flows: &BTreeMap<String, Flow>, roles: &BTreeMap<Role, (String, PathBuf)>) {
        for role in Role::ALL {
            match roles.get(&role) {
                None => self.push(
                    Diagnostic::error(Path::new("flows"), 0, 0, format!("no flow has `role: {}`", role.as_str()))
                        .with_hint("the engine needs one flow per role: menu, agent, help, language, opt_out, opt_in"),
                ),
                Some((fid, path)) => {
                    if matches!(role, Role::Menu | Role::Agent)
                        && flows.get(fid).is_some_and(|f| f.file.triggers.buttons.is_empty())
                    {
                        self.push(
                            Diagnostic::error(path, 0, 0, format!("the {} flow needs a trigger button", role.as_str()))
                                .with_hint("the engine offers it after misunderstandings: add `triggers: { buttons: [...] }`"),
                        );
                    }
                }
            }
        }
    }

    /// Built-in messages exist everywhere; every English id exists in every language.
    fn locales(&mut self) {
        let langs: Vec<String> = self.i18n.languages().map(str::to_owned).collect();
        for id in ENGINE_MESSAGES {
            for lang in &langs {
                if !self.i18n.has(lang, id) {
                    self.push(
                        Diagnostic::error(
                            &self.locales_dir.join(lang),
                            0,
                            0,
                            format!("built-in message '{id}' is missing in '{lang}'"),
                        )
                        .with_hint("the engine itself uses it (see locales/en/engine.ftl)"),
                    );
                }
            }
        }
        let en: BTreeSet<String> = self.i18n.ids(FALLBACK_LANG).map(str::to_owned).collect();
        for lang in langs.iter().filter(|l| l.as_str() != FALLBACK_LANG) {
            let ids: BTreeSet<String> = self.i18n.ids(lang).map(str::to_owned).collect();
            for id in en.difference(&ids) {
                if ENGINE_MESSAGES.contains(&id.as_str()) {
                    continue; // reported above
                }
                self.push(
                    Diagnostic::error(
                        &self.locales_dir.join(lang),
                        0,
                        0,
                        format!("message '{id}' exists in 'en' but not in '{lang}'"),
                    )
                    .with_hint("every shipped language must define every message"),
                );
            }
            for id in ids.difference(&en) {
                self.push(
                    Diagnostic::warning(
                        &self.locales_dir.join(lang),
                        0,
                        0,
                        format!("message '{id}' exists in '{lang}' but not in 'en'"),
                    )
                    .with_hint("a typo, or a message no flow uses"),
                );
            }
        }
    }
}

/// The states some chain of transitions reaches from `start` (the flow diagrams draw the
/// others as unreachable, as this linter reports them).
pub(crate) fn reachable(flow: &FlowFile) -> HashSet<&str> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut todo = vec![flow.start.value.as_str()];
    while let Some(s) = todo.pop() {
        if !seen.insert(s) {
            continue;
        }
        let Some(st) = flow.states.get(s) else {
            continue;
        };
        for t in state_targets(st) {
            if let Target::State(n) = Target::parse(t)
                && let Some((k, _)) = flow.states.iter().find(|(k, _)| k.value == n)
            {
                todo.push(k.value.as_str());
            }
        }
    }
    seen
}

/// Every transition target a state names.
pub(crate) fn state_targets(st: &State) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    if let Some(n) = &st.next {
        out.push(&n.value);
    }
    for b in &st.buttons {
        if let Some(g) = &b.goto {
            out.push(&g.value);
        }
    }
    for (_, t) in st.on.iter() {
        out.push(&t.value);
    }
    if let Some(f) = st.expect.as_ref().and_then(|e| e.on_fail.as_ref()) {
        out.push(&f.value);
    }
    out
}

/// The closest candidate within a small edit distance.
fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let max = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= max)
        .min()
        .map(|(_, c)| c.to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
