//! Tests of the memory store: its compact rows answer every query as the
//! plain store they replaced (kept here as the model) does.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use proptest::prelude::*;

use super::*;
use crate::failure::ErrorKind;
use crate::store::{
    AttemptEnd, AttemptStart, ClaimOutcome, ExecutionStatus, FireClaim, FireKind, HistoryPosition,
    SkippedFire, duration_ms,
};

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

#[test]
fn prune_forgets_instances_long_silent_without_a_running_row() {
    let store = MemoryStore::new();
    block_on(async {
        store.heartbeat("gone", t(0)).await.unwrap();
        store.heartbeat("busy", t(0)).await.unwrap();
        store.heartbeat("fresh", t(1000)).await.unwrap();
        let start = AttemptStart {
            job_id: Arc::from("j"),
            execution_id: ExecutionId(1),
            attempt: 1,
            scheduled_at: t(0),
            started_at: t(0),
            instance_id: Arc::from("busy"),
            kind: crate::store::FireKind::Schedule,
            fence: None,
        };
        store.write(&[ExecutionEvent::Started(start)]).await.unwrap();
        let policy = PrunePolicy { older_than: t(500), failures_older_than: None };
        store.prune(policy).await.unwrap();
    });
    let g = store.rows.lock().unwrap();
    let mut left: Vec<&str> = g.heartbeats.keys().map(String::as_str).collect();
    left.sort_unstable();
    assert_eq!(left, ["busy", "fresh"]);
}

#[test]
fn a_row_stays_small() {
    // The row without its ids' strings and rare fields; only a running
    // row has an index entry besides.
    assert!(std::mem::size_of::<rows::Row>() <= 104, "{}", std::mem::size_of::<rows::Row>());
    assert_eq!(std::mem::size_of::<Option<rows::Row>>(), std::mem::size_of::<rows::Row>());
}

#[test]
fn rows_stay_with_their_jobs_whatever_order_the_jobs_write_in() {
    // The store guesses each row's job from the last row's (the next job
    // in the last round's order); rounds in that order, in another order,
    // repeated jobs and a job's new `Arc` must all land on the right job.
    let store = MemoryStore::new();
    let instance: Arc<str> = Arc::from("i");
    let mut arcs: Vec<Arc<str>> = ["a", "b", "c"].into_iter().map(Arc::from).collect();
    let mut run = 0u128;
    let mut written: HashMap<&str, Vec<ExecutionId>> = HashMap::new();
    for (round, order) in [[0, 1, 2], [0, 1, 2], [2, 1, 0], [1, 1, 0], [0, 2, 1]].iter().enumerate()
    {
        if round == 3 {
            arcs[1] = Arc::from("b");
        }
        let events: Vec<ExecutionEvent> = order
            .iter()
            .map(|&j| {
                run += 1;
                written.entry(["a", "b", "c"][j]).or_default().push(ExecutionId(run));
                ExecutionEvent::Finished(AttemptEnd::succeeded(
                    arcs[j].clone(),
                    instance.clone(),
                    ExecutionId(run),
                    t(round as i64),
                ))
            })
            .collect();
        block_on(store.write(&events)).unwrap();
    }
    for job in ["a", "b", "c"] {
        let mut got: Vec<ExecutionId> = block_on(store.history(&HistoryQuery::new(job, 100)))
            .unwrap()
            .into_iter()
            .map(|r| r.execution_id)
            .collect();
        got.sort_unstable();
        assert_eq!(got, written[job], "{job}");
    }
}

/// A start of run `run` of instance `high` (the run id's high half), at
/// second `at`.
fn start_of(job: &Arc<str>, high: u64, run: u64, at: i64) -> ExecutionEvent {
    ExecutionEvent::Started(AttemptStart {
        job_id: job.clone(),
        execution_id: ExecutionId((u128::from(high) << 64) | u128::from(run)),
        attempt: 1,
        scheduled_at: t(at),
        started_at: t(at),
        instance_id: Arc::from(format!("i{high}")),
        kind: FireKind::Schedule,
        fence: None,
    })
}

