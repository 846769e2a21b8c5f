//! The README: its runnable blocks (and `docs/ARCHITECTURE.md`'s), its Rust
//! example, its configuration reference, and the job tables of it and
//! MAINTENANCE.md, checked against the server's table of jobs.

mod common;

use common::docs::{Block, doc_blocks, read, run_doc};
use mscribe_server::config::{COMMON_JOB_KEYS, Config, env_keys};
use mscribe_server::ops::JOBS;

#[test]
fn readme_and_architecture_blocks_run() {
    run_doc("README.md");
    run_doc("docs/ARCHITECTURE.md");
}

#[test]
fn readme_example_is_the_compiled_example() {
    let rust: Vec<Block> =
        doc_blocks("README.md").into_iter().filter(|b| b.lang.starts_with("rust")).collect();
    assert_eq!(rust.len(), 1, "the README has one Rust example");
    assert_eq!(rust[0].lang, "rust,no_run", "{}: the example is `rust,no_run`", rust[0].location());
    let file = read("server/examples/readme_embed.rs");
    let body: Vec<&str> = file.lines().skip_while(|l| l.starts_with("//!")).collect();
    let compiled = body.join("\n").trim().to_owned();
    assert_eq!(
        rust[0].body.trim(),
        compiled,
        "the README's example differs from server/examples/readme_embed.rs (without its //! header)"
    );
}

#[test]
fn readme_documents_every_config_key() {
    let readme = read("README.md");
    let mut missing = Vec::new();
    for key in env_keys() {
        let parts: Vec<&str> = key.path.splitn(3, '.').collect();
        let ok = match parts.as_slice() {
            ["jobs", _, k] if COMMON_JOB_KEYS.iter().any(|(c, _)| c == k) => {
                readme.contains(&format!("`{k}`"))
            }
            ["jobs", _, _] => readme.contains(&key.var),
            _ => {
                let last = key.path.rsplit('.').next().unwrap_or(&key.path);
                readme.contains(&key.var) && readme.contains(&format!("`{last}`"))
            }
        };
        if !ok {
            missing.push(format!("{} ({})", key.path, key.var));
        }
    }
    assert!(
        missing.is_empty(),
        "the README's configuration reference misses:\n{}",
        missing.join("\n")
    );
}

/// The job tables of the README and MAINTENANCE.md give each job's default
/// schedule and timeout: those of the server's table of jobs.
#[test]
fn quoted_default_schedules_are_the_servers() {
    let cfg = Config::default();
    for doc in ["README.md", "docs/runbooks/MAINTENANCE.md"] {
        let text = read(doc);
        for job in JOBS.iter().filter(|j| j.is_builtin()) {
            let id = job.id;
            let schedule = job.schedule;
            assert_eq!(cfg.jobs.common(id).expect("known job").schedule, schedule);
            let row = text
                .lines()
                .find(|l| l.starts_with(&format!("| `{id}` |")))
                .unwrap_or_else(|| panic!("{doc}: no table row for job {id}"));
            assert!(
                row.contains(&format!("`{schedule}`")),
                "{doc}: the row of {id} does not give its default schedule `{schedule}`:\n{row}"
            );
            let timeout = humantime::format_duration(job.timeout).to_string();
            let cells: Vec<&str> = row.split('|').map(|c| c.trim().trim_matches('`')).collect();
            assert_eq!(
                cells.get(3),
                Some(&timeout.as_str()),
                "{doc}: the row of {id} does not give its default timeout {timeout} third:\n{row}"
            );
        }
    }
}

/// The `claim_fires` rows of both READMEs name the jobs that every instance
/// still runs: those the table of jobs marks `per_instance`.
#[test]
fn quoted_per_instance_jobs_are_the_servers() {
    for doc in ["README.md", "server/README.md"] {
        let text = read(doc);
        let row = text
            .lines()
            .find(|l| l.starts_with("| `claim_fires` |"))
            .unwrap_or_else(|| panic!("{doc}: no table row for claim_fires"));
        let each = row.rsplit(';').next().unwrap_or_default();
        assert!(each.contains("still run on each"), "{doc}: {row}");
        for job in JOBS.iter().filter(|j| j.is_builtin()) {
            assert_eq!(
                each.contains(&format!("`{}`", job.id)),
                job.per_instance,
                "{doc}: the claim_fires row and the table of jobs disagree on whether every \
                 instance runs {}:\n{row}",
                job.id
            );
        }
    }
}
