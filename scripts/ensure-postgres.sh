#!/usr/bin/env bash
# Prints the URL of a reachable Postgres server for the tests, on stdout and
# nothing else; everything else goes to stderr. In order:
#   1. $MSCRIBE_TEST_POSTGRES_URL, if set and answering;
#   2. a server already answering on 127.0.0.1:5432;
#   3. the local Debian cluster, started with pg_ctlcluster;
#   4. Debian's postgresql package, installed with apt-get, then started.
# It then makes sure the URL works: the `test` database exists and the
# `postgres` user can log in over TCP (setting a password when the cluster
# asks for one), and that pg_dump and pg_restore are on PATH (installing
# postgresql-client if not). Exits non-zero with a message when no server
# or no client tools can be had.
# MSCRIBE_PG_PORT and MSCRIBE_PG_CLUSTER (default 5432 and main) pick
# another local cluster.
set -euo pipefail

log() { echo "ensure-postgres: $*" >&2; }
die() { log "error: $*"; exit 1; }

HOST=127.0.0.1
PORT="${MSCRIBE_PG_PORT:-5432}"
CLUSTER="${MSCRIBE_PG_CLUSTER:-main}"
DB=test

answers() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$HOST" -p "$PORT" -t 2; }

can_query() { psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1; }

as_postgres() {
  if command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- "$@"
  else
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

newest_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

start_cluster() {
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  local v
  v="$(newest_version)"
  [ -n "$v" ] || return 1
  if [ ! -d "/etc/postgresql/$v/$CLUSTER" ]; then
    log "creating cluster $v/$CLUSTER"
    pg_createcluster -p "$PORT" "$v" "$CLUSTER" >&2 || return 1
  fi
  log "starting cluster $v/$CLUSTER"
  pg_ctlcluster --skip-systemctl-redirect "$v" "$CLUSTER" start >&2 || true
  wait_ready 30
}

install_postgres() {
  command -v apt-get >/dev/null 2>&1 || return 1
  [ "$(id -u)" = 0 ] || { log "not root: cannot install postgresql"; return 1; }
  log "installing postgresql with apt-get (this takes a minute)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2 || return 1
  apt-get install -y --no-install-recommends postgresql postgresql-client >&2 || return 1
}

wait_ready() {
  local i
  for ((i = 0; i < $1 * 2; i++)); do
    answers && return 0
    sleep 0.5
  done
  return 1
}

# 1. An explicit URL wins when it works.
if [ -n "${MSCRIBE_TEST_POSTGRES_URL:-}" ]; then
  if command -v psql >/dev/null 2>&1 && can_query "$MSCRIBE_TEST_POSTGRES_URL"; then
    echo "$MSCRIBE_TEST_POSTGRES_URL"
    exit 0
  fi
  log "MSCRIBE_TEST_POSTGRES_URL is set but does not answer; trying $HOST:$PORT"
fi

# 2-4. A local server: running, startable, or installable.
if ! answers; then
  start_cluster || { install_postgres && start_cluster; } || true
fi
answers || die "no Postgres server answers on $HOST:$PORT, and none could be started or installed"

# Make the URL usable: the user can log in over TCP, and the database exists.
URL="postgres://postgres@$HOST:$PORT/$DB"
if ! can_query "postgres://postgres@$HOST:$PORT/postgres"; then
  if id postgres >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "setting a password for the postgres user (the cluster wants one over TCP)"
    as_postgres psql -p "$PORT" -qc "ALTER USER postgres PASSWORD 'postgres'" >&2 ||
      die "cannot set a password for the postgres user"
    URL="postgres://postgres:postgres@$HOST:$PORT/$DB"
  fi
fi
BASE="${URL%/$DB}/postgres"
can_query "$BASE" || die "the server on $HOST:$PORT answers but refuses user postgres"
if [ "$(psql "$BASE" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  log "creating database $DB"
  psql "$BASE" -qc "CREATE DATABASE $DB" >&2 || die "cannot create database $DB"
fi
can_query "$URL" || die "cannot query $URL"
# The backup job's tests need pg_dump and pg_restore (Debian's
# postgresql-client, which psql above comes from as a rule).
if ! command -v pg_dump >/dev/null 2>&1 || ! command -v pg_restore >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing postgresql-client for pg_dump"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-client >&2 ||
      die "cannot install postgresql-client (pg_dump)"
  else
    die "pg_dump and pg_restore are not on PATH: install the PostgreSQL client tools"
  fi
fi
echo "$URL"
