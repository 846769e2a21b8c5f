//! The control plane across instances: two schedulers, each with its own
//! `ControlPlane` and store handle, on one SQLite file or one Postgres
//! database (a fresh `mscribe_ctl_<random>`, from
//! `MSCRIBE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; an unreachable server fails
//! the tests). The sync loops run on real time: the tests wait, bounded,
//! for what they expect, and print the propagation delays they measure.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mscribe_scheduler::{
    ExecutionStore, JobConfig, JobContext, JobScheduler, SystemClock, TokioSpawner, TriggerOutcome,
};
use mscribe_server::control::{
    CANCELLED, ControlError, ControlPlane, ControlSettings, NOT_RUNNING,
};
use mscribe_storage::sqlx::postgres::PgConnectOptions;
use mscribe_storage::sqlx::{self, Connection, PgConnection};
use mscribe_storage::{
    AuditAction, AuditQuery, ControlStore, NewTrigger, PostgresOptions, PostgresStore, Source,
    SqliteStore,
};

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Where the instances keep their state.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(Box<PgDb>),
}

/// A database dropped at the end, even after a failed assertion.
struct PgDb {
    admin: PgConnectOptions,
    name: String,
}

impl PgDb {
    async fn create() -> PgDb {
        let url = std::env::var("MSCRIBE_TEST_POSTGRES_URL")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_PG_URL.to_owned());
        let admin = PgConnectOptions::from_str(&url).expect("MSCRIBE_TEST_POSTGRES_URL");
        let mut c = PgConnection::connect_with(&admin)
            .await
            .unwrap_or_else(|e| panic!("these tests need Postgres at {url}: {e}"));
        let name = format!("mscribe_ctl_{:016x}", fastrand_u64());
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
        let _ = c.close().await;
        PgDb { admin, name }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut c) = PgConnection::connect_with(&admin).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(&drop).execute(&mut c).await;
                }
            });
        })
        .join();
    }
}

fn fastrand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).unwrap();
    u64::from_le_bytes(b)
}

impl Backend {
    async fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    async fn postgres() -> Backend {
        Backend::Postgres(Box::new(PgDb::create().await))
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    fn settings(&self) -> ControlSettings {
        let base = match self {
            Backend::Sqlite(_) => ControlSettings::sqlite(),
            Backend::Postgres(_) => ControlSettings::postgres(),
        };
        ControlSettings { cancel_expiry: Duration::from_secs(1), ..base }
    }

    /// A store handle of its own, as another process would have.
    async fn stores(
        &self,
    ) -> (Arc<dyn ExecutionStore>, Arc<dyn ControlStore>, Option<PostgresStore>) {
        match self {
            Backend::Sqlite(dir) => {
                let s = SqliteStore::open(dir.path().join("shared.db")).await.unwrap();
                (Arc::new(s.clone()), Arc::new(s), None)
            }
            Backend::Postgres(db) => {
                let opts = db.admin.clone().database(&db.name);
                let s = PostgresStore::connect_with(
                    PostgresOptions::from_connect_options(opts).max_connections(4),
                )
                .await
                .unwrap();
                (Arc::new(s.clone()), Arc::new(s.clone()), Some(s))
            }
        }
    }
}

/// How many runs each job had on one instance.
#[derive(Default)]
struct Counts {
    tick: AtomicUsize,
    shared: AtomicUsize,
    slow: AtomicUsize,
}

/// One instance: a scheduler with its jobs, started, and its plane.
struct Instance {
    scheduler: JobScheduler,
    control: ControlPlane,
    counts: Arc<Counts>,
}

/// The jobs of an instance: `tick` every 100 ms, `shared` trigger-only
/// (both instances run it), `slow` trigger-only and a minute long, `off`
/// registered paused when `off_disabled` (the configuration's `enabled =
/// false`), and `only-<name>` that no other instance runs.
async fn instance(backend: &Backend, name: &str, off_disabled: bool) -> Instance {
    let (exec, control_store, pg) = backend.stores().await;
    let scheduler = JobScheduler::builder(Arc::new(SystemClock), Arc::new(TokioSpawner::current()))
        .store(exec)
        .instance_id(name)
        .build();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let tick = JobConfig::new("tick", move |_ctx: JobContext| {
        c.tick.fetch_add(1, Ordering::SeqCst);
        async {}
    })
    .schedule("100ms");
    let c = counts.clone();
    let shared = JobConfig::new("shared", move |_ctx: JobContext| {
        c.shared.fetch_add(1, Ordering::SeqCst);
        async {}
    })
    .overlap(mscribe_scheduler::OverlapPolicy::Allow);
    let c = counts.clone();
    let slow = JobConfig::new("slow", move |_ctx: JobContext| {
        c.slow.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60))
    });
    let off =
        JobConfig::new("off", |_ctx: JobContext| async {}).schedule("1h").paused(off_disabled);
    let only = JobConfig::new(format!("only-{name}"), |_ctx: JobContext| async {});
    for job in [tick, shared, slow, off, only] {
        scheduler.register(job).unwrap();
    }
    let mut control = ControlPlane::new(control_store, scheduler.clone(), backend.settings());
    if let Some(pg) = pg {
        control = control.listening(pg);
    }
    control.prepare(Vec::new()).await.unwrap();
    scheduler.start().await.unwrap();
    control.spawn();
    Instance { scheduler, control, counts }
}

