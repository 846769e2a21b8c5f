//! The engine's own costs on the virtual clock, one measure per run, for
//! callgrind and for resident memory (`scripts/callgrind.sh` runs them):
//!
//! - `cost register N`: registering N interval jobs;
//! - `cost fires JOBS SECS`: JOBS jobs every second for SECS virtual seconds
//!   (the work of criterion's `dispatch/virtual_10k_fires` at 1,000 and 10);
//! - `cost fires-memory JOBS SECS`: the same with every record kept in a
//!   `MemoryStore`, as a server keeps its history (the writer's work
//!   included: it runs on the same virtual runtime);
//! - `cost fires-memory-full JOBS SECS`: the same with a store bound to 2
//!   rows a job, so that every measured row drops the job's oldest (a
//!   store at its bound, as a server's after 1,000 fires of each job);
//! - `cost rss N`: resident bytes per job after registering N jobs, and
//!   after starting them;
//! - `cost rows JOBS ROWS`: resident bytes per row of a `MemoryStore`
//!   holding ROWS rows of each of JOBS jobs (successful attempts, as the
//!   fires above write them).
//! - `cost store-time JOBS SECS [staggered] [bound=ROWS]`: the wall time a
//!   `MemoryStore` takes per row to write the ends of JOBS jobs' fires,
//!   once a second for SECS seconds, in the recorder's batches of 512 (the
//!   first 2 seconds not timed). `staggered` writes them as the staggered
//!   shape's 100 groups a second (every 100th job together); without it,
//!   all together. `bound=ROWS` keeps ROWS rows a job (default 1,000), so
//!   that a run longer than ROWS + 2 seconds times a store at its bound. A
//!   real-memory figure for A/B runs: callgrind counts no cache misses,
//!   and at 50,000 jobs they are most of a row's cost.
//!
//! Only `measured` does the measured work, so
//! `valgrind --tool=callgrind --toggle-collect='*measured*'` counts it alone.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use mscribe_bench::NullStore;
use mscribe_scheduler::{
    AttemptEnd, ExecutionEvent, ExecutionId, ExecutionStatus, ExecutionStore, FireKind, JobConfig,
    JobContext, JobScheduler, LocalRuntime, MemoryStore,
};

fn scheduler(rt: &LocalRuntime) -> JobScheduler {
    scheduler_with(rt, Arc::new(NullStore::new()))
}

fn scheduler_with(rt: &LocalRuntime, store: Arc<dyn ExecutionStore>) -> JobScheduler {
    JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner())).store(store).seed(1).build()
}

fn configs(n: usize, every: Duration) -> Vec<JobConfig> {
    (0..n)
        .map(|i| JobConfig::new(format!("job-{i}"), |_ctx: JobContext| async {}).schedule(every))
        .collect()
}

/// The measured work: callgrind collects inside this function only.
#[inline(never)]
fn measured<R>(f: impl FnOnce() -> R) -> R {
    black_box(f())
}

/// `VmRSS` of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("a number") * 1024
}

fn arg(args: &[String], i: usize) -> u64 {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| usage())
}

