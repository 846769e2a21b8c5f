//! The standard mixed workload of the simulation test and benchmark.

use std::sync::Arc;
use std::time::Duration;

use crate::job::{JobConfig, JobHandler};
use crate::policy::{MisfirePolicy, OverlapPolicy};
use crate::retry::{Jitter, RetryPolicy};

/// Job `i` of the standard mixed workload (the simulation test and the
/// simulation benchmark): cron in three zones and intervals of 5 to 53
/// minutes, every overlap policy in turn, retries with each jitter on one job
/// in three, schedule jitter on one in seven, timeouts of 1 to 5 minutes.
pub fn mixed_job(i: usize, handler: Arc<dyn JobHandler>) -> JobConfig {
    let crons = [
        "*/5 * * * *",
        "0 * * * *",
        "15,45 * * * *",
        "0 */6 * * *",
        "30 2 * * *",
        "0 9 * * 1-5",
        "*/10 8-18 * * *",
        "0 0 1 * *",
    ];
    let zones = ["UTC", "Europe/Berlin", "America/New_York"];
    let overlaps =
        [OverlapPolicy::Skip, OverlapPolicy::Queue, OverlapPolicy::Allow, OverlapPolicy::Replace];
    let mut cfg = JobConfig::from_arc(format!("job-{i:04}"), handler)
        .overlap(overlaps[i % overlaps.len()])
        .misfire(MisfirePolicy::run_once())
        .timeout(Duration::from_secs(60 + (i as u64 % 5) * 60));
    cfg = if i.is_multiple_of(2) {
        cfg.schedule(crons[(i / 2) % crons.len()]).timezone(zones[i % zones.len()])
    } else {
        cfg.schedule(Duration::from_secs(300 + (i as u64 % 13) * 240))
    };
    if i.is_multiple_of(3) {
        let jitter = [Jitter::None, Jitter::Full, Jitter::Equal][(i / 3) % 3];
        cfg = cfg.retry(
            RetryPolicy::exponential(3)
                .initial_delay(Duration::from_secs(5))
                .max_delay(Duration::from_secs(60))
                .jitter(jitter),
        );
    }
    if i.is_multiple_of(7) {
        cfg = cfg.jitter(Duration::from_secs(30));
    }
    cfg
}