/// The successful end of what [`start_of`] started.
fn end_of(job: &Arc<str>, high: u64, run: u64, at: i64) -> ExecutionEvent {
    let id = ExecutionId((u128::from(high) << 64) | u128::from(run));
    let instance = Arc::from(format!("i{high}"));
    ExecutionEvent::Finished(AttemptEnd::succeeded(job.clone(), instance, id, t(at)))
}

/// The (run, status) of a job's rows, in the order they were written.
fn runs_of(store: &MemoryStore, job: &str) -> Vec<(u64, ExecutionStatus)> {
    let rows = store.all().into_iter().filter(|r| r.job_id == job);
    rows.map(|r| (r.execution_id.0 as u64, r.status)).collect()
}

#[test]
fn attempts_past_the_largest_storable_are_refused_and_a_taken_over_run_goes_on() {
    // As the SQL stores: an attempt past `i32::MAX` is refused with its
    // value named, the batch's other events are written, and a run taken
    // over continues at one more than its last stored attempt (an attempt
    // of `u32::MAX` had made that addition overflow under the lock).
    let store = MemoryStore::new();
    let job: Arc<str> = Arc::from("j");
    let claim = FireClaim {
        job_id: job.clone(),
        scheduled_at: t(0),
        execution_id: ExecutionId(9),
        max_running: None,
        kind: FireKind::Schedule,
    };
    let won = block_on(store.claim_fires("i1", &[claim], t(0), Duration::from_secs(1))).unwrap();
    let ClaimOutcome::Won { fence } = won[0] else { panic!("{won:?}") };
    let with_attempt = |id: u128, attempt: u32| {
        let mut ev = start_of(&job, 0, id as u64, 0);
        if let ExecutionEvent::Started(s) = &mut ev {
            s.attempt = attempt;
            s.instance_id = Arc::from("i1");
            s.fence = (id == 9).then_some(fence);
        }
        ev
    };
    let events = [with_attempt(1, 1), with_attempt(9, u32::MAX), with_attempt(2, i32::MAX as u32)];
    let err = block_on(store.write(&events)).unwrap_err();
    assert!(!err.is_transient(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("1 of 3 events cannot be stored"), "{msg}");
    assert!(msg.contains("attempt 4294967295 exceeds the largest storable 2147483647"), "{msg}");
    let mut kept: Vec<(u128, u32)> =
        store.all().iter().map(|r| (r.execution_id.0, r.attempt)).collect();
    kept.sort_unstable();
    assert_eq!(kept, [(1, 1), (2, i32::MAX as u32)]);
    // The claimed run's last storable attempt, then its takeover.
    block_on(store.write(&[with_attempt(9, i32::MAX as u32)])).unwrap();
    let expired = block_on(store.expired_leases(t(100), 10)).unwrap();
    let taken = block_on(store.retake_fire(
        "i2",
        &expired[0],
        ExecutionId(10),
        t(100),
        Duration::from_secs(1),
        true,
    ))
    .unwrap()
    .expect("taken over");
    assert_eq!(taken.next_attempt, i32::MAX as u32 + 1);
    assert!(taken.had_rows);
}

#[test]
fn events_written_again_or_out_of_order_find_their_rows() {
    // Only running rows are indexed: a key under the job's tops that is
    // not running (a duplicate, or a run's row written after a later
    // run's) must still find its row, for every bound.
    for store in [MemoryStore::unbounded(), MemoryStore::with_rows_per_job(4.try_into().unwrap())] {
        let job: Arc<str> = Arc::from("a");
        let events = [
            end_of(&job, 1, 1, 1),
            end_of(&job, 1, 2, 2),
            start_of(&job, 1, 4, 4),
            // Run 3's start after run 4's: under the top, not yet held.
            start_of(&job, 1, 3, 3),
            end_of(&job, 1, 3, 5),
            // Written again: the newest row, an older one, a running one.
            end_of(&job, 1, 3, 5),
            end_of(&job, 1, 2, 2),
            start_of(&job, 1, 4, 4),
            end_of(&job, 1, 4, 6),
        ];
        block_on(store.write(&events)).unwrap();
        let got = runs_of(&store, "a");
        assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 4, 3]);
        assert!(got.iter().all(|r| r.1 == ExecutionStatus::Succeeded), "{got:?}");
        // The end of a row the bound dropped is a new row again.
        block_on(store.write(&[end_of(&job, 1, 5, 7), end_of(&job, 1, 1, 1)])).unwrap();
        let runs: Vec<u64> = runs_of(&store, "a").iter().map(|r| r.0).collect();
        match store.rows_per_job() {
            None => assert_eq!(runs, [1, 2, 4, 3, 5]),
            Some(_) => assert_eq!(runs, [4, 3, 5, 1]),
        }
    }
}

