//! The conformance cases of [`AlertStore`], for the SQL stores: the outbox
//! (enqueued once per key, due rows, attempts, paging, pruning), the run of
//! failures, and the lease; on one handle, and on two handles of one
//! database (two instances racing for the same key, streak and lease).

use std::sync::Arc;

use mscribe_storage::{
    AlertQuery, AlertStore, AttemptOutcome, DeliveryAttempt, NewAlert, StoreError,
};
use serde_json::json;

use crate::common::*;

fn alert(key: &str, job: &str, at: i64) -> NewAlert {
    NewAlert {
        dedupe_key: key.to_owned(),
        alert: "ops".to_owned(),
        event: "failure".to_owned(),
        job_id: Some(job.to_owned()),
        body: json!({"text": format!("{job} failed"), "n": 1}),
        created_at: t(at),
    }
}

fn attempt(at: i64, status: Option<u16>, outcome: AttemptOutcome) -> DeliveryAttempt {
    DeliveryAttempt {
        at: t(at),
        status,
        error: status.filter(|s| *s >= 300).map(|s| format!("HTTP {s}")),
        outcome,
    }
}

pub(crate) async fn each_key_is_enqueued_once(s: &dyn AlertStore) {
    assert!(s.alert_deliveries(&AlertQuery::new(10)).await.unwrap().is_empty());
    let got = s.enqueue_alerts(&[alert("a", "j", 0), alert("b", "j", 1), alert("a", "j", 2)]).await;
    assert_eq!(got.unwrap(), vec![true, true, false]);
    assert_eq!(s.enqueue_alerts(&[alert("b", "k", 3)]).await.unwrap(), vec![false]);
    let rows = s.alert_deliveries(&AlertQuery::new(10)).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.dedupe_key.as_str()).collect::<Vec<_>>(), ["b", "a"]);
    let a = &rows[1];
    assert_eq!(
        (a.alert.as_str(), a.event.as_str(), a.job_id.as_deref()),
        ("ops", "failure", Some("j"))
    );
    assert_eq!(a.body, json!({"text": "j failed", "n": 1}));
    assert_eq!((a.created_at, a.next_attempt_at, a.attempts), (t(0), Some(t(0)), 0));
    assert_eq!(a.state(), "pending");
}

