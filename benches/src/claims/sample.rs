//! Watching the Postgres backends that serve the bench database over the
//! window: their CPU time from `/proc`, what they are doing from
//! `pg_stat_activity`, and the machine's CPU pressure.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

use super::{bench_db_options, now_ns, until};
use crate::measure::{HistogramSnapshot, LatencyHistogram};

/// What the backends serving the bench database did over a window.
#[derive(Debug)]
pub(super) struct Backends {
    /// Their CPU time over the window, in seconds.
    pub(super) cpu_s: f64,
    /// How many there were at its end.
    pub(super) count: usize,
    /// What they were doing, the most frequent first.
    pub(super) activity: Activity,
}

/// Samples the backends serving `db` over the window `[t0, t1)` (Unix
/// nanoseconds), through a connection of the parent's own (left out of the
/// count); `None` when the database could not be reached or no backend was
/// left at the end.
pub(super) async fn backends(url: &str, db: &str, t0: i64, t1: i64) -> Option<Backends> {
    let mut conn = PgConnection::connect_with(&bench_db_options(url, db).ok()?).await.ok()?;
    tokio::time::sleep(until(t0)).await;
    let before = backend_cpu(&mut conn, db).await;
    let mut activity = Activity::default();
    let rtt = LatencyHistogram::new();
    let (psi0, w0) = (cpu_pressure_total(), Instant::now());
    while now_ns() < t1 {
        activity.sample(&mut conn, db, &rtt).await;
        tokio::time::sleep(until(t1).min(Duration::from_millis(25))).await;
    }
    activity.probe_rtt = rtt.snapshot();
    if let (Some(a), Some(b)) = (psi0, cpu_pressure_total()) {
        activity.cpu_pressure = Some(b.saturating_sub(a) as f64 / 1e6 / w0.elapsed().as_secs_f64());
    }
    let after = backend_cpu(&mut conn, db).await;
    let _ = conn.close().await;
    if after.is_empty() {
        return None;
    }
    activity.rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    let base: HashMap<i32, Duration> = before.into_iter().collect();
    let used: Duration = after
        .iter()
        .map(|(pid, c)| c.saturating_sub(base.get(pid).copied().unwrap_or_default()))
        .sum();
    Some(Backends { cpu_s: used.as_secs_f64(), count: after.len(), activity })
}

/// What the backends serving the bench database were doing: samples of
/// `pg_stat_activity`, counted by statement and by state or wait event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Activity {
    /// How many samples were taken.
    pub samples: u64,
    /// Idle backends, summed over the samples.
    pub idle: u64,
    /// `(statement, state or wait, backends summed over the samples)`.
    pub rows: Vec<(String, String, u64)>,
    /// Round trip of each sampling query (a read of `pg_stat_activity`
    /// from the parent process): the machine's and the server's latency
    /// for a trivial statement under the load of the moment.
    #[serde(default)]
    pub probe_rtt: HistogramSnapshot,
    /// The share of the window in which some runnable task waited for a
    /// CPU (`/proc/pressure/cpu`, "some"), when the kernel reports it.
    #[serde(default)]
    pub cpu_pressure: Option<f64>,
}

/// A backend's state, wait event type, wait event and statement.
type ActivityRow = (Option<String>, Option<String>, Option<String>, Option<String>);

impl Activity {
    async fn sample(&mut self, conn: &mut PgConnection, db: &str, rtt: &LatencyHistogram) {
        let t = Instant::now();
        let rows: Vec<ActivityRow> = match sqlx::query_as(
            "SELECT state, wait_event_type, wait_event, left(query, 60)
                 FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(db)
        .fetch_all(conn)
        .await
        {
            Ok(r) => r,
            Err(_) => return,
        };
        rtt.record(t.elapsed());
        self.samples += 1;
        for (state, wait_type, wait, query) in rows {
            let state = state.unwrap_or_default();
            if state == "idle" {
                self.idle += 1;
                continue;
            }
            let what = statement_kind(query.as_deref().unwrap_or(""));
            let how = match (state.as_str(), wait_type, wait) {
                ("active", Some(t), Some(w)) => format!("waiting: {t} {w}"),
                ("active", _, _) => "running (on CPU or runnable)".to_owned(),
                ("idle in transaction", ..) => {
                    "idle in transaction (waiting for the client)".to_owned()
                }
                (other, ..) => other.to_owned(),
            };
            match self.rows.iter_mut().find(|r| r.0 == what && r.1 == how) {
                Some(r) => r.2 += 1,
                None => self.rows.push((what.to_owned(), how, 1)),
            }
        }
    }
}

/// CPU time (user + system) of a process, from `/proc/PID/stat`.
fn proc_cpu(pid: i32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line; `rest` starts at field 3.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
    Some(Duration::from_secs_f64(ticks as f64 / hz.max(1) as f64))
}

/// The CPU time of each backend serving `db`, but this connection's.
async fn backend_cpu(conn: &mut PgConnection, db: &str) -> Vec<(i32, Duration)> {
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .fetch_all(conn)
    .await
    .unwrap_or_default();
    pids.into_iter().filter_map(|p| Some((p, proc_cpu(p)?))).collect()
}

/// The "some" total of `/proc/pressure/cpu`: microseconds in which some
/// runnable task waited for a CPU, since boot.
fn cpu_pressure_total() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let line = s.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace().find_map(|f| f.strip_prefix("total=")?.parse().ok())
}

/// Names a statement of the store by its text's start.
fn statement_kind(q: &str) -> &'static str {
    let q = q.trim_start();
    let kinds = [
        ("INSERT INTO fire_claims", "claim (`INSERT INTO fire_claims`)"),
        ("INSERT INTO scheduled_job_executions", "record insert"),
        ("SELECT c.job_id, c.scheduled_at, c.fence", "fence lock (`SELECT .. FOR NO KEY UPDATE`)"),
        ("UPDATE fire_claims AS c SET ended", "lease end (`UPDATE fire_claims`)"),
        ("UPDATE scheduled_job_executions", "record end update"),
        ("WITH held", "lease renewal"),
        ("SELECT job_id, scheduled_at, execution_id", "expired leases"),
        ("COMMIT", "COMMIT"),
        ("BEGIN", "BEGIN"),
    ];
    kinds.iter().find(|(p, _)| q.starts_with(p)).map_or("other", |(_, k)| k)
}
