#!/usr/bin/env bash
# Chaos test with real processes (issue 20, point 10).
#
#   scripts/chaos.sh [--short|--long] [--backend postgres|sqlite|both]
#                    [--duration SECONDS] [--release|--debug] [--keep]
#
# Postgres: 3 `mscribe serve` instances with claim_fires on one fresh
# database, reached through a TCP proxy this script controls
# (scripts/chaos/proxy.py). SQLite: 2 instances on one file. The jobs are in
# scripts/chaos/chaos.toml: history-retention every 100 ms, metrics-aggregation
# every 2 s, database-backup every 4 s (on Postgres a run of it lasts
# 5 s (--short) or 12 s (--long), longer than the kill interval: see
# scripts/chaos/slow-job.sh).
#
# Every 3 s (--short) or 5 s (--long) one instance gets SIGKILL and is
# restarted half a second later. On
# Postgres, the proxy drops every connection and refuses new ones for 10 s
# (once in --short, every 3 minutes in --long; --long alternates a refusing
# outage with a black hole that holds connections unanswered), while
# scripts/chaos/health_poll.py asks each instance's /health-check. Kills
# pause during an outage: a restart needs the database (serve exits 2
# without it).
#
# After the faults the instances run undisturbed for the engine's lease
# (15 s) plus a slow run and a margin, so that a run killed near the end can
# be retaken and finish. Then every instance is stopped with SIGTERM, and
# scripts/chaos/analyze.py counts from the database, per job and scheduled
# instant: duplicate final records, unaccounted slots (no row, only an
# `abandoned` or `running` row, a skip without a reason), runs left
# `running`; the recovery time after each kill; the health answers during
# each outage against server/README.md. Exits 1 when a backend has
# duplicates or unaccounted slots (the targets of issue 20), or --long has
# fewer than 10,000 fires of the 100 ms job; 2 on a setup error.
#
# --short: 34 s of faults + 23 s quiet on Postgres, 13 + 18 s on SQLite;
#          about 100 s in all once built, debug binary (CI).
# --long: 1060 s of faults per backend (>= 10,000 fires of the 100 ms job),
#         release binary; about 37 min in all.
# --keep keeps the run directory and the Postgres database; a failed run
# keeps the run directory (logs, events, health answers, summary JSON).
# MSCRIBE_CHAOS_BIN=PATH uses that mscribe binary instead of building one.
# MSCRIBE_CHAOS_HEALTH_GATE=1 also fails a run whose /health-check during an
# outage does not match server/README.md (today it does not).
#
# Needs: cargo, python3 (3.11+), curl, psql (and a Postgres that
# scripts/ensure-postgres.sh can reach or start). On a Postgres server that
# others load (tests, benchmarks using up max_connections), give the run a
# cluster of its own, created and started by ensure-postgres.sh:
#   MSCRIBE_PG_PORT=5434 MSCRIBE_PG_CLUSTER=chaos scripts/chaos.sh --long
set -euo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CHAOS="$ROOT/scripts/chaos"

MODE=short
BACKENDS="postgres sqlite"
DURATION=""
PROFILE=""
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --short) MODE=short ;;
    --long) MODE=long ;;
    --backend)
      shift
      case "${1:-}" in
        postgres | sqlite) BACKENDS="$1" ;;
        both) BACKENDS="postgres sqlite" ;;
        *) echo "chaos: --backend takes postgres, sqlite or both" >&2; exit 2 ;;
      esac
      ;;
    --duration) shift; DURATION="${1:?--duration needs seconds}" ;;
    --release) PROFILE=release ;;
    --debug) PROFILE=debug ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "chaos: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$MODE" = short ]; then
  PG_DURATION="${DURATION:-34}"
  SQLITE_DURATION="${DURATION:-13}"
  KILL_EVERY=3        # seconds between kills
  SLOW_SECONDS=5      # a database-backup run on Postgres: > KILL_EVERY
  OUTAGE_EVERY=0      # one outage only
  FIRST_OUTAGE=10     # seconds into the Postgres run
  MIN_FIRES=0
  PROFILE="${PROFILE:-debug}"
