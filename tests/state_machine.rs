//! State-machine test: random sequences of register, unregister, pause,
//! resume, trigger, failure toggles, time steps and wall-clock jumps
//! (forward past the misfire grace, and backward), checked after every step
//! against a simple reference model of what must have run.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mscribe_scheduler::{Clock, Error, ExecutionStatus, JobConfig, JobContext};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use support::{Kind, World};

#[derive(Debug, Clone)]
enum Op {
    Register {
        id: u8,
        interval: i64,
    },
    Unregister(u8),
    Pause(u8),
    Resume(u8),
    Trigger(u8),
    SetFail(u8, bool),
    Advance(i64),
    /// The wall clock jumps by this many seconds at once (either way).
    Jump(i64),
}

#[derive(Debug, Clone, PartialEq)]
struct MJob {
    interval: i64,
    next: Option<i64>,
    /// The last scheduled fire decided (run or skipped).
    last: Option<i64>,
}

/// The default misfire grace, in seconds.
const GRACE: i64 = 1;

#[derive(Debug, Clone, Default)]
struct Model {
    now: i64,
    jobs: BTreeMap<u8, MJob>,
    /// Per id: (records, failed records).
    counts: BTreeMap<u8, (u64, u64)>,
    fail: BTreeMap<u8, bool>,
    /// Whether the last operation must fail.
    expect_err: bool,
}

impl Model {
    fn count(&mut self, id: u8) {
        let failing = self.fail.get(&id).copied().unwrap_or(false);
        let c = self.counts.entry(id).or_default();
        c.0 += 1;
        if failing {
            c.1 += 1;
        }
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::default()).boxed()
    }

    fn transitions(_state: &Model) -> BoxedStrategy<Op> {
        let id = 0u8..4;
        prop_oneof![
            2 => (id.clone(), 1i64..120).prop_map(|(id, interval)| Op::Register { id, interval }),
            1 => id.clone().prop_map(Op::Unregister),
            1 => id.clone().prop_map(Op::Pause),
            1 => id.clone().prop_map(Op::Resume),
            1 => id.clone().prop_map(Op::Trigger),
            1 => (id, any::<bool>()).prop_map(|(i, f)| Op::SetFail(i, f)),
            3 => (0i64..400).prop_map(Op::Advance),
            1 => (-400i64..400).prop_map(Op::Jump),
        ]
        .boxed()
    }

    fn apply(mut s: Model, op: &Op) -> Model {
        s.expect_err = false;
        let now = s.now;
        match *op {
            Op::Register { id, interval } => match s.jobs.entry(id) {
                std::collections::btree_map::Entry::Occupied(_) => s.expect_err = true,
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(MJob { interval, next: Some(now + interval), last: None });
                }
            },
            Op::Unregister(id) => s.expect_err = s.jobs.remove(&id).is_none(),
            Op::Pause(id) => match s.jobs.get_mut(&id) {
                Some(j) => j.next = None,
                None => s.expect_err = true,
            },
            // No fire at or before the last one, whatever the clock did;
            // the next on the grid of the last fire.
            Op::Resume(id) => match s.jobs.get_mut(&id) {
                Some(j) if j.next.is_none() => {
                    j.next = Some(match j.last {
                        Some(l) => l + ((now.max(l) - l) / j.interval + 1) * j.interval,
                        None => now + j.interval,
                    })
                }
                Some(_) => {}
                None => s.expect_err = true,
            },
            Op::Trigger(id) => {
                if s.jobs.contains_key(&id) {
                    s.count(id);
                } else {
                    s.expect_err = true;
                }
            }
            Op::SetFail(id, f) => {
                s.fail.insert(id, f);
            }
            Op::Advance(d) => {
                let end = now + d;
                let ids: Vec<u8> = s.jobs.keys().copied().collect();
                for id in ids {
                    loop {
                        let j = s.jobs.get_mut(&id).expect("job");
                        match j.next {
                            Some(t) if t <= end => {
                                j.next = Some(t + j.interval);
                                j.last = Some(t);
                                s.count(id);
                            }
                            _ => break,
                        }
                    }
                }
                s.now = end;
            }
            Op::Jump(d) => {
                let end = now + d;
                let ids: Vec<u8> = s.jobs.keys().copied().collect();
                for id in ids {
                    let j = s.jobs.get_mut(&id).expect("job");
                    let Some(first) = j.next.filter(|t| *t <= end) else { continue };
                    let fires: Vec<i64> =
                        (0..).map(|k| first + k * j.interval).take_while(|t| *t <= end).collect();
                    // Within the grace every fire is due late, at the same
                    // instant: the first runs, and the others meet it running
                    // (the default overlap policy skips them). Past it the
                    // default misfire policy (run once) skips the missed fires
                    // and runs the latest, unless a fire is within the grace.
                    let on_time: Vec<i64> =
                        fires.iter().copied().filter(|t| *t >= end - GRACE).collect();
                    let runs: Vec<i64> = if end - first <= GRACE {
                        vec![first]
                    } else if let Some(t) = on_time.first() {
                        vec![*t]
                    } else {
                        vec![*fires.last().expect("one fire")]
                    };
                    j.last = fires.last().copied();
                    // The grid goes on from the last fire, late or missed.
                    j.next = Some(fires.last().expect("one fire") + j.interval);
                    for t in fires {
                        if runs.contains(&t) {
                            s.count(id);
                        } else {
                            s.counts.entry(id).or_default().0 += 1;
                        }
                    }
                }
                s.now = end;
            }
        }
        s
    }
}

