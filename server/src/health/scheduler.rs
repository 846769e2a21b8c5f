//! The `scheduler` probe of the health check: the scheduler's memory only,
//! never a wait for the store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::probe::{Probe, ProbeReport};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::future::{Either, select};
use mscribe_scheduler::{ExecutionStatus, HistoryQuery, JobScheduler, Phase, Spawner};
use serde_json::Value;

use super::HealthSettings;

/// The `scheduler` probe: unhealthy unless running; degraded while the
/// store buffer fails or fills, while a store write or claim has hung for
/// longer than the [store timeout](Self::store_timeout), while claims fail
/// (`claim_fires`), while the driver is behind by more than `max_overdue`,
/// or while the last run of a [watched](Self::watch_failures) job failed.
/// Critical.
///
/// A check reads the scheduler's memory only and never waits for the
/// store: a database that does not answer makes this probe degraded (its
/// records wait in the buffer), not unhealthy, and the `database` probe
/// says unhealthy. The store reads of the watched jobs run in the
/// background, on the [spawner](Self::spawner).
#[derive(Debug, Clone)]
pub struct SchedulerProbe {
    scheduler: JobScheduler,
    max_overdue: Duration,
    store_timeout: Duration,
    spawner: Option<Arc<dyn Spawner>>,
    watched: Vec<Arc<Watched>>,
    shared: bool,
}

/// A job whose failed last run degrades the probe.
#[derive(Debug)]
struct Watched {
    job: String,
    state: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// The last store read that finished: this process's own last status
    /// when the read began, and the store's verdict (`None` when the job
    /// had no finished run). It stands in until a run ends in this process:
    /// after a restart, a nightly job may not run for hours.
    read: Option<(Option<ExecutionStatus>, Option<ExecutionStatus>)>,
    /// A read is under way.
    reading: bool,
}

/// Clears [`WatchState::reading`] however the read ends (a panicking
/// store, a runtime dropping the task).
struct ReadingGuard(Arc<Watched>);

impl Drop for ReadingGuard {
    fn drop(&mut self) {
        self.0.lock().reading = false;
    }
}

impl Watched {
    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SchedulerProbe {
    /// A probe of `scheduler`, with a store timeout of 1 s and no spawner.
    pub fn new(scheduler: JobScheduler, max_overdue: Duration) -> Self {
        SchedulerProbe {
            scheduler,
            max_overdue,
            store_timeout: HealthSettings::default().probe_timeout,
            spawner: None,
            watched: Vec::new(),
            shared: false,
        }
    }

    /// How long a store write or claim may hang before the probe is
    /// degraded ("execution store not answering"), and how long a read of a
    /// watched job's rows may take before it is given up. The server passes
    /// `health.probe_timeout`: a store slower than that is as good as down
    /// for the `database` probe too.
    pub fn store_timeout(mut self, d: Duration) -> Self {
        self.store_timeout = d;
        self
    }

    /// Where the watched jobs' store reads run, in the background: a check
    /// starts one (at most one per job at a time) and goes on with the last
    /// verdict read. Without a spawner the store is read only by
    /// [`read_store`](Self::read_store).
    pub fn spawner(mut self, spawner: Arc<dyn Spawner>) -> Self {
        self.spawner = Some(spawner);
        self
    }

    /// Whether other instances run the watched jobs too (the scheduler
    /// claims fires, `claim_fires`): then this process's own last run says
    /// nothing of the last run, and every check starts a read of the job's
    /// latest rows from the store (at most once per health TTL, through the
    /// cache).
    pub fn shared(mut self, on: bool) -> Self {
        self.shared = on;
        self
    }

    /// Degrades the probe while the last run of `job` failed (failed,
    /// timed out, retries exhausted or abandoned), until a run of it
    /// succeeds. The server watches `database-backup`: a night without a
    /// backup should show before the night a restore is needed. A job
    /// that is not registered is ignored.
    pub fn watch_failures(mut self, job: impl Into<String>) -> Self {
        let job = job.into();
        self.watched.push(Arc::new(Watched { job, state: Mutex::default() }));
        self
    }

    /// Reads every watched job's last rows from the store now, each read
    /// cut at the store timeout (the server calls it once at start, so that
    /// the first check after a restart knows how the last backup ended).
    pub async fn read_store(&self) {
        let reads: Vec<_> = self
            .watched
            .iter()
            .filter_map(|w| {
                let own = self.scheduler.job(&w.job).and_then(|i| i.last_status);
                self.read(w, own)
            })
            .collect();
        futures::future::join_all(reads).await;
    }

    /// A read of `w`'s last rows into its state, cut at the store timeout;
    /// `None` while one is under way.
    fn read(
        &self,
        w: &Arc<Watched>,
        own: Option<ExecutionStatus>,
    ) -> Option<BoxFuture<'static, ()>> {
        {
            let mut st = w.lock();
            if st.reading {
                return None;
            }
            st.reading = true;
        }
        let guard = ReadingGuard(w.clone());
        let store = self.scheduler.store().clone();
        let clock = self.scheduler.clock().clone();
        let timeout = self.store_timeout;
        Some(Box::pin(async move {
            let query = HistoryQuery::new(&guard.0.job, 10);
            let deadline = crate::probe::after(clock.now(), timeout);
            let rows = match select(store.history(&query), clock.sleep_until(deadline)).await {
                Either::Left((Ok(rows), _)) => rows,
                // A store error or no answer: what was known stands.
                Either::Left((Err(_), _)) | Either::Right(_) => return,
            };
            let verdict = rows
                .iter()
                .map(|r| r.status)
                .find(|s| !matches!(s, ExecutionStatus::Running | ExecutionStatus::Skipped));
            guard.0.lock().read = Some((own, verdict));
        }))
    }

