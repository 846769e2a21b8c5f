//! Webhook alerts (`[alerts.<name>]`): the events the scheduler's records
//! raise, enqueued once for the cluster in the outbox
//! ([`AlertStore`]) and delivered with retries
//! and backoff, off the scheduler's path.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | [`AlertService`]: its settings, the observer that feeds it, its rounds and loops |
//! | `events.rs` | what an alert says: the events a record raises, dedupe keys, `json` and `slack` bodies |
//! | `deliver.rs` | sending a row to its webhook, the backoff between attempts |
//!
//! How an event reaches a webhook:
//!
//! 1. The [`AlertObserver`] sees every record inline on the scheduler's
//!    path and only copies a run's last attempt or a missed fire into a
//!    bounded channel (`try_send`: it never waits; a full channel is
//!    counted and logged, see [`AlertService::dropped`]).
//! 2. Each round, the service counts each run in the job's run of failures
//!    in the database (`record_run_outcome`: a fire two instances both
//!    report counts once) and enqueues `failure`, `failures_in_a_row`,
//!    `recovered`, `missed` and `auto_paused` rows under unique keys
//!    (`<alert>/<event>/<job>/<fire>`): an event is enqueued once for the
//!    cluster, whatever the instances that see it. A job's
//!    `pause_after_failures` pauses it through the control plane, with a
//!    note.
//! 3. The instance holding the `alerts` lease (one at a time, renewed each
//!    round) checks `overdue` (no success in `expect_success_within`, read
//!    from the shared history; keyed by the last success, or for a job
//!    that never succeeded by when this instance started watching it, and
//!    the count of whole windows since, so it is raised once per window) and
//!    `paused_too_long` (keyed by the pause's version), and delivers the
//!    due rows: at most [`AlertSettings::batch`] per round, concurrently,
//!    each within its alert's `timeout`, each attempt recorded.
//!
//! Intake and delivery are two tasks, so a receiver that hangs delays
//! neither the scheduler nor the intake of new events.

mod deliver;
mod events;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    ExecutionEvent, ExecutionStatus, ExecutionStore, HistoryQuery, JobScheduler, Observer,
};
use mscribe_storage::{AlertStore, NewAlert, Source};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{AlertConfig, Config, JobAlerting};
use crate::control::ControlPlane;
use events::Observed;

pub use deliver::{FIRST_RETRY, MAX_RETRY, backoff};

/// The lease that lets one instance at a time check and deliver.
pub const LEASE_NAME: &str = "alerts";

/// How the alert service polls and bounds its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertSettings {
    /// The time between two intake or delivery rounds (default 1 s).
    pub poll: Duration,
    /// The time between two `overdue` and `paused_too_long` checks
    /// (default 15 s).
    pub check_every: Duration,
    /// How long the `alerts` lease lasts unless renewed (default 30 s;
    /// [`AlertService::new`] raises it to twice the longest alert
    /// `timeout` plus `poll`, so that a round of slow deliveries never
    /// outlives the lease and another instance never sends the same rows).
    pub lease: Duration,
    /// At most this many rows delivered per round (default 20).
    pub batch: usize,
    /// At most this many records wait between the observer and the intake
    /// (default 10,000); more are dropped, counted and logged.
    pub queue: usize,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            poll: Duration::from_secs(1),
            check_every: Duration::from_secs(15),
            lease: Duration::from_secs(30),
            batch: 20,
            queue: 10_000,
        }
    }
}

/// The scheduler's [`Observer`] that feeds an [`AlertService`]: copies a
/// run's last attempt or a missed fire into a bounded channel, never
/// waiting.
#[derive(Debug)]
pub struct AlertObserver {
    tx: mpsc::Sender<Observed>,
    dropped: Arc<AtomicU64>,
    /// Off while the configuration has no alerts: one load per event.
    on: Arc<AtomicBool>,
}

impl Observer for AlertObserver {
    fn on_event(&self, event: &ExecutionEvent) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let Some(o) = Observed::of(event) else { return };
        if self.tx.try_send(o).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::error!(
                    dropped = n,
                    job_id = %event.job_id(),
                    "alerts: the intake queue is full; records dropped without alerts"
                );
            }
        }
    }
}

