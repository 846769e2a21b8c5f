//! The records path in the report: CPU and lateness at 50,000 jobs with
//! history kept (`MemoryStore`, a `SqliteStore` file) beside the tokio
//! loop, the stores' records per second beside raw baselines, and the
//! targets of both.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Results, count, find, median, ms, round_pairs_of, target, us};
use crate::scale::{BOUND_ROWS, Contender, ScaleResult};

/// The contenders that keep history, with the most CPU per fire each may
/// spend, as a multiple of the tokio loop's.
const HISTORY: [(Contender, &str, f64); 3] = [
    (Contender::MscribeMemory, "MemoryStore", 1.2),
    (Contender::MscribeMemoryBound, "MemoryStore at its bound", 1.2),
    (Contender::MscribeSqlite, "SqliteStore", 2.0),
];

/// Records written in each store bench (start and end of 50,000 attempts).
const RECORDS: f64 = 100_000.0;

/// Medians over the alternating rounds of one shape: (median of the
/// per-round CPU ratios to the tokio loop, CPU per fire, the tokio loop's,
/// p99 lateness, the tokio loop's, rounds).
struct Summary {
    ratio: f64,
    cpu: f64,
    tokio_cpu: f64,
    p99: f64,
    tokio_p99: f64,
    rounds: usize,
}

fn summary(rounds: &[ScaleResult], c: Contender, staggered: bool) -> Option<Summary> {
    let cpu = round_pairs_of(rounds, c, staggered, |r| r.cpu_per_fire_us);
    let late = round_pairs_of(rounds, c, staggered, |r| r.lateness_p99_us);
    Some(Summary {
        ratio: median(cpu.iter().map(|(m, t)| m / t).collect())?,
        cpu: median(cpu.iter().map(|p| p.0).collect())?,
        tokio_cpu: median(cpu.iter().map(|p| p.1).collect())?,
        p99: median(late.iter().map(|p| p.0).collect())?,
        tokio_p99: median(late.iter().map(|p| p.1).collect())?,
        rounds: cpu.len(),
    })
}

const SHAPES: [(bool, &str); 2] = [(false, "aligned"), (true, "staggered")];

