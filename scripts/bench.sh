#!/usr/bin/env bash
# Runs every benchmark and writes the results section of docs/BENCHMARKS.md.
#
#   scripts/bench.sh [--quick|--full] [--profile|--no-profile]
#
# --quick (default): short windows, fewer points; a few minutes on 2 cores
#                    once built (the first release build of the bench crate,
#                    its peers and the server takes several minutes more).
# --full:            10 s windows, every point, the MemoryStore and staggered
#                    variants at every size; about 25 minutes.
# --profile:         also samples the dispatch path with perf (on by default
#                    in --full when perf is installed).
#
# Claims on Postgres (benches/src/bin/claims.rs): 3 instances as child
# processes on one fresh database, 10,000 jobs on 1 s each with claims on;
# a 20 s window (--quick) or 60 s (--full), about 30 s or 90 s. Without a
# Postgres server its section says so.
#
# At the end it prints the targets table, the history rows (1d) and the
# stores' records per second (5, and 8: alternating rounds) from the report.
#
# Sections: the real-clock comparison with tokio-cron-scheduler, apalis-cron
# and a plain tokio loop (benches/src/bin/compare.rs, one child process per
# contender and size), the dispatch-rate sweep, simulation speed, the
# criterion benches (benches/benches/*.rs and storage/benches/store_write.rs,
# the latter against Postgres when one can be had), the health endpoint
# of the real `mscribe serve` under wrk on 127.0.0.1, and the claim path on
# Postgres with 3 instances (benches/src/bin/claims.rs). Raw results go to
# target/bench/. Run it on an otherwise idle machine: the load average is
# written into the report.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=quick
PROFILE=auto
for a in "$@"; do
  case "$a" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --profile) PROFILE=yes ;;
    --no-profile) PROFILE=no ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $a (use --quick, --full, --profile)" >&2; exit 2 ;;
  esac
done
[ "$PROFILE" = auto ] && { [ "$MODE" = full ] && PROFILE=yes || PROFILE=no; }

OUT=target/bench
mkdir -p "$OUT"
EXTRA="$OUT/extra.md"
: >"$EXTRA"
log() { echo "bench: $*" >&2; }
T0=$(date +%s)
log "mode $MODE; load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

# The load generator for the health endpoint (Debian's wrk); without it the
# comparison falls back to its in-process client.
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing wrk"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >&2; } ||
      log "wrk could not be installed; using the in-process load client"
  else
    log "wrk missing; using the in-process load client"
  fi
fi

# Postgres for the store bench (SQLite rows are measured regardless) and the
# claims bench (which says in its section when there is none).
PG_URL=""
if [ -x scripts/ensure-postgres.sh ] && PG_URL="$(scripts/ensure-postgres.sh)"; then
  export MSCRIBE_TEST_POSTGRES_URL="$PG_URL"
else
  PG_URL=""
  log "no Postgres server: the store bench measures SQLite only, the claims bench nothing"
fi

log "building (release)"
B0=$(date +%s)
cargo build --release -p mscribe-bench --bin compare --bin claims
cargo build --release -p mscribe-server --bin mscribe
cargo bench --no-run -q -p mscribe-bench
cargo bench --no-run -q -p mscribe-storage --bench store_write
BUILD_S=$(($(date +%s) - B0))

# Criterion benches. Old estimates of these groups are removed first so the
# report never mixes runs.
rm -rf target/criterion/next_after target/criterion/dispatch target/criterion/store_write_100k
C0=$(date +%s)
CRIT=()
[ "$MODE" = quick ] && CRIT=(-- --quick)
log "criterion: schedule, dispatch"
cargo bench -q -p mscribe-bench --bench schedule "${CRIT[@]}"
cargo bench -q -p mscribe-bench --bench dispatch "${CRIT[@]}"
log "criterion: store_write"
cargo bench -q -p mscribe-storage --bench store_write "${CRIT[@]}"
CRIT_S=$(($(date +%s) - C0))

# The same writers again in alternating rounds (each round runs each once,
# the order turning): the store's ratio to the fastest raw code, paired
# round by round, holds up on a host whose speed drifts, where criterion's
# back-to-back groups do not.
ROUNDS=2
[ "$MODE" = full ] && ROUNDS=6
log "stores in $ROUNDS alternating rounds"
{
  echo "### 8. Stores in alternating rounds (\`MSCRIBE_STORE_ALTERNATE=$ROUNDS\` \`storage/benches/store_write.rs\`)"
  echo
  echo "Each round writes the 100,000 records of section 5 once with every writer, each on a fresh database, in an order that turns from round to round. The ratio is the median over the rounds of the store's rate divided by the fastest raw writer's in the same round."
  echo
  MSCRIBE_STORE_ALTERNATE=$ROUNDS cargo bench -q -p mscribe-storage --bench store_write
  echo
} >"$OUT/stores_alternating.md"

log "comparison (real clock, simulation, health)"
target/release/compare run "--$MODE" --out "$OUT" --mscribe-bin target/release/mscribe

