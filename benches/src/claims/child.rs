//! One instance, the child process: it runs a scheduler with the bench's
//! jobs, measures the fires of the window in their handler, and prints its
//! result line.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{ChildParams, ChildResult, READY, RESULT, bench_db_options, now_ns, until};
use crate::measure::{LatencyHistogram, cpu_time};
use crate::timed_store::{CallStats, TimedStore};

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
        .claim_standby(Duration::from_millis(c.standby_ms))
        .claim_ahead(Duration::from_millis(c.ahead_ms))
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
