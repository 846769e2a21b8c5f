//! The conformance cases of [`ControlStore`], for the SQL stores (the
//! engine's memory store keeps no control state): definitions, pause state,
//! triggers, cancel requests, the audit log and pruning on one handle, and
//! on two handles of one database (two instances): triggers taken once when
//! they race, pauses and cancels seen from the other side.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use mscribe_scheduler::{ExecutionStore, FireClaim, FireKind, StoreError};
use mscribe_storage::{
    AuditAction, AuditEntry, AuditQuery, BackfillLock, BackfillLockOutcome, ControlStore,
    JobDefinition, MAX_TAKE, NewCancel, NewTrigger, PauseChange, Source, TRIGGER_RETAKE_AFTER,
    TRIGGER_RETAKE_WINDOW,
};
use serde_json::json;

use crate::common::*;

fn def(job: &str, schedule: Option<&str>, at: i64) -> JobDefinition {
    JobDefinition {
        job_id: job.to_owned(),
        name: format!("The {job} job"),
        schedule: schedule.map(str::to_owned),
        timezone: schedule.map(|_| "Europe/Paris".to_owned()),
        kind: "ops:backup".to_owned(),
        policies: json!({"overlap": "skip", "timeout_ms": 60000, "retry": {"max_attempts": 3}}),
        source: Source::Config,
        registered_by: "i1".to_owned(),
        updated_at: t(at),
    }
}

fn pause(paused: bool, note: Option<&str>, instance: &str, at: i64) -> PauseChange {
    PauseChange {
        paused,
        note: note.map(str::to_owned),
        source: Source::Api,
        instance_id: instance.to_owned(),
        at: t(at),
    }
}

fn trigger(job: &str, instance: &str, at: i64) -> NewTrigger {
    NewTrigger {
        job_id: job.to_owned(),
        note: None,
        source: Source::Cli,
        instance_id: instance.to_owned(),
        at: t(at),
        take: false,
    }
}

fn cancel(exec: &str, instance: &str, at: i64) -> NewCancel {
    NewCancel {
        execution_id: exec.to_owned(),
        job_id: Some("j".to_owned()),
        note: Some("stuck".to_owned()),
        source: Source::Api,
        instance_id: instance.to_owned(),
        at: t(at),
    }
}

fn far() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap()
}

pub(crate) async fn empty_store_has_no_control_state(c: &dyn ControlStore) {
    assert!(c.definitions().await.unwrap().is_empty());
    assert!(c.pause_states().await.unwrap().is_empty());
    assert_eq!(c.pause_state("j").await.unwrap(), None);
    assert!(c.take_triggers("i1", &["j".to_owned()], t(0)).await.unwrap().is_empty());
    assert!(c.take_triggers("i1", &[], t(0)).await.unwrap().is_empty());
    assert_eq!(c.trigger_request(1).await.unwrap(), None);
    assert!(!c.finish_trigger(1, None, "started", t(0)).await.unwrap());
    assert!(c.pending_cancels().await.unwrap().is_empty());
    assert_eq!(c.cancel_request(1).await.unwrap(), None);
    assert!(!c.finish_cancel(1, "i1", "cancelled", t(0)).await.unwrap());
    assert!(c.audit(&AuditQuery::new(10)).await.unwrap().is_empty());
    assert_eq!(c.prune_control(DateTime::<Utc>::MAX_UTC).await.unwrap(), 0);
    c.upsert_definitions(&[]).await.unwrap();
    assert!(c.definitions().await.unwrap().is_empty());
}

/// Definitions are keyed by job id: the last registration wins, every
/// field round-trips (JSON as a value, times to the microsecond).
pub(crate) async fn definitions_upsert_by_job(c: &dyn ControlStore) {
    let mut a = def("a", Some("30 3 * * *"), 0);
    a.updated_at += chrono::Duration::nanoseconds(1_500);
    let b = def("b", None, 0);
    c.upsert_definitions(&[b.clone(), a.clone()]).await.unwrap();
    a.updated_at = t(0) + chrono::Duration::microseconds(1);
    assert_eq!(c.definitions().await.unwrap(), vec![a.clone(), b.clone()]);

    let mut a2 = def("a", Some("@every 5m"), 1000);
    a2.kind = "rust".to_owned();
    a2.source = Source::Code;
    a2.registered_by = "i2".to_owned();
    a2.policies = json!({"overlap": "queue", "nested": {"k": [1, 2, null]}, "text": "é\n"});
    c.upsert_definitions(std::slice::from_ref(&a2)).await.unwrap();
    assert_eq!(c.definitions().await.unwrap(), vec![a2, b]);
}

