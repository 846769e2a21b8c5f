//! Jobs: the [`JobHandler`] trait, what a handler gets ([`JobContext`]) and
//! returns ([`JobResult`]), and the [`JobConfig`] builder.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::cancel::CancellationToken;
use crate::clock::Clock;
use crate::failure::{ErrorKind, JobError};
use crate::policy::{MisfirePolicy, OverlapPolicy, OverlapScope};
use crate::retry::RetryPolicy;
use crate::schedule::Schedule;
use crate::store::{ExecutionId, Metrics};

/// What an attempt's handler receives.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job's id.
    pub job_id: Arc<str>,
    /// The run's id, shared by its attempts.
    pub execution_id: ExecutionId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The nominal fire time this run serves.
    pub scheduled_at: DateTime<Utc>,
    /// Fires on timeout, stop, replace or unregister. A handler that ignores
    /// it is dropped at its deadline (or at the end of the stop grace).
    pub cancel: CancellationToken,
    pub(crate) clock: Arc<dyn Clock>,
}

/// The fire a run serves: its job and nominal time. It is the same for
/// every attempt of the run, and for an instance that takes the fire over
/// after its owner died (docs/SEMANTICS.md §12), so a handler can use it to
/// deduplicate its side effects (an idempotency key, a unique row).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FireKey {
    /// The job's id.
    pub job_id: Arc<str>,
    /// The fire's nominal time.
    pub scheduled_at: DateTime<Utc>,
}

impl fmt::Display for FireKey {
    /// `job@2026-12-05T10:00:00.000Z`: milliseconds, always in UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.scheduled_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        write!(f, "{}@{at}", self.job_id)
    }
}

impl JobContext {
    /// The fire this run serves ([`FireKey`]): stable across attempts and
    /// take-overs.
    pub fn fire_key(&self) -> FireKey {
        FireKey { job_id: self.job_id.clone(), scheduled_at: self.scheduled_at }
    }

    /// The scheduler's clock: virtual in tests, so a handler that waits
    /// through it runs in simulated time.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Sleeps `d` on the scheduler's clock, or until cancelled; returns
    /// whether the full sleep elapsed. A `d` past the last instant the clock
    /// can hold (such as `Duration::MAX`) sleeps until cancelled.
    pub async fn sleep(&self, d: Duration) -> bool {
        let sleep = match crate::clock::checked_after(self.clock.now(), d) {
            Some(until) => self.clock.sleep_until(until),
            None => Box::pin(futures::future::pending()),
        };
        futures::pin_mut!(sleep);
        let cancelled = self.cancel.cancelled();
        futures::pin_mut!(cancelled);
        matches!(futures::future::select(sleep, cancelled).await, futures::future::Either::Left(_))
    }

    /// Whether the attempt has been asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobResult {
    /// Whether the attempt succeeded.
    pub success: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// Whether the failure is permanent: the run ends with no further
    /// attempt, whatever the retry policy says ([`ErrorKind::Permanent`]).
    pub permanent: bool,
    /// How long it ran; filled in by the scheduler from its clock.
    pub duration: Duration,
    /// Result data, stored as JSON.
    pub data: Option<serde_json::Value>,
    /// Named numbers, stored as JSON.
    pub metrics: Option<Metrics>,
}

impl JobResult {
    /// A success with no data.
    pub fn ok() -> Self {
        JobResult { success: true, ..Default::default() }
    }

    /// A transient failure with a message: retried per the policy.
    pub fn failed(error: impl Into<String>) -> Self {
        JobResult { success: false, error: Some(error.into()), ..Default::default() }
    }

    /// A permanent failure with a message: no retry follows.
    pub fn failed_permanently(error: impl Into<String>) -> Self {
        JobResult { permanent: true, ..JobResult::failed(error) }
    }

    /// The kind of the failure, `None` for a success.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match (self.success, self.permanent) {
            (true, _) => None,
            (false, true) => Some(ErrorKind::Permanent),
            (false, false) => Some(ErrorKind::Transient),
        }
    }

    /// Attaches result data.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Adds one metric.
    pub fn with_metric(mut self, name: impl Into<String>, value: f64) -> Self {
        self.metrics.get_or_insert_with(Default::default).insert(name.into(), value);
        self
    }
}