#[test]
fn a_job_written_by_two_instances_keeps_one_row_per_attempt() {
    // Two schedulers sharing one store number their runs each from 1,
    // under their own high halves: each half has its own top.
    let store = MemoryStore::unbounded();
    let job: Arc<str> = Arc::from("shared");
    let mut events = Vec::new();
    for run in 1..=3 {
        for high in [7, 9] {
            events.push(start_of(&job, high, run, run as i64));
        }
        for high in [9, 7] {
            events.push(end_of(&job, high, run, run as i64));
        }
    }
    // Everything again, in one write and in another order.
    let again: Vec<ExecutionEvent> = events.iter().rev().cloned().collect();
    block_on(store.write(&events)).unwrap();
    block_on(store.write(&again)).unwrap();
    assert_eq!(store.len(), 6);
    let rows = block_on(store.history(&HistoryQuery::new("shared", 100))).unwrap();
    assert!(rows.iter().all(|r| r.status == ExecutionStatus::Succeeded), "{rows:?}");
    let mut keys: Vec<(u64, u64)> =
        rows.iter().map(|r| ((r.execution_id.0 >> 64) as u64, r.execution_id.0 as u64)).collect();
    keys.sort_unstable();
    assert_eq!(keys, [(7, 1), (7, 2), (7, 3), (9, 1), (9, 2), (9, 3)]);
}

/// The store before its rows were compact: records in reusable places, a
/// queue of places per job, a map by (execution id, attempt). The model the
/// compact rows must answer as.
#[derive(Debug, Default)]
struct Model {
    rows: Vec<Option<(u64, ExecutionRecord)>>,
    free: Vec<usize>,
    next: u64,
    jobs: HashMap<String, VecDeque<usize>>,
    by_key: HashMap<(ExecutionId, u32), usize>,
    running: BTreeSet<usize>,
    per_job: Option<usize>,
}

impl Model {
    fn get(&self, i: usize) -> Option<&ExecutionRecord> {
        self.rows.get(i).and_then(|r| r.as_ref()).map(|(_, r)| r)
    }

    fn write(&mut self, ev: &ExecutionEvent) {
        match ev {
            ExecutionEvent::Started(s) => self.upsert(ExecutionRecord::from_start(s)),
            ExecutionEvent::Skipped(s) => self.upsert(ExecutionRecord::from_skip(s)),
            ExecutionEvent::Finished(e) => match self.by_key.get(&(e.execution_id, e.attempt)) {
                Some(&i) => self.end(i, e),
                None => self.upsert(ExecutionRecord::from_end(e)),
            },
        }
    }

    fn upsert(&mut self, rec: ExecutionRecord) {
        let key = (rec.execution_id, rec.attempt);
        if self.by_key.contains_key(&key) {
            return;
        }
        let i = self.free.pop().unwrap_or(self.rows.len());
        if rec.status == ExecutionStatus::Running {
            self.running.insert(i);
        }
        self.by_key.insert(key, i);
        let job = self.jobs.entry(rec.job_id.clone()).or_default();
        job.push_back(i);
        let row = Some((self.next, rec));
        self.next += 1;
        if i == self.rows.len() {
            self.rows.push(row);
        } else {
            self.rows[i] = row;
        }
        if let Some(max) = self.per_job {
            model_trim(job, max, &mut self.rows, &mut self.by_key, &mut self.free);
        }
    }

