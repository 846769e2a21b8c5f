//! The claim-path benchmark: several scheduler instances, each its own
//! child process with its own tokio runtime and `PostgresStore` pool, on one
//! fresh Postgres database, all registering the same no-op jobs with
//! `claim_fires(true)`, measured over a window after a warm-up; then the
//! database is read to count every fire of the window exactly once.
//!
//! The parent ([`run`]) creates the database (and migrates it once), spawns
//! the children (`claims child JSON`, [`child_main`]), waits until each has
//! started its scheduler, sends them one window (`t0 t1` in Unix
//! nanoseconds on stdin), samples the CPU of the Postgres backends serving
//! the database over it, collects each child's `RESULT` line, checks the
//! database, and drops it. [`markdown`] writes the report section.
//!
//! Lateness is measured in the handler: the wall clock (`SystemTime`) at
//! its start minus the fire's nominal time (`JobContext::scheduled_at`). A
//! fire counts for the window when its nominal time is in `[t0, t1)`,
//! whenever it starts; it is *on time* when it started within
//! [`ClaimsParams::on_time_ms`] of it.
//!
//! Over 800 lines because parent, child and report share the private
//! parameter and result types and the histogram plumbing; the split into
//! `claims/{child, sample, check, report}.rs` is the next change here.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::measure::{HistogramSnapshot, LatencyHistogram, cpu_time};
use crate::report::{Mode, load_average, ms};
use crate::timed_store::{CallSnapshot, CallStats, TimedStore};

/// What one claims run does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimsParams {
    /// Scheduler instances (child processes).
    pub instances: usize,
    /// Jobs each instance registers (the same ids on every instance).
    pub jobs: usize,
    /// Their interval, in milliseconds.
    pub interval_ms: u64,
    /// The measured window, in seconds (whole intervals).
    pub window_s: u64,
    /// How long the instances run before the window, at least, in seconds.
    pub warmup_s: f64,
    /// How long after the window a fire due in it may still start and count.
    pub grace_s: f64,
    /// The claims' lease, in milliseconds (`SchedulerBuilder::lease`).
    pub lease_ms: u64,
    /// Each instance's `PostgresStore` pool size.
    pub pool: u32,
    /// Tokio worker threads per instance.
    pub workers: usize,
    /// A fire is on time when it starts within this many milliseconds.
    pub on_time_ms: u64,
    /// Try-out of a store-side change: each instance sends one claim
    /// statement at a time, merging the claims that come meanwhile
    /// ([`TimedStore::coalescing`]). Off in the reported runs.
    #[serde(default)]
    pub coalesce_claims: bool,
    /// Spread the jobs' phases over [`SLOTS`] slots of the interval instead
    /// of every job due at the same instant (profiling: the burst's share
    /// of the lateness). Off in the reported runs.
    #[serde(default)]
    pub staggered: bool,
}

/// The slots of the staggered shape.
pub const SLOTS: usize = 100;

impl ClaimsParams {
    /// The parameters of a mode: 3 instances, 10,000 jobs on 1 s, a pool of
    /// 10 (the store's default, as the server uses it), the default 15 s
    /// lease; a 20 s window after 5 s (quick) or 60 s after 10 s (full).
    pub fn for_mode(mode: Mode) -> Self {
        let quick = mode == Mode::Quick;
        ClaimsParams {
            instances: 3,
            jobs: 10_000,
            interval_ms: 1_000,
            window_s: if quick { 20 } else { 60 },
            warmup_s: if quick { 5.0 } else { 10.0 },
            grace_s: 3.0,
            lease_ms: 15_000,
            pool: 10,
            workers: std::thread::available_parallelism().map(usize::from).unwrap_or(2),
            on_time_ms: 100,
            coalesce_claims: false,
            staggered: false,
        }
    }

    /// Fires due in the window, over all jobs.
    pub fn due(&self) -> u64 {
        self.jobs as u64 * self.periods()
    }

    /// Jobs per slot of the staggered shape (all jobs in one slot otherwise).
    fn per_slot(&self) -> usize {
        if self.staggered { self.jobs.div_ceil(SLOTS).max(1) } else { self.jobs.max(1) }
    }

    /// The phase of job `i`, in milliseconds after the interval's grid.
    fn phase_ms(&self, i: usize) -> u64 {
        (i / self.per_slot()) as u64 * self.interval_ms / SLOTS as u64
    }

    fn periods(&self) -> u64 {
        (self.window_s * 1_000 / self.interval_ms.max(1)).max(1)
    }
}

/// What a child is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildParams {
    /// The server's URL (any database on it).
    pub url: String,
    /// The bench database on that server.
    pub database: String,
    /// This instance's number, from 0.
    pub instance: usize,
    /// The run.
    pub params: ClaimsParams,
}

/// What one instance measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChildResult {
    /// The instance's number.
    pub instance: usize,
    /// Its `instance_id` in the store.
    pub instance_id: String,
    /// Connecting to the store, in milliseconds.
    pub connect_ms: f64,
    /// Registering the jobs, in milliseconds.
    pub register_ms: f64,
    /// `start()`, in milliseconds.
    pub start_ms: f64,
    /// Handler runs of fires due in the window (whenever they started).
    pub fires_run: u64,
    /// Of those, the ones on time.
    pub on_time: u64,
    /// Of those, the ones that started before their nominal time (counted
    /// as 0 lateness).
    pub early: u64,
    /// Their lateness.
    pub lateness: HistogramSnapshot,
    /// User + system CPU time of the process over the window, in seconds.
    pub cpu_s: f64,
    /// The window as this process measured it, in seconds.
    pub window_s: f64,
    /// The largest `JobScheduler::overdue()` sampled every 50 ms in the
    /// window, in milliseconds: how far behind its timeline the driver was.
    pub max_overdue_ms: f64,
    /// The store calls of the window.
    pub calls: CallSnapshot,
    /// Records written since start, at the end.
    pub written: u64,
    /// Records dropped from a full buffer.
    pub dropped: u64,
    /// Records the store rejected.
    pub rejected: u64,
    /// Records refused for a stale fence.
    pub fenced: u64,
    /// Writes that failed (and were repeated).
    pub failed_writes: u64,
    /// `stop()`, flushing the records, in milliseconds.
    pub stop_ms: f64,
    /// Anything odd.
    pub note: Option<String>,
}