    /// The failed status of the last run of `w`'s job, if it failed, from
    /// what is known now; starts a store read when the store may know
    /// better.
    ///
    /// A success known to this process (its own last run, or the store's
    /// verdict read after a restart) needs no read. Otherwise the store has
    /// the last word, since `mscribe run` in another process (or, shared,
    /// another instance) may have run the job since: so while a failure
    /// stands, each check starts a read, and the next check uses it. A read
    /// counts only while no run has ended in this process since it began;
    /// running and skipped rows are no verdict; a store error or a read cut
    /// at the timeout keeps what was known.
    fn failure(&self, w: &Arc<Watched>) -> Option<ExecutionStatus> {
        let own = self.scheduler.job(&w.job)?.last_status;
        let read = w.lock().read.filter(|(basis, _)| *basis == own).map(|(_, v)| v);
        let known = own.or(read.flatten());
        let wants_read = self.shared
            || match known {
                Some(s) => s.is_failure(),
                None => read.is_none(),
            };
        if !wants_read {
            return None;
        }
        if let Some(spawner) = &self.spawner
            && let Some(fut) = self.read(w, own)
        {
            spawner.spawn(fut);
        }
        read.unwrap_or(known).filter(|s| s.is_failure())
    }
}

#[async_trait]
impl Probe for SchedulerProbe {
    fn name(&self) -> &str {
        "scheduler"
    }

    async fn check(&self) -> ProbeReport {
        let phase = self.scheduler.phase();
        if phase != Phase::Running {
            let phase = serde_json::to_value(phase).ok();
            let phase = phase.as_ref().and_then(Value::as_str).unwrap_or("unknown");
            return ProbeReport::unhealthy(Duration::ZERO, format!("scheduler is {phase}"));
        }
        let store = self.scheduler.store_health();
        let mut problems = Vec::new();
        if store.is_degraded() {
            problems.push(format!(
                "execution store {}: {} of {} records buffered, {} dropped{}",
                if store.failing {
                    "failing"
                } else if store.dropped_since_drained > 0 {
                    "catching up after lost records"
                } else {
                    "backlogged"
                },
                store.buffered,
                store.capacity,
                store.dropped,
                store
                    .last_error
                    .as_deref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            ));
        }
        // A store that does not answer fails a call only at its own
        // timeout: until then, a write or a claim waiting longer than the
        // store timeout says it.
        let now = self.scheduler.clock().now();
        let hung = |since: Option<DateTime<Utc>>| {
            since.map(|t| crate::probe::std_dur(t, now)).filter(|d| *d > self.store_timeout)
        };
        if let Some(d) = hung(store.writing_since).filter(|_| !store.failing) {
            problems.push(format!(
                "execution store not answering: a write has waited {:.1}s (limit {:?}), {} of {} records buffered",
                d.as_secs_f64(),
                self.store_timeout,
                store.buffered,
                store.capacity,
            ));
        }
        if let Some(d) = hung(store.claiming_since) {
            problems.push(format!(
                "execution store not answering: a claim of fires has waited {:.1}s (limit {:?}); claimed fires do not run meanwhile",
                d.as_secs_f64(),
                self.store_timeout,
            ));
        }
        if let Some(e) = &store.claim_error {
            problems.push(format!(
                "claims failing: {} fire(s) not run here, to be claimed again; last error: {e}",
                store.unclaimed
            ));
        }
        let overdue = self.scheduler.overdue();
        if overdue > self.max_overdue {
            problems.push(format!(
                "scheduler is {overdue:?} behind its earliest fire (limit {:?})",
                self.max_overdue
            ));
        }
        for w in &self.watched {
            if let Some(status) = self.failure(w) {
                problems.push(format!(
                    "the last run of {} ended {status}; see `mscribe history {}`",
                    w.job, w.job
                ));
            }
        }
        if problems.is_empty() {
            ProbeReport::healthy(Duration::ZERO)
        } else {
            ProbeReport::degraded(Duration::ZERO, problems.join("; "))
        }
    }
}
