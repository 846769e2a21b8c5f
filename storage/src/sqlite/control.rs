//! [`SqliteStore`]'s [`ControlStore`] impl: reads on the reader threads,
//! each change in one immediate transaction on the writer thread (processes
//! sharing the file take turns). SQLite has no notifications: instances
//! poll, and the polling queries read only paused jobs, untaken triggers
//! and unhandled cancels (partial indexes in `0006_control.sql`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::StoreResult;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::error::store_error;
use super::store::SqliteStore;
use super::time::{cutoff_param, parse_ts, ts_param};
use crate::control::{
    AuditEntry, AuditQuery, AuditRecord, BackfillLockOutcome, CancelRequest, ControlStore,
    JobDefinition, MAX_TAKE, NewCancel, NewTrigger, PauseChange, PauseState, TriggerRequest,
    decode_json, decode_version, id_detail, rejected, retake_bounds,
};

/// The SQL text of the control tables.
mod sql {
    pub(super) const UPSERT_DEFINITION: &str = "INSERT INTO job_definitions
    (job_id, name, schedule, timezone, kind, policies, source, registered_by, updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
    ON CONFLICT (job_id) DO UPDATE SET
        name = excluded.name, schedule = excluded.schedule, timezone = excluded.timezone,
        kind = excluded.kind, policies = excluded.policies, source = excluded.source,
        registered_by = excluded.registered_by, updated_at = excluded.updated_at
    WHERE job_definitions.source NOT IN ('api', 'cli') OR excluded.source IN ('api', 'cli')";

    /// Deletes a definition made through the API or the CLI, and its pause.
    pub(super) const DELETE_DEFINITION: &str =
        "DELETE FROM job_definitions WHERE job_id = ?1 AND source IN ('api', 'cli')";

    pub(super) const DELETE_PAUSE: &str = "DELETE FROM job_pauses WHERE job_id = ?1";

    pub(super) const DEFINITIONS: &str = "SELECT job_id, name, schedule, timezone, kind,
    policies, source, registered_by, updated_at FROM job_definitions ORDER BY job_id";

    pub(super) const SET_PAUSED: &str = "INSERT INTO job_pauses
    (job_id, paused, note, changed_at, source, instance_id, version)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)
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

    pub(super) const PAUSED: &str = concat!(pause_columns!(), " WHERE paused = 1 ORDER BY job_id");
    pub(super) const PAUSE_STATE: &str = concat!(pause_columns!(), " WHERE job_id = ?1");

    pub(super) const INSERT_AUDIT: &str = "INSERT INTO control_audit
    (at, action, job_id, execution_id, note, source, instance_id, detail)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id";

    pub(super) const AUDIT: &str = "SELECT id, at, action, job_id, execution_id, note, source,
    instance_id, detail FROM control_audit
    WHERE (?1 IS NULL OR job_id = ?1) AND (?2 IS NULL OR id < ?2)
    ORDER BY id DESC LIMIT ?3";

