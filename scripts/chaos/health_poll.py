#!/usr/bin/env python3
"""Polls /health-check of running mscribe instances, for scripts/chaos.sh.

    health_poll.py --target NAME=URL [--target ...] --token T --out FILE
                   --duration SECONDS [--interval 0.25] [--timeout 5]

One thread per target asks GET URL/health-check with the bearer token (so
each check's message is in the body), every --interval seconds, until
--duration has passed. Each answer is one JSON line in --out: the send
time (Unix seconds), the target, how long the answer took, the HTTP code,
the overall status, and each check's status, latency and message; or the
error when there was no answer within --timeout. Standard library only.
"""

import argparse
import json
import threading
import time
import urllib.error
import urllib.request


def poll(name, url, token, timeout, interval, deadline, out, lock):
    while time.time() < deadline:
        sent = time.time()
        rec = {"t": sent, "target": name}
        req = urllib.request.Request(
            url.rstrip("/") + "/health-check",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            try:
                resp = urllib.request.urlopen(req, timeout=timeout)
                code, body = resp.status, resp.read()
            except urllib.error.HTTPError as e:  # 503 carries a body too
                code, body = e.code, e.read()
            rec["elapsed_s"] = round(time.time() - sent, 4)
            rec["code"] = code
            try:
                doc = json.loads(body)
                rec["status"] = doc.get("status")
                rec["checks"] = {
                    k: {
                        "status": v.get("status"),
                        "latency_ms": v.get("latency_ms"),
                        "message": v.get("message"),
                    }
                    for k, v in (doc.get("checks") or {}).items()
                }
            except ValueError:
                rec["status"] = None
                rec["body"] = body[:200].decode("utf-8", "replace")
        except Exception as e:  # no answer: refused, timed out, reset
            rec["elapsed_s"] = round(time.time() - sent, 4)
            rec["code"] = None
            rec["error"] = f"{type(e).__name__}: {e}"
        with lock:
            out.write(json.dumps(rec) + "\n")
            out.flush()
        rest = interval - (time.time() - sent)
        if rest > 0:
            time.sleep(rest)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", action="append", required=True, help="NAME=URL")
    ap.add_argument("--token", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--interval", type=float, default=0.25)
    ap.add_argument("--timeout", type=float, default=5.0)
    a = ap.parse_args()
    deadline = time.time() + a.duration
    lock = threading.Lock()
    with open(a.out, "a", encoding="utf-8") as out:
        threads = []
        for t in a.target:
            name, _, url = t.partition("=")
            th = threading.Thread(
                target=poll,
                args=(name, url, a.token, a.timeout, a.interval, deadline, out, lock),
                daemon=True,
            )
            th.start()
            threads.append(th)
        for th in threads:
            th.join(a.duration + a.timeout + 5)


if __name__ == "__main__":
    main()
