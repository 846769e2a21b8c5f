//! `claims`: the claim-path benchmark on Postgres (3 instances, 10,000 jobs on 1 s).
//!
//! ```text
//! claims run [--quick|--full] [--url URL] [--out FILE.json] [--md FILE.md]
//!            [--instances N] [--jobs N] [--window S] [--warmup S] [--pool N]
//!            [--lease-ms MS] [--standby-ms MS] [--ahead-ms MS] [--coalesce-claims] [--staggered] [--keep-db]
//!            [--command TEXT]
//! claims unavailable --md FILE.md [--why TEXT]   (the section, saying why not)
//! claims report --results FILE.json [--md FILE.md]
//! claims child JSON                              (one instance; used by `run`)
//! ```
//!
//! `run` creates a fresh database on the server of `--url` (default
//! `$MSCRIBE_TEST_POSTGRES_URL`; `scripts/ensure-postgres.sh` prints one),
//! runs the instances as child processes of this binary, checks the
//! database, drops it (unless `--keep-db`), and writes the raw results
//! (default `target/bench/claims.json`) and the report section (default
//! `target/bench/claims.md`), which `scripts/bench.sh` adds to
//! docs/BENCHMARKS.md. Without a server the section says so. See
//! `mscribe_bench::claims` for what is measured. `--pool`, `--instances`,
//! `--standby-ms` (the claim affinity's standby delay; 0 turns it off),
//! `--ahead-ms` (how long before its instant a fire is claimed; 0: at it),
//! `--staggered` (the jobs' phases spread over 100 slots of the second) and
//! `--coalesce-claims` (each instance sends one claim statement at a time,
//! merging the claims that come meanwhile) are for profiling.

use std::path::PathBuf;

use mscribe_bench::claims::{self, ClaimsParams, ClaimsResult};
use mscribe_bench::report::Mode;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("unavailable") => cmd_unavailable(&args[1..]),
        Some("report") => cmd_report(&args[1..]),
        Some("child") => claims::child_main(args.get(1).map_or("", String::as_str)),
        _ => Err("usage: claims run [--quick|--full] [--url URL] [--out FILE] [--md FILE] | claims unavailable --md FILE [--why TEXT] | claims report --results FILE [--md FILE]".to_owned()),
    };
    if let Err(e) = r {
        eprintln!("claims: error: {e}");
        std::process::exit(2);
    }
}

fn opt(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn num<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>, String> {
    opt(args, name).map(|v| v.parse().map_err(|_| format!("bad {name} {v:?}"))).transpose()
}

fn write(path: &PathBuf, text: &str) -> Result<(), String> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn md_path(args: &[String]) -> PathBuf {
    PathBuf::from(opt(args, "--md").unwrap_or_else(|| "target/bench/claims.md".to_owned()))
}

fn cmd_run(args: &[String]) -> Result<(), String> {
    let mode = if args.iter().any(|a| a == "--full") { Mode::Full } else { Mode::Quick };
    let mut p = ClaimsParams::for_mode(mode);
    if let Some(v) = num(args, "--instances")? {
        p.instances = v;
    }
    if let Some(v) = num(args, "--jobs")? {
        p.jobs = v;
    }
    if let Some(v) = num(args, "--window")? {
        p.window_s = v;
    }
    if let Some(v) = num(args, "--warmup")? {
        p.warmup_s = v;
    }
    if let Some(v) = num(args, "--pool")? {
        p.pool = v;
    }
    if let Some(v) = num(args, "--lease-ms")? {
        p.lease_ms = v;
    }
    if let Some(v) = num(args, "--ahead-ms")? {
        p.ahead_ms = v;
    }
    if let Some(v) = num(args, "--standby-ms")? {
        p.standby_ms = v;
    }
    p.coalesce_claims = args.iter().any(|a| a == "--coalesce-claims");
    p.staggered = args.iter().any(|a| a == "--staggered");
    let mode_flag = if mode == Mode::Full { "--full" } else { "--quick" };
    let command = opt(args, "--command").unwrap_or_else(|| format!("claims run {mode_flag}"));
    let out =
        PathBuf::from(opt(args, "--out").unwrap_or_else(|| "target/bench/claims.json".into()));
    let md = md_path(args);
    let url = opt(args, "--url")
        .or_else(|| std::env::var("MSCRIBE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()));
    let Some(url) = url else {
        let why = "no Postgres URL (pass --url, or set MSCRIBE_TEST_POSTGRES_URL; scripts/ensure-postgres.sh prints one).";
        write(&md, &claims::unavailable(p.instances, why))?;
        return Err(why.to_owned());
    };
    eprintln!(
        "claims: {} instances x {} jobs every {} ms, window {} s after {:.0} s, pool {}",
        p.instances, p.jobs, p.interval_ms, p.window_s, p.warmup_s, p.pool
    );
    let keep = args.iter().any(|a| a == "--keep-db");
    let r = claims::run(&p, mode, &url, keep);
    write(&out, &serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?)?;
    let text = claims::markdown(&r, &command);
    write(&md, &text)?;
    eprintln!("claims: wrote {} and {} ({:.0} s)", out.display(), md.display(), r.run_s);
    print!("{text}");
    match &r.note {
        Some(n) if r.db.is_none() => Err(n.clone()),
        _ => Ok(()),
    }
}

fn cmd_unavailable(args: &[String]) -> Result<(), String> {
    let why = opt(args, "--why").unwrap_or_else(|| "no Postgres server could be had.".to_owned());
    let instances = num(args, "--instances")?.unwrap_or(3);
    write(&md_path(args), &claims::unavailable(instances, &why))
}

fn cmd_report(args: &[String]) -> Result<(), String> {
    let path = opt(args, "--results").unwrap_or_else(|| "target/bench/claims.json".to_owned());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let r: ClaimsResult = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mode_flag = if r.mode == Mode::Full { "--full" } else { "--quick" };
    let command = opt(args, "--command").unwrap_or_else(|| format!("claims run {mode_flag}"));
    let text = claims::markdown(&r, &command);
    write(&md_path(args), &text)?;
    print!("{text}");
    Ok(())
}
