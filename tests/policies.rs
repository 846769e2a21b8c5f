//! One test per cell of the policy tables in docs/SEMANTICS.md, on the
//! virtual clock.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mscribe_scheduler::{
    ExecutionStatus, JobConfig, JobContext, MemoryStore, MisfirePolicy, OverlapPolicy, RetryPolicy,
    SchedulerBuilder, TriggerOutcome,
};
use support::{Kind, Rt, World};

use ExecutionStatus::{Cancelled, Failed, RetriesExhausted, Skipped, Succeeded};

/// Every scheduler here, and each restart, has seed 3.
fn seeded(b: SchedulerBuilder) -> SchedulerBuilder {
    b.seed(3)
}

/// How long `stop()` waits: every run here ends well within it.
const GRACE: Duration = Duration::from_secs(3600);

/// A handler that works for `secs` (cooperatively).
fn works(secs: u64) -> impl Fn(JobContext) -> futures::future::BoxFuture<'static, ()> {
    move |ctx: JobContext| {
        Box::pin(async move {
            ctx.sleep(Duration::from_secs(secs)).await;
        })
    }
}

// ---- overlap ------------------------------------------------------------

#[test]
fn overlap_skip_records_fires_during_a_run_as_skipped() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    s.register(JobConfig::new("j", works(25)).schedule("@every 10s")).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(36));
    w.stop(GRACE);
    assert_eq!(w.timeline("j"), vec![(10, 10, Succeeded), (20, 20, Skipped), (30, 30, Skipped)]);
}

#[test]
fn overlap_queue_buffers_one_fire_of_two_during_a_long_run() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    s.register(JobConfig::new("j", works(25)).schedule("@every 10s").overlap(OverlapPolicy::Queue))
        .unwrap();
    w.start();
    // Run 10..35; fires at 20 (queued) and 30 (skipped: one is already queued).
    w.rt.advance(Duration::from_secs(36));
    assert_eq!(
        w.timeline("j"),
        vec![(10, 10, Succeeded), (30, 30, Skipped), (20, 35, ExecutionStatus::Running)]
    );
    assert_eq!(s.job("j").unwrap().queued, 0);
    w.stop(GRACE);
}

#[test]
fn overlap_allow_runs_concurrently() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    s.register(JobConfig::new("j", works(25)).schedule("@every 10s").overlap(OverlapPolicy::Allow))
        .unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(31));
    assert_eq!(s.job("j").unwrap().running, 3);
    w.rt.advance(Duration::from_secs(30));
    w.stop(GRACE);
    let rows = w.timeline("j");
    assert_eq!(&rows[..3], &[(10, 10, Succeeded), (20, 20, Succeeded), (30, 30, Succeeded)]);
}

#[test]
fn overlap_replace_cancels_the_old_run() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    s.register(
        JobConfig::new("j", works(25)).schedule("@every 10s").overlap(OverlapPolicy::Replace),
    )
    .unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(21));
    w.stop(GRACE);
    let rows = w.timeline("j");
    assert_eq!(rows[0], (10, 10, Cancelled));
    assert_eq!(rows[1].0, 20);
    let first = w.store.all().into_iter().find(|r| r.status == Cancelled).unwrap();
    assert_eq!(first.completed_at, Some(w.secs(20)), "cancelled at the new fire");
}

#[test]
fn a_retrying_run_counts_as_running_for_overlap() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    let retry = RetryPolicy::exponential(2).initial_delay(Duration::from_secs(15));
    s.register(
        JobConfig::new("j", |_c: JobContext| async { Err::<(), _>("no") })
            .schedule("@every 10s")
            .retry(retry),
    )
    .unwrap();
    w.start();
    // Attempt 1 at 10 fails, backoff until 25: the fire at 20 finds it running.
    w.rt.advance(Duration::from_secs(26));
    w.stop(GRACE);
    assert_eq!(
        w.timeline("j"),
        vec![(10, 10, Failed), (20, 20, Skipped), (10, 25, RetriesExhausted)]
    );
}

