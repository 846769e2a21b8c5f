//! [`PostgresStore`]'s [`ControlStore`] impl, on its pool, and
//! [`ControlListener`]: every change that other instances must see sends
//! `pg_notify('mscribe_control', ..)` in its own transaction, so a listener
//! wakes as soon as it commits (and never for a change rolled back).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{StoreError, StoreResult};
use sqlx::postgres::{PgListener, PgRow};
use sqlx::{PgConnection, Row as _};

use super::error::store_error;
use super::store::PostgresStore;
use super::time::{cutoff_param, ts_param};
use crate::codec::Dialect;
use crate::control::{
    AuditEntry, AuditQuery, AuditRecord, BackfillLockOutcome, CancelRequest, ControlStore,
    JobDefinition, MAX_TAKE, NOTIFY_CHANNEL, NewCancel, NewTrigger, PauseChange, PauseState,
    TriggerRequest, decode_json, decode_version, id_detail, rejected, retake_bounds,
};

/// The SQL text of the control tables.
mod sql {
    pub(super) const UPSERT_DEFINITION: &str = "INSERT INTO job_definitions
    (job_id, name, schedule, timezone, kind, policies, source, registered_by, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)
    ON CONFLICT (job_id) DO UPDATE SET
        name = excluded.name, schedule = excluded.schedule, timezone = excluded.timezone,
        kind = excluded.kind, policies = excluded.policies, source = excluded.source,
        registered_by = excluded.registered_by, updated_at = excluded.updated_at
    WHERE job_definitions.source NOT IN ('api', 'cli') OR excluded.source IN ('api', 'cli')";

    pub(super) const DEFINITIONS: &str = "SELECT job_id, name, schedule, timezone, kind,
    policies::text AS policies, source, registered_by, updated_at
    FROM job_definitions ORDER BY job_id";

    pub(super) const SET_PAUSED: &str = "INSERT INTO job_pauses
    (job_id, paused, note, changed_at, source, instance_id, version)
    VALUES ($1, $2, $3, $4, $5, $6, 1)
    ON CONFLICT (job_id) DO UPDATE SET
        paused = excluded.paused, note = excluded.note, changed_at = excluded.changed_at,
        source = excluded.source, instance_id = excluded.instance_id,
        version = job_pauses.version + 1
    RETURNING version";

    macro_rules! pause_columns {
        () => {
            "SELECT job_id, paused, note, changed_at, source, instance_id, version FROM job_pauses"
        };
    }

    pub(super) const PAUSED: &str = concat!(pause_columns!(), " WHERE paused ORDER BY job_id");
    pub(super) const PAUSE_STATE: &str = concat!(pause_columns!(), " WHERE job_id = $1");