/// Section 1d: every contender of the rounds beside the tokio loop.
pub(super) fn rounds_section(s: &mut String, rounds: &[ScaleResult]) {
    let rows: Vec<_> = SHAPES
        .iter()
        .flat_map(|&(st, shape)| {
            Contender::ROUNDS
                .into_iter()
                .filter(|c| c.is_mscribe())
                .filter_map(move |c| Some((shape, c, summary(rounds, c, st)?)))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    s.push_str("### 1d. With history kept: CPU and lateness at 50,000 jobs, the same rounds\n\n");
    let _ = write!(
        s,
        "The rounds of 1c also ran mscribe recording every attempt to `MemoryStore` and to a `SqliteStore` file (WAL, the store's defaults: the server's path), each in its own process; CPU is the whole process's, the store's writer thread included. `mscribe-memory` keeps the default 1,000 rows a job, so its history grows through the window: the kernel maps fresh pages for the new rows, and the store's tables double. `mscribe-memory-bound` keeps {BOUND_ROWS} rows a job and runs {BOUND_ROWS} s longer before its window, so that every job is at the bound and each new row replaces its job's oldest: the steady state of a server whose history has filled its retention. Ratios are medians of the per-round ratios to the tokio loop of the same round.\n\n"
    );
    s.push_str("| shape | contender | CPU / fire | × tokio loop | lateness p99 | tokio loop p99 | rounds |\n|---|---|---:|---:|---:|---:|---:|\n");
    for (shape, c, m) in rows {
        let _ = writeln!(
            s,
            "| {shape} | {} | {} | {:.2}× | {} | {} | {} |",
            c.name(),
            us(m.cpu),
            m.ratio,
            us(m.p99),
            us(m.tokio_p99),
            m.rounds
        );
    }
    s.push('\n');
}

/// The records path's rows of the targets table.
pub(super) fn targets(s: &mut String, res: &Results, crit: &BTreeMap<String, f64>) {
    for (c, store, limit) in HISTORY {
        let shapes: Vec<_> = SHAPES
            .iter()
            .filter_map(|&(st, shape)| Some((shape, summary(&res.rounds, c, st)?)))
            .collect();
        if shapes.is_empty() {
            continue;
        }
        let text = shapes
            .iter()
            .map(|(shape, m)| {
                format!("{shape}: {:.2}× ({} vs {})", m.ratio, us(m.cpu), us(m.tokio_cpu))
            })
            .collect::<Vec<_>>()
            .join("; ");
        target(
            s,
            &format!("50,000 jobs, history in {store}: CPU per fire ≤ {limit}× the tokio loop"),
            text,
            shapes.len() == 2 && shapes.iter().all(|(_, m)| m.ratio <= limit),
        );
        if let Some(m) = summary(&res.rounds, c, false) {
            target(
                s,
                &format!(
                    "50,000 jobs due at once, history in {store}: p99 lateness ≤ the tokio loop's"
                ),
                format!("{} vs {}", us(m.p99), us(m.tokio_p99)),
                m.p99 <= m.tokio_p99,
            );
        }
        if let Some(m) = summary(&res.rounds, c, true) {
            target(
                s,
                &format!("50,000 jobs staggered, history in {store}: p99 lateness ≤ 5 ms"),
                us(m.p99),
                m.p99 <= 5_000.0,
            );
        }
    }
    if let Some(m) = find(&res.scale, Contender::MscribeMemory, 50_000).filter(|r| r.completed) {
        target(
            s,
            "50,000 jobs, history in MemoryStore: ≤ 600 bytes per job (history apart, bounded per job)",
            format!(
                "{:.0} B after registering; peak while firing {:.0} B (the history of the window included)",
                m.bytes_per_job, m.peak_bytes_per_job
            ),
            m.bytes_per_job <= 600.0,
        );
    }
    if let Some(n) = res.sim.iter().find(|r| r.kind == "noop") {
        target(
            s,
            "simulation, 1,000 jobs: ≥ 5M simulated fires per wall second",
            format!("{} fires/s", count(n.fires_per_wall_s)),
            n.fires_per_wall_s >= 5e6,
        );
    }
    for (store, floor) in [("sqlite", 250_000.0), ("postgres", 100_000.0)] {
        for shape in ["together", "apart"] {
            let Some((rate, raw, raw_name)) = store_rates(crit, store, shape) else { continue };
            target(
                s,
                &format!(
                    "{store} store, start and end {shape}: ≥ {} records/s and ≥ 0.9× raw",
                    count(floor)
                ),
                format!("{}/s, {:.2}× `{raw_name}`", count(rate), rate / raw),
                rate >= floor && rate >= 0.9 * raw,
            );
        }
    }
}

/// Records per second of `{store}_store_{shape}`, of its fastest raw
/// baseline, and that baseline's name.
fn store_rates(
    crit: &BTreeMap<String, f64>,
    store: &str,
    shape: &str,
) -> Option<(f64, f64, String)> {
    let rate = |ns: f64| RECORDS / (ns / 1e9);
    let ours = crit.get(&format!("store_write_100k/{store}_store_{shape}"))?;
    let raw_prefix = format!("store_write_100k/{store}_raw_");
    let (raw_name, raw) = crit
        .iter()
        .filter(|(k, _)| k.starts_with(&raw_prefix) && k.contains(&format!("_{shape}")))
        .min_by(|a, b| a.1.total_cmp(b.1))?;
    Some((rate(*ours), rate(*raw), raw_name.trim_start_matches("store_write_100k/").to_owned()))
}

/// Section 5: each store beside its raw baselines, records per second.
pub(super) fn stores(s: &mut String, crit: &BTreeMap<String, f64>) {
    let rows: Vec<(&String, &f64)> =
        crit.iter().filter(|(k, _)| k.starts_with("store_write_100k/")).collect();
    if rows.is_empty() {
        return;
    }
    s.push_str(
        "### 5. Stores: records per second (criterion `storage/benches/store_write.rs`)\n\n",
    );
    s.push_str("50,000 attempts of 100 jobs, each a start and an end: 100,000 records in `write` calls of 1,000 events, a fresh database per iteration. *together*: a call holds 500 attempts' starts and their ends; *apart*: 500 starts and the ends of the 500 attempts of the call before. The raw baselines write the same final rows the fast way: one transaction per call, cached prepared statements, WAL, `synchronous = NORMAL`, the store's page cache and checkpoint interval (SQLite); arrays through `UNNEST`, or `COPY` (Postgres).\n\n");
    s.push_str(
        "| writer | time for 100k records | records / s | vs fastest raw |\n|---|---:|---:|---:|\n",
    );
    for (k, v) in &rows {
        let name = k.trim_start_matches("store_write_100k/");
        let vs = ["sqlite", "postgres"]
            .iter()
            .flat_map(|st| ["together", "apart"].map(|sh| (*st, sh)))
            .find(|(st, sh)| name == format!("{st}_store_{sh}"))
            .and_then(|(st, sh)| store_rates(crit, st, sh))
            .map(|(ours, raw, _)| format!("{:.2}×", ours / raw))
            .unwrap_or_else(|| {
                if name.contains("_bare_") {
                    "no secondary index: what they cost".to_owned()
                } else {
                    "baseline".to_owned()
                }
            });
        let _ = writeln!(
            s,
            "| `{name}` | {} | {} | {vs} |",
            ms(**v / 1e6),
            count(RECORDS / (**v / 1e9))
        );
    }
    if !rows.iter().any(|(k, _)| k.contains("postgres")) {
        s.push_str("\nPostgres was not reachable, so its rows are missing.\n");
    }
    s.push('\n');
}
