//! `insurebot campaigns …` and `insurebot reminders run`: they work on the database directly
//! (like `import`); a running `serve` does the sending.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Settings;
use crate::messaging::composer::Composer;
use crate::reminders::campaigns::{self, Audience, CampaignReport, ContactFilter, NewCampaign};
use crate::reminders::premium::{self, Reminders};
use crate::store::entities::campaign::State as CampaignState;

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Create a campaign (state draft) from a CSV of numbers or a filter over contacts.
    Create(CreateArgs),
    /// Start sending (at the campaign's start time).
    Start {
        id: i64,
    },
    /// Stop queueing more messages; `resume` continues.
    Pause {
        id: i64,
    },
    Resume {
        id: i64,
    },
    /// Stop for good: pending recipients and unsent queued messages are withdrawn.
    Cancel {
        id: i64,
    },
    /// Progress and results; `--watch` shows a progress bar until the campaign ends.
    Status {
        id: i64,
        #[arg(long)]
        watch: bool,
    },
    /// Every campaign with its state.
    List,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub name: String,
    /// A MARKETING template of the registry.
    #[arg(long)]
    pub template: String,
    #[arg(long, default_value = "en")]
    pub language: String,
    /// Messages per second (default `campaigns.default_rate_per_second`).
    #[arg(long)]
    pub rate: Option<u32>,
    /// When sending may begin, RFC 3339 (default: when started).
    #[arg(long)]
    pub start_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// CSV with a `phone` column, optionally `language`, and one column per template parameter.
    #[arg(long, conflicts_with_all = ["has_policy", "active_within_days"])]
    pub csv: Option<PathBuf>,
    /// Leave invalid CSV rows out (and list them) instead of creating nothing.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Filter: contacts whose number is registered on a policy.
    #[arg(long)]
    pub has_policy: bool,
    /// Filter: contacts who wrote within this many days.
    #[arg(long)]
    pub active_within_days: Option<u32>,
    /// Filter audiences: the template's parameters, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub params: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RemindersCommand {
    /// Run today's premium reminders now (if after `run_at` and outside the quiet hours).
    Run,
}

async fn connect(settings: &Settings) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let db = crate::store::connect(&settings.database_url).await?;
    if settings.auto_migrate {
        crate::store::migrate(&db).await?;
    }
    if settings.messaging.templates_file.exists() {
        let defs = crate::engine::templates_file::load_file(&settings.messaging.templates_file)?;
        crate::messaging::templates::seed(&db, &defs, &settings.wabas(), crate::store::now_ms())
            .await?;
    }
    Ok(db)
}

