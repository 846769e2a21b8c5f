//! A runtime-agnostic cancellation token.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};

use event_listener::Event;

/// A flag that a handler can poll or await; once cancelled it stays cancelled.
///
/// Clones share the flag. A [`child`](CancellationToken::child) is cancelled
/// with its parent but can also be cancelled alone.
#[derive(Clone, Default)]
pub struct CancellationToken {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    event: Event,
    children: Mutex<Vec<Weak<Inner>>>,
    /// Set before a child is first listed, so a token that never had one
    /// (most: a run's single attempt uses the run's token) is cancelled
    /// without taking the lock.
    had_children: AtomicBool,
    /// The scheduler's switch that drops a run's attempt at once (replace,
    /// unregister, the end of a stop grace). It rides on the run's token to
    /// save an allocation per run; only the run's own task awaits it.
    killed: AtomicBool,
    kill_waker: futures::task::AtomicWaker,
    /// Why the scheduler cancelled the run (a [`CancelReason`] as `u8`,
    /// 0 while unset); the first reason given wins.
    reason: AtomicU8,
}

/// Why the scheduler cancelled a run: named in the run's `cancelled` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelReason {
    /// `stop()` was called.
    Stop = 1,
    /// The job was unregistered.
    Unregister = 2,
    /// A newer fire replaced it (`OverlapPolicy::Replace`).
    Replace = 3,
    /// [`JobScheduler::cancel`](crate::JobScheduler::cancel) asked for it.
    Request = 4,
    /// Another instance took the fire over: this one lost its lease.
    LeaseLost = 5,
}

impl CancelReason {
    fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            1 => CancelReason::Stop,
            2 => CancelReason::Unregister,
            3 => CancelReason::Replace,
            4 => CancelReason::Request,
            5 => CancelReason::LeaseLost,
            _ => return None,
        })
    }

    /// The reason as the run's row states it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CancelReason::Stop => "the scheduler is stopping",
            CancelReason::Unregister => "the job was unregistered",
            CancelReason::Replace => "a newer fire replaced it (overlap policy replace)",
            CancelReason::Request => "cancelled on request",
            CancelReason::LeaseLost => {
                "this instance lost the fire's lease: another instance took it over"
            }
        }
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken").field("cancelled", &self.is_cancelled()).finish()
    }
}

impl Inner {
    fn cancel(&self) {
        if self.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        // `notify` would allocate the event's list for a token nobody ever
        // awaited (most of them). A waiter registers, fences, then re-checks
        // the flag; with the fence here, either it sees the flag or it is
        // counted below.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.event.total_listeners() > 0 {
            self.event.notify(usize::MAX);
        }
        // The same pattern: `child` sets the flag, fences, lists the child
        // and re-checks `cancelled`; it sees it, or the flag is seen here.
        if !self.had_children.load(Ordering::SeqCst) {
            return;
        }
        // Taken out, so no lock is held while the children wake their
        // waiters (whatever a waker runs) or drop; its buffer goes back for
        // the token's next run (see `recycle`).
        let mut children = std::mem::take(&mut *self.children.lock().expect("token lock"));
        for c in children.drain(..).filter_map(|w| w.upgrade()) {
            c.cancel();
        }
        let mut list = self.children.lock().expect("token lock");
        if list.capacity() == 0 {
            *list = children;
        }
    }
}

