//! Writing 100,000 execution records (one `Started` event each, in batches
//! of 1,000) through each store, beside a raw rusqlite and a raw sqlx
//! batched insert of the same rows into the same schema, in the same run.
//! Each measured iteration starts from a fresh database.
//!
//! `cargo bench -p mscribe-storage --bench store_write -- --quick`
//!
//! Postgres comes from `MSCRIBE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); without a server the Postgres
//! benches are skipped with a message.
#![allow(missing_docs)]

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mscribe_scheduler::{AttemptStart, ExecutionEvent, ExecutionId, ExecutionStore, FireKind};
use mscribe_storage::rusqlite::{self, params};
use mscribe_storage::sqlx::postgres::PgConnectOptions;
use mscribe_storage::sqlx::{self, Connection, PgConnection, QueryBuilder};
use mscribe_storage::{PostgresOptions, PostgresStore, SqliteStore};

const RECORDS: usize = 100_000;
const BATCH: usize = 1_000;

fn events() -> Vec<ExecutionEvent> {
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    (0..RECORDS)
        .map(|i| {
            let at = base + chrono::Duration::milliseconds(i as i64 * 37);
            ExecutionEvent::Started(AttemptStart {
                job_id: format!("bench-job-{}", i % 100).into(),
                execution_id: ExecutionId::from_u128(
                    0x1234_5678_9abc_def0_0000_0000_0000_0000 | i as u128,
                ),
                attempt: 1,
                scheduled_at: at,
                started_at: at + chrono::Duration::milliseconds(3),
                instance_id: "bench-instance".into(),
                kind: FireKind::Schedule,
                fence: None,
            })
        })
        .collect()
}

/// The same rows as plain tuples, for the raw baselines.
struct RawRow {
    job_id: String,
    execution_id: ExecutionId,
    scheduled_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    instance_id: String,
}

fn raw_rows(events: &[ExecutionEvent]) -> Vec<RawRow> {
    events
        .iter()
        .map(|e| match e {
            ExecutionEvent::Started(s) => RawRow {
                job_id: s.job_id.to_string(),
                execution_id: s.execution_id,
                scheduled_at: s.scheduled_at,
                started_at: s.started_at,
                instance_id: s.instance_id.to_string(),
            },
            _ => unreachable!(),
        })
        .collect()
}

async fn through_store(store: &dyn ExecutionStore, events: &[ExecutionEvent]) {
    for batch in events.chunks(BATCH) {
        store.write(batch).await.unwrap();
    }
}

fn sqlite_raw(path: &std::path::Path, rows: &[RawRow]) {
    let mut c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL").unwrap();
    for batch in rows.chunks(BATCH) {
        let tx = c.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO scheduled_job_executions
                     (job_id, execution_id, attempt, status, scheduled_at, started_at, instance_id)
                     VALUES (?1, ?2, 1, 'running', ?3, ?4, ?5)",
                )
                .unwrap();
            for r in batch {
                stmt.execute(params![
                    r.job_id,
                    r.execution_id.to_string(),
                    r.scheduled_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                    r.started_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                    r.instance_id,
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
}

async fn postgres_raw(conn: &mut PgConnection, rows: &[RawRow]) {
    for batch in rows.chunks(BATCH) {
        let mut qb = QueryBuilder::new(
            "INSERT INTO scheduled_job_executions
             (job_id, execution_id, attempt, status, scheduled_at, started_at, instance_id) ",
        );
        qb.push_values(batch, |mut b, r| {
            b.push_bind(&r.job_id)
                .push_bind(r.execution_id.to_string())
                .push_unseparated("::uuid")
                .push_bind(1_i32)
                .push_bind("running")
                .push_bind(r.scheduled_at)
                .push_bind(r.started_at)
                .push_bind(&r.instance_id);
        });
        qb.build().execute(&mut *conn).await.unwrap();
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

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let events = events();
    let rows = raw_rows(&events);
    let mut g = c.benchmark_group("store_write_100k");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(5));

    g.bench_function("sqlite_store", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let store = rt.block_on(SqliteStore::open(dir.path().join("b.db"))).unwrap();
                let t0 = Instant::now();
                rt.block_on(through_store(&store, &events));
                total += t0.elapsed();
            }
            total
        })
    });

    g.bench_function("sqlite_raw_rusqlite", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("b.db");
                drop(rt.block_on(SqliteStore::open(&path)).unwrap()); // the same schema
                let t0 = Instant::now();
                sqlite_raw(&path, &rows);
                total += t0.elapsed();
            }
            total
        })
    });

    if let Some(pg) = rt.block_on(PgServer::find()) {
        g.bench_function("postgres_store", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (name, opts) = pg.fresh().await;
                        let store = PostgresStore::connect_with(
                            PostgresOptions::from_connect_options(opts),
                        )
                        .await
                        .unwrap();
                        store.write(&events[..1]).await.unwrap(); // open a pooled connection
                        let t0 = Instant::now();
                        through_store(&store, &events[1..]).await;
                        total += t0.elapsed();
                        store.close().await;
                        pg.drop_db(&name).await;
                    }
                    total
                })
            })
        });

        g.bench_function("postgres_raw_sqlx", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (name, opts) = pg.fresh().await;
                        let mut conn = PgConnection::connect_with(&opts).await.unwrap();
                        postgres_raw(&mut conn, &rows[..1]).await;
                        let t0 = Instant::now();
                        postgres_raw(&mut conn, &rows[1..]).await;
                        total += t0.elapsed();
                        let _ = conn.close().await;
                        pg.drop_db(&name).await;
                    }
                    total
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
