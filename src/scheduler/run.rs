//! One run: its attempts, each begun, awaited (handler, timeout, kill
//! switch) and ended with a status, a retry after a backoff while the
//! policy allows, and the rows they record.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, Either, select};
use futures::{Future, FutureExt};

use super::JobScheduler;
use super::dispatch::Launch;
use super::registry::Fire;
use crate::cancel::{CancelReason, CancellationToken};
use crate::clock::{after, checked_after, std_dur};
use crate::failure::ErrorKind;
use crate::guard::{GuardedSleep, panic_message};
use crate::job::{JobContext, JobResult};
use crate::logfmt::Rfc3339;
use crate::store::{AttemptEnd, AttemptStart, ExecutionEvent, ExecutionId, ExecutionStatus};
use crate::trace;
use tracing::Instrument;

impl JobScheduler {
    /// Starts attempt `attempt` of run `l`: records its start and calls the
    /// handler (which has not been polled yet).
    ///
    /// The observers see the start at once. With `defer`, the store's copy
    /// is left to the caller ([`InFlight::start_unwritten`]): it skips it if
    /// the attempt ends before anything could read it, so that attempt is
    /// written as one completed row (its end event carries every field of
    /// the start).
    pub(super) fn begin_attempt(
        &self,
        l: &Launch,
        attempt: u32,
        started_at: DateTime<Utc>,
        defer: bool,
    ) -> InFlight {
        let inner = &self.inner;
        let spec = &l.spec;
        if !defer || !inner.observers.is_empty() {
            let start = self.start_event(l, attempt, started_at);
            inner.observe(&start);
            if !defer {
                inner.recorder.push(start);
            }
        }
        tracing::info!(job_id = %spec.id, execution_id = %l.id, attempt, scheduled_at = %Rfc3339(l.fire.nominal), status = "running", "attempt started");
        // With a single attempt the run's own token serves: it is cancelled
        // at the attempt's end either way, and no later attempt reads it.
        // Otherwise each attempt gets a child.
        let child = (spec.retry.max_attempts > 1).then(|| l.cancel.child());
        let ctx = JobContext {
            job_id: spec.id.clone(),
            execution_id: l.id,
            attempt,
            scheduled_at: l.fire.nominal,
            cancel: child.clone().unwrap_or_else(|| l.cancel.clone()),
            clock: inner.dyn_clock.clone(),
        };
        // A handler may panic before it returns its future (in a closure's
        // synchronous part, or a `run_owned` of its own): that panic comes
        // out of the future's first poll, where the attempt catches it.
        let start = || {
            spec.handler.run_detached(ctx).unwrap_or_else(|ctx| spec.handler.clone().run_owned(ctx))
        };
        let span = l.span.as_ref().map(|run| {
            trace::attempt_span(run, &spec.id, l.id, l.fire.nominal, l.fire.kind, attempt)
        });
        let fut = match &span {
            None => std::panic::catch_unwind(AssertUnwindSafe(start)),
            Some(span) => in_span(span, start),
        };
        let fut = fut.unwrap_or_else(|panic| {
            Box::pin(futures::future::lazy(move |_| -> JobResult {
                std::panic::resume_unwind(panic)
            }))
        });
        let work = AssertUnwindSafe(fut).catch_unwind();
        InFlight { started_at, child, work, start_unwritten: defer, span }
    }

    /// The start event of attempt `attempt` of run `l`.
    pub(super) fn start_event(
        &self,
        l: &Launch,
        attempt: u32,
        started_at: DateTime<Utc>,
    ) -> ExecutionEvent {
        ExecutionEvent::Started(AttemptStart {
            job_id: l.spec.id.clone(),
            execution_id: l.id,
            attempt,
            scheduled_at: l.fire.nominal,
            started_at,
            instance_id: self.inner.instance_id.clone(),
            kind: l.fire.kind,
            fence: l.fire.fence(),
        })
    }

