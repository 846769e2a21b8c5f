//! The embedding example of the README, compiled: `server/tests/docs_readme.rs`
//! checks that the README's code block is this file without this header.
//!
//! ```sh
//! cargo run -p mscribe-server --example readme_embed   # Ctrl-C stops it
//! ```

use std::sync::Arc;
use std::time::Duration;

use mscribe_scheduler::TokioSpawner;
use mscribe_scheduler::{
    JobConfig, JobContext, JobError, JobResult, JobResultExt, JobScheduler, RetryPolicy,
    SystemClock,
};
use mscribe_storage::SqliteStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Execution history in ./mscribe.db, created and migrated on first open.
    let store = SqliteStore::open("mscribe.db").await?;
    let scheduler = JobScheduler::builder(Arc::new(SystemClock), Arc::new(TokioSpawner::current()))
        .store(Arc::new(store))
        .build();
    scheduler.register(
        JobConfig::new("nightly-report", |ctx: JobContext| async move {
            // A missing setting will not appear on a retry: a permanent error ends the run.
            let dir = std::env::var("REPORT_DIR").permanent()?;
            // An I/O error is transient (`?` converts it): retried per the policy.
            let entries = std::fs::read_dir(&dir)?.count();
            if ctx.is_cancelled() {
                return Err(JobError::transient("cancelled"));
            }
            Ok(JobResult::ok().with_metric("files", entries as f64))
        })
        .name("Nightly report")
        .schedule("0 2 * * *")
        .timezone("Europe/Berlin")
        .timeout(Duration::from_secs(600))
        .retry(RetryPolicy::exponential(3)),
    )?;
    // No schedule: a trigger-only job, run by `scheduler.trigger("reindex")` or the API.
    scheduler
        .register(JobConfig::new("reindex", |_ctx: JobContext| async { Ok::<(), JobError>(()) }))?;
    // Reads the last scheduled fire of each job from the store: missed runs follow the misfire policy.
    scheduler.start().await?;
    tokio::signal::ctrl_c().await?;
    // Cancels running handlers, waits up to 30 s, writes every record, then returns.
    let report = scheduler.stop(Duration::from_secs(30)).await?;
    println!("stopped: {report:?}");
    Ok(())
}
