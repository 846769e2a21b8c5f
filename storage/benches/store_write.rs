//! Records per second through each store, beside the fastest raw rusqlite
//! and raw sqlx code written for the same rows, in the same run.
//!
//! 50,000 attempts of 100 jobs, each a start and an end: 100,000 records,
//! written in calls of 1,000 events, each measured iteration on a fresh
//! database. Two shapes:
//! - `together`: each call holds 500 attempts' starts and their ends (an
//!   attempt shorter than the recorder's flush);
//! - `apart`: each call holds 500 starts and the ends of the 500 attempts
//!   started in the call before (attempts that outlive a flush), so every
//!   end updates a row already written.
//!
//! The raw baselines write the same final rows the fast way: one
//! transaction per call, cached prepared statements, WAL with `synchronous
//! = NORMAL` and the store's page cache and checkpoint interval (SQLite);
//! arrays bound to one `UNNEST` statement per kind of row, `COPY` for the
//! `together` shape, and the same split over two connections at once
//! (Postgres). Whichever is fastest is the baseline. `sqlite_bare_*` runs
//! the raw SQLite code on the table without its four secondary indexes, to
//! show what they cost. `MSCRIBE_STORE_CONNS=3,4` adds the Postgres split
//! over three and four connections.
//!
//! `cargo bench -p mscribe-storage --bench store_write -- --quick`
//!
//! Postgres comes from `MSCRIBE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); without a server the Postgres
//! benches are skipped with a message.
#![allow(missing_docs)]

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use criterion::{Criterion, Throughput, criterion_group};
use mscribe_scheduler::{
    AttemptEnd, AttemptStart, ExecutionEvent, ExecutionId, ExecutionStatus, ExecutionStore,
    FireKind,
};
use mscribe_storage::rusqlite::{self, params};
use mscribe_storage::sqlx::postgres::PgConnectOptions;
use mscribe_storage::sqlx::{self, Connection, PgConnection};
use mscribe_storage::{PostgresOptions, PostgresStore, SqliteStore};

const ATTEMPTS: usize = 50_000;
/// Start and end of each attempt.
const RECORDS: usize = 2 * ATTEMPTS;
/// Events per `write` call.
const CALL: usize = 1_000;
const HALF: usize = CALL / 2;

/// One attempt's final row, the input of every writer.
struct Attempt {
    job_id: String,
    execution_id: ExecutionId,
    scheduled_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    completed_at: DateTime<Utc>,
    duration_ms: i64,
}

fn attempts() -> Vec<Attempt> {
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    (0..ATTEMPTS)
        .map(|i| {
            let at = base + chrono::Duration::milliseconds(i as i64 * 37);
            Attempt {
                job_id: format!("bench-job-{}", i % 100),
                execution_id: ExecutionId::from_u128(
                    0x1234_5678_9abc_def0_0000_0000_0000_0000 | i as u128,
                ),
                scheduled_at: at,
                started_at: at + chrono::Duration::milliseconds(3),
                completed_at: at + chrono::Duration::milliseconds(23),
                duration_ms: 20,
            }
        })
        .collect()
}

const INSTANCE: &str = "bench-instance";

fn start(a: &Attempt) -> ExecutionEvent {
    ExecutionEvent::Started(AttemptStart {
        job_id: a.job_id.as_str().into(),
        execution_id: a.execution_id,
        attempt: 1,
        scheduled_at: a.scheduled_at,
        started_at: a.started_at,
        instance_id: INSTANCE.into(),
        kind: FireKind::Schedule,
        fence: None,
    })
}