struct Sut {
    w: World,
    fail: Arc<Mutex<HashMap<u8, bool>>>,
}

struct SchedulerMachine;

impl StateMachineTest for SchedulerMachine {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(_: &Model) -> Sut {
        // Its store is unbounded: the invariants count every record of every job.
        let w = World::with(Kind::Local, |b| b.seed(11));
        w.start();
        Sut { w, fail: Arc::default() }
    }

    fn apply(sut: Sut, model: &Model, op: Op) -> Sut {
        let name = |id: u8| format!("job-{id}");
        let result: Result<(), Error> = match op {
            Op::Register { id, interval } => {
                let fail = sut.fail.clone();
                let handler = move |_ctx: JobContext| {
                    let failing = fail.lock().unwrap().get(&id).copied().unwrap_or(false);
                    async move { if failing { Err("told to fail") } else { Ok(()) } }
                };
                sut.w.sched.register(
                    JobConfig::new(name(id), handler)
                        .schedule(Duration::from_secs(interval as u64)),
                )
            }
            Op::Unregister(id) => sut.w.sched.unregister(&name(id)),
            Op::Pause(id) => sut.w.sched.pause(&name(id)),
            Op::Resume(id) => sut.w.sched.resume(&name(id)),
            Op::Trigger(id) => sut.w.sched.trigger(&name(id)).map(|_| ()),
            Op::SetFail(id, f) => {
                sut.fail.lock().unwrap().insert(id, f);
                Ok(())
            }
            Op::Advance(d) => {
                sut.w.rt.advance(Duration::from_secs(d as u64));
                Ok(())
            }
            Op::Jump(d) => {
                let clock = sut.w.rt.clock();
                clock.set(clock.now() + chrono::Duration::seconds(d));
                Ok(())
            }
        };
        assert_eq!(result.is_err(), model.expect_err, "{op:?} gave {result:?}");
        sut.w.rt.settle();
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        assert_eq!(sut.w.rt.clock().now(), sut.w.t0 + chrono::Duration::seconds(model.now));
        let mut got: BTreeMap<u8, (u64, u64)> = BTreeMap::new();
        for r in sut.w.store.all() {
            let id: u8 = r.job_id.trim_start_matches("job-").parse().unwrap();
            let c = got.entry(id).or_default();
            c.0 += 1;
            assert_ne!(r.status, ExecutionStatus::Running, "instant handlers never stay running");
            if r.status == ExecutionStatus::Failed {
                c.1 += 1;
            }
            assert!(r.status != ExecutionStatus::Skipped || r.attempt == 0);
        }
        let want: BTreeMap<u8, (u64, u64)> =
            model.counts.iter().filter(|(_, c)| c.0 > 0).map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, want, "records per job (all, failed)");
        for (id, j) in &model.jobs {
            let info = sut.w.sched.job(&format!("job-{id}")).expect("registered");
            let next = j.next.map(|s| sut.w.t0 + chrono::Duration::seconds(s));
            assert_eq!(info.next_run, next, "next run of job-{id}");
            assert_eq!(info.paused, j.next.is_none());
        }
        assert_eq!(sut.w.sched.jobs().len(), model.jobs.len());
    }

    fn teardown(sut: Sut, _model: Model) {
        let report = sut.w.stop(Duration::from_secs(1));
        assert_eq!(report.dropped, 0);
        assert!(sut.w.store.all().iter().all(|r| r.status != ExecutionStatus::Running));
    }
}

prop_state_machine! {
    // 512 cases by default, enough to find a pause, a backward jump and a
    // resume that replays a fire within a few hundred; PROPTEST_CASES
    // overrides (e.g. 5000 for a long run).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]
    #[test]
    fn scheduler_matches_the_reference_model(sequential 1..60 => SchedulerMachine);
}