impl Instance {
    async fn stop(self) {
        self.control.stop().await;
        self.scheduler.stop(Duration::from_millis(200)).await.unwrap();
    }

    fn paused(&self, job: &str) -> bool {
        self.scheduler.job(job).unwrap().paused
    }
}

/// Waits (up to 5 s) until `ok` holds; returns how long it took.
async fn until(what: &str, ok: impl Fn() -> bool) -> Duration {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < Duration::from_secs(5), "{what}: not within 5 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    t0.elapsed()
}

/// A pause made through A holds on B within 1 s, and after both restart;
/// a resume through B reaches A; both are in the audit log.
async fn pause_holds_across_instances_and_restarts(backend: Backend) {
    let a = instance(&backend, "a", false).await;
    let b = instance(&backend, "b", false).await;
    a.control.pause("tick", Some("deploy in progress".into()), Source::Api).await.unwrap();
    assert!(a.paused("tick"), "applied at once where it was made");
    let delay = until("the pause reaching b", || b.paused("tick")).await;
    eprintln!("{}: pause A -> B: {delay:?}", backend.name());
    assert!(delay < Duration::from_secs(1), "{delay:?}");
    let state = b.control.job_state("tick").await.unwrap().unwrap();
    assert_eq!((state.paused, state.note.as_deref()), (true, Some("deploy in progress")));
    assert_eq!(state.instance_id, "a");
    // Paused everywhere: no fire for a while.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (na, nb) = (a.counts.tick.load(Ordering::SeqCst), b.counts.tick.load(Ordering::SeqCst));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(a.counts.tick.load(Ordering::SeqCst), na);
    assert_eq!(b.counts.tick.load(Ordering::SeqCst), nb);

    a.stop().await;
    b.stop().await;
    let a = instance(&backend, "a", false).await;
    let b = instance(&backend, "b", false).await;
    assert!(a.paused("tick") && b.paused("tick"), "paused again before the first fire");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(a.counts.tick.load(Ordering::SeqCst) + b.counts.tick.load(Ordering::SeqCst), 0);

    b.control.resume("tick", None, Source::Cli).await.unwrap();
    let delay = until("the resume reaching a", || !a.paused("tick")).await;
    eprintln!("{}: resume B -> A: {delay:?}", backend.name());
    assert!(delay < Duration::from_secs(1), "{delay:?}");
    until("a tick on a", || a.counts.tick.load(Ordering::SeqCst) > 0).await;
    let audit = a.control.audit(&AuditQuery::new(10).job("tick")).await.unwrap();
    let got: Vec<_> =
        audit.iter().map(|r| (r.entry.action.clone(), r.entry.instance_id.as_str())).collect();
    assert_eq!(got, [(AuditAction::Resume, "b"), (AuditAction::Pause, "a")]);
    a.stop().await;
    b.stop().await;
}

