#!/usr/bin/env python3
"""Counts what a chaos run left in the database, for scripts/chaos.sh.

    analyze.py --backend postgres|sqlite --db URL_OR_PATH --events FILE
               --config scripts/chaos/chaos.toml --tick-job ID
               [--slow-job ID] [--health FILE] [--min-fires N]
               [--probe-timeout S] [--health-ttl S] [--json OUT] [--label L]

Reads every execution row, the fire claims and the instances from the
database (Postgres through psql, SQLite through Python's sqlite3), and the
run's events (starts, kills, outages: JSON lines written by chaos.sh).

Per job and scheduled instant (a "slot" on the job's grid between its first
and last recorded fire):

- a record is one execution (execution_id) whose last row is final (any
  status but `running`); its last row is the one with the highest fencing
  token (leases), then the highest attempt;
- duplicate: a slot with more than one record;
- accounted: a slot with a record that ran (succeeded, failed, timed_out,
  cancelled, retries_exhausted), a run cut by a kill whose `abandoned` row
  says the instance that took the fire over did not run it again (its
  misfire policy) (counted also as cut_not_rerun), or a `skipped` record
  with a reason;
- unaccounted: every other slot of the grid: no row at all (missing; with
  or without a claim), only `running` rows (left running), or only an
  `abandoned` row (an instance died mid-run and nobody retook the fire).

Also: the recovery after each kill (the next fire of the tick job recorded
by another instance; the restarted instance's first fire; for a run of the
slow job in progress on the killed instance, when another instance retook
it), and /health-check during each outage compared with server/README.md
("Database outages": the `database` check unhealthy, the `scheduler` check
degraded; overall unhealthy, 503) and with its timeout.

Prints a summary; exits 1 when the targets of issue 20 are missed:
duplicates > 0 or unaccounted slots > 0 (or fewer fires of the tick job
than --min-fires). A health answer that does not match the README is
reported, and fails the run only with MSCRIBE_CHAOS_HEALTH_GATE=1.
"""

import argparse
import csv
import io
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import datetime

RAN = {"succeeded", "failed", "timed_out", "cancelled", "retries_exhausted"}


def parse_ts(s):
    """An RFC 3339 timestamp (SQLite's text) as Unix milliseconds."""
    if s is None or s == "":
        return None
    s = s.strip().replace(" ", "T")
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    # fromisoformat takes at most 6 fractional digits.
    if "." in s:
        head, frac = s.split(".", 1)
        digits = "".join(c for c in frac if c.isdigit())
        tz = frac[len(digits):]
        s = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    dt = datetime.fromisoformat(s)
    return dt.timestamp() * 1000.0


def pg_query(url, sql):
    out = subprocess.run(
        ["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
         f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)"],
        check=True, capture_output=True, text=True, timeout=300,
    ).stdout
    return list(csv.reader(io.StringIO(out)))


def ms(v):
    return None if v in (None, "") else float(v)


def load(backend, db):
    if backend == "postgres":
        ep = "(extract(epoch FROM {0}) * 1000)::float8"
        has_fence = pg_query(db, (
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = 'scheduled_job_executions' "
            "AND column_name = 'fence'"))[0][0] != "0"
        fence = "coalesce(fence, 0)" if has_fence else "0"
        rows = pg_query(db, (
            "SELECT job_id, execution_id::text, attempt, status, "
            f"{ep.format('scheduled_at')}, {ep.format('started_at')}, "
            f"{ep.format('completed_at')}, instance_id, left(coalesce(error, ''), 300), "
            f"{fence} FROM scheduled_job_executions"))
        claims = pg_query(db, (
            f"SELECT job_id, {ep.format('scheduled_at')}, instance_id, "
            f"{ep.format('claimed_at')} FROM fire_claims"))
        insts = pg_query(db, (
            f"SELECT instance_id, {ep.format('started_at')} FROM scheduler_instances"))
        rows = [(r[0], r[1], int(r[2]), r[3], ms(r[4]), ms(r[5]), ms(r[6]), r[7], r[8],
                 int(r[9])) for r in rows]
        claims = [(c[0], ms(c[1]), c[2], ms(c[3])) for c in claims]
        insts = [(i[0], ms(i[1])) for i in insts]
    else:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        cols = {c[1] for c in con.execute("PRAGMA table_info(scheduled_job_executions)")}
        fence = "coalesce(fence, 0)" if "fence" in cols else "0"
        rows = [(r[0], r[1], int(r[2]), r[3], parse_ts(r[4]), parse_ts(r[5]),
                 parse_ts(r[6]), r[7], (r[8] or "")[:300], int(r[9]))
                for r in con.execute(
                    "SELECT job_id, execution_id, attempt, status, scheduled_at, "
                    f"started_at, completed_at, instance_id, error, {fence} "
                    "FROM scheduled_job_executions")]
        claims = [(c[0], parse_ts(c[1]), c[2], parse_ts(c[3]))
                  for c in con.execute(
                      "SELECT job_id, scheduled_at, instance_id, claimed_at FROM fire_claims")]
        insts = [(i[0], parse_ts(i[1]))
                 for i in con.execute("SELECT instance_id, started_at FROM scheduler_instances")]
        con.close()
    # Round nominal times to the millisecond: the grid is in whole ms.
    rows = [(r[0], r[1], r[2], r[3], round(r[4]), r[5], r[6], r[7], r[8], r[9]) for r in rows]
    claims = [(c[0], round(c[1]), c[2], c[3]) for c in claims]
    return rows, claims, insts


