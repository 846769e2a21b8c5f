//! Backfill and upcoming fires: a dry run lists exactly the fires of the
//! range with daylight-saving notes and what is recorded; a run makes each
//! one oldest first within the concurrency, recorded as `backfill`, leaving
//! recorded fires unless forced; bad requests are refused naming the field.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    BackfillRequest, Error, ExecutionStatus, FireKind, JobConfig, JobContext, JobScheduler,
    LocalRuntime, MAX_BACKFILL_FIRES, MemoryStore, VirtualClock,
};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct World {
    rt: LocalRuntime,
    store: Arc<MemoryStore>,
    sched: JobScheduler,
    starts: Arc<Mutex<Vec<DateTime<Utc>>>>,
    peak: Arc<AtomicUsize>,
}

/// Noon in Berlin every day, a run of 10 minutes; now is 2026-04-10.
fn world() -> World {
    let rt = LocalRuntime::with_clock(VirtualClock::new(t("2026-04-10T00:00:00Z")));
    let store = Arc::new(MemoryStore::unbounded());
    let sched = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store.clone())
        .build();
    let starts: Arc<Mutex<Vec<DateTime<Utc>>>> = Arc::default();
    let (live, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, l, p) = (starts.clone(), live.clone(), peak.clone());
    sched
        .register(
            JobConfig::new("noon", move |ctx: JobContext| {
                let (s, l, p) = (s.clone(), l.clone(), p.clone());
                async move {
                    s.lock().unwrap().push(ctx.scheduled_at);
                    let now = l.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    ctx.sleep(Duration::from_secs(600)).await;
                    l.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .schedule("0 12 * * *")
            .timezone("Europe/Berlin"),
        )
        .unwrap();
    sched.register(JobConfig::new("manual", |_ctx: JobContext| async {})).unwrap();
    rt.block_on(sched.start()).unwrap();
    World { rt, store, sched, starts, peak }
}

fn req(from: &str, to: &str) -> BackfillRequest {
    BackfillRequest { from: t(from), to: t(to), dry_run: false, force: false, concurrency: 2 }
}

#[test]
fn a_dry_run_lists_the_fires_of_the_range_with_a_daylight_saving_note() {
    let w = world();
    let r =
        BackfillRequest { dry_run: true, ..req("2026-03-27T00:00:00Z", "2026-03-31T00:00:00Z") };
    let report = w.rt.block_on(w.sched.backfill("noon", &r)).unwrap();
    let at: Vec<String> = report.fires.iter().map(|f| f.scheduled_at.to_rfc3339()).collect();
    assert_eq!(
        at,
        [
            "2026-03-27T11:00:00+00:00",
            "2026-03-28T11:00:00+00:00",
            "2026-03-29T10:00:00+00:00",
            "2026-03-30T10:00:00+00:00",
        ]
    );
    let notes: Vec<Option<&str>> = report.fires.iter().map(|f| f.dst_note.as_deref()).collect();
    assert_eq!(notes, [None, None, Some("UTC offset +01:00 -> +02:00 (Europe/Berlin)"), None]);
    assert_eq!(report.fires[2].local.as_deref(), Some("2026-03-29T12:00:00+02:00"));
    assert_eq!((report.to_run, report.already_recorded, report.runs.len()), (4, 0, 0));
    assert!(w.store.all().is_empty(), "a dry run records nothing");
}

#[test]
fn a_backfill_runs_each_fire_oldest_first_within_its_concurrency_and_skips_recorded_ones() {
    let w = world();
    let r = req("2026-03-01T00:00:00Z", "2026-03-06T23:59:59Z");
    let report = w.rt.block_on(w.sched.backfill("noon", &r)).unwrap();
    assert_eq!(report.runs.len(), 6);
    assert!(report.runs.iter().all(|r| r.status == ExecutionStatus::Succeeded), "{report:?}");
    let started = w.starts.lock().unwrap().clone();
    let mut sorted = started.clone();
    sorted.sort();
    assert_eq!(started, sorted, "oldest first");
    assert_eq!(w.peak.load(Ordering::SeqCst), 2, "two at a time");
    let rows = w.store.all();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r.kind == FireKind::Backfill), "{rows:#?}");
    // Again over a wider range: the six recorded fires are left.
    let again = w
        .rt
        .block_on(w.sched.backfill("noon", &req("2026-03-01T00:00:00Z", "2026-03-08T00:00:00Z")))
        .unwrap();
    assert_eq!((again.fires.len(), again.already_recorded, again.runs.len()), (7, 6, 1));
    // Forced, they run again.
    let forced =
        BackfillRequest { force: true, ..req("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z") };
    let forced = w.rt.block_on(w.sched.backfill("noon", &forced)).unwrap();
    assert_eq!(forced.runs.len(), 1);
}

#[test]
fn a_bad_backfill_is_refused_naming_the_field() {
    let w = world();
    let field = |r: &BackfillRequest, job: &str| match w.rt.block_on(w.sched.backfill(job, r)) {
        Err(Error::InvalidBackfill { field, reason, .. }) => (field, reason),
        other => panic!("{other:?}"),
    };
    let (f, why) = field(&req("2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z"), "noon");
    assert_eq!(f, "from");
    assert!(why.contains("2026-03-02 00:00:00 UTC is after"), "{why}");
    assert_eq!(field(&req("2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"), "noon").0, "to");
    let (f, why) = field(&req("1990-01-01T00:00:00Z", "2026-04-01T00:00:00Z"), "noon");
    assert_eq!(f, "range");
    assert!(why.contains(&MAX_BACKFILL_FIRES.to_string()), "{why}");
    assert_eq!(field(&req("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"), "manual").0, "schedule");
    let zero =
        BackfillRequest { concurrency: 0, ..req("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z") };
    assert_eq!(field(&zero, "noon").0, "concurrency");
    let err = w
        .rt
        .block_on(w.sched.backfill("nope", &req("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z")));
    assert!(matches!(err, Err(Error::UnknownJob(ref id)) if id == "nope"), "{err:?}");
}

#[test]
fn upcoming_lists_the_next_fires_with_the_autumn_change() {
    let rt = LocalRuntime::with_clock(VirtualClock::new(t("2026-10-23T00:00:00Z")));
    let sched = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner())).build();
    sched
        .register(
            JobConfig::new("noon", |_ctx: JobContext| async {})
                .schedule("0 12 * * *")
                .timezone("Europe/Berlin"),
        )
        .unwrap();
    rt.block_on(sched.start()).unwrap();
    let next = sched.upcoming("noon", 4).unwrap();
    let at: Vec<String> = next.iter().map(|f| f.scheduled_at.to_rfc3339()).collect();
    assert_eq!(
        at,
        [
            "2026-10-23T10:00:00+00:00",
            "2026-10-24T10:00:00+00:00",
            "2026-10-25T11:00:00+00:00",
            "2026-10-26T11:00:00+00:00",
        ]
    );
    assert_eq!(next[2].dst_note.as_deref(), Some("UTC offset +02:00 -> +01:00 (Europe/Berlin)"));
    assert_eq!(sched.upcoming("noon", 5000).unwrap().len(), mscribe_scheduler::MAX_UPCOMING_FIRES);
    assert!(matches!(sched.upcoming("nope", 1), Err(Error::UnknownJob(_))));
}
