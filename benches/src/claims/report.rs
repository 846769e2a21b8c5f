//! The report: the section of `docs/BENCHMARKS.md` written from a run's
//! results.

use std::fmt::Write as _;
use std::time::Duration;

use super::{ClaimsResult, SLOTS};
use crate::measure::{HistogramSnapshot, LatencyHistogram};
use crate::report::ms;

/// The section's title.
pub fn title(instances: usize) -> String {
    format!("### 7. Claims on Postgres, {instances} instances")
}

/// The section when nothing could be measured, saying why.
pub fn unavailable(instances: usize, why: &str) -> String {
    format!("{}\n\nNot measured: {why}\n\n", title(instances))
}

fn ms3(v: [f64; 3]) -> String {
    format!("{} / {} / {}", ms(v[0]), ms(v[1]), ms(v[2]))
}

fn hist_ms3(h: &LatencyHistogram) -> String {
    let m = |d: Duration| d.as_secs_f64() * 1e3;
    ms3([m(h.percentile(0.5)), m(h.percentile(0.99)), m(h.max())])
}

fn merged(snaps: impl Iterator<Item = HistogramSnapshot>) -> LatencyHistogram {
    let h = LatencyHistogram::new();
    for s in snaps {
        h.merge(&s);
    }
    h
}