# Jobs that every instance runs (not claimed): not counted.
PER_INSTANCE = {"log-rotation", "temp-cleanup", "security-scan", "health-snapshot"}


def period_ms(schedule):
    """The period of an interval schedule: 100 (ms), "100ms", "2s", "@every 4s"."""
    if isinstance(schedule, int):
        return schedule
    s = schedule.strip()
    if s.startswith("@every"):
        s = s[len("@every"):].strip()
    units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
    for suffix, mult in units:
        if s.endswith(suffix) and s[: -len(suffix)].strip().isdigit():
            return int(s[: -len(suffix)]) * mult
    raise SystemExit(f"analyze.py: schedule {schedule!r} is not an interval")


def jobs_from_config(path):
    import tomllib

    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    jobs = {}
    for job, sec in (cfg.get("jobs") or {}).items():
        if job in PER_INSTANCE or not sec.get("enabled", True) or "schedule" not in sec:
            continue
        jobs[job] = period_ms(sec["schedule"])
    return jobs


def load_events(path):
    ev = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                ev.append(json.loads(line))
    ev.sort(key=lambda e: e["t"])
    return ev


def match_instances(events, insts):
    """Gives each start event the instance id whose row it created: the
    earliest unmatched instance started after it (starts are sequential)."""
    pool = sorted(insts, key=lambda i: i[1])
    used = set()
    for e in events:
        if e["type"] != "start":
            continue
        t = e["t"] * 1000.0 - 1000.0
        for iid, st in pool:
            if iid not in used and st is not None and st >= t:
                e["instance"] = iid
                used.add(iid)
                break
    # Each kill is of the instance the slot last started.
    current = {}
    for e in events:
        if e["type"] == "start":
            current[e["slot"]] = e.get("instance")
        elif e["type"] in ("kill", "stop"):
            e["instance"] = current.get(e["slot"])


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def fmt_s(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def analyze_job(job, period, rows, claims, kills, outages):
    by_slot = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r[0] == job:
            by_slot[r[4]][r[1]].append(r)
    claim_of = {c[1]: c for c in claims if c[0] == job}
    res = {"job": job, "period_ms": period}
    if not by_slot:
        res.update(slots=0, note="no rows")
        return res, []
    first, last = min(by_slot), max(by_slot)
    off_grid = [s for s in by_slot if (s - first) % period != 0]
    expected = list(range(first, last + period, period))
    c = defaultdict(int)
    unaccounted = []
    reasons = defaultdict(int)
    dup_examples = []
    for slot in expected:
        execs = by_slot.get(slot, {})
        finals = []
        for ex_rows in execs.values():
            # The run's last word: the row written under the newest lease
            # (fence), then the latest attempt. A new owner that took the
            # fire over writes under a higher fence, and may record the
            # fire as skipped (attempt 0) after the dead owner's attempt 1.
            final = max(ex_rows, key=lambda r: (r[9], r[2]))
            finals.append(final)
        terminal = [f for f in finals if f[3] != "running"]
        ran = [f for f in terminal if f[3] in RAN]
        skipped = [f for f in terminal if f[3] == "skipped"]
        skipped_reason = [f for f in skipped if f[8].strip()]
        if any(f[3] == "running" for f in finals):
            c["left_running"] += 1
        if len(terminal) > 1:
            c["duplicates"] += 1
            if len(ran) > 1:
                c["dup_ran_twice"] += 1
            elif ran:
                c["dup_ran_and_other"] += 1
            else:
                c["dup_not_run"] += 1
            if len(dup_examples) < 5:
                dup_examples.append({"scheduled_ms": slot, "records": [
                    {"status": f[3], "instance": f[7], "error": f[8][:120]} for f in terminal]})
        # A run cut by a kill that the instance taking the fire over did not
        # run again (its misfire policy), with the row saying so: a run
        # that ended, and its final record.
        cut = [f for f in terminal if f[3] == "abandoned"
               and "took the fire over" in f[8] and "not run again" in f[8]]
        if ran:
            c["ran"] += 1
        elif cut:
            c["ran"] += 1
            c["cut_not_rerun"] += 1
        elif skipped_reason:
            c["skipped"] += 1
            reasons[re.sub(r"\b[0-9a-f]{16}\b", "<id>", skipped_reason[0][8]).split(":")[0][:70]] += 1
        else:
            if not execs:
                kind = "missing_claimed" if slot in claim_of else "missing_unclaimed"
            elif any(f[3] == "abandoned" for f in finals):
                kind = "abandoned"
            elif any(f[3] == "running" for f in finals):
                kind = "running_only"
            else:
                kind = "skipped_without_reason"
            c[kind] += 1
            unaccounted.append((slot, kind, claim_of.get(slot)))
    # Where the unaccounted slots fall: lost with a killed instance (it held
    # the claim or the row, and was killed after), in an outage, or other.
    where = defaultdict(int)
    for slot, kind, claim in unaccounted:
        owner = claim[2] if claim else None
        if owner is None:
            execs = by_slot.get(slot, {})
            owners = {r[7] for ex in execs.values() for r in ex}
            owner = next(iter(owners)) if len(owners) == 1 else None
        t = slot / 1000.0
        if owner is not None and any(k.get("instance") == owner and k["t"] >= t - 1
                                     for k in kills):
            where["killed_owner"] += 1
        elif any(o0 - 2 <= t <= o1 + 15 for o0, o1 in outages):
            where["outage"] += 1
        else:
            where["other"] += 1
    res.update(
        slots=len(expected),
        first_ms=first, last_ms=last,
        off_grid=len(off_grid),
        ran=c["ran"], skipped=c["skipped"],
        skip_reasons=dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        duplicates=c["duplicates"],
        dup_ran_twice=c["dup_ran_twice"], dup_ran_and_other=c["dup_ran_and_other"],
        dup_not_run=c["dup_not_run"], dup_examples=dup_examples,
        left_running=c["left_running"],
        unaccounted=len(unaccounted),
        missing_claimed=c["missing_claimed"], missing_unclaimed=c["missing_unclaimed"],
        abandoned=c["abandoned"], running_only=c["running_only"], cut_not_rerun=c["cut_not_rerun"],
        skipped_without_reason=c["skipped_without_reason"],
        unaccounted_where=dict(where),
        unaccounted_examples=[{"scheduled_ms": s, "kind": k,
                               "claimed_by": (cl[2] if cl else None)}
                              for s, k, cl in unaccounted[:10]],
    )
    return res, unaccounted


def recovery(events, rows, tick_job, slow_job):
    kills = [e for e in events if e["type"] == "kill"]
    starts = [e for e in events if e["type"] == "start"]
    tick = sorted((r for r in rows if r[0] == tick_job), key=lambda r: r[5])
    out = []
    for k in kills:
        tk = k["t"] * 1000.0
        victim = k.get("instance")
        rec = {"t": k["t"], "slot": k["slot"], "instance": victim}
        nxt = next((r for r in tick if r[5] > tk and r[7] != victim), None)
        rec["next_fire_other_s"] = None if nxt is None else (nxt[5] - tk) / 1000.0
        # The restarted instance: the slot's next start after the kill.
        st = next((s for s in starts if s["slot"] == k["slot"] and s["t"] > k["t"]), None)
        if st is not None and st.get("instance"):
            first = next((r for r in tick if r[7] == st["instance"]), None)
            rec["restart_first_fire_s"] = None if first is None else (first[5] - tk) / 1000.0
        # Runs of the slow job in progress on the killed instance.
        inflight = []
        if slow_job and victim:
            slots = {}
            for r in rows:
                if (r[0] == slow_job and r[7] == victim and r[5] is not None and r[5] < tk
                        and (r[6] is None or r[3] == "abandoned" or r[6] > tk)):
                    slots[r[4]] = r
            for slot in sorted(slots):
                later = [r for r in rows if r[0] == slow_job and r[4] == slot
                         and r[7] != victim and r[5] is not None and r[5] > tk]
                first = min(later, key=lambda r: r[5]) if later else None
                own = slots[slot]
                retaken = None if first is None else (first[5] - tk) / 1000.0
                # With leases, the store marks the dead owner's attempt
                # abandoned when another instance takes the fire over
                # ("... took the fire over (fence N)"): that is the retake,
                # even when the new owner wrote no row of its own.
                took_over = own[3] == "abandoned" and "took the fire over" in own[8]
                if retaken is None and took_over and own[6] is not None:
                    retaken = (own[6] - tk) / 1000.0
                inflight.append({
                    "scheduled_ms": slot,
                    "retaken_after_s": retaken,
                    "retaken_run_recorded": first is not None,
                    "final_status": own[3],
                })
        rec["inflight_slow_runs"] = inflight
        out.append(rec)
    return out


def health_report(path, outages, probe_timeout, ttl):
    recs = []
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            recs = [json.loads(line) for line in f if line.strip()]
    res = []
    for i, (o0, o1) in enumerate(outages):
        during = [r for r in recs if o0 <= r["t"] <= o1]
        # Once the cached answer from before the outage has expired and a
        # refresh could time out, and answered before the outage ended.
        settled = [r for r in during if r["t"] >= o0 + ttl + probe_timeout
                   and r["t"] + r["elapsed_s"] <= o1]
        elapsed = [r["elapsed_s"] for r in during]
        codes = defaultdict(int)
        overall = defaultdict(int)
        checks = defaultdict(lambda: defaultdict(int))
        messages = defaultdict(set)
        for r in settled:
            codes[str(r.get("code"))] += 1
            overall[str(r.get("status"))] += 1
            for name, ch in (r.get("checks") or {}).items():
                checks[name][str(ch.get("status"))] += 1
                if ch.get("message") and len(messages[name]) < 3:
                    messages[name].add(ch["message"][:160])
        # Back to healthy after the outage, per target.
        recovered = {}
        for target in sorted({r["target"] for r in recs}):
            after = [r for r in recs if r["target"] == target and r["t"] > o1]
            ok = next((r for r in after if r.get("status") == "healthy"), None)
            recovered[target] = None if ok is None else round(ok["t"] + ok["elapsed_s"] - o1, 3)
        limit = probe_timeout + 0.25
        slow = [e for e in elapsed if e > limit]
        db_ok = set(checks.get("database", {})) == {"unhealthy"}
        sched_ok = set(checks.get("scheduler", {})) == {"degraded"}
        overall_ok = set(overall) == {"unhealthy"} and set(codes) == {"503"}
        res.append({
            "outage": i + 1, "start": o0, "end": o1, "answers": len(during),
            "answer_s_p50": pct(elapsed, 50), "answer_s_p95": pct(elapsed, 95),
            "answer_s_max": max(elapsed) if elapsed else None,
            "answers_over_limit": len(slow), "limit_s": limit,
            "codes": dict(codes), "overall": dict(overall),
            "checks": {k: dict(v) for k, v in checks.items()},
            "messages": {k: sorted(v) for k, v in messages.items()},
            "healthy_again_after_s": recovered,
            "matches_readme": bool(db_ok and sched_ok and overall_ok and not slow and settled),
            "mismatches": [m for m, bad in [
                ("database check not always unhealthy", not db_ok),
                ("scheduler check not always degraded", not sched_ok),
                ("overall not always unhealthy/503", not overall_ok),
                (f"{len(slow)} answers slower than {limit:.2f}s", bool(slow)),
                ("no answers after the cache expired", not settled),
            ] if bad],
        })
    return res


def table(paths):
    """One line per backend from the summary JSON files of a chaos run."""
    rows = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                s = json.load(f)
        except (OSError, ValueError):
            continue
        jobs = [j for j in s["jobs"] if j.get("slots")]
        tick = jobs[0] if jobs else {}
        rs = s.get("recovery_summary", {})
        hmax = max((h["answer_s_max"] or 0 for h in s["health"]), default=None)
        rows.append((s["label"], tick.get("slots", 0), s["kills"], s["outages"],
                     sum(j["duplicates"] for j in jobs), sum(j["unaccounted"] for j in jobs),
                     sum(j["left_running"] for j in jobs),
                     fmt_s(rs.get("next_fire_other_max_s")),
                     f"{rs.get('retaken', 0)}/{rs.get('inflight_slow_runs', 0)}",
                     fmt_s(hmax), "FAIL" if s["failures"] else "PASS"))
    hdr = ("run", "tick fires", "kills", "outages", "dup", "unacc", "running",
           "recovery max s", "retaken", "health max s", "result")
    w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    print("\n=== chaos summary (dup/unacc/running: slots, all jobs; retaken: in-flight runs of"
          " the slow job retaken / in flight at a kill)")
    for r in [hdr] + rows:
        print("  ".join(str(v).rjust(w[i]) if i else str(v).ljust(w[i]) for i, v in enumerate(r)))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--table":
        table(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["postgres", "sqlite"], required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--config", default="", help="the chaos TOML: the claimed jobs' schedules")
    ap.add_argument("--jobs", default="", help="ID=PERIOD_MS,... instead of --config")
    ap.add_argument("--tick-job", required=True)
    ap.add_argument("--slow-job", default="")
    ap.add_argument("--health", default="")
    ap.add_argument("--min-fires", type=int, default=0)
    ap.add_argument("--probe-timeout", type=float, default=1.0)
    ap.add_argument("--health-ttl", type=float, default=2.0)
    ap.add_argument("--json", default="")
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    jobs = {}
    if a.jobs:
        for part in a.jobs.split(","):
            k, _, v = part.partition("=")
            jobs[k] = int(v)
    else:
        jobs = jobs_from_config(a.config)
    rows, claims, insts = load(a.backend, a.db)
    events = load_events(a.events)
    match_instances(events, insts)
    kills = [e for e in events if e["type"] == "kill"]
    outages = []
    o_start = None
    for e in events:
        if e["type"] == "outage_start":
            o_start = e["t"]
        elif e["type"] == "outage_end" and o_start is not None:
            outages.append((o_start, e["t"]))
            o_start = None

    label = a.label or a.backend
    results = []
    for job, period in jobs.items():
        r, _ = analyze_job(job, period, rows, claims, kills, outages)
        results.append(r)
    rec = recovery(events, rows, a.tick_job, a.slow_job)
    health = health_report(a.health, outages, a.probe_timeout, a.health_ttl)

    starts = [e for e in events if e["type"] == "start"]
    run_t = [e["t"] for e in events if e["type"] in ("run_start", "run_end")]
    summary = {
        "label": label, "backend": a.backend,
        "run_seconds": (max(run_t) - min(run_t)) if len(run_t) >= 2 else None,
        "instances_started": len(starts), "kills": len(kills), "outages": len(outages),
        "rows": len(rows), "claims": len(claims), "jobs": results,
        "recovery": rec, "health": health,
    }

    # ---- the summary table ----
    p = print
    p(f"\n=== chaos {label}: {len(kills)} kills, {len(outages)} outages, "
      f"{len(starts)} starts, {len(rows)} rows, run {fmt_s(summary['run_seconds'], 0)} s")
    hdr = (f"{'job':<22}{'every':>7}{'slots':>8}{'ran':>8}{'skipped':>8}{'dup':>6}"
           f"{'unacc':>7}{'missing':>8}{'aband':>7}{'running':>8}")
    p(hdr)
    p("-" * len(hdr))
    for r in results:
        if not r.get("slots"):
            p(f"{r['job']:<22}{r['period_ms']:>6}ms  (no rows)")
            continue
        p(f"{r['job']:<22}{r['period_ms']:>6}ms{r['slots']:>7}{r['ran']:>8}{r['skipped']:>8}"
          f"{r['duplicates']:>6}{r['unaccounted']:>7}"
          f"{r['missing_claimed'] + r['missing_unclaimed']:>8}{r['abandoned']:>7}"
          f"{r['left_running']:>8}")
    p("  slots: grid instants from the first to the last fire; ran/skipped: accounted;"
      " dup: slots with >1 final record;")
    p("  unacc = missing (no row) + aband (only an abandoned row) + running-only"
      " + skipped without reason; running: slots with a row left running")
    for r in results:
        if not r.get("slots"):
            continue
        if r["duplicates"]:
            p(f"  {r['job']}: duplicates: {r['dup_ran_twice']} ran twice, "
              f"{r['dup_ran_and_other']} ran + another record, {r['dup_not_run']} "
              f"several records none ran (e.g. each instance's skip in an outage)")
            for ex in r["dup_examples"][:2]:
                p(f"    e.g. {ex}")
        if r["unaccounted"]:
            p(f"  {r['job']}: unaccounted: {r['missing_claimed']} claimed but no row, "
              f"{r['missing_unclaimed']} no claim and no row, {r['abandoned']} abandoned, "
              f"{r['running_only']} only running, {r['skipped_without_reason']} skip w/o reason;"
              f" where: {r['unaccounted_where']}")
        if r["skip_reasons"]:
            p(f"  {r['job']}: skip reasons: {r['skip_reasons']}")
        if r["off_grid"]:
            p(f"  {r['job']}: {r['off_grid']} rows off the grid (not counted)")

    nxt = [k["next_fire_other_s"] for k in rec if k.get("next_fire_other_s") is not None]
    rst = [k["restart_first_fire_s"] for k in rec if k.get("restart_first_fire_s") is not None]
    infl = [x for k in rec for x in k["inflight_slow_runs"]]
    retaken = [x["retaken_after_s"] for x in infl if x["retaken_after_s"] is not None]
    recorded = sum(1 for x in infl if x.get("retaken_run_recorded"))
    summary["recovery_summary"] = {
        "next_fire_other_p50_s": pct(nxt, 50), "next_fire_other_max_s": max(nxt) if nxt else None,
        "restart_first_fire_p50_s": pct(rst, 50),
        "restart_first_fire_max_s": max(rst) if rst else None,
        "inflight_slow_runs": len(infl), "retaken": len(retaken),
        "retaken_with_a_record": recorded,
        "retaken_p50_s": pct(retaken, 50), "retaken_max_s": max(retaken) if retaken else None,
    }
    rs = summary["recovery_summary"]
    p(f"recovery after a kill ({len(rec)} kills): next {a.tick_job} fire on another instance "
      f"p50 {fmt_s(rs['next_fire_other_p50_s'])} s, max {fmt_s(rs['next_fire_other_max_s'])} s;"
      f" restarted instance's first fire p50 {fmt_s(rs['restart_first_fire_p50_s'])} s, "
      f"max {fmt_s(rs['restart_first_fire_max_s'])} s")
    if a.slow_job:
        p(f"  {a.slow_job} runs in progress on a killed instance: {len(infl)}; retaken by another"
          f" instance: {len(retaken)}"
          + (f" (p50 {fmt_s(rs['retaken_p50_s'])} s, max {fmt_s(rs['retaken_max_s'])} s after the"
             f" kill; {recorded} of them with a row of the retaken run)"
             if retaken else " (none retaken)"))
    for h in health:
        p(f"health during outage {h['outage']} ({h['end'] - h['start']:.1f} s, "
          f"{h['answers']} answers): answer time p50 {fmt_s(h['answer_s_p50'])} s, "
          f"p95 {fmt_s(h['answer_s_p95'])} s, max {fmt_s(h['answer_s_max'])} s "
          f"(limit {h['limit_s']:.2f} s: probe_timeout + 0.25 s)")
        p(f"  after the cache expired: codes {h['codes']}, overall {h['overall']}, "
          f"checks {h['checks']}")
        for name, msgs in h["messages"].items():
            p(f"  {name}: {msgs}")
        p(f"  healthy again after the outage: {h['healthy_again_after_s']} s")
        p("  README (server/README.md, Database outages): database unhealthy, scheduler "
          "degraded -> " + ("MATCHES" if h["matches_readme"]
                            else "DOES NOT MATCH: " + "; ".join(h["mismatches"])))

    failures = []
    tick = next((r for r in results if r["job"] == a.tick_job), None)
    for r in results:
        if r.get("duplicates"):
            failures.append(f"{r['job']}: {r['duplicates']} duplicate slots")
        if r.get("unaccounted"):
            failures.append(f"{r['job']}: {r['unaccounted']} unaccounted slots")
    if a.min_fires and (tick is None or tick.get("slots", 0) < a.min_fires):
        failures.append(f"{a.tick_job}: {0 if tick is None else tick.get('slots', 0)} fires, "
                        f"fewer than {a.min_fires}")
    health_bad = [h for h in health if not h["matches_readme"]]
    if health_bad and os.environ.get("MSCRIBE_CHAOS_HEALTH_GATE") == "1":
        failures.append(f"health did not match the README in {len(health_bad)} outage(s)")
    summary["failures"] = failures
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1, default=str)
    if failures:
        p(f"FAIL ({label}): " + "; ".join(failures))
        return 1
    p(f"PASS ({label}): 0 duplicates, 0 unaccounted slots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