pub(crate) async fn due_rows_follow_their_attempts(s: &dyn AlertStore) {
    s.enqueue_alerts(&[alert("a", "j", 0), alert("b", "j", 500), alert("c", "j", 2000)])
        .await
        .unwrap();
    let due = s.due_alerts(t(1000), 10).await.unwrap();
    assert_eq!(due.iter().map(|r| r.dedupe_key.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(s.due_alerts(t(1000), 1).await.unwrap().len(), 1);
    let (a, b) = (due[0].id, due[1].id);
    // a fails and waits; b is delivered.
    let failed = attempt(1000, Some(503), AttemptOutcome::RetryAt(t(5000)));
    assert!(s.record_delivery_attempt(a, &failed).await.unwrap());
    assert!(
        s.record_delivery_attempt(b, &attempt(1001, Some(204), AttemptOutcome::Delivered))
            .await
            .unwrap()
    );
    let due = s.due_alerts(t(4999), 10).await.unwrap();
    assert_eq!(due.iter().map(|r| r.dedupe_key.as_str()).collect::<Vec<_>>(), ["c"]);
    let due = s.due_alerts(t(5000), 10).await.unwrap();
    assert_eq!(due.iter().map(|r| r.dedupe_key.as_str()).collect::<Vec<_>>(), ["c", "a"]);
    let row = &due[1];
    assert_eq!(row.attempts, 1);
    assert_eq!((row.last_status, row.last_error.as_deref()), (Some(503), Some("HTTP 503")));
    assert_eq!((row.last_attempt_at, row.next_attempt_at), (Some(t(1000)), Some(t(5000))));
    // An error without a status, then giving up.
    let err = DeliveryAttempt {
        at: t(6000),
        status: None,
        error: Some("connection refused".into()),
        outcome: AttemptOutcome::GaveUp,
    };
    assert!(s.record_delivery_attempt(a, &err).await.unwrap());
    // Nothing is recorded on a finished row.
    assert!(!s.record_delivery_attempt(a, &err).await.unwrap());
    assert!(!s.record_delivery_attempt(b, &err).await.unwrap());
    assert!(!s.record_delivery_attempt(9999, &err).await.unwrap());
    let rows = s.alert_deliveries(&AlertQuery::new(10)).await.unwrap();
    let by_key = |k: &str| rows.iter().find(|r| r.dedupe_key == k).unwrap().clone();
    let a = by_key("a");
    assert_eq!((a.state(), a.attempts, a.last_status), ("failed", 2, None));
    assert_eq!((a.gave_up_at, a.next_attempt_at), (Some(t(6000)), None));
    assert_eq!(a.last_error.as_deref(), Some("connection refused"));
    let b = by_key("b");
    assert_eq!((b.state(), b.attempts, b.delivered_at), ("delivered", 1, Some(t(1001))));
    assert_eq!(b.last_error, None);
    assert_eq!(s.due_alerts(t(99_999), 10).await.unwrap().len(), 1);
}

pub(crate) async fn deliveries_page_newest_first_and_filter(s: &dyn AlertStore) {
    let mut batch = Vec::new();
    for i in 0..7 {
        let mut a = alert(&format!("k{i}"), if i % 2 == 0 { "even" } else { "odd" }, i);
        if i == 6 {
            a.alert = "other".into();
        }
        batch.push(a);
    }
    s.enqueue_alerts(&batch).await.unwrap();
    let page = s.alert_deliveries(&AlertQuery::new(3)).await.unwrap();
    assert_eq!(page.iter().map(|r| r.dedupe_key.as_str()).collect::<Vec<_>>(), ["k6", "k5", "k4"]);
    let next = AlertQuery { before_id: Some(page[2].id), ..AlertQuery::new(3) };
    let page = s.alert_deliveries(&next).await.unwrap();
    assert_eq!(page.iter().map(|r| r.dedupe_key.as_str()).collect::<Vec<_>>(), ["k3", "k2", "k1"]);
    let odd = AlertQuery { job_id: Some("odd".into()), ..AlertQuery::new(10) };
    assert_eq!(s.alert_deliveries(&odd).await.unwrap().len(), 3);
    let other = AlertQuery { alert: Some("other".into()), ..AlertQuery::new(10) };
    let rows = s.alert_deliveries(&other).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.dedupe_key.as_str()).collect::<Vec<_>>(), ["k6"]);
    assert_eq!(s.alert_deliveries(&AlertQuery::new(5_000)).await.unwrap().len(), 7);
}

pub(crate) async fn prune_deletes_finished_rows_only(s: &dyn AlertStore) {
    s.enqueue_alerts(&[
        alert("old-done", "j", 0),
        alert("old-pending", "j", 1),
        alert("new", "j", 5000),
    ])
    .await
    .unwrap();
    let rows = s.alert_deliveries(&AlertQuery::new(10)).await.unwrap();
    for r in &rows {
        if r.dedupe_key != "old-pending" {
            s.record_delivery_attempt(r.id, &attempt(6000, Some(200), AttemptOutcome::Delivered))
                .await
                .unwrap();
        }
    }
    assert_eq!(s.prune_alerts(t(1000)).await.unwrap(), 1);
    let left = s.alert_deliveries(&AlertQuery::new(10)).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.dedupe_key.as_str()).collect::<Vec<_>>(),
        ["new", "old-pending"]
    );
}