    pub(super) const INSERT_TRIGGER: &str = "INSERT INTO job_triggers
    (job_id, requested_at, source, requested_by, note, taken_by, taken_at)
    VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?6 THEN ?4 END, CASE WHEN ?6 THEN ?2 END)
    RETURNING id";

    macro_rules! trigger_columns {
        () => {
            "id, job_id, requested_at, source, requested_by, note, taken_by, taken_at, \
             execution_id, outcome, finished_at"
        };
    }

    /// Whether any of the jobs (a JSON array) has an untaken trigger: a
    /// read, so that an idle poll never takes the write lock.
    /// A trigger `t` taken in `($after, $before]`, neither finished nor
    /// claimed since (the index `job_triggers_unsettled`).
    macro_rules! unsettled {
        ($before:literal, $after:literal) => {
            concat!(
                "t.taken_by IS NOT NULL AND (t.finished_at IS NULL OR t.outcome = 'pending')
             AND t.taken_at <= ",
                $before,
                " AND t.taken_at > ",
                $after,
                "
             AND NOT EXISTS (SELECT 1 FROM fire_claims AS c
                             WHERE c.job_id = t.job_id AND c.scheduled_at = t.requested_at)"
            )
        };
    }

    /// Whether a trigger of the jobs `?1` is to take: never taken, or taken
    /// in `(?3, ?2]` and not claimed.
    pub(super) const ANY_PENDING_TRIGGER: &str = concat!(
        "SELECT EXISTS (SELECT 1 FROM job_triggers AS t
    WHERE t.job_id IN (SELECT value FROM json_each(?1)) AND (t.taken_by IS NULL OR (",
        unsettled!("?2", "?3"),
        ")))"
    );

    pub(super) const TAKE_TRIGGERS: &str = concat!(
        "UPDATE job_triggers SET taken_by = ?1, taken_at = ?2
    WHERE id IN (SELECT t.id FROM job_triggers AS t
                 WHERE t.job_id IN (SELECT value FROM json_each(?3))
                   AND (t.taken_by IS NULL OR (",
        unsettled!("?5", "?6"),
        "))
                 ORDER BY t.id LIMIT ?4)
    RETURNING ",
        trigger_columns!()
    );

    pub(super) const FINISH_TRIGGER: &str =
        "UPDATE job_triggers SET execution_id = ?2, outcome = ?3, finished_at = ?4 WHERE id = ?1";

    pub(super) const TRIGGER: &str =
        concat!("SELECT ", trigger_columns!(), " FROM job_triggers WHERE id = ?1");

    pub(super) const INSERT_CANCEL: &str = "INSERT INTO execution_cancels
    (execution_id, requested_at, source, requested_by, note)
    VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id";

    macro_rules! cancel_columns {
        () => {
            "SELECT id, execution_id, requested_at, source, requested_by, note, handled_by, \
             handled_at, outcome FROM execution_cancels"
        };
    }

    pub(super) const PENDING_CANCELS: &str =
        concat!(cancel_columns!(), " WHERE handled_at IS NULL ORDER BY id LIMIT ?1");
    pub(super) const CANCEL: &str = concat!(cancel_columns!(), " WHERE id = ?1");

    pub(super) const RUNNING_JOB: &str = "SELECT job_id FROM scheduled_job_executions
    WHERE execution_id = ?1 AND status = 'running' LIMIT 1";

    pub(super) const FINISH_CANCEL: &str = "UPDATE execution_cancels
    SET handled_by = ?2, handled_at = ?3, outcome = ?4 WHERE id = ?1 AND handled_at IS NULL";

    pub(super) const PRUNE_TRIGGERS: &str = "DELETE FROM job_triggers
    WHERE requested_at < ?1 AND id < (SELECT max(id) FROM job_triggers)";

    pub(super) const PRUNE_CANCELS: &str = "DELETE FROM execution_cancels
    WHERE requested_at < ?1 AND id < (SELECT max(id) FROM execution_cancels)";

    /// Audit rows from before `?1`, never the newest (a scan of a small
    /// table, run once a day by history retention).
    pub(super) const PRUNE_AUDIT: &str = "DELETE FROM control_audit
    WHERE at < ?1 AND id < (SELECT max(id) FROM control_audit)";
}

/// A `job_pauses` row before decoding.
type RawPause = (String, bool, Option<String>, String, String, String, i64);

fn raw_pause(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawPause> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}

fn decode_pause(
    (job_id, paused, note, changed_at, source, instance_id, version): RawPause,
) -> StoreResult<PauseState> {
    Ok(PauseState {
        job_id,
        paused,
        note,
        changed_at: parse_ts("changed_at", &changed_at)?,
        source: source.into(),
        instance_id,
        version: decode_version(version),
    })
}

/// A `job_triggers` row before decoding.
struct RawTrigger {
    id: i64,
    job_id: String,
    requested_at: String,
    source: String,
    requested_by: String,
    note: Option<String>,
    taken_by: Option<String>,
    taken_at: Option<String>,
    execution_id: Option<String>,
    outcome: Option<String>,
    finished_at: Option<String>,
}

fn raw_trigger(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawTrigger> {
    Ok(RawTrigger {
        id: r.get(0)?,
        job_id: r.get(1)?,
        requested_at: r.get(2)?,
        source: r.get(3)?,
        requested_by: r.get(4)?,
        note: r.get(5)?,
        taken_by: r.get(6)?,
        taken_at: r.get(7)?,
        execution_id: r.get(8)?,
        outcome: r.get(9)?,
        finished_at: r.get(10)?,
    })
}

fn opt_ts(what: &str, s: Option<String>) -> StoreResult<Option<DateTime<Utc>>> {
    s.map(|s| parse_ts(what, &s)).transpose()
}

impl RawTrigger {
    fn decode(self) -> StoreResult<TriggerRequest> {
        Ok(TriggerRequest {
            id: self.id,
            job_id: self.job_id,
            requested_at: parse_ts("requested_at", &self.requested_at)?,
            source: self.source.into(),
            requested_by: self.requested_by,
            note: self.note,
            taken_by: self.taken_by,
            taken_at: opt_ts("taken_at", self.taken_at)?,
            execution_id: self.execution_id,
            outcome: self.outcome,
            finished_at: opt_ts("finished_at", self.finished_at)?,
        })
    }
}

/// An `execution_cancels` row before decoding.
type RawCancel = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn raw_cancel(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawCancel> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn decode_cancel(
    (id, execution_id, requested_at, source, requested_by, note, handled_by, handled_at, outcome): RawCancel,
) -> StoreResult<CancelRequest> {
    Ok(CancelRequest {
        id,
        execution_id,
        requested_at: parse_ts("requested_at", &requested_at)?,
        source: source.into(),
        requested_by,
        note,
        handled_by,
        handled_at: opt_ts("handled_at", handled_at)?,
        outcome,
    })
}

/// A `control_audit` row before decoding.
type RawAudit = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
);

fn raw_audit(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawAudit> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn decode_audit(
    (id, at, action, job_id, execution_id, note, source, instance_id, detail): RawAudit,
) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        id,
        entry: AuditEntry {
            at: parse_ts("at", &at)?,
            action: action.into(),
            job_id,
            execution_id,
            note,
            source: source.into(),
            instance_id,
            detail: detail.as_deref().map(|d| decode_json("audit detail", d)).transpose()?,
        },
    })
}

/// An audit row with its time as stored.
struct AuditParams {
    at: String,
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
            action: e.action.as_str().to_owned(),
            job_id: e.job_id.clone(),
            execution_id: e.execution_id.clone(),
            note: e.note.clone(),
            source: e.source.as_str().to_owned(),
            instance_id: e.instance_id.clone(),
            detail: e.detail.as_ref().map(|d| d.to_string()),
        })
    }

    fn insert(&self, c: &Connection) -> rusqlite::Result<i64> {
        c.prepare_cached(sql::INSERT_AUDIT)?.query_row(
            params![
                self.at,
                self.action,
                self.job_id,
                self.execution_id,
                self.note,
                self.source,
                self.instance_id,
                self.detail
            ],
            |r| r.get(0),
        )
    }
}

