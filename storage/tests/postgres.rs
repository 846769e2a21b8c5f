//! Postgres-specific behaviour, against a real server (these tests fail,
//! never skip, when it cannot be reached): bad URLs and unreachable hosts,
//! bad input, and an outage in the middle of a run. The schema (migrations,
//! row-level security, the SQL helpers) is tested in `postgres_schema.rs`.

mod common;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mscribe_scheduler::MemoryStore;
use mscribe_scheduler::{ExecutionEvent, ExecutionStatus, ExecutionStore, HistoryQuery};
use mscribe_storage::sqlx;
use mscribe_storage::{Error, PostgresOptions, PostgresProbe, PostgresStore};
use tokio::net::{TcpListener, TcpStream};

async fn store_on(db: &PgTestDb) -> PostgresStore {
    PostgresStore::connect_with(db.store_options()).await.unwrap()
}

#[tokio::test]
async fn prune_forgets_instances_long_silent_without_a_running_row() {
    let db = PgTestDb::create().await;
    prune_after_three_heartbeats(&store_on(&db).await).await;
    let left: Vec<String> =
        sqlx::query_scalar("SELECT instance_id FROM scheduler_instances ORDER BY instance_id")
            .fetch_all(&mut db.connect().await)
            .await
            .unwrap();
    assert_eq!(left, ["busy", "fresh"]);
}

/// Two stores on one database, as two scheduler instances: each fire is
/// won once between them. The claims table has the other tables' access
/// rules: the admin role reads it and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_claim_each_fire_once() {
    let db = PgTestDb::create().await;
    let (a, b) = (store_on(&db).await, store_on(&db).await);
    claims_race(Arc::new(a), Arc::new(b)).await;
    let mut c = db.connect().await;
    sqlx::raw_sql("SET ROLE scheduler_admin").execute(&mut c).await.unwrap();
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM fire_claims").fetch_one(&mut c).await.unwrap();
    assert_eq!(n, 50);
    let e = sqlx::raw_sql("DELETE FROM fire_claims").execute(&mut c).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
}

/// Two stores on one database take over the same expired leases at the
/// same moment, round after round, while the old owner writes: one
/// take-over per fire (the claim row's lock), and the owner's late record
/// written before it (then moved and abandoned by it) or refused after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_take_a_fire_over_once() {
    let db = PgTestDb::create().await;
    let (a, b) = (store_on(&db).await, store_on(&db).await);
    retake_race(Arc::new(a), Arc::new(b), 100).await;
    let mut c = db.connect().await;
    let fences: Vec<(i64, bool, i64)> = sqlx::query_as(
        "SELECT fence, ended, count(*) FROM fire_claims
         WHERE execution_id IS NOT NULL GROUP BY 1, 2",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(fences, [(2, true, 100)]);
}

/// Two stores on one database claim fires of a job limited to one live
/// lease: the job's advisory lock makes them count one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_hold_a_cluster_limit() {
    let db = PgTestDb::create().await;
    let (a, b) = (store_on(&db).await, store_on(&db).await);
    limited_claims_race(Arc::new(a), Arc::new(b), 100).await;
}