    fn end(&mut self, i: usize, e: &AttemptEnd) {
        let Some((_, r)) = self.rows.get_mut(i).and_then(|r| r.as_mut()) else { return };
        r.apply_end(e);
        self.running.remove(&i);
        if let (Some(max), Some(job)) = (self.per_job, self.jobs.get_mut(&*e.job_id)) {
            model_trim(job, max, &mut self.rows, &mut self.by_key, &mut self.free);
        }
    }

    fn of_job<'a>(&'a self, job_id: &str) -> impl Iterator<Item = &'a ExecutionRecord> + 'a {
        self.jobs.get(job_id).into_iter().flatten().filter_map(|i| self.get(*i))
    }

    fn reindex(&mut self) {
        let mut live: Vec<(u64, usize)> = Vec::new();
        self.free.clear();
        for (i, row) in self.rows.iter().enumerate() {
            match row {
                Some((n, _)) => live.push((*n, i)),
                None => self.free.push(i),
            }
        }
        live.sort_unstable();
        self.by_key.clear();
        self.running.clear();
        self.jobs.clear();
        for (_, i) in live {
            let Some((_, r)) = &self.rows[i] else { continue };
            self.by_key.insert((r.execution_id, r.attempt), i);
            if r.status == ExecutionStatus::Running {
                self.running.insert(i);
            }
            self.jobs.entry(r.job_id.clone()).or_default().push_back(i);
        }
    }

    fn all(&self) -> Vec<ExecutionRecord> {
        let mut rows: Vec<&(u64, ExecutionRecord)> = self.rows.iter().flatten().collect();
        rows.sort_unstable_by_key(|(n, _)| *n);
        rows.into_iter().map(|(_, r)| r.clone()).collect()
    }

    fn history(&self, q: &HistoryQuery) -> Vec<ExecutionRecord> {
        let mut out: Vec<ExecutionRecord> =
            self.of_job(&q.job_id).filter(|r| q.matches(r)).cloned().collect();
        out.sort_by_key(|r| std::cmp::Reverse(HistoryPosition::of(r)));
        out.truncate(q.limit);
        out
    }

    fn attempts(&self, job_id: &str, id: ExecutionId) -> Vec<ExecutionRecord> {
        let mut out: Vec<ExecutionRecord> =
            self.of_job(job_id).filter(|r| r.execution_id == id).cloned().collect();
        out.sort_by_key(|r| r.attempt);
        out
    }

    fn recorded_fires(
        &self,
        job_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut out: Vec<DateTime<Utc>> = self
            .of_job(job_id)
            .filter(|r| r.status.is_final() && r.scheduled_at >= from && r.scheduled_at <= to)
            .map(|r| r.scheduled_at)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn mark_abandoned(
        &mut self,
        own: &str,
        heartbeats: &HashMap<String, DateTime<Utc>>,
        now: DateTime<Utc>,
        cutoff: DateTime<Utc>,
    ) -> Vec<ExecutionRecord> {
        let mut changed = Vec::new();
        let running: Vec<usize> = self.running.iter().copied().collect();
        for i in running {
            let Some((_, r)) = self.rows.get_mut(i).and_then(|r| r.as_mut()) else { continue };
            let alive = r.instance_id == own
                || heartbeats.get(&r.instance_id).is_some_and(|hb| *hb >= cutoff);
            if !alive {
                r.status = ExecutionStatus::Abandoned;
                r.completed_at = Some(now);
                r.duration_ms =
                    Some(duration_ms((now - r.started_at).to_std().unwrap_or_default()));
                r.error = Some(format!("instance {} stopped while the attempt ran", r.instance_id));
                changed.push(r.clone());
                self.running.remove(&i);
            }
        }
        changed
    }

    fn prune(&mut self, p: PrunePolicy) -> u64 {
        let pruned = |r: &ExecutionRecord| {
            let cutoff = match p.failures_older_than {
                Some(f) if r.status.is_failure() => f,
                _ => p.older_than,
            };
            r.status.is_final() && r.started_at < cutoff
        };
        let mut removed = 0;
        for row in &mut self.rows {
            if row.as_ref().is_some_and(|(_, r)| pruned(r)) {
                *row = None;
                removed += 1;
            }
        }
        self.reindex();
        removed
    }

    fn retake(
        &mut self,
        old_id: ExecutionId,
        new_id: ExecutionId,
        now: DateTime<Utc>,
        error: &str,
    ) -> (u32, bool) {
        let old: Vec<(u32, usize)> = self
            .by_key
            .iter()
            .filter(|((id, _), _)| *id == old_id)
            .map(|((_, attempt), i)| (*attempt, *i))
            .collect();
        let mut last = 0;
        for (attempt, i) in &old {
            last = last.max(*attempt);
            self.by_key.remove(&(old_id, *attempt));
            self.by_key.insert((new_id, *attempt), *i);
            let Some((_, r)) = self.rows.get_mut(*i).and_then(|r| r.as_mut()) else { continue };
            r.execution_id = new_id;
            if r.status == ExecutionStatus::Running {
                r.status = ExecutionStatus::Abandoned;
                r.completed_at = Some(now);
                r.duration_ms =
                    Some(duration_ms((now - r.started_at).to_std().unwrap_or_default()));
                r.error = Some(error.to_owned());
                self.running.remove(i);
            }
        }
        (last, !old.is_empty())
    }
}