impl SqliteStore {
    /// Runs `f` in one immediate transaction on the writer thread.
    pub(super) async fn in_write_tx<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let w = self.worker();
        w.on_writer(what, w.limits().operation_timeout, move |c| {
            let failed = |e| store_error(what, e);
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
            let v = f(&tx).map_err(failed)?;
            tx.commit().map_err(failed)?;
            Ok(v)
        })
        .await
    }

    /// Runs the query `f` on a reader thread.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let w = self.worker();
        w.on_reader(what, w.limits().operation_timeout, move |c| {
            f(c).map_err(|e| store_error(what, e))
        })
        .await
    }
}

/// Writes one definition (`at`: its `updated_at` as text).
fn upsert_definition(c: &Connection, d: &JobDefinition, at: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql::UPSERT_DEFINITION)?
        .execute(params![
            d.job_id,
            d.name,
            d.schedule,
            d.timezone,
            d.kind,
            d.policies.to_string(),
            d.source.as_str(),
            d.registered_by,
            at
        ])
        .map(drop)
}

#[async_trait]
impl ControlStore for SqliteStore {
    async fn upsert_definitions(&self, defs: &[JobDefinition]) -> StoreResult<()> {
        let rows = defs
            .iter()
            .map(|d| Ok((d.clone(), ts_param("updated_at", d.updated_at)?)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(rejected)?;
        self.in_write_tx("writing job_definitions", move |c| {
            rows.iter().try_for_each(|(d, at)| upsert_definition(c, d, at))
        })
        .await
    }

    async fn definitions(&self) -> StoreResult<Vec<JobDefinition>> {
        type Raw = (String, String, Option<String>, Option<String>, String, String, String);
        let raw: Vec<(Raw, String, String)> = self
            .read("reading job_definitions", |c| {
                c.prepare_cached(sql::DEFINITIONS)?
                    .query_map([], |r| {
                        Ok((
                            (
                                r.get(0)?,
                                r.get(1)?,
                                r.get(2)?,
                                r.get(3)?,
                                r.get(4)?,
                                r.get(5)?,
                                r.get(6)?,
                            ),
                            r.get(7)?,
                            r.get(8)?,
                        ))
                    })?
                    .collect()
            })
            .await?;
        raw.into_iter()
            .map(|((job_id, name, schedule, timezone, kind, policies, source), by, at)| {
                Ok(JobDefinition {
                    job_id,
                    name,
                    schedule,
                    timezone,
                    kind,
                    policies: decode_json("policies", &policies)?,
                    source: source.into(),
                    registered_by: by,
                    updated_at: parse_ts("updated_at", &at)?,
                })
            })
            .collect()
    }

    async fn set_paused(&self, job_id: &str, change: &PauseChange) -> StoreResult<PauseState> {
        let at = ts_param("pause time", change.at).map_err(rejected)?;
        let (job, ch) = (job_id.to_owned(), change.clone());
        let action = if ch.paused { "pause" } else { "resume" };
        let version = self
            .in_write_tx("writing job_pauses", move |c| {
                let version: i64 = c.prepare_cached(sql::SET_PAUSED)?.query_row(
                    params![job, ch.paused, ch.note, at, ch.source.as_str(), ch.instance_id],
                    |r| r.get(0),
                )?;
                AuditParams {
                    at,
                    action: action.to_owned(),
                    job_id: Some(job),
                    execution_id: None,
                    note: ch.note,
                    source: ch.source.as_str().to_owned(),
                    instance_id: ch.instance_id,
                    detail: Some(id_detail("version", version)),
                }
                .insert(c)?;
                Ok(version)
            })
            .await?;
        Ok(PauseState {
            job_id: job_id.to_owned(),
            paused: change.paused,
            note: change.note.clone(),
            changed_at: crate::codec::trunc_micros(change.at),
            source: change.source.clone(),
            instance_id: change.instance_id.clone(),
            version: decode_version(version),
        })
    }

    async fn pause_states(&self) -> StoreResult<Vec<PauseState>> {
        let raw: Vec<RawPause> = self
            .read("reading job_pauses", |c| {
                c.prepare_cached(sql::PAUSED)?.query_map([], raw_pause)?.collect()
            })
            .await?;
        raw.into_iter().map(decode_pause).collect()
    }

    async fn pause_state(&self, job_id: &str) -> StoreResult<Option<PauseState>> {
        let job = job_id.to_owned();
        let raw: Option<RawPause> = self
            .read("reading job_pauses", move |c| {
                c.prepare_cached(sql::PAUSE_STATE)?.query_row(params![job], raw_pause).optional()
            })
            .await?;
        raw.map(decode_pause).transpose()
    }

    async fn request_trigger(&self, req: &NewTrigger) -> StoreResult<i64> {
        let at = ts_param("trigger time", req.at).map_err(rejected)?;
        let req = req.clone();
        self.in_write_tx("writing job_triggers", move |c| {
            let id: i64 = c.prepare_cached(sql::INSERT_TRIGGER)?.query_row(
                params![req.job_id, at, req.source.as_str(), req.instance_id, req.note, req.take],
                |r| r.get(0),
            )?;
            AuditParams {
                at,
                action: "trigger".to_owned(),
                job_id: Some(req.job_id),
                execution_id: None,
                note: req.note,
                source: req.source.as_str().to_owned(),
                instance_id: req.instance_id,
                detail: Some(id_detail("trigger_id", id)),
            }
            .insert(c)?;
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
        let (before, after) = retake_bounds(now);
        let now = ts_param("take time", now).map_err(rejected)?;
        let before = ts_param("take time", before).map_err(rejected)?;
        let after = ts_param("take time", after).map_err(rejected)?;
        let jobs = serde_json::to_string(job_ids).map_err(|e| rejected(e.to_string()))?;
        let (probe, b, a) = (jobs.clone(), before.clone(), after.clone());
        let any: bool = self
            .read("reading job_triggers", move |c| {
                c.prepare_cached(sql::ANY_PENDING_TRIGGER)?
                    .query_row(params![probe, b, a], |r| r.get(0))
            })
            .await?;
        if !any {
            return Ok(Vec::new());
        }
        let instance = instance_id.to_owned();
        let raw: Vec<RawTrigger> = self
            .in_write_tx("taking job_triggers", move |c| {
                c.prepare_cached(sql::TAKE_TRIGGERS)?
                    .query_map(
                        params![instance, now, jobs, MAX_TAKE as i64, before, after],
                        raw_trigger,
                    )?
                    .collect()
            })
            .await?;
        let mut taken = raw.into_iter().map(RawTrigger::decode).collect::<StoreResult<Vec<_>>>()?;
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
        let at = ts_param("finish time", at).map_err(rejected)?;
        let (exec, outcome) = (execution_id.map(str::to_owned), outcome.to_owned());
        self.in_write_tx("finishing job_triggers", move |c| {
            c.prepare_cached(sql::FINISH_TRIGGER)?
                .execute(params![id, exec, outcome, at])
                .map(|n| n == 1)
        })
        .await
    }

    async fn trigger_request(&self, id: i64) -> StoreResult<Option<TriggerRequest>> {
        let raw = self
            .read("reading job_triggers", move |c| {
                c.prepare_cached(sql::TRIGGER)?.query_row(params![id], raw_trigger).optional()
            })
            .await?;
        raw.map(RawTrigger::decode).transpose()
    }

    async fn request_cancel(&self, req: &NewCancel) -> StoreResult<i64> {
        let at = ts_param("cancel time", req.at).map_err(rejected)?;
        let req = req.clone();
        self.in_write_tx("writing execution_cancels", move |c| {
            let id: i64 = c.prepare_cached(sql::INSERT_CANCEL)?.query_row(
                params![req.execution_id, at, req.source.as_str(), req.instance_id, req.note],
                |r| r.get(0),
            )?;
            AuditParams {
                at,
                action: "cancel".to_owned(),
                job_id: req.job_id,
                execution_id: Some(req.execution_id),
                note: req.note,
                source: req.source.as_str().to_owned(),
                instance_id: req.instance_id,
                detail: Some(id_detail("cancel_id", id)),
            }
            .insert(c)?;
            Ok(id)
        })
        .await
    }

    async fn pending_cancels(&self) -> StoreResult<Vec<CancelRequest>> {
        let raw: Vec<RawCancel> = self
            .read("reading execution_cancels", |c| {
                c.prepare_cached(sql::PENDING_CANCELS)?
                    .query_map(params![MAX_TAKE as i64], raw_cancel)?
                    .collect()
            })
            .await?;
        raw.into_iter().map(decode_cancel).collect()
    }

    async fn finish_cancel(
        &self,
        id: i64,
        instance_id: &str,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let at = ts_param("handled time", at).map_err(rejected)?;
        let (instance, outcome) = (instance_id.to_owned(), outcome.to_owned());
        self.in_write_tx("finishing execution_cancels", move |c| {
            c.prepare_cached(sql::FINISH_CANCEL)?
                .execute(params![id, instance, at, outcome])
                .map(|n| n == 1)
        })
        .await
    }

    async fn cancel_request(&self, id: i64) -> StoreResult<Option<CancelRequest>> {
        let raw = self
            .read("reading execution_cancels", move |c| {
                c.prepare_cached(sql::CANCEL)?.query_row(params![id], raw_cancel).optional()
            })
            .await?;
        raw.map(decode_cancel).transpose()
    }

    async fn running_job(&self, execution_id: &str) -> StoreResult<Option<String>> {
        let id = execution_id.to_owned();
        self.read("reading scheduled_job_executions", move |c| {
            c.prepare_cached(sql::RUNNING_JOB)?.query_row(params![id], |r| r.get(0)).optional()
        })
        .await
    }

    async fn put_definition(&self, d: &JobDefinition, audit: &AuditEntry) -> StoreResult<()> {
        let at = ts_param("updated_at", d.updated_at).map_err(rejected)?;
        let (d, audit) = (d.clone(), AuditParams::new(audit)?);
        self.in_write_tx("writing job_definitions", move |c| {
            upsert_definition(c, &d, &at)?;
            audit.insert(c).map(drop)
        })
        .await
    }

    async fn delete_definition(&self, job_id: &str, audit: &AuditEntry) -> StoreResult<bool> {
        let (job, audit) = (job_id.to_owned(), AuditParams::new(audit)?);
        self.in_write_tx("deleting from job_definitions", move |c| {
            if c.prepare_cached(sql::DELETE_DEFINITION)?.execute(params![job])? == 0 {
                return Ok(false);
            }
            c.prepare_cached(sql::DELETE_PAUSE)?.execute(params![job])?;
            audit.insert(c).map(|_| true)
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
        self.in_write_tx("writing control_audit", move |c| p.insert(c)).await
    }

    async fn audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let (job, before, limit) = (q.job_id.clone(), q.before_id, q.capped_limit());
        let raw: Vec<RawAudit> = self
            .read("reading control_audit", move |c| {
                c.prepare_cached(sql::AUDIT)?
                    .query_map(params![job, before, limit], raw_audit)?
                    .collect()
            })
            .await?;
        raw.into_iter().map(decode_audit).collect()
    }

    async fn prune_control(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = cutoff_param(before);
        self.in_write_tx("pruning job_triggers and execution_cancels", move |c| {
            let a = c.execute(sql::PRUNE_TRIGGERS, params![before])?;
            let b = c.execute(sql::PRUNE_CANCELS, params![before])?;
            Ok((a + b) as u64)
        })
        .await
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = cutoff_param(before);
        self.in_write_tx("pruning control_audit", move |c| {
            Ok(c.execute(sql::PRUNE_AUDIT, params![before])? as u64)
        })
        .await
    }
}