/// The column takes only the two kinds, with the other columns' access
/// rules (service_role writes it, scheduler_admin only reads it); a stored
/// text the store does not know (the CHECK dropped) reads as corrupt.
#[tokio::test]
async fn error_kind_is_checked_and_unknown_text_reads_as_corrupt() {
    let db = PgTestDb::create().await;
    let s = store_on(&db).await;
    let mut e = end_with("j", 1, 1, 100, "i1", ExecutionStatus::Failed, 10);
    e.error_kind = Some(mscribe_scheduler::ErrorKind::Transient);
    s.write(&[ExecutionEvent::Finished(e)]).await.unwrap();
    let mut c = db.connect().await;
    sqlx::raw_sql("SET ROLE service_role").execute(&mut c).await.unwrap();
    let kind: Option<String> =
        sqlx::query_scalar("SELECT error_kind FROM scheduled_job_executions")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(kind.as_deref(), Some("transient"));
    let e = sqlx::raw_sql("UPDATE scheduled_job_executions SET error_kind = 'fatal'")
        .execute(&mut c)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23514", "{e}");
    sqlx::raw_sql("UPDATE scheduled_job_executions SET error_kind = 'permanent'")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::raw_sql("RESET ROLE; SET ROLE scheduler_admin").execute(&mut c).await.unwrap();
    let kind: Option<String> =
        sqlx::query_scalar("SELECT error_kind FROM scheduled_job_executions")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(kind.as_deref(), Some("permanent"));
    let e = sqlx::raw_sql("UPDATE scheduled_job_executions SET error_kind = NULL")
        .execute(&mut c)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    sqlx::raw_sql("RESET ROLE").execute(&mut c).await.unwrap();

    sqlx::raw_sql(
        "ALTER TABLE scheduled_job_executions
             DROP CONSTRAINT scheduled_job_executions_error_kind_check;
         UPDATE scheduled_job_executions SET error_kind = 'fatal';",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let err = s.history(&HistoryQuery::new("j", 10)).await.unwrap_err();
    assert!(matches!(&err, mscribe_scheduler::StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("error_kind \"fatal\""), "{err}");
}

fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()).unwrap_or_default()
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn a_malformed_url_is_refused_without_leaking_the_password() {
    for url in [
        "postgres://user:hunter2@db.internal:notaport/ops",
        "postgres://user:hunter2@[::1/ops",
        "not a url at all",
    ] {
        let err = PostgresOptions::new(url).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{url}: {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("invalid database configuration: invalid postgres URL"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(!err.is_transient());
    }
    let err = PostgresStore::connect("postgres://u:hunter2@h:99999/db").await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"));
}

#[tokio::test]
async fn an_unreachable_host_fails_promptly_and_transiently() {
    let t0 = Instant::now();
    let opts = PostgresOptions::new("postgres://postgres@127.0.0.1:1/test")
        .unwrap()
        .connect_timeout(Duration::from_secs(3));
    let err = PostgresStore::connect_with(opts).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_transient());
    let msg = err.to_string();
    assert!(msg.starts_with("cannot connect to postgres database test at 127.0.0.1:1:"), "{msg}");
}

#[tokio::test]
async fn a_missing_database_is_a_clear_permanent_error() {
    let opts: mscribe_storage::sqlx::postgres::PgConnectOptions = pg_url().parse().unwrap();
    let opts = opts.database("mscribe_no_such_database_here");
    let err =
        PostgresStore::connect_with(PostgresOptions::from_connect_options(opts)).await.unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(msg.contains("database \"mscribe_no_such_database_here\" does not exist"), "{msg}");
    assert!(msg.contains("SQLSTATE 3D000"), "{msg}");
}

#[tokio::test]
async fn events_a_store_cannot_hold_are_rejected_and_the_rest_written() {
    let db = PgTestDb::create().await;
    let s = store_on(&db).await;
    bad_events_are_rejected_but_the_rest_written(&s).await;

    // NUL characters: refused in ids, replaced in free text.
    let mut nul_id = start("j\0x", 10, 1, 100, "i1");
    if let ExecutionEvent::Started(a) = &mut nul_id {
        a.job_id = "bad\0job".into();
    }
    let ExecutionEvent::Finished(mut e) = end("k", 11, 1, 100, ExecutionStatus::Failed) else {
        unreachable!()
    };
    e.error = Some("nul\0here".into());
    e.result = Some(serde_json::json!({"s": "a\u{0}b"}));
    let err = s.write(&[nul_id, ExecutionEvent::Finished(e)]).await.unwrap_err();
    assert!(err.to_string().contains("contains a NUL character"), "{err}");
    let got = s.history(&HistoryQuery::new("k", 5)).await.unwrap();
    assert_eq!(got[0].error.as_deref(), Some("nul\u{fffd}here"));
    assert_eq!(got[0].result, Some(serde_json::json!({"s": "a\u{fffd}b"})));
}

// ------------------------------------------------------------------ outage

/// A TCP proxy the test controls: `up` forwards to Postgres, `down` cuts
/// every connection and refuses new ones.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

const UP: u8 = 0;
const DOWN: u8 = 1;

impl Proxy {
    async fn start(upstream: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(UP));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (m, cs) = (mode.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if m.load(Ordering::SeqCst) == DOWN {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                cs.lock().unwrap().push(task);
            }
        });
        Proxy { port, mode, conns, accept }
    }

    fn down(&self) {
        self.mode.store(DOWN, Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn up(&self) {
        self.mode.store(UP, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
        self.accept.abort();
    }
}

/// Writes through the store as the engine does: batches wait in a bounded
/// buffer and are retried, in order, until the store takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_run_loses_and_duplicates_nothing() {
    let db = PgTestDb::create().await;
    store_on(&db).await.close().await; // migrate directly
    let proxy = Proxy::start((db.options.get_host().to_owned(), db.options.get_port())).await;
    let store = PostgresStore::connect_with(
        PostgresOptions::from_connect_options(db.options.clone().port(proxy.port))
            .max_connections(3)
            .acquire_timeout(Duration::from_millis(500))
            .operation_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let probe = PostgresProbe::new(&store).timeout(Duration::from_secs(1));
    // Unbounded: the model keeps every row, as a database does.
    let model = MemoryStore::unbounded();

    let mut buffer: std::collections::VecDeque<Vec<ExecutionEvent>> = Default::default();
    let (mut failures, mut slowest_failure) = (0, Duration::ZERO);
    let mut open: Vec<u128> = Vec::new();
    let mut next_id = 0u128;
    for step in 0..40 {
        // Each step: start 5 runs, finish the runs started last step.
        let mut batch = Vec::new();
        for id in open.drain(..) {
            batch.push(end("outage", id, 1, id as i64 * 10, ExecutionStatus::Succeeded));
        }
        for _ in 0..5 {
            batch.push(start("outage", next_id, 1, next_id as i64 * 10, "i1"));
            open.push(next_id);
            next_id += 1;
        }
        model.write(&batch).await.unwrap();
        buffer.push_back(batch);
        assert!(buffer.len() <= 64, "the test's buffer is bounded");

        match step {
            10 => proxy.down(),
            // Cut the line while a write is in flight: its outcome is unknown.
            20 => {
                let cut = async {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    proxy.down();
                };
                let w = store.write(buffer.front().unwrap());
                let (r, ()) = tokio::join!(w, cut);
                if r.is_ok() {
                    buffer.pop_front();
                }
            }
            16 | 26 => {
                let report = probe.check().await;
                assert!(!report.ok, "the probe sees the outage: {report:?}");
                proxy.up();
            }
            _ => {}
        }
        while let Some(b) = buffer.front() {
            let t0 = Instant::now();
            match store.write(b).await {
                Ok(()) => {
                    buffer.pop_front();
                }
                Err(e) => {
                    assert!(e.is_transient(), "{e}");
                    failures += 1;
                    slowest_failure = slowest_failure.max(t0.elapsed());
                    break;
                }
            }
        }
    }
    // Recovered: drain what is left, retrying like the engine.
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in open.drain(..) {
        let b = vec![end("outage", id, 1, id as i64 * 10, ExecutionStatus::Succeeded)];
        model.write(&b).await.unwrap();
        buffer.push_back(b);
    }
    while let Some(b) = buffer.front() {
        match store.write(b).await {
            Ok(()) => {
                buffer.pop_front();
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "store did not recover: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    eprintln!("outage: {failures} failed writes, slowest failure {slowest_failure:?}");
    assert!(failures >= 2, "the outage was felt: {failures} failed writes");
    assert!(
        slowest_failure < Duration::from_secs(3),
        "writes failed promptly: {slowest_failure:?}"
    );
    assert!(probe.check().await.ok);

    // Every record exactly once, as the reference store has it.
    let mut direct = db.connect().await;
    let dupes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT execution_id, attempt FROM scheduled_job_executions
         GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .fetch_one(&mut direct)
    .await
    .unwrap();
    assert_eq!(dupes, 0);
    let q = HistoryQuery::new("outage", 10_000);
    let got = store.history(&q).await.unwrap();
    assert_eq!(got.len(), 200);
    assert_eq!(got, model.history(&q).await.unwrap());
    assert!(got.iter().all(|r| r.status == ExecutionStatus::Succeeded));
}

/// A live server that does not answer (a lock held elsewhere) makes a write
/// time out, not hang; the timed-out write may still land, and retrying it
/// is harmless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_writes_out_and_retries_are_idempotent() {
    let db = PgTestDb::create().await;
    let store = PostgresStore::connect_with(
        db.store_options().operation_timeout(Duration::from_millis(700)),
    )
    .await
    .unwrap();
    store.write(&[start("stall", 1, 1, 100, "i1")]).await.unwrap();

    let mut locker = db.connect().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE scheduled_job_executions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let batch =
        [end("stall", 1, 1, 100, ExecutionStatus::Succeeded), start("stall", 2, 1, 200, "i1")];
    let t0 = Instant::now();
    let err = store.write(&batch).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(err.is_transient());
    assert!(err.to_string().contains("write timed out after 700ms"), "{err}");
    sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();

    let mut tries = 0;
    while let Err(e) = store.write(&batch).await {
        tries += 1;
        assert!(tries < 20, "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = store.history(&HistoryQuery::new("stall", 10)).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got.iter().filter(|r| r.status == ExecutionStatus::Succeeded).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sweeps_abandon_each_row_once() {
    let db = PgTestDb::create().await;
    let store = store_on(&db).await;
    let events: Vec<_> = (0..200u128).map(|i| start("sweep", i, 1, i as i64, "dead")).collect();
    store.write(&events).await.unwrap();
    let sweeps = (0..4).map(|k| {
        let s = store.clone();
        tokio::spawn(async move {
            s.mark_abandoned(&format!("me-{k}"), t(1_000_000), Duration::from_secs(1)).await
        })
    });
    let mut seen = Vec::new();
    for r in futures::future::join_all(sweeps).await {
        seen.extend(r.unwrap().unwrap().into_iter().map(|r| r.execution_id));
    }
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!(before, seen.len(), "no row abandoned twice");
    assert_eq!(seen.len(), 200);
}

#[tokio::test]
async fn the_probe_reports_latency_and_failure() {
    let db = PgTestDb::create().await;
    let store = store_on(&db).await;
    let report = PostgresProbe::new(&store).check().await;
    assert!(report.ok, "{report:?}");
    assert!(report.message.is_none());
    assert!(report.latency < Duration::from_secs(2));
    store.close().await;
    let report = PostgresProbe::new(&store).check().await;
    assert!(!report.ok);
    assert!(report.message.unwrap().contains(&db.name));
}

/// A server whose port is closed (connection refused): writes keep failing,
/// each within about the acquire timeout, as transient errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_within_the_acquire_timeout_when_the_port_is_closed() {
    let db = PgTestDb::create().await;
    store_on(&db).await.close().await;
    let proxy = Proxy::start((db.options.get_host().to_owned(), db.options.get_port())).await;
    let store = PostgresStore::connect_with(
        PostgresOptions::from_connect_options(db.options.clone().port(proxy.port))
            .acquire_timeout(Duration::from_millis(400)),
    )
    .await
    .unwrap();
    store.write(&[start("closed", 1, 1, 100, "i1")]).await.unwrap();
    drop(proxy); // listener closed, connections cut
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let t0 = Instant::now();
        let err = store.write(&[start("closed", 2, 1, 200, "i1")]).await.unwrap_err();
        let took = t0.elapsed();
        assert!(err.is_transient(), "{err}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(
            err.to_string().starts_with("store unavailable: postgres database mscribe_test_"),
            "{err}"
        );
    }
}

// ----------------------------------------------------------- control plane

/// A change made through one handle wakes a listener on another at once,
/// with a payload naming it; a rolled-back change (here: refused) sends
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_changes_wake_listeners_on_other_handles() {
    use mscribe_storage::{ControlStore, NewCancel, NewTrigger, PauseChange, Source};
    let db = PgTestDb::create().await;
    let (a, b) = (store_on(&db).await, store_on(&db).await);
    let mut listener = b.control_listener().await.unwrap();
    let change = |paused| PauseChange {
        paused,
        note: None,
        source: Source::Api,
        instance_id: "a".into(),
        at: t(0),
    };

    let started = Instant::now();
    a.set_paused("backup", &change(true)).await.unwrap();
    let got = listener.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.as_deref(), Some("pause:backup"));
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());

    let trigger = NewTrigger {
        job_id: "backup".into(),
        note: None,
        source: Source::Api,
        instance_id: "a".into(),
        at: t(0),
        take: false,
    };
    a.request_trigger(&trigger).await.unwrap();
    let got = listener.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.as_deref(), Some("trigger:backup"));
    let cancel = NewCancel {
        execution_id: "e1".into(),
        job_id: None,
        note: None,
        source: Source::Api,
        instance_id: "a".into(),
        at: t(0),
    };
    a.request_cancel(&cancel).await.unwrap();
    let got = listener.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.as_deref(), Some("cancel:e1"));

    // A NUL in the note: refused before anything is sent.
    let mut bad = change(false);
    bad.note = Some("a\0b".into());
    let e = a.set_paused("backup", &bad).await.unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
    assert_eq!(listener.recv_timeout(Duration::from_millis(300)).await.unwrap(), None);
    assert!(b.pause_state("backup").await.unwrap().unwrap().paused);

    // A long job id is cut in the payload, not refused.
    let long = "j".repeat(5000);
    a.set_paused(&long, &change(true)).await.unwrap();
    let got = listener.recv_timeout(Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!(got.chars().count(), 1000);
    assert!(got.starts_with("pause:jjj"));
    drop(listener);
    a.close().await;
    b.close().await;
}

/// A listener whose connection is killed reconnects: its next `recv`
/// answers `None` (notifications may have been missed), and later changes
/// arrive again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_listener_survives_a_lost_connection() {
    use mscribe_storage::{ControlStore, PauseChange, Source};
    let db = PgTestDb::create().await;
    let (a, b) = (store_on(&db).await, store_on(&db).await);
    let mut listener = b.control_listener().await.unwrap();
    let mut admin = db.connect().await;
    sqlx::raw_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND query LIKE 'LISTEN%'",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let mut reconnected = false;
    let change = PauseChange {
        paused: true,
        note: None,
        source: Source::Cli,
        instance_id: "a".into(),
        at: t(0),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no notification after the reconnect");
        match listener.recv_timeout(Duration::from_millis(500)).await {
            Ok(Some(p)) if reconnected => {
                assert_eq!(p, "pause:j");
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                reconnected = true;
                a.set_paused("j", &change).await.unwrap();
            }
        }
    }
}
