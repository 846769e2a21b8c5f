//! The `tracing` spans of runs and attempts, on their own target
//! ([`TRACE_TARGET`]) so that they cost one atomic load each when no layer
//! of the subscriber enables that target.
//!
//! A span is created only when some layer is interested in its callsite:
//! with none (no subscriber, or one whose layers all filter
//! [`TRACE_TARGET`] out) the callsite is disabled once, and each run or
//! attempt then pays a load of the cached interest and a branch. No field
//! is evaluated, no fire key formatted, nothing allocated; a disabled span
//! is never entered, recorded or wrapped around the handler's future.

use chrono::{DateTime, Utc};
use tracing::Span;
use tracing::field::Empty;

use crate::job::FireKey;
use crate::store::{ExecutionId, ExecutionStatus, FireKind};

/// The target of the spans of runs and attempts (`mscribe::otel`).
///
/// Each run is a root span named `mscribe.run`, each of its attempts a
/// child named `mscribe.attempt`, both at level `INFO`, with the fields
/// `job_id`, `execution_id`, `fire_key` (`job@2026-12-05T10:00:00.000Z`,
/// as [`FireKey`] displays it), `trigger` (`schedule`, `manual` or
/// `backfill`) and `status` (the final [`ExecutionStatus`] as stored,
/// recorded when the run or attempt ends); an attempt also has `attempt`
/// (1 for the first). An attempt that does not succeed sets
/// `otel.status_code` to `error`. The handler's future runs inside its
/// attempt's span, so `Span::current()` there is the attempt.
///
/// Enable this target in one layer only (an OpenTelemetry layer, say): a
/// log layer that lets it through would write a line for every span.
pub const TRACE_TARGET: &str = "mscribe::otel";

/// The span of a run: a root, whatever span is current.
#[inline]
pub(crate) fn run_span(
    job_id: &std::sync::Arc<str>,
    execution_id: ExecutionId,
    nominal: DateTime<Utc>,
    kind: FireKind,
) -> Span {
    tracing::info_span!(
        target: TRACE_TARGET,
        parent: None,
        "mscribe.run",
        job_id = &**job_id,
        execution_id = %execution_id,
        fire_key = %FireKey { job_id: job_id.clone(), scheduled_at: nominal },
        trigger = kind.as_str(),
        status = Empty,
        otel.status_code = Empty,
    )
}

/// The span of attempt `attempt` of the run whose span is `run`.
#[inline]
pub(crate) fn attempt_span(
    run: &Span,
    job_id: &std::sync::Arc<str>,
    execution_id: ExecutionId,
    nominal: DateTime<Utc>,
    kind: FireKind,
    attempt: u32,
) -> Span {
    tracing::info_span!(
        target: TRACE_TARGET,
        parent: run,
        "mscribe.attempt",
        job_id = &**job_id,
        execution_id = %execution_id,
        fire_key = %FireKey { job_id: job_id.clone(), scheduled_at: nominal },
        trigger = kind.as_str(),
        attempt,
        status = Empty,
        otel.status_code = Empty,
    )
}

/// Records the final `status` of a run's or an attempt's span (nothing
/// when the span is disabled).
#[inline]
pub(crate) fn record_status(span: &Span, status: ExecutionStatus) {
    if span.is_disabled() {
        return;
    }
    span.record("status", status.as_str());
    if status != ExecutionStatus::Succeeded {
        span.record("otel.status_code", "error");
    }
}