/// What the database says about the window's fires.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DbCheck {
    /// Fires (job, nominal time) of the window with at least one row.
    pub fires_with_rows: u64,
    /// Rows of the window's fires.
    pub rows: u64,
    /// Fires with more than one row (one no-op attempt makes one row).
    pub duplicate_fires: u64,
    /// Rows beyond the first of those fires.
    pub extra_rows: u64,
    /// Fires with a `succeeded` row: run.
    pub fires_run: u64,
    /// Fires with more than one `succeeded` row: run twice.
    pub run_twice: u64,
    /// Fires of the window's grid (every job, every nominal time) with no row.
    pub missing: u64,
    /// Rows by status.
    pub statuses: Vec<(String, u64)>,
    /// The reasons of `skipped` rows (their first 100 characters), most
    /// frequent first.
    #[serde(default)]
    pub skip_reasons: Vec<(String, u64)>,
    /// Claim rows of the window's fires.
    pub claims: u64,
    /// Of those, the ones whose lease ended with the fire.
    pub claims_ended: u64,
    /// Of those, the ones taken over (fence above 1).
    pub claims_retaken: u64,
    /// Claim rows written in the wall-clock window (`claimed_at` in it).
    pub claims_written_in_window: u64,
    /// Claim rows of the window's fires, by instance.
    pub claims_by_instance: Vec<(String, u64)>,
    /// `claimed_at - scheduled_at` (the instance's clock when it sent the
    /// claim): p50, p99, max, in milliseconds.
    pub claim_sent_ms: [f64; 3],
    /// `started_at - scheduled_at` of the rows that ran: p50, p99, max, in
    /// milliseconds.
    pub row_start_ms: [f64; 3],
    /// How long the check took, in seconds.
    pub check_s: f64,
}

/// Everything one claims run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimsResult {
    /// The run's parameters.
    pub params: ClaimsParams,
    /// The mode it was run in.
    pub mode: Mode,
    /// When it began (UTC, RFC 3339).
    pub started_at: String,
    /// `git rev-parse --short HEAD` at the run, when it could be read.
    pub commit: Option<String>,
    /// The Postgres server's version.
    pub postgres: String,
    /// The window, RFC 3339.
    pub window_from: String,
    /// The window's end (exclusive), RFC 3339.
    pub window_to: String,
    /// `/proc/loadavg` before the run.
    pub load_before: [f64; 3],
    /// `/proc/loadavg` after it.
    pub load_after: [f64; 3],
    /// Each instance.
    pub children: Vec<ChildResult>,
    /// The database's account.
    pub db: Option<DbCheck>,
    /// CPU time of the Postgres backends serving the bench database over
    /// the window, in seconds (the server's own processes, the WAL writer
    /// and checkpointer, are not counted).
    pub pg_backend_cpu_s: Option<f64>,
    /// How many backends those were.
    pub pg_backends: usize,
    /// What those backends were doing, sampled over the window.
    #[serde(default)]
    pub activity: Option<Activity>,
    /// The whole run's wall time, in seconds.
    pub run_s: f64,
    /// Why it was not measured, or anything odd.
    pub note: Option<String>,
}

// ---------------------------------------------------------------- child

static FROM_NS: AtomicI64 = AtomicI64::new(i64::MAX);
static TO_NS: AtomicI64 = AtomicI64::new(i64::MIN);
static ON_TIME_NS: AtomicI64 = AtomicI64::new(100_000_000);
static RUN: AtomicU64 = AtomicU64::new(0);
static ON_TIME: AtomicU64 = AtomicU64::new(0);
static EARLY: AtomicU64 = AtomicU64::new(0);
static HIST: OnceLock<LatencyHistogram> = OnceLock::new();

fn hist() -> &'static LatencyHistogram {
    HIST.get_or_init(LatencyHistogram::new)
}

