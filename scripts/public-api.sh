#!/usr/bin/env bash
# The public API of each published crate, one line per item and one path per
# item (scripts/public-api.py), against the committed snapshots in
# docs/public-api/: a change to the public surface fails CI until the
# snapshot is updated with it, so it is always a reviewed change.
#
#   scripts/public-api.sh           check
#   scripts/public-api.sh --bless   rewrite the snapshots
#
# rustdoc's JSON output is unstable: RUSTC_BOOTSTRAP lets the stable
# toolchain write it (the format is pinned by the toolchain in use).
set -euo pipefail
cd "$(dirname "$0")/.."
bless=no
[ "${1:-}" = --bless ] && bless=yes
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/public-api"
status=0
for spec in mscribe-scheduler:mscribe_scheduler mscribe-storage:mscribe_storage mscribe-server:mscribe_server; do
  pkg="${spec%%:*}" lib="${spec##*:}"
  RUSTC_BOOTSTRAP=1 cargo rustdoc -q -p "$pkg" --lib --all-features -- \
    -Z unstable-options --output-format json
  out="$(python3 scripts/public-api.py "$CARGO_TARGET_DIR/doc/$lib.json")" || status=1
  snap="docs/public-api/$pkg.txt"
  if [ "$bless" = yes ]; then
    mkdir -p docs/public-api
    printf '%s\n' "$out" >"$snap"
  elif ! diff -u "$snap" <(printf '%s\n' "$out"); then
    echo "error: the public API of $pkg changed; review it, then run scripts/public-api.sh --bless" >&2
    status=1
  fi
done
exit $status
