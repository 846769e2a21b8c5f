//! Wiring: from a [`Config`] to a running scheduler with the seven jobs, the
//! health checker, the metrics and the HTTP server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::probe::Probe;
use mscribe_scheduler::TokioSpawner;
use mscribe_scheduler::{JobScheduler, StopReport, SystemClock};

use crate::alerts::{self, AlertParts, AlertService, AlertSettings};
use crate::config::Config;
use crate::control::{ControlPlane, ops_definitions};
use crate::db::{Database, DbError};
use crate::health::{AuthProbe, HealthChecker, HealthSettings, SchedulerProbe, StorageProbe};
use crate::http::ServerState;
use crate::http_client::parse_http_url;
use crate::metrics::ServerMetrics;
use crate::ops::{JOBS, OpsContext, ops_jobs};
use crate::token::{TokenError, TokenSource, resolve_admin_token};

/// How long a read of the history for the freshness metrics may take
/// before it is given up (the jobs' series then start at 0 until they run,
/// or until the next job is registered, which reads them again).
const SEED_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// A directory could not be created.
    #[error("cannot create {what} {path}: {source}")]
    Dir {
        /// Which setting.
        what: &'static str,
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// No admin token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The scheduler refused a job or to start.
    #[error("scheduler: {0}")]
    Scheduler(#[from] mscribe_scheduler::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// How [`App::build`] sets things up.
#[derive(Default, Clone)]
pub struct BuildOptions {
    /// Register every job paused, and claim no fire: `mscribe run` runs one
    /// job here, now, whatever other instances do.
    pub pause_all: bool,
    /// Open only a database that already exists with this build's schema
    /// ([`Database::open_existing`]), before anything is created: `mscribe
    /// run` must not make a new empty database (and back it up) out of a
    /// wrong or missing `database_url`.
    pub existing_database: bool,
    /// Called after log rotation renamed a log file.
    pub on_log_rotated: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for BuildOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildOptions")
            .field("pause_all", &self.pause_all)
            .field("existing_database", &self.existing_database)
            .finish_non_exhaustive()
    }
}

/// Everything a running server holds.
#[derive(Debug)]
pub struct App {
    /// The configuration.
    pub config: Arc<Config>,
    /// The database.
    pub db: Database,
    /// The scheduler with the seven jobs registered (not started).
    pub scheduler: JobScheduler,
    /// Pause, resume, trigger and cancel for every instance on the
    /// database; its sync loop runs while the server serves.
    pub control: ControlPlane,
    /// Webhook alerts. Its loops run while the server serves, when the
    /// configuration has alerts (`[alerts.<name>]` or a job's
    /// `pause_after_failures`) at the start or after a reload; without
    /// any, its observer is off.
    pub alerts: AlertService,
    /// Applies a reloaded configuration's jobs and alerts (SIGHUP).
    pub reloader: crate::reload::Reloader,
    /// The health checker.
    pub health: Arc<HealthChecker>,
    /// The metrics.
    pub metrics: Arc<ServerMetrics>,
    /// The admin token.
    pub admin_token: crate::config::Secret,
    /// Where it came from.
    pub token_source: TokenSource,
}

/// Creates the data, log and backup directories (and the cleanup ones) if
/// missing.
pub fn ensure_dirs(cfg: &Config) -> Result<(), AppError> {
    let mut dirs: Vec<(&'static str, PathBuf)> = vec![
        ("data_dir", cfg.data_dir.clone()),
        ("log_dir", cfg.log_dir.clone()),
        ("backup_dir", cfg.backup_dir.clone()),
    ];
    if cfg.jobs.temp_cleanup.options.dirs.is_none() {
        for d in cfg.cleanup_dirs() {
            dirs.push(("temp-cleanup dir", d));
        }
    }
    for (what, path) in dirs {
        std::fs::create_dir_all(&path).map_err(|source| AppError::Dir { what, path, source })?;
    }
    Ok(())
}

impl App {
    /// Opens the database, resolves the admin token, and builds the
    /// scheduler (system clock, current tokio runtime) with the seven jobs,
    /// the health checker and the metrics. Nothing is started. With
    /// [`BuildOptions::existing_database`] the database is opened first and
    /// must exist: a missing one fails before any directory is created.
    pub async fn build(config: Config, opts: BuildOptions) -> Result<App, AppError> {
        let existing = if opts.existing_database {
            Some(Database::open_existing(&config.database_url).await?)
        } else {
            None
        };
        ensure_dirs(&config)?;
        let config = Arc::new(config);
        let (admin_token, token_source) = resolve_admin_token(&config)?;
        if admin_token.expose().len() < crate::token::MIN_TOKEN_BYTES {
            tracing::warn!(
                bytes = admin_token.expose().len(),
                source = %token_source,
                "the admin token is shorter than 32 bytes; set a longer one (openssl rand -hex 32), or leave admin_token unset to have one generated"
            );
        }
        let db = match existing {
            Some(db) => {
                tracing::debug!(database = %db.target(), "existing database opened");
                db
            }
            None => {
                let db = Database::open(&config.database_url).await?;
                tracing::debug!(database = %db.target(), "database opened and migrated");
                db
            }
        };
        let metrics = ServerMetrics::new();
        let mut builder =
            JobScheduler::builder(Arc::new(SystemClock), Arc::new(TokioSpawner::current()))
                .store(db.store())
                .claim_fires(config.claim_fires && !opts.pause_all)
                .lease(config.lease)
                .claim_standby(config.claim_standby)
                .claim_ahead(config.claim_ahead)
                .observer(metrics.clone());
        // Alerts see the records through an observer that only queues them,
        // and is off while no alert is configured (a reload may add one).
        let alert_settings = AlertSettings::default();
        let (alert_observer, alert_intake) = AlertService::observer(&alert_settings);
        builder = builder.observer(alert_observer);
        let scheduler = builder.build();
        metrics.attach(scheduler.clone());

        let h = &config.health;
        let spawner: Arc<dyn mscribe_scheduler::Spawner> = Arc::new(TokioSpawner::current());
        // The scheduler probe never waits for the store: the watched jobs'
        // rows are read in the background, and once now (the database has
        // just answered), so that the first check after a restart knows how
        // the last backup ended.
        let mut scheduler_probe = SchedulerProbe::new(scheduler.clone(), h.max_overdue)
            .shared(config.claim_fires)
            .store_timeout(h.probe_timeout)
            .spawner(spawner.clone());
        for job in JOBS.iter().filter(|job| job.watch_failures) {
            scheduler_probe = scheduler_probe.watch_failures(job.id);
        }
        scheduler_probe.read_store().await;
        let mut probes: Vec<Arc<dyn Probe>> = vec![
            db.probe(h.probe_timeout),
            Arc::new(scheduler_probe),
            Arc::new(StorageProbe::new(
                config.storage_paths(),
                h.min_free_bytes,
                h.min_free_percent,
            )),
        ];
        if let Some(url) = &h.auth_url {
            // Validated at load.
            if let Ok(u) = parse_http_url(url) {
                probes.push(Arc::new(AuthProbe::new(u, h.probe_timeout)));
            }
        }
        let m = metrics.clone();
        // Refreshes run in the background: an answer never waits for a
        // hung probe longer than the answer budget.
        let health = HealthChecker::in_background(
            probes,
            Arc::new(SystemClock),
            HealthSettings {
                ttl: h.ttl,
                probe_timeout: h.probe_timeout,
                slow_threshold: h.slow_threshold,
            },
            vec![Box::new(move |s| m.record_health(s))],
            spawner,
        );
        let ctx = OpsContext {
            config: config.clone(),
            db: db.clone(),
            health: health.clone(),
            admin_token: Some(admin_token.clone()),
            on_log_rotated: opts.on_log_rotated.clone(),
        };
        for job in ops_jobs(&ctx) {
            let job = if opts.pause_all { job.paused(true) } else { job };
            scheduler.register(job)?;
        }
        // The freshness metrics start from the store's history: a bounded
        // read (two queries per job), given up after a few seconds so that
        // a slow database never holds the start back. The jobs of stored
        // definitions are read when they are registered (below, and in
        // `serve_until`).
        seed_metrics(&metrics, &scheduler, &db).await;
        // After registration: the jobs registered paused (`enabled = false`)
        // stay paused whatever the cluster's state says.
        let control = ControlPlane::for_database(&db, scheduler.clone());
        control.allow_command_jobs(config.api.allow_command_jobs);
        control.allow_env(config.api.allow_env.clone());
        let alerts = AlertService::new(AlertParts {
            alerts: config.alerts.clone(),
            jobs: alerts::job_alerting(&config),
            intake: alert_intake,
            store: db.alerts(),
            history: db.store(),
            scheduler: scheduler.clone(),
            control: Some(control.clone()),
            settings: alert_settings,
        });
        alerts.set_observing(alerts::wanted(&config));
        // A job defined through the API that pauses itself after failures
        // needs the alert loops, whatever the configuration asks.
        control.on_definitions({
            let (alerts, scheduler) = (alerts.clone(), scheduler.clone());
            let (metrics, db) = (metrics.clone(), db.clone());
            move |pauses| {
                // A job defined since has its freshness series read from
                // its history (kept across a delete).
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let (metrics, scheduler, db) = (metrics.clone(), scheduler.clone(), db.clone());
                    rt.spawn(async move { seed_metrics(&metrics, &scheduler, &db).await });
                }
                if pauses {
                    alerts.set_observing(true);
                    if scheduler.phase() == mscribe_scheduler::Phase::Running {
                        alerts.spawn();
                    }
                }
            }
        });
        let reloader =
            crate::reload::Reloader::new(ctx, scheduler.clone(), control.clone(), alerts.clone());
        Ok(App {
            config,
            db,
            scheduler,
            control,
            alerts,
            reloader,
            health,
            metrics,
            admin_token,
            token_source,
        })
    }

    /// The HTTP state over this app.
    pub fn server_state(&self) -> Arc<ServerState> {
        Arc::new(ServerState {
            scheduler: self.scheduler.clone(),
            health: self.health.clone(),
            metrics: self.metrics.clone(),
            admin_token: self.admin_token.clone(),
            max_body_bytes: self.config.max_body_bytes,
            control: Some(self.control.clone()),
            alerts: Some(self.db.alerts()),
        })
    }

    /// Runs the server until SIGINT or SIGTERM, reloading the
    /// configuration's jobs and alerts on SIGHUP
    /// ([`Reloader::reload`](crate::reload::Reloader::reload)): binds, applies the
    /// cluster's stored state (job definitions, pauses), starts the
    /// scheduler and the control plane's sync loop, serves; then stops
    /// accepting connections, drains them, stops the sync loop, stops the
    /// scheduler within `shutdown_grace` and flushes the store.
    /// `on_listening` is called with the bound address.
    pub async fn serve(
        self,
        on_listening: impl FnOnce(std::net::SocketAddr),
    ) -> Result<StopReport, AppError> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
        let mut hup = signal(SignalKind::hangup()).map_err(AppError::Signals)?;
        let reloader = self.reloader.clone();
        let (metrics, scheduler, db) =
            (self.metrics.clone(), self.scheduler.clone(), self.db.clone());
        let reloads = tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!(signal = "SIGHUP", "reloading the configuration");
                reloader.reload_logged().await;
                // The jobs the reload added: their series from the history.
                seed_metrics(&metrics, &scheduler, &db).await;
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
            }
        };
        let stopped = self.serve_until(shutdown, on_listening).await;
        reloads.abort();
        stopped
    }

    /// [`serve`](Self::serve), stopping when `shutdown` completes.
    pub async fn serve_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        on_listening: impl FnOnce(std::net::SocketAddr),
    ) -> Result<StopReport, AppError> {
        let addr = self.config.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| AppError::Bind { addr, source })?;
        // The stored pauses apply before the first fire; a store that fails
        // here is logged, and the sync loop applies them at its first round.
        if let Err(e) = self.control.prepare(ops_definitions(&self.config)).await {
            tracing::warn!(error = %e, "control plane: could not apply the cluster's state at start");
        }
        // The jobs of the stored definitions, registered just now: their
        // freshness series before the first scrape.
        seed_metrics(&self.metrics, &self.scheduler, &self.db).await;
        self.scheduler.start().await?;
        self.control.spawn();
        if alerts::wanted(&self.config) || self.control.defined_pause_after_failures() {
            self.alerts.set_observing(true);
            self.alerts.spawn();
        }
        // A first health result before the first request, so that every
        // answer can be served within the answer budget (a request that
        // finds no result at all waits for the probes).
        self.health.refresh().await;
        match &self.token_source {
            TokenSource::Generated(p) | TokenSource::File(p) => {
                tracing::debug!(path = %p.display(), "jobs API token file")
            }
            TokenSource::Config => tracing::debug!("jobs API token from the configuration"),
        }
        // The one INFO line of a normal start.
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            listen = %local,
            database = %self.db.target(),
            jobs = self.scheduler.jobs().len(),
            instance_id = %self.scheduler.instance_id(),
            "mscribe started"
        );
        on_listening(local);
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let signalled = async move {
            shutdown.await;
            let _ = stopped_tx.send(());
        };
        // hyper with a graceful shutdown, as warp::serve, and JSON bodies on
        // the errors hyper answers itself (http/serve.rs); the dashboard in
        // front of the API (ui/).
        let routes = crate::ui::with_api(self.server_state(), self.config.ui.clone());
        let server = crate::http::serve_filter(listener, routes, signalled);
        let grace = self.config.shutdown_grace;
        let server = tokio::spawn(server);
        // Wait for the signal, then give open connections the grace to finish.
        let _ = stopped_rx.await;
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            "no longer accepting connections; stopping the scheduler"
        );
        // No trigger or cancel is taken from the cluster once stopping.
        self.control.stop().await;
        let (server_done, report) = tokio::join!(
            tokio::time::timeout(grace.saturating_add(Duration::from_secs(1)), server),
            self.scheduler.stop(grace)
        );
        if server_done.is_err() {
            tracing::warn!("open HTTP connections did not close within the grace; dropping them");
        }
        // The runs' last records are queued by now: stored, then the loops end.
        self.alerts.stop(Duration::from_secs(5)).await;
        // A command whose attempt was dropped (its timeout, or the stop
        // grace) may still be getting its SIGKILL: not left behind.
        crate::ops::wait_for_group_kills().await;
        let report = report?;
        if report.unwritten > 0 {
            tracing::error!(
                unwritten = report.unwritten,
                "records could not be written to the store before exit"
            );
        }
        self.db.close().await;
        tracing::info!(
            finished_in_grace = report.finished_in_grace,
            dropped = report.dropped,
            unwritten = report.unwritten,
            "stopped"
        );
        Ok(report)
    }
}

/// Reads the freshness metrics of the registered jobs not read yet from
/// the history ([`ServerMetrics::seed_new_jobs`]), given up after
/// [`SEED_TIMEOUT`]; a failure is logged, and the next call reads those
/// jobs again.
async fn seed_metrics(metrics: &ServerMetrics, scheduler: &JobScheduler, db: &Database) {
    let ids: Vec<String> = scheduler.jobs().into_iter().map(|j| j.id).collect();
    let store = db.store();
    match tokio::time::timeout(SEED_TIMEOUT, metrics.seed_new_jobs(&*store, &ids)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "freshness metrics: could not read the history")
        }
        Err(_) => tracing::warn!(
            timeout_ms = SEED_TIMEOUT.as_millis() as u64,
            "freshness metrics: reading the history timed out"
        ),
    }
}