/// What a handler may return: a [`JobResult`], `()`, or a `Result` of either
/// whose error displays (its text becomes the attempt's error). A
/// [`JobError`] keeps its kind; any other error is transient.
pub trait IntoJobResult {
    /// Converts to a result.
    fn into_job_result(self) -> JobResult;
}

impl IntoJobResult for JobResult {
    fn into_job_result(self) -> JobResult {
        self
    }
}

impl IntoJobResult for () {
    fn into_job_result(self) -> JobResult {
        JobResult::ok()
    }
}

impl<T: IntoJobResult, E: fmt::Display + 'static> IntoJobResult for Result<T, E> {
    fn into_job_result(self) -> JobResult {
        match self {
            Ok(t) => t.into_job_result(),
            Err(e) => {
                // A `JobError` says its kind; every other error is transient.
                let mut slot = Some(e);
                let any: &mut dyn std::any::Any = &mut slot;
                if let Some(job_error) =
                    any.downcast_mut::<Option<JobError>>().and_then(Option::take)
                {
                    return JobResult {
                        permanent: job_error.is_permanent(),
                        ..JobResult::failed(job_error.message())
                    };
                }
                JobResult::failed(slot.map(|e| e.to_string()).unwrap_or_default())
            }
        }
    }
}

/// The work a job does. Closures `Fn(JobContext) -> impl Future` implement it.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one attempt.
    async fn run(&self, ctx: JobContext) -> JobResult;

    /// Starts one attempt as a future that owns what it needs, which is how
    /// the scheduler calls a handler. The default wraps [`run`](Self::run);
    /// implementations rarely need to override it (the one for closures
    /// does, to box the closure's future once instead of twice).
    fn run_owned(self: Arc<Self>, ctx: JobContext) -> BoxFuture<'static, JobResult> {
        Box::pin(async move { self.run(ctx).await })
    }

    /// Starts one attempt as a future that owns what it needs without
    /// holding the handler, or gives `ctx` back when the future needs the
    /// handler (the default). The scheduler tries it before
    /// [`run_owned`](Self::run_owned): a closure's future owns everything
    /// already, so starting it costs no reference count on the handler.
    fn run_detached(&self, ctx: JobContext) -> Result<BoxFuture<'static, JobResult>, JobContext> {
        Err(ctx)
    }
}

#[async_trait]
impl<F, Fut> JobHandler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoJobResult,
{
    async fn run(&self, ctx: JobContext) -> JobResult {
        (self)(ctx).await.into_job_result()
    }

    fn run_owned(self: Arc<Self>, ctx: JobContext) -> BoxFuture<'static, JobResult> {
        closure_future(&*self, ctx)
    }

    fn run_detached(&self, ctx: JobContext) -> Result<BoxFuture<'static, JobResult>, JobContext> {
        Ok(closure_future(self, ctx))
    }
}

/// A closure's future for one attempt, boxed once; it owns all it needs.
fn closure_future<F, Fut>(f: &F, ctx: JobContext) -> BoxFuture<'static, JobResult>
where
    F: Fn(JobContext) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: IntoJobResult,
{
    let fut = f(ctx);
    Box::pin(async move { fut.await.into_job_result() })
}

/// A schedule given to [`JobConfig`]: parsed at registration so a bad one is
/// an error of `register`, quoting the value.
#[derive(Debug, Clone)]
pub enum ScheduleSpec {
    /// Text for [`Schedule::parse`].
    Text(String),
    /// A schedule already built.
    Parsed(Schedule),
    /// A fixed interval.
    Every(Duration),
}

impl From<&str> for ScheduleSpec {
    fn from(s: &str) -> Self {
        ScheduleSpec::Text(s.to_owned())
    }
}

impl From<String> for ScheduleSpec {
    fn from(s: String) -> Self {
        ScheduleSpec::Text(s)
    }
}

impl From<Schedule> for ScheduleSpec {
    fn from(s: Schedule) -> Self {
        ScheduleSpec::Parsed(s)
    }
}

/// An integer is an interval in milliseconds, as the original product's
/// `60_000` (a bare number inside a string is refused as ambiguous).
///
/// ```
/// use std::time::Duration;
/// use mscribe_scheduler::{JobConfig, JobContext, ScheduleSpec};
///
/// let job = JobConfig::new("poll", |_ctx: JobContext| async {}).schedule(60_000);
/// assert!(matches!(ScheduleSpec::from(60_000), ScheduleSpec::Every(d) if d == Duration::from_secs(60)));
/// ```
impl From<u64> for ScheduleSpec {
    fn from(ms: u64) -> Self {
        ScheduleSpec::Every(Duration::from_millis(ms))
    }
}

