//! The `tracing` spans of runs and attempts, on their own target
//! ([`TRACE_TARGET`]) so that they cost next to nothing when no layer of
//! the subscriber enables that target.
//!
//! A span is created only when some layer is interested in its callsite:
//! with none (no subscriber, or one whose layers all filter
//! [`TRACE_TARGET`] out) the callsite is disabled once, and each run or
//! attempt then pays one check per run ([`wanted`]: the global maximum
//! level and the callsite's cached interest, relaxed atomic loads, and a
//! branch) and carries `None` for its spans. No field is evaluated, no
//! fire key formatted, nothing allocated, nothing to drop; the handler's
//! future is not wrapped.

use std::sync::Arc;

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

/// Whether a layer wants the spans of [`TRACE_TARGET`]: the global
/// maximum level, then the callsite's cached interest (and, when that is
/// "sometimes", the subscriber's `enabled`).
///
/// The spans are created behind this check rather than by `info_span!`
/// alone: with tracing's `log` feature on (some dependency may turn it on)
/// and no subscriber set, a disabled `info_span!` still evaluates its
/// fields for the `log` crate, and its drop logs again.
#[inline(always)]
pub(crate) fn wanted() -> bool {
    tracing::enabled!(target: TRACE_TARGET, tracing::Level::INFO)
}

/// The span of a run, a root whatever span is current; `None` when no
/// layer wants it (then its attempts have none either). Boxed: a run and
/// an attempt carry 8 bytes for it, not 40.
#[inline(always)]
pub(crate) fn run_span(
    job_id: &Arc<str>,
    execution_id: ExecutionId,
    nominal: DateTime<Utc>,
    kind: FireKind,
) -> Option<Box<Span>> {
    if !wanted() {
        return None;
    }
    Some(new_run_span(job_id, execution_id, nominal, kind))
}

#[inline(never)]
#[cold]
fn new_run_span(
    job_id: &Arc<str>,
    execution_id: ExecutionId,
    nominal: DateTime<Utc>,
    kind: FireKind,
) -> Box<Span> {
    Box::new(tracing::info_span!(
        target: TRACE_TARGET,
        parent: None,
        "mscribe.run",
        job_id = &**job_id,
        execution_id = %execution_id,
        fire_key = %FireKey { job_id: job_id.clone(), scheduled_at: nominal },
        trigger = kind.as_str(),
        status = Empty,
        otel.status_code = Empty,
    ))
}

/// The span of attempt `attempt` of the run whose span is `run`.
#[inline(never)]
#[cold]
pub(crate) fn attempt_span(
    run: &Span,
    job_id: &Arc<str>,
    execution_id: ExecutionId,
    nominal: DateTime<Utc>,
    kind: FireKind,
    attempt: u32,
) -> Box<Span> {
    Box::new(tracing::info_span!(
        target: TRACE_TARGET,
        parent: run,
        "mscribe.attempt",
        job_id = &**job_id,
        execution_id = %execution_id,
        fire_key = %FireKey { job_id: job_id.clone(), scheduled_at: nominal },
        trigger = kind.as_str(),
        // An i64: the OpenTelemetry bridge exports an u64 as a string.
        attempt = i64::from(attempt),
        status = Empty,
        otel.status_code = Empty,
    ))
}

/// Records the final `status` of a run's or an attempt's span and closes
/// it (nothing without a span).
#[inline(always)]
pub(crate) fn end_span(span: Option<Box<Span>>, status: ExecutionStatus) {
    if let Some(span) = span {
        record_status(&span, status);
    }
}

#[inline(never)]
#[cold]
fn record_status(span: &Span, status: ExecutionStatus) {
    if span.is_disabled() {
        return;
    }
    span.record("status", status.as_str());
    if status != ExecutionStatus::Succeeded {
        span.record("otel.status_code", "error");
    }
}
