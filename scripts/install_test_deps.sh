#!/usr/bin/env bash
# System packages the test suite needs, from Debian's package manager (idempotent; run by .ci/run before
# `make test` and by `make test-deps`):
# - postgresql: the store tests run on a private server on loopback (scripts/pg.sh);
# - redis-server: the Celery cluster test (scripts/cluster.sh);
# - chromium: the browser tests (Playwright for Python drives /usr/bin/chromium; Playwright's own download is not used).
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install_test_deps: missing ${missing[*]}; install as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "install_test_deps: installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "install_test_deps: PostgreSQL, redis-server and $(chromium --version 2>/dev/null || echo chromium) present"
