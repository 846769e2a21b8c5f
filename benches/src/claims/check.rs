//! The database's account of the window, once the instances stopped:
//! every fire of the window's grid counted in `scheduled_job_executions`
//! and `fire_claims` (duplicates, missing fires, claims, start delays).

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

use super::{ClaimsParams, bench_db_options};

/// What the database says about the window's fires.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DbCheck {
    /// Fires (job, nominal time) of the window with at least one row.
    pub fires_with_rows: u64,
    /// Rows of the window's fires.
    pub rows: u64,
    /// Fires with more than one row (one no-op attempt makes one row).
    pub duplicate_fires: u64,
    /// Rows beyond the first of those fires.
    pub extra_rows: u64,
    /// Fires with a `succeeded` row: run.
    pub fires_run: u64,
    /// Fires with more than one `succeeded` row: run twice.
    pub run_twice: u64,
    /// Fires of the window's grid (every job, every nominal time) with no row.
    pub missing: u64,
    /// Rows by status.
    pub statuses: Vec<(String, u64)>,
    /// The reasons of `skipped` rows (their first 100 characters), most
    /// frequent first.
    #[serde(default)]
    pub skip_reasons: Vec<(String, u64)>,
    /// Claim rows of the window's fires.
    pub claims: u64,
    /// Of those, the ones whose lease ended with the fire.
    pub claims_ended: u64,
    /// Of those, the ones taken over (fence above 1).
    pub claims_retaken: u64,
    /// Claim rows written in the wall-clock window (`claimed_at` in it).
    pub claims_written_in_window: u64,
    /// Claim rows of the window's fires, by instance.
    pub claims_by_instance: Vec<(String, u64)>,
    /// `claimed_at - scheduled_at` (the instance's clock when it sent the
    /// claim): p50, p99, max, in milliseconds.
    pub claim_sent_ms: [f64; 3],
    /// `started_at - scheduled_at` of the rows that ran: p50, p99, max, in
    /// milliseconds.
    pub row_start_ms: [f64; 3],
    /// How long the check took, in seconds.
    pub check_s: f64,
}

/// Percentiles (p50, p99, max) of an interval expression over rows, in ms.
fn pct3(v: (Option<f64>, Option<f64>, Option<f64>)) -> [f64; 3] {
    [v.0.unwrap_or(0.0), v.1.unwrap_or(0.0), v.2.unwrap_or(0.0)]
}