    pub(super) const INSERT_AUDIT: &str = "INSERT INTO control_audit
    (at, action, job_id, execution_id, note, source, instance_id, detail)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) RETURNING id";

    pub(super) const AUDIT: &str = "SELECT id, at, action, job_id, execution_id, note, source,
    instance_id, detail::text AS detail FROM control_audit
    WHERE ($1::text IS NULL OR job_id = $1) AND ($2::bigint IS NULL OR id < $2)
    ORDER BY id DESC LIMIT $3";

    /// The payload is cut to 1,000 characters (at most 4,000 bytes; NOTIFY
    /// refuses 8,000), so that a long id never fails the change.
    /// Deletes a definition made through the API or the CLI, and its pause.
    pub(super) const DELETE_DEFINITION: &str =
        "DELETE FROM job_definitions WHERE job_id = $1 AND source IN ('api', 'cli')";

    pub(super) const DELETE_PAUSE: &str = "DELETE FROM job_pauses WHERE job_id = $1";

    pub(super) const NOTIFY: &str = "SELECT pg_notify($1, left($2, 1000))";

    pub(super) const INSERT_TRIGGER: &str = "INSERT INTO job_triggers
    (job_id, requested_at, source, requested_by, note, taken_by, taken_at)
    VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN $4 END, CASE WHEN $6 THEN $2 END)
    RETURNING id";

    macro_rules! trigger_columns {
        () => {
            "id, job_id, requested_at, source, requested_by, note, taken_by, taken_at, \
             execution_id, outcome, finished_at"
        };
        (t) => {
            "t.id, t.job_id, t.requested_at, t.source, t.requested_by, t.note, t.taken_by, \
             t.taken_at, t.execution_id, t.outcome, t.finished_at"
        };
    }

    /// Racing instances skip each other's locked rows: each trigger goes to
    /// one of them, and none waits. The rows are picked once, in a
    /// materialized CTE: as `id IN (SELECT .. LIMIT ..)`, the planner may
    /// scan the subquery again and take more than the limit.
    pub(super) const TAKE_TRIGGERS: &str = concat!(
        "WITH picked AS MATERIALIZED (
        SELECT t.id FROM job_triggers AS t
        WHERE t.job_id = ANY($3)
          AND (t.taken_by IS NULL
               OR (t.taken_by IS NOT NULL AND (t.finished_at IS NULL OR t.outcome = 'pending')
                   AND t.taken_at <= $5 AND t.taken_at > $6
                   AND NOT EXISTS (SELECT 1 FROM fire_claims AS c
                                   WHERE c.job_id = t.job_id
                                     AND c.scheduled_at = t.requested_at)))
        ORDER BY t.id LIMIT $4 FOR UPDATE OF t SKIP LOCKED)
    UPDATE job_triggers t SET taken_by = $1, taken_at = $2
    FROM picked WHERE t.id = picked.id
    RETURNING ",
        trigger_columns!(t)
    );

    pub(super) const FINISH_TRIGGER: &str =
        "UPDATE job_triggers SET execution_id = $2, outcome = $3, finished_at = $4 WHERE id = $1";

    pub(super) const TRIGGER: &str =
        concat!("SELECT ", trigger_columns!(), " FROM job_triggers WHERE id = $1");

    pub(super) const RUNNING_JOB: &str = "SELECT job_id FROM scheduled_job_executions
    WHERE execution_id = $1::uuid AND status = 'running' LIMIT 1";

    pub(super) const INSERT_CANCEL: &str = "INSERT INTO execution_cancels
    (execution_id, requested_at, source, requested_by, note)
    VALUES ($1, $2, $3, $4, $5) RETURNING id";

    macro_rules! cancel_columns {
        () => {
            "SELECT id, execution_id, requested_at, source, requested_by, note, handled_by, \
             handled_at, outcome FROM execution_cancels"
        };
    }

    pub(super) const PENDING_CANCELS: &str =
        concat!(cancel_columns!(), " WHERE handled_at IS NULL ORDER BY id LIMIT $1");
    pub(super) const CANCEL: &str = concat!(cancel_columns!(), " WHERE id = $1");

    pub(super) const FINISH_CANCEL: &str = "UPDATE execution_cancels
    SET handled_by = $2, handled_at = $3, outcome = $4 WHERE id = $1 AND handled_at IS NULL";

    pub(super) const PRUNE_TRIGGERS: &str = "DELETE FROM job_triggers
    WHERE requested_at < $1 AND id < (SELECT max(id) FROM job_triggers)";

    pub(super) const PRUNE_CANCELS: &str = "DELETE FROM execution_cancels
    WHERE requested_at < $1 AND id < (SELECT max(id) FROM execution_cancels)";

    /// Audit rows from before `$1`, never the newest (a scan of a small
    /// table, run once a day by history retention).
    pub(super) const PRUNE_AUDIT: &str = "DELETE FROM control_audit
    WHERE at < $1 AND id < (SELECT max(id) FROM control_audit)";
}

/// Checks a text for Postgres (no NUL character), naming `what`.
fn text(what: &str, s: &str) -> StoreResult<String> {
    Dialect::Postgres.id(what, s).map_err(rejected)
}

fn opt_text(what: &str, s: Option<&str>) -> StoreResult<Option<String>> {
    s.map(|s| text(what, s)).transpose()
}

fn unreadable(e: sqlx::Error) -> StoreError {
    StoreError::Corrupt { message: format!("unreadable control row: {e}") }
}

