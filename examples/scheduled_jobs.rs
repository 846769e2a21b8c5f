//! Embeds the scheduler with the seven operational jobs of `mscribe serve`
//! in an application of your own, on tokio and SQLite.
//!
//! It sets up a scratch directory, registers the jobs with their default
//! schedules plus one job of the application, triggers each once, waits for
//! them, prints what each did, and stops gracefully.
//!
//! ```sh
//! cargo run -p mscribe-server --example scheduled_jobs            # in a temp dir
//! cargo run -p mscribe-server --example scheduled_jobs -- ./demo  # keep the files in ./demo
//! ```

use std::sync::Arc;
use std::time::Duration;

use mscribe_scheduler::TokioSpawner;
use mscribe_scheduler::{
    HistoryQuery, JobConfig, JobContext, JobResult, JobScheduler, SystemClock,
};
use mscribe_server::config::{Config, JOB_IDS};
use mscribe_server::db::Database;
use mscribe_server::health::{HealthChecker, HealthSettings, SchedulerProbe, StorageProbe};
use mscribe_server::ops::{OpsContext, ops_jobs};
use mscribe_server::probe::Probe;
use mscribe_server::token::load_or_generate;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = match std::env::args().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("mscribe-example-{}", std::process::id())),
    };
    // The same configuration type as `mscribe serve`; here built in code.
    let mut cfg = Config {
        database_url: format!("sqlite://{}", root.join("app.db").display()),
        data_dir: root.join("data"),
        log_dir: root.join("logs"),
        backup_dir: root.join("backups"),
        ..Config::default()
    };
    cfg.jobs.database_backup.options.keep = 3;
    for d in [&cfg.data_dir, &cfg.log_dir, &cfg.backup_dir] {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(cfg.log_dir.join("app.log"), "a log line\n".repeat(100))?;
    cfg.jobs.log_rotation.options.max_size = 1024; // so the demo rotates it
    let cfg = Arc::new(cfg);

    let db = Database::open(&cfg.database_url).await?;
    let (token, _) = load_or_generate(&cfg.token_file())?;
    let scheduler = JobScheduler::builder(Arc::new(SystemClock), Arc::new(TokioSpawner::current()))
        .store(db.store())
        .build();

    // Health: the database, the scheduler, and the directories.
    let probes: Vec<Arc<dyn Probe>> = vec![
        db.probe(Duration::from_secs(1)),
        Arc::new(SchedulerProbe::new(scheduler.clone(), Duration::from_secs(60))),
        Arc::new(StorageProbe::new(cfg.storage_paths(), 0, 0.0)),
    ];
    let health = HealthChecker::new(probes, Arc::new(SystemClock), HealthSettings::default());

    // The seven jobs, configured from `cfg`...
    let ctx = OpsContext {
        config: cfg.clone(),
        db: db.clone(),
        health: health.clone(),
        admin_token: Some(token),
        on_log_rotated: None,
    };
    for job in ops_jobs(&ctx) {
        scheduler.register(job)?;
    }
    // ...beside the application's own.
    scheduler.register(
        JobConfig::new("send-digest", |_ctx: JobContext| async {
            Ok::<_, String>(JobResult::ok().with_data(serde_json::json!({ "emails": 3 })))
        })
        .schedule("0 8 * * MON-FRI")
        .timezone("Europe/Berlin")
        .timeout(Duration::from_secs(60)),
    )?;

    scheduler.start().await?;
    for info in scheduler.jobs() {
        println!(
            "{:<20} {:<26} next {}",
            info.id,
            info.schedule.as_deref().unwrap_or("trigger only"),
            info.next_run.map(|t| t.to_rfc3339()).unwrap_or_default()
        );
    }

    // Run each job once now, one after another.
    println!();
    let store = db.store();
    for id in JOB_IDS.iter().copied().chain(["send-digest"]) {
        scheduler.trigger(id)?;
        while scheduler.job(id).is_some_and(|j| j.running > 0) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    scheduler.stop(Duration::from_secs(10)).await?;
    for id in JOB_IDS.iter().copied().chain(["send-digest"]) {
        let runs = store.history(&HistoryQuery::new(id, 1)).await?;
        if let Some(r) = runs.first() {
            let data = r.result.as_ref().map(|d| d.to_string()).unwrap_or_default();
            println!(
                "{id:<20} {:<10} {}ms  {:.160}",
                r.status.as_str(),
                r.duration_ms.unwrap_or(0),
                data
            );
        }
    }
    println!("\nfiles in {}", root.display());
    Ok(())
}
