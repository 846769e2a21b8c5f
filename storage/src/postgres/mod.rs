//! The Postgres store: an sqlx pool, batched `UNNEST` writes, row-level
//! security and SQL helpers. Needs a tokio runtime.
//!
//! | file | role |
//! |---|---|
//! | `open.rs` | [`PostgresOptions`], [`PostgresStore`]'s constructors |
//! | `worker.rs` | the write path (a batch in one statement, two when a key comes twice, split over two connections when large; the fence check of claimed fires) and deadlines |
//! | `shaped.rs` | multi-row statements shaped to their batch (a column the same in every row bound once) |
//! | `sql.rs` | the SQL text |
//! | `time.rs` | timestamps as `timestamptz` |
//! | `migrate.rs` | applying the migrations at open, under an advisory lock |
//! | `error.rs` | sqlx errors as the engine's and the crate's |
//! | `store.rs` | [`PostgresStore`] and its `ExecutionStore` impl |
//! | `hourly.rs` | its `HourlyMetricsStore` impl |
//! | `backfill.rs` | its backfill locks (`ControlStore::lock_backfill`) |
//! | `control.rs` | its `ControlStore` impl (with `pg_notify`) and [`ControlListener`] |
//! | `alerts.rs` | its `AlertStore` impl (the outbox, streaks, leases) |
//! | `probe.rs` | [`PostgresProbe`] |

mod alerts;
mod backfill;
mod control;
mod error;
mod hourly;
mod migrate;
mod open;
mod probe;
mod shaped;
mod sql;
mod store;
mod time;
mod worker;

pub use control::ControlListener;
pub use open::PostgresOptions;
pub use probe::PostgresProbe;
pub use store::PostgresStore;
