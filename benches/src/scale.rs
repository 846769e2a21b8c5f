//! The real-clock scale runs: N jobs on one interval, each fire incrementing
//! a counter, measured over a fixed window, for one contender per process.
//!
//! Every contender runs on the same tokio multi-thread runtime (one worker
//! per core) and its handler does the same thing: add one to a global
//! counter and, inside the window, record its lateness (the wall time at
//! handler start minus the fire's nominal time):
//!
//! | contender | nominal time of a fire |
//! |---|---|
//! | mscribe | `JobContext::scheduled_at` |
//! | tokio-cron-scheduler | the job's first tick plus k intervals (its repeated jobs tick on whole seconds, `next_tick += interval`) |
//! | apalis-cron | the `Tick`'s timestamp |
//! | tokio loop | the `Instant` returned by `Interval::tick` |
//!
//! In the *aligned* shape every job's fires fall on the same instants (all
//! jobs registered before `start`; the tokio tasks share one `interval_at`
//! origin; the cron peers tick on whole seconds), so each interval begins
//! with a burst of N fires. In the *staggered* shape (mscribe and the tokio
//! loop only) the jobs' phases are spread over 100 slots of the interval,
//! each job's first fire set the same way in both: mscribe's
//! `Schedule::interval_at`, tokio's `interval_at`, every job registered or
//! spawned before the window.

use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::measure::{LatencyHistogram, cpu_time, hwm_bytes, rss_bytes};

/// One scheduler under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Contender {
    /// This crate's scheduler, records discarded ([`crate::NullStore`]).
    Mscribe,
    /// This crate's scheduler recording to its `MemoryStore` (the default
    /// bound, 1,000 rows a job): the history grows through the window.
    MscribeMemory,
    /// The same with a `MemoryStore` of [`BOUND_ROWS`] rows a job, run
    /// until every job is at that bound before the window: the steady
    /// state of a server whose history has filled its retention, where
    /// each new row replaces its job's oldest.
    MscribeMemoryBound,
    /// This crate's scheduler recording to a `SqliteStore` file (WAL, the
    /// store's defaults), as `mscribe serve` does.
    MscribeSqlite,
    /// `tokio-cron-scheduler` with `Job::new_repeated`.
    #[serde(rename = "tokio-cron-scheduler")]
    TokioCron,
    /// `apalis-cron`: one worker per job over a `CronScheduler`.
    #[serde(rename = "apalis-cron")]
    Apalis,
    /// One tokio task per job looping on `tokio::time::interval`.
    TokioLoop,
}

impl Contender {
    /// Every contender, in table order.
    pub const ALL: [Contender; 6] = [
        Contender::Mscribe,
        Contender::MscribeMemory,
        Contender::MscribeSqlite,
        Contender::TokioCron,
        Contender::Apalis,
        Contender::TokioLoop,
    ];

    /// The contenders of the alternating rounds: mscribe with each kind of
    /// history, and the tokio loop last in each round.
    pub const ROUNDS: [Contender; 5] = [
        Contender::Mscribe,
        Contender::MscribeMemory,
        Contender::MscribeMemoryBound,
        Contender::MscribeSqlite,
        Contender::TokioLoop,
    ];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Contender::Mscribe => "mscribe",
            Contender::MscribeMemory => "mscribe-memory",
            Contender::MscribeMemoryBound => "mscribe-memory-bound",
            Contender::MscribeSqlite => "mscribe-sqlite",
            Contender::TokioCron => "tokio-cron-scheduler",
            Contender::Apalis => "apalis-cron",
            Contender::TokioLoop => "tokio-loop",
        }
    }

    /// Whether it can spread job phases over the interval.
    pub fn can_stagger(self) -> bool {
        self.is_mscribe() || self == Contender::TokioLoop
    }

    /// Whether it is this crate's scheduler (with or without history).
    pub fn is_mscribe(self) -> bool {
        self == Contender::Mscribe || self.keeps_history()
    }

    /// Whether it keeps a record of every attempt.
    pub fn keeps_history(self) -> bool {
        matches!(
            self,
            Contender::MscribeMemory | Contender::MscribeMemoryBound | Contender::MscribeSqlite
        )
    }

    /// How long its history takes to fill before the warm-up starts, in
    /// seconds: [`BOUND_ROWS`] fires of every job for the bounded store,
    /// nothing for the others.
    pub fn fill_s(self, interval_ms: u64) -> f64 {
        match self {
            Contender::MscribeMemoryBound => BOUND_ROWS as f64 * interval_ms as f64 / 1e3,
            _ => 0.0,
        }
    }

    /// Whether it can run an interval that is not a whole number of seconds.
    pub fn sub_second(self) -> bool {
        self.can_stagger()
    }
}