/// A job defined through the API: written with its audit row, replaced
/// by the next definition of its id; deleted with its pause and an audit
/// row; a configured job's definition is never deleted that way.
pub(crate) async fn api_definitions_are_put_and_deleted_with_audit(c: &dyn ControlStore) {
    let audit = |action: AuditAction, job: &str, at: i64| AuditEntry {
        at: t(at),
        action,
        job_id: Some(job.to_owned()),
        execution_id: None,
        note: None,
        source: Source::Api,
        instance_id: "i1".to_owned(),
        detail: None,
    };
    let mut mine = def("mine", Some("@every 5m"), 10);
    mine.source = Source::Api;
    mine.kind = "http".to_owned();
    mine.policies = json!({"definition": {"kind": "http", "url": "http://example.test/"}});
    c.put_definition(&mine, &audit(AuditAction::Define, "mine", 10)).await.unwrap();
    let mut again = mine.clone();
    again.schedule = Some("@every 1m".to_owned());
    again.updated_at = t(20);
    c.put_definition(&again, &audit(AuditAction::Define, "mine", 20)).await.unwrap();
    c.upsert_definitions(&[def("configured", None, 0)]).await.unwrap();
    assert_eq!(c.definitions().await.unwrap(), vec![def("configured", None, 0), again]);
    c.set_paused("mine", &pause(true, Some("hold"), "i1", 30)).await.unwrap();

    let del = |job: &'static str, at| {
        let entry = audit(AuditAction::Delete, job, at);
        async move { c.delete_definition(job, &entry).await }
    };
    assert!(!del("configured", 40).await.unwrap());
    assert!(!del("nobody", 40).await.unwrap());
    assert!(del("mine", 40).await.unwrap());
    assert!(!del("mine", 50).await.unwrap());
    assert_eq!(c.definitions().await.unwrap(), vec![def("configured", None, 0)]);
    assert_eq!(c.pause_state("mine").await.unwrap(), None);
    let actions: Vec<String> = c
        .audit(&AuditQuery::new(10))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.entry.action.as_str().to_owned())
        .collect();
    assert_eq!(actions, ["delete", "pause", "define", "define"]);
}

/// A configuration's listing of a job never replaces a definition made
/// through the API or the CLI under the same id: the instance whose
/// configuration has that job runs its own, and the others keep the
/// stored one. The rest of the batch is written.
pub(crate) async fn a_listing_never_replaces_a_definition_made_through_the_api(
    c: &dyn ControlStore,
) {
    let audit = AuditEntry {
        at: t(10),
        action: AuditAction::Define,
        job_id: Some("shared".to_owned()),
        execution_id: None,
        note: None,
        source: Source::Cli,
        instance_id: "i1".to_owned(),
        detail: None,
    };
    let mut api = def("shared", Some("@every 1h"), 10);
    api.source = Source::Cli;
    api.kind = "http".to_owned();
    api.policies = json!({"definition": {"kind": "http", "url": "http://example.test/"}});
    c.put_definition(&api, &audit).await.unwrap();
    c.upsert_definitions(&[def("shared", Some("@every 2h"), 20), def("other", None, 20)])
        .await
        .unwrap();
    assert_eq!(c.definitions().await.unwrap(), vec![def("other", None, 20), api.clone()]);
    // The API may still replace its own.
    let mut again = api.clone();
    again.source = Source::Api;
    again.updated_at = t(30);
    c.put_definition(&again, &audit).await.unwrap();
    assert_eq!(c.definitions().await.unwrap(), vec![def("other", None, 20), again]);
}

/// A bad definition writes nothing of its batch.
pub(crate) async fn a_bad_definition_writes_nothing(c: &dyn ControlStore) {
    let mut bad = def("bad", None, 0);
    bad.updated_at = far();
    let e = c.upsert_definitions(&[def("ok", None, 0), bad]).await.unwrap_err();
    assert!(matches!(e, StoreError::Rejected { .. }), "{e}");
    assert!(c.definitions().await.unwrap().is_empty());
}

