//! [`PostgresStore`]'s [`HourlyMetricsStore`] impl, on its pool.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::StoreResult;

use super::sql;
use super::store::{PostgresStore, rejected};
use super::time::{cutoff_param, ts_param};
use crate::codec::{self, Dialect};
use crate::hourly::{AttemptRow, HourlyMetricsStore, HourlyRow, count_i64, count_u64};

/// An `attempts_between` row before decoding.
type RawAttempt = (String, String, i32, String, DateTime<Utc>, Option<i64>);

/// An `hourly` row before decoding.
type RawHourly = (String, DateTime<Utc>, i64, i64, i64, i64, Option<f64>, Option<i64>, Option<i64>);

#[async_trait]
impl HourlyMetricsStore for PostgresStore {
    async fn attempts_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<AttemptRow>> {
        let rows: Vec<RawAttempt> = self
            .maintenance(
                "reading executions",
                sqlx::query_as(sql::ATTEMPTS_BETWEEN)
                    .bind(cutoff_param(from))
                    .bind(cutoff_param(to))
                    .fetch_all(&self.pool),
            )
            .await?;
        rows.into_iter()
            .map(|(job_id, execution_id, attempt, status, scheduled_at, duration_ms)| {
                Ok(AttemptRow {
                    job_id,
                    execution_id,
                    attempt: codec::decode_u32("attempt", i64::from(attempt))?,
                    status: codec::decode_status(&status)?,
                    scheduled_at,
                    duration_ms: duration_ms.map(codec::decode_ms).transpose()?,
                })
            })
            .collect()
    }

    async fn upsert_hourly(&self, rows: &[HourlyRow], now: DateTime<Utc>) -> StoreResult<()> {
        let now = ts_param("updated_at", now).map_err(rejected)?;
        let checked = rows
            .iter()
            .map(|r| {
                Ok((
                    r,
                    Dialect::Postgres.id("job id", &r.job_id)?,
                    ts_param("hour_start", r.hour_start)?,
                ))
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(rejected)?;
        self.maintenance("writing job_metrics_hourly", async {
            let mut tx = self.pool.begin().await?;
            for (r, job_id, hour_start) in &checked {
                sqlx::query(sql::UPSERT_HOURLY)
                    .bind(job_id)
                    .bind(hour_start)
                    .bind(count_i64(r.runs))
                    .bind(count_i64(r.successes))
                    .bind(count_i64(r.failures))
                    .bind(count_i64(r.skipped))
                    .bind(r.success_rate)
                    .bind(r.p50_ms.map(count_i64))
                    .bind(r.p95_ms.map(count_i64))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
        .await
    }

    async fn hourly(&self, job_id: Option<&str>) -> StoreResult<Vec<HourlyRow>> {
        let rows: Vec<RawHourly> = self
            .maintenance(
                "reading job_metrics_hourly",
                sqlx::query_as(sql::HOURLY).bind(job_id).fetch_all(&self.pool),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(job_id, hour_start, runs, successes, failures, skipped, rate, p50, p95)| {
                HourlyRow {
                    job_id,
                    hour_start,
                    runs: count_u64(runs),
                    successes: count_u64(successes),
                    failures: count_u64(failures),
                    skipped: count_u64(skipped),
                    success_rate: rate,
                    p50_ms: p50.map(count_u64),
                    p95_ms: p95.map(count_u64),
                }
            })
            .collect())
    }

    async fn prune_hourly(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.maintenance(
            "pruning job_metrics_hourly",
            sqlx::query(sql::PRUNE_HOURLY).bind(cutoff_param(before)).execute(&self.pool),
        )
        .await
        .map(|r| r.rows_affected())
    }
}
