//! Builds one insurebot instance: database, migrations, the Cloud API client (or the built-in
//! fake in sandbox mode), the pipeline, the sender and the HTTP server. `main` and the
//! integration tests start the very same thing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use sea_orm::DatabaseConnection;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::hours::OfficeHours;
use crate::config::{DialogueMode, Settings};
use crate::dialogue::FlowRunner;
use crate::dialogue::flows::FlowStore;
use crate::engine::flowset::EngineSettings;
use crate::http::console::Console;
use crate::http::{self, AppState, WebhookSecrets};
use crate::ingest::echo::EchoHandler;
use crate::ingest::pipeline::{MessageHandler, Pipeline};
use crate::insurer::Insurer;
use crate::messaging::composer::Composer;
use crate::messaging::pacing::Pacing;
use crate::messaging::sender::Sender;
use crate::messaging::templates;
use crate::metrics::Metrics;
use crate::nlu::NluClient;
use crate::whatsapp::client::CloudApiClient;
use crate::whatsapp::fake::{FakeCloudApi, FakeServer};

/// How often the pipeline looks for messages nobody was told about (after a restart, a failed
/// attempt, or from another instance).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A built, bound, not yet running instance.
pub struct Application {
    listener: TcpListener,
    port: u16,
    /// `/metrics`' own listener, when `metrics.listen` is set.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    sender: Sender,
    /// The flow runner when the flow engine answers (its timers run beside the server).
    runner: Option<Arc<FlowRunner>>,
    /// The live flows when the flow engine answers; reloaded on change and SIGHUP.
    flows: Option<Arc<FlowStore>>,
    /// The in-process fake Cloud API in sandbox mode; kept alive as long as the app.
    sandbox_server: Option<FakeServer>,
    /// Premium reminders and campaigns.
    reminders: crate::reminders::worker::Worker,
    /// The periodic template sync: client, every WhatsApp Business Account the numbers belong
    /// to (each once), interval (only with a real Cloud API and a WABA id).
    template_sync: Option<(CloudApiClient, Vec<String>, Duration)>,
}