/// A pause, a second pause and a resume: the row takes each change with a
/// growing version, only paused jobs are listed, and each change has its
/// audit row.
pub(crate) async fn pause_and_resume_with_audit(c: &dyn ControlStore) {
    let s = c.set_paused("j", &pause(true, Some("deploy"), "i1", 100)).await.unwrap();
    assert_eq!((s.paused, s.version, s.note.as_deref()), (true, 1, Some("deploy")));
    assert_eq!(c.pause_states().await.unwrap(), vec![s.clone()]);
    assert_eq!(c.pause_state("j").await.unwrap(), Some(s));
    c.set_paused("k", &pause(true, None, "i2", 150)).await.unwrap();
    let s = c.set_paused("j", &pause(true, Some("still"), "i2", 200)).await.unwrap();
    assert_eq!(s.version, 2);
    let r = c.set_paused("j", &pause(false, None, "i1", 300)).await.unwrap();
    assert_eq!((r.paused, r.version, r.changed_at), (false, 3, t(300)));
    assert_eq!(c.pause_state("j").await.unwrap(), Some(r));
    let paused = c.pause_states().await.unwrap();
    assert_eq!(paused.iter().map(|p| p.job_id.as_str()).collect::<Vec<_>>(), ["k"]);
    assert_eq!(paused[0].instance_id, "i2");
    assert_eq!(paused[0].source, Source::Api);

    let audit = c.audit(&AuditQuery::new(10).job("j")).await.unwrap();
    let got: Vec<_> = audit
        .iter()
        .map(|r| (r.entry.action.clone(), r.entry.note.clone(), r.entry.detail.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (AuditAction::Resume, None, Some(json!({"version": 3}))),
            (AuditAction::Pause, Some("still".to_owned()), Some(json!({"version": 2}))),
            (AuditAction::Pause, Some("deploy".to_owned()), Some(json!({"version": 1}))),
        ]
    );
    assert_eq!(audit[0].entry.at, t(300));
    assert_eq!(audit[0].entry.instance_id, "i1");
    assert_eq!(audit[0].entry.source, Source::Api);
    assert!(audit[0].id > audit[1].id);
}

/// Notes of any length and content are stored in full, everywhere.
pub(crate) async fn notes_are_kept_in_full(c: &dyn ControlStore) {
    let note: String = "é\u{1F600}\n'\"\\;-- ".repeat(500);
    assert!(note.chars().count() > 4000);
    c.set_paused("j", &pause(true, Some(&note), "i1", 0)).await.unwrap();
    let mut tr = trigger("j", "i1", 10);
    tr.note = Some(note.clone());
    let tid = c.request_trigger(&tr).await.unwrap();
    let mut cr = cancel("e1", "i1", 20);
    cr.note = Some(note.clone());
    let cid = c.request_cancel(&cr).await.unwrap();
    assert_eq!(c.pause_state("j").await.unwrap().unwrap().note.as_ref(), Some(&note));
    assert_eq!(c.trigger_request(tid).await.unwrap().unwrap().note.as_ref(), Some(&note));
    assert_eq!(c.cancel_request(cid).await.unwrap().unwrap().note.as_ref(), Some(&note));
    let audit = c.audit(&AuditQuery::new(10)).await.unwrap();
    assert_eq!(audit.len(), 3);
    assert!(audit.iter().all(|r| r.entry.note.as_ref() == Some(&note)));
}

/// `running_job` names the job of a run while an attempt of it is
/// `running`, and nothing for a run that ended or was never recorded.
pub(crate) async fn running_job_finds_only_a_running_run(
    c: &dyn ControlStore,
    s: &dyn ExecutionStore,
) {
    use mscribe_scheduler::{ExecutionEvent, ExecutionStatus};
    s.write(&[start("a", 1, 1, 100, "i1"), start("b", 2, 1, 100, "i1")]).await.unwrap();
    let ended = end_with("b", 2, 1, 100, "i1", ExecutionStatus::Succeeded, 10);
    s.write(&[ExecutionEvent::Finished(ended)]).await.unwrap();
    assert_eq!(c.running_job(&eid(1).to_string()).await.unwrap().as_deref(), Some("a"));
    assert_eq!(c.running_job(&eid(2).to_string()).await.unwrap(), None);
    assert_eq!(c.running_job(&eid(3).to_string()).await.unwrap(), None);
}