    /// Waits for an attempt's handler, its timeout or the run's kill switch.
    async fn await_attempt(&self, l: &Launch, flight: &mut InFlight) -> Outcome {
        let work = &mut flight.work;
        if l.cancel.is_killed() {
            return Outcome::Killed;
        }
        // A handler that is done on its first poll needs no timer.
        let first = futures::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *work).poll(cx))).await;
        if let Poll::Ready(res) = first {
            return if l.cancel.is_killed() { Outcome::Killed } else { Outcome::Done(res) };
        }
        // A timeout past the end of time is no timeout.
        let timer = match l.spec.timeout.and_then(|t| checked_after(flight.started_at, t)) {
            Some(deadline) => self.inner.clock.sleep_until(deadline),
            None => GuardedSleep::never(),
        };
        let killed = l.cancel.killed();
        futures::pin_mut!(killed);
        match select(work, select(timer, killed)).await {
            // Replace and unregister cancel and kill at once: whatever the
            // handler managed to return in that instant, the run was cut.
            _ if l.cancel.is_killed() => Outcome::Killed,
            Either::Left((res, _)) => Outcome::Done(res),
            Either::Right((Either::Left(_), _)) => Outcome::TimedOut,
            Either::Right((Either::Right(_), _)) => Outcome::Killed,
        }
    }

    /// Ends an attempt: decides its status, tells the handler's leftovers
    /// (its token), records the end and says whether another attempt follows.
    pub(super) fn end_attempt(
        &self,
        l: &Launch,
        attempt: u32,
        flight: InFlight,
        outcome: Outcome,
        ended_at: DateTime<Utc>,
    ) -> AttemptOver {
        let inner = &self.inner;
        let spec = &l.spec;
        let cancel = &l.cancel;
        let InFlight { started_at, child, work, start_unwritten: _, span } = flight;
        let duration = std_dur(started_at, ended_at);
        // The result's data and metrics go into the row; its fields are
        // moved out rather than a whole `JobResult` kept and dropped.
        let (mut status, error, error_kind, data, metrics) = match outcome {
            Outcome::Done(Ok(r)) => {
                let kind = r.error_kind();
                let JobResult { success, error, data, metrics, .. } = r;
                if success {
                    (ExecutionStatus::Succeeded, None, None, data, metrics)
                } else if cancel.is_cancelled() {
                    (ExecutionStatus::Cancelled, error, None, data, metrics)
                } else {
                    let error = error.unwrap_or_else(|| "handler reported failure".to_owned());
                    (ExecutionStatus::Failed, Some(error), kind, data, metrics)
                }
            }
            Outcome::Done(Err(panic)) => {
                let msg = panic_message(&*panic);
                let (status, kind) = if cancel.is_cancelled() {
                    (ExecutionStatus::Cancelled, None)
                } else {
                    (ExecutionStatus::Failed, Some(ErrorKind::Transient))
                };
                (status, Some(format!("handler panicked: {msg}")), kind, None, None)
            }
            Outcome::TimedOut => {
                let error = format!("timed out after {:?}", spec.timeout.unwrap_or_default());
                (ExecutionStatus::TimedOut, Some(error), None, None, None)
            }
            Outcome::Killed => {
                let why = cancel_reason(cancel);
                let error = format!("cancelled ({why}): dropped without finishing");
                (ExecutionStatus::Cancelled, Some(error), None, None, None)
            }
        };
        // A permanent error ends the run: no retry can fix it.
        let permanent = error_kind == Some(ErrorKind::Permanent);
        let retryable = matches!(status, ExecutionStatus::Failed | ExecutionStatus::TimedOut)
            && !permanent
            && !cancel.is_cancelled();
        let retry = retryable && spec.retry.has_next(attempt);
        if retryable && !retry && spec.retry.max_attempts > 1 {
            status = ExecutionStatus::RetriesExhausted;
        }
        // The attempt is over: tell whatever the handler left behind (after
        // the status, which reads the run's token: with one attempt, this is
        // it), then drop the handler's future, before the end is recorded.
        // Only the scheduler's own handles left (the child's in `InFlight`;
        // the run token's in the launch and the job's running list): no
        // one is left to tell.
        match &child {
            Some(child) => child.cancel_if_shared(1),
            None => cancel.cancel_if_shared(2),
        }
        drop(work);
        trace::end_span(span, status);
        log_end(&spec.id, l.id, attempt, status, duration, error.as_deref());
        // The ids' reference counts are taken before the buffer's lock.
        let (job_id, instance_id) = (spec.id.clone(), inner.instance_id.clone());
        inner.record_with(|| {
            ExecutionEvent::Finished(AttemptEnd {
                job_id,
                execution_id: l.id,
                attempt,
                scheduled_at: l.fire.nominal,
                started_at,
                instance_id,
                status,
                completed_at: ended_at,
                duration,
                error,
                error_kind,
                result: data,
                metrics,
                kind: l.fire.kind,
                fence: l.fire.fence(),
                ends_run: !retry,
            })
        });
        AttemptOver { status, retry, at: ended_at, duration }
    }

    /// Records attempt `attempt` of run `l`, which was cancelled before it
    /// started (`when`), as `cancelled` with the reason: the run's last row
    /// then says what [`JobInfo::last_status`](super::JobInfo::last_status)
    /// says.
    fn cancelled_unstarted(&self, l: &Launch, attempt: u32, when: &str) {
        let now = self.inner.clock.now();
        let why = cancel_reason(&l.cancel);
        let error = format!("cancelled {when} ({why}); attempt {attempt} never started");
        self.record_unstarted(&l.spec.id, l.id, attempt, &l.fire, now, error);
    }

    /// Records an attempt that never started as `cancelled` for `error`.
    pub(super) fn record_unstarted(
        &self,
        job_id: &Arc<str>,
        execution_id: ExecutionId,
        attempt: u32,
        fire: &Fire,
        now: DateTime<Utc>,
        error: String,
    ) {
        let status = ExecutionStatus::Cancelled;
        log_end(job_id, execution_id, attempt, status, Duration::ZERO, Some(&error));
        self.inner.record(ExecutionEvent::Finished(AttemptEnd {
            job_id: job_id.clone(),
            execution_id,
            attempt,
            scheduled_at: fire.nominal,
            started_at: now,
            instance_id: self.inner.instance_id.clone(),
            status,
            completed_at: now,
            duration: Duration::ZERO,
            error: Some(error),
            error_kind: None,
            result: None,
            metrics: None,
            kind: fire.kind,
            fence: fire.fence(),
            ends_run: true,
        }));
    }

    /// One run: attempts with timeout and retry, from `resume`. Returns the
    /// final status.
    pub(super) async fn run(&self, l: &Launch, resume: Resume) -> ExecutionStatus {
        let clock = &self.inner.clock;
        let spec = &l.spec;
        let mut rng = fastrand::Rng::with_seed(l.seed);
        let mut attempt = l.fire.first_attempt;
        let (mut flight, mut backoff_from) = match resume {
            Resume::Fresh => (None, None),
            Resume::InFlight(f) => (Some(*f), None),
            Resume::Backoff(at) => (None, Some(at)),
        };
        loop {
            if let Some(ended_at) = backoff_from.take() {
                let delay = spec.retry.delay(attempt, &mut rng);
                let at = after(ended_at, delay);
                tracing::info!(job_id = %spec.id, execution_id = %l.id, next_attempt = attempt + 1, at = %Rfc3339(at), "retry planned");
                let sleep = clock.sleep_until(at);
                let stopped = Box::pin(l.cancel.cancelled());
                if let Either::Right(_) = select(sleep, stopped).await {
                    self.cancelled_unstarted(l, attempt + 1, "during the retry backoff");
                    return ExecutionStatus::Cancelled;
                }
                attempt += 1;
            }
            let mut f = match flight.take() {
                Some(f) => f,
                None => self.begin_attempt(l, attempt, clock.now(), false),
            };
            let outcome = self.await_attempt(l, &mut f).await;
            let end = self.end_attempt(l, attempt, f, outcome, clock.now());
            if !end.retry {
                return end.status;
            }
            backoff_from = Some(end.at);
        }
    }
}