/// What one [`AlertService::round`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Records taken from the observer.
    pub observed: usize,
    /// Outbox rows enqueued (new keys only).
    pub enqueued: usize,
    /// Whether this instance held the lease.
    pub leader: bool,
    /// Delivery attempts made.
    pub attempted: usize,
    /// Of which delivered.
    pub delivered: usize,
}

/// Alerts for one instance: takes the records of its scheduler, enqueues
/// the events they raise, and (while it holds the lease) checks overdue
/// jobs and long pauses and delivers. Cheap to clone.
#[derive(Clone)]
pub struct AlertService {
    inner: Arc<Inner>,
}

struct Inner {
    /// The alerts and the jobs' keys in force, replaced by a reload.
    conf: RwLock<Arc<AlertConf>>,
    /// Whether the observer queues records.
    on: Arc<AtomicBool>,
    store: Arc<dyn AlertStore>,
    history: Arc<dyn ExecutionStore>,
    scheduler: JobScheduler,
    control: Option<ControlPlane>,
    settings: AlertSettings,
    client: reqwest::Client,
    rx: tokio::sync::Mutex<mpsc::Receiver<Observed>>,
    /// Records taken but not yet stored (the store failed).
    pending: Mutex<VecDeque<Observed>>,
    dropped: Arc<AtomicU64>,
    last_check: Mutex<Option<DateTime<Utc>>>,
    /// When this instance first saw each registered job: the start of the
    /// `overdue` windows of a job that never succeeded.
    watching: Mutex<Watching>,
    /// Whether this instance took the lease at its last try (released at
    /// [`AlertService::stop`]).
    held: AtomicBool,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// When this instance first saw each registered job, and when it last
/// looked.
#[derive(Default)]
struct Watching {
    since: std::collections::HashMap<String, DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

/// The alerts and the jobs' alert keys in force, and the delivery lease
/// they need.
struct AlertConf {
    alerts: BTreeMap<String, AlertConfig>,
    jobs: BTreeMap<String, JobAlerting>,
    /// [`AlertSettings::lease`], raised for the slowest alert.
    lease: Duration,
}

impl AlertConf {
    fn new(
        alerts: BTreeMap<String, AlertConfig>,
        jobs: BTreeMap<String, JobAlerting>,
        settings: &AlertSettings,
    ) -> Self {
        let slowest = alerts.values().map(|a| a.timeout).max().unwrap_or_default();
        let lease = settings.lease.max(slowest.saturating_mul(2).saturating_add(settings.poll));
        AlertConf { alerts, jobs, lease }
    }
}

impl std::fmt::Debug for AlertService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertService")
            .field("alerts", &self.conf().alerts.keys().collect::<Vec<_>>())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// Whether `config` asks for alerts at all: an `[alerts.<name>]` block, or
/// a job's `pause_after_failures`.
pub fn wanted(config: &Config) -> bool {
    !config.alerts.is_empty()
        || job_alerting(config).values().any(|a| a.pause_after_failures.is_some())
}

/// The alert keys of every job section (built-in or of your own), by job
/// id.
pub fn job_alerting(config: &Config) -> BTreeMap<String, JobAlerting> {
    config.jobs.all().into_iter().map(|j| (j.id.to_owned(), j.common.alerting.clone())).collect()
}

impl AlertService {
    /// The observer to give the scheduler's builder, and the receiving end
    /// to give [`new`](Self::new).
    pub fn observer(settings: &AlertSettings) -> (Arc<AlertObserver>, AlertIntake) {
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let on = Arc::new(AtomicBool::new(true));
        (
            Arc::new(AlertObserver { tx, dropped: dropped.clone(), on: on.clone() }),
            AlertIntake { rx, dropped, on },
        )
    }