impl CancellationToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels this token and its children; wakes every waiter.
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// Whether the token has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// A token cancelled when this one is (at once, if it already is).
    pub fn child(&self) -> CancellationToken {
        let child = CancellationToken::new();
        self.inner.had_children.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        {
            let mut kids = self.inner.children.lock().expect("token lock");
            kids.retain(|w| w.strong_count() > 0);
            kids.push(Arc::downgrade(&child.inner));
        }
        if self.inner.cancelled.load(Ordering::SeqCst) {
            child.cancel();
        }
        child
    }

    /// Cancels this token, unless no one but the caller could ever see it:
    /// the caller holds `own` of its handles, there are no others and no
    /// children. Cancelling costs atomic read-modify-writes and a fence,
    /// which an attempt that left nothing behind need not pay. (A handle
    /// is only made from a handle, so a count at or under `own` cannot
    /// grow behind the caller's back.)
    pub(crate) fn cancel_if_shared(&self, own: usize) {
        if Arc::strong_count(&self.inner) <= own && !self.inner.had_children.load(Ordering::Acquire)
        {
            return;
        }
        self.inner.cancel();
    }

    /// Cancels this token for `reason`, which is kept unless an earlier
    /// reason was given.
    pub(crate) fn cancel_for(&self, reason: CancelReason) {
        let _ = self.inner.reason.compare_exchange(
            0,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.inner.cancel();
    }

    /// Why the scheduler cancelled this token, if it said.
    pub(crate) fn reason(&self) -> Option<CancelReason> {
        CancelReason::from_u8(self.inner.reason.load(Ordering::Acquire))
    }

    /// Kills the run this token belongs to (see `Inner::killed`); it does
    /// not cancel the token.
    pub(crate) fn kill(&self) {
        self.inner.killed.store(true, Ordering::Release);
        self.inner.kill_waker.wake();
    }

    /// This token made new for another run, if nothing else holds it (no
    /// clone, and no child holds a weak reference: children never point to
    /// their parent). Reusing spares an allocation per run.
    pub(crate) fn recycle(mut self) -> Option<CancellationToken> {
        let inner = Arc::get_mut(&mut self.inner)?;
        // Reset in place, every field named so that a new one cannot be
        // missed. The list of children keeps its buffer: a run whose
        // attempts each take a child (a job with retries) lists one every
        // time. The event is kept too: no listener of it is left, since a
        // `cancelled()` future borrows a handle, and there is none but this.
        let Inner { cancelled, event: _, children, had_children, killed, kill_waker, reason } =
            inner;
        children.get_mut().ok()?.clear();
        *cancelled.get_mut() = false;
        *had_children.get_mut() = false;
        *killed.get_mut() = false;
        *reason.get_mut() = 0;
        // A new waker slot rather than `take`, which costs atomic swaps.
        *kill_waker = futures::task::AtomicWaker::new();
        Some(self)
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.inner.killed.load(Ordering::Acquire)
    }

    /// Completes once killed. Only one task may wait at a time.
    pub(crate) fn killed(&self) -> impl std::future::Future<Output = ()> + '_ {
        futures::future::poll_fn(move |cx| {
            if self.is_killed() {
                return std::task::Poll::Ready(());
            }
            self.inner.kill_waker.register(cx.waker());
            if self.is_killed() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
        })
    }

    /// Completes once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            if self.is_cancelled() {
                return;
            }
            let listener = self.inner.event.listen();
            if self.is_cancelled() {
                return;
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn cancel_wakes_waiters_and_children() {
        let parent = CancellationToken::new();
        let child = parent.child();
        let mut wait = Box::pin(child.cancelled());
        assert!((&mut wait).now_or_never().is_none());
        parent.cancel();
        assert!(wait.now_or_never().is_some());
        assert!(child.is_cancelled());
        assert!(parent.child().is_cancelled());
    }

    #[test]
    fn recycle_only_an_unshared_token_and_as_new() {
        let t = CancellationToken::new();
        assert!(t.clone().recycle().is_none(), "the original is still alive");
        let old_child = t.child();
        t.kill();
        let t = t.recycle().expect("the last handle, children hold none");
        assert!(!t.is_cancelled() && !t.is_killed());
        t.cancel();
        assert!(!old_child.is_cancelled(), "a child of the previous run is not the next run's");
        // A cancelled token comes back new too, and gains children again.
        let t = t.recycle().expect("the last handle");
        let child = t.child();
        assert!(!child.is_cancelled());
        t.cancel();
        assert!(child.is_cancelled());
    }

    /// A child made while its parent is being cancelled on another thread
    /// ends up cancelled, whichever side wins the race.
    #[test]
    fn a_child_racing_its_parents_cancel_is_cancelled() {
        for _ in 0..2_000 {
            let parent = CancellationToken::new();
            let other = parent.clone();
            let cancel = std::thread::spawn(move || other.cancel());
            let kids: Vec<_> = (0..4).map(|_| parent.child()).collect();
            cancel.join().unwrap();
            assert!(kids.iter().all(CancellationToken::is_cancelled));
        }
    }

    #[test]
    fn child_cancel_leaves_parent() {
        let parent = CancellationToken::new();
        parent.child().cancel();
        assert!(!parent.is_cancelled());
    }
}