fn unix_ns(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The handler: a fire due in the window counts, with its lateness.
fn on_fire(nominal_ns: i64) {
    if nominal_ns < FROM_NS.load(Ordering::Relaxed) || nominal_ns >= TO_NS.load(Ordering::Relaxed) {
        return;
    }
    let late = now_ns() - nominal_ns;
    RUN.fetch_add(1, Ordering::Relaxed);
    if late < 0 {
        EARLY.fetch_add(1, Ordering::Relaxed);
    }
    let late = late.max(0);
    if late <= ON_TIME_NS.load(Ordering::Relaxed) {
        ON_TIME.fetch_add(1, Ordering::Relaxed);
    }
    hist().record(Duration::from_nanos(late as u64));
}

/// The prefix of a child's result line.
pub const RESULT: &str = "RESULT ";
/// What a child prints once its scheduler runs.
pub const READY: &str = "READY";

fn bench_db_options(url: &str, database: &str) -> Result<PgConnectOptions, String> {
    let o = PgConnectOptions::from_str(url).map_err(|e| format!("bad Postgres URL: {e}"))?;
    Ok(o.database(database).application_name("mscribe-bench-claims").disable_statement_logging())
}

/// One instance: `claims child JSON`. Prints [`READY`] once its scheduler
/// runs, reads `t0_ns t1_ns` from stdin, measures, stops the scheduler
/// (flushing its records), and prints its [`RESULT`] line.
pub fn child_main(json: &str) -> Result<(), String> {
    let p: ChildParams = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(p.params.workers.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let r = rt.block_on(child(&p));
    // Runs and store calls may still be in flight: do not wait for them.
    rt.shutdown_background();
    let r = r?;
    println!("{RESULT}{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    Ok(())
}

async fn child(p: &ChildParams) -> Result<ChildResult, String> {
    use mscribe_scheduler::{
        ExecutionStore, JobConfig, JobContext, JobScheduler, Schedule, SystemClock, TokioSpawner,
    };
    use mscribe_storage::{PostgresOptions, PostgresStore};
    let c = &p.params;
    ON_TIME_NS.store((c.on_time_ms * 1_000_000) as i64, Ordering::Relaxed);
    hist();
    let mut out = ChildResult { instance: p.instance, ..ChildResult::default() };
    let t = Instant::now();
    let opts = PostgresOptions::from_connect_options(bench_db_options(&p.url, &p.database)?)
        .max_connections(c.pool);
    let pg = PostgresStore::connect_with(opts).await.map_err(|e| e.to_string())?;
    out.connect_ms = t.elapsed().as_secs_f64() * 1e3;
    let stats = Arc::new(CallStats::default());
    let timed = TimedStore::new(Arc::new(pg), Arc::clone(&stats));
    let timed = if c.coalesce_claims { timed.coalescing() } else { timed };
    let store: Arc<dyn ExecutionStore> = Arc::new(timed);
    let instance_id = format!("bench-{}", p.instance);
    let scheduler = JobScheduler::builder(Arc::new(SystemClock), Arc::new(TokioSpawner::current()))
        .store(store)
        .instance_id(instance_id.clone())
        .claim_fires(true)
        .lease(Duration::from_millis(c.lease_ms))
        .build();
    out.instance_id = instance_id;
    let err = |e: mscribe_scheduler::Error| e.to_string();
    let every = Schedule::interval(Duration::from_millis(c.interval_ms)).map_err(err)?;
    let t = Instant::now();
    for i in 0..c.jobs {
        let schedule = if c.staggered {
            // A start in the past is a phase on the Unix epoch's grid.
            let first = DateTime::UNIX_EPOCH + chrono::Duration::milliseconds(c.phase_ms(i) as i64);
            Schedule::interval_at(first, Duration::from_millis(c.interval_ms)).map_err(err)?
        } else {
            every.clone()
        };
        let job = JobConfig::new(format!("job-{i}"), |ctx: JobContext| async move {
            on_fire(unix_ns(ctx.scheduled_at));
        })
        .schedule(schedule);
        scheduler.register(job).map_err(err)?;
    }
    out.register_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    scheduler.start().await.map_err(err)?;
    out.start_ms = t.elapsed().as_secs_f64() * 1e3;

    println!("{READY}");
    let line = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s).map(|_| s)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("reading the window: {e}"))?;
    let mut it = line.split_whitespace().map(str::parse::<i64>);
    let (Some(Ok(t0)), Some(Ok(t1))) = (it.next(), it.next()) else {
        return Err(format!("bad window line {line:?}"));
    };
    FROM_NS.store(t0, Ordering::Relaxed);
    TO_NS.store(t1, Ordering::Relaxed);
    let until = |ns: i64| Duration::from_nanos(u64::try_from(ns - now_ns()).unwrap_or(0));
    tokio::time::sleep(until(t0)).await;
    let cpu0 = cpu_time();
    let w0 = Instant::now();
    stats.measuring.store(true, Ordering::Relaxed);
    let mut max_overdue = Duration::ZERO;
    while now_ns() < t1 {
        max_overdue = max_overdue.max(scheduler.overdue());
        tokio::time::sleep(until(t1).min(Duration::from_millis(50))).await;
    }
    stats.measuring.store(false, Ordering::Relaxed);
    let cpu1 = cpu_time();
    out.window_s = w0.elapsed().as_secs_f64();
    out.cpu_s = (cpu1 - cpu0).as_secs_f64();
    out.max_overdue_ms = max_overdue.as_secs_f64() * 1e3;
    tokio::time::sleep(Duration::from_secs_f64(c.grace_s)).await;
    out.fires_run = RUN.load(Ordering::Relaxed);
    out.on_time = ON_TIME.load(Ordering::Relaxed);
    out.early = EARLY.load(Ordering::Relaxed);
    out.lateness = hist().snapshot();
    out.calls = stats.snapshot();
    let t = Instant::now();
    match scheduler.stop(Duration::from_secs(10)).await {
        Ok(_) => {}
        Err(e) => out.note = Some(format!("stop: {e}")),
    }
    out.stop_ms = t.elapsed().as_secs_f64() * 1e3;
    let h = scheduler.store_health();
    out.written = h.written;
    out.dropped = h.dropped;
    out.rejected = h.rejected;
    out.fenced = h.fenced;
    out.failed_writes = h.failed_writes;
    Ok(out)
}

// ---------------------------------------------------------------- parent

/// A child process and the lines it printed.
struct Instance {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Instance {
    fn spawn(p: &ChildParams) -> Result<Instance, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let json = serde_json::to_string(p).map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["child", &json])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning instance {}: {e}", p.instance))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == READY || line.starts_with(RESULT) {
                    let _ = tx.send(line);
                }
            }
        });
        Ok(Instance { child, lines })
    }

    fn wait_line(&self, until: Instant, what: &str, i: usize) -> Result<String, String> {
        let left = until.saturating_duration_since(Instant::now());
        self.lines
            .recv_timeout(left)
            .map_err(|_| format!("instance {i} gave no {what} in time (see its messages above)"))
    }

    /// Waits up to `limit` for the process to end, then kills it.
    fn finish(mut self, limit: Duration) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                _ if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// CPU time (user + system) of a process, from `/proc/PID/stat`.
fn proc_cpu(pid: i32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line; `rest` starts at field 3.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
    Some(Duration::from_secs_f64(ticks as f64 / hz.max(1) as f64))
}

/// The CPU time of each backend serving `db`, but this connection's.
async fn backend_cpu(conn: &mut PgConnection, db: &str) -> Vec<(i32, Duration)> {
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .fetch_all(conn)
    .await
    .unwrap_or_default();
    pids.into_iter().filter_map(|p| Some((p, proc_cpu(p)?))).collect()
}