    /// A service over `parts`. Builds its HTTP client (rustls).
    pub fn new(parts: AlertParts) -> Self {
        let AlertParts { alerts, jobs, intake, store, history, scheduler, control, mut settings } =
            parts;
        let conf = AlertConf::new(alerts, jobs, &settings);
        settings.lease = conf.lease;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("mscribe/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "alerts: could not build the HTTP client with its settings; using the defaults");
                reqwest::Client::new()
            });
        AlertService {
            inner: Arc::new(Inner {
                conf: RwLock::new(Arc::new(conf)),
                on: intake.on,
                store,
                history,
                scheduler,
                control,
                settings,
                client,
                rx: tokio::sync::Mutex::new(intake.rx),
                pending: Mutex::new(VecDeque::new()),
                dropped: intake.dropped,
                last_check: Mutex::new(None),
                watching: Mutex::new(Watching::default()),
                held: AtomicBool::new(false),
                stop: watch::channel(false).0,
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The alerts and the jobs' alert keys in force.
    fn conf(&self) -> Arc<AlertConf> {
        self.inner.conf.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the alerts and the jobs' alert keys (a reloaded
    /// configuration). Rows already in the outbox are delivered with the
    /// alert of their name as it is now; a row whose alert is gone fails
    /// its delivery, naming the alert.
    pub fn reconfigure(
        &self,
        alerts: BTreeMap<String, AlertConfig>,
        jobs: BTreeMap<String, JobAlerting>,
    ) {
        let conf = AlertConf::new(alerts, jobs, &self.inner.settings);
        *self.inner.conf.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(conf);
    }

    /// Whether the observer queues records (on when built). The server
    /// turns it off while its configuration has no alerts, so that a run
    /// costs one atomic load.
    pub fn set_observing(&self, on: bool) {
        self.inner.on.store(on, Ordering::Relaxed);
    }

    /// Whether the loops run ([`spawn`](Self::spawn) was called, and not
    /// [`stop`](Self::stop)).
    pub fn is_running(&self) -> bool {
        !self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// The settings in force (the lease raised as [`AlertSettings::lease`]
    /// says).
    pub fn settings(&self) -> AlertSettings {
        self.inner.settings
    }

    /// Records the observer could not queue (the queue was full).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.scheduler.clock().now()
    }

    fn instance(&self) -> &str {
        self.inner.scheduler.instance_id()
    }

    /// One whole round, as the two loops do it: intake, then (holding the
    /// lease) the checks when due and one delivery batch. For tests and
    /// tools; the server runs [`spawn`](Self::spawn).
    pub async fn round(&self) -> RoundReport {
        let (observed, mut enqueued) = self.intake().await;
        let mut report = RoundReport { observed, ..RoundReport::default() };
        self.watch_jobs(true);
        if self.lease().await {
            report.leader = true;
            enqueued += self.checks(true).await;
            let (attempted, delivered) = self.deliver().await;
            report.attempted = attempted;
            report.delivered = delivered;
        }
        report.enqueued = enqueued;
        report
    }

    /// Takes or renews the lease; `false` when another instance holds it
    /// or the store fails.
    async fn lease(&self) -> bool {
        let now = self.now();
        let until = now + chrono::Duration::from_std(self.conf().lease).unwrap_or_default();
        match self.inner.store.take_alert_lease(LEASE_NAME, self.instance(), now, until).await {
            Ok(held) => {
                self.inner.held.store(held, Ordering::Relaxed);
                held
            }
            Err(e) => {
                tracing::warn!(error = %e, "alerts: could not take the lease");
                false
            }
        }
    }

    /// Takes the observer's records (at most `queue` a round) and enqueues
    /// their events; a record whose store call fails waits for the next
    /// round. Returns (records taken, rows enqueued).
    async fn intake(&self) -> (usize, usize) {
        let cap = self.inner.settings.queue.max(1);
        let mut taken = 0;
        {
            let mut rx = self.inner.rx.lock().await;
            let mut pending = self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
            while taken < cap {
                match rx.try_recv() {
                    Ok(o) => {
                        pending.push_back(o);
                        taken += 1;
                    }
                    Err(_) => break,
                }
            }
            while pending.len() > cap {
                if let Some(o) = pending.pop_front() {
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        job_id = %o.job(),
                        "alerts: too many records wait for the store; the oldest is dropped without alerts"
                    );
                }
            }
        }
        let mut enqueued = 0;
        loop {
            let next =
                self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner).front().cloned();
            let Some(o) = next else { break };
            match self.handle(&o).await {
                Ok(n) => {
                    enqueued += n;
                    self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
                }
                Err(e) => {
                    tracing::warn!(error = %e, job_id = %o.job(), "alerts: could not store an event; retrying next round");
                    break;
                }
            }
        }
        (taken, enqueued)
    }

    /// The alert keys of job `id`: its section's, or its definition's when
    /// it was defined through the API or the CLI.
    fn job(&self, id: &str) -> JobAlerting {
        if let Some(keys) = self.conf().jobs.get(id) {
            return keys.clone();
        }
        let defined = self.inner.control.as_ref().and_then(|c| c.defined_alerting(id));
        defined.unwrap_or_default()
    }

    async fn enqueue(&self, rows: Vec<NewAlert>) -> Result<usize, mscribe_scheduler::StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let inserted = self.inner.store.enqueue_alerts(&rows).await?;
        for (row, new) in rows.iter().zip(&inserted) {
            if *new {
                tracing::info!(alert = %row.alert, event = %row.event, job_id = %row.job_id.as_deref().unwrap_or(""), "alert enqueued");
            }
        }
        Ok(inserted.iter().filter(|x| **x).count())
    }

    /// The rows of one record, enqueued; the job paused if its
    /// `pause_after_failures` is reached.
    async fn handle(&self, o: &Observed) -> Result<usize, mscribe_scheduler::StoreError> {
        let conf = self.conf();
        let alerts = &conf.alerts;
        match o {
            Observed::Missed { job, scheduled_at, reason, at, instance } => {
                let r = events::missed(job, *scheduled_at, reason, *at, instance);
                self.enqueue(r.rows(alerts, |_| true)).await
            }
            Observed::RunEnded {
                job,
                scheduled_at,
                execution_id,
                attempt,
                status,
                error,
                at,
                instance,
            } => {
                let run = events::RunRef {
                    job,
                    scheduled_at: *scheduled_at,
                    execution_id,
                    attempt: *attempt,
                };
                let failed = events::is_failure(*status);
                if !failed && *status != ExecutionStatus::Succeeded {
                    return Ok(0); // cancelled or skipped: not counted
                }
                let streak = self
                    .inner
                    .store
                    .record_run_outcome(job, &events::ts(*scheduled_at), !failed, *at)
                    .await?;
                let settings = self.job(job);
                let mut rows = Vec::new();
                if failed {
                    let r = events::failure(run, *status, error.as_deref(), *at, instance);
                    rows.extend(r.rows(alerts, |_| true));
                    let n = streak.failures_in_a_row;
                    let r = events::failures_in_a_row(job, *scheduled_at, n, *at);
                    rows.extend(r.rows(alerts, |a| {
                        settings.failures_in_a_row.unwrap_or(a.failures_in_a_row) == n
                    }));
                    // Also when not counted here (another instance, or this
                    // record again after a store error): a job already paused
                    // is not paused again, and the alert's key makes it one.
                    if settings.pause_after_failures == Some(n) {
                        let paused = self.inner.scheduler.job(job).is_some_and(|j| j.paused);
                        let error = if paused { None } else { self.auto_pause(job, n).await.err() };
                        let r = events::auto_paused(job, *scheduled_at, n, *at, error.as_deref());
                        rows.extend(r.rows(alerts, |_| true));
                    }
                } else if streak.previous > 0 && streak.counted {
                    rows.extend(
                        events::recovered(run, streak.previous, *at).rows(alerts, |_| true),
                    );
                }
                self.enqueue(rows).await
            }
        }
    }

    /// Pauses `job` on every instance (through the control plane when
    /// there is one), with a note saying why.
    async fn auto_pause(&self, job: &str, n: u32) -> Result<(), String> {
        let note = format!(
            "paused automatically after {n} failed runs in a row (pause_after_failures = {n}); \
             resume it when fixed"
        );
        tracing::warn!(
            job_id = %job,
            failures = n,
            "alerts: pausing the job (pause_after_failures)"
        );
        match &self.inner.control {
            Some(plane) => plane
                .pause(job, Some(note), Source::Other("alert".to_owned()))
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            None => self.inner.scheduler.pause(job).map_err(|e| e.to_string()),
        }
    }

    /// Notes when this instance first saw each registered job (a job
    /// registered since the last look is seen now), and forgets the jobs
    /// gone; at most once per `check_every` unless `force`. Every instance
    /// looks, with the lease or not, so that the one that takes the lease
    /// over knows how long each job has been watched.
    fn watch_jobs(&self, force: bool) {
        let now = self.now();
        let every = chrono::Duration::from_std(self.inner.settings.check_every).unwrap_or_default();
        {
            let w = self.inner.watching.lock().unwrap_or_else(PoisonError::into_inner);
            if !force && w.last.is_some_and(|l| now < l + every) {
                return;
            }
        }
        let ids: std::collections::HashSet<String> =
            self.inner.scheduler.jobs().into_iter().map(|j| j.id).collect();
        let mut w = self.inner.watching.lock().unwrap_or_else(PoisonError::into_inner);
        w.since.retain(|id, _| ids.contains(id));
        for id in ids {
            w.since.entry(id).or_insert(now);
        }
        w.last = Some(now);
    }

    /// When this instance first saw job `id` (now if not yet).
    fn watched_since(&self, id: &str) -> DateTime<Utc> {
        let now = self.now();
        let mut w = self.inner.watching.lock().unwrap_or_else(PoisonError::into_inner);
        *w.since.entry(id.to_owned()).or_insert(now)
    }

    /// `overdue` and `paused_too_long`, at most once per `check_every`
    /// unless `force`. Returns the rows enqueued.
    async fn checks(&self, force: bool) -> usize {
        let now = self.now();
        {
            let mut last = self.inner.last_check.lock().unwrap_or_else(PoisonError::into_inner);
            let every =
                chrono::Duration::from_std(self.inner.settings.check_every).unwrap_or_default();
            if !force && last.is_some_and(|l| now < l + every) {
                return 0;
            }
            *last = Some(now);
        }
        self.watch_jobs(true);
        let mut rows = Vec::new();
        let conf = self.conf();
        let alerts = &conf.alerts;
        for info in self.inner.scheduler.jobs() {
            let Some(window) = self.job(&info.id).expect_success_within else { continue };
            let q = HistoryQuery::new(info.id.as_str(), 1).with_status(ExecutionStatus::Succeeded);
            let last = match self.inner.history.history(&q).await {
                Ok(rows) => rows.first().map(|r| r.completed_at.unwrap_or(r.started_at)),
                Err(e) => {
                    tracing::warn!(error = %e, job_id = %info.id, "alerts: could not read the last success");
                    continue;
                }
            };
            // Never succeeded: counted from when this instance started
            // watching the job (its start, or the job's registration here
            // if later), so that a job defined a moment ago is not overdue;
            // the key names that instant, so that after a restart the
            // windows are new keys, raised once each.
            let watched = self.watched_since(&info.id);
            let since = last.unwrap_or(watched);
            let elapsed = (now - since).to_std().unwrap_or_default();
            let n = elapsed.as_nanos() / window.as_nanos().max(1);
            if n >= 1 {
                let n = u64::try_from(n).unwrap_or(u64::MAX);
                rows.extend(
                    events::overdue(&info.id, last, watched, window, n, now).rows(alerts, |_| true),
                );
            }
        }
        if let Some(plane) = &self.inner.control {
            match plane.states().await {
                Ok(states) => {
                    for p in states.iter().filter(|p| p.paused) {
                        let job = self.job(&p.job_id);
                        let r = |limit| {
                            events::paused_too_long(
                                &p.job_id,
                                p.changed_at,
                                p.version,
                                p.note.as_deref(),
                                limit,
                                now,
                            )
                        };
                        for (name, a) in alerts {
                            let limit = job.paused_too_long.unwrap_or(a.paused_too_long);
                            if (now - p.changed_at).to_std().unwrap_or_default() >= limit {
                                rows.extend(r(limit).rows([(name, a)], |_| true));
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "alerts: could not read the paused jobs"),
            }
        }
        match self.enqueue(rows).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "alerts: could not store the checks' alerts; checking again next round");
                *self.inner.last_check.lock().unwrap_or_else(PoisonError::into_inner) = None;
                0
            }
        }
    }

    /// One batch of due rows, sent concurrently; returns (attempts,
    /// delivered).
    async fn deliver(&self) -> (usize, usize) {
        let due = match self.inner.store.due_alerts(self.now(), self.inner.settings.batch).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "alerts: could not read the due deliveries");
                return (0, 0);
            }
        };
        let conf = self.conf();
        let alerts = &conf.alerts;
        let sends = due.iter().map(|row| async move {
            let alert = alerts.get(&row.alert);
            let attempt = deliver::send(&self.inner.client, row, alert, || self.now()).await;
            let delivered = attempt.outcome == mscribe_storage::AttemptOutcome::Delivered;
            match &attempt.error {
                None => tracing::info!(alert = %row.alert, event = %row.event, id = row.id, "alert delivered"),
                Some(e) => tracing::warn!(alert = %row.alert, event = %row.event, id = row.id, attempts = row.attempts + 1, error = %e, "alert delivery failed"),
            }
            if let Err(e) = self.inner.store.record_delivery_attempt(row.id, &attempt).await {
                tracing::warn!(error = %e, id = row.id, "alerts: could not record a delivery attempt");
            }
            delivered
        });
        let results = futures::future::join_all(sends).await;
        (results.len(), results.iter().filter(|d| **d).count())
    }

