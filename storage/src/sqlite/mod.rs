//! The SQLite store: rusqlite with bundled SQLite, WAL, one writer thread,
//! a few reader threads. Works on any async runtime.
//!
//! | file | role |
//! |---|---|
//! | `open.rs` | [`SqliteOptions`], the connections, [`SqliteStore`]'s constructors |
//! | `worker.rs` | the writer thread (group commit) and the reader threads |
//! | `sql.rs` | the SQL text |
//! | `time.rs` | timestamps as sortable text ([`ts_text`]) |
//! | `migrate.rs` | applying the migrations at open |
//! | `error.rs` | rusqlite errors as the engine's and the crate's |
//! | `store.rs` | [`SqliteStore`] and its `ExecutionStore` impl |
//! | `hourly.rs` | its `HourlyMetricsStore` impl |
//! | `backfill.rs` | its backfill locks (`ControlStore::lock_backfill`) |
//! | `control.rs` | its `ControlStore` impl (polled: no notifications) |
//! | `alerts.rs` | its `AlertStore` impl (the outbox, streaks, leases) |
//! | `probe.rs` | [`SqliteProbe`] and [`verify_sqlite_file`] |

mod alerts;
mod backfill;
mod control;
mod error;
mod hourly;
mod migrate;
mod open;
mod probe;
mod sql;
mod store;
mod time;
mod worker;

pub use open::{DEFAULT_SQLITE_PATH, SqliteOptions, Synchronous};
pub use probe::{SqliteProbe, verify_sqlite_file};
pub use store::SqliteStore;
pub use time::ts_text;