/// Pending triggers are taken oldest first, once, only for the jobs
/// asked; a trigger recorded as taken is never offered; finishing records
/// the run.
pub(crate) async fn triggers_are_taken_once_oldest_first(c: &dyn ControlStore) {
    let ids = [
        c.request_trigger(&trigger("a", "i9", 100)).await.unwrap(),
        c.request_trigger(&trigger("b", "i9", 110)).await.unwrap(),
        c.request_trigger(&trigger("a", "i9", 120)).await.unwrap(),
    ];
    assert!(ids[0] < ids[1] && ids[1] < ids[2]);
    let mut own = trigger("a", "i1", 130);
    own.take = true;
    let own_id = c.request_trigger(&own).await.unwrap();

    let taken = c.take_triggers("i1", &["a".to_owned(), "z".to_owned()], t(200)).await.unwrap();
    assert_eq!(taken.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[0], ids[2]]);
    assert!(
        taken.iter().all(|r| r.taken_by.as_deref() == Some("i1") && r.taken_at == Some(t(200)))
    );
    assert_eq!(taken[0].requested_at, t(100));
    assert_eq!(taken[0].requested_by, "i9");
    assert_eq!(taken[0].source, Source::Cli);
    assert!(c.take_triggers("i2", &["a".to_owned()], t(300)).await.unwrap().is_empty());
    let b = c.take_triggers("i2", &["a".to_owned(), "b".to_owned()], t(300)).await.unwrap();
    assert_eq!(
        b.iter().map(|r| (r.id, r.taken_by.as_deref())).collect::<Vec<_>>(),
        [(ids[1], Some("i2"))]
    );

    let r = c.trigger_request(own_id).await.unwrap().unwrap();
    assert_eq!((r.taken_by.as_deref(), r.taken_at), (Some("i1"), Some(t(130))));
    assert!(c.finish_trigger(own_id, Some("exec-1"), "started", t(140)).await.unwrap());
    let r = c.trigger_request(own_id).await.unwrap().unwrap();
    assert_eq!(r.execution_id.as_deref(), Some("exec-1"));
    assert_eq!(r.outcome.as_deref(), Some("started"));
    assert_eq!(r.finished_at, Some(t(140)));
    assert!(c.finish_trigger(ids[1], None, "skipped", t(310)).await.unwrap());
    let r = c.trigger_request(ids[1]).await.unwrap().unwrap();
    assert_eq!((r.execution_id, r.outcome.as_deref()), (None, Some("skipped")));

    let audit = c.audit(&AuditQuery::new(10)).await.unwrap();
    assert_eq!(audit.len(), 4);
    assert!(audit.iter().all(|r| r.entry.action == AuditAction::Trigger));
    assert_eq!(audit[0].entry.detail, Some(json!({"trigger_id": own_id})));
    assert_eq!(audit[0].entry.job_id.as_deref(), Some("a"));
}

