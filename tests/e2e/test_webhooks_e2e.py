"""End to end, real-time PO push: the Exact sandbox sends signed webhook notifications to the plugin's receiver in
the real api-server; the triggerer's asset watchers turn them into asset events; the scheduler starts PO-push runs
on them (the cron of this stack is once a year, so every run here comes from a notification or from the test).

Orders are created in both divisions over a short period with duplicate and out-of-order delivery switched on.
Checked: exactly one JAGGAER PO per order, no two PO-push runs at the same time, and the latency from creation to
the PO in JAGGAER (p50, p95, max; target p95 <= 60 s on the 2-core machine). Then, with notifications lost (the
sandbox delivers nothing: a receiver that is down), orders still arrive through the next cursor run.

``MLC_E2E_WEBHOOK_ORDERS`` (default 30) and ``MLC_E2E_WEBHOOK_SPREAD_S`` (default 60) size the burst: the issue's 50
orders over a few minutes take longer than this suite's time budget on two shared cores. ``MLC_E2E_WEBHOOK_P95_MAX``
(default 90 s) bounds the p95 the test accepts: the target is 60 s, but each PO-push run is six task starts of
LocalExecutor (about 30 s here, more when other test stacks share the cores), and an order created just after a run
read the cursor waits for the next run.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from e2e_stack import EXACT_DAG, TENANT, AirflowStack

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ORDERS = int(os.environ.get("MLC_E2E_WEBHOOK_ORDERS", "30"))
SPREAD_S = float(os.environ.get("MLC_E2E_WEBHOOK_SPREAD_S", "60"))
P95_MAX = float(os.environ.get("MLC_E2E_WEBHOOK_P95_MAX", "90"))
DIVISIONS = (111111, 222222)
SUPPLIER = "1009"  # a supplier of both divisions


def _jaggaer(stack: AirflowStack) -> dict[str, Any]:
    return stack.jaggaer_admin("GET", "state")["tenants"][TENANT]


def _posted(stack: AirflowStack, ids: list[str]) -> dict[str, str]:
    """source id -> JAGGAER PO number, for the given orders the ledger has posted."""
    rows = stack.sql(
        "SELECT source_id, target_ref FROM mlc_ledger WHERE tenant = :t AND flow = 'po_push' AND state = 'posted'",
        t=TENANT,
    )
    wanted = set(ids)
    return {r["source_id"]: r["target_ref"] for r in rows if r["source_id"] in wanted}


def _create(stack: AirflowStack, division: int, n: int) -> str:
    po = stack.exact.create_po(
        division=division,
        SupplierCode=SUPPLIER,
        Description=f"webhook e2e {n}",
        PurchaseOrderLines=[{"ItemCode": "CP-M8X25-HT", "QuantityInPurchaseUnits": 1 + n % 7}],
    )
    return str(po["PurchaseOrderID"])


def _ts(value: str | None) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() if value else float("inf")


def _assert_no_parallel_runs(runs: list[dict[str, Any]]) -> None:
    spans = sorted((_ts(r["start_date"]), _ts(r["end_date"]), r["dag_run_id"]) for r in runs if r["start_date"])
    for (_s1, e1, a), (s2, _e2, b) in itertools.pairwise(spans):
        assert s2 >= e1, f"PO-push runs {a} and {b} overlapped"


def _assert_one_po_per_order(stack: AirflowStack, ids: list[str]) -> None:
    state = _jaggaer(stack)
    creates = Counter(
        m["poNumber"] for m in state["po_messages"] if m.get("action") == "create" and m.get("status") == 200
    )
    twice = {po: n for po, n in creates.items() if n > 1}
    assert not twice, f"POs created more than once in JAGGAER: {twice}"
    posted = _posted(stack, ids)
    assert set(posted) == set(ids), f"orders not posted: {sorted(set(ids) - set(posted))[:5]}"
    assert len(set(posted.values())) == len(ids)
    assert set(posted.values()) <= set(state["purchase_orders"])


@pytest.mark.timeout(600)  # with the stack's start when run alone: about 5 minutes
def test_webhooks_push_orders_within_seconds_and_lost_ones_come_by_the_cursor(
    airflow_stack: AirflowStack, exact_connected: dict[str, Any]
) -> None:
    s = airflow_stack
    s.wait_for_dags([EXACT_DAG])
    # The backlog of the demo company first (a manual run reads by cursor), so the burst below is measured alone.
    s.wait_idle(EXACT_DAG, timeout=300)
    run_id = s.trigger(EXACT_DAG, note="e2e webhooks: backlog")
    assert s.wait_run(EXACT_DAG, run_id, timeout=300) == "success", s.run_summary(EXACT_DAG, run_id)
    started = time.time()

    out = s.mlc("exact", "webhooks", "subscribe", "--tenant", TENANT, "--callback-url", s.webhook_url())
    assert out.count(" created PurchaseOrders -> ") == 2, out
    again = s.mlc("exact", "webhooks", "subscribe", "--tenant", TENANT, "--callback-url", s.webhook_url())
    assert again.count(" kept PurchaseOrders -> ") == 2, again  # idempotent
    status = s.mlc("status", "--tenant", TENANT, "--offline", check=False)  # exit 1 would be about tokens
    assert f"PurchaseOrders -> {s.webhook_url()}" in status, status
    page = s.api("GET", "/ml-connector/ui/status")
    assert page.status_code == 200 and "Exact webhooks" in page.text and s.webhook_url() in page.text
    # public (Exact cannot log in), but only for signed notifications
    receiver_path = s.webhook_url().removeprefix(s.api_url)
    assert s.api("POST", receiver_path, auth=False, data=b'{"Content":{},"HashCode":"00"}').status_code == 401

    s.exact.settings(webhook_duplicates=1, webhook_shuffle_s=3.0)  # each notification twice, any order
    created: dict[str, float] = {}
    arrived: dict[str, float] = {}

    def all_arrived() -> bool:
        """Note when each created order is first seen as a PO in JAGGAER (polled while orders are created too)."""
        now = time.time()
        in_jaggaer = set(_jaggaer(s)["purchase_orders"])
        for source_id, po_number in _posted(s, list(created)).items():
            if source_id not in arrived and po_number in in_jaggaer:
                arrived[source_id] = now
        return len(arrived) == len(created)

    t0 = time.time()
    for n in range(ORDERS):
        created[_create(s, DIVISIONS[n % 2], n)] = time.time()
        next_at = t0 + (n + 1) * SPREAD_S / ORDERS
        while time.time() < next_at:
            all_arrived()
            time.sleep(max(0.0, min(1.0, next_at - time.time())))
    ids = list(created)

    s.wait_for(f"{ORDERS} orders to reach JAGGAER", all_arrived, timeout=180, interval=1.0)
    s.wait_idle(EXACT_DAG, timeout=240)
    latencies = sorted(arrived[i] - created[i] for i in ids)
    p50 = statistics.median(latencies)
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print(
        f"\nwebhook PO push: {ORDERS} orders over {SPREAD_S:.0f} s, duplicates+out-of-order on; latency creation -> "
        f"JAGGAER PO: p50 {p50:.1f} s, p95 {p95:.1f} s, max {latencies[-1]:.1f} s"
    )

    runs = [r for r in s.dag_runs(EXACT_DAG) if _ts(r.get("queued_at") or r.get("start_date")) >= started]
    print(f"PO-push runs during the burst: {len(runs)} ({Counter(r['run_type'] for r in runs)})")
    _assert_one_po_per_order(s, ids)
    assert Counter(r["run_type"] for r in runs)["asset_triggered"] >= 1, [r["run_type"] for r in runs]
    assert {r["run_type"] for r in runs} == {"asset_triggered"}, [r["run_type"] for r in runs]
    assert all(r["state"] == "success" for r in runs), [s.run_summary(EXACT_DAG, r["dag_run_id"]) for r in runs]
    _assert_no_parallel_runs(s.dag_runs(EXACT_DAG))
    deliveries = s.exact.sandbox.webhooks.view()["deliveries"]
    assert len(deliveries) == 2 * ORDERS and {d["status"] for d in deliveries} == {200}
    stored = s.sql("SELECT count(*) AS n, count(emitted_at) AS e FROM mlc_webhook_notification")[0]
    assert stored == {"n": ORDERS, "e": ORDERS}, stored
    assert p95 <= P95_MAX, f"p95 latency {p95:.1f} s over {P95_MAX:.0f} s (target 60 s): {latencies}"

    # Notifications lost (the receiver is down): no run starts; the next cursor run brings the orders.
    s.exact.settings(webhook_drop_all=True, webhook_duplicates=0, webhook_shuffle_s=0.0)
    # Late (shuffled) deliveries of the burst may still start a run that reads the cursor: let them land and the
    # runs they start finish first, so the orders below can only come by the cursor run triggered here.
    time.sleep(10)
    s.wait_idle(EXACT_DAG, timeout=240)
    lost = [_create(s, d, 1000 + i) for i, d in enumerate(DIVISIONS)]
    runs_before = len(s.dag_runs(EXACT_DAG))
    time.sleep(15)
    assert len(s.dag_runs(EXACT_DAG)) == runs_before and _posted(s, lost) == {}
    run_id = s.trigger(EXACT_DAG, note="e2e webhooks: the cursor run after lost notifications")
    assert s.wait_run(EXACT_DAG, run_id, timeout=240) == "success", s.run_summary(EXACT_DAG, run_id)
    _assert_one_po_per_order(s, ids + lost)

    s.exact.settings(webhook_drop_all=False)
    gone = s.mlc("exact", "webhooks", "unsubscribe", "--tenant", TENANT)
    assert gone.count(" deleted PurchaseOrders -> ") == 2, gone