fn decode_pause(r: &PgRow) -> StoreResult<PauseState> {
    let source: String = r.try_get("source").map_err(unreadable)?;
    Ok(PauseState {
        job_id: r.try_get("job_id").map_err(unreadable)?,
        paused: r.try_get("paused").map_err(unreadable)?,
        note: r.try_get("note").map_err(unreadable)?,
        changed_at: r.try_get("changed_at").map_err(unreadable)?,
        source: source.into(),
        instance_id: r.try_get("instance_id").map_err(unreadable)?,
        version: decode_version(r.try_get("version").map_err(unreadable)?),
    })
}

fn decode_trigger(r: &PgRow) -> StoreResult<TriggerRequest> {
    let source: String = r.try_get("source").map_err(unreadable)?;
    Ok(TriggerRequest {
        id: r.try_get("id").map_err(unreadable)?,
        job_id: r.try_get("job_id").map_err(unreadable)?,
        requested_at: r.try_get("requested_at").map_err(unreadable)?,
        source: source.into(),
        requested_by: r.try_get("requested_by").map_err(unreadable)?,
        note: r.try_get("note").map_err(unreadable)?,
        taken_by: r.try_get("taken_by").map_err(unreadable)?,
        taken_at: r.try_get("taken_at").map_err(unreadable)?,
        execution_id: r.try_get("execution_id").map_err(unreadable)?,
        outcome: r.try_get("outcome").map_err(unreadable)?,
        finished_at: r.try_get("finished_at").map_err(unreadable)?,
    })
}

fn decode_cancel(r: &PgRow) -> StoreResult<CancelRequest> {
    let source: String = r.try_get("source").map_err(unreadable)?;
    Ok(CancelRequest {
        id: r.try_get("id").map_err(unreadable)?,
        execution_id: r.try_get("execution_id").map_err(unreadable)?,
        requested_at: r.try_get("requested_at").map_err(unreadable)?,
        source: source.into(),
        requested_by: r.try_get("requested_by").map_err(unreadable)?,
        note: r.try_get("note").map_err(unreadable)?,
        handled_by: r.try_get("handled_by").map_err(unreadable)?,
        handled_at: r.try_get("handled_at").map_err(unreadable)?,
        outcome: r.try_get("outcome").map_err(unreadable)?,
    })
}

fn decode_audit(r: &PgRow) -> StoreResult<AuditRecord> {
    let action: String = r.try_get("action").map_err(unreadable)?;
    let source: String = r.try_get("source").map_err(unreadable)?;
    let detail: Option<String> = r.try_get("detail").map_err(unreadable)?;
    Ok(AuditRecord {
        id: r.try_get("id").map_err(unreadable)?,
        entry: AuditEntry {
            at: r.try_get("at").map_err(unreadable)?,
            action: action.into(),
            job_id: r.try_get("job_id").map_err(unreadable)?,
            execution_id: r.try_get("execution_id").map_err(unreadable)?,
            note: r.try_get("note").map_err(unreadable)?,
            source: source.into(),
            instance_id: r.try_get("instance_id").map_err(unreadable)?,
            detail: detail.as_deref().map(|d| decode_json("audit detail", d)).transpose()?,
        },
    })
}

/// An audit row checked for Postgres.
struct AuditParams {
    at: DateTime<Utc>,
    action: String,
    job_id: Option<String>,
    execution_id: Option<String>,
    note: Option<String>,
    source: String,
    instance_id: String,
    detail: Option<String>,
}

impl AuditParams {
    fn new(e: &AuditEntry) -> StoreResult<Self> {
        Ok(AuditParams {
            at: ts_param("audit time", e.at).map_err(rejected)?,
            action: text("action", e.action.as_str())?,
            job_id: opt_text("job id", e.job_id.as_deref())?,
            execution_id: opt_text("execution id", e.execution_id.as_deref())?,
            note: opt_text("note", e.note.as_deref())?,
            source: text("source", e.source.as_str())?,
            instance_id: text("instance id", &e.instance_id)?,
            detail: e.detail.as_ref().map(|d| Dialect::Postgres.json(d)),
        })
    }