else
  PG_DURATION="${DURATION:-1060}"
  SQLITE_DURATION="${DURATION:-1060}"
  KILL_EVERY=5
  SLOW_SECONDS=12
  OUTAGE_EVERY=180
  FIRST_OUTAGE=60
  MIN_FIRES=10000
  PROFILE="${PROFILE:-release}"
fi
OUTAGE_SECONDS=10
# After the faults, the instances run this long undisturbed before the
# stop, so that a run killed near the end can be retaken and finish: the
# engine's lease (15 s by default, and the server has no setting for it)
# plus a slow run, plus a margin.
LEASE_SECONDS=15
POLL_AFTER=10       # /health-check is polled this long after an outage
RESTART_DELAY=0.5   # between a kill and the restart
READY_TIMEOUT=30    # seconds for an instance to answer /livez
START_PATIENCE=60   # seconds of failed starts before giving up
STOP_TIMEOUT=20     # seconds for a graceful stop (shutdown_grace is 3 s)
TOKEN="chaos-admin-token-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"

log() { printf '%s chaos: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

for tool in cargo python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not on PATH"
done
python3 -c 'import sys, tomllib; sys.exit(0)' 2>/dev/null || die "python3 3.11+ (tomllib) is needed"

RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/mscribe-chaos.XXXXXX")"
PG_ADMIN_URL=""
PG_DB=""
FAILED=0
declare -a PGIDS=()  # every process group started: instances (and their children), proxy, poller

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  local g
  for g in "${PGIDS[@]}"; do
    kill -TERM -- "-$g" 2>/dev/null
  done
  sleep 0.3
  for g in "${PGIDS[@]}"; do
    kill -KILL -- "-$g" 2>/dev/null
  done
  local j
  for j in $(jobs -p); do kill -KILL "$j" 2>/dev/null; done # a nap's sleep
  wait 2>/dev/null
  if [ -n "$PG_DB" ] && [ "$KEEP" = 0 ]; then
    timeout 60 psql "$PG_ADMIN_URL" -X -q -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1
  elif [ -n "$PG_DB" ]; then
    log "kept the Postgres database $PG_DB"
  fi
  if [ "$KEEP" = 0 ] && [ "$FAILED" = 0 ] && [ "$rc" = 0 ]; then
    rm -rf "$RUN_DIR"
  else
    log "kept the run directory $RUN_DIR (logs, events, health answers, summary JSON)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# sleep that a signal interrupts at once (the traps run without waiting for it).
nap() {
  sleep "$1" &
  wait "$!" || true
}

now_ms() { local t="${EPOCHREALTIME/./}"; echo $((t / 1000)); }
now_s() { printf '%s' "$EPOCHREALTIME"; }

# Free TCP ports on 127.0.0.1 (bound together, then released).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Starts "$@" in its own process group, in the background; sets STARTED_PID.
start_group() {
  local out="$1"
  shift
  setsid "$@" >>"$out" 2>&1 </dev/null &
  STARTED_PID=$!
  # Still reaped by this shell, without a "Killed" line for each SIGKILL.
  disown "$STARTED_PID"
  PGIDS+=("$STARTED_PID")
}

# Waits up to $2 seconds for process $1 to exit; 0 if it did.
wait_exit() {
  local pid="$1" deadline=$(($(now_ms) + $2 * 1000))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
  return 0
}

# ---- build -----------------------------------------------------------------
if [ -n "${MSCRIBE_CHAOS_BIN:-}" ]; then
  BIN="$MSCRIBE_CHAOS_BIN"
else
  log "building mscribe ($PROFILE)"
  if [ "$PROFILE" = release ]; then
    (cd "$ROOT" && cargo build --release -p mscribe-server --bin mscribe) >&2
  else
    (cd "$ROOT" && cargo build -p mscribe-server --bin mscribe) >&2
  fi
  BIN="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/$PROFILE/mscribe"
fi
[ -x "$BIN" ] || die "no mscribe binary at $BIN"
log "binary $BIN; run directory $RUN_DIR; mode $MODE"

# ---- one backend's run -----------------------------------------------------
# Globals of the current run.
BACKEND=""
N=0
DB_URL=""          # what the instances use (through the proxy on Postgres)
DIRECT_URL=""      # what the analysis uses
PROXY_PID=""
EVENTS=""
HEALTH=""
declare -a PORTS=() PIDS=() POLL_PIDS=()

event() { # type slot [extra-json]
  printf '{"t":%s,"type":"%s","slot":%s%s}\n' "$(now_s)" "$1" "${2:-null}" "${3:-}" >>"$EVENTS"
}

start_instance() { # slot
  local i="$1" dir="$RUN_DIR/$BACKEND/i$1" try=0 give_up
  mkdir -p "$dir"
  # A start can fail for a while (the database server full of other
  # clients, say): try again for START_PATIENCE seconds.
  give_up=$(($(now_ms) + START_PATIENCE * 1000))
  while [ "$try" = 0 ] || [ "$(now_ms)" -lt "$give_up" ]; do
    try=$((try + 1))
    event start "$i"
    start_group "$dir/serve.log" env \
      MSCRIBE_LISTEN="127.0.0.1:${PORTS[$i]}" \
      MSCRIBE_DATABASE_URL="$DB_URL" \
      MSCRIBE_DATA_DIR="$dir/data" \
      MSCRIBE_LOG_DIR="$dir/logs" \
      MSCRIBE_BACKUP_DIR="$dir/backups" \
      MSCRIBE_ADMIN_TOKEN="$TOKEN" \
      MSCRIBE_JOBS_DATABASE_BACKUP_PG_DUMP="$CHAOS/slow-job.sh" \
      CHAOS_SLOW_SECONDS="$SLOW_SECONDS" \
      "$BIN" serve --config "$CHAOS/chaos.toml"
    PIDS[i]=$STARTED_PID
    local deadline=$(($(now_ms) + READY_TIMEOUT * 1000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
      if curl -fsS -m 1 -o /dev/null "http://127.0.0.1:${PORTS[$i]}/livez" 2>/dev/null; then
        event ready "$i"
        return 0
      fi
      kill -0 "${PIDS[$i]}" 2>/dev/null || break
      sleep 0.1
    done
    log "instance $i did not become ready (try $try); its log ends:"
    tail -n 2 "$dir/serve.log" >&2 || true
    kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    wait_exit "${PIDS[$i]}" 5 || true
    event start_failed "$i"
    sleep 1
  done
  die "instance $i of $BACKEND could not be started"
}

kill_instance() { # slot
  local i="$1"
  kill -KILL "${PIDS[$i]}" 2>/dev/null || true
  event kill "$i"
  wait_exit "${PIDS[$i]}" 5 || die "instance $i survived SIGKILL"
}

outage() { # number
  local n="$1" mode=refuse poll_for=$((OUTAGE_SECONDS + POLL_AFTER + 2)) i targets=()
  if [ "$MODE" = long ] && [ $((n % 2)) = 0 ]; then mode=blackhole; fi
  for ((i = 0; i < N; i++)); do targets+=(--target "i$i=http://127.0.0.1:${PORTS[$i]}"); done
  start_group "$RUN_DIR/$BACKEND/health_poll.log" python3 "$CHAOS/health_poll.py" \
    "${targets[@]}" --token "$TOKEN" --out "$HEALTH" --duration "$poll_for" --interval 0.25
  POLL_PIDS+=("$STARTED_PID")
  nap 2 # answers before the outage, for comparison
  echo "$mode" >"$RUN_DIR/postgres/proxy.mode"
  kill -USR1 "$PROXY_PID"
  event outage_start null ",\"mode\":\"$mode\""
  log "outage $n ($mode): Postgres away for ${OUTAGE_SECONDS}s"
  nap "$OUTAGE_SECONDS"
  kill -USR2 "$PROXY_PID"
  event outage_end null
  log "outage $n over"
}

start_proxy() { # upstream host:port
  local port_file="$RUN_DIR/postgres/proxy.port" deadline
  start_group "$RUN_DIR/postgres/proxy.log" python3 "$CHAOS/proxy.py" \
    --upstream "$1" --port-file "$port_file" --mode-file "$RUN_DIR/postgres/proxy.mode" \
    --log "$RUN_DIR/postgres/proxy.log"
  PROXY_PID=$STARTED_PID
  deadline=$(($(now_ms) + 10000))
  until [ -s "$port_file" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || die "the proxy did not start"
    kill -0 "$PROXY_PID" 2>/dev/null || die "the proxy exited: $(cat "$RUN_DIR/postgres/proxy.log")"
    sleep 0.1
  done
  PROXY_PORT="$(cat "$port_file")"
}

setup_postgres() {
  local url base params cred hostport
  # It may install and start Postgres: a few minutes at most.
  url="$(timeout 600 "$ROOT/scripts/ensure-postgres.sh")" ||
    die "no Postgres (scripts/ensure-postgres.sh failed)"
  command -v psql >/dev/null 2>&1 || die "psql is not on PATH"
  base="${url%%\?*}"
  params="${url#"$base"}"
  cred="${base%@*}"             # postgres://USER[:PW]
  hostport="${base##*@}"
  hostport="${hostport%%/*}"    # HOST:PORT
  PG_ADMIN_URL="$cred@$hostport/postgres$params"
  PG_DB="mscribe_chaos_$$_${RANDOM}"
  timeout 60 psql "$PG_ADMIN_URL" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" >/dev/null ||
    die "cannot create database $PG_DB"
  DIRECT_URL="$cred@$hostport/$PG_DB$params"
  mkdir -p "$RUN_DIR/postgres"
  start_proxy "$hostport"
  DB_URL="$cred@127.0.0.1:$PROXY_PORT/$PG_DB$params"
  log "Postgres database $PG_DB through the proxy on 127.0.0.1:$PROXY_PORT"
}

run_backend() { # postgres|sqlite
  BACKEND="$1"
  local duration outages_done=0 t0 t_end next_kill next_outage kills=0 i rc migrate_url settle
  mkdir -p "$RUN_DIR/$BACKEND"
  EVENTS="$RUN_DIR/$BACKEND/events.jsonl"
  HEALTH="$RUN_DIR/$BACKEND/health.jsonl"
  : >"$EVENTS"
  if [ "$BACKEND" = postgres ]; then
    N=3
    duration="$PG_DURATION"
    setup_postgres
    migrate_url="$DIRECT_URL"
  else
    N=2
    duration="$SQLITE_DURATION"
    DIRECT_URL="$RUN_DIR/sqlite/chaos.db"
    DB_URL="sqlite://$DIRECT_URL"
    migrate_url="$DB_URL"
  fi
  read -r -a PORTS <<<"$(free_ports "$N")"
  PIDS=()
  # Migrate once, directly, so that the starts do not race on it.
  MSCRIBE_DATABASE_URL="$migrate_url" MSCRIBE_LOG_TO_FILE=false \
    MSCRIBE_DATA_DIR="$RUN_DIR/$BACKEND/migrate" MSCRIBE_ADMIN_TOKEN="$TOKEN" \
    timeout 60 "$BIN" migrate --config "$CHAOS/chaos.toml" >"$RUN_DIR/$BACKEND/migrate.log" 2>&1 ||
    die "mscribe migrate failed: $(tail -n 5 "$RUN_DIR/$BACKEND/migrate.log")"
  event run_start null
  for ((i = 0; i < N; i++)); do start_instance "$i"; done
  log "$BACKEND: $N instances up on ports ${PORTS[*]}; running ${duration}s, a kill every ${KILL_EVERY}s"
  t0=$(now_ms)
  t_end=$((t0 + duration * 1000))
  next_kill=$((t0 + KILL_EVERY * 1000))
  next_outage=$((t0 + FIRST_OUTAGE * 1000))
  while [ "$(now_ms)" -lt "$t_end" ]; do
    if [ "$BACKEND" = postgres ] && [ "$(now_ms)" -ge "$next_outage" ] &&
      [ $(($(now_ms) + (OUTAGE_SECONDS + 4) * 1000)) -lt "$t_end" ]; then
      outages_done=$((outages_done + 1))
      outage "$outages_done"
      if [ "$OUTAGE_EVERY" -gt 0 ]; then
        next_outage=$((next_outage + OUTAGE_EVERY * 1000))
      else
        next_outage=$((t_end + 1))
      fi
      # Let the instances flush what they buffered before the next kill.
      [ "$next_kill" -ge $(($(now_ms) + 3000)) ] || next_kill=$(($(now_ms) + 3000))
    elif [ "$(now_ms)" -ge "$next_kill" ]; then
      i=$((kills % N))
      kills=$((kills + 1))
      kill_instance "$i"
      sleep "$RESTART_DELAY"
      start_instance "$i"
      next_kill=$((next_kill + KILL_EVERY * 1000))
      [ "$next_kill" -gt "$(now_ms)" ] || next_kill=$(($(now_ms) + KILL_EVERY * 1000))
    fi
    sleep 0.1
  done
  event faults_end null
  # The slow job is slow on Postgres only (slow-job.sh); on SQLite a run
  # takes well under a second.
  settle=$((LEASE_SECONDS + 3))
  [ "$BACKEND" != postgres ] || settle=$((settle + SLOW_SECONDS))
  log "$BACKEND: no more faults; ${settle}s for leases to expire and retaken runs to finish"
  nap "$settle"
  event run_end null
  for i in "${POLL_PIDS[@]}"; do wait_exit "$i" 30 || kill -KILL "$i" 2>/dev/null || true; done
  POLL_PIDS=()
  log "$BACKEND: stopping the instances with SIGTERM"
  for ((i = 0; i < N; i++)); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    event stop "$i"
  done
  for ((i = 0; i < N; i++)); do
    if ! wait_exit "${PIDS[$i]}" "$STOP_TIMEOUT"; then
      log "instance $i did not stop within ${STOP_TIMEOUT}s; killing it"
      kill -KILL "${PIDS[$i]}" 2>/dev/null || true
      event stop_timeout "$i"
      FAILED=1
    fi
  done
  if [ -n "$PROXY_PID" ]; then
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    wait_exit "$PROXY_PID" 5 || kill -KILL "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=""
  fi
  log "$BACKEND: counting"
  rc=0
  timeout 600 python3 "$CHAOS/analyze.py" --backend "$BACKEND" --db "$DIRECT_URL" \
    --events "$EVENTS" --health "$HEALTH" --config "$CHAOS/chaos.toml" \
    --tick-job history-retention --slow-job database-backup --min-fires "$MIN_FIRES" \
    --label "$BACKEND ($MODE, $N instances)" --json "$RUN_DIR/$BACKEND/summary.json" || rc=$?
  if [ "$rc" != 0 ]; then
    FAILED=1
    [ "$rc" = 1 ] || log "analyze.py failed with exit code $rc"
  fi
}

T_START=$(now_ms)
SUMMARIES=()
for b in $BACKENDS; do
  run_backend "$b"
  SUMMARIES+=("$RUN_DIR/$b/summary.json")
done
python3 "$CHAOS/analyze.py" --table "${SUMMARIES[@]}" || true
log "done in $((($(now_ms) - T_START) / 1000))s (after the build)"
if [ "$FAILED" != 0 ]; then
  log "FAILED: see the summaries above"
  exit 1
fi
