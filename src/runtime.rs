//! Running futures: the [`Spawner`] trait, tokio's spawner and the
//! single-threaded deterministic [`LocalRuntime`].

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::clock::{Clock, VirtualClock};

/// Runs a future in the background. The scheduler never needs its result:
/// it tracks completion itself.
pub trait Spawner: Send + Sync + fmt::Debug + 'static {
    /// Starts `fut`; it must be polled to completion (or until the runtime ends).
    fn spawn(&self, fut: BoxFuture<'static, ()>);
}

/// Any `Fn(BoxFuture) + Send + Sync` closure is a spawner, e.g.
/// `FnSpawner(|f| { smol::spawn(f).detach(); })`.
pub struct FnSpawner<F>(pub F);

impl<F> fmt::Debug for FnSpawner<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnSpawner")
    }
}

impl<F> Spawner for FnSpawner<F>
where
    F: Fn(BoxFuture<'static, ()>) + Send + Sync + 'static,
{
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        (self.0)(fut)
    }
}

/// Spawns onto a tokio runtime.
#[cfg(feature = "tokio")]
#[derive(Debug, Clone)]
pub struct TokioSpawner {
    handle: tokio::runtime::Handle,
}

#[cfg(feature = "tokio")]
impl TokioSpawner {
    /// The runtime this is called from.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn current() -> Self {
        TokioSpawner { handle: tokio::runtime::Handle::current() }
    }

    /// A given runtime.
    pub fn new(handle: tokio::runtime::Handle) -> Self {
        TokioSpawner { handle }
    }
}

#[cfg(feature = "tokio")]
impl Spawner for TokioSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        drop(self.handle.spawn(fut));
    }
}

/// A single-threaded executor over a [`VirtualClock`].
///
/// Tasks run in FIFO order of their wake-ups, one at a time, so a run is a
/// function of its inputs. When no task can make progress the runtime moves
/// the clock to the next timer (auto-advance), so a test of a one-hour
/// timeout finishes in microseconds, and a timer always fires at exactly its
/// deadline.
///
/// ```
/// use std::time::Duration;
/// use mscribe_scheduler::{Clock, runtime::LocalRuntime};
///
/// let rt = LocalRuntime::new();
/// let clock = rt.clock();
/// let t0 = clock.now();
/// let slept = rt.block_on({
///     let clock = clock.clone();
///     async move {
///         clock.sleep_until(t0 + chrono::Duration::hours(1)).await;
///         clock.now() - t0
///     }
/// });
/// assert_eq!(slept, chrono::Duration::hours(1));
/// ```
#[derive(Clone)]
pub struct LocalRuntime {
    clock: VirtualClock,
    exec: Arc<Executor>,
}

impl fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("clock", &self.clock)
            .field("queued", &self.exec.queue.lock().expect("executor lock").len())
            .finish()
    }
}

#[derive(Default)]
struct Executor {
    queue: Mutex<VecDeque<Arc<Task>>>,
}

struct Task {
    fut: Mutex<Option<BoxFuture<'static, ()>>>,
    exec: Weak<Executor>,
    queued: AtomicBool,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel)
            && let Some(exec) = self.exec.upgrade()
        {
            exec.queue.lock().expect("executor lock").push_back(self.clone());
        }
    }
}

/// The [`Spawner`] of a [`LocalRuntime`].
#[derive(Clone)]
pub struct LocalSpawner {
    exec: Weak<Executor>,
}

impl fmt::Debug for LocalSpawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalSpawner")
    }
}

impl Spawner for LocalSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        if self.exec.upgrade().is_some() {
            let task = Arc::new(Task {
                fut: Mutex::new(Some(fut)),
                exec: self.exec.clone(),
                queued: AtomicBool::new(false),
            });
            task.wake_by_ref();
        }
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

impl Default for LocalRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalRuntime {
    /// A runtime whose clock starts at 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        Self::with_clock(VirtualClock::at_epoch_2026())
    }

    /// A runtime over a given clock.
    pub fn with_clock(clock: VirtualClock) -> Self {
        LocalRuntime { clock, exec: Arc::new(Executor::default()) }
    }

    /// The runtime's clock.
    pub fn clock(&self) -> VirtualClock {
        self.clock.clone()
    }

    /// A spawner onto this runtime.
    pub fn spawner(&self) -> LocalSpawner {
        LocalSpawner { exec: Arc::downgrade(&self.exec) }
    }

    /// Polls queued tasks until none is runnable. Returns how many polls ran.
    pub fn run_until_stalled(&self) -> usize {
        let mut polls = 0;
        loop {
            let next = self.exec.queue.lock().expect("executor lock").pop_front();
            let Some(task) = next else { return polls };
            task.queued.store(false, Ordering::Release);
            let waker = Waker::from(task.clone());
            let mut cx = Context::from_waker(&waker);
            let mut slot = task.fut.lock().expect("task lock");
            if let Some(fut) = slot.as_mut()
                && fut.as_mut().poll(&mut cx).is_ready()
            {
                *slot = None;
            }
            polls += 1;
        }
    }

    /// Runs tasks, stepping the clock from timer to timer, until `t`; the
    /// clock then reads `t`. Every timer at or before `t` fires at exactly
    /// its deadline.
    pub fn run_until(&self, t: DateTime<Utc>) {
        loop {
            self.run_until_stalled();
            match self.clock.next_timer() {
                Some(next) if next <= t => self.clock.advance_to(next),
                _ => break,
            }
        }
        self.clock.advance_to(t);
        self.run_until_stalled();
    }

    /// [`run_until`](Self::run_until) `now + d`.
    pub fn advance(&self, d: Duration) {
        let t = self.clock.now() + crate::clock::chrono_dur(d);
        self.run_until(t);
    }

    /// Drives `fut` to completion with the other tasks, advancing the clock
    /// to the next timer whenever all are idle.
    ///
    /// # Panics
    /// If every task is idle, no timer is pending and `fut` is not done:
    /// nothing could ever wake it.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            if flag.0.swap(false, Ordering::AcqRel)
                && let Poll::Ready(out) = fut.as_mut().poll(&mut cx)
            {
                return out;
            }
            let polled = self.run_until_stalled();
            if polled == 0 && !flag.0.load(Ordering::Acquire) {
                match self.clock.next_timer() {
                    Some(next) => self.clock.advance_to(next),
                    None => panic!(
                        "LocalRuntime::block_on: deadlock at {}: no task runnable and no timer pending",
                        self.clock.now()
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_tasks_run_in_wake_order_and_timers_fire_exactly() {
        let rt = LocalRuntime::new();
        let clock = rt.clock();
        let t0 = clock.now();
        let log = Arc::new(Mutex::new(Vec::new()));
        for (i, secs) in [(0, 3), (1, 1), (2, 2)] {
            let (clock, log) = (clock.clone(), log.clone());
            rt.spawner().spawn(Box::pin(async move {
                clock.sleep_until(t0 + chrono::Duration::seconds(secs)).await;
                log.lock().unwrap().push((i, clock.now() - t0));
            }));
        }
        rt.advance(Duration::from_secs(10));
        let got = log.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![
                (1, chrono::Duration::seconds(1)),
                (2, chrono::Duration::seconds(2)),
                (0, chrono::Duration::seconds(3))
            ]
        );
        assert_eq!(clock.now() - t0, chrono::Duration::seconds(10));
    }

    #[test]
    #[should_panic(expected = "deadlock")]
    fn block_on_reports_deadlock() {
        let rt = LocalRuntime::new();
        rt.block_on(futures::future::pending::<()>());
    }
}