#[test]
fn manual_trigger_obeys_the_policy() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    s.register(JobConfig::new("skip", works(30)).schedule("@daily")).unwrap();
    s.register(JobConfig::new("queue", works(30)).schedule("@daily").overlap(OverlapPolicy::Queue))
        .unwrap();
    w.start();
    assert!(matches!(s.trigger("skip").unwrap(), TriggerOutcome::Started { .. }));
    assert!(matches!(s.trigger("queue").unwrap(), TriggerOutcome::Started { .. }));
    w.rt.advance(Duration::from_secs(5));
    assert_eq!(s.trigger("skip").unwrap(), TriggerOutcome::Skipped);
    assert!(matches!(s.trigger("queue").unwrap(), TriggerOutcome::Queued { .. }));
    assert_eq!(s.trigger("queue").unwrap(), TriggerOutcome::Skipped);
    w.rt.advance(Duration::from_secs(60));
    w.stop(GRACE);
    assert_eq!(w.timeline("skip"), vec![(0, 0, Succeeded), (5, 5, Skipped)]);
    assert_eq!(w.timeline("queue"), vec![(0, 0, Succeeded), (5, 5, Skipped), (5, 30, Succeeded)]);
}

// ---- misfire (a restart after downtime) ---------------------------------

/// Runs a job hourly for 2 h, stops, stays down `down` hours, restarts.
fn downtime(policy: MisfirePolicy, down: i64) -> Vec<(i64, i64, ExecutionStatus)> {
    let mut w = World::local_with(seeded);
    let job = || JobConfig::new("j", works(1)).schedule("0 * * * *").misfire(policy);
    w.sched.register(job()).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(2 * 3600 + 60));
    w.stop(GRACE);
    w.rt.advance(Duration::from_secs(down as u64 * 3600));
    w.restart(seeded);
    w.sched.register(job()).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(3600));
    w.stop(GRACE);
    w.timeline("j").into_iter().map(|(sch, st, s)| (sch / 3600, st / 60, s)).collect()
}

#[test]
fn misfire_skip_records_every_missed_fire() {
    // Up 0:00-2:01, down until 5:01: fires 3,4,5 missed; next run at 6.
    assert_eq!(
        downtime(MisfirePolicy::skip(), 3),
        vec![
            (1, 60, Succeeded),
            (2, 120, Succeeded),
            (3, 301, Skipped),
            (4, 301, Skipped),
            (5, 301, Skipped),
            (6, 360, Succeeded),
        ]
    );
}

#[test]
fn misfire_run_once_runs_the_latest_and_skips_the_rest() {
    assert_eq!(
        downtime(MisfirePolicy::run_once(), 3),
        vec![
            (1, 60, Succeeded),
            (2, 120, Succeeded),
            (3, 301, Skipped),
            (4, 301, Skipped),
            (5, 301, Succeeded),
            (6, 360, Succeeded),
        ]
    );
}

#[test]
fn misfire_run_all_is_capped_at_its_maximum() {
    // Five missed (3..7), max 2 runs within a 24 h window: 6 and 7 run, in order.
    let policy = MisfirePolicy::run_all(Duration::from_secs(24 * 3600), 2);
    assert_eq!(
        downtime(policy, 5),
        vec![
            (1, 60, Succeeded),
            (2, 120, Succeeded),
            (3, 421, Skipped),
            (4, 421, Skipped),
            (5, 421, Skipped),
            (6, 421, Succeeded),
            (7, 421, Succeeded),
            (8, 480, Succeeded),
        ]
    );
}

#[test]
fn misfire_run_all_skips_fires_outside_its_window() {
    // Missed 3,4,5 at restart 5:01; a 90 min window keeps only 4 (at 4:00) and 5.
    let policy = MisfirePolicy::run_all(Duration::from_secs(90 * 60), 10);
    let rows = downtime(policy, 3);
    assert_eq!(&rows[2..5], &[(3, 301, Skipped), (4, 301, Succeeded), (5, 301, Succeeded)]);
}

