//! Job definitions as the control plane stores them (`job_definitions`):
//! the seven operational jobs from the configuration, and any other job
//! from what the scheduler reports.

use mscribe_scheduler::JobInfo;
use mscribe_storage::{JobDefinition, Source};
use serde_json::{Value, json};

use crate::config::{CommonSettings, Config};
use crate::ops::JobKind;

/// The definitions of the configured jobs: the seven built-in ones (kind
/// `ops:<id>`) and the jobs of your own (kind `command` or `http`; their
/// options, which may hold secrets, are not stored), source `config`, the schedule and time zone of their
/// section, and as policies the overlap policy and its scope,
/// `max_concurrent`, the timeout, retry and misfire policies, `enabled` and
/// `per_instance`. `registered_by` and `updated_at` are left for
/// [`ControlPlane::prepare`](super::ControlPlane::prepare) to fill.
pub fn ops_definitions(config: &Config) -> Vec<JobDefinition> {
    config
        .jobs
        .all()
        .into_iter()
        .map(|job| {
            let (kind, c) = (job.kind, job.common);
            JobDefinition {
                job_id: job.id.to_owned(),
                name: job.name.to_owned(),
                schedule: Some(c.schedule.to_owned()),
                timezone: c.timezone.map(str::to_owned),
                kind: if kind.is_builtin() {
                    format!("ops:{}", kind.id)
                } else {
                    kind.id.to_owned()
                },
                policies: policies(kind, &c),
                source: Source::Config,
                registered_by: String::new(),
                updated_at: chrono::DateTime::UNIX_EPOCH,
            }
        })
        .collect()
}

/// A job's policies as its definition stores them: the overlap policy and
/// its scope, `max_concurrent`, the timeout, retry and misfire policies,
/// `enabled` and `per_instance`.
pub(crate) fn policies(kind: &JobKind, c: &CommonSettings<'_>) -> Value {
    json!({
        "overlap": c.overlap,
        "overlap_scope": c.overlap_scope,
        "max_concurrent": c.max_concurrent,
        "timeout_ms": duration_ms(c.timeout),
        "retry": c.retry.policy(),
        "misfire": c.misfire.policy(),
        "enabled": c.enabled,
        "per_instance": kind.per_instance,
    })
}

/// The definition of a job registered in code, from its listing: kind
/// `rust`, source `code`, the policies the listing shows.
pub(crate) fn code_definition(info: &JobInfo) -> JobDefinition {
    JobDefinition {
        job_id: info.id.clone(),
        name: info.name.clone(),
        schedule: info.schedule.clone(),
        timezone: None,
        kind: "rust".to_owned(),
        policies: json!({
            "overlap": info.overlap,
            "timeout_ms": info.timeout.map(duration_ms),
            "max_attempts": info.max_attempts,
        }),
        source: Source::Code,
        registered_by: String::new(),
        updated_at: chrono::DateTime::UNIX_EPOCH,
    }
}

fn duration_ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seven_jobs_are_defined_from_the_configuration() {
        let mut cfg = Config::default();
        cfg.jobs.health_snapshot.enabled = false;
        cfg.jobs.database_backup.timezone = Some("Europe/Paris".into());
        let defs = ops_definitions(&cfg);
        assert_eq!(defs.len(), crate::config::JOB_IDS.len());
        let backup = defs.iter().find(|d| d.job_id == "database-backup").unwrap();
        assert_eq!(backup.kind, "ops:database-backup");
        assert_eq!(backup.source, Source::Config);
        assert_eq!(backup.timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(backup.policies["overlap"], "skip");
        assert!(backup.policies["retry"]["max_attempts"].is_u64(), "{}", backup.policies);
        assert!(backup.policies["misfire"].is_object());
        let snap = defs.iter().find(|d| d.job_id == "health-snapshot").unwrap();
        assert_eq!(snap.policies["enabled"], false);
    }
}
