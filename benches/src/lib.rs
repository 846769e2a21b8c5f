//! Benchmarks of `mscribe-scheduler`, beside its peers.
//!
//! This crate is not published. It holds:
//!
//! - the criterion benches (`benches/schedule.rs`: next-fire computation
//!   beside the `cron` crate; `benches/dispatch.rs`: registration and the
//!   per-fire cost on the virtual clock);
//! - the `compare` binary, which runs the real-clock comparison with
//!   tokio-cron-scheduler, apalis-cron and a plain tokio loop (each
//!   contender in its own child process), the dispatch-rate sweep, the
//!   simulation speed runs and the health-endpoint load, and writes
//!   `docs/BENCHMARKS.md`;
//! - the `claims` binary: the claim path on Postgres, several scheduler
//!   instances (child processes) sharing one fresh database with
//!   `claim_fires(true)`, each fire counted in the database ([`claims`]);
//! - the `cost` binary, the engine's hot paths one at a time on the virtual
//!   clock, for callgrind's instruction counts and for resident memory
//!   (`scripts/callgrind.sh`);
//! - the measuring tools they share, in this library.
//!
//! Run everything with `scripts/bench.sh --quick` (or `--full`).
//!
//! ```
//! use std::time::Duration;
//! use mscribe_bench::measure::LatencyHistogram;
//!
//! let h = LatencyHistogram::new();
//! for ms in 1..=100 {
//!     h.record(Duration::from_millis(ms));
//! }
//! let p50 = h.percentile(0.50);
//! assert!(p50 >= Duration::from_millis(48) && p50 <= Duration::from_millis(52), "{p50:?}");
//! assert_eq!(h.max(), Duration::from_millis(100));
//! ```

pub mod claims;
pub mod health;
pub mod measure;
pub mod null_store;
pub mod report;
pub mod scale;
pub mod sim_speed;
pub mod timed_store;

pub use null_store::NullStore;