/// One call takes at most `MAX_TAKE` triggers.
/// A trigger taken by an instance that died before its fire (the job at
/// the trigger's `requested_at`) was claimed is taken again once
/// `TRIGGER_RETAKE_AFTER` has passed, as often as that goes on, and while
/// it is finished only as `pending`; one whose fire was claimed, or that
/// finished otherwise, is not; nor one taken longer ago than
/// `TRIGGER_RETAKE_WINDOW`.
pub(crate) async fn a_trigger_taken_and_never_claimed_is_taken_again(
    c: &dyn ControlStore,
    s: &dyn ExecutionStore,
) {
    let after = TRIGGER_RETAKE_AFTER.as_millis() as i64;
    let window = TRIGGER_RETAKE_WINDOW.as_millis() as i64;
    let now = 10 * window;
    let mut ids = Vec::new();
    for at in [now - 3, now - 2, now - 1] {
        ids.push(c.request_trigger(&trigger("a", "i9", at)).await.unwrap());
    }
    let take = |who: &'static str, at: i64| async move {
        let got = c.take_triggers(who, &["a".to_owned()], t(at)).await.unwrap();
        got.into_iter()
            .map(|r| (r.id, r.taken_by.unwrap(), r.taken_at.unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(take("i1", now).await.len(), 3);
    // i1 claimed the second trigger's fire, and ran the third unclaimed.
    let claimed = FireClaim { kind: FireKind::Manual, ..fire("a", now - 2) };
    s.claim_fires("i1", &[claimed], t(now), LEASE).await.unwrap();
    assert!(c.finish_trigger(ids[2], Some("e3"), "started", t(now)).await.unwrap());

    assert_eq!(take("i2", now + after - 1).await, []);
    assert_eq!(take("i2", now + after).await, [(ids[0], "i2".to_owned(), t(now + after))]);
    // Its new taker may die too; finished as pending, it is not settled.
    assert!(c.finish_trigger(ids[0], Some("e1"), "pending", t(now + after)).await.unwrap());
    assert_eq!(take("i3", 2 * after + now - 1).await, []);
    assert_eq!(take("i3", 2 * after + now).await, [(ids[0], "i3".to_owned(), t(now + 2 * after))]);
    // Claimed at last: settled.
    let claimed = FireClaim { kind: FireKind::Manual, ..fire("a", now - 3) };
    s.claim_fires("i3", &[claimed], t(now + 2 * after), LEASE).await.unwrap();
    assert_eq!(take("i4", now + 4 * after).await, []);

    // Past the window, a trigger is never taken again.
    let late = c.request_trigger(&trigger("a", "i9", now + 5 * after)).await.unwrap();
    assert_eq!(take("i5", now + 5 * after).await.len(), 1);
    assert_eq!(take("i6", now + 5 * after + window).await, []);
    assert_eq!(c.trigger_request(late).await.unwrap().unwrap().taken_by.as_deref(), Some("i5"));
}

/// A backfill lock has one holder per job until it is given back or runs
/// out; renewing extends it, and a holder whose lock was taken can neither
/// renew nor give it back.
pub(crate) async fn backfill_locks_admit_one_holder_until_they_run_out(c: &dyn ControlStore) {
    let ttl = std::time::Duration::from_secs(10);
    let lock =
        |job: &'static str, who: &'static str, at: i64| c.lock_backfill(job, who, t(at), ttl);
    assert_eq!(lock("a", "h1", 0).await.unwrap(), BackfillLockOutcome::Acquired);
    let held = BackfillLock {
        job_id: "a".to_owned(),
        holder: "h1".to_owned(),
        acquired_at: t(0),
        expires_at: t(10_000),
    };
    assert_eq!(lock("a", "h2", 5_000).await.unwrap(), BackfillLockOutcome::Held(held.clone()));
    assert_eq!(lock("b", "h2", 5_000).await.unwrap(), BackfillLockOutcome::Acquired);
    assert!(!c.renew_backfill("a", "h2", t(8_000), ttl).await.unwrap());
    assert!(c.renew_backfill("a", "h1", t(8_000), ttl).await.unwrap());
    let renewed = BackfillLock { expires_at: t(18_000), ..held };
    assert_eq!(lock("a", "h2", 12_000).await.unwrap(), BackfillLockOutcome::Held(renewed));
    // Run out (at its expiry exactly): the next caller takes it.
    assert_eq!(lock("a", "h2", 18_000).await.unwrap(), BackfillLockOutcome::Acquired);
    assert!(!c.renew_backfill("a", "h1", t(19_000), ttl).await.unwrap());
    assert!(!c.unlock_backfill("a", "h1").await.unwrap());
    assert!(c.unlock_backfill("a", "h2").await.unwrap());
    assert_eq!(lock("a", "h3", 19_000).await.unwrap(), BackfillLockOutcome::Acquired);
}

pub(crate) async fn taking_is_capped(c: &dyn ControlStore) {
    for i in 0..(MAX_TAKE as i64 + 20) {
        c.request_trigger(&trigger("j", "i1", i)).await.unwrap();
    }
    let jobs = ["j".to_owned()];
    assert_eq!(c.take_triggers("i1", &jobs, t(0)).await.unwrap().len(), MAX_TAKE);
    assert_eq!(c.take_triggers("i1", &jobs, t(0)).await.unwrap().len(), 20);
}

/// A cancel request is pending until handled, and handled once.
pub(crate) async fn cancels_are_handled_once(c: &dyn ControlStore) {
    let a = c.request_cancel(&cancel("e1", "i1", 100)).await.unwrap();
    let b = c.request_cancel(&cancel("e2", "i2", 110)).await.unwrap();
    let pending = c.pending_cancels().await.unwrap();
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(pending[0].execution_id, "e1");
    assert_eq!(pending[0].requested_at, t(100));
    assert_eq!(pending[0].requested_by, "i1");
    assert_eq!(pending[0].note.as_deref(), Some("stuck"));
    assert_eq!(pending[0].handled_by, None);

    assert!(c.finish_cancel(a, "i3", "cancelled", t(200)).await.unwrap());
    assert!(!c.finish_cancel(a, "i4", "too late", t(300)).await.unwrap());
    let r = c.cancel_request(a).await.unwrap().unwrap();
    assert_eq!(
        (r.handled_by.as_deref(), r.handled_at, r.outcome.as_deref()),
        (Some("i3"), Some(t(200)), Some("cancelled"))
    );
    assert_eq!(c.pending_cancels().await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [b]);

    let audit = c.audit(&AuditQuery::new(10)).await.unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1].entry.action, AuditAction::Cancel);
    assert_eq!(audit[1].entry.execution_id.as_deref(), Some("e1"));
    assert_eq!(audit[1].entry.job_id.as_deref(), Some("j"));
    assert_eq!(audit[1].entry.detail, Some(json!({"cancel_id": a})));
}

