//! [`SqliteStore`]'s [`AlertStore`] impl: reads on the reader threads, each
//! change in one immediate transaction on the writer thread (processes
//! sharing the file take turns, so a dedupe key, a streak and a lease are
//! each decided by one of them).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::StoreResult;
use rusqlite::{OptionalExtension, params};

use super::store::SqliteStore;
use super::time::{cutoff_param, parse_ts, ts_param};
use crate::alerts::{
    AlertDelivery, AlertQuery, AlertStore, DeliveryAttempt, NewAlert, Streak, decode_count,
    outcome_columns,
};
use crate::control::{decode_json, rejected};

/// The SQL text of the alert tables.
mod sql {
    pub(super) const JOB_STATE: &str =
        "SELECT failures_in_a_row, last_fire_key FROM alert_job_state WHERE job_id = ?1";

    pub(super) const UPSERT_JOB_STATE: &str = "INSERT INTO alert_job_state
    (job_id, failures_in_a_row, last_fire_key, updated_at) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (job_id) DO UPDATE SET failures_in_a_row = excluded.failures_in_a_row,
        last_fire_key = excluded.last_fire_key, updated_at = excluded.updated_at";

    pub(super) const ENQUEUE: &str = "INSERT INTO alert_outbox
    (dedupe_key, alert, event, job_id, body, created_at, next_attempt_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
    ON CONFLICT (dedupe_key) DO NOTHING";

    macro_rules! outbox_columns {
        () => {
            "SELECT id, dedupe_key, alert, event, job_id, body, created_at, attempts, \
             next_attempt_at, last_attempt_at, last_status, last_error, delivered_at, \
             gave_up_at FROM alert_outbox"
        };
    }

    pub(super) const DUE: &str = concat!(
        outbox_columns!(),
        " WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= ?1
    ORDER BY next_attempt_at, id LIMIT ?2"
    );

    pub(super) const DELIVERIES: &str = concat!(
        outbox_columns!(),
        " WHERE (?1 IS NULL OR alert = ?1) AND (?2 IS NULL OR job_id = ?2)
    AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
    );

    pub(super) const RECORD_ATTEMPT: &str = "UPDATE alert_outbox SET
        attempts = attempts + 1, last_attempt_at = ?2, last_status = ?3, last_error = ?4,
        delivered_at = CASE WHEN ?5 THEN ?2 END, next_attempt_at = ?6,
        gave_up_at = CASE WHEN ?7 THEN ?2 END
    WHERE id = ?1 AND delivered_at IS NULL AND gave_up_at IS NULL";

    pub(super) const TAKE_LEASE: &str = "INSERT INTO alert_leases (name, owner, expires_at)
    VALUES (?1, ?2, ?4)
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
    WHERE alert_leases.owner = excluded.owner OR alert_leases.expires_at <= ?3";

    pub(super) const PRUNE: &str = "DELETE FROM alert_outbox
    WHERE created_at < ?1 AND (delivered_at IS NOT NULL OR gave_up_at IS NOT NULL)
        AND id < (SELECT max(id) FROM alert_outbox)";
}

/// An `alert_outbox` row before decoding.
struct RawDelivery {
    id: i64,
    dedupe_key: String,
    alert: String,
    event: String,
    job_id: Option<String>,
    body: String,
    created_at: String,
    attempts: i64,
    next_attempt_at: Option<String>,
    last_attempt_at: Option<String>,
    last_status: Option<i64>,
    last_error: Option<String>,
    delivered_at: Option<String>,
    gave_up_at: Option<String>,
}

fn raw_delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDelivery> {
    Ok(RawDelivery {
        id: r.get(0)?,
        dedupe_key: r.get(1)?,
        alert: r.get(2)?,
        event: r.get(3)?,
        job_id: r.get(4)?,
        body: r.get(5)?,
        created_at: r.get(6)?,
        attempts: r.get(7)?,
        next_attempt_at: r.get(8)?,
        last_attempt_at: r.get(9)?,
        last_status: r.get(10)?,
        last_error: r.get(11)?,
        delivered_at: r.get(12)?,
        gave_up_at: r.get(13)?,
    })
}

fn opt_ts(what: &str, s: Option<String>) -> StoreResult<Option<DateTime<Utc>>> {
    s.map(|s| parse_ts(what, &s)).transpose()
}

impl RawDelivery {
    fn decode(self) -> StoreResult<AlertDelivery> {
        Ok(AlertDelivery {
            id: self.id,
            dedupe_key: self.dedupe_key,
            alert: self.alert,
            event: self.event,
            job_id: self.job_id,
            body: decode_json("alert body", &self.body)?,
            created_at: parse_ts("created_at", &self.created_at)?,
            attempts: decode_count(self.attempts),
            next_attempt_at: opt_ts("next_attempt_at", self.next_attempt_at)?,
            last_attempt_at: opt_ts("last_attempt_at", self.last_attempt_at)?,
            last_status: self.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: self.last_error,
            delivered_at: opt_ts("delivered_at", self.delivered_at)?,
            gave_up_at: opt_ts("gave_up_at", self.gave_up_at)?,
        })
    }
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn record_run_outcome(
        &self,
        job_id: &str,
        fire_key: &str,
        succeeded: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<Streak> {
        let at = ts_param("updated_at", at).map_err(rejected)?;
        let (job_id, fire_key) = (job_id.to_owned(), fire_key.to_owned());
        self.in_write_tx("counting a run in alert_job_state", move |c| {
            let row: Option<(i64, String)> = c
                .prepare_cached(sql::JOB_STATE)?
                .query_row(params![job_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let previous = row.as_ref().map_or(0, |(n, _)| decode_count(*n));
            if row.as_ref().is_some_and(|(_, key)| *key == fire_key) {
                return Ok(Streak { failures_in_a_row: previous, previous, counted: false });
            }
            let now = if succeeded { 0 } else { previous.saturating_add(1) };
            c.prepare_cached(sql::UPSERT_JOB_STATE)?.execute(params![
                job_id,
                i64::from(now),
                fire_key,
                at
            ])?;
            Ok(Streak { failures_in_a_row: now, previous, counted: true })
        })
        .await
    }

    async fn enqueue_alerts(&self, alerts: &[NewAlert]) -> StoreResult<Vec<bool>> {
        let rows = alerts
            .iter()
            .map(|a| Ok((a.clone(), ts_param("created_at", a.created_at)?)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(rejected)?;
        self.in_write_tx("writing alert_outbox", move |c| {
            let mut st = c.prepare_cached(sql::ENQUEUE)?;
            rows.iter()
                .map(|(a, at)| {
                    st.execute(params![
                        a.dedupe_key,
                        a.alert,
                        a.event,
                        a.job_id,
                        a.body.to_string(),
                        at
                    ])
                    .map(|n| n == 1)
                })
                .collect()
        })
        .await
    }

    async fn due_alerts(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<AlertDelivery>> {
        let now = cutoff_param(now);
        let limit = limit.min(crate::alerts::MAX_ALERT_LIMIT) as i64;
        let raw: Vec<RawDelivery> = self
            .read("reading due alerts", move |c| {
                c.prepare_cached(sql::DUE)?.query_map(params![now, limit], raw_delivery)?.collect()
            })
            .await?;
        raw.into_iter().map(RawDelivery::decode).collect()
    }

    async fn record_delivery_attempt(
        &self,
        id: i64,
        attempt: &DeliveryAttempt,
    ) -> StoreResult<bool> {
        let at = ts_param("attempt time", attempt.at).map_err(rejected)?;
        let (delivered, next, gave_up) = outcome_columns(attempt.outcome);
        let next = next.map(|t| ts_param("next_attempt_at", t)).transpose().map_err(rejected)?;
        let status = attempt.status.map(i64::from);
        let error = attempt.error.clone();
        self.in_write_tx("recording an alert delivery", move |c| {
            c.prepare_cached(sql::RECORD_ATTEMPT)?
                .execute(params![id, at, status, error, delivered, next, gave_up])
                .map(|n| n == 1)
        })
        .await
    }

    async fn alert_deliveries(&self, q: &AlertQuery) -> StoreResult<Vec<AlertDelivery>> {
        let (alert, job, before, limit) =
            (q.alert.clone(), q.job_id.clone(), q.before_id, q.capped_limit());
        let raw: Vec<RawDelivery> = self
            .read("reading alert_outbox", move |c| {
                c.prepare_cached(sql::DELIVERIES)?
                    .query_map(params![alert, job, before, limit], raw_delivery)?
                    .collect()
            })
            .await?;
        raw.into_iter().map(RawDelivery::decode).collect()
    }

    async fn take_alert_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let now = cutoff_param(now);
        let until = ts_param("lease expiry", until).map_err(rejected)?;
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.in_write_tx("taking an alert lease", move |c| {
            c.prepare_cached(sql::TAKE_LEASE)?
                .execute(params![name, owner, now, until])
                .map(|n| n == 1)
        })
        .await
    }

    async fn prune_alerts(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = cutoff_param(before);
        self.in_write_tx("pruning alert_outbox", move |c| {
            c.prepare_cached(sql::PRUNE)?.execute(params![before]).map(|n| n as u64)
        })
        .await
    }
}
