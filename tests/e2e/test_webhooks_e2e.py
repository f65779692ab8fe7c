"""End to end, real-time PO push: the Exact sandbox sends signed webhook notifications to the plugin's receiver in
the real api-server; the triggerer's asset watchers turn them into asset events; the scheduler starts PO-push runs
on them (the cron of this stack is once a year, so every run here comes from a notification or from the test).

50 orders are created in both divisions over two minutes with duplicate and out-of-order delivery switched on
(``webhook_burst.run_burst``, which ``make bench`` runs too). Checked: exactly one JAGGAER PO per order, no two
PO-push runs at the same time, and the latency from creation to the PO in JAGGAER (p50, p95, max printed; p95 must
be <= 60 s on the 2-core machine). Then, with the receiver unreachable for Exact (the sandbox delivers nothing),
requests a forger or a replayer could send are refused or ignored with no run and nothing posted, and the orders
created meanwhile arrive by the next cursor run. That run is triggered through the REST API (no params): it reads the
sync cursor exactly as the cron run does; the stack's cron is once a year so that no run lands in the measurement.
(The api-server itself is not stopped: in Airflow 3 tasks report to it, so nothing would run at all.)

``MLC_E2E_WEBHOOK_ORDERS`` (default 50), ``MLC_E2E_WEBHOOK_SPREAD_S`` (default 120) and ``MLC_E2E_WEBHOOK_P95_MAX``
(default 60 s, the issue's target) resize the burst and the bound for a local experiment.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import pytest
import requests
from e2e_stack import EXACT_DAG, TENANT, AirflowStack
from webhook_burst import (
    DIVISIONS,
    P95_TARGET_S,
    create_order,
    jaggaer_state,
    overlapping_runs,
    po_problems,
    posted,
    push_backlog,
    run_burst,
    runs_since,
    subscribe,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


ORDERS = int(os.environ.get("MLC_E2E_WEBHOOK_ORDERS", "50"))
SPREAD_S = float(os.environ.get("MLC_E2E_WEBHOOK_SPREAD_S", "120"))
P95_MAX = float(os.environ.get("MLC_E2E_WEBHOOK_P95_MAX", str(P95_TARGET_S)))


def _replay_of_a_delivered_notification(s: AirflowStack) -> bytes:
    """The exact bytes the sandbox sent for one notification of the burst, rebuilt from what the receiver stored
    (the sandbox keeps no bodies); checked against the stored HashCode, so a wrong rebuild fails here, not later."""
    from sandbox.exact.settings import DEMO_CLIENT_ID, DEMO_WEBHOOK_SECRET
    from sandbox.exact.webhooks import body_text, sign

    row = s.sql(
        "SELECT division, action, entity_key, event_created_on, hash_code FROM mlc_webhook_notification "
        "WHERE tenant = :t ORDER BY id LIMIT 1",
        t=TENANT,
    )[0]
    content = {
        "Topic": "PurchaseOrders",
        "ClientId": DEMO_CLIENT_ID,
        "Division": row["division"],
        "Action": row["action"],
        "Key": row["entity_key"],
        "ExactOnlineEndpoint": f"{s.exact_url}/api/v1/{row['division']}/purchaseorder/PurchaseOrders"
        f"(guid'{row['entity_key']}')",
        "EventCreatedOn": row["event_created_on"],
    }
    body = body_text(content, DEMO_WEBHOOK_SECRET)
    content_text = body[len('{"Content":') : body.rindex(',"HashCode"')]
    assert sign(content_text, DEMO_WEBHOOK_SECRET) == row["hash_code"], "the rebuilt notification is not the sent one"
    return body.encode()


def _refused_or_ignored(s: AirflowStack, lost_key: str) -> None:
    """A wrong HashCode, a replayed body with a valid signature, an oversized body and an unknown tenant, sent to the
    real receiver: each refused or ignored, nothing stored (the caller then checks that no run started)."""
    from ml_connector.web.webhooks import MAX_BODY_BYTES
    from sandbox.exact.settings import DEMO_WEBHOOK_SECRET
    from sandbox.exact.webhooks import body_text

    url = s.webhook_url()
    content = {"Topic": "PurchaseOrders", "Division": DIVISIONS[0], "Action": "Create", "Key": lost_key}
    forged = body_text(content, DEMO_WEBHOOK_SECRET + "-wrong").encode()
    big = body_text({**content, "Padding": "x" * MAX_BODY_BYTES}, DEMO_WEBHOOK_SECRET).encode()
    other_tenant = url.replace(f"/exact/{TENANT}", "/exact/nosuchtenant")
    stored_before = s.sql("SELECT count(*) AS n FROM mlc_webhook_notification")[0]["n"]

    def post(target: str, body: bytes) -> requests.Response:
        return requests.post(target, data=body, headers={"Content-Type": "application/json"}, timeout=30)

    r = post(url, forged)
    assert r.status_code == 401, (r.status_code, r.text)
    r = post(url, _replay_of_a_delivered_notification(s))
    assert (r.status_code, r.json()) == (200, {"stored": False}), (r.status_code, r.text)
    r = post(url, big)
    assert r.status_code == 413, (r.status_code, r.text)
    r = post(other_tenant, body_text(content, DEMO_WEBHOOK_SECRET).encode())
    assert r.status_code == 404, (r.status_code, r.text)
    assert s.sql("SELECT count(*) AS n FROM mlc_webhook_notification")[0]["n"] == stored_before
    outcomes = Counter(
        r["outcome"]
        for r in s.sql(
            "SELECT outcome FROM mlc_audit_log WHERE action = 'webhook_notification' AND tenant = :t", t=TENANT
        )
    )
    assert outcomes["refused"] >= 1 and outcomes["duplicate"] >= ORDERS + 1, outcomes


@pytest.mark.timeout(900)  # with the stack's start when run alone: about 7 minutes
def test_webhooks_push_orders_within_seconds_and_lost_ones_come_by_the_cursor(
    airflow_stack: AirflowStack, exact_connected: dict[str, Any]
) -> None:
    s = airflow_stack
    push_backlog(s)
    started = time.time()

    out = subscribe(s)
    assert out.count(" created PurchaseOrders -> ") == 2, out
    again = subscribe(s)
    assert again.count(" kept PurchaseOrders -> ") == 2, again  # idempotent
    status = s.mlc("status", "--tenant", TENANT, "--offline", check=False)  # exit 1 would be about tokens
    assert f"PurchaseOrders -> {s.webhook_url()}" in status, status
    page = s.api("GET", "/ml-connector/ui/status")
    assert page.status_code == 200 and "Exact webhooks" in page.text and s.webhook_url() in page.text
    # public (Exact cannot log in), but only for signed notifications
    receiver_path = s.webhook_url().removeprefix(s.api_url)
    assert s.api("POST", receiver_path, auth=False, data=b'{"Content":{},"HashCode":"00"}').status_code == 401

    burst = run_burst(s, ORDERS, SPREAD_S, duplicates=1, shuffle_s=3.0)  # each notification twice, any order
    ids = burst.ids
    figures = burst.figures()
    print(f"\n{burst.line()}")
    runs = runs_since(s, started)
    print(f"PO-push runs during the burst: {len(runs)} ({Counter(r['run_type'] for r in runs)})")
    assert po_problems(s, ids) == []
    assert {r["run_type"] for r in runs} == {"asset_triggered"}, [r["run_type"] for r in runs]
    assert all(r["state"] == "success" for r in runs), [s.run_summary(EXACT_DAG, r["dag_run_id"]) for r in runs]
    assert overlapping_runs(s.dag_runs(EXACT_DAG)) == []
    deliveries = s.exact.sandbox.webhooks.view()["deliveries"]
    assert len(deliveries) == 2 * ORDERS and {d["status"] for d in deliveries} == {200}
    stored = s.sql("SELECT count(*) AS n, count(emitted_at) AS e FROM mlc_webhook_notification")[0]
    assert stored == {"n": ORDERS, "e": ORDERS}, stored
    assert figures["p95_s"] <= P95_MAX, f"p95 latency {figures['p95_s']} s over {P95_MAX:.0f} s: {burst.latencies()}"

    # The receiver unreachable for Exact (the sandbox delivers nothing): no run starts; the next cursor run brings
    # the orders. Late (shuffled) deliveries of the burst may still start a run that reads the cursor: let them land
    # and the runs they start finish first, so the orders below can only come by the cursor run triggered here.
    s.exact.settings(webhook_drop_all=True, webhook_duplicates=0, webhook_shuffle_s=0.0)
    time.sleep(5)
    s.wait_idle(EXACT_DAG, timeout=240)
    lost = [create_order(s, d, 1000 + i) for i, d in enumerate(DIVISIONS)]
    runs_before = len(s.dag_runs(EXACT_DAG))
    pos_before = len(jaggaer_state(s)["purchase_orders"])
    _refused_or_ignored(s, lost[0])
    time.sleep(12)  # > several asset-watcher polls (2 s) and scheduler loops: a run would have been queued
    assert len(s.dag_runs(EXACT_DAG)) == runs_before, "a run started without a stored notification"
    assert posted(s, lost) == {} and len(jaggaer_state(s)["purchase_orders"]) == pos_before
    run_id = s.trigger(EXACT_DAG, note="e2e webhooks: the cursor run after lost notifications")
    assert s.wait_run(EXACT_DAG, run_id, timeout=240) == "success", s.run_summary(EXACT_DAG, run_id)
    assert po_problems(s, ids + lost) == []

    s.exact.settings(webhook_drop_all=False)
    gone = s.mlc("exact", "webhooks", "unsubscribe", "--tenant", TENANT)
    assert gone.count(" deleted PurchaseOrders -> ") == 2, gone
