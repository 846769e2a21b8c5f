//! The alerts' durable state, shared by every instance on one database: the
//! outbox of webhook deliveries, each job's run of failures, and the lease
//! that lets one instance at a time check and deliver; and [`AlertStore`],
//! which both SQL stores implement.
//!
//! The tables come from the migrations (`0008_alerts.sql` for SQLite,
//! `0010_alerts.sql` for Postgres). Each alert is enqueued once for the
//! cluster: a row's `dedupe_key` is unique, and enqueuing a key already
//! there does nothing. What is sent, to where, and when an event is raised
//! is the caller's (the server's `alerts` module).

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::StoreResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// At most this many rows per [`AlertStore::alert_deliveries`] or
/// [`AlertStore::due_alerts`] call.
pub const MAX_ALERT_LIMIT: usize = 1000;

/// An alert to enqueue ([`AlertStore::enqueue_alerts`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAlert {
    /// Unique for the cluster: a second row with the same key is not
    /// enqueued (e.g. `ops/failure/database-backup/2026-01-01T02:00:00Z`).
    pub dedupe_key: String,
    /// The alert's name (`[alerts.<name>]`).
    pub alert: String,
    /// The event: `failure`, `failures_in_a_row`, `recovered`, ...
    pub event: String,
    /// The job it is about, if any.
    pub job_id: Option<String>,
    /// The body to send, as JSON.
    pub body: Value,
    /// When it was raised; also its first delivery time.
    pub created_at: DateTime<Utc>,
}

/// An outbox row (`alert_outbox`): an alert and how its delivery went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDelivery {
    /// Its id, increasing: the cursor of [`AlertQuery::before_id`].
    pub id: i64,
    /// Its unique key.
    pub dedupe_key: String,
    /// The alert's name.
    pub alert: String,
    /// The event.
    pub event: String,
    /// The job, if any.
    pub job_id: Option<String>,
    /// The body to send.
    pub body: Value,
    /// When it was raised.
    pub created_at: DateTime<Utc>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When the next attempt is due; `None` once delivered or given up.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt, if the receiver answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (an error, or a non-2xx status).
    pub last_error: Option<String>,
    /// When the receiver took it (a 2xx answer).
    pub delivered_at: Option<DateTime<Utc>>,
    /// When its attempts ran out.
    pub gave_up_at: Option<DateTime<Utc>>,
}

impl AlertDelivery {
    /// `delivered`, `failed` (given up) or `pending`.
    pub fn state(&self) -> &'static str {
        if self.delivered_at.is_some() {
            "delivered"
        } else if self.gave_up_at.is_some() {
            "failed"
        } else {
            "pending"
        }
    }
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver took it.
    Delivered,
    /// It failed; try again at this time.
    RetryAt(DateTime<Utc>),
    /// It failed and no attempt is left.
    GaveUp,
}

/// One delivery attempt to record ([`AlertStore::record_delivery_attempt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The HTTP status, if the receiver answered.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// What follows.
    pub outcome: AttemptOutcome,
}

/// Which outbox rows [`AlertStore::alert_deliveries`] reads, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertQuery {
    /// At most this many (capped at [`MAX_ALERT_LIMIT`]).
    pub limit: usize,
    /// Only rows older than this id: the last id of the previous page.
    pub before_id: Option<i64>,
    /// Only this alert's rows.
    pub alert: Option<String>,
    /// Only this job's rows.
    pub job_id: Option<String>,
}

impl AlertQuery {
    /// The newest `limit` rows.
    pub fn new(limit: usize) -> Self {
        AlertQuery { limit, before_id: None, alert: None, job_id: None }
    }

    /// The limit as stored, within `0..=MAX_ALERT_LIMIT`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn capped_limit(&self) -> i64 {
        self.limit.min(MAX_ALERT_LIMIT) as i64
    }
}

/// A job's run of failed runs after [`AlertStore::record_run_outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streak {
    /// Failed runs in a row now (0 after a success).
    pub failures_in_a_row: u32,
    /// Failed runs in a row before this outcome.
    pub previous: u32,
    /// Whether this outcome was counted: `false` when the same fire was
    /// the last one counted (another instance reported it first).
    pub counted: bool,
}

/// The alerts' state shared by every instance on one database. Writes run
/// in one transaction each, with the store's operation deadline.
#[async_trait]
pub trait AlertStore: Send + Sync + fmt::Debug {
    /// Counts a run's final outcome in `job_id`'s run of failures: a
    /// failure adds one, a success resets it to 0. `fire_key` names the
    /// fire; the same key twice in a row is counted once (two instances
    /// that both ran one fire). Atomic across instances.
    async fn record_run_outcome(
        &self,
        job_id: &str,
        fire_key: &str,
        succeeded: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<Streak>;

    /// Inserts the alerts whose `dedupe_key` is not in the outbox yet, due
    /// at once; returns, for each, whether it was inserted.
    async fn enqueue_alerts(&self, alerts: &[NewAlert]) -> StoreResult<Vec<bool>>;

    /// Up to `limit` (capped at [`MAX_ALERT_LIMIT`]) rows neither delivered
    /// nor given up whose next attempt is due at `now`, the earliest due
    /// first.
    async fn due_alerts(&self, now: DateTime<Utc>, limit: usize)
    -> StoreResult<Vec<AlertDelivery>>;

    /// Records an attempt on row `id` (attempts grow by one), unless the
    /// row is already delivered or given up; returns whether it recorded.
    async fn record_delivery_attempt(
        &self,
        id: i64,
        attempt: &DeliveryAttempt,
    ) -> StoreResult<bool>;

    /// Outbox rows, newest first (by id).
    async fn alert_deliveries(&self, q: &AlertQuery) -> StoreResult<Vec<AlertDelivery>>;

    /// Takes or renews the lease `name` for `owner` until `until`, if it is
    /// free, expired at `now`, or `owner`'s already; returns whether
    /// `owner` holds it now. One holder at a time, whatever the instances
    /// racing.
    async fn take_alert_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Deletes the delivered and given-up rows raised before `before`,
    /// except the newest row (so ids keep increasing and an
    /// [`AlertQuery::before_id`] cursor never meets a reused id); returns
    /// how many.
    async fn prune_alerts(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// The outcome's columns: `(delivered, next_attempt_at, gave_up)`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn outcome_columns(o: AttemptOutcome) -> (bool, Option<DateTime<Utc>>, bool) {
    match o {
        AttemptOutcome::Delivered => (true, None, false),
        AttemptOutcome::RetryAt(t) => (false, Some(t), false),
        AttemptOutcome::GaveUp => (false, None, true),
    }
}

/// A stored count, never below 0.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_names_its_state() {
        let mut d = AlertDelivery {
            id: 1,
            dedupe_key: "k".into(),
            alert: "a".into(),
            event: "failure".into(),
            job_id: None,
            body: serde_json::json!({}),
            created_at: DateTime::UNIX_EPOCH,
            attempts: 0,
            next_attempt_at: Some(DateTime::UNIX_EPOCH),
            last_attempt_at: None,
            last_status: None,
            last_error: None,
            delivered_at: None,
            gave_up_at: None,
        };
        assert_eq!(d.state(), "pending");
        d.gave_up_at = Some(DateTime::UNIX_EPOCH);
        assert_eq!(d.state(), "failed");
        d.delivered_at = Some(DateTime::UNIX_EPOCH);
        assert_eq!(d.state(), "delivered");
    }
}
