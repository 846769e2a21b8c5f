//! The metric names and the `LEVEL message` log lines the docs quote exist
//! in the code.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::docs::{DOCS, end_event, read, root};
use mscribe_scheduler::{AttemptStart, ExecutionId, FireKind, SkippedFire};
use mscribe_scheduler::{ExecutionEvent, ExecutionStatus, Observer};
use mscribe_server::health::HealthSnapshot;
use mscribe_server::metrics::ServerMetrics;
use mscribe_server::probe::NamedReport;
use mscribe_server::probe::{HealthStatus, ProbeReport};

/// Every series name the server exposes, with every family populated.
fn exposed_metric_names() -> BTreeSet<String> {
    let m = ServerMetrics::new();
    let now = Utc::now();
    let start = AttemptStart {
        job_id: "j".into(),
        execution_id: ExecutionId::from_u128(1),
        attempt: 1,
        scheduled_at: now,
        started_at: now,
        instance_id: "i".into(),
        kind: FireKind::Schedule,
        fence: None,
    };
    m.on_event(&ExecutionEvent::Started(start));
    m.on_event(&ExecutionEvent::Finished(end_event("j", 1, 1, now, ExecutionStatus::Failed)));
    m.on_event(&ExecutionEvent::Finished(end_event("j", 3, 1, now, ExecutionStatus::Succeeded)));
    // The per-job series sampled from a scheduler (next fire, paused).
    let rt = mscribe_scheduler::LocalRuntime::new();
    let scheduler =
        mscribe_scheduler::JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
            .build();
    scheduler
        .register(
            mscribe_scheduler::JobConfig::new("j", |_ctx: mscribe_scheduler::JobContext| async {
                Ok::<_, String>(())
            })
            .schedule("@daily"),
        )
        .unwrap();
    m.attach(scheduler);
    m.on_event(&ExecutionEvent::Skipped(SkippedFire {
        job_id: "j".into(),
        execution_id: ExecutionId::from_u128(2),
        scheduled_at: now,
        decided_at: now,
        reason: "r".into(),
        instance_id: "i".into(),
        kind: FireKind::Schedule,
        fence: None,
    }));
    m.record_health(&HealthSnapshot {
        status: HealthStatus::Healthy,
        checked_at: now,
        checks: vec![NamedReport {
            name: "database".into(),
            critical: true,
            report: ProbeReport::healthy(Duration::ZERO),
        }],
    });
    let mut names = BTreeSet::new();
    for line in m.encode().lines() {
        let name = match line.strip_prefix("# HELP ").or_else(|| line.strip_prefix("# TYPE ")) {
            Some(rest) => rest.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        };
        if let Some(n) = name {
            names.insert(n.to_owned());
        }
    }
    names
}

#[test]
fn metric_names_in_the_docs_exist() {
    let names = exposed_metric_names();
    let prefixes = [
        "mscribe_job_",
        "mscribe_store_",
        "mscribe_scheduler_overdue",
        "mscribe_health_",
        "mscribe_build_",
    ];
    let mut unknown = Vec::new();
    let mut seen = 0;
    for doc in DOCS {
        let text = read(doc);
        let mut rest = text.as_str();
        while let Some(i) = rest.find("mscribe_") {
            let token: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[i + token.len().max(1)..];
            // `mscribe_store_*`, `^mscribe_(store_|...)`: a family, not a name.
            if token.ends_with('_') || !prefixes.iter().any(|p| token.starts_with(p)) {
                continue;
            }
            seen += 1;
            if !names.contains(&token) {
                unknown.push(format!("{doc}: {token}"));
            }
        }
    }
    assert!(seen > 20, "only {seen} metric names found in the docs");
    assert!(unknown.is_empty(), "metric names the server does not expose:\n{}", unknown.join("\n"));
}

/// The Rust sources of the engine, the stores and the server.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = fs::read_to_string(&p).unwrap_or_default();
                out.push((p, text));
            }
        }
    }
    let mut out = Vec::new();
    for d in ["src", "storage/src", "server/src"] {
        walk(&root().join(d), &mut out);
    }
    out
}

/// Whether `message` is the start of a string literal logged at `level`
/// (the nearest `tracing::<level>!` before the literal).
fn logged_at(sources: &[(PathBuf, String)], level: &str, message: &str) -> bool {
    let needle = format!("\"{message}");
    sources.iter().any(|(_, text)| {
        text.match_indices(&needle).any(|(i, _)| {
            let before = &text[i.saturating_sub(2000)..i];
            before
                .rfind("tracing::")
                .is_some_and(|j| before[j + 9..].starts_with(&format!("{level}!")))
        })
    })
}

#[test]
fn quoted_log_lines_exist_in_the_code() {
    let sources = sources();
    let mut unknown = Vec::new();
    let mut seen = 0;
    for doc in DOCS {
        for (n, line) in read(doc).lines().enumerate() {
            for (k, span) in line.split('`').enumerate() {
                if k % 2 == 0 {
                    continue;
                }
                let Some((level, message)) = span.split_once(' ') else { continue };
                let level = match level {
                    "ERROR" | "WARN" | "INFO" | "DEBUG" => level.to_lowercase(),
                    _ => continue,
                };
                let message = message.trim_end_matches("...").trim_end();
                seen += 1;
                if !logged_at(&sources, &level, message) {
                    unknown.push(format!("{doc}:{}: {} {message}", n + 1, level.to_uppercase()));
                }
            }
        }
    }
    assert!(seen > 20, "only {seen} log lines found in the docs");
    assert!(
        unknown.is_empty(),
        "log lines the code does not log (at that level):\n{}",
        unknown.join("\n")
    );
}
