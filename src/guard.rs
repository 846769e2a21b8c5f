//! Guards around the user code the engine calls (handlers, observers,
//! stores, clocks): a panic there is caught, logged and turned into a
//! failure, never an unwinding driver or a poisoned lock.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use futures::future::BoxFuture;

use crate::clock::Clock;
use crate::store::{StoreError, StoreResult};

/// The text of a panic's payload.
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// A store call whose panic becomes a transient [`StoreError`] naming the
/// operation, so that the caller's usual failure path (retry, log, count)
/// takes it.
pub(crate) fn store_call<F, T>(what: &'static str, call: F) -> StoreCall<F>
where
    F: Future<Output = StoreResult<T>> + Unpin,
{
    StoreCall { what, call }
}

/// The future of [`store_call`]: each poll of the store's future under
/// `catch_unwind`, with no state machine of its own around it (an `async
/// fn` here cost every write about 60 instructions).
pub(crate) struct StoreCall<F> {
    what: &'static str,
    call: F,
}

impl<F, T> Future for StoreCall<F>
where
    F: Future<Output = StoreResult<T>> + Unpin,
{
    type Output = StoreResult<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StoreResult<T>> {
        let this = &mut *self;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.call).poll(cx))) {
            Ok(p) => p,
            Err(p) => Poll::Ready(Err(StoreError::Unavailable {
                message: format!("the store panicked in {}: {}", this.what, panic_message(&*p)),
                source: None,
            })),
        }
    }
}

/// Calls `f`; a panic is logged as the failure of `what` and gives `None`.
pub(crate) fn call<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(p) => {
            tracing::error!(panic = %panic_message(&*p), "{what} panicked; the scheduler goes on");
            None
        }
    }
}

/// The scheduler's view of the user's [`Clock`]: a panicking `now()` gives
/// the last time read, and a panicking sleep ends at once. Every panic is
/// logged (the first, then one in a thousand) and counted.
///
/// The engine calls the inherent [`now`](Self::now) and
/// [`sleep_until`](Self::sleep_until) on the concrete type: a direct,
/// inlined call, and a sleep without a second box. The [`Clock`] impl (what
/// handlers see through `JobContext::clock`) forwards to them.
pub(crate) struct GuardedClock {
    inner: Arc<dyn Clock>,
    /// The last time read, as [`pack`] gives it (0 before any).
    last: AtomicU64,
    panics: AtomicU64,
}

impl fmt::Debug for GuardedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl GuardedClock {
    pub(crate) fn new(inner: Arc<dyn Clock>) -> Self {
        GuardedClock { inner, last: AtomicU64::new(0), panics: AtomicU64::new(0) }
    }

    /// The user's clock, or the last time read when it panics.
    #[inline]
    pub(crate) fn now(&self) -> DateTime<Utc> {
        match catch_unwind(AssertUnwindSafe(|| self.inner.now())) {
            Ok(t) => {
                // Written only when it changed: reads within one millisecond
                // (a burst) leave the cache line shared between the cores.
                let packed = pack(t);
                if self.last.load(Ordering::Relaxed) != packed {
                    self.last.store(packed, Ordering::Relaxed);
                }
                t
            }
            Err(p) => self.now_panicked(&*p),
        }
    }

    /// The user's clock, or `fallback` when it panics: for the driver,
    /// which reads the clock once per run it launches and has its previous
    /// reading at hand. It leaves the last time read to the driver's
    /// [`now`](Self::now) once per round, and so costs little more than
    /// the user's clock itself.
    #[inline(always)]
    pub(crate) fn now_or(&self, fallback: DateTime<Utc>) -> DateTime<Utc> {
        match catch_unwind(AssertUnwindSafe(|| self.inner.now())) {
            Ok(t) => t,
            Err(p) => {
                self.panicked("now", &*p);
                fallback
            }
        }
    }

    #[cold]
    fn now_panicked(&self, p: &(dyn Any + Send)) -> DateTime<Utc> {
        self.panicked("now", p);
        unpack(self.last.load(Ordering::Relaxed))
    }