/// `insurebot campaigns …`.
///
/// # Errors
/// Database, file and state errors, with context for the operator.
pub async fn campaigns(settings: Settings, command: CampaignsCommand) -> anyhow::Result<()> {
    let db = connect(&settings).await?;
    let now = chrono::Utc::now();
    match command {
        CampaignsCommand::Create(a) => {
            let audience = match &a.csv {
                Some(path) => Audience::Csv {
                    csv: std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                    skip_invalid: a.skip_invalid,
                },
                None => Audience::Filter {
                    filter: ContactFilter {
                        has_policy: a.has_policy,
                        active_within_days: a.active_within_days,
                    },
                    params: a.params.clone(),
                },
            };
            let new = NewCampaign {
                name: a.name,
                template: a.template,
                language: a.language,
                rate_per_second: a.rate,
                start_at: a.start_at.map(|t| t.timestamp_millis()),
                number: None,
                audience,
            };
            match campaigns::create(&db, &settings.campaigns, &settings.waba_of(None), new, now)
                .await
            {
                Ok(created) => {
                    for e in &created.row_errors {
                        println!("skipped {e}");
                    }
                    println!(
                        "campaign {} created (draft) with {} recipients; `insurebot campaigns start {}` to send",
                        created.id, created.recipients, created.id
                    );
                }
                Err(crate::reminders::ReminderError::Rows(rows)) => {
                    for e in &rows {
                        eprintln!("{e}");
                    }
                    anyhow::bail!(
                        "{} invalid row(s): nothing created (fix them or pass --skip-invalid)",
                        rows.len()
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        CampaignsCommand::Start { id } => campaigns::start(&db, id, now).await?,
        CampaignsCommand::Pause { id } => campaigns::pause(&db, id, now).await?,
        CampaignsCommand::Resume { id } => campaigns::resume(&db, id, now).await?,
        CampaignsCommand::Cancel { id } => campaigns::cancel(&db, id, now).await?,
        CampaignsCommand::List => {
            for c in campaigns::list(&db).await? {
                println!(
                    "{:>5}  {:<10} {:<24} {:<20} {}/s",
                    c.id, c.state, c.name, c.template, c.rate_per_second
                );
            }
        }
        CampaignsCommand::Status { id, watch } => {
            let report = campaigns::campaign_report(&db, id).await?;
            if watch {
                watch_progress(&db, report).await?;
            } else {
                print_report(&report);
            }
        }
    }
    Ok(())
}

async fn watch_progress(
    db: &sea_orm::DatabaseConnection,
    mut report: CampaignReport,
) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(report.total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:40}] {pos}/{len} {msg} ({elapsed})",
        )?
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("campaign {}", report.id));
    loop {
        bar.set_position(report.done());
        bar.set_message(format!(
            "{}: sent {} delivered {} read {} failed {} skipped {}",
            report.state,
            report.sent,
            report.delivered,
            report.read,
            report.failed.values().sum::<u64>(),
            report.skipped.values().sum::<u64>()
        ));
        let ended = matches!(
            report.state,
            CampaignState::Completed | CampaignState::Cancelled
        ) && report.queued == 0;
        if ended {
            bar.finish();
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        report = campaigns::campaign_report(db, report.id).await?;
    }
    print_report(&report);
    Ok(())
}

fn print_report(r: &CampaignReport) {
    println!(
        "campaign {} '{}' ({}) — {}",
        r.id, r.name, r.template, r.state
    );
    println!("  rate       {}/s", r.rate_per_second);
    println!("  recipients {}", r.total);
    println!("  pending    {}", r.pending);
    println!("  queued     {}", r.queued);
    println!("  sent       {}", r.sent);
    println!("  delivered  {}", r.delivered);
    println!("  read       {}", r.read);
    for (label, map) in [("failed", &r.failed), ("skipped", &r.skipped)] {
        println!("  {label:<10} {}", map.values().sum::<u64>());
        for (reason, n) in map {
            println!("    {reason:<28} {n}");
        }
    }
}

/// `insurebot reminders run`.
///
/// # Errors
/// Database errors.
pub async fn reminders(settings: Settings, command: RemindersCommand) -> anyhow::Result<()> {
    let RemindersCommand::Run = command;
    let db = connect(&settings).await?;
    let insurer = crate::insurer::Insurer::from_settings(&settings.insurer, db.clone())?;
    let r = Reminders {
        settings: settings.reminders.clone(),
        composer: Composer::from_settings(&settings),
        pay_links: insurer.pay_links().clone(),
        i18n: Some(Arc::new(
            crate::engine::i18n::I18n::load(&settings.dialogue.locales_dir).0,
        )),
        default_language: settings.dialogue.default_language.clone(),
        instance_id: format!("cli-{}", uuid::Uuid::new_v4().simple()),
    };
    let now = chrono::Utc::now();
    let today = match premium::due_date_at(&r.settings, now) {
        Ok(today) => today,
        Err(premium::Idle::Quiet) => anyhow::bail!("quiet hours: nothing is queued now"),
        Err(premium::Idle::BeforeRunTime) => {
            anyhow::bail!(
                "before reminders.run_at ({}): nothing to run yet",
                r.settings.run_at
            )
        }
    };
    let report = premium::run_day(&db, &r, today, now).await?;
    println!(
        "reminders {}: covered {}..{}, {} candidates, {} queued, {} skipped, {} already done{}",
        report.run_date,
        report.from,
        report.run_date,
        report.candidates,
        report.queued,
        report.skipped,
        report.already_done,
        if report.not_ours {
            " (another instance is running or finished this day)"
        } else {
            ""
        }
    );
    Ok(())
}