fn model_trim(
    job: &mut VecDeque<usize>,
    max: usize,
    rows: &mut [Option<(u64, ExecutionRecord)>],
    by_key: &mut HashMap<(ExecutionId, u32), usize>,
    free: &mut Vec<usize>,
) {
    while job.len() > max {
        let finished = |i: &usize| rows[*i].as_ref().is_some_and(|(_, r)| r.status.is_final());
        let Some(at) = job.iter().position(finished) else { return };
        let i = job.remove(at).expect("position is in range");
        if let Some((_, r)) = rows[i].take() {
            by_key.remove(&(r.execution_id, r.attempt));
            free.push(i);
        }
    }
}

const JOBS: [&str; 3] = ["a", "b", "c"];

thread_local! {
    /// One `Arc` per job and instance, as the scheduler's events share.
    static JOB_ARCS: [Arc<str>; 3] = JOBS.map(Arc::from);
    static INSTANCE_ARCS: [Arc<str>; 3] = INSTANCES.map(Arc::from);
}
const INSTANCES: [&str; 3] = ["i0", "i1", "i2"];

/// What the proptest does to both stores.
#[derive(Debug, Clone)]
enum Op {
    Write(Vec<ExecutionEvent>),
    Heartbeat(usize, i64),
    Abandon { own: usize, now: i64, stale: u64 },
    Prune { older_than: i64, failures: Option<i64> },
    Retake { job: usize, run: u128, now: i64 },
}

/// A run id of job `job`: runs of different jobs never share one.
fn run_id(job: usize, run: u128) -> ExecutionId {
    ExecutionId::from_u128(((job as u128) << 64) | run)
}

