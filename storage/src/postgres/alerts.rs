//! [`PostgresStore`]'s [`AlertStore`] impl, on its pool: a dedupe key is
//! decided by the outbox's unique index, a streak by a row lock, a lease by
//! a conditional upsert.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{StoreError, StoreResult};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use super::store::PostgresStore;
use super::time::{cutoff_param, ts_param};
use crate::alerts::{
    AlertDelivery, AlertQuery, AlertStore, DeliveryAttempt, MAX_ALERT_LIMIT, NewAlert, Streak,
    decode_count, outcome_columns,
};
use crate::codec::Dialect;
use crate::control::{decode_json, rejected};

/// The SQL text of the alert tables.
mod sql {
    /// Makes sure the job's row exists (a failure count of 0 and no fire
    /// counted yet), so that the next statement can lock it.
    pub(super) const ENSURE_JOB_STATE: &str = "INSERT INTO alert_job_state
    (job_id, failures_in_a_row, last_fire_key, updated_at) VALUES ($1, 0, '', $2)
    ON CONFLICT (job_id) DO NOTHING";

    pub(super) const LOCK_JOB_STATE: &str = "SELECT failures_in_a_row, last_fire_key
    FROM alert_job_state WHERE job_id = $1 FOR UPDATE";

    pub(super) const UPDATE_JOB_STATE: &str = "UPDATE alert_job_state
    SET failures_in_a_row = $2, last_fire_key = $3, updated_at = $4 WHERE job_id = $1";

    pub(super) const ENQUEUE: &str = "INSERT INTO alert_outbox
    (dedupe_key, alert, event, job_id, body, created_at, next_attempt_at)
    VALUES ($1, $2, $3, $4, $5::jsonb, $6, $6)
    ON CONFLICT (dedupe_key) DO NOTHING";

    macro_rules! outbox_columns {
        () => {
            "SELECT id, dedupe_key, alert, event, job_id, body::text AS body, created_at, \
             attempts, next_attempt_at, last_attempt_at, last_status, last_error, \
             delivered_at, gave_up_at FROM alert_outbox"
        };
    }

    pub(super) const DUE: &str = concat!(
        outbox_columns!(),
        " WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= $1
    ORDER BY next_attempt_at, id LIMIT $2"
    );

    pub(super) const DELIVERIES: &str = concat!(
        outbox_columns!(),
        " WHERE ($1::text IS NULL OR alert = $1) AND ($2::text IS NULL OR job_id = $2)
    AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    );

    pub(super) const RECORD_ATTEMPT: &str = "UPDATE alert_outbox SET
        attempts = attempts + 1, last_attempt_at = $2, last_status = $3, last_error = $4,
        delivered_at = CASE WHEN $5 THEN $2 END, next_attempt_at = $6,
        gave_up_at = CASE WHEN $7 THEN $2 END
    WHERE id = $1 AND delivered_at IS NULL AND gave_up_at IS NULL";

    pub(super) const TAKE_LEASE: &str = "INSERT INTO alert_leases (name, owner, expires_at)
    VALUES ($1, $2, $4)
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
    WHERE alert_leases.owner = excluded.owner OR alert_leases.expires_at <= $3";

    pub(super) const PRUNE: &str = "DELETE FROM alert_outbox
    WHERE created_at < $1 AND (delivered_at IS NOT NULL OR gave_up_at IS NOT NULL)
        AND id < (SELECT max(id) FROM alert_outbox)";
}

/// Checks a text for Postgres (no NUL character), naming `what`.
fn text(what: &str, s: &str) -> StoreResult<String> {
    Dialect::Postgres.id(what, s).map_err(rejected)
}

fn unreadable(e: sqlx::Error) -> StoreError {
    StoreError::Corrupt { message: format!("unreadable alert_outbox row: {e}") }
}

fn decode_delivery(r: &PgRow) -> StoreResult<AlertDelivery> {
    let get_i32 = |c: &str| r.try_get::<Option<i32>, _>(c).map_err(unreadable);
    let body: String = r.try_get("body").map_err(unreadable)?;
    Ok(AlertDelivery {
        id: r.try_get("id").map_err(unreadable)?,
        dedupe_key: r.try_get("dedupe_key").map_err(unreadable)?,
        alert: r.try_get("alert").map_err(unreadable)?,
        event: r.try_get("event").map_err(unreadable)?,
        job_id: r.try_get("job_id").map_err(unreadable)?,
        body: decode_json("alert body", &body)?,
        created_at: r.try_get("created_at").map_err(unreadable)?,
        attempts: decode_count(get_i32("attempts")?.map_or(0, i64::from)),
        next_attempt_at: r.try_get("next_attempt_at").map_err(unreadable)?,
        last_attempt_at: r.try_get("last_attempt_at").map_err(unreadable)?,
        last_status: get_i32("last_status")?.and_then(|s| u16::try_from(s).ok()),
        last_error: r.try_get("last_error").map_err(unreadable)?,
        delivered_at: r.try_get("delivered_at").map_err(unreadable)?,
        gave_up_at: r.try_get("gave_up_at").map_err(unreadable)?,
    })
}

