//! `compare`: the side-by-side benchmark runner.
//!
//! ```text
//! compare run [--quick|--full] [--out DIR] [--mscribe-bin PATH] [--only SECTIONS]
//! compare report [--results FILE] [--criterion DIR] [--out FILE] [--command TEXT]
//! compare child-scale JSON        (one measurement; used by `run`)
//! compare child-sim KIND JOBS DAYS SEED
//! ```
//!
//! `run` is a parent that spawns itself once per (contender, N), so every
//! contender starts from a fresh process: its memory peak and CPU time are
//! its own. It writes `DIR/results.json` (default `target/bench`); `report`
//! turns that, the criterion estimates and the machine's facts into the
//! results section of `docs/BENCHMARKS.md`. `scripts/bench.sh` runs both.
//!
//! SECTIONS is a comma list of `scale`, `stagger`, `rounds`, `dispatch`, `sim`,
//! `health` (default: all).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mscribe_bench::health::{HealthParams, run_health};
use mscribe_bench::report::{Mode, Results, load_average, write_report};
use mscribe_bench::scale::{Contender, ScaleParams, ScaleResult, run_scale};
use mscribe_bench::sim_speed::{SimResult, run_chaotic, run_noop};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("report") => cmd_report(&args[1..]),
        Some("child-scale") => cmd_child_scale(&args[1..]),
        Some("child-sim") => cmd_child_sim(&args[1..]),
        _ => {
            eprintln!(
                "usage: compare run [--quick|--full] [--out DIR] [--mscribe-bin PATH] [--only SECTIONS]\n       compare report [--results FILE] [--criterion DIR] [--out FILE] [--command TEXT]"
            );
            Err("no command".to_owned())
        }
    };
    if let Err(e) = code {
        eprintln!("compare: error: {e}");
        std::process::exit(2);
    }
}

/// `--name value` from an argument list.
fn opt(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

const RESULT: &str = "RESULT ";

fn cmd_child_scale(args: &[String]) -> Result<(), String> {
    let p: ScaleParams =
        serde_json::from_str(args.first().ok_or("missing params")?).map_err(|e| e.to_string())?;
    let r = run_scale(&p);
    println!("{RESULT}{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    // The contender's tasks and threads are not waited for: returning from
    // `main` ends the process.
    Ok(())
}

fn cmd_child_sim(args: &[String]) -> Result<(), String> {
    let num = |i: usize| -> Result<u64, String> {
        args.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad argument {i}"))
    };
    let (jobs, days, seed) = (num(1)? as usize, num(2)?, num(3)?);
    let r = match args.first().map(String::as_str) {
        Some("noop") => run_noop(jobs, days, seed),
        Some("chaotic") => run_chaotic(jobs, days, seed),
        other => return Err(format!("unknown simulation {other:?}")),
    };
    println!("{RESULT}{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    Ok(())
}

/// Runs this binary with `args`, returns the `RESULT` line's JSON; kills
/// the child after `limit`.
fn child(args: &[String], limit: Duration) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = c.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(json) = line.strip_prefix(RESULT) {
                let _ = tx.send(json.to_owned());
            }
        }
    });
    let got = rx.recv_timeout(limit);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.try_wait() {
            Ok(Some(_)) => break,
            _ if Instant::now() > deadline => {
                let _ = c.kill();
                let _ = c.wait();
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    got.map_err(|_| format!("child {args:?} gave no result within {limit:?}"))
}

fn scale_child(p: &ScaleParams) -> ScaleResult {
    let limit = Duration::from_secs_f64(
        p.register_limit_s + p.contender.fill_s(p.interval_ms) + p.warmup_s + p.window_s + 90.0,
    );
    let json = serde_json::to_string(p).expect("params to json");
    let t = Instant::now();
    let r = child(&["child-scale".to_owned(), json], limit)
        .and_then(|j| serde_json::from_str::<ScaleResult>(&j).map_err(|e| e.to_string()));
    let r = r.unwrap_or_else(|e| ScaleResult {
        params: Some(p.clone()),
        note: Some(e),
        ..ScaleResult::default()
    });
    eprintln!(
        "  {:<22} n={:<7} {:>5}ms {} | reg {:>8.1} ms | fires {:>6.2}% | late p50 {:>9.0} us p99 {:>9.0} us max {:>9.0} us | cpu/fire {:>6.2} us | {:>6.0} B/job | {:.1?}{}",
        p.contender.name(),
        p.jobs,
        p.interval_ms,
        if p.staggered { "stag" } else { "alig" },
        r.register_ms,
        r.fraction * 100.0,
        r.lateness_p50_us,
        r.lateness_p99_us,
        r.lateness_max_us,
        r.cpu_per_fire_us,
        r.bytes_per_job,
        t.elapsed(),
        r.note.as_deref().map(|n| format!(" | {n}")).unwrap_or_default()
    );
    r
}

/// Runs a simulation `n` times and keeps the fastest, listing every rate.
fn fastest_of(
    n: usize,
    mut run: impl FnMut() -> Result<SimResult, String>,
) -> Result<SimResult, String> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        all.push(run()?);
    }
    let rates: Vec<f64> = all.iter().map(|r| r.fires_per_wall_s).collect();
    let mut best = all
        .into_iter()
        .max_by(|a, b| a.fires_per_wall_s.total_cmp(&b.fires_per_wall_s))
        .expect("at least one run");
    best.repetitions = rates;
    Ok(best)
}