impl From<Duration> for ScheduleSpec {
    fn from(d: Duration) -> Self {
        ScheduleSpec::Every(d)
    }
}

impl ScheduleSpec {
    /// Parses the spec into a schedule.
    pub fn build(&self) -> crate::Result<Schedule> {
        match self {
            ScheduleSpec::Text(s) => Schedule::parse(s),
            ScheduleSpec::Parsed(s) => Ok(s.clone()),
            ScheduleSpec::Every(d) => Schedule::interval(*d),
        }
    }
}

/// A job to register: id, name, schedule and handler, plus policies.
///
/// ```
/// use std::time::Duration;
/// use mscribe_scheduler::{JobConfig, JobContext, RetryPolicy};
///
/// let job = JobConfig::new("nightly-backup", |_ctx: JobContext| async { Ok::<(), String>(()) })
///     .name("Nightly backup")
///     .schedule("0 2 * * *")
///     .timezone("Europe/Berlin")
///     .timeout(Duration::from_secs(600))
///     .retry(RetryPolicy::exponential(3));
/// assert_eq!(job.id(), "nightly-backup");
/// ```
#[derive(Clone)]
pub struct JobConfig {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) schedule: Option<ScheduleSpec>,
    pub(crate) timezone: Option<String>,
    pub(crate) handler: Arc<dyn JobHandler>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: RetryPolicy,
    pub(crate) overlap: OverlapPolicy,
    pub(crate) misfire: MisfirePolicy,
    pub(crate) jitter: Option<Duration>,
    pub(crate) paused: bool,
    pub(crate) per_instance: bool,
    pub(crate) overlap_scope: OverlapScope,
    pub(crate) max_concurrent: Option<u32>,
}

