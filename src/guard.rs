//! Guards around the user code the engine calls (handlers, observers,
//! stores, clocks): a panic there is caught, logged and turned into a
//! failure, never an unwinding driver or a poisoned lock.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures::FutureExt;
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
pub(crate) async fn store_call<T>(
    what: &'static str,
    call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(r) => r,
        Err(p) => Err(StoreError::Unavailable {
            message: format!("the store panicked in {what}: {}", panic_message(&*p)),
            source: None,
        }),
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
pub(crate) struct GuardedClock {
    inner: Arc<dyn Clock>,
    /// The last time read, in milliseconds since the epoch.
    last_ms: AtomicI64,
    panics: AtomicU64,
}

impl fmt::Debug for GuardedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl GuardedClock {
    pub(crate) fn new(inner: Arc<dyn Clock>) -> Self {
        GuardedClock { inner, last_ms: AtomicI64::new(0), panics: AtomicU64::new(0) }
    }

    fn panicked(&self, what: &str, p: &(dyn Any + Send)) {
        let n = self.panics.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(1000) {
            tracing::error!(panic = %panic_message(p), panics = n + 1, "the clock panicked in {what}; using the last time read");
        }
    }
}

impl Clock for GuardedClock {
    fn now(&self) -> DateTime<Utc> {
        match catch_unwind(AssertUnwindSafe(|| self.inner.now())) {
            Ok(t) => {
                self.last_ms.store(t.timestamp_millis(), Ordering::Relaxed);
                t
            }
            Err(p) => {
                self.panicked("now", &*p);
                DateTime::from_timestamp_millis(self.last_ms.load(Ordering::Relaxed))
                    .unwrap_or_default()
            }
        }
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        match catch_unwind(AssertUnwindSafe(|| self.inner.sleep_until(deadline))) {
            Ok(sleep) => Box::pin(AssertUnwindSafe(sleep).catch_unwind().map(|r| {
                if let Err(p) = r {
                    tracing::error!(panic = %panic_message(&*p), "the clock's sleep panicked; it ends now");
                }
            })),
            Err(p) => {
                self.panicked("sleep_until", &*p);
                Box::pin(futures::future::ready(()))
            }
        }
    }
}
