//! The live flow set: loaded and checked at start-up (a broken flow stops the server with
//! every problem listed), then reloaded when the files change or on SIGHUP. A reload that
//! fails the linter keeps the previous flows running and logs why; conversations whose state
//! disappeared are sent back to the menu by the engine, never stranded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::engine::flowset::EngineSettings;
use crate::engine::{Diagnostic, FlowSet};

/// How often the flow and locale files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The current [`FlowSet`], swapped atomically on reload.
pub struct FlowStore {
    current: RwLock<Arc<FlowSet>>,
    flows_dir: PathBuf,
    locales_dir: PathBuf,
    settings: EngineSettings,
}

impl FlowStore {
    /// Loads and checks the flows.
    ///
    /// # Errors
    /// Every diagnostic of the linter.
    pub fn load(
        flows_dir: &Path,
        locales_dir: &Path,
        settings: EngineSettings,
    ) -> Result<Self, Vec<Diagnostic>> {
        let set = FlowSet::load(flows_dir, locales_dir)?.with_settings(settings.clone());
        Ok(Self {
            current: RwLock::new(Arc::new(set)),
            flows_dir: flows_dir.to_owned(),
            locales_dir: locales_dir.to_owned(),
            settings,
        })
    }

    /// The flows in force now.
    pub fn current(&self) -> Arc<FlowSet> {
        self.current.read().expect("flow store lock").clone()
    }

    /// Loads the files again; on success the new flows are used from the next message on.
    ///
    /// # Errors
    /// Every diagnostic of the linter; the previous flows stay in force.
    pub fn reload(&self) -> Result<(), Vec<Diagnostic>> {
        let set =
            FlowSet::load(&self.flows_dir, &self.locales_dir)?.with_settings(self.settings.clone());
        *self.current.write().expect("flow store lock") = Arc::new(set);
        Ok(())
    }

    /// Reloads on SIGHUP and, when `watch_files`, when a file under the flow or locale
    /// directory changes; until `stop` is cancelled.
    pub async fn watch(self: Arc<Self>, watch_files: bool, stop: CancellationToken) {
        let mut seen = self.fingerprint();
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let sighup = async {
                match hangup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let sighup = std::future::pending::<()>();
            let reason = tokio::select! {
                () = stop.cancelled() => return,
                () = sighup => "SIGHUP",
                () = tokio::time::sleep(WATCH_INTERVAL) => {
                    if !watch_files {
                        continue;
                    }
                    let now = self.fingerprint();
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "files changed"
                }
            };
            match self.reload() {
                Ok(()) => tracing::info!(reason, "flows reloaded"),
                Err(diagnostics) => {
                    for d in &diagnostics {
                        tracing::error!(diagnostic = %d, "flow reload refused");
                    }
                    tracing::error!(
                        reason,
                        problems = diagnostics.len(),
                        "flows NOT reloaded; the previous flows stay in force"
                    );
                }
            }
        }
    }

    /// Names, sizes and modification times of every file under both directories.
    fn fingerprint(&self) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
        let mut files = Vec::new();
        for dir in [&self.flows_dir, &self.locales_dir] {
            collect(dir, &mut files);
        }
        files.sort();
        files
    }
}

fn collect(dir: &Path, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.metadata() {
            Ok(meta) if meta.is_dir() => collect(&path, out),
            Ok(meta) => out.push((path, meta.len(), meta.modified().ok())),
            Err(_) => {}
        }
    }
}
