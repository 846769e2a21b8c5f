//! The bounded buffer between the scheduler and its store.
//!
//! Jobs never wait for the store: events go into a bounded queue that one
//! writer task drains in order, in batches. When the store fails the events
//! stay queued and the writer retries with backoff; the buffer's health is
//! reported as degraded. When the buffer is full the oldest event still
//! queued is dropped, counted and logged (an `AttemptEnd` carries its whole
//! row, so a dropped `Started` loses nothing once its end is written); the
//! writer takes at most half the buffer at once, so the newest are kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use event_listener::Event;
use futures::future::{Either, select};
use serde::Serialize;

use crate::clock::{Clock, checked_after};
use crate::guard;
use crate::logfmt::Rfc3339;
use crate::signal::Signal;
use crate::store::{ExecutionEvent, ExecutionStore, StoreError};

/// The state of the store buffer, for health checks and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreHealth {
    /// Events waiting to be written.
    pub buffered: usize,
    /// The buffer's capacity.
    pub capacity: usize,
    /// Events dropped because the buffer was full (since start).
    pub dropped: u64,
    /// Of those, the ones dropped since the buffer was last empty: the
    /// loss keeps the store degraded until it has caught up.
    pub dropped_since_drained: u64,
    /// Events the store rejected as invalid (since start); each was logged.
    pub rejected: u64,
    /// Events written (since start).
    pub written: u64,
    /// Events the store refused for a stale fencing token (since start):
    /// another instance had taken their fire over, and its records stand.
    pub fenced: u64,
    /// Writes that failed, a store that panicked included (since start);
    /// their events were kept and written again.
    pub failed_writes: u64,
    /// Whether the last write failed (the store is down or erroring).
    pub failing: bool,
    /// The last write error, while failing.
    pub last_error: Option<String>,
    /// When the current failure began.
    pub failing_since: Option<DateTime<Utc>>,
    /// When the write under way began; `None` while no write is under way.
    /// A store that does not answer (a network partition) fails a write
    /// only at its own timeout: until then this is how long it has hung.
    pub writing_since: Option<DateTime<Utc>>,
    /// With claimed fires: fires whose claim failed, waiting to be claimed
    /// again (they do not run here meanwhile, and are recorded `skipped`
    /// by whichever instance claims them once the store answers).
    pub unclaimed: usize,
    /// The last claim's error, while claims fail.
    pub claim_error: Option<String>,
    /// When the oldest claim under way was sent; `None` while none is.
    pub claiming_since: Option<DateTime<Utc>>,
}

impl StoreHealth {
    /// Degraded while the last write fails, while the buffer is over half
    /// full, and after records were dropped from a full buffer until the
    /// buffer has drained (`dropped` keeps counting the loss); healthy
    /// otherwise.
    pub fn is_degraded(&self) -> bool {
        self.failing || self.buffered * 2 > self.capacity || self.dropped_since_drained > 0
    }
}

#[derive(Debug)]
struct State {
    queue: VecDeque<ExecutionEvent>,
    /// The last written batch's buffer, emptied, to swap with `queue`.
    spare: VecDeque<ExecutionEvent>,
    in_flight: usize,
    health: StoreHealth,
    closed: bool,
}

/// The buffer plus its writer loop.
#[derive(Debug)]
pub(crate) struct Recorder {
    state: Mutex<State>,
    /// New events or close; the writer is its one waiter.
    work: Signal,
    /// The queue drained (or a write finished).
    progress: Event,
    batch: usize,
}