#[async_trait]
impl AlertStore for PostgresStore {
    async fn record_run_outcome(
        &self,
        job_id: &str,
        fire_key: &str,
        succeeded: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<Streak> {
        let job = text("job id", job_id)?;
        let key = text("fire key", fire_key)?;
        let at = ts_param("updated_at", at).map_err(rejected)?;
        self.op("counting a run in alert_job_state", async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(sql::ENSURE_JOB_STATE).bind(&job).bind(at).execute(&mut *tx).await?;
            let (count, last): (i32, String) =
                sqlx::query_as(sql::LOCK_JOB_STATE).bind(&job).fetch_one(&mut *tx).await?;
            let previous = decode_count(i64::from(count));
            if last == key {
                tx.commit().await?;
                return Ok(Streak { failures_in_a_row: previous, previous, counted: false });
            }
            let now = if succeeded { 0 } else { previous.saturating_add(1) };
            sqlx::query(sql::UPDATE_JOB_STATE)
                .bind(&job)
                .bind(i32::try_from(now).unwrap_or(i32::MAX))
                .bind(&key)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Streak { failures_in_a_row: now, previous, counted: true })
        })
        .await
    }

    async fn enqueue_alerts(&self, alerts: &[NewAlert]) -> StoreResult<Vec<bool>> {
        let mut rows = Vec::with_capacity(alerts.len());
        for a in alerts {
            rows.push((
                text("dedupe key", &a.dedupe_key)?,
                text("alert name", &a.alert)?,
                text("event", &a.event)?,
                a.job_id.as_deref().map(|j| text("job id", j)).transpose()?,
                // NUL characters inside strings become U+FFFD (jsonb holds none).
                Dialect::Postgres.json(&a.body),
                ts_param("created_at", a.created_at).map_err(rejected)?,
            ));
        }
        self.op("writing alert_outbox", async {
            let mut tx = self.pool.begin().await?;
            let mut out = Vec::with_capacity(rows.len());
            for (key, alert, event, job, body, at) in &rows {
                let r = sqlx::query(sql::ENQUEUE)
                    .bind(key)
                    .bind(alert)
                    .bind(event)
                    .bind(job)
                    .bind(body)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                out.push(r.rows_affected() == 1);
            }
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    async fn due_alerts(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<AlertDelivery>> {
        let rows = self
            .op(
                "reading due alerts",
                sqlx::query(sql::DUE)
                    .bind(cutoff_param(now))
                    .bind(limit.min(MAX_ALERT_LIMIT) as i64)
                    .fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(decode_delivery).collect()
    }

    async fn record_delivery_attempt(
        &self,
        id: i64,
        attempt: &DeliveryAttempt,
    ) -> StoreResult<bool> {
        let at = ts_param("attempt time", attempt.at).map_err(rejected)?;
        let (delivered, next, gave_up) = outcome_columns(attempt.outcome);
        let next = next.map(|t| ts_param("next_attempt_at", t)).transpose().map_err(rejected)?;
        let error = attempt.error.as_deref().map(|e| Dialect::Postgres.free_text(e));
        let r = self
            .op(
                "recording an alert delivery",
                sqlx::query(sql::RECORD_ATTEMPT)
                    .bind(id)
                    .bind(at)
                    .bind(attempt.status.map(i32::from))
                    .bind(error)
                    .bind(delivered)
                    .bind(next)
                    .bind(gave_up)
                    .execute(&self.pool),
            )
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn alert_deliveries(&self, q: &AlertQuery) -> StoreResult<Vec<AlertDelivery>> {
        let rows = self
            .op(
                "reading alert_outbox",
                sqlx::query(sql::DELIVERIES)
                    .bind(&q.alert)
                    .bind(&q.job_id)
                    .bind(q.before_id)
                    .bind(q.capped_limit())
                    .fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(decode_delivery).collect()
    }

    async fn take_alert_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let name = text("lease name", name)?;
        let owner = text("lease owner", owner)?;
        let until = ts_param("lease expiry", until).map_err(rejected)?;
        let r = self
            .op(
                "taking an alert lease",
                sqlx::query(sql::TAKE_LEASE)
                    .bind(name)
                    .bind(owner)
                    .bind(cutoff_param(now))
                    .bind(until)
                    .execute(&self.pool),
            )
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn prune_alerts(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = cutoff_param(before);
        self.maintenance("pruning alert_outbox", async {
            let r = sqlx::query(sql::PRUNE).bind(before).execute(&self.pool).await?;
            Ok(r.rows_affected())
        })
        .await
    }
}