/// What the backends serving the bench database were doing: samples of
/// `pg_stat_activity`, counted by statement and by state or wait event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Activity {
    /// How many samples were taken.
    pub samples: u64,
    /// Idle backends, summed over the samples.
    pub idle: u64,
    /// `(statement, state or wait, backends summed over the samples)`.
    pub rows: Vec<(String, String, u64)>,
    /// Round trip of each sampling query (a read of `pg_stat_activity`
    /// from the parent process): the machine's and the server's latency
    /// for a trivial statement under the load of the moment.
    #[serde(default)]
    pub probe_rtt: HistogramSnapshot,
    /// The share of the window in which some runnable task waited for a
    /// CPU (`/proc/pressure/cpu`, "some"), when the kernel reports it.
    #[serde(default)]
    pub cpu_pressure: Option<f64>,
}

/// A backend's state, wait event type, wait event and statement.
type ActivityRow = (Option<String>, Option<String>, Option<String>, Option<String>);

impl Activity {
    async fn sample(&mut self, conn: &mut PgConnection, db: &str, rtt: &LatencyHistogram) {
        let t = Instant::now();
        let rows: Vec<ActivityRow> = match sqlx::query_as(
            "SELECT state, wait_event_type, wait_event, left(query, 60)
                 FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(db)
        .fetch_all(conn)
        .await
        {
            Ok(r) => r,
            Err(_) => return,
        };
        rtt.record(t.elapsed());
        self.samples += 1;
        for (state, wait_type, wait, query) in rows {
            let state = state.unwrap_or_default();
            if state == "idle" {
                self.idle += 1;
                continue;
            }
            let what = statement_kind(query.as_deref().unwrap_or(""));
            let how = match (state.as_str(), wait_type, wait) {
                ("active", Some(t), Some(w)) => format!("waiting: {t} {w}"),
                ("active", _, _) => "running (on CPU or runnable)".to_owned(),
                ("idle in transaction", ..) => {
                    "idle in transaction (waiting for the client)".to_owned()
                }
                (other, ..) => other.to_owned(),
            };
            match self.rows.iter_mut().find(|r| r.0 == what && r.1 == how) {
                Some(r) => r.2 += 1,
                None => self.rows.push((what.to_owned(), how, 1)),
            }
        }
    }
}

/// The "some" total of `/proc/pressure/cpu`: microseconds in which some
/// runnable task waited for a CPU, since boot.
fn cpu_pressure_total() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let line = s.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace().find_map(|f| f.strip_prefix("total=")?.parse().ok())
}

/// Names a statement of the store by its text's start.
fn statement_kind(q: &str) -> &'static str {
    let q = q.trim_start();
    let kinds = [
        ("INSERT INTO fire_claims", "claim (`INSERT INTO fire_claims`)"),
        ("INSERT INTO scheduled_job_executions", "record insert"),
        ("SELECT c.job_id, c.scheduled_at, c.fence", "fence lock (`SELECT .. FOR NO KEY UPDATE`)"),
        ("UPDATE fire_claims AS c SET ended", "lease end (`UPDATE fire_claims`)"),
        ("UPDATE scheduled_job_executions", "record end update"),
        ("WITH held", "lease renewal"),
        ("SELECT job_id, scheduled_at, execution_id", "expired leases"),
        ("COMMIT", "COMMIT"),
        ("BEGIN", "BEGIN"),
    ];
    kinds.iter().find(|(p, _)| q.starts_with(p)).map_or("other", |(_, k)| k)
}

fn git_commit() -> Option<String> {
    let o = Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().ok()?;
    let s = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    (o.status.success() && !s.is_empty()).then_some(s)
}

fn rfc3339(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Runs the benchmark against the server of `url` (its database is used
/// only to create and drop the bench database); `keep_db` leaves the bench
/// database behind.
pub fn run(p: &ClaimsParams, mode: Mode, url: &str, keep_db: bool) -> ClaimsResult {
    let t_all = Instant::now();
    let mut res = ClaimsResult {
        params: p.clone(),
        mode,
        started_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        commit: git_commit(),
        postgres: String::new(),
        window_from: String::new(),
        window_to: String::new(),
        load_before: load_average(),
        load_after: [0.0; 3],
        children: Vec::new(),
        db: None,
        pg_backend_cpu_s: None,
        pg_backends: 0,
        activity: None,
        run_s: 0.0,
        note: None,
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            res.note = Some(format!("tokio runtime: {e}"));
            return res;
        }
    };
    let db = format!("mscribe_bench_claims_{}_{}", Utc::now().timestamp(), std::process::id());
    if let Err(e) = rt.block_on(create_db(url, &db, &mut res)) {
        res.note = Some(e);
        res.load_after = load_average();
        res.run_s = t_all.elapsed().as_secs_f64();
        return res;
    }
    eprintln!("claims: database {db} created and migrated ({})", res.postgres);
    if let Err(e) = measure(&rt, p, url, &db, &mut res) {
        res.note = Some(e);
    }
    if keep_db {
        eprintln!("claims: database {db} kept");
    } else if let Err(e) = rt.block_on(drop_db(url, &db)) {
        eprintln!("claims: could not drop database {db}: {e}");
    }
    res.load_after = load_average();
    res.run_s = t_all.elapsed().as_secs_f64();
    res
}

async fn create_db(url: &str, db: &str, res: &mut ClaimsResult) -> Result<(), String> {
    let admin = PgConnectOptions::from_str(url).map_err(|e| format!("bad Postgres URL: {e}"))?;
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .map_err(|e| format!("Postgres could not be reached: {e}"))?;
    res.postgres = sqlx::query_scalar::<_, String>("SHOW server_version")
        .fetch_one(&mut conn)
        .await
        .map(|v| format!("PostgreSQL {v}"))
        .unwrap_or_default();
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("CREATE DATABASE {db}: {e}"))?;
    let _ = conn.close().await;
    let opts = mscribe_storage::PostgresOptions::from_connect_options(bench_db_options(url, db)?);
    let store = mscribe_storage::PostgresStore::connect_with(opts)
        .await
        .map_err(|e| format!("migrating {db}: {e}"))?;
    store.close().await;
    Ok(())
}

