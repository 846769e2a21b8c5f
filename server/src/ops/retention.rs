//! `history-retention`: prunes the execution history.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{ExecutionStore, JobError, PrunePolicy};
use serde_json::json;

use super::{OpsJob, OpsOutcome, time_before};
use crate::config::RetentionOptions;
use crate::db::Database;

/// Deletes finished execution rows older than `keep`, failures older than
/// `keep_failures`, and (with a database) hourly metric rows older than
/// `keep_metrics`, and control audit entries (`GET /audit`, `mscribe audit`)
/// and finished alert deliveries (`GET /alerts`) older than `keep`, always
/// leaving the newest of each. Running rows and pending deliveries are
/// never deleted.
#[derive(Debug, Clone)]
pub struct HistoryRetention {
    store: Arc<dyn ExecutionStore>,
    db: Option<Database>,
    options: RetentionOptions,
}

impl HistoryRetention {
    /// Retention over `store`.
    pub fn new(store: Arc<dyn ExecutionStore>, options: RetentionOptions) -> Self {
        HistoryRetention { store, db: None, options }
    }

    /// Also prunes `job_metrics_hourly` and `control_audit` in `db`.
    pub fn with_database(mut self, db: Database) -> Self {
        self.db = Some(db);
        self
    }

    /// What is older than these goes, at `now`. A setting too long to
    /// subtract from `now` is an error.
    fn cutoffs(&self, now: DateTime<Utc>) -> Result<Cutoffs, JobError> {
        let o = &self.options;
        Ok(Cutoffs {
            rows: time_before(now, o.keep, "[jobs.history-retention] keep")?,
            failures: time_before(
                now,
                o.keep_failures.max(o.keep),
                "[jobs.history-retention] keep_failures",
            )?,
            metrics: time_before(now, o.keep_metrics, "[jobs.history-retention] keep_metrics")?,
        })
    }
}

/// The cut-offs of one run: finished rows, failed rows, hourly metric rows.
struct Cutoffs {
    rows: DateTime<Utc>,
    failures: DateTime<Utc>,
    metrics: DateTime<Utc>,
}

#[async_trait]
impl OpsJob for HistoryRetention {
    async fn run_at(&self, now: DateTime<Utc>) -> OpsOutcome {
        let Cutoffs {
            rows: older_than,
            failures: failures_older_than,
            metrics: metrics_older_than,
        } = match self.cutoffs(now) {
            Ok(c) => c,
            Err(e) => return OpsOutcome::from_error(json!({}), e),
        };
        let policy = PrunePolicy { older_than, failures_older_than: Some(failures_older_than) };
        let mut data = json!({
            "older_than": older_than,
            "failures_older_than": failures_older_than,
        });
        let deleted = match self.store.prune(policy).await {
            Ok(n) => n,
            Err(e) => {
                // A store that refuses the operation refuses it again; one
                // that is unavailable may answer next time.
                let message = format!("pruning execution history failed: {e}");
                return if e.is_transient() {
                    OpsOutcome::failed(data, message)
                } else {
                    OpsOutcome::failed_permanently(data, message)
                };
            }
        };
        data["deleted"] = json!(deleted);
        let (mut metrics_deleted, mut audit_deleted, mut alerts_deleted) = (0, 0, 0);
        if let Some(db) = &self.db {
            match db.prune_hourly(metrics_older_than).await {
                Ok(n) => metrics_deleted = n,
                Err(e) => {
                    data["metrics_deleted"] = json!(0);
                    return OpsOutcome::failed(
                        data,
                        format!("pruning job_metrics_hourly failed: {e}"),
                    );
                }
            }
            data["metrics_deleted"] = json!(metrics_deleted);
            match db.prune_audit(older_than).await {
                Ok(n) => audit_deleted = n,
                Err(e) => {
                    data["audit_deleted"] = json!(0);
                    return OpsOutcome::failed(data, format!("pruning control_audit failed: {e}"));
                }
            }
            data["audit_deleted"] = json!(audit_deleted);
            match db.prune_alerts(older_than).await {
                Ok(n) => alerts_deleted = n,
                Err(e) => {
                    data["alerts_deleted"] = json!(0);
                    return OpsOutcome::failed(data, format!("pruning alert_outbox failed: {e}"));
                }
            }
            data["alerts_deleted"] = json!(alerts_deleted);
        }
        tracing::info!(
            deleted,
            metrics_deleted,
            audit_deleted,
            alerts_deleted,
            %older_than,
            %failures_older_than,
            "history pruned"
        );
        OpsOutcome::ok(data).metric("deleted", deleted as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use mscribe_scheduler::{AttemptEnd, AttemptStart, ExecutionId, FireKind};
    use mscribe_scheduler::{ExecutionEvent, ExecutionStatus, HistoryQuery, MemoryStore};
    use std::time::Duration;

    fn row(id: u128, started: DateTime<Utc>, status: ExecutionStatus) -> Vec<ExecutionEvent> {
        let s = AttemptStart {
            job_id: "j".into(),
            execution_id: ExecutionId::from_u128(id),
            attempt: 1,
            scheduled_at: started,
            started_at: started,
            instance_id: "i".into(),
            kind: FireKind::Schedule,
            fence: None,
        };
        if status == ExecutionStatus::Running {
            return vec![ExecutionEvent::Started(s)];
        }
        vec![ExecutionEvent::Finished(AttemptEnd {
            job_id: s.job_id,
            execution_id: s.execution_id,
            attempt: 1,
            scheduled_at: started,
            started_at: started,
            instance_id: s.instance_id,
            status,
            completed_at: started,
            duration: Duration::from_millis(5),
            error: None,
            error_kind: None,
            result: None,
            metrics: None,
            kind: FireKind::Schedule,
            fence: None,
            ends_run: true,
        })]
    }

    #[test]
    fn keeps_failures_longer_and_running_rows_always() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 3, 30, 0).unwrap();
        let days = |d: i64| now - chrono::Duration::days(d);
        let store = Arc::new(MemoryStore::new());
        let mut evs = Vec::new();
        evs.extend(row(1, days(40), ExecutionStatus::Succeeded)); // deleted
        evs.extend(row(2, days(40), ExecutionStatus::Failed)); // kept (failure, < 90d)
        evs.extend(row(3, days(100), ExecutionStatus::Failed)); // deleted
        evs.extend(row(4, days(10), ExecutionStatus::Succeeded)); // kept
        evs.extend(row(5, days(200), ExecutionStatus::Running)); // kept: not finished
        futures::executor::block_on(store.write(&evs)).unwrap();
        let job = HistoryRetention::new(store.clone(), RetentionOptions::default());
        let out = futures::executor::block_on(job.run_at(now));
        assert_eq!(out.error, None);
        assert_eq!(out.data["deleted"], 2);
        let left: Vec<u128> =
            futures::executor::block_on(store.history(&HistoryQuery::new("j", 10)))
                .unwrap()
                .iter()
                .map(|r| r.execution_id.as_u128())
                .collect();
        assert_eq!(left, vec![4, 2, 5]);
        // Idempotent.
        let again = futures::executor::block_on(job.run_at(now));
        assert_eq!(again.data["deleted"], 0);
    }