impl FromStr for Contender {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Contender::ALL
            .into_iter()
            .chain(Contender::ROUNDS)
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown contender \"{s}\""))
    }
}

/// What one scale run does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleParams {
    /// Who runs.
    pub contender: Contender,
    /// How many jobs.
    pub jobs: usize,
    /// Their interval, in milliseconds.
    pub interval_ms: u64,
    /// How long to measure, in seconds (rounded to whole intervals).
    pub window_s: f64,
    /// How long to run before measuring, in seconds.
    pub warmup_s: f64,
    /// Spread the jobs' phases over the interval.
    pub staggered: bool,
    /// Give up when registering takes longer than this, in seconds.
    pub register_limit_s: f64,
    /// Tokio worker threads.
    pub workers: usize,
}

/// What one scale run measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScaleResult {
    /// The run's parameters.
    pub params: Option<ScaleParams>,
    /// Whether the run got to measure its window.
    pub completed: bool,
    /// Why not, or anything odd.
    pub note: Option<String>,
    /// Time to register (or spawn) the N jobs, in milliseconds.
    pub register_ms: f64,
    /// Time of `start()` after registration (mscribe plans every job there).
    pub start_ms: f64,
    /// Resident memory before registering.
    pub rss_before: u64,
    /// Resident memory right after registering and starting.
    pub rss_registered: u64,
    /// Peak resident memory at the end.
    pub hwm_end: u64,
    /// `(rss_registered - rss_before) / jobs`.
    pub bytes_per_job: f64,
    /// `(hwm_end - rss_before) / jobs`.
    pub peak_bytes_per_job: f64,
    /// The measured window, in seconds.
    pub window_s: f64,
    /// Handler runs inside the window (wall time), whatever their nominal time.
    pub fires: u64,
    /// Fires due inside the window: `jobs * window / interval`.
    pub due: f64,
    /// Fires due inside the window that ran, by the end of the grace after it.
    pub due_run: u64,
    /// `due_run / due`.
    pub fraction: f64,
    /// Handler runs per second inside the window.
    pub fires_per_s: f64,
    /// Lateness median, in microseconds.
    pub lateness_p50_us: f64,
    /// Lateness 99th percentile, in microseconds.
    pub lateness_p99_us: f64,
    /// Largest lateness, in microseconds.
    pub lateness_max_us: f64,
    /// Mean lateness, in microseconds.
    pub lateness_mean_us: f64,
    /// Fires that started before their nominal time (recorded as 0 lateness).
    pub early: u64,
    /// CPU time (user + system, all threads) inside the window, in seconds.
    pub cpu_s: f64,
    /// `cpu_s / fires`, in microseconds.
    pub cpu_per_fire_us: f64,
}

static FIRES: AtomicU64 = AtomicU64::new(0);
static EARLY: AtomicU64 = AtomicU64::new(0);
static MEASURING: AtomicBool = AtomicBool::new(false);
static HIST: OnceLock<LatencyHistogram> = OnceLock::new();
/// The window's nominal range, in Unix nanoseconds: fires due in it are counted.
static DUE_FROM: AtomicI64 = AtomicI64::new(i64::MAX);
static DUE_TO: AtomicI64 = AtomicI64::new(i64::MIN);
static DUE_RUN: AtomicU64 = AtomicU64::new(0);