/// Counts the window's fires in the database: `first` is the first nominal
/// time in the window, `t1` its end (Unix nanoseconds).
pub(super) async fn check_db(
    p: &ClaimsParams,
    url: &str,
    db: &str,
    first: i64,
    t1: i64,
) -> Result<DbCheck, String> {
    let e = |what: &str| {
        let what = what.to_owned();
        move |e: sqlx::Error| format!("checking the database ({what}): {e}")
    };
    let mut conn =
        PgConnection::connect_with(&bench_db_options(url, db)?).await.map_err(e("connect"))?;
    // The window of nominal times, and the first whole interval in it
    // (the grid of the unphased jobs).
    let iv = p.interval_ms as i64 * 1_000_000;
    let from = DateTime::from_timestamp_nanos(t1 - iv * p.periods() as i64);
    let to = DateTime::from_timestamp_nanos(t1);
    let grid = DateTime::from_timestamp_nanos(first);
    let mut c = DbCheck::default();
    let (fires, rows, dup, extra, run, twice): (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(n), 0)::int8,
                count(*) FILTER (WHERE n > 1), coalesce(sum(n - 1) FILTER (WHERE n > 1), 0)::int8,
                count(*) FILTER (WHERE runs >= 1), count(*) FILTER (WHERE runs > 1)
         FROM (SELECT job_id, scheduled_at, count(*) AS n,
                      count(*) FILTER (WHERE status = 'succeeded') AS runs
               FROM scheduled_job_executions
               WHERE scheduled_at >= $1 AND scheduled_at < $2
               GROUP BY job_id, scheduled_at) AS f",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut conn)
    .await
    .map_err(e("rows per fire"))?;
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    c.fires_with_rows = u(fires);
    c.rows = u(rows);
    c.duplicate_fires = u(dup);
    c.extra_rows = u(extra);
    c.fires_run = u(run);
    c.run_twice = u(twice);
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM scheduled_job_executions
         WHERE scheduled_at >= $1 AND scheduled_at < $2 GROUP BY status ORDER BY 2 DESC",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut conn)
    .await
    .map_err(e("statuses"))?;
    c.statuses = statuses.into_iter().map(|(s, n)| (s, u(n))).collect();
    let reasons: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT left(error, 100), count(*) FROM scheduled_job_executions
         WHERE scheduled_at >= $1 AND scheduled_at < $2 AND status = 'skipped'
         GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut conn)
    .await
    .map_err(e("skip reasons"))?;
    c.skip_reasons = reasons.into_iter().map(|(r, n)| (r.unwrap_or_default(), u(n))).collect();
    // Job i's fires in the window: `first` plus its phase (less an interval
    // when the phase is past the window's half-interval offset), plus whole
    // intervals.
    let missing: i64 = sqlx::query_scalar(
        "SELECT count(*)
         FROM (SELECT i, (i / $4) * $3 / 100 AS phase FROM generate_series(0, $2 - 1) AS j(i)) AS j
         CROSS JOIN generate_series(0, $5 - 1) AS k(n)
         WHERE NOT EXISTS (
             SELECT 1 FROM scheduled_job_executions AS e
             WHERE e.job_id = 'job-' || j.i
               AND e.scheduled_at = $1 + (k.n * $3
                   + CASE WHEN j.phase * 2 < $3 THEN j.phase ELSE j.phase - $3 END)
                   * interval '1 millisecond')",
    )
    .bind(grid)
    .bind(p.jobs as i64)
    .bind(p.interval_ms as i64)
    .bind(p.per_slot() as i64)
    .bind(p.periods() as i64)
    .fetch_one(&mut conn)
    .await
    .map_err(e("missing fires"))?;
    c.missing = u(missing);
    type Claims = (i64, i64, i64, Option<f64>, Option<f64>, Option<f64>);
    let (n, ended, retaken, c50, c99, cmax): Claims = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE ended), count(*) FILTER (WHERE fence > 1),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY l),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l)
         FROM (SELECT *, extract(epoch FROM claimed_at - scheduled_at)::float8 * 1000 AS l
               FROM fire_claims WHERE scheduled_at >= $1 AND scheduled_at < $2) AS c",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut conn)
    .await
    .map_err(e("claims"))?;
    c.claims = u(n);
    c.claims_ended = u(ended);
    c.claims_retaken = u(retaken);
    c.claim_sent_ms = pct3((c50, c99, cmax));
    let written: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM fire_claims WHERE claimed_at >= $1 AND claimed_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut conn)
    .await
    .map_err(e("claims written"))?;
    c.claims_written_in_window = u(written);
    let by: Vec<(String, i64)> = sqlx::query_as(
        "SELECT instance_id, count(*) FROM fire_claims
         WHERE scheduled_at >= $1 AND scheduled_at < $2 GROUP BY 1 ORDER BY 1",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut conn)
    .await
    .map_err(e("claims by instance"))?;
    c.claims_by_instance = by.into_iter().map(|(i, n)| (i, u(n))).collect();
    let starts: (Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l)
         FROM (SELECT extract(epoch FROM started_at - scheduled_at)::float8 * 1000 AS l
               FROM scheduled_job_executions
               WHERE scheduled_at >= $1 AND scheduled_at < $2 AND status = 'succeeded') AS r",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut conn)
    .await
    .map_err(e("row starts"))?;
    c.row_start_ms = pct3(starts);
    let _ = conn.close().await;
    Ok(c)
}