    /// A store whose prune fails with the given error.
    #[derive(Debug)]
    struct PruneFails(fn() -> mscribe_scheduler::StoreError);

    #[async_trait]
    impl ExecutionStore for PruneFails {
        async fn write(&self, _: &[ExecutionEvent]) -> mscribe_scheduler::StoreResult<()> {
            Ok(())
        }
        async fn history(
            &self,
            _: &HistoryQuery,
        ) -> mscribe_scheduler::StoreResult<Vec<mscribe_scheduler::ExecutionRecord>> {
            Ok(Vec::new())
        }
        async fn last_fire(
            &self,
            _: &str,
        ) -> mscribe_scheduler::StoreResult<Option<DateTime<Utc>>> {
            Ok(None)
        }
        async fn heartbeat(&self, _: &str, _: DateTime<Utc>) -> mscribe_scheduler::StoreResult<()> {
            Ok(())
        }
        async fn mark_abandoned(
            &self,
            _: &str,
            _: DateTime<Utc>,
            _: Duration,
        ) -> mscribe_scheduler::StoreResult<Vec<mscribe_scheduler::ExecutionRecord>> {
            Ok(Vec::new())
        }
        async fn prune(&self, _: PrunePolicy) -> mscribe_scheduler::StoreResult<u64> {
            Err((self.0)())
        }
    }

