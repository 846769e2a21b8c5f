//! A wake-up for a task that is the only one waiting on it: a flag and the
//! task's waker.
//!
//! The driver and the record writer each wait on one. They used an
//! `event_listener::Event`, whose listener is inserted into and removed
//! from a locked list (and, outside the `listener!` macro, allocated) every
//! time round the loop, even when the task never waits. Here a round costs
//! one atomic store, and only a wait registers the waker.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures::task::AtomicWaker;

/// A one-waiter wake-up. The waiter calls [`arm`](Self::arm) before it reads
/// the state it would wait on, then, if it must wait, awaits
/// [`wait`](Self::wait); a [`notify`](Self::notify) made after the state
/// changed ends that wait (or makes it end at once), however the two
/// interleave. A notify before the arm is forgotten: the waiter reads the
/// state after arming, so it sees what the notify was about.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    /// Forgets the notifications made so far.
    pub(crate) fn arm(&self) {
        self.set.store(false, Ordering::SeqCst);
    }

    /// Wakes the waiter, or makes its next wait end at once.
    pub(crate) fn notify(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Ends once a notification has been made since the last
    /// [`arm`](Self::arm) (or the last wait that ended), and consumes it.
    pub(crate) fn wait(&self) -> impl Future<Output = ()> + Unpin + '_ {
        futures::future::poll_fn(move |cx| {
            if self.set.swap(false, Ordering::SeqCst) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // A notify between the check and the registration found no waker.
            if self.set.swap(false, Ordering::SeqCst) { Poll::Ready(()) } else { Poll::Pending }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Wake, Waker};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(signal: &Signal, waker: &Waker) -> Poll<()> {
        let mut wait = signal.wait();
        std::pin::Pin::new(&mut wait).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_notify_wakes_the_waiter_once_and_is_consumed() {
        let signal = Signal::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        signal.arm();
        assert!(poll(&signal, &waker).is_pending());
        signal.notify();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll(&signal, &waker).is_ready());
        // Consumed: the next wait waits, and a second notify without a
        // registered waker wakes nobody but still ends the next wait.
        assert!(poll(&signal, &waker).is_pending());
        signal.notify();
        signal.notify();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(poll(&signal, &waker).is_ready());
    }

    #[test]
    fn a_notify_after_arming_ends_the_next_wait_at_once_and_one_before_is_forgotten() {
        let signal = Signal::default();
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        signal.notify();
        signal.arm();
        assert!(poll(&signal, &waker).is_pending());
        signal.arm();
        signal.notify();
        assert!(poll(&signal, &waker).is_ready());
    }

    /// Unparks the waiting thread, and counts.
    struct Unpark(std::thread::Thread, AtomicUsize);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.unpark();
        }
    }

    #[test]
    fn a_notify_from_another_thread_is_never_lost() {
        // The waiter's loop: arm, read the state, wait if there is nothing
        // new, parked until woken. The other thread changes the state,
        // notifies, and waits for the waiter to have seen it. A lost wake-up
        // leaves the waiter parked with news unread: it wakes only by the
        // park's timeout, which fails the test.
        let signal = Arc::new(Signal::default());
        let value = Arc::new(AtomicUsize::new(0));
        let seen_by_waiter = Arc::new(AtomicUsize::new(0));
        let rounds = 2_000;
        let notifier = {
            let (signal, value, seen_by_waiter) =
                (signal.clone(), value.clone(), seen_by_waiter.clone());
            std::thread::spawn(move || {
                for i in 1..=rounds {
                    value.store(i, Ordering::SeqCst);
                    signal.notify();
                    while seen_by_waiter.load(Ordering::SeqCst) < i {
                        std::thread::yield_now();
                    }
                }
            })
        };
        let unpark = Arc::new(Unpark(std::thread::current(), AtomicUsize::new(0)));
        let waker = Waker::from(unpark.clone());
        let mut seen = 0;
        let mut wait = signal.wait();
        while seen < rounds {
            signal.arm();
            let now = value.load(Ordering::SeqCst);
            if now > seen {
                seen = now;
                seen_by_waiter.store(now, Ordering::SeqCst);
                continue;
            }
            loop {
                let before = unpark.1.load(Ordering::SeqCst);
                if std::pin::Pin::new(&mut wait).poll(&mut Context::from_waker(&waker)).is_ready() {
                    break;
                }
                // Pending: only a wake may end this (a park can also return
                // spuriously, so the wake count decides).
                let give_up = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while unpark.1.load(Ordering::SeqCst) == before {
                    if std::time::Instant::now() >= give_up {
                        seen_by_waiter.store(usize::MAX, Ordering::SeqCst);
                        panic!("the wake-up for round {} was lost", seen + 1);
                    }
                    std::thread::park_timeout(std::time::Duration::from_millis(100));
                }
            }
        }
        notifier.join().unwrap();
    }
}