fn event() -> impl Strategy<Value = ExecutionEvent> {
    let end_status = prop::sample::select(vec![
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::TimedOut,
        ExecutionStatus::Cancelled,
        ExecutionStatus::RetriesExhausted,
    ]);
    (
        (0..JOBS.len(), 0..6u128, 1..4u32, 0..INSTANCES.len(), 0..50i64, 0..3i64),
        (
            0..3u8,
            end_status,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(1..4u64),
        ),
        (
            prop::option::of(prop::sample::select(vec![
                ErrorKind::Transient,
                ErrorKind::Permanent,
            ])),
            0..2000u64,
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (job, run, attempt, inst, at, late),
                (which, status, error, result, metrics, fence),
                (error_kind, ms, shared),
            )| {
                // The scheduler's events share their job's and instance's
                // `Arc`; decoded ones have their own.
                let job_id: Arc<str> =
                    if shared { JOB_ARCS.with(|a| a[job].clone()) } else { Arc::from(JOBS[job]) };
                let instance_id: Arc<str> = if shared {
                    INSTANCE_ARCS.with(|a| a[inst].clone())
                } else {
                    Arc::from(INSTANCES[inst])
                };
                let execution_id = run_id(job, run);
                let kind = FireKind::ALL[(run % 3) as usize];
                match which {
                    0 => ExecutionEvent::Started(AttemptStart {
                        job_id,
                        execution_id,
                        attempt,
                        scheduled_at: t(at),
                        started_at: t(at + late),
                        instance_id,
                        kind,
                        fence,
                    }),
                    1 => ExecutionEvent::Finished(AttemptEnd {
                        job_id,
                        execution_id,
                        attempt,
                        scheduled_at: t(at),
                        started_at: t(at + late),
                        instance_id,
                        status,
                        completed_at: t(at + late + 2),
                        duration: Duration::from_millis(ms),
                        error: error.then(|| format!("boom {run}")),
                        error_kind,
                        result: result.then(|| serde_json::json!({ "run": run as u64 })),
                        metrics: metrics.then(|| [("rows".to_owned(), ms as f64)].into()),
                        kind,
                        fence,
                        ends_run: true,
                    }),
                    _ => ExecutionEvent::Skipped(SkippedFire {
                        job_id,
                        execution_id,
                        scheduled_at: t(at),
                        decided_at: t(at + late),
                        reason: format!("skipped {run}"),
                        instance_id,
                        kind,
                        fence,
                    }),
                }
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(event(), 1..6).prop_map(Op::Write),
        1 => (0..INSTANCES.len(), 0..60i64).prop_map(|(i, at)| Op::Heartbeat(i, at)),
        1 => (0..INSTANCES.len(), 0..80i64, 0..40u64)
            .prop_map(|(own, now, stale)| Op::Abandon { own, now, stale }),
        1 => (0..60i64, prop::option::of(0..60i64))
            .prop_map(|(older_than, failures)| Op::Prune { older_than, failures }),
        1 => (0..JOBS.len(), 0..6u128, 0..80i64).prop_map(|(job, run, now)| Op::Retake { job, run, now }),
    ]
}

/// Every query both stores answer, for every job, run and a few windows.
fn same_answers(store: &MemoryStore, model: &Model) {
    assert_eq!(store.all(), model.all());
    assert_eq!(store.len(), model.all().len());
    let statuses = [None, Some(ExecutionStatus::Running), Some(ExecutionStatus::Succeeded)];
    for job in JOBS {
        for status in statuses {
            for limit in [1, 3, 100] {
                let mut q = HistoryQuery::new(job, limit);
                q.status = status;
                let page = block_on(store.history(&q)).unwrap();
                assert_eq!(page, model.history(&q), "{q:?}");
                // The next page, from the last row's position.
                if let Some(last) = page.last() {
                    let next = q.clone().before(HistoryPosition::of(last));
                    assert_eq!(block_on(store.history(&next)).unwrap(), model.history(&next));
                }
            }
        }
        let last = model.of_job(job).map(|r| r.scheduled_at).max();
        assert_eq!(block_on(store.last_fire(job)).unwrap(), last);
        let scheduled = model.of_job(job).filter(|r| r.kind == FireKind::Schedule);
        let want: HashMap<String, DateTime<Utc>> = scheduled
            .map(|r| r.scheduled_at)
            .max()
            .map(|t| (job.to_owned(), t))
            .into_iter()
            .collect();
        let ids = [job.to_owned()];
        assert_eq!(block_on(store.last_scheduled_fires(&ids)).unwrap(), want);
        for (from, to) in [(0, 60), (10, 20), (30, 29)] {
            assert_eq!(
                block_on(store.recorded_fires(job, t(from), t(to))).unwrap(),
                model.recorded_fires(job, t(from), t(to))
            );
        }
        for j in 0..JOBS.len() {
            for run in 0..6 {
                let id = run_id(j, run);
                assert_eq!(block_on(store.attempts(job, id)).unwrap(), model.attempts(job, id));
            }
        }
    }
}

fn check(per_job: Option<usize>, ops: Vec<Op>) {
    let store = MemoryStore::bounded(per_job);
    let mut model = Model { per_job, ..Model::default() };
    let mut heartbeats: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut next_run = 100u128;
    for op in ops {
        match op {
            Op::Write(events) => {
                // Past the leases, which are not under test: a fenced event
                // would be refused without a claim.
                let mut g = store.rows.lock().unwrap();
                for ev in &events {
                    match ev {
                        ExecutionEvent::Started(s) => g.rows.start(s),
                        ExecutionEvent::Skipped(s) => g.rows.skip(s),
                        ExecutionEvent::Finished(e) => g.rows.end(e),
                    }
                    model.write(ev);
                }
            }
            Op::Heartbeat(i, at) => {
                block_on(store.heartbeat(INSTANCES[i], t(at))).unwrap();
                heartbeats.insert(INSTANCES[i].to_owned(), t(at));
            }
            Op::Abandon { own, now, stale } => {
                let stale = Duration::from_secs(stale);
                let got = block_on(store.mark_abandoned(INSTANCES[own], t(now), stale)).unwrap();
                let cutoff = t(now) - chrono::Duration::from_std(stale).unwrap();
                assert_eq!(got, model.mark_abandoned(INSTANCES[own], &heartbeats, t(now), cutoff));
            }
            Op::Prune { older_than, failures } => {
                let p =
                    PrunePolicy { older_than: t(older_than), failures_older_than: failures.map(t) };
                assert_eq!(block_on(store.prune(p)).unwrap(), model.prune(p));
                // The store forgets heartbeats too; the model's copy follows
                // (checked by the test above, not here).
                let running: BTreeSet<String> = model
                    .running
                    .iter()
                    .filter_map(|i| model.get(*i))
                    .map(|r| r.instance_id.clone())
                    .collect();
                heartbeats.retain(|id, at| *at >= p.older_than || running.contains(id));
            }
            Op::Retake { job, run, now } => {
                let (old, new) = (run_id(job, run), run_id(job, next_run));
                next_run += 1;
                let got = store
                    .rows
                    .lock()
                    .unwrap()
                    .rows
                    .retake(old, new, t(now), || "retaken".to_owned());
                assert_eq!(got, model.retake(old, new, t(now), "retaken"));
            }
        }
        same_answers(&store, &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn compact_rows_answer_as_the_model_bounded(ops in prop::collection::vec(op(), 1..40)) {
        check(Some(3), ops);
    }

    #[test]
    fn compact_rows_answer_as_the_model_unbounded(ops in prop::collection::vec(op(), 1..40)) {
        check(None, ops);
    }
}

#[test]
fn the_default_last_scheduled_fires_leave_out_triggers_and_backfills() {
    let store = HistoryOnly(MemoryStore::new());
    let skip = |job: &str, id: u128, at: i64, kind: FireKind| {
        ExecutionEvent::Skipped(SkippedFire {
            job_id: Arc::from(job),
            execution_id: ExecutionId(id),
            scheduled_at: t(at),
            decided_at: t(at),
            reason: "overlap".to_owned(),
            instance_id: Arc::from("i1"),
            kind,
            fence: None,
        })
    };
    block_on(store.write(&[
        skip("a", 1, 10, FireKind::Schedule),
        skip("a", 2, 30, FireKind::Backfill),
        skip("a", 3, 20, FireKind::Manual),
        skip("b", 4, 40, FireKind::Manual),
    ]))
    .unwrap();
    let ids = ["a".to_owned(), "b".to_owned()];
    let got = block_on(store.last_scheduled_fires(&ids)).unwrap();
    assert_eq!(got, HashMap::from([("a".to_owned(), t(10))]));
    assert_eq!(block_on(store.last_fires(&ids)).unwrap().get("a"), Some(&t(30)));
}

/// A store that answers through the memory store's required methods only:
/// the trait's default methods at work.
#[derive(Debug)]
struct HistoryOnly(MemoryStore);

#[async_trait]
impl ExecutionStore for HistoryOnly {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        self.0.write(events).await
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        self.0.history(q).await
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.0.last_fire(job_id).await
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.0.heartbeat(instance_id, now).await
    }

    async fn mark_abandoned(
        &self,
        own_instance: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        self.0.mark_abandoned(own_instance, now, stale_after).await
    }

    async fn prune(&self, policy: PrunePolicy) -> StoreResult<u64> {
        self.0.prune(policy).await
    }
}
