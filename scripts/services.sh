#!/usr/bin/env bash
# Starts (or stops) throwaway PostgreSQL and Redis servers on loopback for the test suite.
#
# Run with: eval "$(scripts/services.sh start)"   # prints the NUDGE_TEST_* exports
#           scripts/services.sh status                # exit 0 when both are up
#           scripts/services.sh stop
# NUDGE_SERVICES_DIR picks another data folder (several checkouts can share one set).
#
# Data lives under .services/ in the work tree; nothing is installed here (see .ci/run).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${NUDGE_SERVICES_DIR:-$root/.services}"
pg_port="${NUDGE_TEST_PG_PORT:-55432}"
redis_port="${NUDGE_TEST_REDIS_PORT:-56379}"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"

start_postgres() {
  local data="$dir/pg"
  if [ ! -d "$data" ]; then
    mkdir -p "$data"
    chown postgres:postgres "$dir" "$data" 2>/dev/null || true
    runuser -u postgres -- "$pg_bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
  fi
  if ! runuser -u postgres -- "$pg_bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    if ! runuser -u postgres -- "$pg_bin/pg_ctl" -D "$data" -l "$dir/pg.log" -w \
      -o "-p $pg_port -k $data -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null; then
      echo "PostgreSQL did not start on port $pg_port (another server on it? NUDGE_TEST_PG_PORT picks another); see $dir/pg.log" >&2
      exit 1
    fi
  fi
}

start_redis() {
  if ! redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
    redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
  fi
}

case "${1:-start}" in
  start)
    mkdir -p "$dir"
    chmod 755 "$dir"
    start_postgres
    start_redis
    echo "export NUDGE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$pg_port/postgres"
    echo "export NUDGE_TEST_REDIS_URL=redis://127.0.0.1:$redis_port"
    ;;
  status)
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$dir/pg" status >/dev/null 2>&1 \
      && redis-cli -p "$redis_port" ping >/dev/null 2>&1
    ;;
  stop)
    [ -d "$dir/pg" ] && runuser -u postgres -- "$pg_bin/pg_ctl" -D "$dir/pg" -m fast stop >/dev/null 2>&1 || true
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: $0 start|status|stop" >&2
    exit 2
    ;;
esac
