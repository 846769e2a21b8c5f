//! Instances on one shared store for the lease and trigger tests: claims on,
//! a 15 s lease, and a job that logs each start of its handler.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mscribe_scheduler::sim::{FaultyStore, StoreFaults};
use mscribe_scheduler::{
    Clock, ExecutionStore, JobConfig, JobContext, JobScheduler, LocalRuntime, MemoryStore,
};

/// Each handler start: its fire key, instance and attempt.
pub type Log = Arc<Mutex<Vec<(String, String, u32)>>>;

/// A started-later instance `id` on `store`, claiming fires with a 15 s
/// lease, with `jobs` registered.
pub fn instance(
    rt: &LocalRuntime,
    store: Arc<dyn ExecutionStore>,
    id: &str,
    jobs: Vec<JobConfig>,
) -> JobScheduler {
    let sched = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store)
        .instance_id(id)
        .claim_fires(true)
        .lease(Duration::from_secs(15))
        .build();
    for job in jobs {
        sched.register(job).unwrap();
    }
    sched
}

/// A job `slow` (no schedule) whose run takes 20 minutes; each start logs
/// its fire key, `instance` and attempt.
pub fn slow_job(log: &Log, instance: &str) -> JobConfig {
    let log = log.clone();
    let me = instance.to_owned();
    JobConfig::new("slow", move |ctx: JobContext| {
        let log = log.clone();
        let me = me.clone();
        async move {
            log.lock().unwrap().push((ctx.fire_key().to_string(), me, ctx.attempt));
            ctx.sleep(Duration::from_secs(20 * 60)).await;
        }
    })
}

/// A path to `shared` that can be cut (`set_faults` with `error: 1.0`), as
/// an instance's own link to the database.
pub fn cuttable(
    rt: &LocalRuntime,
    shared: &Arc<MemoryStore>,
) -> Arc<FaultyStore<Arc<MemoryStore>>> {
    Arc::new(FaultyStore::new(
        shared.clone(),
        StoreFaults::default(),
        1,
        Arc::new(rt.clock()) as Arc<dyn Clock>,
    ))
}