    /// Starts the intake loop and the delivery loop (with the checks) on
    /// the current tokio runtime. Once; later calls do nothing.
    pub fn spawn(&self) {
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if !tasks.is_empty() || *self.inner.stop.borrow() {
            return;
        }
        let poll = self.inner.settings.poll;
        let intake = self.clone();
        let mut stop = self.inner.stop.subscribe();
        tasks.push(tokio::spawn(async move {
            loop {
                intake.intake().await;
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(poll) => {}
                }
            }
            // What the last runs raised is stored before the exit.
            intake.intake().await;
        }));
        let worker = self.clone();
        let mut stop = self.inner.stop.subscribe();
        tasks.push(tokio::spawn(async move {
            loop {
                worker.watch_jobs(false);
                if worker.lease().await {
                    worker.checks(false).await;
                    worker.deliver().await;
                }
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        }));
    }

    /// Stops both loops, waiting up to `grace` for a round in progress
    /// (then aborting it: an undelivered row stays in the outbox), then
    /// releases the lease if this instance held it, so that another
    /// instance (or this one restarted) checks and delivers from its next
    /// round instead of after the lease's expiry.
    pub async fn stop(&self, grace: Duration) {
        self.inner.stop.send_replace(true);
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for mut t in tasks {
            if tokio::time::timeout(grace, &mut t).await.is_err() {
                tracing::warn!("alerts: a round did not end within the grace; aborting it");
                t.abort();
            }
        }
        if self.inner.held.swap(false, Ordering::Relaxed) {
            // Renewed to expire now: free for any instance from now on.
            let now = self.now();
            let released = self.inner.store.take_alert_lease(LEASE_NAME, self.instance(), now, now);
            match tokio::time::timeout(grace, released).await {
                Ok(Ok(_)) => tracing::debug!("alerts: lease released"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "alerts: could not release the lease; it expires on its own")
                }
                Err(_) => {
                    tracing::warn!("alerts: releasing the lease timed out; it expires on its own")
                }
            }
        }
    }
}

