//! [`SqliteStore`]'s [`HourlyMetricsStore`] impl: reads on the reader
//! threads, writes on the writer thread.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::StoreError;
use mscribe_scheduler::StoreResult;
use rusqlite::{TransactionBehavior, params};

use super::error::store_error;
use super::sql;
use super::store::SqliteStore;
use super::time::{cutoff_param, parse_ts, ts_param};
use crate::codec;
use crate::hourly::{AttemptRow, HourlyMetricsStore, HourlyRow, count_i64, count_u64};

/// An `attempts_between` row before decoding.
type RawAttempt = (String, String, i64, String, String, Option<i64>);

/// An `hourly` row before decoding.
type RawHourly = (String, String, [i64; 4], Option<f64>, Option<i64>, Option<i64>);

#[async_trait]
impl HourlyMetricsStore for SqliteStore {
    async fn attempts_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<AttemptRow>> {
        let (from, to) = (cutoff_param(from), cutoff_param(to));
        let w = self.worker();
        let raw = w
            .on_reader("reading executions", w.limits().maintenance_timeout, move |c| {
                let mut st = c.prepare_cached(sql::ATTEMPTS_BETWEEN).map_err(read_error)?;
                st.query_map(params![from, to], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<RawAttempt>>>())
                .map_err(read_error)
            })
            .await?;
        raw.into_iter()
            .map(|(job_id, execution_id, attempt, status, scheduled_at, duration_ms)| {
                Ok(AttemptRow {
                    job_id,
                    execution_id,
                    attempt: codec::decode_u32("attempt", attempt)?,
                    status: codec::decode_status(&status)?,
                    scheduled_at: parse_ts("scheduled_at", &scheduled_at)?,
                    duration_ms: duration_ms.map(codec::decode_ms).transpose()?,
                })
            })
            .collect()
    }

    async fn upsert_hourly(&self, rows: &[HourlyRow], now: DateTime<Utc>) -> StoreResult<()> {
        let rejected = |message| StoreError::Rejected { message, source: None };
        let now = ts_param("updated_at", now).map_err(rejected)?;
        let rows = rows
            .iter()
            .map(|r| Ok((r.clone(), ts_param("hour_start", r.hour_start)?)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(rejected)?;
        let w = self.worker();
        w.on_writer("writing job_metrics_hourly", w.limits().maintenance_timeout, move |c| {
            let failed = |e| store_error("writing job_metrics_hourly", e);
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
            {
                let mut st = tx.prepare_cached(sql::UPSERT_HOURLY).map_err(failed)?;
                for (r, hour_start) in &rows {
                    st.execute(params![
                        r.job_id,
                        hour_start,
                        count_i64(r.runs),
                        count_i64(r.successes),
                        count_i64(r.failures),
                        count_i64(r.skipped),
                        r.success_rate,
                        r.p50_ms.map(count_i64),
                        r.p95_ms.map(count_i64),
                        now,
                    ])
                    .map_err(failed)?;
                }
            }
            tx.commit().map_err(failed)
        })
        .await
    }

    async fn hourly(&self, job_id: Option<&str>) -> StoreResult<Vec<HourlyRow>> {
        let job = job_id.map(str::to_owned);
        let w = self.worker();
        let failed = |e| store_error("reading job_metrics_hourly", e);
        let raw = w
            .on_reader("reading job_metrics_hourly", w.limits().maintenance_timeout, move |c| {
                let mut st = c.prepare_cached(sql::HOURLY).map_err(failed)?;
                st.query_map(params![job], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<RawHourly>>>())
                .map_err(failed)
            })
            .await?;
        raw.into_iter()
            .map(|(job_id, hour, n, success_rate, p50, p95)| {
                Ok(HourlyRow {
                    job_id,
                    hour_start: parse_ts("hour_start", &hour)?,
                    runs: count_u64(n[0]),
                    successes: count_u64(n[1]),
                    failures: count_u64(n[2]),
                    skipped: count_u64(n[3]),
                    success_rate,
                    p50_ms: p50.map(count_u64),
                    p95_ms: p95.map(count_u64),
                })
            })
            .collect()
    }

    async fn prune_hourly(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = cutoff_param(before);
        let w = self.worker();
        w.on_writer("pruning job_metrics_hourly", w.limits().maintenance_timeout, move |c| {
            c.execute(sql::PRUNE_HOURLY, params![before])
                .map(|n| n as u64)
                .map_err(|e| store_error("pruning job_metrics_hourly", e))
        })
        .await
    }
}

fn read_error(e: rusqlite::Error) -> StoreError {
    store_error("reading executions", e)
}