fn hist() -> &'static LatencyHistogram {
    HIST.get_or_init(LatencyHistogram::new)
}

/// What every contender's handler does, given the fire's nominal time in
/// Unix nanoseconds and how to compute its lateness.
#[inline]
fn on_fire(nominal_ns: i64, lateness: impl FnOnce() -> Option<Duration>) {
    FIRES.fetch_add(1, Ordering::Relaxed);
    if nominal_ns >= DUE_FROM.load(Ordering::Relaxed) && nominal_ns < DUE_TO.load(Ordering::Relaxed)
    {
        DUE_RUN.fetch_add(1, Ordering::Relaxed);
    }
    if MEASURING.load(Ordering::Relaxed) {
        match lateness() {
            Some(d) => hist().record(d),
            None => {
                EARLY.fetch_add(1, Ordering::Relaxed);
                hist().record(Duration::ZERO);
            }
        }
    }
}

/// How long after the instant `nominal_ns` (nanoseconds since the Unix
/// epoch) the wall clock reads now; `None` before it. In integer
/// nanoseconds from `SystemTime`, as cheap as the tokio loop's `Instant`
/// arithmetic: `Utc::now()` and chrono's subtraction would cost a
/// wall-clock contender's handler some 40 ns per fire more than the tokio
/// loop's, all of it measurement.
fn wall_lateness(nominal_ns: i64) -> Option<Duration> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    let late = i64::try_from(now.as_nanos()).ok()?.checked_sub(nominal_ns)?;
    u64::try_from(late).ok().map(Duration::from_nanos)
}

fn unix_ns(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Keeps a contender alive while it runs.
enum Running {
    Mscribe(mscribe_scheduler::JobScheduler),
    TokioCron(tokio_cron_scheduler::JobScheduler),
    Tasks,
}

/// Registration's outcome: what runs, the fire grid's origin (a nominal
/// fire time of the aligned shape), and the times taken.
struct Registered {
    running: Running,
    origin: DateTime<Utc>,
    register: Duration,
    start: Duration,
}

/// Runs one scale measurement on a fresh tokio runtime in this process.
/// Run one per process: the counters and the memory peak are process-wide.
pub fn run_scale(p: &ScaleParams) -> ScaleResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(p.workers.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut out = ScaleResult { params: Some(p.clone()), ..ScaleResult::default() };
    rt.block_on(async {
        hist(); // allocate before the baseline
        out.rss_before = rss_bytes();
        let reg = match register(p).await {
            Ok(r) => r,
            Err(note) => {
                out.note = Some(note);
                out.hwm_end = hwm_bytes();
                return;
            }
        };
        out.register_ms = reg.register.as_secs_f64() * 1e3;
        out.start_ms = reg.start.as_secs_f64() * 1e3;
        out.rss_registered = rss_bytes();
        measure(p, &reg, &mut out).await;
        out.hwm_end = hwm_bytes();
        let n = p.jobs.max(1) as f64;
        out.bytes_per_job = out.rss_registered.saturating_sub(out.rss_before) as f64 / n;
        out.peak_bytes_per_job = out.hwm_end.saturating_sub(out.rss_before) as f64 / n;
        match reg.running {
            Running::TokioCron(mut s) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), s.shutdown()).await;
            }
            // Not stopped: stopping waits for runs and flushes records, which
            // is no part of what is measured.
            Running::Mscribe(s) => drop(s),
            Running::Tasks => {}
        }
    });
    // Jobs may still be running on the workers: do not wait for them.
    rt.shutdown_background();
    if p.contender == Contender::MscribeSqlite {
        remove_sqlite_files();
    }
    out
}

/// The `mscribe-sqlite` contender's database: this process's own file in
/// the temporary directory.
fn sqlite_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("mscribe-bench-{}.db", std::process::id()))
}