fn end(a: &Attempt) -> ExecutionEvent {
    ExecutionEvent::Finished(AttemptEnd {
        job_id: a.job_id.as_str().into(),
        execution_id: a.execution_id,
        attempt: 1,
        scheduled_at: a.scheduled_at,
        started_at: a.started_at,
        instance_id: INSTANCE.into(),
        status: ExecutionStatus::Succeeded,
        completed_at: a.completed_at,
        duration: Duration::from_millis(a.duration_ms as u64),
        error: None,
        error_kind: None,
        result: None,
        metrics: None,
        kind: FireKind::Schedule,
        fence: None,
        ends_run: true,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Together,
    Apart,
}

/// One call's attempts: those it starts and those it ends.
struct Call<'a> {
    starts: &'a [Attempt],
    ends: &'a [Attempt],
}

fn calls(all: &[Attempt], shape: Shape) -> Vec<Call<'_>> {
    let chunks: Vec<&[Attempt]> = all.chunks(HALF).collect();
    match shape {
        Shape::Together => chunks.iter().map(|c| Call { starts: c, ends: c }).collect(),
        Shape::Apart => (0..=chunks.len())
            .map(|k| Call {
                starts: chunks.get(k).copied().unwrap_or(&[]),
                ends: if k == 0 { &[] } else { chunks[k - 1] },
            })
            .collect(),
    }
}

/// The events of each call, as the recorder hands them to a store.
fn event_calls(all: &[Attempt], shape: Shape) -> Vec<Vec<ExecutionEvent>> {
    calls(all, shape)
        .iter()
        .map(|c| match shape {
            Shape::Together => c.starts.iter().flat_map(|a| [start(a), end(a)]).collect(),
            Shape::Apart => c.starts.iter().map(start).chain(c.ends.iter().map(end)).collect(),
        })
        .collect()
}

async fn through_store(store: &dyn ExecutionStore, calls: &[Vec<ExecutionEvent>]) {
    for events in calls {
        store.write(events).await.unwrap();
    }
}

