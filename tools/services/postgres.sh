#!/usr/bin/env bash
# Starts or stops the PostgreSQL server that the store tests use, on a Debian machine without
# systemd (see ../shared/services/NOTES.md). Idempotent: `start` on a running server only
# makes sure the test role exists; `stop` stops the server only if `start` started it.
#
#   tools/services/postgres.sh start   # prints the URL to export as REGSTUDY_TEST_POSTGRES
#   tools/services/postgres.sh restart # drops every connection (the fault tests use it)
#   tools/services/postgres.sh stop
#
# The test role `regstudy` (password `test-only-pw`, CREATEDB) logs in over 127.0.0.1; each test
# creates and drops a database of its own.
set -euo pipefail

STATE=${REGSTUDY_SERVICES_STATE:-/tmp/regstudy-services}
mkdir -p "$STATE"

version() {
  ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1
}

install() {
  if [ -z "$(version)" ]; then
    echo "installing postgresql" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
  fi
}

start() {
  install
  local v
  v=$(version)
  if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$v main"; then
    pg_createcluster "$v" main >/dev/null
  fi
  if ! pg_lsclusters -h | awk -v v="$v" '$1 == v && $2 == "main" {print $4}' | grep -qx online; then
    pg_ctlcluster "$v" main start
    echo "$v" >"$STATE/postgres-started"
  fi
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.5
  done
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null
  runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL'
SELECT 'CREATE ROLE regstudy LOGIN CREATEDB'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'regstudy') \gexec
ALTER ROLE regstudy LOGIN CREATEDB PASSWORD 'test-only-pw';
SQL
  echo "postgres://regstudy:test-only-pw@127.0.0.1:5432/postgres?sslmode=disable"
}

# Restarts the server (a fast shutdown drops every connection), for the fault tests.
restart() {
  pg_ctlcluster "$(version)" main restart -m fast
}

stop() {
  if [ -f "$STATE/postgres-started" ]; then
    pg_ctlcluster "$(cat "$STATE/postgres-started")" main stop -m fast
    rm -f "$STATE/postgres-started"
  fi
}

case "${1:-}" in
  start) start ;;
  restart) restart ;;
  stop) stop ;;
  *) echo "usage: $0 start|restart|stop" >&2; exit 2 ;;
esac