async fn drop_db(url: &str, db: &str) -> Result<(), String> {
    let admin = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
    let mut conn = PgConnection::connect_with(&admin).await.map_err(|e| e.to_string())?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

fn measure(
    rt: &tokio::runtime::Runtime,
    p: &ClaimsParams,
    url: &str,
    db: &str,
    res: &mut ClaimsResult,
) -> Result<(), String> {
    let mut instances = Vec::with_capacity(p.instances);
    for i in 0..p.instances {
        let cp = ChildParams {
            url: url.to_owned(),
            database: db.to_owned(),
            instance: i,
            params: p.clone(),
        };
        instances.push(Instance::spawn(&cp)?);
    }
    let outcome = measure_with(rt, p, url, db, &mut instances, res);
    for inst in instances {
        inst.finish(Duration::from_secs(15));
    }
    let outcome = outcome?;
    let t = Instant::now();
    let mut check = rt.block_on(check_db(p, url, db, outcome.0, outcome.1))?;
    check.check_s = t.elapsed().as_secs_f64();
    res.db = Some(check);
    Ok(())
}

/// Runs the window; the first nominal time in it and the window's end.
fn measure_with(
    rt: &tokio::runtime::Runtime,
    p: &ClaimsParams,
    url: &str,
    db: &str,
    instances: &mut [Instance],
    res: &mut ClaimsResult,
) -> Result<(i64, i64), String> {
    let ready_by = Instant::now() + Duration::from_secs(120);
    for (i, inst) in instances.iter().enumerate() {
        let line = inst.wait_line(ready_by, "READY", i)?;
        if line != READY {
            return Err(format!("instance {i} said {line:?} before READY"));
        }
    }
    eprintln!("claims: {} instances running; warm-up {:.0} s", p.instances, p.warmup_s);
    // The window starts half an interval before a nominal time, after the
    // warm-up, and spans whole intervals.
    let iv = (p.interval_ms * 1_000_000) as i64;
    let earliest = now_ns() + (p.warmup_s * 1e9) as i64;
    let first = (earliest / iv + 1) * iv;
    let t0 = first - iv / 2;
    let t1 = t0 + iv * p.periods() as i64;
    res.window_from = rfc3339(t0);
    res.window_to = rfc3339(t1);
    for (i, inst) in instances.iter_mut().enumerate() {
        let stdin = inst.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{t0} {t1}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("instance {i}: {e}"))?;
    }
    // The Postgres backends' CPU over the window, through a connection of
    // the parent's own (left out of the count).
    let sampled = rt.block_on(async {
        let until = |ns: i64| Duration::from_nanos(u64::try_from(ns - now_ns()).unwrap_or(0));
        let mut conn = PgConnection::connect_with(&bench_db_options(url, db).ok()?).await.ok()?;
        tokio::time::sleep(until(t0)).await;
        let before = backend_cpu(&mut conn, db).await;
        let mut activity = Activity::default();
        let rtt = LatencyHistogram::new();
        let (psi0, w0) = (cpu_pressure_total(), Instant::now());
        while now_ns() < t1 {
            activity.sample(&mut conn, db, &rtt).await;
            tokio::time::sleep(until(t1).min(Duration::from_millis(25))).await;
        }
        activity.probe_rtt = rtt.snapshot();
        if let (Some(a), Some(b)) = (psi0, cpu_pressure_total()) {
            activity.cpu_pressure =
                Some(b.saturating_sub(a) as f64 / 1e6 / w0.elapsed().as_secs_f64());
        }
        let after = backend_cpu(&mut conn, db).await;
        let _ = conn.close().await;
        Some((before, after, activity))
    });
    if let Some((before, after, mut activity)) = sampled
        && !after.is_empty()
    {
        activity.rows.sort_by_key(|r| std::cmp::Reverse(r.2));
        res.activity = Some(activity);
        let base: std::collections::HashMap<i32, Duration> = before.into_iter().collect();
        let used: Duration = after
            .iter()
            .map(|(pid, c)| c.saturating_sub(base.get(pid).copied().unwrap_or_default()))
            .sum();
        res.pg_backend_cpu_s = Some(used.as_secs_f64());
        res.pg_backends = after.len();
    }
    let end = Instant::now()
        + Duration::from_nanos(u64::try_from(t1 - now_ns()).unwrap_or(0))
        + Duration::from_secs_f64(p.grace_s)
        + Duration::from_secs(90);
    for (i, inst) in instances.iter().enumerate() {
        let line = inst.wait_line(end, "result", i)?;
        let json = line.strip_prefix(RESULT).ok_or_else(|| format!("instance {i}: {line:?}"))?;
        let r: ChildResult = serde_json::from_str(json).map_err(|e| e.to_string())?;
        res.children.push(r);
    }
    Ok((first, t1))
}

/// Percentiles (p50, p99, max) of an interval expression over rows, in ms.
fn pct3(v: (Option<f64>, Option<f64>, Option<f64>)) -> [f64; 3] {
    [v.0.unwrap_or(0.0), v.1.unwrap_or(0.0), v.2.unwrap_or(0.0)]
}