/// The audit log pages newest first by id, per job or for all.
pub(crate) async fn audit_pages_newest_first(c: &dyn ControlStore) {
    let mut want = Vec::new();
    for i in 0..25i64 {
        let e = AuditEntry {
            at: t(i * 10),
            action: if i % 5 == 0 {
                AuditAction::Other("later".into())
            } else {
                AuditAction::Backfill
            },
            job_id: (i % 3 != 0).then(|| ["x", "y"][(i % 2) as usize].to_owned()),
            execution_id: None,
            note: Some(format!("n{i}")),
            source: Source::System,
            instance_id: "i1".to_owned(),
            detail: (i % 2 == 0).then(|| json!({"from": "2026-01-01", "fires": i})),
        };
        want.push((c.record_audit(&e).await.unwrap(), e));
    }
    want.reverse();
    let mut got = Vec::new();
    let mut q = AuditQuery::new(10);
    loop {
        let page = c.audit(&q).await.unwrap();
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        q = q.before(last.id);
        got.extend(page);
    }
    assert_eq!(got.iter().map(|r| (r.id, r.entry.clone())).collect::<Vec<_>>(), want);
    let x = c.audit(&AuditQuery::new(1000).job("x")).await.unwrap();
    let want_x: Vec<i64> =
        want.iter().filter(|(_, e)| e.job_id.as_deref() == Some("x")).map(|(id, _)| *id).collect();
    assert_eq!(x.iter().map(|r| r.id).collect::<Vec<_>>(), want_x);
    assert!(c.audit(&AuditQuery::new(0)).await.unwrap().is_empty());
    assert_eq!(c.audit(&AuditQuery::new(usize::MAX)).await.unwrap().len(), 25);
}

/// Pruning deletes the triggers and cancels requested before the cutoff,
/// but never the newest of each (ids keep increasing); the audit log stays.
pub(crate) async fn prune_keeps_the_newest_and_the_audit(c: &dyn ControlStore) {
    let t1 = c.request_trigger(&trigger("j", "i1", 0)).await.unwrap();
    let c1 = c.request_cancel(&cancel("e1", "i1", 0)).await.unwrap();
    assert_eq!(c.prune_control(t(500)).await.unwrap(), 0, "the newest are kept");
    let t2 = c.request_trigger(&trigger("j", "i1", 1000)).await.unwrap();
    let t3 = c.request_trigger(&trigger("j", "i1", 2000)).await.unwrap();
    let c2 = c.request_cancel(&cancel("e2", "i1", 2000)).await.unwrap();
    assert_eq!(c.prune_control(t(1500)).await.unwrap(), 3);
    assert_eq!(c.trigger_request(t1).await.unwrap(), None);
    assert_eq!(c.trigger_request(t2).await.unwrap(), None);
    assert!(c.trigger_request(t3).await.unwrap().is_some());
    assert_eq!(c.cancel_request(c1).await.unwrap(), None);
    assert!(c.cancel_request(c2).await.unwrap().is_some());
    assert_eq!(c.prune_control(DateTime::<Utc>::MAX_UTC).await.unwrap(), 0);
    let t4 = c.request_trigger(&trigger("j", "i1", 3000)).await.unwrap();
    assert!(t4 > t3);
    assert_eq!(c.audit(&AuditQuery::new(100)).await.unwrap().len(), 6);
}

