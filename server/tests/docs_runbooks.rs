//! The runbooks' runnable shell blocks run against a scratch server, and
//! the backup and restore procedure is among them (see `common/docs.rs`).

mod common;

use common::docs::{Block, Need, run_doc, runnable_shell_blocks};

#[test]
fn incident_response_blocks_run() {
    assert!(run_doc("docs/runbooks/INCIDENT_RESPONSE.md") > 10);
}

#[test]
fn maintenance_blocks_run() {
    assert!(run_doc("docs/runbooks/MAINTENANCE.md") > 10);
}

#[test]
fn health_checks_blocks_run() {
    assert!(run_doc("docs/runbooks/HEALTH_CHECKS.md") > 5);
}

/// The backup and restore procedure is tested, not only written: a backup,
/// then a restore that replaces the database (server stopped), then a check
/// that the history is back.
#[test]
fn backup_and_restore_are_among_the_tested_blocks() {
    let blocks = runnable_shell_blocks("docs/runbooks/MAINTENANCE.md");
    let pos = |from: usize, ok: &dyn Fn(&Block, Need) -> bool| {
        blocks.iter().skip(from).position(|(b, n)| ok(b, *n)).map(|p| p + from)
    };
    let backup = pos(0, &|b, _| b.body.contains("mscribe run database-backup"))
        .expect("a runnable block takes a backup");
    let restore = pos(backup + 1, &|b, n| {
        n == Need::Down && b.body.contains("mscribe-*.db") && b.body.contains("mv \"$f\"")
    })
    .expect("a later runnable block, server stopped, moves the database aside and restores");
    pos(restore + 1, &|b, _| {
        b.body.contains("mscribe history") && b.body.contains("grep '\"last_run\": \"'")
    })
    .expect("a later runnable block checks that the history is back");
}