    async fn insert(&self, c: &mut PgConnection) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(sql::INSERT_AUDIT)
            .bind(self.at)
            .bind(&self.action)
            .bind(&self.job_id)
            .bind(&self.execution_id)
            .bind(&self.note)
            .bind(&self.source)
            .bind(&self.instance_id)
            .bind(&self.detail)
            .fetch_one(c)
            .await
    }
}

/// A definition checked for Postgres: its text fields, its time, its
/// policies as JSON text.
struct CheckedDefinition<'a>(&'a JobDefinition, DateTime<Utc>, String);

impl<'a> CheckedDefinition<'a> {
    fn new(d: &'a JobDefinition) -> StoreResult<Self> {
        for (what, s) in [
            ("job id", Some(d.job_id.as_str())),
            ("name", Some(d.name.as_str())),
            ("schedule", d.schedule.as_deref()),
            ("timezone", d.timezone.as_deref()),
            ("kind", Some(d.kind.as_str())),
            ("source", Some(d.source.as_str())),
            ("instance id", Some(d.registered_by.as_str())),
        ] {
            opt_text(what, s)?;
        }
        let at = ts_param("updated_at", d.updated_at).map_err(rejected)?;
        Ok(CheckedDefinition(d, at, Dialect::Postgres.json(&d.policies)))
    }

    async fn upsert(&self, c: &mut PgConnection) -> Result<(), sqlx::Error> {
        let CheckedDefinition(d, at, policies) = self;
        sqlx::query(sql::UPSERT_DEFINITION)
            .bind(&d.job_id)
            .bind(&d.name)
            .bind(&d.schedule)
            .bind(&d.timezone)
            .bind(&d.kind)
            .bind(policies)
            .bind(d.source.as_str())
            .bind(&d.registered_by)
            .bind(at)
            .execute(c)
            .await
            .map(drop)
    }
}

async fn notify(c: &mut PgConnection, payload: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sql::NOTIFY).bind(NOTIFY_CHANNEL).bind(payload).execute(c).await.map(drop)
}

#[async_trait]
impl ControlStore for PostgresStore {
    async fn upsert_definitions(&self, defs: &[JobDefinition]) -> StoreResult<()> {
        let rows = defs.iter().map(CheckedDefinition::new).collect::<StoreResult<Vec<_>>>()?;
        self.op("writing job_definitions", async {
            let mut tx = self.pool.begin().await?;
            for row in &rows {
                row.upsert(&mut tx).await?;
            }
            if !rows.is_empty() {
                notify(&mut tx, "definitions").await?;
            }
            tx.commit().await
        })
        .await
    }

    async fn definitions(&self) -> StoreResult<Vec<JobDefinition>> {
        let rows = self
            .op("reading job_definitions", sqlx::query(sql::DEFINITIONS).fetch_all(&self.pool))
            .await?;
        rows.iter()
            .map(|r| {
                let policies: String = r.try_get("policies").map_err(unreadable)?;
                let source: String = r.try_get("source").map_err(unreadable)?;
                Ok(JobDefinition {
                    job_id: r.try_get("job_id").map_err(unreadable)?,
                    name: r.try_get("name").map_err(unreadable)?,
                    schedule: r.try_get("schedule").map_err(unreadable)?,
                    timezone: r.try_get("timezone").map_err(unreadable)?,
                    kind: r.try_get("kind").map_err(unreadable)?,
                    policies: decode_json("policies", &policies)?,
                    source: source.into(),
                    registered_by: r.try_get("registered_by").map_err(unreadable)?,
                    updated_at: r.try_get("updated_at").map_err(unreadable)?,
                })
            })
            .collect()
    }