/// Pruning the audit log deletes the rows from before the cutoff, never the
/// newest by id (even one whose time is old: ids keep increasing), and
/// leaves triggers and cancel requests alone.
pub(crate) async fn prune_audit_keeps_the_newest_and_the_requests(c: &dyn ControlStore) {
    let entry = |at: i64, note: &str| AuditEntry {
        at: t(at),
        action: AuditAction::Backfill,
        job_id: Some("j".to_owned()),
        execution_id: None,
        note: Some(note.to_owned()),
        source: Source::Api,
        instance_id: "i1".to_owned(),
        detail: None,
    };
    assert_eq!(c.prune_audit(DateTime::<Utc>::MAX_UTC).await.unwrap(), 0, "empty");
    let tr = c.request_trigger(&trigger("j", "i1", 0)).await.unwrap();
    let ca = c.request_cancel(&cancel("e1", "i1", 0)).await.unwrap();
    let before = c.audit(&AuditQuery::new(100)).await.unwrap().len();
    assert_eq!(before, 2, "a trigger and a cancel are audited");
    let mut ids = Vec::new();
    for (at, note) in [(100, "a"), (200, "b"), (300, "c"), (400, "d")] {
        ids.push(c.record_audit(&entry(at, note)).await.unwrap());
    }
    // The trigger's and cancel's rows (at 0) and a, b go.
    assert_eq!(c.prune_audit(t(250)).await.unwrap(), 4);
    let notes = |rows: Vec<mscribe_storage::AuditRecord>| -> Vec<String> {
        rows.into_iter().map(|r| r.entry.note.unwrap_or_default()).collect()
    };
    assert_eq!(notes(c.audit(&AuditQuery::new(100)).await.unwrap()), ["d", "c"]);
    assert_eq!(c.prune_audit(t(250)).await.unwrap(), 0, "idempotent");
    // A row written late with an old time is the newest: kept.
    let late = c.record_audit(&entry(50, "late")).await.unwrap();
    assert!(late > ids[3]);
    assert_eq!(c.prune_audit(DateTime::<Utc>::MAX_UTC).await.unwrap(), 2);
    assert_eq!(notes(c.audit(&AuditQuery::new(100)).await.unwrap()), ["late"]);
    assert_eq!(c.prune_audit(DateTime::<Utc>::MAX_UTC).await.unwrap(), 0);
    assert!(c.record_audit(&entry(60, "next")).await.unwrap() > late, "ids keep increasing");
    // The requests themselves stay.
    assert!(c.trigger_request(tr).await.unwrap().is_some());
    assert!(c.cancel_request(ca).await.unwrap().is_some());
    assert_eq!(c.prune_audit(DateTime::<Utc>::MIN_UTC).await.unwrap(), 0);
}

/// A time the database cannot hold is refused, and nothing is written.
pub(crate) async fn bad_times_are_rejected(c: &dyn ControlStore) {
    let mut p = pause(true, None, "i1", 0);
    p.at = far();
    assert!(matches!(c.set_paused("j", &p).await, Err(StoreError::Rejected { .. })));
    let mut tr = trigger("j", "i1", 0);
    tr.at = far();
    assert!(matches!(c.request_trigger(&tr).await, Err(StoreError::Rejected { .. })));
    let mut cr = cancel("e", "i1", 0);
    cr.at = DateTime::<Utc>::MIN_UTC;
    assert!(matches!(c.request_cancel(&cr).await, Err(StoreError::Rejected { .. })));
    assert_eq!(c.pause_state("j").await.unwrap(), None);
    assert!(c.take_triggers("i1", &["j".to_owned()], t(0)).await.unwrap().is_empty());
    assert!(c.pending_cancels().await.unwrap().is_empty());
    assert!(c.audit(&AuditQuery::new(10)).await.unwrap().is_empty());
}

// ------------------------------------------------------------ two handles

