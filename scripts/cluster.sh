#!/usr/bin/env bash
# make cluster / make cluster-down: the docker-compose topology (CeleryExecutor, Redis, PostgreSQL, two workers) as
# processes on this machine, loopback only. See scripts/cluster.py (up | down | status | worker N).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${MLC_PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=$(command -v python3); fi
fi
exec "$PY" scripts/cluster.py "$@"