#[test]
fn a_fire_late_within_grace_runs_normally() {
    let mut w = World::local_with(seeded);
    let job = || {
        JobConfig::new("j", works(1))
            .schedule("0 * * * *")
            .misfire(MisfirePolicy::skip().grace(Duration::from_secs(300)))
    };
    w.sched.register(job()).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(3600 + 10));
    w.stop(GRACE);
    // Down from 1:00:10 to 2:04: the 2:00 fire is 4 min late, within the 5 min grace.
    w.rt.advance(Duration::from_secs(3600 + 230));
    w.restart(seeded);
    w.sched.register(job()).unwrap();
    w.start();
    // The driver's first round fires it.
    w.rt.advance(Duration::from_secs(1));
    w.stop(GRACE);
    assert_eq!(w.timeline("j"), vec![(3600, 3600, Succeeded), (7200, 7440, Succeeded)]);
}

/// Fires found within the grace after a restart run as on time: each goes
/// through the overlap policy (here `skip`: the first runs, the rest meet it
/// running), where they had all queued and run one after another.
#[test]
fn fires_within_the_grace_after_a_restart_go_through_the_overlap_policy() {
    let mut w = World::local_with(seeded);
    let job = |overlap| {
        JobConfig::new("j", works(1))
            .schedule("@every 10s")
            .overlap(overlap)
            .misfire(MisfirePolicy::skip().grace(Duration::from_secs(300)))
    };
    w.sched.register(job(OverlapPolicy::Skip)).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(12));
    w.stop(GRACE);
    // Down from 0:12 to 0:45: the fires at 20, 30 and 40 are within the grace.
    w.rt.advance(Duration::from_secs(33));
    w.restart(seeded);
    w.sched.register(job(OverlapPolicy::Skip)).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(16));
    w.stop(GRACE);
    assert_eq!(
        w.timeline("j"),
        vec![
            (10, 10, Succeeded),
            (20, 45, Succeeded),
            (30, 45, Skipped),
            (40, 45, Skipped),
            (50, 50, Succeeded),
            (60, 60, Succeeded),
        ]
    );
}

#[test]
fn run_once_after_a_restart_marks_the_dead_instances_run_abandoned() {
    let mut w = World::local_with(seeded);
    // A run left `running` by a process that died (no heartbeat since).
    let dead = mscribe_scheduler::ExecutionEvent::Started(mscribe_scheduler::AttemptStart {
        job_id: "j".into(),
        execution_id: mscribe_scheduler::ExecutionId::from_u128(1),
        attempt: 1,
        scheduled_at: w.t0,
        started_at: w.t0,
        instance_id: "dead-instance".into(),
        kind: mscribe_scheduler::FireKind::Schedule,
        fence: None,
    });
    w.rt.local().block_on(mscribe_scheduler::ExecutionStore::write(&*w.store, &[dead])).unwrap();
    w.rt.advance(Duration::from_secs(3 * 3600 + 60));
    let log = Arc::new(mscribe_scheduler::sim::EventLog::new(Arc::new(w.rt.clock())));
    w.restart(|b| seeded(b).observer(log.clone()));
    w.sched.register(JobConfig::new("j", works(1)).schedule("0 * * * *")).unwrap();
    w.start();
    w.stop(GRACE);
    // Observers (metrics) see the abandoned attempt end.
    assert!(log.events().iter().any(|e| matches!(&e.event,
        mscribe_scheduler::ExecutionEvent::Finished(f) if f.status == ExecutionStatus::Abandoned)));
    assert_eq!(
        w.timeline("j"),
        vec![
            (0, 0, ExecutionStatus::Abandoned),
            (3600, 10860, Skipped),
            (7200, 10860, Skipped),
            (10800, 10860, Succeeded),
        ]
    );
}