pub(crate) async fn streaks_count_failures_once_per_fire(s: &dyn AlertStore) {
    let st = s.record_run_outcome("j", "f1", false, t(0)).await.unwrap();
    assert_eq!((st.failures_in_a_row, st.previous, st.counted), (1, 0, true));
    // The same fire again (another instance): not counted.
    let st = s.record_run_outcome("j", "f1", false, t(1)).await.unwrap();
    assert_eq!((st.failures_in_a_row, st.previous, st.counted), (1, 1, false));
    let st = s.record_run_outcome("j", "f2", false, t(2)).await.unwrap();
    assert_eq!((st.failures_in_a_row, st.previous), (2, 1));
    // Another job has its own count.
    assert_eq!(s.record_run_outcome("k", "f2", true, t(2)).await.unwrap().failures_in_a_row, 0);
    let st = s.record_run_outcome("j", "f3", true, t(3)).await.unwrap();
    assert_eq!((st.failures_in_a_row, st.previous, st.counted), (0, 2, true));
    let st = s.record_run_outcome("j", "f4", true, t(4)).await.unwrap();
    assert_eq!((st.failures_in_a_row, st.previous), (0, 0));
}

pub(crate) async fn a_lease_has_one_holder_until_it_expires(s: &dyn AlertStore) {
    assert!(s.take_alert_lease("alerts", "i1", t(0), t(30_000)).await.unwrap());
    assert!(!s.take_alert_lease("alerts", "i2", t(1000), t(31_000)).await.unwrap());
    // Renewed by its holder.
    assert!(s.take_alert_lease("alerts", "i1", t(20_000), t(50_000)).await.unwrap());
    assert!(!s.take_alert_lease("alerts", "i2", t(40_000), t(70_000)).await.unwrap());
    // Another name is another lease.
    assert!(s.take_alert_lease("other", "i2", t(40_000), t(70_000)).await.unwrap());
    // Expired: taken over.
    assert!(s.take_alert_lease("alerts", "i2", t(50_000), t(80_000)).await.unwrap());
    assert!(!s.take_alert_lease("alerts", "i1", t(60_000), t(90_000)).await.unwrap());
}

pub(crate) async fn bad_values_are_rejected(s: &dyn AlertStore) {
    let far = chrono::DateTime::<chrono::Utc>::MAX_UTC;
    let mut a = alert("a", "j", 0);
    a.created_at = far;
    let e = s.enqueue_alerts(&[alert("ok", "j", 0), a]).await.unwrap_err();
    assert!(matches!(e, StoreError::Rejected { .. }), "{e}");
    assert!(e.to_string().contains("created_at"), "{e}");
    // Nothing of the batch was written.
    assert!(s.alert_deliveries(&AlertQuery::new(10)).await.unwrap().is_empty());
    let e = s.take_alert_lease("alerts", "i1", t(0), far).await.unwrap_err();
    assert!(matches!(e, StoreError::Rejected { .. }), "{e}");
}

/// Two instances see the same failure: each key enqueued once, the fire
/// counted once, the lease held by one.
pub(crate) async fn racing_instances_enqueue_and_count_once(
    a: Arc<dyn AlertStore>,
    b: Arc<dyn AlertStore>,
) {
    let mut tasks = Vec::new();
    for (i, s) in [a.clone(), b.clone(), a.clone(), b.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let batch: Vec<NewAlert> =
                (0..20).map(|k| alert(&format!("key-{k}"), "j", k)).collect();
            let inserted = s.enqueue_alerts(&batch).await.unwrap();
            let streak = s.record_run_outcome("j", "fire-1", false, t(0)).await.unwrap();
            let lease = s.take_alert_lease("alerts", &format!("i{i}"), t(0), t(30_000)).await;
            (inserted.iter().filter(|x| **x).count(), streak.counted, lease.unwrap())
        }));
    }
    let mut inserted = 0;
    let mut counted = 0;
    let mut leases = 0;
    for t in tasks {
        let (n, c, l) = t.await.unwrap();
        inserted += n;
        counted += usize::from(c);
        leases += usize::from(l);
    }
    assert_eq!((inserted, counted, leases), (20, 1, 1));
    assert_eq!(b.alert_deliveries(&AlertQuery::new(100)).await.unwrap().len(), 20);
    let st = b.record_run_outcome("j", "fire-2", false, t(1)).await.unwrap();
    assert_eq!(st.failures_in_a_row, 2);
}