impl Application {
    /// Connects, migrates (when `auto_migrate`), and binds the listener (port 0 picks one).
    ///
    /// # Errors
    /// When the database is unreachable, a migration fails or the address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(crate::clock::SystemClock)).await
    }

    /// [`Application::build`] with the clock the reminders, campaigns and one-time passwords
    /// read (tests move time with a `ManualClock`).
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> anyhow::Result<Self> {
        // Flows first: a broken flow file is the most likely start-up error, and it needs no
        // database to be reported.
        let dialogue = &settings.dialogue;
        let flows = match dialogue.handler {
            DialogueMode::Echo => None,
            DialogueMode::Flows => {
                let engine_settings = EngineSettings {
                    misunderstood_limit: dialogue.misunderstood_limit,
                    idle_restart: chrono::Duration::minutes(i64::from(
                        dialogue.idle_restart_minutes,
                    )),
                    agent_wait_limit: chrono::Duration::minutes(i64::from(
                        dialogue.agent_wait_minutes,
                    )),
                    ..EngineSettings::default()
                };
                let store =
                    FlowStore::load(&dialogue.flows_dir, &dialogue.locales_dir, engine_settings)
                        .map_err(|diagnostics| {
                            let listed: Vec<String> =
                                diagnostics.iter().map(ToString::to_string).collect();
                            anyhow::anyhow!(
                                "the flows in {} do not pass `insurebot flows check`:\n{}",
                                dialogue.flows_dir.display(),
                                listed.join("\n")
                            )
                        })?;
                // Each number's language and flows must be ones just loaded.
                let set = store.current();
                let languages: Vec<&str> = set.i18n().languages().collect();
                let flow_ids: Vec<&str> = set.flows().map(|f| f.id.as_str()).collect();
                settings.check_numbers_against(&languages, &flow_ids)?;
                Some(Arc::new(store))
            }
        };
        let db = crate::store::connect(&settings.database_url)
            .await
            .with_context(|| {
                format!("cannot connect to the database {:?}", settings.database_url)
            })?;
        if settings.auto_migrate {
            let applied = crate::store::migrate(&db)
                .await
                .context("database migration failed")?;
            tracing::info!(applied, "database migrations ran: the schema is current");
        }
        load_templates(&db, &settings).await?;
        if settings.sandbox() && settings.auto_migrate {
            crate::insurer::load_sample_if_empty(&db)
                .await
                .context("cannot load the sample policies")?;
        }
        let otp = crate::otp::Otp::from_settings(&settings, clock.clone()).map(Arc::new);
        if otp.is_none() {
            tracing::info!("one-time passwords are off: set INSUREBOT_OTP_SECRET to use them");
        }
        let media_store =
            crate::media::MediaStore::from_settings(&settings.media, &settings.database_url)
                .context("cannot open the media store")?;
        let insurer = Arc::new(
            Insurer::from_settings(&settings.insurer, db.clone())
                .context("cannot set up the insurer data source")?
                .with_otp(otp.clone())
                .with_media(Some(media_store.clone())),
        );
        let pay_links = insurer.pay_links().clone();
        let composer = Composer::from_settings(&settings);
        let runner = match &flows {
            None => None,
            Some(store) => Some(Arc::new(FlowRunner {
                flows: store.clone(),
                actions: insurer.clone(),
                composer: composer.clone(),
                default_language: settings.dialogue.default_language.clone(),
                lines: crate::dialogue::LineDialogue::from_settings(&settings),
                office_hours: Some(office_hours(&settings)?),
                agent_idle_close: minutes_or_never(settings.dialogue.agent_idle_close_minutes),
                agent_reply_limit: minutes_or_never(settings.dialogue.agent_reply_minutes),
                media_limits: settings.media.max_bytes,
                media_store: Some(media_store.clone()),
                nlu: NluClient::new(&settings.nlu)?.map(Arc::new),
                understood: Default::default(),
            })),
        };
        let handler: Arc<dyn MessageHandler> = match &runner {
            None => Arc::new(EchoHandler {
                composer: composer.clone(),
            }),
            Some(runner) => runner.clone(),
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        // Stable across restarts when the address is fixed: an instance killed with SIGKILL and
        // started again reclaims its own contact and outbox leases at once instead of waiting
        // for them to expire. Two live processes can never share host and port.
        let instance_id = if settings.listen.port() == 0 {
            format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple())
        } else {
            format!("{}:{}", hostname(), settings.listen)
        };

        // The sandbox's own fake speaks h2c: its sends take the HTTP/2 path a real number takes.
        let connections = crate::whatsapp::client::http_clients(
            settings.request_timeout(),
            settings.whatsapp.h2c || settings.sandbox(),
            settings.messaging.max_in_flight as usize,
        )
        .context("cannot build the HTTP client")?;
        let http = connections[0].clone();
        let (api_base, token, sandbox) = if settings.sandbox() {
            // Loopback only: the fake's request log holds message contents.
            let fake = FakeCloudApi::new();
            fake.set_latency(Duration::from_millis(settings.whatsapp.sandbox_latency_ms));
            let server = fake
                .clone()
                .spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .context("cannot start the sandbox Cloud API")?;
            tracing::info!(base_url = %server.base_url, "sandbox mode: no access token, replies go to the built-in fake Cloud API");
            (
                server.base_url.clone(),
                SecretString::from("sandbox-token"),
                Some((fake, server)),
            )
        } else {
            let token = settings
                .whatsapp
                .access_token
                .clone()
                .expect("not sandbox: token set");
            (settings.whatsapp.api_base.clone(), token, None)
        };
        // One client per business number (they share the connections).
        let clients: Vec<CloudApiClient> = settings
            .numbers()
            .iter()
            .map(|number| {
                CloudApiClient::new(
                    http.clone(),
                    &api_base,
                    &number.phone_number_id,
                    token.clone(),
                )
                .with_connections(connections.clone())
            })
            .collect();
        let client = clients[0].clone();

        let media_fetcher = Arc::new(crate::media::MediaFetcher::new(
            db.clone(),
            &api_base,
            token,
            media_store.clone(),
            settings.media.clone(),
        )?);
        // Every WABA the numbers belong to (a number without one has no list to read).
        let wabas: Vec<String> = settings
            .wabas()
            .into_iter()
            .filter(|w| !w.is_empty())
            .collect();
        let template_sync =
            (sandbox.is_none() && !wabas.is_empty() && settings.whatsapp.template_sync_secs > 0)
                .then(|| {
                    (
                        client.clone(),
                        wabas,
                        Duration::from_secs(settings.whatsapp.template_sync_secs),
                    )
                });
        let mut lines = Vec::with_capacity(clients.len());
        for (client, number) in clients.into_iter().zip(settings.numbers()) {
            let shared = shared_rate(&settings, &db, &number).await?;
            lines.push(crate::messaging::numbers::Line {
                client: Arc::new(client),
                pacing: Arc::new(
                    Pacing::at_rate(&settings.messaging, number.rate_per_second)
                        .with_shared(shared),
                ),
            });
        }
        let lines = crate::messaging::numbers::Lines::new(lines);
        let metrics = Arc::new(Metrics::new());
        let outbox_ready = Arc::new(Notify::new());
        let handoff = crate::messaging::handover::Handoff::new(
            &instance_id,
            lines.total_rate(),
            settings.messaging.max_in_flight as usize,
        );
        let pipeline = Pipeline::new(
            db.clone(),
            handler,
            metrics.clone(),
            instance_id.clone(),
            outbox_ready.clone(),
            handoff.clone(),
            Some(media_fetcher),
        );
        let reminders = crate::reminders::worker::Worker {
            db: db.clone(),
            reminders: crate::reminders::premium::Reminders {
                settings: settings.reminders.clone(),
                composer: composer.clone(),
                pay_links,
                i18n: Some(Arc::new(
                    crate::engine::i18n::I18n::load(&settings.dialogue.locales_dir).0,
                )),
                default_language: settings.dialogue.default_language.clone(),
                instance_id: instance_id.clone(),
            },
            clock,
            wake: outbox_ready.clone(),
        };
        let sender = Sender {
            uploader: Some(crate::media::uploads::Uploader {
                db: db.clone(),
                store: media_store.clone(),
            }),
            db: db.clone(),
            lines,
            settings: settings.outbox.clone(),
            composer: composer.clone(),
            max_in_flight: settings.messaging.max_in_flight as usize,
            metrics: metrics.clone(),
            instance_id,
            wake: outbox_ready,
            mark_read: settings.mark_read,
            handoff,
        };
        let console = Console::new(
            office_hours(&settings)?,
            flows.clone(),
            settings.dialogue.default_language.clone(),
            crate::http::console::auth::PasswordGate::new(
                settings.console.login_max_concurrent_hashes,
            ),
        )?;
        // The ingest's connection attempts end about when the webhooks waiting on them are
        // answered 503, so that their redeliveries find a fresh attempt, not one still hanging
        // on a database that went away (at least a second: a TLS handshake to a remote server).
        let ingest_acquire =
            Duration::from_millis(settings.webhook.store_timeout_ms).max(Duration::from_secs(1));
        let hasher = crate::consent::AddressHasher::new(settings.hash_key());
        let store_timeout = Duration::from_millis(settings.webhook.store_timeout_ms);
        let ingest = if settings.database_url.is_sqlite() {
            crate::ingest::store::IngestQueue::start(
                db.clone(),
                hasher,
                settings.webhook.max_queued,
                metrics.webhooks_waiting.clone(),
                store_timeout,
            )
        } else {
            crate::ingest::store::IngestQueue::start_own_connection(
                settings.database_url.clone(),
                ingest_acquire,
                hasher,
                settings.webhook.max_queued,
                metrics.webhooks_waiting.clone(),
                store_timeout,
            )
            .await
            .context("cannot open the webhook ingest's database connection")?
        };
        let metrics_listener = match settings.metrics.listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (metrics.listen)"))?,
            ),
            None => None,
        };
        let api_throttle = Arc::new(crate::http::throttle::FailureThrottle::new(
            std::num::NonZeroU32::new(settings.api.max_failures_per_minute)
                .context("api.max_failures_per_minute must be at least 1")?,
            settings.api.max_tracked_addresses,
        ));
        let state = AppState {
            api_throttle,
            composer,
            otp,
            console: Arc::new(console),
            insurer,
            db,
            secrets: Arc::new(WebhookSecrets {
                app_secret: settings.app_secret(),
                verify_token: settings.verify_token(),
            }),
            settings: Arc::new(settings),
            metrics,
            pipeline,
            ingest,
            sandbox: sandbox.as_ref().map(|(fake, _)| fake.clone()),
            media: media_store,
        };
        let sandbox_server = sandbox.map(|(_, server)| server);
        Ok(Self {
            listener,
            port,
            metrics_listener,
            state,
            sender,
            runner,
            flows,
            sandbox_server,
            template_sync,
            reminders,
        })
    }

    /// Replaces the reminders' and campaigns' clock (tests move time with a `ManualClock`).
    pub fn with_clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Self {
        self.reminders.clock = clock;
        self
    }

    /// The bound port (useful when built with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` is served on when `metrics.listen` gives it its own (port 0 picks
    /// one); `None` when it is served on the main port.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// The database pool, for tests and CLI commands that run beside the server.
    pub fn db(&self) -> DatabaseConnection {
        self.state.db.clone()
    }

    /// The bound on console password checks, for tests and benchmarks that watch it.
    pub fn password_gate(&self) -> crate::http::console::auth::PasswordGate {
        self.state.console.password_gate.clone()
    }

    /// In sandbox mode, what to open first: the simulator, the console, how to create the first
    /// console admin and how to chat in a terminal. `None` outside sandbox mode.
    pub fn sandbox_welcome(&self) -> Option<String> {
        self.sandbox_server.as_ref()?;
        let ip = self.state.settings.listen.ip();
        // A wildcard address is not something to open in a browser; loopback always works.
        let host = if ip.is_unspecified() {
            "127.0.0.1".to_owned()
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let base = format!("http://{host}:{}", self.port);
        Some(format!(
            "insurebot is running in sandbox mode: replies go to a built-in fake WhatsApp, sample policies are loaded.\n\
             \x20 Simulator (a phone in the browser): {base}/simulator\n\
             \x20 Agent console:                      {base}/console\n\
             \x20 First console admin:                cargo run -- agent add --email you@example.com --name \"Your Name\" --role admin\n\
             \x20 Chat in this terminal instead:      cargo run -- chat"
        ))
    }

    /// The sandbox fake's base URL, when in sandbox mode.
    pub fn sandbox_api_base(&self) -> Option<&str> {
        self.sandbox_server.as_ref().map(|s| s.base_url.as_str())
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish and stops the
    /// background workers. Pending messages stay in the database for the next start.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let sweeper = tokio::spawn(
            self.state
                .pipeline
                .clone()
                .run_sweeper(SWEEP_INTERVAL, stop.clone()),
        );
        let sender = tokio::spawn(self.sender.clone().run(stop.clone()));
        let retention = tokio::spawn(run_retention(
            self.state.db.clone(),
            self.state.media.clone(),
            self.state.settings.privacy.clone(),
            stop.clone(),
        ));
        let reminders = tokio::spawn(self.reminders.clone().run(stop.clone()));
        let template_sync = self.template_sync.map(|(client, wabas, every)| {
            tokio::spawn(run_template_sync(
                self.state.db.clone(),
                client,
                wabas,
                every,
                stop.clone(),
            ))
        });
        let timers = self.runner.clone().map(|runner| {
            tokio::spawn(runner.run_timers(
                self.state.db.clone(),
                format!("{}/timers", self.sender.instance_id),
                stop.clone(),
            ))
        });
        let watcher = self.flows.clone().map(|flows| {
            tokio::spawn(flows.watch(self.state.settings.dialogue.watch, stop.clone()))
        });
        let closing = self.state.console.closing.clone();
        let metrics_stop = CancellationToken::new();
        let metrics_server = self.metrics_listener.map(|listener| {
            let router = http::metrics_router(self.state.clone());
            tokio::spawn(
                axum::serve(listener, router)
                    .with_graceful_shutdown(metrics_stop.clone().cancelled_owned())
                    .into_future(),
            )
        });
        let db = self.state.db.clone();
        let pipeline = self.state.pipeline.clone();
        let router = http::router(self.state);
        tracing::info!(port = self.port, "insurebot listening");
        // Connect info gives the console's login limiting the client address.
        // Without TCP_NODELAY a small write (a console event, a chunk of a streamed body)
        // waits behind an unacknowledged earlier one for the client's delayed ACK (~40 ms).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Long-lived console event streams end so in-flight requests can drain.
            closing.cancel();
        })
        .await;
        stop.cancel();
        metrics_stop.cancel();
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.await;
        }
        if let Some(timers) = timers {
            let _ = timers.await;
        }
        let _ = tokio::join!(sweeper, sender, retention, reminders, pipeline.stop());
        if let Some(template_sync) = template_sync {
            let _ = template_sync.await;
        }
        if let Some(watcher) = watcher {
            let _ = watcher.await;
        }
        drop(self.sandbox_server);
        // Last: every worker has stopped, so the pool can close (and SQLite drop its WAL).
        if let Err(e) = crate::store::close(db).await {
            tracing::warn!(error = %e, "the database did not close cleanly");
        }
        served.context("HTTP server failed")
    }
}

