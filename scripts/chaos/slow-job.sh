#!/usr/bin/env bash
# A stand-in for pg_dump, for scripts/chaos.sh: makes `database-backup` a job
# whose run lasts CHAOS_SLOW_SECONDS (default 8) on Postgres, longer than the
# chaos run's kill interval, so that kills land mid-run. The server has no
# job kind whose duration can be chosen (command jobs come with another
# issue); `[jobs.database-backup] pg_dump` takes any program, so the chaos
# config points it here. Called as pg_dump is: --format=custom --no-password
# --file=PATH --dbname=URL. Writes a small file at PATH and exits 0; the
# chaos config sets `verify = false`, since this is no dump.
set -euo pipefail
file=""
for arg in "$@"; do
  case "$arg" in
    --file=*) file="${arg#--file=}" ;;
  esac
done
[ -n "$file" ] || { echo "slow-job.sh: no --file=PATH argument" >&2; exit 2; }
sleep "${CHAOS_SLOW_SECONDS:-8}"
printf 'chaos slow job, %s s, pid %s\n' "${CHAOS_SLOW_SECONDS:-8}" "$$" >"$file"