    async fn set_paused(&self, job_id: &str, change: &PauseChange) -> StoreResult<PauseState> {
        let job = text("job id", job_id)?;
        let at = ts_param("pause time", change.at).map_err(rejected)?;
        let audit = AuditParams::new(&AuditEntry {
            at,
            action: (if change.paused { "pause" } else { "resume" }).into(),
            job_id: Some(job.clone()),
            execution_id: None,
            note: change.note.clone(),
            source: change.source.clone(),
            instance_id: change.instance_id.clone(),
            detail: None,
        })?;
        let version: i64 = self
            .op("writing job_pauses", async {
                let mut tx = self.pool.begin().await?;
                let version: i64 = sqlx::query_scalar(sql::SET_PAUSED)
                    .bind(&job)
                    .bind(change.paused)
                    .bind(&audit.note)
                    .bind(at)
                    .bind(&audit.source)
                    .bind(&audit.instance_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let audit = AuditParams { detail: Some(id_detail("version", version)), ..audit };
                audit.insert(&mut tx).await?;
                notify(&mut tx, &format!("pause:{job}")).await?;
                tx.commit().await?;
                Ok(version)
            })
            .await?;
        Ok(PauseState {
            job_id: job,
            paused: change.paused,
            note: change.note.clone(),
            changed_at: at,
            source: change.source.clone(),
            instance_id: change.instance_id.clone(),
            version: decode_version(version),
        })
    }

    async fn pause_states(&self) -> StoreResult<Vec<PauseState>> {
        let rows =
            self.op("reading job_pauses", sqlx::query(sql::PAUSED).fetch_all(&self.pool)).await?;
        rows.iter().map(decode_pause).collect()
    }

    async fn pause_state(&self, job_id: &str) -> StoreResult<Option<PauseState>> {
        let row = self
            .op(
                "reading job_pauses",
                sqlx::query(sql::PAUSE_STATE).bind(job_id).fetch_optional(&self.pool),
            )
            .await?;
        row.as_ref().map(decode_pause).transpose()
    }

    async fn request_trigger(&self, req: &NewTrigger) -> StoreResult<i64> {
        let at = ts_param("trigger time", req.at).map_err(rejected)?;
        let audit = AuditParams::new(&AuditEntry {
            at,
            action: "trigger".into(),
            job_id: Some(req.job_id.clone()),
            execution_id: None,
            note: req.note.clone(),
            source: req.source.clone(),
            instance_id: req.instance_id.clone(),
            detail: None,
        })?;
        let job = audit.job_id.clone().unwrap_or_default();
        self.op("writing job_triggers", async {
            let mut tx = self.pool.begin().await?;
            let id: i64 = sqlx::query_scalar(sql::INSERT_TRIGGER)
                .bind(&job)
                .bind(at)
                .bind(&audit.source)
                .bind(&audit.instance_id)
                .bind(&audit.note)
                .bind(req.take)
                .fetch_one(&mut *tx)
                .await?;
            let audit = AuditParams { detail: Some(id_detail("trigger_id", id)), ..audit };
            audit.insert(&mut tx).await?;
            if !req.take {
                notify(&mut tx, &format!("trigger:{job}")).await?;
            }
            tx.commit().await?;
            Ok(id)
        })
        .await
    }

    async fn take_triggers(
        &self,
        instance_id: &str,
        job_ids: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<TriggerRequest>> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        let instance = text("instance id", instance_id)?;
        let (before, after) = retake_bounds(now);
        let now = ts_param("take time", now).map_err(rejected)?;
        let rows = self
            .op(
                "taking job_triggers",
                sqlx::query(sql::TAKE_TRIGGERS)
                    .bind(instance)
                    .bind(now)
                    .bind(job_ids)
                    .bind(MAX_TAKE as i64)
                    .bind(before)
                    .bind(after)
                    .fetch_all(&self.pool),
            )
            .await?;
        let mut taken = rows.iter().map(decode_trigger).collect::<StoreResult<Vec<_>>>()?;
        taken.sort_by_key(|t| t.id);
        Ok(taken)
    }

    async fn finish_trigger(
        &self,
        id: i64,
        execution_id: Option<&str>,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let exec = opt_text("execution id", execution_id)?;
        let outcome = text("outcome", outcome)?;
        let at = ts_param("finish time", at).map_err(rejected)?;
        self.op(
            "finishing job_triggers",
            sqlx::query(sql::FINISH_TRIGGER)
                .bind(id)
                .bind(exec)
                .bind(outcome)
                .bind(at)
                .execute(&self.pool),
        )
        .await
        .map(|r| r.rows_affected() == 1)
    }

    async fn trigger_request(&self, id: i64) -> StoreResult<Option<TriggerRequest>> {
        let row = self
            .op(
                "reading job_triggers",
                sqlx::query(sql::TRIGGER).bind(id).fetch_optional(&self.pool),
            )
            .await?;
        row.as_ref().map(decode_trigger).transpose()
    }

    async fn request_cancel(&self, req: &NewCancel) -> StoreResult<i64> {
        let at = ts_param("cancel time", req.at).map_err(rejected)?;
        let audit = AuditParams::new(&AuditEntry {
            at,
            action: "cancel".into(),
            job_id: req.job_id.clone(),
            execution_id: Some(req.execution_id.clone()),
            note: req.note.clone(),
            source: req.source.clone(),
            instance_id: req.instance_id.clone(),
            detail: None,
        })?;
        let exec = audit.execution_id.clone().unwrap_or_default();
        self.op("writing execution_cancels", async {
            let mut tx = self.pool.begin().await?;
            let id: i64 = sqlx::query_scalar(sql::INSERT_CANCEL)
                .bind(&exec)
                .bind(at)
                .bind(&audit.source)
                .bind(&audit.instance_id)
                .bind(&audit.note)
                .fetch_one(&mut *tx)
                .await?;
            let audit = AuditParams { detail: Some(id_detail("cancel_id", id)), ..audit };
            audit.insert(&mut tx).await?;
            notify(&mut tx, &format!("cancel:{exec}")).await?;
            tx.commit().await?;
            Ok(id)
        })
        .await
    }

    async fn pending_cancels(&self) -> StoreResult<Vec<CancelRequest>> {
        let rows = self
            .op(
                "reading execution_cancels",
                sqlx::query(sql::PENDING_CANCELS).bind(MAX_TAKE as i64).fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(decode_cancel).collect()
    }

    async fn finish_cancel(
        &self,
        id: i64,
        instance_id: &str,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let instance = text("instance id", instance_id)?;
        let outcome = text("outcome", outcome)?;
        let at = ts_param("handled time", at).map_err(rejected)?;
        self.op(
            "finishing execution_cancels",
            sqlx::query(sql::FINISH_CANCEL)
                .bind(id)
                .bind(instance)
                .bind(at)
                .bind(outcome)
                .execute(&self.pool),
        )
        .await
        .map(|r| r.rows_affected() == 1)
    }

    async fn cancel_request(&self, id: i64) -> StoreResult<Option<CancelRequest>> {
        let row = self
            .op(
                "reading execution_cancels",
                sqlx::query(sql::CANCEL).bind(id).fetch_optional(&self.pool),
            )
            .await?;
        row.as_ref().map(decode_cancel).transpose()
    }

    async fn running_job(&self, execution_id: &str) -> StoreResult<Option<String>> {
        self.op(
            "reading scheduled_job_executions",
            sqlx::query_scalar(sql::RUNNING_JOB).bind(execution_id).fetch_optional(&self.pool),
        )
        .await
    }

    async fn put_definition(&self, d: &JobDefinition, audit: &AuditEntry) -> StoreResult<()> {
        let row = CheckedDefinition::new(d)?;
        let audit = AuditParams::new(audit)?;
        self.op("writing job_definitions", async {
            let mut tx = self.pool.begin().await?;
            row.upsert(&mut tx).await?;
            audit.insert(&mut tx).await?;
            notify(&mut tx, "definitions").await?;
            tx.commit().await
        })
        .await
    }

    async fn delete_definition(&self, job_id: &str, audit: &AuditEntry) -> StoreResult<bool> {
        let job = text("job id", job_id)?;
        let audit = AuditParams::new(audit)?;
        self.op("deleting from job_definitions", async {
            let mut tx = self.pool.begin().await?;
            let gone = sqlx::query(sql::DELETE_DEFINITION).bind(&job).execute(&mut *tx).await?;
            if gone.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query(sql::DELETE_PAUSE).bind(&job).execute(&mut *tx).await?;
            audit.insert(&mut tx).await?;
            notify(&mut tx, "definitions").await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn lock_backfill(
        &self,
        job_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> StoreResult<BackfillLockOutcome> {
        self.lock_backfill_row(job_id, holder, now, ttl).await
    }

    async fn renew_backfill(
        &self,
        job_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> StoreResult<bool> {
        self.renew_backfill_row(job_id, holder, now, ttl).await
    }

    async fn unlock_backfill(&self, job_id: &str, holder: &str) -> StoreResult<bool> {
        self.unlock_backfill_row(job_id, holder).await
    }

    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<i64> {
        let p = AuditParams::new(entry)?;
        self.op("writing control_audit", async {
            let mut c = self.pool.acquire().await?;
            p.insert(&mut c).await
        })
        .await
    }

    async fn audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let rows = self
            .op(
                "reading control_audit",
                sqlx::query(sql::AUDIT)
                    .bind(&q.job_id)
                    .bind(q.before_id)
                    .bind(q.capped_limit())
                    .fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(decode_audit).collect()
    }

    async fn prune_control(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = cutoff_param(before);
        self.maintenance("pruning job_triggers and execution_cancels", async {
            let a = sqlx::query(sql::PRUNE_TRIGGERS).bind(before).execute(&self.pool).await?;
            let b = sqlx::query(sql::PRUNE_CANCELS).bind(before).execute(&self.pool).await?;
            Ok(a.rows_affected() + b.rows_affected())
        })
        .await
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = cutoff_param(before);
        self.maintenance("pruning control_audit", async {
            let r = sqlx::query(sql::PRUNE_AUDIT).bind(before).execute(&self.pool).await?;
            Ok(r.rows_affected())
        })
        .await
    }
}

/// Receives the control plane's notifications (`LISTEN mscribe_control`)
/// on a connection of its own, taken from the store's pool and kept.
///
/// A lost connection is re-established by the next [`recv`](Self::recv),
/// which then answers `Ok(None)`: notifications sent meanwhile are lost, so
/// the caller should read the state again. Keep polling as well: a
/// listener is a wake-up, not a guarantee.
///
/// ```no_run
/// # async fn run(store: mscribe_storage::PostgresStore) -> Result<(), mscribe_storage::StoreError> {
/// let mut listener = store.control_listener().await?;
/// loop {
///     match listener.recv().await? {
///         Some(payload) => println!("changed: {payload}"), // e.g. "pause:backup"
///         None => println!("reconnected: read the state again"),
///     }
/// }
/// # }
/// ```
pub struct ControlListener {
    inner: PgListener,
    target: std::sync::Arc<str>,
}

impl std::fmt::Debug for ControlListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlListener").field("target", &self.target).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Listens on [`NOTIFY_CHANNEL`] with a connection of the pool (held
    /// until the listener is dropped), within the operation deadline.
    ///
    /// The payloads are `pause:JOB` (a pause or a resume), `trigger:JOB`,
    /// `cancel:EXECUTION` and `definitions`, each cut to 1,000 characters.
    pub async fn control_listener(&self) -> StoreResult<ControlListener> {
        let pool = self.pool.clone();
        let inner = self
            .op("listening to mscribe_control", async move {
                let mut l = PgListener::connect_with(&pool).await?;
                l.listen(NOTIFY_CHANNEL).await?;
                Ok(l)
            })
            .await?;
        Ok(ControlListener { inner, target: self.target.clone() })
    }
}

impl ControlListener {
    /// The next notification's payload; `Ok(None)` after the connection was
    /// lost and re-established (notifications may have been missed).
    pub async fn recv(&mut self) -> StoreResult<Option<String>> {
        match self.inner.try_recv().await {
            Ok(Some(n)) => Ok(Some(n.payload().to_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(store_error(&self.target, "receiving notifications", e)),
        }
    }

    /// [`recv`](Self::recv) for at most `limit`: `Ok(None)` also when
    /// nothing came in time.
    pub async fn recv_timeout(&mut self, limit: Duration) -> StoreResult<Option<String>> {
        match tokio::time::timeout(limit, self.recv()).await {
            Ok(r) => r,
            Err(_) => Ok(None),
        }
    }
}
