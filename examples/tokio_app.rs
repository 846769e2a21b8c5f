//! Embeds the scheduler in a tokio application on the real clock.
//!
//! Three jobs run for a few seconds (a sub-second interval, a six-field cron
//! with seconds, and a flaky job with retries and a timeout), then the
//! scheduler stops gracefully and the history of each job is printed.
//!
//! ```sh
//! cargo run --example tokio_app -- 5     # run for 5 seconds (default 4)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mscribe_scheduler::{
    HistoryQuery, JobConfig, JobContext, JobResult, JobScheduler, RetryPolicy,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse().map_err(|_| format!("invalid duration in seconds \"{s}\""))?,
        None => 4,
    };
    let scheduler = JobScheduler::new();

    let counter = Arc::new(AtomicU32::new(0));
    let c = counter.clone();
    scheduler.register(
        JobConfig::new("heartbeat", move |_ctx: JobContext| {
            let n = c.fetch_add(1, Ordering::Relaxed) + 1;
            async move { JobResult::ok().with_metric("beats", f64::from(n)) }
        })
        .name("Heartbeat every 700 ms")
        .schedule("700ms"),
    )?;

    scheduler.register(
        JobConfig::new("every-second", |ctx: JobContext| async move {
            Ok::<_, String>(
                JobResult::ok().with_data(serde_json::json!({ "scheduled_at": ctx.scheduled_at })),
            )
        })
        .name("Cron with seconds")
        .schedule("* * * * * *"),
    )?;

    scheduler.register(
        JobConfig::new("flaky", |ctx: JobContext| async move {
            // Fails its first attempt, hangs on its second (cut at the timeout),
            // succeeds on the third.
            match ctx.attempt {
                1 => Err("transient failure".to_owned()),
                2 => {
                    ctx.sleep(Duration::from_secs(60)).await;
                    Ok(())
                }
                _ => Ok(()),
            }
        })
        .name("Flaky with retries")
        .schedule("2000ms")
        .timeout(Duration::from_millis(300))
        .retry(RetryPolicy::exponential(3).initial_delay(Duration::from_millis(100))),
    )?;

    scheduler.start().await?;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let report = scheduler.stop(Duration::from_secs(2)).await?;
    println!("stopped: {report:?}");

    for job in scheduler.jobs() {
        let schedule = job.schedule.as_deref().unwrap_or("trigger only");
        println!("\n{} ({}) schedule {schedule}", job.id, job.name);
        let rows = scheduler.store().history(&HistoryQuery::new(&job.id, 20)).await?;
        for r in rows.iter().rev() {
            println!(
                "  {} attempt {} {:<17} {:>5} ms  {}",
                r.started_at.format("%H:%M:%S%.3f"),
                r.attempt,
                r.status.as_str(),
                r.duration_ms.unwrap_or(0),
                r.error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}