    /// The user's sleep until `deadline`, ending at once if it panics.
    #[inline]
    pub(crate) fn sleep_until(&self, deadline: DateTime<Utc>) -> GuardedSleep {
        match catch_unwind(AssertUnwindSafe(|| self.inner.sleep_until(deadline))) {
            Ok(sleep) => GuardedSleep { sleep: Some(sleep), ended: false },
            Err(p) => {
                self.panicked("sleep_until", &*p);
                GuardedSleep { sleep: None, ended: true }
            }
        }
    }

    #[cold]
    fn panicked(&self, what: &str, p: &(dyn Any + Send)) {
        let n = self.panics.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(1000) {
            tracing::error!(panic = %panic_message(p), panics = n + 1, "the clock panicked in {what}; using the last time read");
        }
    }
}

impl Clock for GuardedClock {
    fn now(&self) -> DateTime<Utc> {
        GuardedClock::now(self)
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        Box::pin(GuardedClock::sleep_until(self, deadline))
    }
}

/// A sleep of the user's clock, from [`GuardedClock::sleep_until`]: a panic
/// while polling it ends it (logged).
pub(crate) struct GuardedSleep {
    /// `None` for a sleep that never ends, or one whose creation panicked.
    sleep: Option<BoxFuture<'static, ()>>,
    /// Whether it ended by a panic. The panicked future is kept, not
    /// dropped here: its drop could panic too.
    ended: bool,
}

impl GuardedSleep {
    /// A sleep that never ends (a deadline past the end of time).
    pub(crate) fn never() -> Self {
        GuardedSleep { sleep: None, ended: false }
    }
}

impl Future for GuardedSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.ended {
            return Poll::Ready(());
        }
        let Some(sleep) = self.sleep.as_mut() else { return Poll::Pending };
        match catch_unwind(AssertUnwindSafe(|| sleep.as_mut().poll(cx))) {
            Ok(p) => p,
            Err(p) => {
                tracing::error!(panic = %panic_message(&*p), "the clock's sleep panicked; it ends now");
                self.ended = true;
                Poll::Ready(())
            }
        }
    }
}

/// `t` to the millisecond in one word, without calendar arithmetic: the
/// year (offset to be positive, so a time is never 0), the day of the
/// year, the second of the day and the millisecond (up to 1,999 in a leap
/// second), in 19, 9, 17 and 11 bits.
#[inline]
fn pack(t: DateTime<Utc>) -> u64 {
    let t = t.naive_utc();
    let year = (t.year() + YEAR_OFFSET) as u64;
    (year << 37)
        | (u64::from(t.ordinal()) << 28)
        | (u64::from(t.time().num_seconds_from_midnight()) << 11)
        | u64::from(t.nanosecond() / 1_000_000)
}

/// The time [`pack`] packed; the Unix epoch for 0 (nothing read yet).
fn unpack(p: u64) -> DateTime<Utc> {
    let field = |shift: u32, bits: u32| ((p >> shift) & ((1 << bits) - 1)) as u32;
    let year = (p >> 37) as i32 - YEAR_OFFSET;
    let date = NaiveDate::from_yo_opt(year, field(28, 9));
    let time =
        NaiveTime::from_num_seconds_from_midnight_opt(field(11, 17), field(0, 11) * 1_000_000);
    match (p, date, time) {
        (0, _, _) | (_, None, _) | (_, _, None) => DateTime::UNIX_EPOCH,
        (_, Some(d), Some(t)) => d.and_time(t).and_utc(),
    }
}

/// Added to a year so that every year chrono holds (±262,143) is positive.
const YEAR_OFFSET: i32 = 1 << 18;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_time_unpacks_to_its_millisecond() {
        let ms = |t: DateTime<Utc>| {
            DateTime::from_timestamp_millis(t.timestamp_millis()).expect("in range")
        };
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a leap second")
            .and_utc();
        for t in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::UNIX_EPOCH,
            DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("in range"),
            DateTime::from_timestamp(-1, 999_999_999).expect("in range"),
        ] {
            assert_eq!(unpack(pack(t)), ms(t), "{t:?}");
        }
        assert_eq!(unpack(pack(leap)), leap);
        assert_eq!(unpack(0), DateTime::UNIX_EPOCH);
        assert_ne!(pack(DateTime::<Utc>::MIN_UTC), 0);
    }
}