/// Counts the window's fires in the database: `first` is the first nominal
/// time in the window, `t1` its end (Unix nanoseconds).
async fn check_db(
    p: &ClaimsParams,
    url: &str,
    db: &str,
    first: i64,
    t1: i64,
) -> Result<DbCheck, String> {
    let e = |what: &str| {
        let what = what.to_owned();
        move |e: sqlx::Error| format!("checking the database ({what}): {e}")
    };
    let mut conn =
        PgConnection::connect_with(&bench_db_options(url, db)?).await.map_err(e("connect"))?;
    // The window of nominal times, and the first whole interval in it
    // (the grid of the unphased jobs).
    let iv = p.interval_ms as i64 * 1_000_000;
    let from = DateTime::from_timestamp_nanos(t1 - iv * p.periods() as i64);
    let to = DateTime::from_timestamp_nanos(t1);
    let grid = DateTime::from_timestamp_nanos(first);
    let mut c = DbCheck::default();
    let (fires, rows, dup, extra, run, twice): (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(n), 0)::int8,
                count(*) FILTER (WHERE n > 1), coalesce(sum(n - 1) FILTER (WHERE n > 1), 0)::int8,
                count(*) FILTER (WHERE runs >= 1), count(*) FILTER (WHERE runs > 1)
         FROM (SELECT job_id, scheduled_at, count(*) AS n,
                      count(*) FILTER (WHERE status = 'succeeded') AS runs
               FROM scheduled_job_executions
               WHERE scheduled_at >= $1 AND scheduled_at < $2
               GROUP BY job_id, scheduled_at) AS f",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut conn)
    .await
    .map_err(e("rows per fire"))?;
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    c.fires_with_rows = u(fires);
    c.rows = u(rows);
    c.duplicate_fires = u(dup);
    c.extra_rows = u(extra);
    c.fires_run = u(run);
    c.run_twice = u(twice);
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM scheduled_job_executions
         WHERE scheduled_at >= $1 AND scheduled_at < $2 GROUP BY status ORDER BY 2 DESC",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut conn)
    .await
    .map_err(e("statuses"))?;
    c.statuses = statuses.into_iter().map(|(s, n)| (s, u(n))).collect();
    let reasons: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT left(error, 100), count(*) FROM scheduled_job_executions
         WHERE scheduled_at >= $1 AND scheduled_at < $2 AND status = 'skipped'
         GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut conn)
    .await
    .map_err(e("skip reasons"))?;
    c.skip_reasons = reasons.into_iter().map(|(r, n)| (r.unwrap_or_default(), u(n))).collect();
    // Job i's fires in the window: `first` plus its phase (less an interval
    // when the phase is past the window's half-interval offset), plus whole
    // intervals.
    let missing: i64 = sqlx::query_scalar(
        "SELECT count(*)
         FROM (SELECT i, (i / $4) * $3 / 100 AS phase FROM generate_series(0, $2 - 1) AS j(i)) AS j
         CROSS JOIN generate_series(0, $5 - 1) AS k(n)
         WHERE NOT EXISTS (
             SELECT 1 FROM scheduled_job_executions AS e
             WHERE e.job_id = 'job-' || j.i
               AND e.scheduled_at = $1 + (k.n * $3
                   + CASE WHEN j.phase * 2 < $3 THEN j.phase ELSE j.phase - $3 END)
                   * interval '1 millisecond')",
    )
    .bind(grid)
    .bind(p.jobs as i64)
    .bind(p.interval_ms as i64)
    .bind(p.per_slot() as i64)
    .bind(p.periods() as i64)
    .fetch_one(&mut conn)
    .await
    .map_err(e("missing fires"))?;
    c.missing = u(missing);
    type Claims = (i64, i64, i64, Option<f64>, Option<f64>, Option<f64>);
    let (n, ended, retaken, c50, c99, cmax): Claims = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE ended), count(*) FILTER (WHERE fence > 1),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY l),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l)
         FROM (SELECT *, extract(epoch FROM claimed_at - scheduled_at)::float8 * 1000 AS l
               FROM fire_claims WHERE scheduled_at >= $1 AND scheduled_at < $2) AS c",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut conn)
    .await
    .map_err(e("claims"))?;
    c.claims = u(n);
    c.claims_ended = u(ended);
    c.claims_retaken = u(retaken);
    c.claim_sent_ms = pct3((c50, c99, cmax));
    let written: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM fire_claims WHERE claimed_at >= $1 AND claimed_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut conn)
    .await
    .map_err(e("claims written"))?;
    c.claims_written_in_window = u(written);
    let by: Vec<(String, i64)> = sqlx::query_as(
        "SELECT instance_id, count(*) FROM fire_claims
         WHERE scheduled_at >= $1 AND scheduled_at < $2 GROUP BY 1 ORDER BY 1",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut conn)
    .await
    .map_err(e("claims by instance"))?;
    c.claims_by_instance = by.into_iter().map(|(i, n)| (i, u(n))).collect();
    let starts: (Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l)
         FROM (SELECT extract(epoch FROM started_at - scheduled_at)::float8 * 1000 AS l
               FROM scheduled_job_executions
               WHERE scheduled_at >= $1 AND scheduled_at < $2 AND status = 'succeeded') AS r",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut conn)
    .await
    .map_err(e("row starts"))?;
    c.row_start_ms = pct3(starts);
    let _ = conn.close().await;
    Ok(c)
}

// ---------------------------------------------------------------- report

/// The section's title.
pub fn title(instances: usize) -> String {
    format!("### 7. Claims on Postgres, {instances} instances")
}

/// The section when nothing could be measured, saying why.
pub fn unavailable(instances: usize, why: &str) -> String {
    format!("{}\n\nNot measured: {why}\n\n", title(instances))
}

fn ms3(v: [f64; 3]) -> String {
    format!("{} / {} / {}", ms(v[0]), ms(v[1]), ms(v[2]))
}

fn hist_ms3(h: &LatencyHistogram) -> String {
    let m = |d: Duration| d.as_secs_f64() * 1e3;
    ms3([m(h.percentile(0.5)), m(h.percentile(0.99)), m(h.max())])
}

fn merged(snaps: impl Iterator<Item = HistogramSnapshot>) -> LatencyHistogram {
    let h = LatencyHistogram::new();
    for s in snaps {
        h.merge(&s);
    }
    h
}

