//! The command line: its arguments (clap) and every command beyond the server itself, so
//! `main` only parses and calls [`run`].
//!
//! - this file: `serve`, `migrate`, `import`, `templates sync | list`, `contacts erase`,
//!   `retention run`, `fake-cloud-api`.
//! - [`agent`]: `insurebot agent add`, console users.
//! - [`flows`]: `insurebot flows check | graph | test`.
//! - [`reminders`]: `insurebot campaigns …` and `insurebot reminders run`.

pub mod agent;
pub mod flows;
pub mod reminders;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::Settings;

#[derive(Parser)]
#[command(
    name = "insurebot",
    version,
    about = "Self-hosted WhatsApp chatbot server for insurers"
)]
pub struct Cli {
    /// Config file (default: ./insurebot.toml when it exists).
    #[arg(long, global = true, env = "INSUREBOT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (sandbox mode when no access token is configured).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Check or test the flow files.
    Flows {
        #[command(subcommand)]
        command: FlowsCommand,
    },
    /// Talk to the bot in a terminal, through the real webhook path, in sandbox mode.
    Chat {
        /// The WhatsApp number you play.
        #[arg(long, default_value = "919812345678")]
        phone: String,
        /// The business number you write to (its phone number id, one of
        /// `[[whatsapp.numbers]]`); default: the first.
        #[arg(long)]
        number: Option<String>,
    },
    /// Manage the people who log in to the agent console.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Import the insurer's CSV export into the embedded tables (all or nothing by default).
    Import {
        kind: crate::insurer::ImportKind,
        file: PathBuf,
        /// Import the valid rows and report the invalid ones instead of importing nothing.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// The message template registry.
    Templates {
        #[command(subcommand)]
        action: TemplatesCommand,
    },
    /// Contacts' personal data.
    Contacts {
        #[command(subcommand)]
        action: ContactsCommand,
    },
    /// Message retention (`privacy.retention_days`).
    Retention {
        #[command(subcommand)]
        action: RetentionCommand,
    },
    /// Premium reminders (the server runs them daily; this runs today's now).
    Reminders {
        #[command(subcommand)]
        command: crate::cli::reminders::RemindersCommand,
    },
    /// Campaigns (broadcasts): create, start, pause, resume, cancel, status.
    Campaigns {
        #[command(subcommand)]
        command: crate::cli::reminders::CampaignsCommand,
    },
    /// Run the fake WhatsApp Cloud API on its own (for tests and demos).
    FakeCloudApi {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Create a console user (the password is asked for, or read from stdin).
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// agent, supervisor or admin.
        #[arg(long, default_value = "agent")]
        role: String,
        /// Read the password from the first line of standard input (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum FlowsCommand {
    /// Lint the flows: every problem with file, line, column and a hint; exit 1 if any.
    Check {
        /// Flow directory (default: the configured `dialogue.flows_dir`).
        dir: Option<PathBuf>,
        /// Locale directory (default: `locales` beside the flow directory).
        #[arg(long)]
        locales: Option<PathBuf>,
    },
    /// Draw the flows as diagrams (Mermaid, Graphviz dot or SVG) from the files; problems
    /// `flows check` finds are drawn on the states they concern.
    Graph {
        /// Flow directory (default: the configured `dialogue.flows_dir`).
        dir: Option<PathBuf>,
        /// Only this flow (required for SVG when there are several).
        #[arg(long)]
        flow: Option<String>,
        /// mermaid (Markdown with one block per flow when there are several), dot or svg.
        #[arg(long, default_value = "mermaid")]
        format: crate::engine::graph::Format,
        /// Language of the texts in the boxes (en, hi, ta).
        #[arg(long, default_value = "en")]
        lang: String,
        /// Locale directory (default: `locales` beside the flow directory).
        #[arg(long)]
        locales: Option<PathBuf>,
    },
    /// Run the conversation tests in DIR/tests/*.yaml; exit 1 if any fails.
    Test {
        /// Flow directory (default: the configured `dialogue.flows_dir`).
        dir: Option<PathBuf>,
        /// Locale directory (default: `locales` beside the flow directory).
        #[arg(long)]
        locales: Option<PathBuf>,
    },
    /// Score free-text understanding on the labelled test set: accuracy per language and
    /// script, a confusion list, dates and numbers; exit 1 under the targets (≥ 90 % intents,
    /// ≤ 2 % wrong intent, ≥ 95 % dates and numbers).
    Understand {
        /// Flow directory (default: the configured `dialogue.flows_dir`).
        dir: Option<PathBuf>,
        /// Locale directory (default: `locales` beside the flow directory).
        #[arg(long)]
        locales: Option<PathBuf>,
        /// Test set (default: DIR/understanding/test-set.yaml).
        #[arg(long)]
        set: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum TemplatesCommand {
    /// Read the Graph API's template list and update every template's status.
    Sync,
    /// Show the registry: name, language, category, status, essential.
    List,
}

#[derive(Subcommand)]
pub enum ContactsCommand {
    /// Erase a contact's personal data (messages, name, conversation, identity checks); the
    /// consent log stays, under a keyed hash of the number, so an opt-out is still honoured.
    /// Prints the receipt (JSON, counts per table).
    Erase {
        /// The WhatsApp number with country code, e.g. 919812345678.
        #[arg(long)]
        phone: String,
    },
}

#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Purge message bodies older than `privacy.retention_days` now (or `--days`).
    Run {
        #[arg(long)]
        days: Option<u32>,
    },
}

/// Runs one parsed command line; `main` is only this.
pub async fn run(cli: Cli) -> ExitCode {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("insurebot: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Flows { command } = &cli.command {
        // Flow authors read these results; no log lines in between.
        return match command {
            FlowsCommand::Check { dir, locales } => flows::check(
                dir.as_deref().unwrap_or(&settings.dialogue.flows_dir),
                locales.as_deref(),
            ),
            FlowsCommand::Graph {
                dir,
                flow,
                format,
                lang,
                locales,
            } => flows::graph(
                dir.as_deref().unwrap_or(&settings.dialogue.flows_dir),
                locales.as_deref(),
                flow.as_deref(),
                *format,
                lang,
            ),
            FlowsCommand::Test { dir, locales } => flows::test(
                dir.as_deref().unwrap_or(&settings.dialogue.flows_dir),
                locales.as_deref(),
            ),
            FlowsCommand::Understand { dir, locales, set } => flows::understand(
                dir.as_deref().unwrap_or(&settings.dialogue.flows_dir),
                locales.as_deref(),
                set.as_deref(),
            ),
        };
    }
    if matches!(cli.command, Command::Chat { .. } | Command::Agent { .. }) {
        // The conversation is the output; only problems are logged.
        let mut quiet = settings.log.clone();
        quiet.filter = "warn".into();
        crate::telemetry::init(&quiet);
    } else {
        crate::telemetry::init(&settings.log);
    }
    let result = match cli.command {
        Command::Chat { phone, number } => {
            crate::chat::run(settings, &phone, number.as_deref()).await
        }
        Command::Flows { .. } => unreachable!("handled above"),
        Command::Agent {
            command:
                AgentCommand::Add {
                    email,
                    name,
                    role,
                    password_stdin,
                },
        } => crate::cli::agent::add_agent(&settings, &email, &name, &role, password_stdin).await,
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Templates { action } => templates(settings, action).await,
        Command::FakeCloudApi { listen } => fake(listen).await,
        Command::Contacts { action } => contacts(settings, action).await,
        Command::Retention { action } => retention(settings, action).await,
        Command::Reminders { command } => crate::cli::reminders::reminders(settings, command).await,
        Command::Campaigns { command } => crate::cli::reminders::campaigns(settings, command).await,
        Command::Import {
            kind,
            file,
            skip_invalid,
        } => import(settings, kind, file, skip_invalid).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("insurebot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let stop = shutdown_signal();
    let app = Application::build(settings).await?;
    if let Some(welcome) = app.sandbox_welcome() {
        println!("{welcome}");
    }
    app.run_until_stopped(stop).await
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let db = crate::store::connect(&settings.database_url).await?;
    crate::store::migrate(&db).await?;
    println!("migrations applied");
    Ok(())
}

async fn import(
    settings: Settings,
    kind: crate::insurer::ImportKind,
    file: PathBuf,
    skip_invalid: bool,
) -> anyhow::Result<()> {
    let db = crate::store::connect(&settings.database_url).await?;
    crate::store::migrate(&db).await?;
    let numbers: Vec<String> = settings
        .numbers()
        .into_iter()
        .map(|n| n.phone_number_id)
        .collect();
    let report = crate::insurer::import_numbered(&db, kind, &file, skip_invalid, &numbers).await?;
    println!("{report}");
    Ok(())
}

async fn templates(settings: Settings, action: TemplatesCommand) -> anyhow::Result<()> {
    use crate::messaging::templates as registry;
    let db = crate::store::connect(&settings.database_url).await?;
    if settings.auto_migrate {
        crate::store::migrate(&db).await?;
    }
    let now = crate::store::now_ms();
    if settings.messaging.templates_file.exists() {
        let defs = crate::engine::templates_file::load_file(&settings.messaging.templates_file)?;
        registry::seed(&db, &defs, &settings.wabas(), now).await?;
    }
    match action {
        TemplatesCommand::Sync => {
            // Every WABA the numbers belong to, each once.
            let wabas: Vec<String> = settings
                .wabas()
                .into_iter()
                .filter(|w| !w.is_empty())
                .collect();
            let (Some(token), false) = (settings.whatsapp.access_token.clone(), wabas.is_empty())
            else {
                anyhow::bail!(
                    "templates sync needs INSUREBOT_WHATSAPP_ACCESS_TOKEN and a WABA id (INSUREBOT_WHATSAPP_WABA_ID, or waba_id on each [[whatsapp.numbers]] entry)"
                );
            };
            let http = reqwest::Client::builder()
                .timeout(settings.request_timeout())
                .build()?;
            let client = crate::whatsapp::client::CloudApiClient::new(
                http,
                &settings.whatsapp.api_base,
                &settings.whatsapp.phone_number_id,
                token,
            );
            for waba_id in &wabas {
                let report = anyhow::Context::with_context(
                    registry::sync(&db, &client, waba_id, now).await,
                    || format!("templates sync of WABA {waba_id}"),
                )?;
                println!(
                    "templates sync of WABA {waba_id}: {} listed, {} updated, {} added, {} no longer listed (marked DELETED)",
                    report.seen, report.updated, report.added, report.missing
                );
            }
        }
        TemplatesCommand::List => {
            for t in registry::all(&db).await? {
                // The WABA first: the same template may be approved in one and not another.
                println!(
                    "{:<16} {:<28} {:<6} {:<15} {:<10} {}",
                    if t.waba_id.is_empty() {
                        "-"
                    } else {
                        &t.waba_id
                    },
                    t.name,
                    t.language,
                    t.category,
                    t.status,
                    if t.essential { "essential" } else { "" }
                );
            }
        }
    }
    Ok(())
}

async fn contacts(settings: Settings, action: ContactsCommand) -> anyhow::Result<()> {
    let ContactsCommand::Erase { phone } = action;
    let phone = crate::phone::PhoneNumber::parse(&phone)
        .map_err(|e| anyhow::anyhow!("--phone {e}"))?
        .into_string();
    let db = crate::store::connect(&settings.database_url).await?;
    if settings.auto_migrate {
        crate::store::migrate(&db).await?;
    }
    let hasher = crate::consent::AddressHasher::new(settings.hash_key());
    let media = crate::media::MediaStore::from_settings(&settings.media, &settings.database_url)?;
    match crate::consent::erasure::erase(&db, &hasher, Some(&media), &phone, crate::store::now_ms())
        .await?
    {
        Some(receipt) => {
            println!("{}", serde_json::to_string_pretty(&receipt)?);
            Ok(())
        }
        None => anyhow::bail!("no contact has this number; nothing erased"),
    }
}

async fn retention(settings: Settings, action: RetentionCommand) -> anyhow::Result<()> {
    let RetentionCommand::Run { days } = action;
    let days = days.unwrap_or(settings.privacy.retention_days);
    if days == 0 {
        anyhow::bail!("retention is off (privacy.retention_days = 0); pass --days N to purge once");
    }
    let db = crate::store::connect(&settings.database_url).await?;
    if settings.auto_migrate {
        crate::store::migrate(&db).await?;
    }
    let media = crate::media::MediaStore::from_settings(&settings.media, &settings.database_url)?;
    let report =
        crate::consent::erasure::purge_older_than(&db, Some(&media), days, crate::store::now_ms())
            .await?;
    println!(
        "retention: bodies older than {days} days cleared: {} inbound messages, {} outbox rows, {} media files, {} misunderstood messages",
        report.inbound_messages, report.outbox, report.media_files, report.misunderstood_messages
    );
    Ok(())
}

async fn fake(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let stop = shutdown_signal();
    let server = crate::whatsapp::fake::FakeCloudApi::new()
        .spawn(listen)
        .await?;
    println!("fake Cloud API at {}", server.base_url);
    stop.await;
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled: a signal that arrives while the server is starting
/// (or before the server's shutdown task first runs) still stops it gracefully instead of
/// killing it with the database files left open.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
            tracing::info!("shutting down: finishing in-flight requests");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests");
    }
}
