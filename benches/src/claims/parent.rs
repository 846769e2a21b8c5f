//! The parent process: it creates and migrates the bench database, spawns
//! the instances, sends them the window, collects their results, has the
//! database checked, and drops it.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::check::check_db;
use super::{
    ChildParams, ChildResult, ClaimsParams, ClaimsResult, READY, RESULT, bench_db_options, now_ns,
    sample, until,
};
use crate::report::{Mode, load_average};

/// A child process and the lines it printed.
struct Instance {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Instance {
    fn spawn(p: &ChildParams) -> Result<Instance, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let json = serde_json::to_string(p).map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["child", &json])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning instance {}: {e}", p.instance))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == READY || line.starts_with(RESULT) {
                    let _ = tx.send(line);
                }
            }
        });
        Ok(Instance { child, lines })
    }

    fn wait_line(&self, until: Instant, what: &str, i: usize) -> Result<String, String> {
        let left = until.saturating_duration_since(Instant::now());
        self.lines
            .recv_timeout(left)
            .map_err(|_| format!("instance {i} gave no {what} in time (see its messages above)"))
    }

    /// Waits up to `limit` for the process to end, then kills it.
    fn finish(mut self, limit: Duration) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                _ if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

fn git_commit() -> Option<String> {
    let o = Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().ok()?;
    let s = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    (o.status.success() && !s.is_empty()).then_some(s)
}

fn rfc3339(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Runs the benchmark against the server of `url` (its database is used
/// only to create and drop the bench database); `keep_db` leaves the bench
/// database behind.
pub fn run(p: &ClaimsParams, mode: Mode, url: &str, keep_db: bool) -> ClaimsResult {
    let t_all = Instant::now();
    let mut res = ClaimsResult {
        params: p.clone(),
        mode,
        started_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        commit: git_commit(),
        postgres: String::new(),
        window_from: String::new(),
        window_to: String::new(),
        load_before: load_average(),
        load_after: [0.0; 3],
        children: Vec::new(),
        db: None,
        pg_backend_cpu_s: None,
        pg_backends: 0,
        activity: None,
        run_s: 0.0,
        note: None,
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            res.note = Some(format!("tokio runtime: {e}"));
            return res;
        }
    };
    let db = format!("mscribe_bench_claims_{}_{}", Utc::now().timestamp(), std::process::id());
    if let Err(e) = rt.block_on(create_db(url, &db, &mut res)) {
        res.note = Some(e);
        res.load_after = load_average();
        res.run_s = t_all.elapsed().as_secs_f64();
        return res;
    }
    eprintln!("claims: database {db} created and migrated ({})", res.postgres);
    if let Err(e) = measure(&rt, p, url, &db, &mut res) {
        res.note = Some(e);
    }
    if keep_db {
        eprintln!("claims: database {db} kept");
    } else if let Err(e) = rt.block_on(drop_db(url, &db)) {
        eprintln!("claims: could not drop database {db}: {e}");
    }
    res.load_after = load_average();
    res.run_s = t_all.elapsed().as_secs_f64();
    res
}

async fn create_db(url: &str, db: &str, res: &mut ClaimsResult) -> Result<(), String> {
    let admin = PgConnectOptions::from_str(url).map_err(|e| format!("bad Postgres URL: {e}"))?;
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .map_err(|e| format!("Postgres could not be reached: {e}"))?;
    res.postgres = sqlx::query_scalar::<_, String>("SHOW server_version")
        .fetch_one(&mut conn)
        .await
        .map(|v| format!("PostgreSQL {v}"))
        .unwrap_or_default();
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("CREATE DATABASE {db}: {e}"))?;
    let _ = conn.close().await;
    let opts = mscribe_storage::PostgresOptions::from_connect_options(bench_db_options(url, db)?);
    let store = mscribe_storage::PostgresStore::connect_with(opts)
        .await
        .map_err(|e| format!("migrating {db}: {e}"))?;
    store.close().await;
    Ok(())
}

async fn drop_db(url: &str, db: &str) -> Result<(), String> {
    let admin = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
    let mut conn = PgConnection::connect_with(&admin).await.map_err(|e| e.to_string())?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

fn measure(
    rt: &tokio::runtime::Runtime,
    p: &ClaimsParams,
    url: &str,
    db: &str,
    res: &mut ClaimsResult,
) -> Result<(), String> {
    let mut instances = Vec::with_capacity(p.instances);
    for i in 0..p.instances {
        let cp = ChildParams {
            url: url.to_owned(),
            database: db.to_owned(),
            instance: i,
            params: p.clone(),
        };
        instances.push(Instance::spawn(&cp)?);
    }
    let outcome = measure_with(rt, p, url, db, &mut instances, res);
    for inst in instances {
        inst.finish(Duration::from_secs(15));
    }
    let outcome = outcome?;
    let t = Instant::now();
    let mut check = rt.block_on(check_db(p, url, db, outcome.0, outcome.1))?;
    check.check_s = t.elapsed().as_secs_f64();
    res.db = Some(check);
    Ok(())
}

/// Runs the window; the first nominal time in it and the window's end.
fn measure_with(
    rt: &tokio::runtime::Runtime,
    p: &ClaimsParams,
    url: &str,
    db: &str,
    instances: &mut [Instance],
    res: &mut ClaimsResult,
) -> Result<(i64, i64), String> {
    let ready_by = Instant::now() + Duration::from_secs(120);
    for (i, inst) in instances.iter().enumerate() {
        let line = inst.wait_line(ready_by, "READY", i)?;
        if line != READY {
            return Err(format!("instance {i} said {line:?} before READY"));
        }
    }
    eprintln!("claims: {} instances running; warm-up {:.0} s", p.instances, p.warmup_s);
    // The window starts half an interval before a nominal time, after the
    // warm-up, and spans whole intervals.
    let iv = (p.interval_ms * 1_000_000) as i64;
    let earliest = now_ns() + (p.warmup_s * 1e9) as i64;
    let first = (earliest / iv + 1) * iv;
    let t0 = first - iv / 2;
    let t1 = t0 + iv * p.periods() as i64;
    res.window_from = rfc3339(t0);
    res.window_to = rfc3339(t1);
    for (i, inst) in instances.iter_mut().enumerate() {
        let stdin = inst.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{t0} {t1}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("instance {i}: {e}"))?;
    }
    // The Postgres backends' CPU over the window, through a connection of
    // the parent's own (left out of the count).
    if let Some(b) = rt.block_on(sample::backends(url, db, t0, t1)) {
        res.activity = Some(b.activity);
        res.pg_backend_cpu_s = Some(b.cpu_s);
        res.pg_backends = b.count;
    }
    let end =
        Instant::now() + until(t1) + Duration::from_secs_f64(p.grace_s) + Duration::from_secs(90);
    for (i, inst) in instances.iter().enumerate() {
        let line = inst.wait_line(end, "result", i)?;
        let json = line.strip_prefix(RESULT).ok_or_else(|| format!("instance {i}: {line:?}"))?;
        let r: ChildResult = serde_json::from_str(json).map_err(|e| e.to_string())?;
        res.children.push(r);
    }
    Ok((first, t1))
}