/// Loads the template registry file into the shared table (see [`templates::seed`]). A
/// missing file is only a warning: the registry may be filled by `insurebot templates sync`.
async fn load_templates(db: &DatabaseConnection, settings: &Settings) -> anyhow::Result<()> {
    let path = &settings.messaging.templates_file;
    if !path.exists() {
        tracing::warn!(path = %path.display(), "no template registry file: templates come only from `insurebot templates sync`");
        return Ok(());
    }
    let defs = crate::engine::templates_file::load_file(path)?;
    let n = templates::seed(db, &defs, &settings.wabas(), crate::store::now_ms())
        .await
        .context("cannot store the template registry")?;
    tracing::info!(path = %path.display(), templates = n, "template registry loaded");
    Ok(())
}

/// Where the instances share `number`'s rate (`messaging.shared_rate`, off by default):
/// Redis when `redis_url` is set, else PostgreSQL; SQLite (one instance) keeps it in memory.
/// Each number has its own budget, keyed by its phone number id.
async fn shared_rate(
    settings: &Settings,
    db: &DatabaseConnection,
    number: &crate::config::numbers::BusinessNumber,
) -> anyhow::Result<Option<crate::messaging::budget::SharedBudget>> {
    use crate::messaging::budget::SharedBudget;
    let m = &settings.messaging;
    if !m.shared_rate {
        return Ok(None);
    }
    let window = Pacing::window(m);
    let rate = number.rate_per_second;
    let number = &number.phone_number_id;
    if let Some(url) = &settings.redis_url {
        let budget = SharedBudget::redis(url.expose_secret(), number, rate, window)
            .await
            .context("cannot reach Redis (redis_url) to share the sending rate")?;
        return Ok(Some(budget));
    }
    if settings.database_url.is_sqlite() {
        return Ok(None);
    }
    let budget = SharedBudget::postgres(db.clone(), number, rate, window)
        .await
        .context("cannot set up the shared sending rate in the database")?;
    Ok(Some(budget))
}