/// A trigger requested on A runs once across A and B: at once on A when A
/// runs the job; on B, taken within 1 s, when only B runs it; and a burst
/// of pending triggers of a job both run is split between them with each
/// run once.
async fn triggers_run_once_across_instances(backend: Backend) {
    let a = instance(&backend, "a", false).await;
    let b = instance(&backend, "b", false).await;

    let r = a.control.trigger("shared", Some("by hand".into()), Source::Api).await.unwrap();
    assert_eq!(r.taken_by.as_deref(), Some("a"));
    let Some(TriggerOutcome::Started { execution_id }) = r.outcome else { panic!("{r:?}") };
    until("the run on a", || a.counts.shared.load(Ordering::SeqCst) == 1).await;
    let row = a.control.store().trigger_request(r.trigger_id).await.unwrap().unwrap();
    assert_eq!(row.execution_id, Some(execution_id.to_string()));
    assert_eq!(row.outcome.as_deref(), Some("started"));

    let t0 = Instant::now();
    let r = a.control.trigger("only-b", None, Source::Api).await.unwrap();
    assert_eq!((r.taken_by, r.outcome), (None, None));
    let store = a.control.store().clone();
    loop {
        let row = store.trigger_request(r.trigger_id).await.unwrap().unwrap();
        if row.finished_at.is_some() {
            assert_eq!(row.taken_by.as_deref(), Some("b"));
            assert_eq!(row.outcome.as_deref(), Some("started"));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "never taken: {row:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("{}: trigger A -> run on B: {:?}", backend.name(), t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());

    let before = a.counts.shared.load(Ordering::SeqCst) + b.counts.shared.load(Ordering::SeqCst);
    for round in 0..5 {
        for i in 0..10 {
            let req = NewTrigger {
                job_id: "shared".into(),
                note: Some(format!("{round}.{i}")),
                source: Source::Cli,
                instance_id: "cli".into(),
                at: a.control.now(),
                take: false,
            };
            store.request_trigger(&req).await.unwrap();
        }
        a.control.wake();
        b.control.wake();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = || a.counts.shared.load(Ordering::SeqCst) + b.counts.shared.load(Ordering::SeqCst);
    until("50 runs", || total() == before + 50).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(total(), before + 50, "each trigger ran exactly once");
    eprintln!(
        "{}: 50 pending triggers: {} ran on a, {} on b",
        backend.name(),
        a.counts.shared.load(Ordering::SeqCst) - 1,
        b.counts.shared.load(Ordering::SeqCst)
    );
    let e = a.control.trigger("nope", None, Source::Api).await.unwrap_err();
    assert!(matches!(e, ControlError::UnknownJob(_)), "{e}");
    assert_eq!(e.http_status(), 404);
    a.stop().await;
    b.stop().await;
}

/// A cancel requested on A cancels a run that B owns, within the wait; a
/// cancel of a run no instance has is closed after the expiry.
async fn a_cancel_reaches_the_instance_that_runs_it(backend: Backend) {
    let a = instance(&backend, "a", false).await;
    let b = instance(&backend, "b", false).await;
    let TriggerOutcome::Started { execution_id } = b.scheduler.trigger("slow").unwrap() else {
        panic!("slow did not start")
    };
    until("the slow run", || b.counts.slow.load(Ordering::SeqCst) == 1).await;
    let t0 = Instant::now();
    let r = a
        .control
        .cancel(execution_id, Some("slow"), Some("stuck".into()), Source::Api)
        .await
        .unwrap();
    eprintln!("{}: cancel A -> handled on B: {:?}", backend.name(), t0.elapsed());
    assert_eq!(r.handled_by.as_deref(), Some("b"));
    assert_eq!(r.outcome.as_deref(), Some(CANCELLED));
    until("the run gone", || b.scheduler.job("slow").unwrap().running == 0).await;
    let audit = a.control.audit(&AuditQuery::new(1)).await.unwrap();
    assert_eq!(audit[0].entry.action, AuditAction::Cancel);
    assert_eq!(audit[0].entry.execution_id, Some(execution_id.to_string()));
    assert_eq!(audit[0].entry.note.as_deref(), Some("stuck"));

    // A run of this instance is cancelled at once, here.
    let TriggerOutcome::Started { execution_id } = a.scheduler.trigger("slow").unwrap() else {
        panic!("slow did not start")
    };
    let r = a.control.cancel(execution_id, None, None, Source::Cli).await.unwrap();
    assert_eq!((r.handled_by.as_deref(), r.outcome.as_deref()), (Some("a"), Some(CANCELLED)));

    // Nobody runs it: closed after the expiry (1 s here, within the wait of
    // 2 s; by default 10 s, past it, and the answer says "pending").
    let gone = mscribe_scheduler::ExecutionId::from_u128(0x1234);
    let t0 = Instant::now();
    let r = a.control.cancel(gone, None, None, Source::Api).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(r.outcome.as_deref(), Some(NOT_RUNNING));
    assert!(matches!(r.handled_by.as_deref(), Some("a" | "b")), "{r:?}");
    a.stop().await;
    b.stop().await;
}

/// A lone instance answers a cancel of a run it does not have (an unknown
/// id, or a run that ended) as not running at once, with the default
/// settings, whose expiry (10 s) is past the wait (2 s): no other instance
/// is alive to run it.
async fn a_lone_instance_answers_a_cancel_of_no_run_as_not_running(backend: Backend) {
    let (exec, control_store, _) = backend.stores().await;
    let scheduler = JobScheduler::builder(Arc::new(SystemClock), Arc::new(TokioSpawner::current()))
        .store(exec)
        .instance_id("lone")
        .build();
    let quick = JobConfig::new("quick", |_ctx: JobContext| async {});
    scheduler.register(quick).unwrap();
    let base = match backend {
        Backend::Sqlite(_) => ControlSettings::sqlite(),
        Backend::Postgres(_) => ControlSettings::postgres(),
    };
    let control = ControlPlane::new(control_store, scheduler.clone(), base);
    control.prepare(Vec::new()).await.unwrap();
    scheduler.start().await.unwrap();
    control.spawn();
    let TriggerOutcome::Started { execution_id: ended } = scheduler.trigger("quick").unwrap()
    else {
        panic!("quick did not start")
    };
    until("the quick run over", || scheduler.job("quick").unwrap().running == 0).await;
    for id in [ended, mscribe_scheduler::ExecutionId::from_u128(0x1234)] {
        let r = control.cancel(id, None, None, Source::Api).await.unwrap();
        assert_eq!(r.outcome.as_deref(), Some(NOT_RUNNING), "{id}: {r:?}");
        assert_eq!(r.handled_by.as_deref(), Some("lone"), "{id}: {r:?}");
    }
    control.stop().await;
    scheduler.stop(Duration::from_millis(200)).await.unwrap();
}

/// `enabled = false` in one instance's configuration wins over a stored
/// resume there (and after a restart), while the other instance follows
/// the store; a resume through the disabled instance is refused.
async fn the_configuration_wins_over_a_stored_resume(backend: Backend) {
    let a = instance(&backend, "a", true).await;
    let b = instance(&backend, "b", false).await;
    assert!(a.paused("off") && !b.paused("off"));
    b.control.pause("off", None, Source::Api).await.unwrap();
    b.control.resume("off", None, Source::Api).await.unwrap();
    // A round of a's reads the resume (and one of b's).
    a.control.sync_now().await.unwrap();
    b.control.sync_now().await.unwrap();
    assert!(a.paused("off"), "the configuration wins");
    assert!(!b.paused("off"));
    let e = a.control.resume("off", None, Source::Api).await.unwrap_err();
    assert!(matches!(e, ControlError::DisabledInConfig(_)), "{e}");
    assert_eq!((e.http_status(), e.field()), (409, Some("job")));
    assert!(a.control.disabled_here("off") && !b.control.disabled_here("off"));
    // A trigger still runs a disabled job, as before.
    a.control.trigger("off", None, Source::Api).await.unwrap();

    // Bad notes are refused before anything is written.
    let long = "x".repeat(1001);
    let e = a.control.pause("tick", Some(long), Source::Api).await.unwrap_err();
    assert!(matches!(e, ControlError::NoteTooLong { chars: 1001, max: 1000 }), "{e}");
    let e = a.control.pause("tick", Some("  ".into()), Source::Api).await.unwrap_err();
    assert!(matches!(e, ControlError::NoteEmpty), "{e}");
    assert_eq!((e.http_status(), e.field()), (400, Some("note")));
    let e = a.control.pause("nope", None, Source::Api).await.unwrap_err();
    assert!(matches!(e, ControlError::UnknownJob(_)), "{e}");

    a.stop().await;
    let a = instance(&backend, "a", true).await;
    assert!(a.paused("off"));
    a.control.sync_now().await.unwrap();
    assert!(a.paused("off"));
    a.stop().await;
    b.stop().await;
}

/// Each instance stores the definitions of its jobs; the other sees them.
async fn definitions_are_shared(backend: Backend) {
    let a = instance(&backend, "a", true).await;
    let b = instance(&backend, "b", false).await;
    let defs = a.control.definitions().await.unwrap();
    let ids: Vec<&str> = defs.iter().map(|d| d.job_id.as_str()).collect();
    assert_eq!(ids, ["off", "only-a", "only-b", "shared", "slow", "tick"]);
    let tick = defs.iter().find(|d| d.job_id == "tick").unwrap();
    assert_eq!((tick.kind.as_str(), &tick.source), ("rust", &Source::Code));
    assert_eq!(tick.schedule.as_deref(), Some("@every 100ms"));
    assert_eq!(defs.iter().find(|d| d.job_id == "only-a").unwrap().registered_by, "a");
    a.stop().await;
    b.stop().await;
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(Backend::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(Backend::postgres().await).await;
                }
            )*
        }
    };
}

/// A job defined through A's API is registered on B within 1 s, by a new
/// instance at its start, and deleted from every instance through B; a job
/// B has from its own code cannot be redefined or deleted that way.
async fn jobs_defined_through_the_api_reach_every_instance(backend: Backend) {
    let a = instance(&backend, "a", false).await;
    let b = instance(&backend, "b", false).await;
    let def = serde_json::json!({
        "kind": "http", "url": "http://127.0.0.1:9/never", "schedule": "@every 1h"
    });
    let t0 = Instant::now();
    let r = a.control.define_job("defined", def.clone(), Source::Api).await.unwrap();
    assert!(r.created);
    assert!(a.scheduler.job("defined").is_some(), "registered where it was defined at once");
    until("defined on b", || b.scheduler.job("defined").is_some()).await;
    eprintln!("{}: define on A -> registered on B: {:?}", backend.name(), t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let c = instance(&backend, "c", false).await;
    assert!(c.scheduler.job("defined").is_some(), "registered at start");
    let e = b.control.define_job("tick", def.clone(), Source::Api).await.unwrap_err();
    assert_eq!(e.http_status(), 409, "{e}");
    let e = b.control.delete_job("tick", Source::Api).await.unwrap_err();
    assert_eq!(e.http_status(), 409, "{e}");
    b.control.delete_job("defined", Source::Api).await.unwrap();
    assert!(b.scheduler.job("defined").is_none());
    until("gone from a", || a.scheduler.job("defined").is_none()).await;
    until("gone from c", || c.scheduler.job("defined").is_none()).await;
    let e = a.control.delete_job("defined", Source::Api).await.unwrap_err();
    assert_eq!(e.http_status(), 404, "{e}");

    // A command job runs only where the configuration allows command jobs,
    // whoever stored it.
    // (Allowed on c before the definition exists: an instance decides when
    // it first sees a definition, and its configuration is set at start.)
    a.control.allow_command_jobs(true);
    c.control.allow_command_jobs(true);
    let cmd =
        serde_json::json!({ "kind": "command", "command": ["true"], "schedule": "@every 1h" });
    a.control.define_job("cmd", cmd, Source::Api).await.unwrap();
    until("cmd on c", || c.scheduler.job("cmd").is_some()).await;
    assert!(a.scheduler.job("cmd").is_some());
    b.control.sync_now().await.unwrap();
    assert!(b.scheduler.job("cmd").is_none(), "b does not allow command jobs");
}

/// A job paused in the cluster and defined again (a new schedule) is
/// registered paused, here at once and on the other instance at its round:
/// it was registered running until the next round paused it again, and
/// fired in between.
async fn a_paused_job_defined_again_stays_paused(backend: Backend) {
    let a = instance(&backend, "a", false).await;
    let b = instance(&backend, "b", false).await;
    let def = |every: &str| serde_json::json!({ "kind": "http", "url": "http://127.0.0.1:9/x", "schedule": every });
    a.control.define_job("held", def("@every 1h"), Source::Api).await.unwrap();
    a.control.pause("held", Some("do not run".into()), Source::Api).await.unwrap();
    b.control.sync_now().await.unwrap();
    assert!(b.paused("held"));
    a.control.define_job("held", def("@every 2h"), Source::Api).await.unwrap();
    let info = a.scheduler.job("held").unwrap();
    assert_eq!((info.schedule.as_deref(), info.paused), (Some("@every 2h"), true));
    until("the new definition on b", || {
        b.scheduler.job("held").unwrap().schedule.as_deref() == Some("@every 2h")
    })
    .await;
    assert!(b.paused("held"), "registered paused on b");
    // A resume still reaches both.
    a.control.resume("held", None, Source::Api).await.unwrap();
    b.control.sync_now().await.unwrap();
    assert!(!a.paused("held") && !b.paused("held"));
    a.stop().await;
    b.stop().await;
}

/// A job whose definition says `enabled = false` is disabled as a job of
/// the configuration is: a resume is refused (409) naming the definition,
/// where it was resumed until the next start.
async fn a_definition_that_disables_its_job_wins_over_a_resume(backend: Backend) {
    let a = instance(&backend, "a", false).await;
    let def = serde_json::json!({
        "kind": "http", "url": "http://127.0.0.1:9/x", "schedule": "@every 1h", "enabled": false
    });
    a.control.define_job("off-api", def, Source::Api).await.unwrap();
    assert!(a.paused("off-api"));
    let e = a.control.resume("off-api", None, Source::Api).await.unwrap_err();
    assert_eq!(e.http_status(), 409, "{e}");
    assert!(e.to_string().contains("definition"), "{e}");
    assert!(a.control.disabled_here("off-api"));
    assert!(a.paused("off-api"));
    // Defined again enabled, it runs; a resume is no longer refused.
    let def = serde_json::json!({
        "kind": "http", "url": "http://127.0.0.1:9/x", "schedule": "@every 1h"
    });
    a.control.define_job("off-api", def, Source::Api).await.unwrap();
    assert!(!a.paused("off-api"));
    a.control.resume("off-api", None, Source::Api).await.unwrap();
    a.stop().await;
}

on_both!(
    jobs_defined_through_the_api_reach_every_instance,
    pause_holds_across_instances_and_restarts,
    triggers_run_once_across_instances,
    a_cancel_reaches_the_instance_that_runs_it,
    a_lone_instance_answers_a_cancel_of_no_run_as_not_running,
    a_paused_job_defined_again_stays_paused,
    a_definition_that_disables_its_job_wins_over_a_resume,
    the_configuration_wins_over_a_stored_resume,
    definitions_are_shared,
);

/// A control store that is always down.
#[derive(Debug)]
struct DownStore;

fn down<T>() -> mscribe_scheduler::StoreResult<T> {
    Err(mscribe_scheduler::StoreError::Unavailable { message: "down".into(), source: None })
}

#[async_trait::async_trait]
impl ControlStore for DownStore {
    async fn running_job(&self, _: &str) -> mscribe_scheduler::StoreResult<Option<String>> {
        down()
    }
    async fn lock_backfill(
        &self,
        _: &str,
        _: &str,
        _: chrono::DateTime<chrono::Utc>,
        _: Duration,
    ) -> mscribe_scheduler::StoreResult<mscribe_storage::BackfillLockOutcome> {
        down()
    }
    async fn renew_backfill(
        &self,
        _: &str,
        _: &str,
        _: chrono::DateTime<chrono::Utc>,
        _: Duration,
    ) -> mscribe_scheduler::StoreResult<bool> {
        down()
    }
    async fn unlock_backfill(&self, _: &str, _: &str) -> mscribe_scheduler::StoreResult<bool> {
        down()
    }
    async fn put_definition(
        &self,
        _: &mscribe_storage::JobDefinition,
        _: &mscribe_storage::AuditEntry,
    ) -> mscribe_scheduler::StoreResult<()> {
        down()
    }
    async fn delete_definition(
        &self,
        _: &str,
        _: &mscribe_storage::AuditEntry,
    ) -> mscribe_scheduler::StoreResult<bool> {
        down()
    }
    async fn upsert_definitions(
        &self,
        _: &[mscribe_storage::JobDefinition],
    ) -> mscribe_scheduler::StoreResult<()> {
        down()
    }
    async fn definitions(
        &self,
    ) -> mscribe_scheduler::StoreResult<Vec<mscribe_storage::JobDefinition>> {
        down()
    }
    async fn set_paused(
        &self,
        _: &str,
        _: &mscribe_storage::PauseChange,
    ) -> mscribe_scheduler::StoreResult<mscribe_storage::PauseState> {
        down()
    }
    async fn pause_states(
        &self,
    ) -> mscribe_scheduler::StoreResult<Vec<mscribe_storage::PauseState>> {
        down()
    }
    async fn pause_state(
        &self,
        _: &str,
    ) -> mscribe_scheduler::StoreResult<Option<mscribe_storage::PauseState>> {
        down()
    }
    async fn request_trigger(&self, _: &NewTrigger) -> mscribe_scheduler::StoreResult<i64> {
        down()
    }
    async fn take_triggers(
        &self,
        _: &str,
        _: &[String],
        _: chrono::DateTime<chrono::Utc>,
    ) -> mscribe_scheduler::StoreResult<Vec<mscribe_storage::TriggerRequest>> {
        down()
    }
    async fn finish_trigger(
        &self,
        _: i64,
        _: Option<&str>,
        _: &str,
        _: chrono::DateTime<chrono::Utc>,
    ) -> mscribe_scheduler::StoreResult<bool> {
        down()
    }
    async fn trigger_request(
        &self,
        _: i64,
    ) -> mscribe_scheduler::StoreResult<Option<mscribe_storage::TriggerRequest>> {
        down()
    }
    async fn request_cancel(
        &self,
        _: &mscribe_storage::NewCancel,
    ) -> mscribe_scheduler::StoreResult<i64> {
        down()
    }
    async fn pending_cancels(
        &self,
    ) -> mscribe_scheduler::StoreResult<Vec<mscribe_storage::CancelRequest>> {
        down()
    }
    async fn finish_cancel(
        &self,
        _: i64,
        _: &str,
        _: &str,
        _: chrono::DateTime<chrono::Utc>,
    ) -> mscribe_scheduler::StoreResult<bool> {
        down()
    }
    async fn cancel_request(
        &self,
        _: i64,
    ) -> mscribe_scheduler::StoreResult<Option<mscribe_storage::CancelRequest>> {
        down()
    }
    async fn record_audit(
        &self,
        _: &mscribe_storage::AuditEntry,
    ) -> mscribe_scheduler::StoreResult<i64> {
        down()
    }
    async fn audit(
        &self,
        _: &AuditQuery,
    ) -> mscribe_scheduler::StoreResult<Vec<mscribe_storage::AuditRecord>> {
        down()
    }
    async fn prune_control(
        &self,
        _: chrono::DateTime<chrono::Utc>,
    ) -> mscribe_scheduler::StoreResult<u64> {
        down()
    }
}

/// With the database down, every action fails as unavailable (503) and
/// changes nothing locally; a round fails without panicking; the loop
/// keeps running and stops cleanly; the jobs keep firing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_fails_actions_and_changes_nothing() {
    let scheduler = JobScheduler::builder(Arc::new(SystemClock), Arc::new(TokioSpawner::current()))
        .instance_id("lonely")
        .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let tick = JobConfig::new("tick", move |_ctx: JobContext| {
        r.fetch_add(1, Ordering::SeqCst);
        async {}
    })
    .schedule("50ms");
    scheduler.register(tick).unwrap();
    let control =
        ControlPlane::new(Arc::new(DownStore), scheduler.clone(), ControlSettings::sqlite());
    assert!(control.prepare(Vec::new()).await.is_err());
    scheduler.start().await.unwrap();
    control.spawn();
    for e in [
        control.pause("tick", None, Source::Api).await.unwrap_err(),
        control.resume("tick", None, Source::Api).await.unwrap_err(),
        control.trigger("tick", None, Source::Api).await.unwrap_err(),
        control
            .cancel(mscribe_scheduler::ExecutionId::from_u128(1), None, None, Source::Api)
            .await
            .unwrap_err(),
        control.audit(&AuditQuery::new(5)).await.unwrap_err(),
    ] {
        assert!(matches!(e, ControlError::Store(_)), "{e}");
        assert_eq!(e.http_status(), 503);
    }
    assert!(!scheduler.job("tick").unwrap().paused);
    assert!(control.sync_now().await.is_err());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(runs.load(Ordering::SeqCst) > 3, "the job keeps firing");
    let t0 = Instant::now();
    control.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(1));
    scheduler.stop(Duration::from_millis(100)).await.unwrap();
}
