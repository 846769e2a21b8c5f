//! Measuring: a lock-free latency histogram, the process's CPU time and its
//! resident memory.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Values below this many microseconds get a bucket each.
const LINEAR: u64 = 32;
/// Sub-buckets per power of two above [`LINEAR`] (relative error <= 1/32).
const SUB_BITS: u32 = 5;
/// Enough buckets for 2^40 microseconds (12 days).
const BUCKETS: usize = (LINEAR as usize) + (40 - SUB_BITS as usize) * (1 << SUB_BITS);

/// A latency histogram with microsecond resolution below 32 µs and ~3%
/// relative error above, shared by all threads without a lock: `record` is
/// three relaxed atomic adds and one `fetch_max`.
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("max", &self.max())
            .finish_non_exhaustive()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let e = 63 - us.leading_zeros(); // >= SUB_BITS
    let mantissa = (us >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    let i = LINEAR as usize + (e - SUB_BITS) as usize * (1 << SUB_BITS) + mantissa as usize;
    i.min(BUCKETS - 1)
}

/// The lowest value (µs) that falls into bucket `i`.
fn bucket_floor(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let k = i - LINEAR as usize;
    let e = (k >> SUB_BITS) as u32 + SUB_BITS;
    let mantissa = (k & ((1 << SUB_BITS) - 1)) as u64;
    (1u64 << e) | (mantissa << (e - SUB_BITS))
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }

    /// Records one value.
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns / 1_000)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The largest value recorded (exact).
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns.load(Ordering::Relaxed))
    }

    /// The mean of the values recorded.
    pub fn mean(&self) -> Duration {
        match self.count() {
            0 => Duration::ZERO,
            n => Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed) / n),
        }
    }

    /// The `q` quantile (0..=1): the middle of the bucket holding it, never
    /// above the maximum.
    pub fn percentile(&self, q: f64) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                let lo = bucket_floor(i);
                let hi = if i + 1 < BUCKETS { bucket_floor(i + 1) } else { lo };
                let mid_ns = (lo + hi) * 500; // (lo + hi) / 2 µs, in ns
                return Duration::from_nanos(mid_ns).min(self.max());
            }
        }
        self.max()
    }
}

/// A [`LatencyHistogram`]'s counts, to send from a child process and merge
/// into another histogram ([`LatencyHistogram::merge`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistogramSnapshot {
    /// `(bucket, count)` of every bucket that holds a value.
    pub buckets: Vec<(u32, u64)>,
    /// The sum of the values, in nanoseconds.
    pub sum_ns: u64,
    /// The largest value, in nanoseconds.
    pub max_ns: u64,
}

impl LatencyHistogram {
    /// Its counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match b.load(Ordering::Relaxed) {
                0 => None,
                n => Some((i as u32, n)),
            })
            .collect();
        HistogramSnapshot {
            buckets,
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            max_ns: self.max_ns.load(Ordering::Relaxed),
        }
    }

    /// Adds the counts of `s` (another histogram's snapshot) to this one.
    pub fn merge(&self, s: &HistogramSnapshot) {
        for &(i, n) in &s.buckets {
            if let Some(b) = self.buckets.get(i as usize) {
                b.fetch_add(n, Ordering::Relaxed);
                self.count.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.sum_ns.fetch_add(s.sum_ns, Ordering::Relaxed);
        self.max_ns.fetch_max(s.max_ns, Ordering::Relaxed);
    }

    /// A histogram holding the counts of `s`.
    pub fn from_snapshot(s: &HistogramSnapshot) -> Self {
        let h = Self::new();
        h.merge(s);
        h
    }
}

/// User plus system CPU time of this process (all threads) so far, from
/// `getrusage(RUSAGE_SELF)`.
pub fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec().max(0) as u64)
                    + Duration::from_micros(t.tv_usec().max(0) as u64)
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// A `kB` field of `/proc/self/status` (e.g. `VmRSS`, `VmHWM`), in bytes.
pub fn proc_status_bytes(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// The resident set size now.
pub fn rss_bytes() -> u64 {
    proc_status_bytes("VmRSS").unwrap_or(0)
}

/// The peak resident set size so far.
pub fn hwm_bytes() -> u64 {
    proc_status_bytes("VmHWM").unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip() {
        for us in [0, 1, 31, 32, 33, 63, 64, 100, 1_000, 5_000, 123_456, 10_000_000] {
            let i = bucket_of(us);
            assert!(bucket_floor(i) <= us, "{us}");
            assert!(i + 1 == BUCKETS || bucket_floor(i + 1) > us, "{us}");
        }
    }

    #[test]
    fn percentiles_within_three_percent() {
        let h = LatencyHistogram::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        for q in [0.5, 0.9, 0.99] {
            let want = q * 10_000.0;
            let got = h.percentile(q).as_micros() as f64;
            assert!((got - want).abs() / want < 0.03, "q {q}: {got} vs {want}");
        }
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn snapshots_merge() {
        let (a, b) = (LatencyHistogram::new(), LatencyHistogram::new());
        for us in 1..=1_000u64 {
            a.record(Duration::from_micros(us));
            b.record(Duration::from_micros(us + 1_000));
        }
        let m = LatencyHistogram::from_snapshot(&a.snapshot());
        m.merge(&b.snapshot());
        assert_eq!(m.count(), 2_000);
        assert_eq!(m.max(), Duration::from_micros(2_000));
        let p50 = m.percentile(0.5).as_micros() as f64;
        assert!((p50 - 1_000.0).abs() / 1_000.0 < 0.03, "{p50}");
    }

    #[test]
    fn memory_and_cpu_are_readable() {
        assert!(rss_bytes() > 0);
        assert!(hwm_bytes() >= rss_bytes() / 2);
        let t0 = cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_time() >= t0);
    }
}