fn office_hours(settings: &Settings) -> anyhow::Result<OfficeHours> {
    OfficeHours::from_settings(&settings.console)
        .map_err(|(key, problem)| anyhow::anyhow!("{key}: {problem}"))
}

/// A limit in minutes from the settings; 0 there means none.
fn minutes_or_never(minutes: u32) -> Option<chrono::Duration> {
    (minutes > 0).then(|| chrono::Duration::minutes(i64::from(minutes)))
}

/// Syncs the template registry of each WABA in `wabas` with the Graph API's list now and
/// every `every` until `stop` (one WABA failing does not keep the others from syncing).
async fn run_template_sync(
    db: DatabaseConnection,
    client: CloudApiClient,
    wabas: Vec<String>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        for waba_id in &wabas {
            let now = crate::store::now_ms();
            match crate::messaging::templates::sync(&db, &client, waba_id, now).await {
                Ok(r) if r.updated + r.added + r.missing > 0 => tracing::info!(
                    waba = %waba_id,
                    listed = r.seen,
                    updated = r.updated,
                    added = r.added,
                    no_longer_listed = r.missing,
                    "templates synced"
                ),
                Ok(r) => tracing::debug!(waba = %waba_id, listed = r.seen,
                    "templates synced, nothing changed"),
                Err(e) => tracing::warn!(waba = %waba_id, error = %e,
                    "template sync failed; tried again next interval"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Purges message bodies past `privacy.retention_days` every `retention_interval_minutes`
/// (the first run right after start). Several instances running it at once is harmless: the
/// purge only clears what is still there.
async fn run_retention(
    db: DatabaseConnection,
    media: crate::media::MediaStore,
    privacy: crate::config::PrivacySettings,
    stop: CancellationToken,
) {
    if privacy.retention_days == 0 {
        return;
    }
    let every = Duration::from_secs(u64::from(privacy.retention_interval_minutes) * 60);
    loop {
        if let Err(e) = crate::consent::erasure::purge_older_than(
            &db,
            Some(&media),
            privacy.retention_days,
            crate::store::now_ms(),
        )
        .await
        {
            tracing::warn!(error = %e, "retention purge failed; tried again next interval");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "insurebot".to_owned())
}