// ---------------------------------------------------------------- raw SQLite

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` without the formatting machinery.
fn ts(t: DateTime<Utc>, out: &mut [u8; 27]) -> &str {
    fn put(out: &mut [u8], mut v: u32) {
        for b in out.iter_mut().rev() {
            *b = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    *out = *b"0000-00-00T00:00:00.000000Z";
    put(&mut out[0..4], t.year() as u32);
    put(&mut out[5..7], t.month());
    put(&mut out[8..10], t.day());
    put(&mut out[11..13], t.hour());
    put(&mut out[14..16], t.minute());
    put(&mut out[17..19], t.second());
    put(&mut out[20..26], t.nanosecond() / 1000);
    std::str::from_utf8(out).unwrap()
}

/// A hyphenated lowercase UUID without the formatting machinery.
fn uuid(id: ExecutionId, out: &mut [u8; 36]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = id.as_u128();
    let mut nibble = 0;
    for (i, b) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            *b = b'-';
        } else {
            *b = HEX[((v >> (124 - 4 * nibble)) & 0xf) as usize];
            nibble += 1;
        }
    }
    std::str::from_utf8(out).unwrap()
}

fn drop_secondary_indexes(path: &std::path::Path) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(
            "DROP INDEX scheduled_job_executions_job_started;
             DROP INDEX scheduled_job_executions_job_scheduled;
             DROP INDEX scheduled_job_executions_started;
             DROP INDEX scheduled_job_executions_running;",
        )
        .unwrap();
}

fn sqlite_raw(path: &std::path::Path, calls: &[Call<'_>], shape: Shape) {
    let mut c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768;
         PRAGMA wal_autocheckpoint = 10000",
    )
    .unwrap();
    let (mut t1, mut t2, mut t3, mut id) = ([0; 27], [0; 27], [0; 27], [0; 36]);
    for call in calls {
        let tx = c.transaction().unwrap();
        {
            if shape == Shape::Together {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO scheduled_job_executions
                         (job_id, execution_id, attempt, status, scheduled_at, started_at,
                          completed_at, duration_ms, instance_id, kind)
                         VALUES (?1, ?2, 1, 'succeeded', ?3, ?4, ?5, ?6, ?7, 'schedule')",
                    )
                    .unwrap();
                for a in call.starts {
                    insert
                        .execute(params![
                            a.job_id,
                            uuid(a.execution_id, &mut id),
                            ts(a.scheduled_at, &mut t1),
                            ts(a.started_at, &mut t2),
                            ts(a.completed_at, &mut t3),
                            a.duration_ms,
                            INSTANCE,
                        ])
                        .unwrap();
                }
            } else {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO scheduled_job_executions
                         (job_id, execution_id, attempt, status, scheduled_at, started_at,
                          instance_id, kind)
                         VALUES (?1, ?2, 1, 'running', ?3, ?4, ?5, 'schedule')",
                    )
                    .unwrap();
                for a in call.starts {
                    insert
                        .execute(params![
                            a.job_id,
                            uuid(a.execution_id, &mut id),
                            ts(a.scheduled_at, &mut t1),
                            ts(a.started_at, &mut t2),
                            INSTANCE,
                        ])
                        .unwrap();
                }
                let mut update = tx
                    .prepare_cached(
                        "UPDATE scheduled_job_executions
                         SET status = 'succeeded', completed_at = ?3, duration_ms = ?4
                         WHERE execution_id = ?1 AND attempt = ?2",
                    )
                    .unwrap();
                for a in call.ends {
                    update
                        .execute(params![
                            uuid(a.execution_id, &mut id),
                            1,
                            ts(a.completed_at, &mut t3),
                            a.duration_ms,
                        ])
                        .unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
}

// -------------------------------------------------------------- raw Postgres

async fn pg_insert(
    conn: &mut PgConnection,
    rows: &[Attempt],
    done: bool,
) -> Result<(), sqlx::Error> {
    let (status, completed, duration): (&str, Vec<_>, Vec<_>) = if done {
        (
            "succeeded",
            rows.iter().map(|a| Some(a.completed_at)).collect(),
            rows.iter().map(|a| Some(a.duration_ms)).collect(),
        )
    } else {
        ("running", vec![None::<DateTime<Utc>>; rows.len()], vec![None::<i64>; rows.len()])
    };
    sqlx::query(
        "INSERT INTO scheduled_job_executions
         (job_id, execution_id, attempt, status, scheduled_at, started_at, completed_at,
          duration_ms, instance_id, kind)
         SELECT j, e, 1, $7, s, t, c, d, $8, 'schedule'
         FROM UNNEST($1::text[], $2::uuid[], $3::timestamptz[], $4::timestamptz[],
                     $5::timestamptz[], $6::int8[]) AS r(j, e, s, t, c, d)",
    )
    .bind(rows.iter().map(|a| a.job_id.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|a| sqlx::types::Uuid::from_u128(a.execution_id.as_u128()))
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|a| a.scheduled_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|a| a.started_at).collect::<Vec<_>>())
    .bind(completed)
    .bind(duration)
    .bind(status)
    .bind(INSTANCE)
    .execute(&mut *conn)
    .await
    .map(drop)
}

async fn pg_update(conn: &mut PgConnection, rows: &[Attempt]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE scheduled_job_executions AS x
         SET status = 'succeeded', completed_at = v.c, duration_ms = v.d
         FROM UNNEST($1::uuid[], $2::timestamptz[], $3::int8[]) AS v(e, c, d)
         WHERE x.execution_id = v.e AND x.attempt = 1",
    )
    .bind(
        rows.iter()
            .map(|a| sqlx::types::Uuid::from_u128(a.execution_id.as_u128()))
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|a| a.completed_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|a| a.duration_ms).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map(drop)
}

/// `COPY` of finished rows in text format.
async fn pg_copy(conn: &mut PgConnection, rows: &[Attempt]) -> Result<(), sqlx::Error> {
    let mut text = String::with_capacity(rows.len() * 160);
    let (mut t1, mut t2, mut t3, mut id) = ([0; 27], [0; 27], [0; 27], [0; 36]);
    for a in rows {
        use std::fmt::Write as _;
        let _ = writeln!(
            text,
            "{}\t{}\t1\tsucceeded\t{}\t{}\t{}\t{}\t{INSTANCE}\tschedule",
            a.job_id,
            uuid(a.execution_id, &mut id),
            ts(a.scheduled_at, &mut t1),
            ts(a.started_at, &mut t2),
            ts(a.completed_at, &mut t3),
            a.duration_ms
        );
    }
    let mut copy = conn
        .copy_in_raw(
            "COPY scheduled_job_executions
             (job_id, execution_id, attempt, status, scheduled_at, started_at, completed_at,
              duration_ms, instance_id, kind) FROM STDIN",
        )
        .await?;
    copy.send(text.as_bytes()).await?;
    copy.finish().await.map(drop)
}

#[derive(Clone, Copy)]
enum PgRaw {
    Unnest,
    Copy,
}

/// One call's rows in one transaction.
async fn raw_call(conn: &mut PgConnection, call: &Call<'_>, shape: Shape, how: PgRaw) {
    let mut tx = conn.begin().await.unwrap();
    match (shape, how) {
        (Shape::Together, PgRaw::Copy) => pg_copy(&mut tx, call.starts).await.unwrap(),
        (Shape::Together, PgRaw::Unnest) => pg_insert(&mut tx, call.starts, true).await.unwrap(),
        (Shape::Apart, _) => {
            if !call.starts.is_empty() {
                pg_insert(&mut tx, call.starts, false).await.unwrap();
            }
            if !call.ends.is_empty() {
                pg_update(&mut tx, call.ends).await.unwrap();
            }
        }
    }
    tx.commit().await.unwrap();
}

/// Every call on one connection, or each call's rows cut in as many parts
/// as there are connections, written at once, a transaction each.
async fn postgres_raw(conns: &mut [PgConnection], calls: &[Call<'_>], shape: Shape, how: PgRaw) {
    let n = conns.len();
    for call in calls {
        if let [one] = conns {
            raw_call(one, call, shape, how).await;
            continue;
        }
        let part = |i: usize| {
            let cut = |v: &[Attempt]| (v.len() * i / n, v.len() * (i + 1) / n);
            let ((s0, s1), (e0, e1)) = (cut(call.starts), cut(call.ends));
            Call { starts: &call.starts[s0..s1], ends: &call.ends[e0..e1] }
        };
        let parts: Vec<Call<'_>> = (0..n).map(part).collect();
        let writes = conns.iter_mut().zip(&parts).map(|(c, p)| raw_call(c, p, shape, how));
        futures::future::join_all(writes).await;
    }
}

struct PgServer {
    admin: PgConnectOptions,
}

impl PgServer {
    async fn find() -> Option<PgServer> {
        let url = std::env::var("MSCRIBE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let admin = PgConnectOptions::from_str(&url).ok()?;
        match PgConnection::connect_with(&admin).await {
            Ok(c) => {
                let _ = c.close().await;
                Some(PgServer { admin })
            }
            Err(e) => {
                eprintln!("store_write: skipping the Postgres benches, no server at {url}: {e}");
                None
            }
        }
    }

    /// A fresh migrated database; its name is hex only, safe to splice.
    async fn fresh(&self) -> (String, PgConnectOptions) {
        let name = format!("mscribe_bench_{:016x}", fastrand::u64(..));
        let mut c = PgConnection::connect_with(&self.admin).await.unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
        let _ = c.close().await;
        let opts = self.admin.clone().database(&name);
        PostgresStore::connect_with(PostgresOptions::from_connect_options(opts.clone()))
            .await
            .unwrap()
            .close()
            .await;
        (name, opts)
    }

    async fn drop_db(&self, name: &str) {
        let mut c = PgConnection::connect_with(&self.admin).await.unwrap();
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c)
            .await
            .unwrap();
        let _ = c.close().await;
    }
}

/// One timed run of each writer, on a fresh database.
struct Runs<'a> {
    rt: &'a tokio::runtime::Runtime,
    pg: Option<&'a PgServer>,
}

impl Runs<'_> {
    fn sqlite_store(&self, events: &[Vec<ExecutionEvent>]) -> Duration {
        let dir = tempfile::tempdir().unwrap();
        let store = self.rt.block_on(SqliteStore::open(dir.path().join("b.db"))).unwrap();
        let t0 = Instant::now();
        self.rt.block_on(through_store(&store, events));
        t0.elapsed()
    }

    /// `bare`: the raw code on the table without its four secondary indexes
    /// (history, last fire, pruning, open attempts), which the store's
    /// queries need: what they cost, not a baseline.
    fn sqlite_raw(&self, calls: &[Call<'_>], shape: Shape, bare: bool) -> Duration {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        drop(self.rt.block_on(SqliteStore::open(&path)).unwrap()); // the same schema
        if bare {
            drop_secondary_indexes(&path);
        }
        let t0 = Instant::now();
        sqlite_raw(&path, calls, shape);
        t0.elapsed()
    }

    fn postgres_store(&self, events: &[Vec<ExecutionEvent>]) -> Duration {
        let pg = self.pg.expect("a Postgres server");
        self.rt.block_on(async {
            let (name, opts) = pg.fresh().await;
            let store = PostgresStore::connect_with(PostgresOptions::from_connect_options(opts))
                .await
                .unwrap();
            store.heartbeat("bench", Utc::now()).await.unwrap(); // open a connection
            let t0 = Instant::now();
            through_store(&store, events).await;
            let took = t0.elapsed();
            store.close().await;
            pg.drop_db(&name).await;
            took
        })
    }

    fn postgres_raw(&self, calls: &[Call<'_>], shape: Shape, how: PgRaw, n: usize) -> Duration {
        let pg = self.pg.expect("a Postgres server");
        self.rt.block_on(async {
            let (name, opts) = pg.fresh().await;
            let mut conns = Vec::new();
            for _ in 0..n {
                conns.push(PgConnection::connect_with(&opts).await.unwrap());
            }
            let t0 = Instant::now();
            postgres_raw(&mut conns, calls, shape, how).await;
            let took = t0.elapsed();
            for c in conns {
                let _ = c.close().await;
            }
            pg.drop_db(&name).await;
            took
        })
    }
}

/// The raw Postgres writers of a shape: how, connections, name suffix.
/// `MSCRIBE_STORE_CONNS=3,4` adds the plain writer on those numbers of
/// connections, each call cut in as many parts (on 2 cores, more than two
/// were no faster: docs/BENCHMARKS.md, "The records path").
fn pg_hows(shape: Shape) -> Vec<(PgRaw, usize, String)> {
    let mut hows = vec![(PgRaw::Unnest, 1, String::new())];
    if let Shape::Together = shape {
        hows.push((PgRaw::Copy, 1, "_copy".to_owned()));
    }
    let extra = std::env::var("MSCRIBE_STORE_CONNS").unwrap_or_default();
    let more = extra.split(',').map(str::trim).filter(|n| !n.is_empty()).map(|n| {
        n.parse::<usize>().ok().filter(|n| *n > 2).unwrap_or_else(|| {
            panic!("MSCRIBE_STORE_CONNS: {n:?} is not a number of connections over 2")
        })
    });
    for n in std::iter::once(2).chain(more) {
        hows.push((PgRaw::Unnest, n, format!("_{n}conn")));
    }
    hows
}

const SHAPES: [(Shape, &str); 2] = [(Shape::Together, "together"), (Shape::Apart, "apart")];

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let all = attempts();
    let mut g = c.benchmark_group("store_write_100k");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(5));
    let pg = rt.block_on(PgServer::find());
    let runs = Runs { rt: &rt, pg: pg.as_ref() };
    let timed = |iters: u64, run: &dyn Fn() -> Duration| (0..iters).map(|_| run()).sum();

    for (shape, tag) in SHAPES {
        let events = event_calls(&all, shape);
        let raw_calls = calls(&all, shape);
        g.bench_function(format!("sqlite_store_{tag}"), |b| {
            b.iter_custom(|iters| timed(iters, &|| runs.sqlite_store(&events)))
        });
        for (name, bare) in [("raw_rusqlite", false), ("bare_rusqlite", true)] {
            g.bench_function(format!("sqlite_{name}_{tag}"), |b| {
                b.iter_custom(|iters| timed(iters, &|| runs.sqlite_raw(&raw_calls, shape, bare)))
            });
        }
        if runs.pg.is_none() {
            continue;
        }
        g.bench_function(format!("postgres_store_{tag}"), |b| {
            b.iter_custom(|iters| timed(iters, &|| runs.postgres_store(&events)))
        });
        for (how, n, suffix) in pg_hows(shape) {
            g.bench_function(format!("postgres_raw_sqlx_{tag}{suffix}"), |b| {
                b.iter_custom(|iters| {
                    timed(iters, &|| runs.postgres_raw(&raw_calls, shape, how, n))
                })
            });
        }
    }
    g.finish();
}

/// `MSCRIBE_STORE_ALTERNATE=ROUNDS`: instead of criterion, each round runs
/// every writer once, in an order that turns each round, and the table
/// printed holds the median records per second of each writer and the
/// median over rounds of the store's ratio to the round's fastest raw
/// writer. On a host whose speed drifts, this pairs each store run with
/// raw runs made beside it. `MSCRIBE_STORE_ONLY=TEXT` keeps the writers
/// whose names contain `TEXT` (`postgres`, `together`, ...).
fn alternate(rounds: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let all = attempts();
    let pg = rt.block_on(PgServer::find());
    let runs = Runs { rt: &rt, pg: pg.as_ref() };
    let rate = |d: Duration| RECORDS as f64 / d.as_secs_f64();
    println!("| writer | records/s (median of {rounds}) | store ÷ fastest raw (median) |");
    println!("|---|---:|---:|");
    for (shape, tag) in SHAPES {
        let events = event_calls(&all, shape);
        let raw_calls = calls(&all, shape);
        type Writer<'w> = (String, bool, Box<dyn Fn() -> Duration + 'w>);
        let mut writers: Vec<Writer<'_>> = vec![
            (format!("sqlite_store_{tag}"), false, Box::new(|| runs.sqlite_store(&events))),
            (
                format!("sqlite_raw_rusqlite_{tag}"),
                false,
                Box::new(|| runs.sqlite_raw(&raw_calls, shape, false)),
            ),
        ];
        if runs.pg.is_some() {
            writers.push((
                format!("postgres_store_{tag}"),
                true,
                Box::new(|| runs.postgres_store(&events)),
            ));
            let (runs, raw_calls) = (&runs, &raw_calls);
            for (how, n, suffix) in pg_hows(shape) {
                writers.push((
                    format!("postgres_raw_sqlx_{tag}{suffix}"),
                    true,
                    Box::new(move || runs.postgres_raw(raw_calls, shape, how, n)),
                ));
            }
        }
        if let Ok(only) = std::env::var("MSCRIBE_STORE_ONLY") {
            writers.retain(|(name, _, _)| name.contains(&only));
        }
        if writers.is_empty() {
            continue;
        }
        let mut rates = vec![Vec::new(); writers.len()];
        for r in 0..rounds {
            for k in 0..writers.len() {
                let i = (k + r) % writers.len();
                rates[i].push(rate((writers[i].2)()));
            }
        }
        for (i, (name, pg_side, _)) in writers.iter().enumerate() {
            let ratio = name.contains("_store_").then(|| {
                let per_round: Vec<f64> = (0..rounds)
                    .map(|r| {
                        let fastest = writers
                            .iter()
                            .enumerate()
                            .filter(|(j, (n, p, _))| {
                                *p == *pg_side && *j != i && n.contains("_raw_")
                            })
                            .map(|(j, _)| rates[j][r])
                            .fold(0.0, f64::max);
                        rates[i][r] / fastest
                    })
                    .collect();
                format!("{:.2}×", median(per_round))
            });
            println!(
                "| {name} | {:.0}k | {} |",
                median(rates[i].clone()) / 1e3,
                ratio.unwrap_or_default()
            );
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

criterion_group!(benches, bench);

fn main() {
    match std::env::var("MSCRIBE_STORE_ALTERNATE").ok().and_then(|v| v.parse().ok()) {
        Some(rounds) => alternate(rounds),
        None => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
