//! `history-retention`: prunes the execution history.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{ExecutionStore, PrunePolicy};
use serde_json::json;

use super::{OpsJob, OpsOutcome};
use crate::config::RetentionOptions;
use crate::db::Database;

/// Deletes finished execution rows older than `keep`, failures older than
/// `keep_failures`, and (with a database) hourly metric rows older than
/// `keep_metrics`. Running rows are never deleted.
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

    /// Also prunes `job_metrics_hourly` in `db`.
    pub fn with_database(mut self, db: Database) -> Self {
        self.db = Some(db);
        self
    }

    fn before(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
        now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX / 2)
    }
}

#[async_trait]
impl OpsJob for HistoryRetention {
    async fn run_at(&self, now: DateTime<Utc>) -> OpsOutcome {
        let older_than = Self::before(now, self.options.keep);
        let failures_older_than =
            Self::before(now, self.options.keep_failures.max(self.options.keep));
        let policy = PrunePolicy { older_than, failures_older_than: Some(failures_older_than) };
        let mut data = json!({
            "older_than": older_than,
            "failures_older_than": failures_older_than,
        });
        let deleted = match self.store.prune(policy).await {
            Ok(n) => n,
            Err(e) => {
                return OpsOutcome::failed(data, format!("pruning execution history failed: {e}"));
            }
        };
        data["deleted"] = json!(deleted);
        let mut metrics_deleted = 0;
        if let Some(db) = &self.db {
            let cutoff = Self::before(now, self.options.keep_metrics);
            match db.prune_hourly(cutoff).await {
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
        }
        tracing::info!(deleted, metrics_deleted, %older_than, %failures_older_than, "history pruned");
        OpsOutcome::ok(data).metric("deleted", deleted as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use mscribe_scheduler::store::{AttemptEnd, AttemptStart, ExecutionId};
    use mscribe_scheduler::{ExecutionEvent, ExecutionStatus, HistoryQuery, MemoryStore};

    fn row(id: u128, started: DateTime<Utc>, status: ExecutionStatus) -> Vec<ExecutionEvent> {
        let s = AttemptStart {
            job_id: "j".into(),
            execution_id: ExecutionId(id),
            attempt: 1,
            scheduled_at: started,
            started_at: started,
            instance_id: "i".into(),
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
                .map(|r| r.execution_id.0)
                .collect();
        assert_eq!(left, vec![4, 2, 5]);
        // Idempotent.
        let again = futures::executor::block_on(job.run_at(now));
        assert_eq!(again.data["deleted"], 0);
    }
}