/// The report section of a run, from its results: `command` is how it was
/// run.
pub fn markdown(r: &ClaimsResult, command: &str) -> String {
    use crate::report::{count, mark, pct, us};
    let p = &r.params;
    let mut s = title(p.instances);
    s.push_str("\n\n");
    let _ = writeln!(
        s,
        "`{command}` (`benches/src/bin/claims.rs`): {} scheduler instances, each a child process with its own tokio runtime ({} workers) and `PostgresStore` (a pool of {} connections), on one fresh database, each registering the same {} no-op jobs on a {} ms interval with `claim_fires(true)` and a {} s lease. A claimed interval is phased on the Unix epoch, so every job is due at each whole second: each second opens with a burst of {} fires, which every instance claims in batches of up to 256 (one `claim_fires` call per dispatch chunk), the first claim of a fire winning it. Window {} s (nominal times {} to {}) after a warm-up of at least {:.0} s; fires due in it count whenever they start, up to {:.0} s after it. Lateness is measured in the handler: the wall clock at its start minus the fire's nominal time; a fire is *on time* when it starts within {} ms of it, and a fire that never ran is not on time. Duplicates and missing fires are counted from the database after the instances stopped (and flushed their records). CPU is user + system time of the instance processes over the window (the Postgres backends' separately: the `/proc` times of the backends serving the bench database), divided by the fires run.\n",
        p.instances,
        p.workers,
        p.pool,
        count(p.jobs as f64),
        p.interval_ms,
        p.lease_ms / 1_000,
        count(p.jobs as f64),
        p.window_s,
        r.window_from,
        r.window_to,
        p.warmup_s,
        p.grace_s,
        p.on_time_ms,
    );
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(0);
    let _ = writeln!(
        s,
        "Run {}{}, {}, {cores} cores, {:.0} s in all. Load average (1/5/15 min) {:.2} / {:.2} / {:.2} before, {:.2} / {:.2} / {:.2} after: the machine is shared with other builds and tests, whose load moves these figures.\n",
        r.started_at,
        r.commit.as_deref().map(|c| format!(" at {c}")).unwrap_or_default(),
        if r.postgres.is_empty() { "Postgres" } else { &r.postgres },
        r.run_s,
        r.load_before[0],
        r.load_before[1],
        r.load_before[2],
        r.load_after[0],
        r.load_after[1],
        r.load_after[2],
    );
    if p.staggered {
        let _ = writeln!(
            s,
            "**Profiling shape, not the target's:** the jobs' phases are spread over {SLOTS} slots of the interval (`--staggered`), so each slot holds {} fires due at the same instant instead of all {}.\n",
            count(p.per_slot() as f64),
            count(p.jobs as f64)
        );
    }
    if p.coalesce_claims {
        s.push_str("**Try-out, not the engine as it is:** each instance's store wrapper sends one claim statement at a time and merges the claims that come meanwhile into the next (`--coalesce-claims`).\n\n");
    }
    if r.children.is_empty() || r.db.is_none() {
        let _ = writeln!(
            s,
            "Not measured: {}\n",
            r.note.as_deref().unwrap_or("the run gave no results")
        );
        return s;
    }
    let db = r.db.clone().unwrap_or_default();
    let due = p.due() as f64;
    let window = p.window_s as f64;
    let run: u64 = r.children.iter().map(|c| c.fires_run).sum();
    let on_time: u64 = r.children.iter().map(|c| c.on_time).sum();
    let on_time_share = (on_time as f64 / due).min(1.0);
    let late = merged(r.children.iter().map(|c| c.lateness.clone()));
    let p99_ms = late.percentile(0.99).as_secs_f64() * 1e3;
    let cpu: f64 = r.children.iter().map(|c| c.cpu_s).sum();
    let per_fire = |cpu: f64| if run == 0 { "–".to_owned() } else { us(cpu * 1e6 / run as f64) };
    let calls: u64 = r.children.iter().map(|c| c.calls.claim_calls).sum();
    let claimed: u64 = r.children.iter().map(|c| c.calls.claim_fires).sum();
    s.push_str(
        "| fires due | run (handlers) | run (rows) | fires with > 1 row | missing | on time (≤ ",
    );
    let _ = write!(s, "{} ms", p.on_time_ms);
    s.push_str(") | lateness p50 | p99 | max | claims / s (rows) | claim calls / s | CPU / fire, instances | CPU / fire, Postgres backends |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let m = |d: Duration| crate::report::ms(d.as_secs_f64() * 1e3);
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        count(due),
        count(run as f64),
        count(db.fires_run as f64),
        db.duplicate_fires,
        db.missing,
        pct(on_time_share),
        m(late.percentile(0.5)),
        m(late.percentile(0.99)),
        m(late.max()),
        count(db.claims_written_in_window as f64 / window),
        format_args!("{:.0}", calls as f64 / window),
        per_fire(cpu),
        r.pg_backend_cpu_s
            .map(|c| format!("{} ({} backends)", per_fire(c), r.pg_backends))
            .unwrap_or_else(|| "not read".to_owned()),
    );
    let statuses: Vec<String> = db.statuses.iter().map(|(st, n)| format!("{n} {st}")).collect();
    let _ = writeln!(
        s,
        "\nRows of the window's fires: {} ({}); claim rows {} ({} ended, {} taken over); {} fires run twice.\n",
        db.rows,
        if statuses.is_empty() { "none".to_owned() } else { statuses.join(", ") },
        db.claims,
        db.claims_ended,
        db.claims_retaken,
        db.run_twice,
    );
    for (why, n) in &db.skip_reasons {
        let _ = writeln!(s, "- {n} skipped: \"{why}\"");
    }
    if !db.skip_reasons.is_empty() {
        s.push('\n');
    }
    s.push_str("| instance | fires run | claims won | lateness p99 | CPU / fire | driver overdue (max) | `claim_fires` calls | fires per call (mean / max) | claim round trip p50 / p99 | claims in flight (max) | record writes | records per write | write round trip p50 / p99 | dropped / fenced / failed writes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for c in &r.children {
        let h = LatencyHistogram::from_snapshot(&c.lateness);
        let rtt = LatencyHistogram::from_snapshot(&c.calls.claim_rtt);
        let wrtt = LatencyHistogram::from_snapshot(&c.calls.write_rtt);
        let k = &c.calls;
        let won =
            db.claims_by_instance.iter().find(|(i, _)| *i == c.instance_id).map_or(0, |(_, n)| *n);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} / {} | {} / {} | {} | {} | {:.0} | {} / {} | {} / {} / {} |",
            c.instance_id,
            count(c.fires_run as f64),
            count(won as f64),
            m(h.percentile(0.99)),
            if c.fires_run == 0 {
                "–".to_owned()
            } else {
                us(c.cpu_s * 1e6 / c.fires_run as f64)
            },
            crate::report::ms(c.max_overdue_ms),
            k.claim_calls,
            k.claim_fires as f64 / k.claim_calls.max(1) as f64,
            k.claim_max_batch,
            m(rtt.percentile(0.5)),
            m(rtt.percentile(0.99)),
            k.claims_max_in_flight,
            k.write_calls,
            k.write_events as f64 / k.write_calls.max(1) as f64,
            m(wrtt.percentile(0.5)),
            m(wrtt.percentile(0.99)),
            c.dropped,
            c.fenced,
            c.failed_writes,
        );
    }
    let sent = merged(r.children.iter().map(|c| c.calls.claim_sent_late.clone()));
    let answered = merged(r.children.iter().map(|c| c.calls.claim_answered_late.clone()));
    let rtt = merged(r.children.iter().map(|c| c.calls.claim_rtt.clone()));
    let wrtt = merged(r.children.iter().map(|c| c.calls.write_rtt.clone()));
    s.push_str("\nWhere a fire's time goes, after its nominal time (p50 / p99 / max, all instances):\n\n| stage | p50 / p99 / max |\n|---|---|\n");
    let _ = writeln!(
        s,
        "| claim sent (`fire_claims.claimed_at`: the instance's clock as it sent the claim, winners' rows) | {} |",
        ms3(db.claim_sent_ms)
    );
    let _ = writeln!(
        s,
        "| claim sent (per `claim_fires` call, from its batch's earliest fire) | {} |",
        hist_ms3(&sent)
    );
    let _ = writeln!(
        s,
        "| claim answered (per call, from its batch's earliest fire) | {} |",
        hist_ms3(&answered)
    );
    let _ = writeln!(
        s,
        "| attempt started (`started_at` of the rows run) | {} |",
        ms3(db.row_start_ms)
    );
    let _ = writeln!(s, "| handler started (measured in the handler) | {} |", hist_ms3(&late));
    let _ = writeln!(
        s,
        "| claim round trip (call to answer, waiting for a pooled connection included) | {} |",
        hist_ms3(&rtt)
    );
    let _ = writeln!(s, "| record write round trip | {} |", hist_ms3(&wrtt));
    if let Some(a) = r.activity.as_ref().filter(|a| a.samples > 0) {
        let n = a.samples as f64;
        let _ = writeln!(
            s,
            "\nThe Postgres backends serving the bench database, from `pg_stat_activity` sampled every 25 ms over the window ({} samples; on average {:.1} busy and {:.1} idle): the average number of backends in each statement and state.\n",
            a.samples,
            a.rows.iter().map(|r| r.2).sum::<u64>() as f64 / n,
            a.idle as f64 / n
        );
        let probe = LatencyHistogram::from_snapshot(&a.probe_rtt);
        let _ = writeln!(
            s,
            "The sampling query's own round trip (a trivial read from a process with nothing else to do): {}{}.\n",
            hist_ms3(&probe),
            a.cpu_pressure
                .map(|c| format!("; CPU pressure over the window (`/proc/pressure/cpu` \"some\": the share of time some runnable task waited for a CPU, on the whole machine) {:.0}%", c * 100.0))
                .unwrap_or_default()
        );
        s.push_str("| statement | state | backends (average) |\n|---|---|---:|\n");
        for (what, how, k) in a.rows.iter().filter(|r| r.2 as f64 / n >= 0.05) {
            let _ = writeln!(s, "| {what} | {how} | {:.2} |", *k as f64 / n);
        }
    }
    let _ = writeln!(
        s,
        "\n{} `claim_fires` calls per second over the instances, {} fires each on average, {} fires claimed per second for {} claim rows per second (each fire is claimed by every instance, won by one).\n",
        format_args!("{:.0}", calls as f64 / window),
        format_args!("{:.0}", claimed as f64 / calls.max(1) as f64),
        count(claimed as f64 / window),
        count(db.claims_written_in_window as f64 / window),
    );
    s.push_str("| target (issue 24) | measured | |\n|---|---|---|\n");
    let exact = db.duplicate_fires == 0 && db.missing == 0 && db.run_twice == 0;
    let _ = writeln!(
        s,
        "| every fire exactly once | {} fires with more than one row, {} missing, {} run twice | {} |",
        db.duplicate_fires,
        db.missing,
        db.run_twice,
        mark(exact)
    );
    let _ = writeln!(
        s,
        "| ≥ 99.9% of fires on time (≤ {} ms) | {} | {} |",
        p.on_time_ms,
        pct(on_time_share),
        mark(on_time_share >= 0.999)
    );
    let _ = writeln!(
        s,
        "| p99 lateness ≤ 50 ms | {} | {} |",
        crate::report::ms(p99_ms),
        mark(p99_ms <= 50.0)
    );
    let mean_batch = claimed as f64 / calls.max(1) as f64;
    let _ = writeln!(
        s,
        "| claims batched per tick, not one round trip per fire | {:.0} fires per `claim_fires` call | {} |",
        mean_batch,
        mark(mean_batch >= 16.0)
    );
    if let Some(n) = &r.note {
        let _ = writeln!(s, "\nNote: {n}");
    }
    s.push('\n');
    s
}