impl Recorder {
    pub(crate) fn new(capacity: usize, batch: usize) -> Arc<Self> {
        Arc::new(Recorder {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                spare: VecDeque::new(),
                in_flight: 0,
                health: StoreHealth {
                    buffered: 0,
                    capacity,
                    dropped: 0,
                    dropped_since_drained: 0,
                    rejected: 0,
                    written: 0,
                    fenced: 0,
                    failed_writes: 0,
                    failing: false,
                    last_error: None,
                    failing_since: None,
                    writing_since: None,
                    unclaimed: 0,
                    claim_error: None,
                    claiming_since: None,
                },
                closed: false,
            }),
            work: Signal::default(),
            progress: Event::new(),
            batch: batch.max(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("recorder lock")
    }

    pub(crate) fn push(&self, ev: ExecutionEvent) {
        self.push_with(|| ev);
    }

    /// Queues the event that `make` builds. It is called under the lock,
    /// so that the event is built where it is queued rather than moved
    /// there (an end event is 200-odd bytes).
    #[inline]
    pub(crate) fn push_with(&self, make: impl FnOnce() -> ExecutionEvent) {
        let mut g = self.lock();
        if g.queue.len() + g.in_flight >= g.health.capacity && !Self::drop_oldest(&mut g) {
            g.health.dropped += 1;
            g.health.dropped_since_drained += 1;
            let dropped_total = g.health.dropped;
            drop(g);
            tracing::error!(
                job_id = %make().job_id(),
                dropped_total,
                "store buffer full: dropped a record"
            );
            return;
        }
        let was_empty = g.queue.is_empty();
        g.queue.push_back(make());
        g.health.buffered = g.queue.len() + g.in_flight;
        drop(g);
        // The writer waits only after finding the queue empty (arming its
        // signal first), so only the push that ends the emptiness must wake it.
        if was_empty {
            self.work.notify();
        }
    }

    /// Makes room in a full buffer by dropping its oldest queued event;
    /// false when none is queued (the writer holds them all).
    #[cold]
    fn drop_oldest(g: &mut State) -> bool {
        let Some(old) = g.queue.pop_front() else { return false };
        g.health.dropped += 1;
        g.health.dropped_since_drained += 1;
        tracing::error!(
            job_id = %old.job_id(),
            dropped_total = g.health.dropped,
            capacity = g.health.capacity,
            "store buffer full: dropped the oldest unwritten record"
        );
        true
    }

    pub(crate) fn health(&self) -> StoreHealth {
        self.lock().health.clone()
    }

    /// Whether nothing waits to be written.
    pub(crate) fn is_drained(&self) -> bool {
        let g = self.lock();
        g.queue.is_empty() && g.in_flight == 0
    }

    /// Waits until the buffer is drained or `deadline` passes; returns
    /// whether it drained.
    pub(crate) async fn flush(&self, clock: &dyn Clock, deadline: DateTime<Utc>) -> bool {
        loop {
            let listener = self.progress.listen();
            if self.is_drained() {
                return true;
            }
            if clock.now() >= deadline {
                return false;
            }
            let sleep = clock.sleep_until(deadline);
            if let Either::Right(_) = select(listener, sleep).await {
                return self.is_drained();
            }
        }
    }

    /// Ends the writer loop once the queue is empty.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.work.notify();
    }

