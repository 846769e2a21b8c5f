//! Helpers shared by the storage integration tests: event builders, fresh
//! databases, and the fixture each conformance test gets.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mscribe_scheduler::{
    AttemptEnd, AttemptStart, ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionStatus,
    ExecutionStore, FireClaim, FireKind, Metrics, SkippedFire,
};
use mscribe_storage::sqlx::postgres::PgConnectOptions;
use mscribe_storage::sqlx::{Connection, PgConnection};
use mscribe_storage::{AlertStore, ControlStore, HourlyMetricsStore};

/// The server the Postgres tests use.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn pg_url() -> String {
    std::env::var("MSCRIBE_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_PG_URL.to_owned())
}

/// 2026-01-01T00:00:00Z plus `ms` milliseconds.
pub fn t(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::milliseconds(ms)
}

pub fn eid(n: u128) -> ExecutionId {
    ExecutionId::from_u128(n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) ^ n)
}

pub fn start(job: &str, exec: u128, attempt: u32, at: i64, instance: &str) -> ExecutionEvent {
    ExecutionEvent::Started(AttemptStart {
        job_id: job.into(),
        execution_id: eid(exec),
        attempt,
        scheduled_at: t(at - 5),
        started_at: t(at),
        instance_id: instance.into(),
        kind: FireKind::Schedule,
        fence: None,
    })
}

pub fn end_with(
    job: &str,
    exec: u128,
    attempt: u32,
    at: i64,
    instance: &str,
    status: ExecutionStatus,
    ran_ms: i64,
) -> AttemptEnd {
    AttemptEnd {
        job_id: job.into(),
        execution_id: eid(exec),
        attempt,
        scheduled_at: t(at - 5),
        started_at: t(at),
        instance_id: instance.into(),
        status,
        completed_at: t(at + ran_ms),
        duration: Duration::from_millis(ran_ms as u64),
        error: (status != ExecutionStatus::Succeeded)
            .then(|| format!("{status} at attempt {attempt}")),
        error_kind: None,
        result: Some(
            serde_json::json!({"attempt": attempt, "ok": status == ExecutionStatus::Succeeded}),
        ),
        metrics: Some(Metrics::from([("rows".to_owned(), 12.5), ("files".to_owned(), 3.0)])),
        kind: FireKind::Schedule,
        fence: None,
        ends_run: true,
    }
}

pub fn end(
    job: &str,
    exec: u128,
    attempt: u32,
    at: i64,
    status: ExecutionStatus,
) -> ExecutionEvent {
    ExecutionEvent::Finished(end_with(job, exec, attempt, at, "i1", status, 250))
}

pub fn skip(job: &str, exec: u128, at: i64, instance: &str) -> ExecutionEvent {
    ExecutionEvent::Skipped(SkippedFire {
        job_id: job.into(),
        execution_id: eid(exec),
        scheduled_at: t(at - 5),
        decided_at: t(at),
        reason: "overlap policy skip: previous run still running".to_owned(),
        instance_id: instance.into(),
        kind: FireKind::Schedule,
        fence: None,
    })
}

/// A database of its own on the test server, dropped (with its
/// connections) when this is dropped, even after a failed assertion.
#[derive(Debug)]
pub struct PgTestDb {
    pub name: String,
    pub admin: PgConnectOptions,
    pub options: PgConnectOptions,
}

impl PgTestDb {
    /// Creates `mscribe_test_<random>`. Panics (never skips) when the
    /// server cannot be reached: these tests must run.
    pub async fn create() -> PgTestDb {
        let url = pg_url();
        let admin = PgConnectOptions::from_str(&url)
            .unwrap_or_else(|e| panic!("MSCRIBE_TEST_POSTGRES_URL {url:?} is invalid: {e}"));
        let mut conn = PgConnection::connect_with(&admin).await.unwrap_or_else(|e| {
            panic!(
                "the Postgres tests need a server at {url} (set MSCRIBE_TEST_POSTGRES_URL, or run \
                 scripts/ensure-postgres.sh): {e}"
            )
        });
        // The name is made of hex digits only, so it is safe to splice into
        // the statement (identifiers cannot be bound as parameters).
        let name = format!("mscribe_test_{:016x}", fastrand::u64(..));
        mscribe_storage::sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = conn.close().await;
        let options = admin.clone().database(&name);
        PgTestDb { name, admin, options }
    }

    /// Options for a store on this database.
    pub fn store_options(&self) -> mscribe_storage::PostgresOptions {
        mscribe_storage::PostgresOptions::from_connect_options(self.options.clone())
            .max_connections(4)
            .connect_timeout(Duration::from_secs(10))
    }

    /// A connection as the server's admin user, on this database.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect_with(&self.options).await.expect("connect to the test database")
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // A thread of its own: Drop may run inside a runtime, or while
        // unwinding from a failed assertion.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect_with(&admin).await {
                    let _ = mscribe_storage::sqlx::raw_sql(&format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    ))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// A store on `db`, migrated by its runner.
pub async fn store_on(db: &PgTestDb) -> mscribe_storage::PostgresStore {
    mscribe_storage::PostgresStore::connect_with(db.store_options()).await.unwrap()
}

/// The SQLSTATE of a database error; empty for any other error.
pub fn sqlstate(e: &mscribe_storage::sqlx::Error) -> String {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()).unwrap_or_default()
}

/// A store under test, with what keeps its database alive.
pub struct Fixture {
    pub store: Arc<dyn ExecutionStore>,
    /// The same store's hourly metrics; `None` for the memory store, which
    /// keeps none.
    pub hourly: Option<Arc<dyn HourlyMetricsStore>>,
    /// The same store's control plane state; `None` for the memory store.
    pub control: Option<Arc<dyn ControlStore>>,
    /// The same store's alert outbox; `None` for the memory store.
    pub alerts: Option<Arc<dyn AlertStore>>,
    /// The SQLite file, for a second handle on it.
    sqlite_path: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgTestDb>,
}

impl Fixture {
    pub fn memory() -> Fixture {
        // Unbounded: the suite checks what a database keeps (a bounded
        // memory store drops a job's oldest rows; its own tests cover that).
        let store = Arc::new(mscribe_scheduler::MemoryStore::unbounded());
        Fixture {
            store,
            hourly: None,
            control: None,
            alerts: None,
            sqlite_path: None,
            _dir: None,
            _pg: None,
        }
    }

    pub async fn sqlite_file() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conformance.db");
        let store = mscribe_storage::SqliteStore::open(&path).await.unwrap();
        let mut f = Fixture::sql(store, Some(dir), None);
        f.sqlite_path = Some(path);
        f
    }

    pub async fn sqlite_memory() -> Fixture {
        let store = mscribe_storage::SqliteStore::open_memory().await.unwrap();
        Fixture::sql(store, None, None)
    }

    pub async fn postgres() -> Fixture {
        let db = PgTestDb::create().await;
        let store = mscribe_storage::PostgresStore::connect_with(db.store_options()).await.unwrap();
        Fixture::sql(store, None, Some(db))
    }

    fn sql<S: ExecutionStore + HourlyMetricsStore + ControlStore + AlertStore + Clone + 'static>(
        store: S,
        dir: Option<tempfile::TempDir>,
        pg: Option<PgTestDb>,
    ) -> Fixture {
        Fixture {
            store: Arc::new(store.clone()),
            hourly: Some(Arc::new(store.clone())),
            control: Some(Arc::new(store.clone())),
            alerts: Some(Arc::new(store)),
            sqlite_path: None,
            _dir: dir,
            _pg: pg,
        }
    }

    /// The control plane state; panics for the memory store.
    pub fn control(&self) -> &dyn ControlStore {
        self.control.as_deref().expect("a SQL store")
    }

    /// A second store handle on the same database (another instance's
    /// view): a new `SqliteStore` on the file, a new pool on the Postgres
    /// database. Panics for in-memory stores.
    pub async fn other_control(&self) -> Arc<dyn ControlStore> {
        if let Some(path) = &self.sqlite_path {
            return Arc::new(mscribe_storage::SqliteStore::open(path).await.unwrap());
        }
        let db = self._pg.as_ref().expect("a file or a Postgres database");
        Arc::new(mscribe_storage::PostgresStore::connect_with(db.store_options()).await.unwrap())
    }

    /// The alert outbox; panics for the memory store.
    pub fn alerts(&self) -> &dyn AlertStore {
        self.alerts.as_deref().expect("a SQL store")
    }

    /// A second alert store handle on the same database, as
    /// [`other_control`](Self::other_control).
    pub async fn other_alerts(&self) -> Arc<dyn AlertStore> {
        if let Some(path) = &self.sqlite_path {
            return Arc::new(mscribe_storage::SqliteStore::open(path).await.unwrap());
        }
        let db = self._pg.as_ref().expect("a file or a Postgres database");
        Arc::new(mscribe_storage::PostgresStore::connect_with(db.store_options()).await.unwrap())
    }

    /// The hourly metrics store; panics for the memory store.
    pub fn hourly(&self) -> &dyn HourlyMetricsStore {
        self.hourly.as_deref().expect("a SQL store")
    }
}

/// The lease of the tests' claims.
pub const LEASE: Duration = Duration::from_secs(10);

/// The fire of `job` at `t(ms)`, to claim, with no limit of live leases;
/// its execution id is made of the job's bytes and the time.
pub fn fire(job: &str, ms: i64) -> FireClaim {
    let bits = job.bytes().fold(0u128, |h, b| h.wrapping_mul(131).wrapping_add(u128::from(b)));
    FireClaim {
        job_id: Arc::from(job),
        scheduled_at: t(ms),
        execution_id: eid((bits << 64) ^ ms as u128),
        max_running: None,
        kind: FireKind::Schedule,
    }
}

/// Whether a claim was won (a busy fire is not).
pub fn won(outcomes: &[ClaimOutcome]) -> Vec<bool> {
    outcomes.iter().map(|o| matches!(o, ClaimOutcome::Won { .. })).collect()
}

/// Eight tasks, half on each store, claim the same 50 fires of four jobs
/// in batches of 25, each in its own order; every fire must be won by
/// exactly one claim. The stores are two handles on one database, or one
/// store twice.
pub async fn claims_race(a: Arc<dyn ExecutionStore>, b: Arc<dyn ExecutionStore>) {
    let fires: Vec<FireClaim> =
        (0..50).map(|i| fire(["w", "x", "y", "z"][i % 4], 1000 * i as i64)).collect();
    let mut tasks = Vec::new();
    for k in 0..8usize {
        let s = if k % 2 == 0 { a.clone() } else { b.clone() };
        let mut mine = fires.clone();
        fastrand::Rng::with_seed(k as u64).shuffle(&mut mine);
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for batch in mine.chunks(25) {
                let got = s.claim_fires(&format!("i{k}"), batch, t(0), LEASE).await.unwrap();
                assert_eq!(got.len(), batch.len());
                let got = self::won(&got);
                won.extend(batch.iter().zip(got).filter(|(_, w)| *w).map(|(f, _)| f.clone()));
            }
            won
        }));
    }
    let mut won = Vec::new();
    for task in tasks {
        won.extend(task.await.unwrap());
    }
    won.sort_by(|x, y| (&x.job_id, x.scheduled_at).cmp(&(&y.job_id, y.scheduled_at)));
    let mut want = fires;
    want.sort_by(|x, y| (&x.job_id, x.scheduled_at).cmp(&(&y.job_id, y.scheduled_at)));
    assert_eq!(won, want, "every fire won exactly once");
}

/// Heartbeats of three instances, then a prune of what is older than
/// t(500): `gone` was last heard at t(0), `busy` too but owns a running
/// row, `fresh` at t(1000). The store should keep `busy` and `fresh`.
pub async fn prune_after_three_heartbeats(s: &dyn ExecutionStore) {
    s.heartbeat("gone", t(0)).await.unwrap();
    s.heartbeat("busy", t(0)).await.unwrap();
    s.heartbeat("fresh", t(1000)).await.unwrap();
    s.write(&[start("j", 1, 1, 0, "busy")]).await.unwrap();
    let policy = mscribe_scheduler::PrunePolicy { older_than: t(500), failures_older_than: None };
    s.prune(policy).await.unwrap();
}

/// Events a SQL store cannot hold are refused (not transient), and the
/// other events of the batch are written all the same.
pub async fn bad_events_are_rejected_but_the_rest_written(s: &dyn ExecutionStore) {
    let mut far = start("j", 2, 1, 100, "i1");
    if let ExecutionEvent::Started(a) = &mut far {
        a.started_at = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
    }
    let mut huge = start("j", 3, 1, 100, "i1");
    if let ExecutionEvent::Started(a) = &mut huge {
        a.attempt = u32::MAX;
    }
    let events = vec![start("j", 1, 1, 100, "i1"), far, huge, start("j", 4, 1, 200, "i1")];
    let err = s.write(&events).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("2 of 4 events cannot be stored"), "{msg}");
    assert!(msg.contains("event 1 (start of attempt 1 of execution"), "{msg}");
    assert!(msg.contains("outside the supported range"), "{msg}");
    assert!(msg.contains("attempt 4294967295 exceeds"), "{msg}");
    let got = s.history(&mscribe_scheduler::HistoryQuery::new("j", 10)).await.unwrap();
    let mut ids: Vec<_> = got.iter().map(|r| r.execution_id).collect();
    ids.sort();
    let mut want = vec![eid(1), eid(4)];
    want.sort();
    assert_eq!(ids, want);
}

/// `rounds` times: instance `owner` claims a fire (through `a`) and starts
/// it, then stops renewing; once its lease has run out, instance `ta`
/// (through `a`) and instance `tb` (through `b`) take it over at the same
/// moment while `owner` writes a second attempt with its old fence. Exactly
/// one take-over wins, with fence 2; the run's rows all move to the
/// winner's id; the owner's late start is written (before the take-over,
/// and then abandoned by it) or refused (after), never left behind.
pub async fn retake_race(a: Arc<dyn ExecutionStore>, b: Arc<dyn ExecutionStore>, rounds: u32) {
    use mscribe_scheduler::{ExpiredLease, StoreError};
    let lease = Duration::from_secs(1);
    for r in 0..rounds {
        let now = i64::from(r) * 10_000;
        let at = t(now);
        let old = eid(100_000 + u128::from(r));
        let fire = FireClaim {
            job_id: Arc::from("race"),
            scheduled_at: at,
            execution_id: old,
            max_running: None,
            kind: FireKind::Schedule,
        };
        let got = a.claim_fires("owner", &[fire], t(now), lease).await.unwrap();
        assert_eq!(got, [ClaimOutcome::Won { fence: 1 }], "round {r}");
        let attempt = |n: u32, id, instance: &str, fence| {
            ExecutionEvent::Started(AttemptStart {
                job_id: "race".into(),
                execution_id: id,
                attempt: n,
                scheduled_at: at,
                started_at: t(now + i64::from(n)),
                instance_id: instance.into(),
                kind: FireKind::Schedule,
                fence: Some(fence),
            })
        };
        a.write(&[attempt(1, old, "owner", 1)]).await.unwrap();
        let later = t(now + 2_000);
        let expired: Vec<ExpiredLease> = a
            .expired_leases(later, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.scheduled_at == at)
            .collect();
        assert_eq!(expired.len(), 1, "round {r}: {expired:?}");
        let go = Arc::new(tokio::sync::Barrier::new(3));
        let ids = [eid(200_000 + u128::from(r)), eid(300_000 + u128::from(r))];
        let takers: Vec<_> = [(a.clone(), "ta", ids[0]), (b.clone(), "tb", ids[1])]
            .into_iter()
            .map(|(s, who, id)| {
                let (go, e) = (go.clone(), expired[0].clone());
                tokio::spawn(async move {
                    go.wait().await;
                    s.retake_fire(who, &e, id, later, Duration::from_secs(10), true).await.unwrap()
                })
            })
            .collect();
        let late = {
            let (go, s, ev) = (go.clone(), b.clone(), attempt(2, old, "owner", 1));
            tokio::spawn(async move {
                go.wait().await;
                s.write(&[ev]).await
            })
        };
        let mut won = Vec::new();
        for (i, task) in takers.into_iter().enumerate() {
            if let Some(taken) = task.await.unwrap() {
                won.push((i, taken));
            }
        }
        assert_eq!(won.len(), 1, "round {r}: exactly one take-over: {won:?}");
        let (winner, taken) = won[0];
        let late = late.await.unwrap();
        let written = match &late {
            Ok(()) => true,
            Err(StoreError::Fenced { refused: 1, .. }) => false,
            Err(e) => panic!("round {r}: {e:?}"),
        };
        assert_eq!(taken.fence, 2, "round {r}");
        assert!(taken.had_rows);
        assert_eq!(taken.next_attempt, if written { 3 } else { 2 }, "round {r}: {late:?}");
        let rows: Vec<mscribe_scheduler::ExecutionRecord> = a
            .history(&mscribe_scheduler::HistoryQuery::new("race", 1000))
            .await
            .unwrap()
            .into_iter()
            .filter(|row| row.scheduled_at == at)
            .collect();
        assert_eq!(rows.len(), if written { 2 } else { 1 }, "round {r}: {rows:#?}");
        for row in &rows {
            assert_eq!(row.execution_id, ids[winner], "round {r}: {rows:#?}");
            assert_eq!(row.status, ExecutionStatus::Abandoned, "round {r}: {rows:#?}");
            assert_eq!(row.fence, Some(1));
        }
        // The winner ends the fire; the loser's view is stale.
        let store = if winner == 0 { &a } else { &b };
        let next = attempt(taken.next_attempt, ids[winner], ["ta", "tb"][winner], 2);
        store.write(&[next]).await.unwrap();
        assert!(
            a.expired_leases(t(now + 5_000), 1000)
                .await
                .unwrap()
                .iter()
                .all(|e| e.scheduled_at != at)
        );
        let ExecutionEvent::Started(s) = attempt(taken.next_attempt, ids[winner], "x", 2) else {
            unreachable!()
        };
        let end = AttemptEnd {
            job_id: s.job_id,
            execution_id: s.execution_id,
            attempt: s.attempt,
            scheduled_at: s.scheduled_at,
            started_at: s.started_at,
            instance_id: ["ta", "tb"][winner].into(),
            status: ExecutionStatus::Succeeded,
            completed_at: s.started_at,
            duration: Duration::ZERO,
            error: None,
            error_kind: None,
            result: None,
            metrics: None,
            kind: FireKind::Schedule,
            fence: Some(2),
            ends_run: true,
        };
        store.write(&[ExecutionEvent::Finished(end)]).await.unwrap();
        assert!(
            a.expired_leases(t(now + 50_000), 1000)
                .await
                .unwrap()
                .iter()
                .all(|e| e.scheduled_at != at)
        );
    }
}

/// `rounds` times, two instances (`ia` through `a`, `ib` through `b`) at
/// once claim two fires of a job whose live leases are limited to one:
/// one wins, the other is busy.
pub async fn limited_claims_race(
    a: Arc<dyn ExecutionStore>,
    b: Arc<dyn ExecutionStore>,
    rounds: u32,
) {
    for r in 0..rounds {
        let now = i64::from(r) * 100_000;
        let go = Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = [(a.clone(), "ia", 1), (b.clone(), "ib", 2)]
            .into_iter()
            .map(|(s, who, k)| {
                let go = go.clone();
                let fire = FireClaim {
                    job_id: Arc::from("limited"),
                    scheduled_at: t(now + k),
                    execution_id: eid(u128::from(r) * 10 + k as u128),
                    max_running: Some(1),
                    kind: FireKind::Schedule,
                };
                tokio::spawn(async move {
                    go.wait().await;
                    s.claim_fires(who, &[fire], t(now), LEASE).await.unwrap()
                })
            })
            .collect();
        let mut got = Vec::new();
        for task in tasks {
            got.extend(task.await.unwrap());
        }
        got.sort_by_key(|o| matches!(o, ClaimOutcome::Busy { .. }));
        assert_eq!(
            got,
            [ClaimOutcome::Won { fence: 1 }, ClaimOutcome::Busy { fence: 1, running: 1 }],
            "round {r}"
        );
    }
}