#[test]
fn a_restart_under_the_same_instance_id_abandons_the_runs_its_earlier_process_left() {
    // An application that names its instance (a host name) and restarts at
    // once: the dead process's heartbeat is still fresh, under the id the
    // new process uses. Its run can only be the dead process's.
    let mut w = World::local_with(seeded);
    let dead = mscribe_scheduler::ExecutionEvent::Started(mscribe_scheduler::AttemptStart {
        job_id: "j".into(),
        execution_id: mscribe_scheduler::ExecutionId::from_u128(1),
        attempt: 1,
        scheduled_at: w.t0,
        started_at: w.t0,
        instance_id: "host-a".into(),
        kind: mscribe_scheduler::FireKind::Manual,
        fence: None,
    });
    let store = w.store.clone();
    let t0 = w.t0;
    w.rt.local()
        .block_on(async move {
            use mscribe_scheduler::ExecutionStore;
            store.write(&[dead]).await?;
            store.heartbeat("host-a", t0 + chrono::Duration::seconds(5)).await
        })
        .unwrap();
    w.rt.advance(Duration::from_secs(6));
    w.restart(|b| seeded(b).instance_id("host-a"));
    w.sched.register(JobConfig::new("j", works(1))).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(600));
    w.stop(GRACE);
    let rows = w.rows("j");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].status, ExecutionStatus::Abandoned, "{rows:?}");
    assert_eq!(rows[0].completed_at, Some(w.secs(6)));
}

#[test]
fn a_restart_after_a_backfill_of_old_fires_records_no_missed_fires() {
    // Backfill rows are no scheduled fire: misfire planning at the restart
    // starts from the last scheduled fire only (none here), so the fires
    // between the backfilled ones and the restart were never missed.
    let mut w = World::local_with(seeded);
    let policy = MisfirePolicy::run_all(Duration::from_secs(24 * 3600), 3);
    let job = || JobConfig::new("j", works(1)).schedule("0 * * * *").misfire(policy);
    w.sched.register(job()).unwrap();
    w.start();
    let t0 = w.t0;
    let h = move |hours: i64| t0 + chrono::Duration::hours(hours);
    let req = mscribe_scheduler::BackfillRequest {
        from: h(-24),
        to: h(-19),
        dry_run: false,
        force: false,
        concurrency: 2,
    };
    let s = w.sched.clone();
    let report = w.rt.block_on(async move { s.backfill("j", &req).await }).unwrap();
    assert_eq!(report.runs.len(), 6);
    w.rt.advance(Duration::from_secs(60));
    w.stop(GRACE);
    w.rt.advance(Duration::from_secs(30 * 60));
    w.restart(seeded);
    w.sched.register(job()).unwrap();
    w.start();
    // The backfill's newest fire is still the job's last run, as stored.
    assert_eq!(w.sched.job("j").unwrap().last_run, Some(h(-19)));
    w.rt.advance(Duration::from_secs(3600));
    w.stop(GRACE);
    assert_eq!(w.sched.job("j").unwrap().last_run, Some(h(1)));
    let rows = w.timeline("j");
    assert!(rows.iter().all(|r| r.2 == Succeeded), "{rows:?}");
    let after: Vec<i64> = rows.iter().map(|r| r.0).filter(|s| *s >= -18 * 3600).collect();
    assert_eq!(after, vec![3600], "the 1:00 fire only: {rows:?}");
}

// ---- wall-clock jumps ---------------------------------------------------

#[test]
fn clock_jump_forward_applies_the_misfire_policy() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    s.register(JobConfig::new("j", works(1)).schedule("0 * * * *")).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(3600 + 60));
    // NTP or a suspend moves the wall clock 3 h ahead.
    w.rt.clock().set(w.secs(4 * 3600 + 120));
    w.rt.advance(Duration::from_secs(1));
    w.stop(GRACE);
    assert_eq!(
        w.timeline("j"),
        vec![
            (3600, 3600, Succeeded),
            (7200, 14520, Skipped),
            (10800, 14520, Skipped),
            (14400, 14520, Succeeded),
        ]
    );
}