fn usage() -> ! {
    panic!(
        "usage: cost register N | cost fires[-memory[-full]] JOBS SECS | cost rss N | cost rows JOBS ROWS | cost store-time JOBS SECS [staggered] [bound=ROWS]"
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("register") => {
            let rt = LocalRuntime::new();
            let s = scheduler(&rt);
            let cfgs = configs(arg(&args, 2) as usize, Duration::from_secs(1));
            measured(|| {
                for cfg in cfgs {
                    s.register(cfg).expect("valid");
                }
            });
        }
        Some(which @ ("fires" | "fires-memory" | "fires-memory-full")) => {
            let rt = LocalRuntime::new();
            let s = match which {
                "fires" => scheduler(&rt),
                "fires-memory" => scheduler_with(&rt, Arc::new(MemoryStore::new())),
                _ => {
                    let two = std::num::NonZeroUsize::new(2).expect("not zero");
                    scheduler_with(&rt, Arc::new(MemoryStore::with_rows_per_job(two)))
                }
            };
            for cfg in configs(arg(&args, 2) as usize, Duration::from_secs(1)) {
                s.register(cfg).expect("valid");
            }
            rt.block_on(s.start()).expect("starts");
            // Past the first fires, so every measured second is the same.
            rt.advance(Duration::from_millis(1500));
            measured(|| rt.advance(Duration::from_secs(arg(&args, 3))));
            rt.block_on(s.stop(Duration::from_secs(1))).expect("stops");
        }
        Some("rss") => {
            let n = arg(&args, 2);
            let rt = LocalRuntime::new();
            let s = scheduler(&rt);
            let before = rss();
            for cfg in configs(n as usize, Duration::from_secs(1)) {
                s.register(cfg).expect("valid");
            }
            let registered = rss();
            rt.block_on(s.start()).expect("starts");
            println!(
                "resident bytes per job: {} registered, {} started",
                (registered - before) / n,
                (rss() - before) / n
            );
        }
        Some("rows") => {
            let (jobs, rows) = (arg(&args, 2), arg(&args, 3));
            let rt = LocalRuntime::new();
            let store = MemoryStore::unbounded();
            let ids: Vec<Arc<str>> = (0..jobs).map(|j| Arc::from(format!("job-{j}"))).collect();
            let instance: Arc<str> = Arc::from("instance-0123456789");
            let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("in range");
            let before = rss();
            let mut run = 0u128;
            for r in 0..rows {
                let at = t0 + chrono::Duration::seconds(r as i64);
                let events = ends(ids.iter(), &instance, at, &mut run);
                rt.block_on(store.write(&events)).expect("written");
            }
            let bytes = rss() - before;
            println!(
                "resident bytes per row: {} ({} rows of {jobs} jobs: {bytes} bytes)",
                bytes / (jobs * rows),
                store.len()
            );
        }
        Some("store-time") => {
            let (jobs, secs) = (arg(&args, 2), arg(&args, 3));
            if jobs == 0 || secs <= 2 {
                panic!(
                    "cost store-time: JOBS must be at least 1 and SECS at least 3 (the first 2 are not timed)"
                );
            }
            let groups = if args[4..].iter().any(|a| a == "staggered") { 100 } else { 1 };
            let bound = args[4..].iter().find_map(|a| a.strip_prefix("bound=")).map(|b| {
                b.parse::<std::num::NonZeroUsize>()
                    .unwrap_or_else(|_| panic!("cost store-time: bound={b} is not a row count"))
            });
            let rt = LocalRuntime::new();
            let store = bound.map_or_else(MemoryStore::new, MemoryStore::with_rows_per_job);
            let ids: Vec<Arc<str>> = (0..jobs).map(|j| Arc::from(format!("job-{j}"))).collect();
            let instance: Arc<str> = Arc::from("instance-0123456789");
            let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("in range");
            let (mut run, mut timed, mut rows) = (0u128, Duration::ZERO, 0u64);
            for s in 0..secs {
                let at = t0 + chrono::Duration::seconds(s as i64);
                for g in 0..groups {
                    let group = ids.iter().skip(g as usize).step_by(groups as usize);
                    let events = ends(group, &instance, at, &mut run);
                    let t = std::time::Instant::now();
                    for batch in events.chunks(512) {
                        rt.block_on(store.write(batch)).expect("written");
                    }
                    if s >= 2 {
                        timed += t.elapsed();
                        rows += events.len() as u64;
                    }
                }
            }
            println!(
                "ns per row: {:.1} ({rows} rows timed)",
                timed.as_nanos() as f64 / rows as f64
            );
        }
        _ => usage(),
    }
}

/// The ends of successful attempts of `jobs` due at `at`, one each, with
/// run ids counted on from `run`.
fn ends<'a>(
    jobs: impl Iterator<Item = &'a Arc<str>>,
    instance: &Arc<str>,
    at: chrono::DateTime<chrono::Utc>,
    run: &mut u128,
) -> Vec<ExecutionEvent> {
    jobs.map(|job_id| {
        *run += 1;
        ExecutionEvent::Finished(AttemptEnd {
            job_id: job_id.clone(),
            execution_id: ExecutionId::from_u128(*run),
            attempt: 1,
            scheduled_at: at,
            started_at: at,
            instance_id: instance.clone(),
            status: ExecutionStatus::Succeeded,
            completed_at: at,
            duration: Duration::from_millis(3),
            error: None,
            error_kind: None,
            result: None,
            metrics: None,
            kind: FireKind::Schedule,
            fence: None,
            ends_run: true,
        })
    })
    .collect()
}