    /// The writer loop: drains the queue into the store, in order, in
    /// calls of at most `batch` events. Run once per recorder (the
    /// scheduler's start spawns it): the `work` signal has room for one
    /// waiter.
    pub(crate) async fn run(
        self: Arc<Self>,
        store: Arc<dyn ExecutionStore>,
        clock: Arc<dyn Clock>,
    ) {
        let mut backoff = Duration::from_millis(100);
        'taken: loop {
            self.work.arm();
            let next = self.take_batch();
            // Everything queued, taken in one swap: a backlog is written
            // from here in slices, not copied out a batch at a time.
            let mut taken = match next {
                Next::Batch(b) => b,
                Next::Wait => {
                    self.progress.notify(usize::MAX);
                    self.work.wait().await;
                    continue;
                }
                Next::Done => {
                    self.progress.notify(usize::MAX);
                    return;
                }
            };
            let mut done = 0;
            while done < taken.len() {
                let end = taken.len().min(done + self.batch);
                self.lock().health.writing_since = Some(clock.now());
                let slice = &taken.make_contiguous()[done..end];
                let written = guard::store_call("write", store.write(slice)).await;
                self.lock().health.writing_since = None;
                match written {
                    Ok(()) => {
                        self.finish_batch(end - done, None, clock.now());
                        backoff = Duration::from_millis(100);
                    }
                    Err(StoreError::Fenced { refused, message }) => {
                        tracing::warn!(refused, fires = %message, "the store refused records of fires another instance took over");
                        self.lock().health.fenced += refused;
                        self.finish_batch(end - done, Some(refused), clock.now());
                        self.lock().health.rejected -= refused;
                    }
                    Err(e) if e.is_transient() => {
                        taken.drain(..done);
                        self.requeue(taken, &e, clock.now());
                        if self.lock().closed {
                            // Closed after the flush deadline: give up; what
                            // is still buffered is reported by `health()`.
                            self.progress.notify(usize::MAX);
                            return;
                        }
                        let wait = backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        match checked_after(clock.now(), wait) {
                            Some(wake) => clock.sleep_until(wake).await,
                            // At the end of the calendar: retry on the next event.
                            None => self.work.wait().await,
                        }
                        continue 'taken;
                    }
                    Err(e) => {
                        // Permanent: isolate the bad events of this slice one
                        // by one; the slices after it go back to the queue.
                        taken.drain(..done);
                        let after = taken.split_off(end - done);
                        Self::unshift_locked(&mut self.lock(), after);
                        self.write_one_by_one(&*store, taken, &e, &*clock).await;
                        continue 'taken;
                    }
                }
                done = end;
            }
            // The events are dropped here, outside the lock, and the buffer
            // is kept for the next swap.
            taken.clear();
            let mut g = self.lock();
            if g.spare.capacity() < taken.capacity() {
                g.spare = taken;
            }
        }
    }

    fn take_batch(&self) -> Next {
        let mut g = self.lock();
        if g.queue.is_empty() {
            return if g.closed { Next::Done } else { Next::Wait };
        }
        let taken = if g.queue.len() <= self.batch.max(g.health.capacity / 2) {
            // Everything: swap buffers instead of moving events.
            let spare = std::mem::take(&mut g.spare);
            std::mem::replace(&mut g.queue, spare)
        } else {
            // Over half full (a store slower than the fires): a batch at a
            // time, so that a full buffer still has its oldest events
            // queued to drop, and keeps the newest.
            let mut batch = std::mem::take(&mut g.spare);
            let n = self.batch;
            batch.extend(g.queue.drain(..n));
            batch
        };
        g.in_flight = taken.len();
        Next::Batch(taken)
    }

    /// Counts `written` events of those in flight as written (`rejected` of
    /// them refused), and the store as answering.
    fn finish_batch(&self, written: usize, rejected: Option<u64>, now: DateTime<Utc>) {
        let mut g = self.lock();
        g.in_flight = g.in_flight.saturating_sub(written);
        let rejected = rejected.unwrap_or(0);
        g.health.written += written as u64 - rejected;
        g.health.rejected += rejected;
        if g.health.failing {
            tracing::info!(
                since = g.health.failing_since.map(|t| display(Rfc3339(t))),
                recovered_at = %Rfc3339(now),
                "execution store recovered; buffered records are being written"
            );
        }
        g.health.failing = false;
        g.health.last_error = None;
        g.health.failing_since = None;
        g.health.buffered = g.queue.len() + g.in_flight;
        if g.queue.is_empty() && g.in_flight == 0 {
            g.health.dropped_since_drained = 0;
        }
        drop(g);
        self.progress.notify(usize::MAX);
    }

    /// Puts events taken for writing back at the queue's front, in order:
    /// they are no longer in flight.
    fn unshift_locked(g: &mut State, events: VecDeque<ExecutionEvent>) {
        g.in_flight = g.in_flight.saturating_sub(events.len());
        for ev in events.into_iter().rev() {
            g.queue.push_front(ev);
        }
        g.health.buffered = g.queue.len() + g.in_flight;
    }

    /// Puts back the events in flight that were not written, after the
    /// store failed with `e`, dropping the oldest past the capacity.
    fn requeue(&self, batch: VecDeque<ExecutionEvent>, e: &StoreError, now: DateTime<Utc>) {
        let mut g = self.lock();
        Self::unshift_locked(&mut g, batch);
        // Those in flight before `batch` were written (one by one).
        g.in_flight = 0;
        let overflow = g.queue.len().saturating_sub(g.health.capacity);
        for _ in 0..overflow {
            g.queue.pop_front();
            g.health.dropped += 1;
            g.health.dropped_since_drained += 1;
        }
        g.health.failed_writes += 1;
        if !g.health.failing {
            tracing::warn!(error = %e, buffered = g.queue.len(), "execution store failing; buffering records");
            g.health.failing_since = Some(now);
        }
        g.health.failing = true;
        g.health.last_error = Some(error_chain(e));
        g.health.buffered = g.queue.len();
    }

    async fn write_one_by_one(
        &self,
        store: &dyn ExecutionStore,
        batch: VecDeque<ExecutionEvent>,
        first: &StoreError,
        clock: &dyn Clock,
    ) {
        let now = clock.now();
        let mut rejected = 0;
        let mut pending = batch.clone().into_iter();
        for ev in pending.by_ref() {
            self.lock().health.writing_since = Some(clock.now());
            let written = guard::store_call("write", store.write(std::slice::from_ref(&ev))).await;
            self.lock().health.writing_since = None;
            match written {
                Ok(()) => {}
                Err(e) if e.is_transient() => {
                    // The store went down mid-way: requeue the rest.
                    let rest: VecDeque<_> = std::iter::once(ev).chain(pending).collect();
                    let done = batch.len() - rest.len();
                    self.lock().health.written += done as u64;
                    self.requeue(rest, &e, now);
                    return;
                }
                Err(e) => {
                    rejected += 1;
                    tracing::error!(error = %error_chain(&e), first_error = %first, job_id = %ev.job_id(), scheduled_at = %Rfc3339(ev.scheduled_at()), "execution store rejected a record");
                }
            }
        }
        self.finish_batch(batch.len(), Some(rejected), now);
    }
}

enum Next {
    Batch(VecDeque<ExecutionEvent>),
    Wait,
    Done,
}

/// An error with its sources, joined by ": ".
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests;