#[test]
fn clock_jump_backward_never_fires_twice() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    s.register(JobConfig::new("j", works(1)).schedule("0 * * * *")).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(2 * 3600 + 60));
    // The clock steps back 90 minutes: 1:00 and 2:00 must not run again.
    w.rt.clock().set(w.secs(3600 - 30 * 60));
    w.rt.advance(Duration::from_secs(3 * 3600));
    w.stop(GRACE);
    let scheduled: Vec<i64> = w.timeline("j").iter().map(|r| r.0 / 3600).collect();
    assert_eq!(scheduled, vec![1, 2, 3]);
}

// ---- pause / resume ------------------------------------------------------

#[test]
fn pause_across_three_fires_then_resume_does_not_replay() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    s.register(JobConfig::new("j", works(1)).schedule("@every 10m")).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(11 * 60));
    s.pause("j").unwrap();
    assert_eq!(s.job("j").unwrap().next_run, None);
    w.rt.advance(Duration::from_secs(30 * 60)); // 20, 30, 40 pass while paused
    s.resume("j").unwrap();
    w.rt.advance(Duration::from_secs(10 * 60));
    w.stop(GRACE);
    // Resumed at 41 min: the next fire is the first after it on the grid
    // of the last one (10 min), at 50.
    assert_eq!(w.timeline("j"), vec![(600, 600, Succeeded), (3000, 3000, Succeeded)]);
}

#[test]
fn pause_then_resume_with_replay_runs_once_per_the_misfire_policy() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    s.register(
        JobConfig::new("j", works(1))
            .schedule("*/10 * * * *")
            .misfire(MisfirePolicy::run_once().replay_paused(true)),
    )
    .unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(11 * 60));
    s.pause("j").unwrap();
    w.rt.advance(Duration::from_secs(30 * 60));
    s.resume("j").unwrap();
    w.rt.advance(Duration::from_secs(5 * 60));
    w.stop(GRACE);
    assert_eq!(
        w.timeline("j"),
        vec![
            (600, 600, Succeeded),
            (1200, 2460, Skipped),
            (1800, 2460, Skipped),
            (2400, 2460, Succeeded),
        ]
    );
}

#[test]
fn an_interval_keeps_its_grid_through_a_pause_with_or_without_replay() {
    for replay in [false, true] {
        let w = World::local_with(seeded);
        let s = &w.sched;
        let policy = MisfirePolicy::run_all(Duration::from_secs(3600), 10).replay_paused(replay);
        s.register(JobConfig::new("j", works(1)).schedule("@every 1m").misfire(policy)).unwrap();
        w.start();
        w.rt.advance(Duration::from_secs(90));
        s.pause("j").unwrap();
        w.rt.advance(Duration::from_secs(200));
        s.resume("j").unwrap();
        assert_eq!(s.job("j").unwrap().next_run, Some(w.secs(300)), "replay {replay}");
        w.rt.advance(Duration::from_secs(80));
        w.stop(GRACE);
        let nominal: Vec<i64> = w.timeline("j").iter().map(|(at, ..)| *at).collect();
        let want: &[i64] = if replay { &[60, 120, 180, 240, 300, 360] } else { &[60, 300, 360] };
        assert_eq!(nominal, want, "replay {replay}: {:?}", w.timeline("j"));
    }
}

#[test]
fn unregister_while_running_cancels_and_frees_the_id() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    s.register(JobConfig::new("j", works(100)).schedule("@every 1m")).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(70));
    s.unregister("j").unwrap();
    w.rt.advance(Duration::from_secs(1));
    s.register(JobConfig::new("j", works(1)).schedule("@every 1m")).unwrap();
    w.rt.advance(Duration::from_secs(60));
    w.stop(GRACE);
    assert_eq!(w.timeline("j"), vec![(60, 60, Cancelled), (131, 131, Succeeded)]);
}