impl fmt::Debug for JobConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("schedule", &self.schedule)
            .field("timezone", &self.timezone)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("overlap", &self.overlap)
            .field("misfire", &self.misfire)
            .field("jitter", &self.jitter)
            .field("paused", &self.paused)
            .field("per_instance", &self.per_instance)
            .field("overlap_scope", &self.overlap_scope)
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl JobConfig {
    /// A job with an id and a handler; the name defaults to the id.
    ///
    /// A job registered without a [`schedule`](Self::schedule) is
    /// trigger-only: it never fires by itself, has no `next_run`, and runs
    /// when [`JobScheduler::trigger`](crate::JobScheduler::trigger) (or the
    /// server's API) starts it, with history and metrics as any job.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mscribe_scheduler::{JobConfig, JobContext, JobError, JobScheduler, LocalRuntime, TriggerOutcome};
    ///
    /// let rt = LocalRuntime::new();
    /// let scheduler = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner())).build();
    /// // A manual task: no schedule. A missing file is a permanent error: no retry.
    /// scheduler.register(JobConfig::new("reindex", |_ctx: JobContext| async {
    ///     std::fs::metadata("/etc/hostname").map_err(JobError::permanent)?;
    ///     Ok::<(), JobError>(())
    /// }))?;
    /// rt.block_on(scheduler.start())?;
    /// assert_eq!(scheduler.job("reindex").unwrap().next_run, None);
    /// assert!(matches!(scheduler.trigger("reindex")?, TriggerOutcome::Started { .. }));
    /// # Ok::<(), mscribe_scheduler::Error>(())
    /// ```
    pub fn new(id: impl Into<String>, handler: impl JobHandler) -> Self {
        let id = id.into();
        JobConfig {
            name: id.clone(),
            id,
            schedule: None,
            timezone: None,
            handler: Arc::new(handler),
            timeout: None,
            retry: RetryPolicy::none(),
            overlap: OverlapPolicy::default(),
            misfire: MisfirePolicy::default(),
            jitter: None,
            paused: false,
            per_instance: false,
            overlap_scope: OverlapScope::Instance,
            max_concurrent: None,
        }
    }

    /// A job from a shared handler.
    pub fn from_arc(id: impl Into<String>, handler: Arc<dyn JobHandler>) -> Self {
        let mut cfg = JobConfig::new(id, |_ctx: JobContext| async {});
        cfg.handler = handler;
        cfg
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the schedule: cron text, `@daily`, milliseconds, a [`Duration`] or a [`Schedule`].
    pub fn schedule(mut self, s: impl Into<ScheduleSpec>) -> Self {
        self.schedule = Some(s.into());
        self
    }

    /// Sets an IANA time zone for a cron schedule (intervals and one-shot
    /// times are absolute, and a job without a schedule has no use for it;
    /// the name is checked either way). A schedule that names another zone
    /// with `CRON_TZ=` is refused at registration: the zone is given once.
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = Some(tz.into());
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, r: RetryPolicy) -> Self {
        self.retry = r;
        self
    }

    /// Sets the overlap policy.
    pub fn overlap(mut self, o: OverlapPolicy) -> Self {
        self.overlap = o;
        self
    }

    /// Sets the misfire policy.
    pub fn misfire(mut self, m: MisfirePolicy) -> Self {
        self.misfire = m;
        self
    }

    /// Delays each fire by a random amount up to `max`, never past the next
    /// nominal fire.
    pub fn jitter(mut self, max: Duration) -> Self {
        self.jitter = Some(max);
        self
    }

    /// Registers the job paused.
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// Whether every instance runs this job's fires even when the
    /// scheduler claims fires
    /// ([`SchedulerBuilder::claim_fires`](crate::SchedulerBuilder::claim_fires)):
    /// for work on the instance's own host, such as rotating its logs or
    /// cleaning its temporary files. Default off; no effect without claims.
    pub fn per_instance(mut self, on: bool) -> Self {
        self.per_instance = on;
        self
    }

    /// Where the overlap policy holds when instances claim fires (default
    /// [`OverlapScope::Instance`]); see [`OverlapScope::Cluster`].
    pub fn overlap_scope(mut self, scope: OverlapScope) -> Self {
        self.overlap_scope = scope;
        self
    }

    /// At most `n` runs of the job at once: across every instance for a
    /// job whose fires are claimed (by the fires holding live leases), on
    /// this instance otherwise. A fire over the limit is recorded `skipped`
    /// with the reason. `n` must be at least 1 (checked at registration).
    pub fn max_concurrent(mut self, n: u32) -> Self {
        self.max_concurrent = Some(n);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;

    fn ctx() -> JobContext {
        let start = DateTime::from_timestamp(1_700_000_000, 0).expect("a valid instant");
        JobContext {
            job_id: "j".into(),
            execution_id: ExecutionId(7),
            attempt: 1,
            scheduled_at: start,
            cancel: CancellationToken::new(),
            clock: Arc::new(VirtualClock::new(start)),
        }
    }

    /// A handler whose attempts read its own state, so its future holds it.
    struct Counting(std::sync::atomic::AtomicU32);

    #[async_trait]
    impl JobHandler for Counting {
        async fn run(&self, ctx: JobContext) -> JobResult {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            JobResult::ok().with_data(format!("{}#{n}", ctx.execution_id.0).into())
        }
    }

    #[test]
    fn a_closure_starts_detached_and_a_handler_type_through_run_owned() {
        let closure: Arc<dyn JobHandler> = Arc::new(|ctx: JobContext| async move {
            JobResult::ok().with_data(format!("{} {}", ctx.job_id, ctx.attempt).into())
        });
        let fut = closure.run_detached(ctx()).map_err(|_| ()).expect("a closure's future owns all");
        assert_eq!(Arc::strong_count(&closure), 1, "the future holds no handle on the handler");
        let res = futures::executor::block_on(fut);
        assert_eq!(res, JobResult::ok().with_data("j 1".into()));

        let typed: Arc<dyn JobHandler> = Arc::new(Counting(Default::default()));
        let ctx = typed.run_detached(ctx()).err().expect("the default gives the context back");
        assert_eq!(ctx.execution_id, ExecutionId(7), "the same context comes back");
        let fut = typed.clone().run_owned(ctx);
        assert_eq!(Arc::strong_count(&typed), 2, "run_owned's future holds the handler");
        assert_eq!(futures::executor::block_on(fut), JobResult::ok().with_data("7#1".into()));
        assert_eq!(Arc::strong_count(&typed), 1);
    }
}
