//! Running futures: the [`Spawner`] trait, tokio's spawner and the
//! single-threaded deterministic [`LocalRuntime`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::clock::{Clock, VirtualClock};

thread_local! {
    /// The count of pending [`external`] futures of the [`LocalRuntime`]
    /// polling on this thread right now, if one is.
    static CURRENT: RefCell<Option<Arc<AtomicUsize>>> = const { RefCell::new(None) };
}

/// Marks `fut` as waiting on something outside the runtime, such as a
/// database thread. While such a future of a [`LocalRuntime`]'s is pending,
/// that runtime waits for it instead of advancing its virtual clock: I/O
/// takes no virtual time. Each runtime counts its own, so two runtimes in
/// one process (two tests, two schedulers) never wait for each other.
/// Stores built on threads (like `mscribe-storage`'s SQLite store) wrap
/// their replies in it; on other runtimes it does nothing.
pub async fn external<F: Future>(fut: F) -> F::Output {
    struct Pending(Option<Arc<AtomicUsize>>);
    impl Drop for Pending {
        fn drop(&mut self) {
            if let Some(n) = &self.0 {
                n.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    let runtime = CURRENT.with(|c| c.borrow().clone());
    if let Some(n) = &runtime {
        n.fetch_add(1, Ordering::AcqRel);
    }
    let _pending = Pending(runtime);
    fut.await
}

/// Makes `external`'s count the current runtime's on this thread until
/// dropped (then the one before, for a runtime driven inside another).
struct Enter(Option<Arc<AtomicUsize>>);

impl Enter {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        Enter(CURRENT.with(|c| c.replace(Some(count.clone()))))
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = self.0.take());
    }
}

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
/// use mscribe_scheduler::{Clock, LocalRuntime};
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
    /// The thread parked in `block_on` waiting for a wake from outside
    /// (an I/O thread answering), unparked by any wake.
    sleeper: Mutex<Option<std::thread::Thread>>,
    /// This runtime's pending [`external`] futures.
    external: Arc<AtomicUsize>,
}

impl Executor {
    fn external_pending(&self) -> bool {
        self.external.load(Ordering::Acquire) > 0
    }

    fn unpark(&self) {
        if let Some(t) = self.sleeper.lock().expect("executor lock").as_ref() {
            t.unpark();
        }
    }
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
            exec.unpark();
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

struct Flag(AtomicBool, std::thread::Thread);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
        self.1.unpark();
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
        let _enter = Enter::new(&self.exec.external);
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
    /// its deadline. While an [`external`] future is pending, time waits.
    pub fn run_until(&self, t: DateTime<Utc>) {
        loop {
            self.run_until_stalled();
            if self.exec.external_pending() {
                self.wait_external(None);
                continue;
            }
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
        let t = crate::clock::after(self.clock.now(), d);
        self.run_until(t);
    }

    /// How long [`block_on`](Self::block_on) waits for a wake from another
    /// thread (an I/O reply) when no task is runnable and no timer is pending.
    pub const EXTERNAL_WAKE_TIMEOUT: Duration = Duration::from_secs(30);

    /// Drives `fut` to completion with the other tasks, advancing the clock
    /// to the next timer whenever all are idle.
    ///
    /// With no task runnable and either no timer pending or an [`external`]
    /// future pending, it waits for a wake from another thread (a store's
    /// I/O thread replying) for up to
    /// [`EXTERNAL_WAKE_TIMEOUT`](Self::EXTERNAL_WAKE_TIMEOUT).
    ///
    /// # Panics
    /// If nothing wakes any task within that time: a deadlock.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let flag = Arc::new(Flag(AtomicBool::new(true), std::thread::current()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            if flag.0.swap(false, Ordering::AcqRel) {
                let _enter = Enter::new(&self.exec.external);
                if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                    return out;
                }
            }
            let polled = self.run_until_stalled();
            if polled == 0 && !flag.0.load(Ordering::Acquire) {
                match self.clock.next_timer() {
                    Some(next) if !self.exec.external_pending() => self.clock.advance_to(next),
                    _ => self.wait_external(Some(&flag)),
                }
            }
        }
    }
}

impl LocalRuntime {
    /// Parks until a task or `flag` is woken from another thread, or (when
    /// no I/O is pending) a timer exists to advance to.
    fn wait_external(&self, flag: Option<&Flag>) {
        *self.exec.sleeper.lock().expect("executor lock") = Some(std::thread::current());
        let start = std::time::Instant::now();
        loop {
            let woken = flag.is_some_and(|f| f.0.load(Ordering::Acquire))
                || !self.exec.queue.lock().expect("executor lock").is_empty()
                || (!self.exec.external_pending() && self.clock.next_timer().is_some());
            if woken {
                break;
            }
            let waited = start.elapsed();
            if waited >= Self::EXTERNAL_WAKE_TIMEOUT {
                *self.exec.sleeper.lock().expect("executor lock") = None;
                panic!(
                    "LocalRuntime::block_on: deadlock at {}: no task runnable, no timer pending, and no wake from another thread for {waited:?}",
                    self.clock.now()
                );
            }
            std::thread::park_timeout(Self::EXTERNAL_WAKE_TIMEOUT - waited);
        }
        *self.exec.sleeper.lock().expect("executor lock") = None;
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

    /// Two runtimes in one process: one waits on I/O that never answers
    /// until the other has run an hour of its scheduler. With one count
    /// for the process, the second would wait for the first's I/O.
    #[test]
    fn two_schedulers_side_by_side_never_wait_for_each_others_io() {
        use crate::{JobConfig, JobContext, JobScheduler};
        let (tx, rx) = futures::channel::oneshot::channel::<u8>();
        let waiting = std::thread::spawn(move || {
            let a = LocalRuntime::new();
            a.block_on(external(rx)).unwrap()
        });
        let b = LocalRuntime::new();
        let s = JobScheduler::builder(Arc::new(b.clock()), Arc::new(b.spawner())).build();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let job = JobConfig::new("tick", move |_c: JobContext| {
            r.fetch_add(1, Ordering::Relaxed);
            async {}
        });
        s.register(job.schedule(Duration::from_secs(60))).unwrap();
        b.block_on(s.start()).unwrap();
        // With one count for the process this waited for the other
        // runtime's I/O, then panicked as a deadlock.
        b.advance(Duration::from_secs(3600));
        assert_eq!(runs.load(Ordering::Relaxed), 60);
        b.block_on(s.stop(Duration::ZERO)).unwrap();
        tx.send(1).unwrap();
        assert_eq!(waiting.join().unwrap(), 1);
    }

    #[test]
    fn block_on_waits_for_a_wake_from_another_thread() {
        let rt = LocalRuntime::new();
        let (tx, rx) = futures::channel::oneshot::channel();
        // An "I/O thread" answering whenever it gets scheduled.
        let io = std::thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(rt.block_on(rx).unwrap(), 7);
        io.join().unwrap();
    }
}