fn remove_sqlite_files() {
    let path = sqlite_path().into_os_string();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

async fn measure(p: &ScaleParams, reg: &Registered, out: &mut ScaleResult) {
    let periods = ((p.window_s * 1e3) / p.interval_ms as f64).round().max(1.0) as u32;
    // Start the window half an interval after a nominal fire of the grid, so
    // that (aligned) bursts are not cut by its edges.
    let warmup = p.warmup_s + p.contender.fill_s(p.interval_ms);
    let earliest = Utc::now() + chrono::Duration::milliseconds((warmup * 1e3) as i64);
    let iv = chrono::Duration::milliseconds(p.interval_ms as i64);
    let since = (earliest - reg.origin).num_milliseconds().max(0);
    let k = since / p.interval_ms as i64 + 1;
    let t0 = reg.origin + iv * k as i32 + iv / 2;
    let t1 = t0 + iv * periods as i32;
    DUE_FROM.store(unix_ns(t0), Ordering::Relaxed);
    DUE_TO.store(unix_ns(t1), Ordering::Relaxed);
    if let Ok(d) = (t0 - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
    let fires0 = FIRES.load(Ordering::Relaxed);
    let cpu0 = cpu_time();
    let w0 = Instant::now();
    MEASURING.store(true, Ordering::Relaxed);
    if let Ok(d) = (t1 - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
    MEASURING.store(false, Ordering::Relaxed);
    let fires1 = FIRES.load(Ordering::Relaxed);
    let cpu1 = cpu_time();
    let window = w0.elapsed();
    // Fires due in the window may still be running late: they count as run
    // if they start within the grace after it.
    tokio::time::sleep(GRACE).await;
    out.completed = true;
    out.window_s = window.as_secs_f64();
    out.fires = fires1 - fires0;
    out.due = p.jobs as f64 * f64::from(periods);
    out.due_run = DUE_RUN.load(Ordering::Relaxed);
    out.fraction = out.due_run as f64 / out.due;
    out.fires_per_s = out.fires as f64 / out.window_s;
    let h = hist();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    out.lateness_p50_us = us(h.percentile(0.50));
    out.lateness_p99_us = us(h.percentile(0.99));
    out.lateness_max_us = us(h.max());
    out.lateness_mean_us = us(h.mean());
    out.early = EARLY.load(Ordering::Relaxed);
    out.cpu_s = (cpu1 - cpu0).as_secs_f64();
    out.cpu_per_fire_us = if out.fires == 0 { 0.0 } else { out.cpu_s * 1e6 / out.fires as f64 };
}

/// Checks the registration time limit every so many jobs.
struct Limit {
    began: Instant,
    limit: Duration,
}

impl Limit {
    fn check(&self, i: usize, n: usize) -> Result<(), String> {
        if i.is_multiple_of(1024) && self.began.elapsed() > self.limit {
            return Err(format!(
                "registration too slow: {i} of {n} jobs in {:.1?}, over the {:?} limit; not measured",
                self.began.elapsed(),
                self.limit
            ));
        }
        Ok(())
    }
}

async fn register(p: &ScaleParams) -> Result<Registered, String> {
    let interval = Duration::from_millis(p.interval_ms);
    let limit = Limit { began: Instant::now(), limit: Duration::from_secs_f64(p.register_limit_s) };
    match p.contender {
        Contender::Mscribe
        | Contender::MscribeMemory
        | Contender::MscribeMemoryBound
        | Contender::MscribeSqlite => register_mscribe(p, interval, &limit).await,
        Contender::TokioCron => register_tokio_cron(p, interval, &limit).await,
        Contender::Apalis => register_apalis(p, interval, &limit),
        Contender::TokioLoop => register_tokio_loop(p, interval, &limit).await,
    }
}

/// How long after the window a fire due in it may start and still count as run.
pub const GRACE: Duration = Duration::from_secs(1);

/// The rows a job keeps in the `mscribe-memory-bound` contender's store: at
/// 50,000 jobs, 500,000 rows (52 MB), more than the cores' caches hold, so
/// the row a new one replaces is as cold as at the default bound.
pub const BOUND_ROWS: usize = 10;

/// The slots of the staggered shape.
const SLOTS: usize = 100;

async fn register_mscribe(
    p: &ScaleParams,
    interval: Duration,
    limit: &Limit,
) -> Result<Registered, String> {
    use mscribe_scheduler::TokioSpawner;
    use mscribe_scheduler::{
        ExecutionStore, JobConfig, JobContext, JobScheduler, MemoryStore, Schedule, SystemClock,
    };
    let store: Arc<dyn ExecutionStore> = match p.contender {
        Contender::MscribeMemory => Arc::new(MemoryStore::new()),
        Contender::MscribeMemoryBound => {
            Arc::new(MemoryStore::with_rows_per_job(NonZeroUsize::new(BOUND_ROWS).expect("> 0")))
        }
        Contender::MscribeSqlite => {
            remove_sqlite_files();
            let store = mscribe_storage::SqliteStore::open(sqlite_path())
                .await
                .map_err(|e| e.to_string())?;
            Arc::new(store)
        }
        _ => Arc::new(crate::NullStore::new()),
    };
    let scheduler = JobScheduler::builder(Arc::new(SystemClock), Arc::new(TokioSpawner::current()))
        .store(store)
        .build();
    let job = |i: usize, schedule: Schedule| {
        JobConfig::new(format!("job-{i}"), |ctx: JobContext| async move {
            let nominal_ns = unix_ns(ctx.scheduled_at);
            on_fire(nominal_ns, || wall_lateness(nominal_ns));
        })
        .schedule(schedule)
    };
    let err = |e: mscribe_scheduler::Error| e.to_string();
    // Aligned: every job counts its interval from `start`. Staggered: the
    // jobs of slot k are phased k/100 of the interval after the origin
    // (`Schedule::interval_at`, as the tokio loop's `interval_at`), and
    // all are registered before `start`, as the tokio loop spawns all its
    // tasks up front.
    let origin = Utc::now() + chrono::Duration::milliseconds(p.interval_ms as i64);
    let per_slot = p.jobs.div_ceil(SLOTS).max(1);
    let every = Schedule::interval(interval).map_err(err)?;
    let t = Instant::now();
    for i in 0..p.jobs {
        limit.check(i, p.jobs)?;
        let schedule = if p.staggered {
            let phase = interval * (i / per_slot) as u32 / SLOTS as u32;
            let first = origin + chrono::Duration::from_std(phase).map_err(|e| e.to_string())?;
            Schedule::interval_at(first, interval).map_err(err)?
        } else {
            every.clone()
        };
        scheduler.register(job(i, schedule)).map_err(err)?;
    }
    let register = t.elapsed();
    let t = Instant::now();
    scheduler.start().await.map_err(err)?;
    let start = t.elapsed();
    // Aligned jobs fire one interval after `start`, not after `origin`.
    let origin = if p.staggered {
        origin
    } else {
        Utc::now() + chrono::Duration::milliseconds(p.interval_ms as i64)
    };
    Ok(Registered { running: Running::Mscribe(scheduler), origin, register, start })
}

async fn register_tokio_loop(
    p: &ScaleParams,
    interval: Duration,
    limit: &Limit,
) -> Result<Registered, String> {
    let base = tokio::time::Instant::now() + interval;
    let origin = Utc::now() + chrono::Duration::milliseconds(p.interval_ms as i64);
    // Instants to wall time, for the nominal time of a tick.
    let (origin_ns, base_std) = (unix_ns(origin), base.into_std());
    let per_slot = p.jobs.div_ceil(SLOTS).max(1);
    let t = Instant::now();
    for i in 0..p.jobs {
        limit.check(i, p.jobs)?;
        let first =
            if p.staggered { base + interval * (i / per_slot) as u32 / SLOTS as u32 } else { base };
        tokio::spawn(async move {
            let mut iv = tokio::time::interval_at(first, interval);
            loop {
                let at = iv.tick().await.into_std();
                let nominal_ns = match at.checked_duration_since(base_std) {
                    Some(d) => origin_ns + d.as_nanos() as i64,
                    None => origin_ns - base_std.duration_since(at).as_nanos() as i64,
                };
                on_fire(nominal_ns, || Some(Instant::now().saturating_duration_since(at)));
            }
        });
    }
    let register = t.elapsed();
    Ok(Registered { running: Running::Tasks, origin, register, start: Duration::ZERO })
}

async fn register_tokio_cron(
    p: &ScaleParams,
    interval: Duration,
    limit: &Limit,
) -> Result<Registered, String> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    if interval.subsec_nanos() != 0 || interval.is_zero() {
        return Err("tokio-cron-scheduler repeats in whole seconds only".to_owned());
    }
    let secs = interval.as_secs() as i64;
    let err = |e: tokio_cron_scheduler::JobSchedulerError| format!("tokio-cron-scheduler: {e:?}");
    let sched = JobScheduler::new().await.map_err(err)?;
    let t = Instant::now();
    for i in 0..p.jobs {
        limit.check(i, p.jobs)?;
        loop {
            // Its first tick is the creation time plus the interval, in whole
            // seconds; each later tick adds the interval to the previous one.
            let first = (Utc::now() + chrono::Duration::seconds(secs)).timestamp();
            let mut k: i64 = 0;
            let mut job = Job::new_repeated(interval, move |_id, _sched| {
                let nominal = first + k * secs;
                k += 1;
                let nominal_ns = nominal * 1_000_000_000;
                on_fire(nominal_ns, || wall_lateness(nominal_ns));
            })
            .map_err(err)?;
            // A second boundary passed between the two readings: try again.
            if job.job_data().map_err(err)?.next_tick != first as u64 {
                continue;
            }
            sched.add(job).await.map_err(err)?;
            break;
        }
    }
    let register = t.elapsed();
    let t = Instant::now();
    sched.start().await.map_err(err)?;
    let start = t.elapsed();
    let origin = DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("valid time");
    Ok(Registered { running: Running::TokioCron(sched), origin, register, start })
}

fn register_apalis(
    p: &ScaleParams,
    interval: Duration,
    limit: &Limit,
) -> Result<Registered, String> {
    use apalis_core::worker::builder::WorkerBuilder;
    use apalis_cron::{CronScheduler, Tick};
    if interval.subsec_nanos() != 0 || interval.as_secs() == 0 || 60 % interval.as_secs() != 0 {
        return Err("apalis-cron: the interval must be a whole number of seconds dividing a minute (a cron seconds field)".to_owned());
    }
    let expr = match interval.as_secs() {
        1 => "* * * * * *".to_owned(),
        s => format!("*/{s} * * * * *"),
    };
    let schedule = cron::Schedule::from_str(&expr).map_err(|e| e.to_string())?;
    let t = Instant::now();
    for i in 0..p.jobs {
        limit.check(i, p.jobs)?;
        let worker = WorkerBuilder::new(format!("cron-{i}"))
            .backend(CronScheduler::new(schedule.clone()))
            .build(|tick: Tick| async move {
                let secs = tick.get_timestamp() as i64;
                let nominal_ns = secs * 1_000_000_000;
                on_fire(nominal_ns, || wall_lateness(nominal_ns));
            });
        tokio::spawn(worker.run());
    }
    let register = t.elapsed();
    let origin = DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("valid time");
    Ok(Registered { running: Running::Tasks, origin, register, start: Duration::ZERO })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contender_parses_from_its_name_and_serializes_as_it() {
        for c in Contender::ALL.into_iter().chain(Contender::ROUNDS) {
            assert_eq!(c.name().parse::<Contender>(), Ok(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.name()));
        }
    }

    #[test]
    fn only_the_bounded_store_fills_before_its_warm_up() {
        assert_eq!(Contender::MscribeMemoryBound.fill_s(1_000), BOUND_ROWS as f64);
        assert_eq!(Contender::MscribeMemory.fill_s(1_000), 0.0);
    }
}
