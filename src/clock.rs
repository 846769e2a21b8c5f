//! Time: the [`Clock`] trait, the system clock and the [`VirtualClock`].
//!
//! Everything in the engine reads `now` once from a clock and passes it into
//! pure functions; waiting is the only other thing a clock does.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// A source of wall time and of futures that complete at a wall time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// A future that completes once `now() >= deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// `t + d`, or `None` past the last instant chrono can hold (a huge
/// duration such as `Duration::MAX`: "never" for a deadline).
pub(crate) fn checked_after(t: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
    t.checked_add_signed(chrono::Duration::from_std(d).ok()?)
}

/// `t + d`, saturating at the last instant chrono can hold.
pub(crate) fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    checked_after(t, d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - d`, saturating at the first instant chrono can hold.
pub(crate) fn before(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The duration from `from` to `to`, zero when `to` is not later. Within one
/// UTC day (the hot path: an attempt's duration, a fire's lateness) it skips
/// chrono's calendar arithmetic.
pub(crate) fn std_dur(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    if to <= from {
        return Duration::ZERO;
    }
    let (from, to) = (from.naive_utc(), to.naive_utc());
    if from.date() == to.date() {
        return (to.time() - from.time()).to_std().unwrap_or_default();
    }
    (to - from).to_std().unwrap_or_default()
}

/// The real clock, sleeping on tokio's timer.
///
/// A sleep wakes at least every [`SystemClock::MAX_NAP`] to read the wall
/// clock again, so a jump of the system time (NTP, suspend, a manual change)
/// is noticed within that bound instead of firing a cron job hours late.
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[cfg(feature = "tokio")]
impl SystemClock {
    /// The longest single nap of [`Clock::sleep_until`].
    pub const MAX_NAP: Duration = Duration::from_secs(1);
}

#[cfg(feature = "tokio")]
impl Clock for SystemClock {
    /// `Utc::now()`, with the calendar date of the current UTC day cached
    /// per thread: the scheduler reads the clock at every attempt, and
    /// turning a day number into a date is most of the cost of a read.
    fn now(&self) -> DateTime<Utc> {
        use std::cell::Cell;
        use std::time::{SystemTime, UNIX_EPOCH};
        thread_local! {
            static TODAY: Cell<Option<(u64, chrono::NaiveDate)>> = const { Cell::new(None) };
        }
        let Ok(since) = SystemTime::now().duration_since(UNIX_EPOCH) else {
            return Utc::now();
        };
        let (day, second) = (since.as_secs() / 86_400, since.as_secs() % 86_400);
        let date = match TODAY.get() {
            Some((d, date)) if d == day => date,
            _ => {
                let Some(t) =
                    i64::try_from(day * 86_400).ok().and_then(|s| DateTime::from_timestamp(s, 0))
                else {
                    return Utc::now();
                };
                TODAY.set(Some((day, t.date_naive())));
                t.date_naive()
            }
        };
        let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
            second as u32,
            since.subsec_nanos(),
        )
        .expect("a second of the day and its nanoseconds");
        date.and_time(time).and_utc()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                let left = std_dur(Utc::now(), deadline);
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(Self::MAX_NAP)).await;
            }
        })
    }
}

/// A clock whose time moves only when told.
///
/// [`advance`](VirtualClock::advance) and [`advance_to`](VirtualClock::advance_to)
/// move time forward and wake every sleeper whose deadline has come;
/// [`set`](VirtualClock::set) may also move it backward, to test a wall-clock
/// jump. [`crate::runtime::LocalRuntime`] advances it to the next timer by
/// itself whenever every task is idle. Clones share one time.
#[derive(Clone)]
pub struct VirtualClock {
    inner: Arc<Mutex<VirtualInner>>,
}

struct VirtualInner {
    now: DateTime<Utc>,
    timers: BTreeMap<(DateTime<Utc>, u64), Waker>,
    next_id: u64,
}

impl fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.lock();
        f.debug_struct("VirtualClock")
            .field("now", &g.now)
            .field("timers", &g.timers.len())
            .finish()
    }
}

impl VirtualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        VirtualClock {
            inner: Arc::new(Mutex::new(VirtualInner {
                now: start,
                timers: BTreeMap::new(),
                next_id: 0,
            })),
        }
    }

    /// A clock stopped at 2026-01-01T00:00:00Z.
    pub fn at_epoch_2026() -> Self {
        Self::new(DateTime::from_timestamp(1_767_225_600, 0).expect("valid timestamp"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VirtualInner> {
        self.inner.lock().expect("virtual clock lock")
    }

    /// Moves time forward by `d` and wakes the sleepers that are due.
    pub fn advance(&self, d: Duration) {
        let to = after(self.now(), d);
        self.advance_to(to);
    }

    /// Moves time forward to `t` (no-op if `t` is not later) and wakes the
    /// sleepers that are due.
    pub fn advance_to(&self, t: DateTime<Utc>) {
        let mut g = self.lock();
        if t > g.now {
            g.now = t;
        }
        Self::wake_due(&mut g);
    }

    /// Sets the time to `t`, forward or backward, as a wall-clock jump does,
    /// and wakes the sleepers that are due.
    pub fn set(&self, t: DateTime<Utc>) {
        let mut g = self.lock();
        g.now = t;
        Self::wake_due(&mut g);
    }

    fn wake_due(g: &mut VirtualInner) {
        let now = g.now;
        while let Some(entry) = g.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().wake();
        }
    }

    /// The earliest deadline anyone is sleeping until.
    pub fn next_timer(&self) -> Option<DateTime<Utc>> {
        self.lock().timers.first_key_value().map(|(k, _)| k.0)
    }

    /// How many sleepers wait.
    pub fn pending_timers(&self) -> usize {
        self.lock().timers.len()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        Box::pin(VirtualSleep { clock: self.clone(), deadline, key: None })
    }
}

struct VirtualSleep {
    clock: VirtualClock,
    deadline: DateTime<Utc>,
    key: Option<(DateTime<Utc>, u64)>,
}

impl Future for VirtualSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut g = this.clock.lock();
        if g.now >= this.deadline {
            // Its timer is gone: the map holds only deadlines after `now`
            // (waking the due ones is part of every move of the clock).
            this.key = None;
            return Poll::Ready(());
        }
        let key = match this.key {
            Some(k) => k,
            None => {
                let k = (this.deadline, g.next_id);
                g.next_id += 1;
                this.key = Some(k);
                k
            }
        };
        g.timers.insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for VirtualSleep {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            let mut g = self.clock.lock();
            if k.0 > g.now {
                g.timers.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn sleep_completes_only_at_deadline() {
        let clock = VirtualClock::at_epoch_2026();
        let t0 = clock.now();
        let mut sleep = clock.sleep_until(t0 + chrono::Duration::seconds(5));
        assert!((&mut sleep).now_or_never().is_none());
        assert_eq!(clock.next_timer(), Some(t0 + chrono::Duration::seconds(5)));
        clock.advance(Duration::from_millis(4_999));
        assert!((&mut sleep).now_or_never().is_none());
        clock.advance(Duration::from_millis(1));
        assert!((&mut sleep).now_or_never().is_some());
        assert_eq!(clock.pending_timers(), 0);
    }

    #[test]
    fn dropped_sleep_removes_its_timer() {
        let clock = VirtualClock::at_epoch_2026();
        let mut sleep = clock.sleep_until(clock.now() + chrono::Duration::seconds(1));
        assert!((&mut sleep).now_or_never().is_none());
        drop(sleep);
        assert_eq!(clock.pending_timers(), 0);
    }

    #[test]
    fn set_moves_backward() {
        let clock = VirtualClock::at_epoch_2026();
        let t0 = clock.now();
        clock.set(t0 - chrono::Duration::hours(1));
        assert_eq!(clock.now(), t0 - chrono::Duration::hours(1));
        clock.advance_to(t0 - chrono::Duration::hours(2));
        assert_eq!(clock.now(), t0 - chrono::Duration::hours(1));
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn system_clock_sleeps_briefly() {
        // The one test of the real clock: a 20 ms sleep.
        let c = SystemClock;
        let start = c.now();
        assert!(std_dur(start, Utc::now()) < Duration::from_secs(1));
        assert!(std_dur(Utc::now(), c.now()) < Duration::from_secs(1));
        c.sleep_until(start + chrono::Duration::milliseconds(20)).await;
        assert!(c.now() >= start + chrono::Duration::milliseconds(20));
    }
}
