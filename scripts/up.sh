#!/usr/bin/env bash
# make up: the sandbox servers plus Airflow (api-server, scheduler, dag-processor, triggerer) for the UI.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG="$AIRFLOW_HOME/logs"; mkdir -p "$LOG"

mlc sandbox >"$LOG/sandbox.log" 2>&1 &
SANDBOX=$!
trap 'kill $SANDBOX 2>/dev/null || true' EXIT INT TERM

echo "Sandbox servers: Exact Online http://127.0.0.1:8701, JAGGAER http://127.0.0.1:8702 (log: $LOG/sandbox.log)"
echo "Airflow UI:      http://localhost:8080  (user admin; password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated once started)"
echo "Stop with Ctrl-C."
airflow standalone