/// Where a run task picks up.
pub(super) enum Resume {
    /// Before its first attempt.
    Fresh,
    /// Its first attempt's handler returned `Pending` on the driver.
    InFlight(Box<InFlight>),
    /// Its first attempt failed on the driver at this time; back off, retry.
    Backoff(DateTime<Utc>),
}

/// An attempt whose handler has been called.
pub(super) struct InFlight {
    pub(super) started_at: DateTime<Utc>,
    /// Whether the start is not in the store buffer yet (see `begin_attempt`).
    pub(super) start_unwritten: bool,
    /// The attempt's own token when the run may retry; else the handler
    /// holds the run's token.
    pub(super) child: Option<CancellationToken>,
    pub(super) work: futures::future::CatchUnwind<AssertUnwindSafe<BoxFuture<'static, JobResult>>>,
    /// The attempt's span ([`trace::attempt_span`]), closed when it ends;
    /// `None` when its run has none.
    pub(super) span: Option<Box<tracing::Span>>,
}

/// How an attempt ended, from [`JobScheduler::end_attempt`].
pub(super) struct AttemptOver {
    pub(super) status: ExecutionStatus,
    pub(super) retry: bool,
    pub(super) at: DateTime<Utc>,
    pub(super) duration: Duration,
}

pub(super) enum Outcome {
    Done(std::thread::Result<JobResult>),
    TimedOut,
    Killed,
}

#[inline(always)]
fn log_end(
    job: &str,
    id: ExecutionId,
    attempt: u32,
    status: ExecutionStatus,
    duration: Duration,
    error: Option<&str>,
) {
    let ms = crate::store::duration_ms(duration);
    match status {
        ExecutionStatus::Succeeded => {
            tracing::info!(job_id = %job, execution_id = %id, attempt, status = status.as_str(), duration_ms = ms, "attempt ended")
        }
        _ => {
            tracing::warn!(job_id = %job, execution_id = %id, attempt, status = status.as_str(), duration_ms = ms, error = error.unwrap_or(""), "attempt ended")
        }
    }
}

/// Calls `start` (a handler's synchronous part) in `span`, and makes its
/// future run in it too. Out of line: only a traced attempt comes here.
#[cold]
#[inline(never)]
fn in_span(
    span: &tracing::Span,
    start: impl FnOnce() -> BoxFuture<'static, JobResult>,
) -> std::thread::Result<BoxFuture<'static, JobResult>> {
    std::panic::catch_unwind(AssertUnwindSafe(|| span.in_scope(start)))
        .map(|fut| -> BoxFuture<'static, JobResult> { Box::pin(fut.instrument(span.clone())) })
}

/// Why `token`'s run was cancelled, as its row states it.
fn cancel_reason(token: &CancellationToken) -> &'static str {
    token.reason().map_or("cancelled", CancelReason::as_str)
}
