#!/usr/bin/env bash
# make up: the sandbox servers plus Airflow (api-server, scheduler, dag-processor, triggerer) for the UI.
#
# The sandboxes keep their state in memory only, so every start is a fresh Exact company and JAGGAER tenant. A
# connector database kept from the last start would hold refresh tokens this Exact no longer knows ("Unknown
# refresh token") and ledger rows for entries that no longer exist. So the connector database starts fresh too and
# the demo tenant is connected to Exact again automatically (the sandbox consents at once, as a person would).
#
# Ports: Airflow's [api] port (AIRFLOW__API__PORT, default 8080); MLC_EXACT_PORT / MLC_JAGGAER_PORT for the
# sandboxes (defaults 8701 / 8702; scripts/init_home.py points the demo connections at the same ports).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${AIRFLOW_HOME:?set AIRFLOW_HOME (make up does)}"
LOG="$AIRFLOW_HOME/logs"; mkdir -p "$LOG"
EXACT_PORT=${MLC_EXACT_PORT:-8701}
JAGGAER_PORT=${MLC_JAGGAER_PORT:-8702}
API_PORT=${AIRFLOW__API__PORT:-8080}
EXACT=http://127.0.0.1:$EXACT_PORT
JAGGAER=http://127.0.0.1:$JAGGAER_PORT
TENANT=${MLC_UP_TENANT:-demo}

fail() { echo "make up: $*" >&2; exit 1; }

for port in "$EXACT_PORT" "$JAGGAER_PORT" "$API_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port is already in use (is another 'make up', 'make demo' or 'mlc sandbox' running?). Stop it first."
  fi
done

mlc sandbox --exact-port "$EXACT_PORT" --jaggaer-port "$JAGGAER_PORT" >"$LOG/sandbox.log" 2>&1 &
SANDBOX=$!
trap 'kill $SANDBOX 2>/dev/null || true; wait $SANDBOX 2>/dev/null || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$EXACT/_admin/state" && curl -sf -o /dev/null "$JAGGAER/_admin/state" && break
  kill -0 "$SANDBOX" 2>/dev/null || break
  sleep 0.2
done
curl -sf -o /dev/null "$EXACT/_admin/state" || { tail -20 "$LOG/sandbox.log"; fail "the sandbox servers did not start"; }
echo "Sandbox servers: Exact Online $EXACT, JAGGAER $JAGGAER (log: $LOG/sandbox.log)"

echo "The sandboxes start empty on every 'make up', so the connector database starts fresh as well"
echo "  (ledger, tokens and mappings of the last session are dropped; run 'make demo' for a guided run)."
mlc db downgrade base >"$LOG/connector-db-reset.log" 2>&1 || { cat "$LOG/connector-db-reset.log"; fail "could not reset the connector database"; }
mlc db upgrade >>"$LOG/connector-db-reset.log" 2>&1 || { cat "$LOG/connector-db-reset.log"; fail "could not create the connector tables"; }

echo "Connecting tenant '$TENANT' to the Exact sandbox again (automatic consent)..."
CONSENT=$(mlc exact connect --tenant "$TENANT" | grep -Eo 'https?://[^ ]+/api/oauth2/auth[^ ]*' | head -n 1) || true
[ -n "$CONSENT" ] || fail "mlc exact connect printed no consent URL (see 'mlc exact connect --tenant $TENANT')"
REDIRECT=$(curl -s -o /dev/null -w '%{redirect_url}' "$CONSENT")
[ -n "$REDIRECT" ] || fail "the Exact sandbox's consent page did not redirect"
mlc exact authorize --tenant "$TENANT" --redirect-url "$REDIRECT" >"$LOG/exact-connect.log" 2>&1 \
  || { cat "$LOG/exact-connect.log"; fail "connecting tenant $TENANT to the Exact sandbox failed"; }
echo "  $(tail -n 1 "$LOG/exact-connect.log")"

echo "Airflow UI:      http://localhost:$API_PORT  (user admin; password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated once started)"
echo "Stop with Ctrl-C."
airflow standalone