/// The report section of a run, from its results: `command` is how it was
/// run.
pub fn markdown(r: &ClaimsResult, command: &str) -> String {
    use crate::report::{count, mark, pct, us};
    let p = &r.params;
    let mut s = title(p.instances);
    s.push_str("\n\n");
    let _ = writeln!(
        s,
        "`{command}` (`benches/src/bin/claims.rs`): {} scheduler instances, each a child process with its own tokio runtime ({} workers) and `PostgresStore` (a pool of {} connections), on one fresh database, each registering the same {} no-op jobs on a {} ms interval with `claim_fires(true)`, a {} s lease, {} and {}. A claimed interval is phased on the Unix epoch, so every job is due at each whole second: each second opens with a burst of {} fires, which the instances claim in batches of up to 256 (one `claim_fires` call per dispatch chunk), the first claim of a fire winning it. Window {} s (nominal times {} to {}) after a warm-up of at least {:.0} s; fires due in it count whenever they start, up to {:.0} s after it. Lateness is measured in the handler: the wall clock at its start minus the fire's nominal time; a fire is *on time* when it starts within {} ms of it, and a fire that never ran is not on time. Duplicates and missing fires are counted from the database after the instances stopped (and flushed their records). CPU is user + system time of the instance processes over the window (the Postgres backends' separately: the `/proc` times of the backends serving the bench database), divided by the fires run.\n",
        p.instances,
        p.workers,
        p.pool,
        count(p.jobs as f64),
        p.interval_ms,
        p.lease_ms / 1_000,
        if p.standby_ms == 0 {
            "no claim affinity (`claim_standby(0)`: every instance claims every fire at once)"
                .to_owned()
        } else {
            format!(
                "claim affinity (each job's preferred instance claims its fires at once, the others {} ms later, `claim_standby`)",
                p.standby_ms
            )
        },
        if p.ahead_ms == 0 {
            "each fire claimed at its instant (`claim_ahead(0)`)".to_owned()
        } else {
            format!(
                "each fire claimed {} ms before its instant (`claim_ahead`), the fire won starting at the instant",
                p.ahead_ms
            )
        },
        count(p.jobs as f64),
        p.window_s,
        r.window_from,
        r.window_to,
        p.warmup_s,
        p.grace_s,
        p.on_time_ms,
    );
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(0);
    let _ = writeln!(
        s,
        "Run {}{}, {}, {cores} cores, {:.0} s in all. Load average (1/5/15 min) {:.2} / {:.2} / {:.2} before, {:.2} / {:.2} / {:.2} after: the machine is shared with other builds and tests, whose load moves these figures.\n",
        r.started_at,
        r.commit.as_deref().map(|c| format!(" at {c}")).unwrap_or_default(),
        if r.postgres.is_empty() { "Postgres" } else { &r.postgres },
        r.run_s,
        r.load_before[0],
        r.load_before[1],
        r.load_before[2],
        r.load_after[0],
        r.load_after[1],
        r.load_after[2],
    );
    if p.staggered {
        let _ = writeln!(
            s,
            "**Profiling shape, not the target's:** the jobs' phases are spread over {SLOTS} slots of the interval (`--staggered`), so each slot holds {} fires due at the same instant instead of all {}.\n",
            count(p.per_slot() as f64),
            count(p.jobs as f64)
        );
    }
    if p.coalesce_claims {
        s.push_str("**Try-out, not the engine as it is:** each instance's store wrapper sends one claim statement at a time and merges the claims that come meanwhile into the next (`--coalesce-claims`).\n\n");
    }
    if r.children.is_empty() || r.db.is_none() {
        let _ = writeln!(
            s,
            "Not measured: {}\n",
            r.note.as_deref().unwrap_or("the run gave no results")
        );
        return s;
    }
    let db = r.db.clone().unwrap_or_default();
    let due = p.due() as f64;
    let window = p.window_s as f64;
    let run: u64 = r.children.iter().map(|c| c.fires_run).sum();
    let on_time: u64 = r.children.iter().map(|c| c.on_time).sum();
    let on_time_share = (on_time as f64 / due).min(1.0);
    let late = merged(r.children.iter().map(|c| c.lateness.clone()));
    let p99_ms = late.percentile(0.99).as_secs_f64() * 1e3;
    let cpu: f64 = r.children.iter().map(|c| c.cpu_s).sum();
    let per_fire = |cpu: f64| if run == 0 { "–".to_owned() } else { us(cpu * 1e6 / run as f64) };
    let calls: u64 = r.children.iter().map(|c| c.calls.claim_calls).sum();
    let claimed: u64 = r.children.iter().map(|c| c.calls.claim_fires).sum();
    s.push_str(
        "| fires due | run (handlers) | run (rows) | fires with > 1 row | missing | on time (≤ ",
    );
    let _ = write!(s, "{} ms", p.on_time_ms);
    s.push_str(") | lateness p50 | p99 | max | claims / s (rows) | claim calls / s | CPU / fire, instances | CPU / fire, Postgres backends |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let m = |d: Duration| crate::report::ms(d.as_secs_f64() * 1e3);
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        count(due),
        count(run as f64),
        count(db.fires_run as f64),
        db.duplicate_fires,
        db.missing,
        pct(on_time_share),
        m(late.percentile(0.5)),
        m(late.percentile(0.99)),
        m(late.max()),
        count(db.claims_written_in_window as f64 / window),
        format_args!("{:.0}", calls as f64 / window),
        per_fire(cpu),
        r.pg_backend_cpu_s
            .map(|c| format!("{} ({} backends)", per_fire(c), r.pg_backends))
            .unwrap_or_else(|| "not read".to_owned()),
    );
    let statuses: Vec<String> = db.statuses.iter().map(|(st, n)| format!("{n} {st}")).collect();
    let _ = writeln!(
        s,
        "\nRows of the window's fires: {} ({}); claim rows {} ({} ended, {} taken over); {} fires run twice.\n",
        db.rows,
        if statuses.is_empty() { "none".to_owned() } else { statuses.join(", ") },
        db.claims,
        db.claims_ended,
        db.claims_retaken,
        db.run_twice,
    );
    for (why, n) in &db.skip_reasons {
        let _ = writeln!(s, "- {n} skipped: \"{why}\"");
    }
    if !db.skip_reasons.is_empty() {
        s.push('\n');
    }
    s.push_str("| instance | fires run | claims won | lateness p99 | CPU / fire | driver overdue (max) | `claim_fires` calls | fires per call (mean / max) | claim round trip p50 / p99 | claims in flight (max) | record writes | records per write | write round trip p50 / p99 | dropped / fenced / failed writes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for c in &r.children {
        let h = LatencyHistogram::from_snapshot(&c.lateness);
        let rtt = LatencyHistogram::from_snapshot(&c.calls.claim_rtt);
        let wrtt = LatencyHistogram::from_snapshot(&c.calls.write_rtt);
        let k = &c.calls;
        let won =
            db.claims_by_instance.iter().find(|(i, _)| *i == c.instance_id).map_or(0, |(_, n)| *n);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} / {} | {} / {} | {} | {} | {:.0} | {} / {} | {} / {} / {} |",
            c.instance_id,
            count(c.fires_run as f64),
            count(won as f64),
            m(h.percentile(0.99)),
            if c.fires_run == 0 {
                "–".to_owned()
            } else {
                us(c.cpu_s * 1e6 / c.fires_run as f64)
            },
            crate::report::ms(c.max_overdue_ms),
            k.claim_calls,
            k.claim_fires as f64 / k.claim_calls.max(1) as f64,
            k.claim_max_batch,
            m(rtt.percentile(0.5)),
            m(rtt.percentile(0.99)),
            k.claims_max_in_flight,
            k.write_calls,
            k.write_events as f64 / k.write_calls.max(1) as f64,
            m(wrtt.percentile(0.5)),
            m(wrtt.percentile(0.99)),
            c.dropped,
            c.fenced,
            c.failed_writes,
        );
    }
    let sent = merged(r.children.iter().map(|c| c.calls.claim_sent_late.clone()));
    let answered = merged(r.children.iter().map(|c| c.calls.claim_answered_late.clone()));
    let rtt = merged(r.children.iter().map(|c| c.calls.claim_rtt.clone()));
    let wrtt = merged(r.children.iter().map(|c| c.calls.write_rtt.clone()));
    s.push_str("\nWhere a fire's time goes, after its nominal time (p50 / p99 / max, all instances):\n\n| stage | p50 / p99 / max |\n|---|---|\n");
    let _ = writeln!(
        s,
        "| claim sent (`fire_claims.claimed_at`: the instance's clock as it sent the claim, winners' rows) | {} |",
        ms3(db.claim_sent_ms)
    );
    let _ = writeln!(
        s,
        "| claim sent (per `claim_fires` call, from its batch's earliest fire; 0 when before it, as with `claim_ahead`) | {} |",
        hist_ms3(&sent)
    );
    let _ = writeln!(
        s,
        "| claim answered (per call, from its batch's earliest fire; 0 when before it) | {} |",
        hist_ms3(&answered)
    );
    let _ = writeln!(
        s,
        "| attempt started (`started_at` of the rows run) | {} |",
        ms3(db.row_start_ms)
    );
    let _ = writeln!(s, "| handler started (measured in the handler) | {} |", hist_ms3(&late));
    let _ = writeln!(
        s,
        "| claim round trip (call to answer, waiting for a pooled connection included) | {} |",
        hist_ms3(&rtt)
    );
    let _ = writeln!(s, "| record write round trip | {} |", hist_ms3(&wrtt));
    if let Some(a) = r.activity.as_ref().filter(|a| a.samples > 0) {
        let n = a.samples as f64;
        let _ = writeln!(
            s,
            "\nThe Postgres backends serving the bench database, from `pg_stat_activity` sampled every 25 ms over the window ({} samples; on average {:.1} busy and {:.1} idle): the average number of backends in each statement and state.\n",
            a.samples,
            a.rows.iter().map(|r| r.2).sum::<u64>() as f64 / n,
            a.idle as f64 / n
        );
        let probe = LatencyHistogram::from_snapshot(&a.probe_rtt);
        let _ = writeln!(
            s,
            "The sampling query's own round trip (a trivial read from a process with nothing else to do): {}{}.\n",
            hist_ms3(&probe),
            a.cpu_pressure
                .map(|c| format!("; CPU pressure over the window (`/proc/pressure/cpu` \"some\": the share of time some runnable task waited for a CPU, on the whole machine) {:.0}%", c * 100.0))
                .unwrap_or_default()
        );
        s.push_str("| statement | state | backends (average) |\n|---|---|---:|\n");
        for (what, how, k) in a.rows.iter().filter(|r| r.2 as f64 / n >= 0.05) {
            let _ = writeln!(s, "| {what} | {how} | {:.2} |", *k as f64 / n);
        }
    }
    let _ = writeln!(
        s,
        "\n{} `claim_fires` calls per second over the instances, {} fires each on average, {} fires claimed per second for {} claim rows per second (each fire is claimed by every instance, won by one; with affinity the others' claims come after the standby delay).\n",
        format_args!("{:.0}", calls as f64 / window),
        format_args!("{:.0}", claimed as f64 / calls.max(1) as f64),
        count(claimed as f64 / window),
        count(db.claims_written_in_window as f64 / window),
    );
    s.push_str("| target (issue 24) | measured | |\n|---|---|---|\n");
    let exact = db.duplicate_fires == 0 && db.missing == 0 && db.run_twice == 0;
    let _ = writeln!(
        s,
        "| every fire exactly once | {} fires with more than one row, {} missing, {} run twice | {} |",
        db.duplicate_fires,
        db.missing,
        db.run_twice,
        mark(exact)
    );
    let _ = writeln!(
        s,
        "| ≥ 99.9% of fires on time (≤ {} ms) | {} | {} |",
        p.on_time_ms,
        pct(on_time_share),
        mark(on_time_share >= 0.999)
    );
    let _ = writeln!(
        s,
        "| p99 lateness ≤ 50 ms | {} | {} |",
        crate::report::ms(p99_ms),
        mark(p99_ms <= 50.0)
    );
    let mean_batch = claimed as f64 / calls.max(1) as f64;
    let _ = writeln!(
        s,
        "| claims batched per tick, not one round trip per fire | {:.0} fires per `claim_fires` call | {} |",
        mean_batch,
        mark(mean_batch >= 16.0)
    );
    if let Some(n) = &r.note {
        let _ = writeln!(s, "\nNote: {n}");
    }
    s.push('\n');
    s
}