// ---- time zones ----------------------------------------------------------

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn fires_in_zone(expr: &str, tz: &str, from: DateTime<Utc>, hours: u64) -> Vec<DateTime<Utc>> {
    let w = World::on(Rt::at(Kind::Local, from), MemoryStore::new(), seeded);
    let s = &w.sched;
    s.register(JobConfig::new("j", works(0)).schedule(expr).timezone(tz)).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(hours * 3600));
    w.stop(GRACE);
    let mut v: Vec<_> = w.store.all().into_iter().map(|r| r.scheduled_at).collect();
    v.sort();
    v
}

#[test]
fn dst_gap_fires_once_at_the_end_of_the_gap() {
    // Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC).
    let fires = fires_in_zone("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0), 48);
    assert_eq!(fires, vec![utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]);
}

#[test]
fn dst_fold_fires_once_at_the_first_occurrence() {
    // Berlin falls back 2026-10-25 03:00 CEST -> 02:00 CET; 02:30 happens twice.
    let fires = fires_in_zone("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12, 0), 48);
    assert_eq!(fires, vec![utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]);
}

#[test]
fn dst_new_york_gap_and_fold_every_15_minutes() {
    // 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC): 02:00..02:45 collapse into 03:00.
    let spring = fires_in_zone("*/15 1-3 * * *", "America/New_York", utc(2026, 3, 8, 5, 50), 3);
    let local: Vec<String> = spring
        .iter()
        .map(|t| t.with_timezone(&chrono_tz::America::New_York).format("%H:%M%z").to_string())
        .collect();
    assert_eq!(
        local,
        [
            "01:00-0500",
            "01:15-0500",
            "01:30-0500",
            "01:45-0500",
            "03:00-0400",
            "03:15-0400",
            "03:30-0400",
            "03:45-0400"
        ]
    );
    // 2026-11-01 02:00 EDT -> 01:00 EST: 01:xx runs once, in EDT.
    let autumn = fires_in_zone("*/30 1 * * *", "America/New_York", utc(2026, 11, 1, 4, 50), 3);
    let local: Vec<String> = autumn
        .iter()
        .map(|t| t.with_timezone(&chrono_tz::America::New_York).format("%H:%M%z").to_string())
        .collect();
    assert_eq!(local, ["01:00-0400", "01:30-0400"]);
}

#[test]
fn intervals_ignore_time_zones_across_dst() {
    let fires = fires_in_zone("@every 1h", "Europe/Berlin", utc(2026, 3, 28, 23, 0), 4);
    let gaps: Vec<i64> = fires.windows(2).map(|w| (w[1] - w[0]).num_minutes()).collect();
    assert_eq!(gaps, vec![60, 60, 60]);
}

// ---- jitter -------------------------------------------------------------

#[test]
fn jitter_never_moves_a_fire_past_the_next_nominal_fire() {
    let w = World::local_with(seeded);
    let s = &w.sched;
    s.register(
        JobConfig::new("j", works(0)).schedule("@every 10s").jitter(Duration::from_secs(3600)),
    )
    .unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(1000));
    w.stop(GRACE);
    let rows = w.store.all();
    assert_eq!(rows.len(), 99, "one run per nominal fire");
    for r in &rows {
        let late = (r.started_at - r.scheduled_at).num_milliseconds();
        assert!((0..10_000).contains(&late), "fire {} started {late} ms late", r.scheduled_at);
    }
    let lates: std::collections::BTreeSet<i64> =
        rows.iter().map(|r| (r.started_at - r.scheduled_at).num_milliseconds()).collect();
    assert!(lates.len() > 50, "jitter is drawn per fire");
}