/// What an [`AlertService`] works with.
#[derive(Debug)]
pub struct AlertParts {
    /// The alerts, by name (`[alerts.<name>]`).
    pub alerts: BTreeMap<String, AlertConfig>,
    /// The jobs' alert keys, by job id ([`job_alerting`]).
    pub jobs: BTreeMap<String, JobAlerting>,
    /// The observer's receiving end ([`AlertService::observer`]).
    pub intake: AlertIntake,
    /// The outbox, the runs of failures and the lease.
    pub store: Arc<dyn AlertStore>,
    /// The shared history (the last success of each job, for `overdue`).
    pub history: Arc<dyn ExecutionStore>,
    /// The scheduler whose records are observed (its clock, instance id
    /// and jobs).
    pub scheduler: JobScheduler,
    /// Pauses jobs (`pause_after_failures`) and knows the long pauses;
    /// without one, the local scheduler is paused and `paused_too_long` is
    /// not checked.
    pub control: Option<ControlPlane>,
    /// Polls and bounds.
    pub settings: AlertSettings,
}

/// The receiving end of an [`AlertObserver`], for [`AlertService::new`].
#[derive(Debug)]
pub struct AlertIntake {
    rx: mpsc::Receiver<Observed>,
    dropped: Arc<AtomicU64>,
    on: Arc<AtomicBool>,
}