    #[test]
    fn a_store_that_rejects_the_prune_fails_permanently_an_unavailable_one_transiently() {
        use mscribe_scheduler::{ErrorKind, StoreError};
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 3, 30, 0).unwrap();
        let run = |f: fn() -> StoreError| {
            let job = HistoryRetention::new(Arc::new(PruneFails(f)), RetentionOptions::default());
            futures::executor::block_on(job.run_at(now))
        };
        let out =
            run(|| StoreError::Unavailable { message: "connection reset".into(), source: None });
        assert_eq!(out.error_kind(), Some(ErrorKind::Transient), "{:?}", out.error);
        let out =
            run(|| StoreError::Rejected { message: "permission denied".into(), source: None });
        assert_eq!(out.error_kind(), Some(ErrorKind::Permanent), "{:?}", out.error);
        assert!(out.error.unwrap().starts_with("pruning execution history failed: "));
    }

    /// With a database, finished alert deliveries older than `keep` go too
    /// (never a pending one, nor the newest).
    #[tokio::test]
    async fn prunes_finished_alert_deliveries_older_than_keep() {
        use mscribe_storage::{AlertQuery, AttemptOutcome, DeliveryAttempt, NewAlert};
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 3, 30, 0).unwrap();
        let days = |d: i64| now - chrono::Duration::days(d);
        let db = Database::open("sqlite::memory:").await.unwrap();
        let alerts = db.alerts();
        let row = |key: &str, at| NewAlert {
            dedupe_key: key.to_owned(),
            alert: "ops".to_owned(),
            event: "failure".to_owned(),
            job_id: Some("j".to_owned()),
            body: json!({}),
            created_at: at,
        };
        let rows = [row("old-done", days(40)), row("old-pending", days(39)), row("young", days(2))];
        alerts.enqueue_alerts(&rows).await.unwrap();
        for r in alerts.alert_deliveries(&AlertQuery::new(10)).await.unwrap() {
            if r.dedupe_key != "old-pending" {
                let done = DeliveryAttempt {
                    at: r.created_at,
                    status: Some(200),
                    error: None,
                    outcome: AttemptOutcome::Delivered,
                };
                alerts.record_delivery_attempt(r.id, &done).await.unwrap();
            }
        }
        let job = HistoryRetention::new(db.store(), RetentionOptions::default())
            .with_database(db.clone());
        let out = job.run_at(now).await;
        assert_eq!(out.error, None, "{}", out.data);
        assert_eq!(out.data["alerts_deleted"], 1);
        let left: Vec<String> = alerts
            .alert_deliveries(&AlertQuery::new(10))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.dedupe_key)
            .collect();
        assert_eq!(left, ["young", "old-pending"]);
    }

    /// With a database, audit entries older than `keep` go too, except the
    /// newest; younger ones stay.
    #[tokio::test]
    async fn prunes_audit_entries_older_than_keep() {
        use mscribe_storage::{AuditAction, AuditEntry, AuditQuery, Source};
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 3, 30, 0).unwrap();
        let days = |d: i64| now - chrono::Duration::days(d);
        let db = Database::open("sqlite::memory:").await.unwrap();
        let control = db.control();
        let entry = |at: DateTime<Utc>, note: &str| AuditEntry {
            at,
            action: AuditAction::Backfill,
            job_id: Some("j".to_owned()),
            execution_id: None,
            note: Some(note.to_owned()),
            source: Source::Api,
            instance_id: "i".to_owned(),
            detail: None,
        };
        for (d, note) in [(90, "old"), (45, "older than keep"), (29, "young"), (1, "new")] {
            control.record_audit(&entry(days(d), note)).await.unwrap();
        }
        let job = HistoryRetention::new(db.store(), RetentionOptions::default())
            .with_database(db.clone());
        let out = job.run_at(now).await;
        assert_eq!(out.error, None, "{}", out.data);
        assert_eq!(out.data["audit_deleted"], 2);
        let left: Vec<String> = control
            .audit(&AuditQuery::new(10))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.entry.note.unwrap())
            .collect();
        assert_eq!(left, ["new", "young"]);
        // Idempotent; the newest entry stays even when it is old.
        assert_eq!(job.run_at(now).await.data["audit_deleted"], 0);
        let much_later = now + chrono::Duration::days(365);
        assert_eq!(job.run_at(much_later).await.data["audit_deleted"], 1);
        assert_eq!(control.audit(&AuditQuery::new(10)).await.unwrap().len(), 1);
        // Without a database, no audit is pruned nor reported.
        let out = HistoryRetention::new(db.store(), RetentionOptions::default()).run_at(now).await;
        assert!(out.data.get("audit_deleted").is_none(), "{}", out.data);
    }

    #[test]
    fn a_retention_reaching_before_the_earliest_time_fails_permanently_instead_of_panicking() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 3, 30, 0).unwrap();
        let store = Arc::new(MemoryStore::new());
        let options = RetentionOptions {
            keep_failures: Duration::from_secs(1_000_000 * 366 * 86_400),
            ..RetentionOptions::default()
        };
        let out = futures::executor::block_on(HistoryRetention::new(store, options).run_at(now));
        assert!(out.permanent, "{:?}", out.error);
        let error = out.error.unwrap();
        assert!(
            error.starts_with("[jobs.history-retention] keep_failures = \"")
                && error.ends_with(
                    "reaches back before the earliest time there is; set a shorter duration"
                ),
            "{error}"
        );
    }
}