/// Eight tasks, half on each handle, take the triggers of three jobs while
/// they are requested, over many rounds: each trigger is taken by exactly
/// one call, and the row names its taker.
/// Two instances asking for one job's backfill lock at once: one gets it.
pub(crate) async fn racing_instances_get_one_backfill_lock(
    a: Arc<dyn ControlStore>,
    b: Arc<dyn ControlStore>,
) {
    let ttl = std::time::Duration::from_secs(10);
    for round in 0..20i64 {
        let job = format!("job{round}");
        let tasks: Vec<_> = [(a.clone(), "ha"), (b.clone(), "hb"), (a.clone(), "hc")]
            .into_iter()
            .map(|(s, who)| {
                let job = job.clone();
                tokio::spawn(
                    async move { s.lock_backfill(&job, who, t(round), ttl).await.unwrap() },
                )
            })
            .collect();
        let mut acquired = 0;
        for task in tasks {
            if task.await.unwrap() == BackfillLockOutcome::Acquired {
                acquired += 1;
            }
        }
        assert_eq!(acquired, 1, "round {round}");
    }
}

pub(crate) async fn racing_instances_take_each_trigger_once(
    a: Arc<dyn ControlStore>,
    b: Arc<dyn ControlStore>,
) {
    let jobs: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
    for round in 0..20i64 {
        let mut requested = Vec::new();
        for i in 0..15i64 {
            let s = if i % 2 == 0 { &a } else { &b };
            let job = &jobs[(i % 3) as usize];
            requested.push(s.request_trigger(&trigger(job, "req", round * 100 + i)).await.unwrap());
        }
        let mut tasks = Vec::new();
        for k in 0..8usize {
            let s = if k % 2 == 0 { a.clone() } else { b.clone() };
            let mine: Vec<String> = if k < 4 { jobs.clone() } else { jobs[k % 3..].to_vec() };
            tasks.push(tokio::spawn(async move {
                let me = format!("i{k}");
                let mut got = Vec::new();
                for _ in 0..3 {
                    for r in s.take_triggers(&me, &mine, t(round)).await.unwrap() {
                        assert_eq!(r.taken_by.as_deref(), Some(me.as_str()));
                        got.push((r.id, me.clone()));
                    }
                    tokio::task::yield_now().await;
                }
                got
            }));
        }
        let mut taken: HashMap<i64, String> = HashMap::new();
        for task in tasks {
            for (id, who) in task.await.unwrap() {
                assert!(taken.insert(id, who).is_none(), "trigger {id} taken twice");
            }
        }
        // Whatever the racers left (none, usually) is taken now, once.
        for r in a.take_triggers("late", &jobs, t(round)).await.unwrap() {
            assert!(taken.insert(r.id, "late".to_owned()).is_none());
        }
        let mut ids: Vec<i64> = taken.keys().copied().collect();
        ids.sort();
        requested.sort();
        assert_eq!(ids, requested, "round {round}: every trigger taken exactly once");
        for (id, who) in &taken {
            let row = b.trigger_request(*id).await.unwrap().unwrap();
            assert_eq!(row.taken_by.as_ref(), Some(who));
        }
    }
}

/// A pause made through one handle is what the other reads, and the
/// versions continue across handles.
pub(crate) async fn pause_is_visible_from_the_other_handle(
    a: Arc<dyn ControlStore>,
    b: Arc<dyn ControlStore>,
) {
    a.set_paused("j", &pause(true, Some("from a"), "ia", 0)).await.unwrap();
    let seen = b.pause_states().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].job_id.as_str(), seen[0].note.as_deref()), ("j", Some("from a")));
    let r = b.set_paused("j", &pause(false, None, "ib", 10)).await.unwrap();
    assert_eq!(r.version, 2);
    assert!(a.pause_states().await.unwrap().is_empty());
    assert_eq!(a.pause_state("j").await.unwrap().unwrap().instance_id, "ib");
    assert_eq!(a.audit(&AuditQuery::new(10)).await.unwrap().len(), 2);
}

/// A cancel request made through one handle is handled once, though both
/// handles race to close it.
pub(crate) async fn a_cancel_is_handled_once_across_handles(
    a: Arc<dyn ControlStore>,
    b: Arc<dyn ControlStore>,
) {
    for i in 0..20i64 {
        let id = a.request_cancel(&cancel(&format!("e{i}"), "ia", i)).await.unwrap();
        assert!(b.pending_cancels().await.unwrap().iter().any(|r| r.id == id));
        let (x, y) = tokio::join!(
            a.finish_cancel(id, "ia", "no instance runs this execution", t(i)),
            b.finish_cancel(id, "ib", "cancelled", t(i))
        );
        assert!(x.unwrap() ^ y.unwrap(), "exactly one handles request {id}");
    }
    assert!(a.pending_cancels().await.unwrap().is_empty());
}