fn sim_child(kind: &str, jobs: usize, days: u64, seed: u64) -> Result<SimResult, String> {
    let args = [kind, &jobs.to_string(), &days.to_string(), &seed.to_string()].map(str::to_owned);
    let mut all = vec!["child-sim".to_owned()];
    all.extend(args);
    let j = child(&all, Duration::from_secs(900))?;
    let r: SimResult = serde_json::from_str(&j).map_err(|e| e.to_string())?;
    eprintln!(
        "  sim {kind:<8} {jobs} jobs x {days} days: {} fires in {:.2} s = {:.0} fires/s, {:.0}x real time",
        r.fires, r.wall_s, r.fires_per_wall_s, r.sim_to_real
    );
    Ok(r)
}

fn cmd_run(args: &[String]) -> Result<(), String> {
    let mode = if flag(args, "--full") { Mode::Full } else { Mode::Quick };
    let out_dir = PathBuf::from(opt(args, "--out").unwrap_or_else(|| "target/bench".to_owned()));
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let only = opt(args, "--only");
    let wants = |s: &str| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == s));
    let workers = std::thread::available_parallelism().map(usize::from).unwrap_or(2);
    let quick = mode == Mode::Quick;
    let t_all = Instant::now();
    let mut res = Results::new(mode);
    res.load_before = load_average();

    let base = |contender, jobs, interval_ms, staggered| ScaleParams {
        contender,
        jobs,
        interval_ms,
        window_s: if quick { 3.0 } else { 10.0 },
        warmup_s: 2.0,
        staggered,
        register_limit_s: if quick { 30.0 } else { 120.0 },
        workers,
    };
    let sizes = [1_000, 10_000, 50_000, 200_000];

    if wants("scale") {
        eprintln!("== scale: N jobs on a 1 s interval, aligned fires");
        for &n in &sizes {
            for c in Contender::ALL {
                // History at every size in --full; the SQLite store cannot
                // take 200,000 rows a second, so it stops at 50,000.
                if c.keeps_history()
                    && (quick && n != 50_000 || n > 50_000 && c == Contender::MscribeSqlite)
                {
                    continue;
                }
                res.scale.push(scale_child(&base(c, n, 1_000, false)));
            }
        }
    }
    if wants("stagger") {
        eprintln!("== stagger: N jobs on a 1 s interval, phases spread over 100 slots");
        for &n in &sizes {
            if quick && n != 50_000 {
                continue;
            }
            for c in Contender::ALL.into_iter().filter(|c| c.can_stagger()) {
                if c.keeps_history() && n != 50_000 {
                    continue;
                }
                res.stagger.push(scale_child(&base(c, n, 1_000, true)));
            }
        }
    }
    if wants("rounds") {
        let rounds = if quick { 2 } else { 6 };
        eprintln!(
            "== rounds: 50,000 jobs, mscribe (no records, MemoryStore growing and at its bound, SQLite) and the tokio loop alternating, {rounds} rounds per shape"
        );
        for _ in 0..rounds {
            for staggered in [false, true] {
                for c in Contender::ROUNDS {
                    let mut p = base(c, 50_000, 1_000, staggered);
                    p.window_s = if quick { 3.0 } else { 5.0 };
                    res.rounds.push(scale_child(&p));
                }
            }
        }
    }
    if wants("dispatch") {
        eprintln!("== dispatch: no-op jobs on a 10 ms interval until the dispatcher saturates");
        let ns: &[usize] = if quick {
            &[100, 1_000, 5_000, 20_000]
        } else {
            &[100, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000]
        };
        for &n in ns {
            for c in [Contender::Mscribe, Contender::TokioLoop] {
                let mut p = base(c, n, 10, false);
                p.window_s = if quick { 2.0 } else { 3.0 };
                p.warmup_s = 1.0;
                res.dispatch.push(scale_child(&p));
            }
        }
    }
    if wants("sim") {
        eprintln!("== simulation: 1,000 mixed jobs on the virtual clock, single-threaded");
        res.sim.push(fastest_of(3, || sim_child("noop", 1_000, 30, 2026))?);
        let (days, reps) = if quick { (7, 1) } else { (30, 3) };
        res.sim.push(fastest_of(reps, || sim_child("chaotic", 1_000, days, 2026))?);
    }
    if wants("health") {
        eprintln!("== health endpoint under loopback load");
        let bin = opt(args, "--mscribe-bin")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/release/mscribe"));
        let p = HealthParams {
            bin,
            duration_s: if quick { 6 } else { 20 },
            connections: 64,
            threads: 2,
            ttl_ms: 2_000,
            prefer_wrk: true,
        };
        let h = run_health(&p);
        eprintln!(
            "  {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, non-2xx {}, errors {}, probe runs {} (allowed {}){}",
            h.tool,
            h.rps,
            h.p50_ms,
            h.p99_ms,
            h.max_ms,
            h.non_2xx,
            h.errors,
            h.probe_runs,
            h.probe_runs_allowed,
            h.note.as_deref().map(|n| format!(" | {n}")).unwrap_or_default()
        );
        res.health = Some(h);
    }
    res.load_after = load_average();
    res.run_s = t_all.elapsed().as_secs_f64();
    let path = out_dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&res).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {} ({:.0} s)", path.display(), res.run_s);
    Ok(())
}

fn cmd_report(args: &[String]) -> Result<(), String> {
    let results =
        PathBuf::from(opt(args, "--results").unwrap_or_else(|| "target/bench/results.json".into()));
    let criterion =
        PathBuf::from(opt(args, "--criterion").unwrap_or_else(|| "target/criterion".into()));
    let out = PathBuf::from(opt(args, "--out").unwrap_or_else(|| "docs/BENCHMARKS.md".into()));
    let command = opt(args, "--command").unwrap_or_else(|| "scripts/bench.sh".to_owned());
    let extra = opt(args, "--extra").map(PathBuf::from);
    let text =
        std::fs::read_to_string(&results).map_err(|e| format!("{}: {e}", results.display()))?;
    let res: Results = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    write_report(&res, &criterion, &out, &command, extra.as_deref())?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
