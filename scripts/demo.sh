#!/usr/bin/env bash
# make demo: the integration end to end on the embedded default (SQLite, LocalExecutor-style in-process runs,
# the sandbox servers, the demo tenant). Prints what it does; stops the sandbox it started.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO="$AIRFLOW_HOME/demo"
LOG="$DEMO/logs"
mkdir -p "$LOG"
EXACT=http://127.0.0.1:8701
JAGGAER=http://127.0.0.1:8702
RECEIVER=http://127.0.0.1:8703  # the plugin's app (its Exact webhook receiver), served here: no api-server in the demo

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo: $*" >&2; exit 1; }

step "1. Tenant configuration (include/config/tenants.yaml)"
mlc config check --connections  # the tenant file, and the URLs of the Airflow connections it names

step "2. Sandbox servers (Exact Online on :8701, JAGGAER on :8702)"
for port in 8701 8702 8703; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port is already in use (is 'make up' or 'mlc sandbox' running?). Stop it and run make demo again."
  fi
done
python -m sandbox >"$LOG/sandbox.log" 2>&1 &
SANDBOX=$!
RECEIVER_PID=
trap 'kill $SANDBOX $RECEIVER_PID 2>/dev/null || true; wait $SANDBOX $RECEIVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -sf -o /dev/null "$EXACT/_admin/state" && curl -sf -o /dev/null "$JAGGAER/_admin/state" && break
  sleep 0.2
done
curl -sf -o /dev/null "$EXACT/_admin/state" || { cat "$LOG/sandbox.log"; fail "the sandbox servers did not start"; }
echo "started (log: $LOG/sandbox.log)"

# The sandboxes start empty every time, so the demo starts from a fresh connector database too.
export MLC_DB_URL="sqlite:///$DEMO/ml_connector.db"
rm -f "$DEMO/ml_connector.db"
mlc db upgrade >/dev/null
echo "connector database: $DEMO/ml_connector.db (fresh)"
# Started now so its imports overlap the steps below; used in step 8.
python scripts/demo_webhooks.py serve 8703 >"$LOG/receiver.log" 2>&1 &
RECEIVER_PID=$!

step "3. Connect the demo tenant to Exact Online (OAuth authorization code)"
CONSENT=$(mlc exact connect --tenant demo | grep -Eo 'https?://[^ ]+/api/oauth2/auth[^ ]*' | head -n 1)
[ -n "$CONSENT" ] || fail "mlc exact connect printed no consent URL"
echo "consent URL: ${CONSENT%%\?*}?... (the sandbox consents automatically, as a person would in the browser)"
REDIRECT=$(curl -s -o /dev/null -w '%{redirect_url}' "$CONSENT")
[ -n "$REDIRECT" ] || fail "the consent page did not redirect"
mlc exact authorize --tenant demo --redirect-url "$REDIRECT"

step "4. Connection health"
mlc status --tenant demo

run_dag() {  # dag_id, conf json, log name
  local started=$SECONDS
  if airflow dags test "$1" -c "$2" >"$LOG/$3.log" 2>&1; then
    echo "$1: success in $((SECONDS - started)) s (log: $LOG/$3.log)"
  else
    echo "$1: FAILED (log: $LOG/$3.log); last lines:" >&2
    tail -n 25 "$LOG/$3.log" >&2
    return 1
  fi
}

step "5. PO push: Exact Online purchase orders -> JAGGAER"
run_dag exact_po_push__demo '{}' po_push_1
python scripts/demo_report.py jaggaer "$JAGGAER"

step "6. Invoice poll: approved JAGGAER invoices of the last 10 days -> Exact Online purchase ledger"
FROM=$(date -u -d '10 days ago' +%F)
TO=$(date -u +%F)
run_dag jaggaer_invoice_poll__demo "{\"date_from\": \"$FROM\", \"date_to\": \"$TO\"}" invoice_poll_1 || true
python scripts/demo_report.py exact "$EXACT"

step "7. Both flows again: nothing is posted twice"
run_dag exact_po_push__demo '{}' po_push_2
run_dag jaggaer_invoice_poll__demo "{\"date_from\": \"$FROM\", \"date_to\": \"$TO\"}" invoice_poll_2 || true
python scripts/demo_report.py totals "$EXACT" "$JAGGAER"

step "8. Real time: a PO created in Exact reaches JAGGAER through an Exact webhook, without waiting for the schedule"
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$RECEIVER/ml-connector/webhooks/exact/demo" && break
  sleep 0.2
done
curl -s -o /dev/null "$RECEIVER/ml-connector/webhooks/exact/demo" || { cat "$LOG/receiver.log"; fail "the webhook receiver did not start"; }
echo "receiver: the plugin's app on $RECEIVER (the api-server serves it at /ml-connector; log: $LOG/receiver.log)"
# Exact delivers to https callbacks only; the sandbox does the same unless told that loopback http is fine.
curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"webhook_allow_http": true}' "$EXACT/_admin/settings"
mlc exact webhooks subscribe --tenant demo --callback-url "$RECEIVER/ml-connector/webhooks/exact/demo"
python scripts/demo_webhooks.py push "$EXACT" "$JAGGAER" "$LOG"

step "9. What the ledger says (mlc ledger list), and what needs a person"
mlc ledger list --tenant demo --flow po_push --limit 5
mlc ledger list --tenant demo --flow invoice_poll --state held --state quarantined --limit 10

echo
echo "Done. Explore further: 'mlc audit --tenant demo --flow invoice_poll I00071' (invoice number or id), or 'make up' for the UI."
