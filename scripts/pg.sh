#!/usr/bin/env bash
# A private PostgreSQL server for the tests, on loopback only.
#   scripts/pg.sh start   -> starts it (initialising on first use) and prints its SQLAlchemy URL
#   scripts/pg.sh stop
#   scripts/pg.sh url
# Uses Debian's postgresql package (installed by .ci/run, or: apt-get install postgresql).
set -euo pipefail

PORT="${MLC_PG_PORT:-54329}"
DIR="${MLC_PG_DIR:-/tmp/mlc-pg-$(id -u)-$PORT}"
URL="postgresql+psycopg2://postgres@127.0.0.1:$PORT/postgres"

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$d" ] || [ ! -x "$d/pg_ctl" ]; then
    echo "PostgreSQL server binaries not found. Install them: apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "$d"
}

# initdb refuses to run as root: run the server as the 'postgres' user the Debian package creates.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
  start)
    BIN=$(bindir)
    if [ ! -f "$DIR/PG_VERSION" ]; then
      mkdir -p "$DIR"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
      as_pg "$BIN/initdb" -D "$DIR" -A trust -U postgres --no-sync -E UTF8 >/dev/null
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
      as_pg "$BIN/pg_ctl" -D "$DIR" -w -t 30 -l "$DIR/server.log" \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null
    fi
    echo "$URL"
    ;;
  stop)
    BIN=$(bindir)
    as_pg "$BIN/pg_ctl" -D "$DIR" -w stop >/dev/null 2>&1 || true
    ;;
  url)
    echo "$URL"
    ;;
  *)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac
