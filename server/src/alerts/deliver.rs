//! Sending outbox rows to their webhooks: one POST per row with the alert's
//! headers and timeout, the backoff between attempts, and the attempt to
//! record. Errors never quote the URL (it may hold a token).

use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_storage::{AlertDelivery, AttemptOutcome, DeliveryAttempt};

use crate::config::{AlertConfig, DEFAULT_ALERT_ATTEMPTS};

/// The delay before the first retry; it doubles with each attempt.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The longest delay between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(600);

/// The most of a receiver's answer quoted in an error.
const ANSWER_CHARS: usize = 200;

/// The delay after the `attempts`-th failed attempt (1 s, 2 s, 4 s, ...,
/// at most [`MAX_RETRY`]).
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    FIRST_RETRY.saturating_mul(1 << exp).min(MAX_RETRY)
}

/// What follows an attempt that failed, the row's `attempts` before it
/// given: another try after [`backoff`], or giving up after `max_attempts`.
pub(crate) fn after_failure(
    attempts_before: u32,
    max_attempts: u32,
    now: DateTime<Utc>,
) -> AttemptOutcome {
    let made = attempts_before.saturating_add(1);
    if made >= max_attempts {
        AttemptOutcome::GaveUp
    } else {
        let delay = chrono::Duration::from_std(backoff(made)).unwrap_or(chrono::Duration::MAX);
        AttemptOutcome::RetryAt(now + delay)
    }
}

/// Sends one row to `alert`'s webhook (or records that the alert is gone);
/// returns the attempt to record. `now` is read after the answer.
pub(crate) async fn send(
    client: &reqwest::Client,
    row: &AlertDelivery,
    alert: Option<&AlertConfig>,
    now: impl Fn() -> DateTime<Utc>,
) -> DeliveryAttempt {
    let Some(alert) = alert else {
        // Not configured on this instance: during a rolling deploy another
        // instance may know it, so the row is retried like a failure
        // (and given up after the default attempts if no instance does).
        let at = now();
        return DeliveryAttempt {
            at,
            status: None,
            error: Some(format!(
                "alert \"{}\" is not configured on the delivering instance",
                row.alert
            )),
            outcome: after_failure(row.attempts, DEFAULT_ALERT_ATTEMPTS, at),
        };
    };
    let mut req = client.post(alert.url.expose()).timeout(alert.timeout).json(&row.body);
    for (name, value) in &alert.headers {
        req = req.header(name.as_str(), value.expose());
    }
    let result = req.send().await;
    let at = now();
    let failed = |status: Option<u16>, error: String| DeliveryAttempt {
        at,
        status,
        error: Some(error),
        outcome: after_failure(row.attempts, alert.max_attempts, at),
    };
    match result {
        Ok(res) if res.status().is_success() => DeliveryAttempt {
            at,
            status: Some(res.status().as_u16()),
            error: None,
            outcome: AttemptOutcome::Delivered,
        },
        Ok(res) => {
            let status = res.status();
            let text = tokio::time::timeout(Duration::from_secs(1), res.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let text: String = text.chars().take(ANSWER_CHARS).collect();
            let text = text.trim();
            let answer = if text.is_empty() { String::new() } else { format!(": {text}") };
            failed(Some(status.as_u16()), format!("receiver answered HTTP {status}{answer}"))
        }
        Err(e) => {
            let what = if e.is_timeout() {
                format!("no answer within {}", humantime::format_duration(alert.timeout))
            } else if e.is_connect() {
                "could not connect".to_owned()
            } else {
                "request failed".to_owned()
            };
            failed(None, format!("{what}: {}", e.without_url()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_alert_not_configured_here_is_retried_then_given_up() {
        let mut row = AlertDelivery {
            id: 1,
            dedupe_key: "new/failure/j/t".into(),
            alert: "new".into(),
            event: "failure".into(),
            job_id: Some("j".into()),
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
        let client = reqwest::Client::new();
        let now = || DateTime::UNIX_EPOCH;
        let a = send(&client, &row, None, now).await;
        assert_eq!(a.outcome, AttemptOutcome::RetryAt(now() + chrono::Duration::seconds(1)));
        assert_eq!(
            a.error.as_deref(),
            Some("alert \"new\" is not configured on the delivering instance")
        );
        row.attempts = DEFAULT_ALERT_ATTEMPTS - 1;
        assert_eq!(send(&client, &row, None, now).await.outcome, AttemptOutcome::GaveUp);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let secs: Vec<u64> = (1..=12).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(backoff(u32::MAX), MAX_RETRY);
        let now = DateTime::UNIX_EPOCH;
        assert_eq!(
            after_failure(0, 3, now),
            AttemptOutcome::RetryAt(now + chrono::Duration::seconds(1))
        );
        assert_eq!(
            after_failure(1, 3, now),
            AttemptOutcome::RetryAt(now + chrono::Duration::seconds(2))
        );
        assert_eq!(after_failure(2, 3, now), AttemptOutcome::GaveUp);
        assert_eq!(after_failure(0, 1, now), AttemptOutcome::GaveUp);
    }
}
