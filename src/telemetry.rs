//! Logging: a tracing subscriber writing human-readable lines or JSON, filtered by the
//! configured directive. Personal data is masked where it is logged (see [`crate::privacy`]).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings};

/// The migration crate logs every migration it applies (and "No pending migrations") at info,
/// which every command would print; `serve` logs one line of its own instead. A configured
/// filter that names the crate keeps its own level.
const MIGRATION_CRATE: &str = "sea_orm_migration";

/// Installs the global subscriber; `RUST_LOG`, when set, wins over the configured filter.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(directive(&settings.filter)));
    let registry = tracing_subscriber::registry().with(filter);
    // Logs go to stderr (stdout is for command output); colours only on a terminal.
    let ansi = std::io::stderr().is_terminal();
    let _ = match settings.format {
        LogFormat::Human => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}

/// The configured filter with the migration crate at warn unless the filter names it.
fn directive(configured: &str) -> String {
    if configured.contains(MIGRATION_CRATE) {
        configured.to_owned()
    } else {
        format!("{configured},{MIGRATION_CRATE}=warn")
    }
}
