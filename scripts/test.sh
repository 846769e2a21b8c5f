#!/usr/bin/env bash
# The whole test suite: formatting, lints, every crate's tests, the engine
# without tokio, and the builds of benches and fuzz targets. Needs nothing
# installed beyond the Rust toolchain; it starts Postgres if it is not running.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/ensure-postgres.sh ]; then
  # Prints the URL of a reachable server, starting or installing one if needed.
  MSCRIBE_TEST_POSTGRES_URL="$(scripts/ensure-postgres.sh)"
  export MSCRIBE_TEST_POSTGRES_URL
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy -p mscribe-scheduler --no-default-features --lib -- -D warnings
echo "== tests (engine without tokio)"
cargo test -p mscribe-scheduler --no-default-features --lib
echo "== fuzz targets build"
# Builds on stable without cargo-fuzz; fuzzing itself is local (fuzz/README.md).
cargo build --manifest-path fuzz/Cargo.toml --bins
echo "== benches build"
cargo build -p mscribe-bench --benches --bins # the benches compile; they run with scripts/bench.sh, not in CI
echo "== tests (workspace)"
cargo test --workspace --all-features
