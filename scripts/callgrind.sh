#!/usr/bin/env bash
# Instruction counts of the engine's hot paths, with callgrind (deterministic,
# unlike wall time on a shared machine):
#
#   scripts/callgrind.sh [OUT_DIR]
#
# - registering 100,000 interval jobs (instructions per job);
# - 10,000 fires of 1,000 jobs on the virtual clock, the work of criterion's
#   dispatch/virtual_10k_fires (instructions per fire), without records and
#   with every record kept in a MemoryStore (the writer included), and with
#   that store at its bound (every row drops the job's oldest);
# - the no-op simulation, 2 days of 1,000 jobs (instructions per fire);
# - resident bytes per job at 200,000 jobs, and per MemoryStore row at 200
#   jobs x 1,000 rows (not under valgrind).
#
# The callgrind files stay in OUT_DIR (default target/callgrind) for
# callgrind_annotate. Needs valgrind (Debian's package).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/callgrind}
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 1; }
cargo build --release -q -p mscribe-bench --bin cost --bin compare
BIN=${CARGO_TARGET_DIR:-target}/release
collected() { grep -o 'Collected : [0-9]*' | awk '{print $3}'; }
per() { awk -v n="$1" -v d="$2" 'BEGIN { printf "%.0f", n / d }'; }

n=$(valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file="$OUT/register.out" \
  "$BIN/cost" register 100000 2>&1 | collected)
echo "register 100,000 jobs: $(per "$n" 100000) instructions per job"
n=$(valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file="$OUT/fires.out" \
  "$BIN/cost" fires 1000 10 2>&1 | collected)
echo "virtual fires (1,000 jobs, 10 s): $(per "$n" 10000) instructions per fire"
n=$(valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file="$OUT/fires-memory.out" \
  "$BIN/cost" fires-memory 1000 10 2>&1 | collected)
echo "virtual fires with history in a MemoryStore: $(per "$n" 10000) instructions per fire"
n=$(valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file="$OUT/fires-memory-full.out" \
  "$BIN/cost" fires-memory-full 1000 10 2>&1 | collected)
echo "virtual fires with a MemoryStore at its bound: $(per "$n" 10000) instructions per fire"
out=$(valgrind --tool=callgrind --callgrind-out-file="$OUT/sim.out" "$BIN/compare" child-sim noop 1000 2 1 2>&1)
fires=$(grep -o '"fires":[0-9]*' <<<"$out" | cut -d: -f2)
echo "simulation (noop, 1,000 jobs, 2 days, $fires fires): $(per "$(collected <<<"$out")" "$fires") instructions per fire"
"$BIN/cost" rss 200000
"$BIN/cost" rows 200 1000