log "claims on Postgres, 3 instances"
CLAIMS_MD="$OUT/claims.md"
rm -f "$CLAIMS_MD"
if [ -n "$PG_URL" ]; then
  target/release/claims run "--$MODE" --url "$PG_URL" --out "$OUT/claims.json" --md "$CLAIMS_MD" \
    --command "scripts/bench.sh --$MODE" >/dev/null ||
    log "the claims bench failed (its section says why)"
else
  target/release/claims unavailable --md "$CLAIMS_MD" \
    --why "no Postgres server could be had (scripts/ensure-postgres.sh found none, could start none, or could not install one; its messages are in the run's log)."
fi
if [ -s "$CLAIMS_MD" ]; then
  cat "$CLAIMS_MD" >>"$EXTRA"
else
  printf '### 7. Claims on Postgres, 3 instances\n\nNot measured: the claims bench wrote no section (see the messages of `scripts/bench.sh`).\n\n' >>"$EXTRA"
fi
cat "$OUT/stores_alternating.md" >>"$EXTRA"

if [ "$PROFILE" = yes ] && command -v perf >/dev/null 2>&1; then
  log "perf profile of the dispatch path: mscribe, 50,000 jobs on 1 s, 5 s window"
  PARAMS='{"contender":"mscribe","jobs":50000,"interval_ms":1000,"window_s":5,"warmup_s":2,"staggered":false,"register_limit_s":60,"workers":2}'
  # -D: start sampling after registration and the warm-up (about 2.5 s).
  if perf record -q -F 999 -D 2600 -o "$OUT/perf.data" -- target/release/compare child-scale "$PARAMS" >/dev/null 2>&1; then
    perf report -i "$OUT/perf.data" --stdio --no-children --sort symbol 2>/dev/null |
      grep -E '^ +[0-9.]+%' | sed -E 's/ +$//' >"$OUT/perf.txt" || true
    {
      echo "### Profile of the dispatch path (perf, self time)"
      echo
      echo "\`perf record -F 999 -D 2600 -- target/release/compare child-scale '<mscribe, 50,000 jobs, 1 s, aligned>'\`:"
      echo "samples of the measured window only (after registration and warm-up), whole process, both workers."
      echo
      echo "| share | where |"
      echo "|---:|---|"
      awk '
        { p = $1; sub(/%/, "", p); k = $2; $1 = ""; $2 = ""; s = $0; gsub(/^ +/, "", s)
          g = "other"
          if (k == "[k]") g = "kernel (wake-ups, page faults, futex)"
          else if (s ~ /malloc|_int_free|cfree|unlink_chunk|_memalign|realloc|__rust_alloc|__rdl_alloc|__rust_dealloc|alloc_perturb|drop_slow|finish_grow|do_reserve/) g = "allocator (malloc/free, Arc drops, Vec growth)"
          else if (s ~ /sip::Hasher|hash_one|hashbrown|HashMap|memcmp/) g = "job map lookups (hash, key compare)"
          else if (s ~ /binary_heap/) g = "fire heap (BinaryHeap pop/push)"
          else if (s ~ /^tokio::/) g = "tokio task spawn/schedule/complete"
          else if (s ~ /mscribe_scheduler::recorder/) g = "record buffer"
          else if (s ~ /mscribe_scheduler::/) g = "engine (run, dispatch, plan)"
          else if (s ~ /memmove|memcpy/) g = "memmove (records, moved futures)"
          else if (s ~ /clock_gettime|Utc::now|SystemTime|Timespec|chrono::/) g = "clock and chrono"
          else if (s ~ /event_listener|futures_util|AssertUnwindSafe/) g = "event-listener / futures glue"
          else if (s ~ /[Mm]utex|lll_lock|futex/) g = "locks"
          else if (s ~ /fmt::|Formatter/) g = "string formatting"
          sum[g] += p }
        END { for (g in sum) printf "| %.1f%% | %s |\n", sum[g], g }' "$OUT/perf.txt" | sort -t'|' -k2 -g -r
      echo
      echo "Top symbols:"
      echo
      echo '```text'
      head -25 "$OUT/perf.txt" | cut -c1-110
      echo '```'
      echo
    } >>"$EXTRA"
  else
    log "perf record failed (perf_event_paranoid?); no profile"
  fi
fi

TOTAL_S=$(($(date +%s) - T0))
{
  echo "Timing of this run: build ${BUILD_S} s (incremental), criterion ${CRIT_S} s, whole script ${TOTAL_S} s before writing this report."
  echo
} >>"$EXTRA"
target/release/compare report --results "$OUT/results.json" --criterion target/criterion \
  --out docs/BENCHMARKS.md --command "scripts/bench.sh --$MODE" --extra "$EXTRA"
log "done in $(($(date +%s) - T0)) s: docs/BENCHMARKS.md"
# The verdicts, and the records path (history kept, the stores), on stdout.
awk '/^### Targets/ { on = 1 } /^### 1\. / { on = 0 } on' docs/BENCHMARKS.md
awk '/^### 1d\. / { on = 1 } /^### 2\. / { on = 0 } on' docs/BENCHMARKS.md
awk '/^### 5\. / { on = 1 } /^### 6\. / { on = 0 } on' docs/BENCHMARKS.md
awk '/^### 8\. / { on = 1 } /^### [0-79]\. |^### Profile|^<!-- results:end/ { on = 0 } on' docs/BENCHMARKS.md
