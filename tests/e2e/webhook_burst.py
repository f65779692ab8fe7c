"""The real-time PO push measured on a running :class:`e2e_stack.AirflowStack`: orders created in the Exact sandbox,
its signed webhook notifications to the plugin's receiver in the api-server, the triggerer's asset watchers, the
scheduler's asset-triggered PO-push runs, the POs in JAGGAER.

Shared by ``tests/e2e/test_webhooks_e2e.py`` (which asserts on it) and ``bench/webhooks.py`` (``make bench``, which
records it): one way to create the orders and to time them, so the test and the benchmark measure the same thing.

Latency of an order = first moment the ledger says it is posted **and** its PO number is in the JAGGAER sandbox,
minus the moment the sandbox's create call returned; polled about once a second, also while orders are still being
created (so a figure is up to ~1 s late, never early).
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from e2e_stack import EXACT_DAG, TENANT, AirflowStack

DIVISIONS = (111111, 222222)
SUPPLIER = "1009"  # a supplier of both divisions
ITEM = "CP-M8X25-HT"
P95_TARGET_S = 60.0  # issue 16: p95 <= 60 s on the 2-core machine


def connect_exact(s: AirflowStack) -> dict[str, Any]:
    """Connect the demo tenant to the Exact sandbox through the plugin's consent routes (as an admin does)."""
    r = s.api("GET", "/ml-connector/exact/connect", params={"tenant": TENANT}, allow_redirects=False)
    assert r.status_code == 302, f"/ml-connector/exact/connect: HTTP {r.status_code} {r.text[:500]}"
    r = requests.get(r.headers["location"], allow_redirects=False, timeout=30)  # the sandbox consents at once
    assert r.status_code == 302, f"sandbox consent: HTTP {r.status_code} {r.text[:300]}"
    parts = urlsplit(r.headers["location"])
    r = s.api("GET", f"{parts.path}?{parts.query}")
    assert r.status_code == 200 and "Exact Online connected" in r.text, f"callback: HTTP {r.status_code} {r.text}"
    chains = s.exact.state()["oauth"]["chains"]
    assert len(chains) == 1 and not chains[0]["dead"], chains
    return chains[0]


def push_backlog(s: AirflowStack) -> None:
    """One manual (cursor) run for the demo company's orders, so a burst after it is measured alone."""
    s.wait_for_dags([EXACT_DAG])
    s.wait_idle(EXACT_DAG, timeout=300)
    run_id = s.trigger(EXACT_DAG, note="webhooks: the demo company's backlog first")
    assert s.wait_run(EXACT_DAG, run_id, timeout=300) == "success", s.run_summary(EXACT_DAG, run_id)


def subscribe(s: AirflowStack) -> str:
    """``mlc exact webhooks subscribe`` to the stack's receiver; its output."""
    return s.mlc("exact", "webhooks", "subscribe", "--tenant", TENANT, "--callback-url", s.webhook_url())


def jaggaer_state(s: AirflowStack) -> dict[str, Any]:
    return s.jaggaer_admin("GET", "state")["tenants"][TENANT]


def posted(s: AirflowStack, ids: list[str]) -> dict[str, str]:
    """source id -> JAGGAER PO number, for the given orders the ledger has posted."""
    rows = s.sql(
        "SELECT source_id, target_ref FROM mlc_ledger WHERE tenant = :t AND flow = 'po_push' AND state = 'posted'",
        t=TENANT,
    )
    wanted = set(ids)
    return {r["source_id"]: r["target_ref"] for r in rows if r["source_id"] in wanted}


def create_order(s: AirflowStack, division: int, n: int) -> str:
    po = s.exact.create_po(
        division=division,
        SupplierCode=SUPPLIER,
        Description=f"webhook burst {n}",
        PurchaseOrderLines=[{"ItemCode": ITEM, "QuantityInPurchaseUnits": 1 + n % 7}],
    )
    return str(po["PurchaseOrderID"])


def ts(value: str | None) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() if value else float("inf")


def overlapping_runs(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of PO-push runs whose [start, end] overlap (with ``max_active_runs=1`` there must be none)."""
    spans = sorted((ts(r["start_date"]), ts(r["end_date"]), r["dag_run_id"]) for r in runs if r["start_date"])
    return [(a, b) for (_s1, e1, a), (s2, _e2, b) in itertools.pairwise(spans) if s2 < e1]


def po_problems(s: AirflowStack, ids: list[str]) -> list[str]:
    """What is wrong with "exactly one JAGGAER PO per order" (empty: nothing)."""
    state = jaggaer_state(s)
    creates = Counter(
        m["poNumber"] for m in state["po_messages"] if m.get("action") == "create" and m.get("status") == 200
    )
    out = [f"PO {po} created {n} times in JAGGAER" for po, n in creates.items() if n > 1]
    done = posted(s, ids)
    missing = sorted(set(ids) - set(done))
    if missing:
        out.append(f"{len(missing)} orders not posted, e.g. {missing[:5]}")
    if len(set(done.values())) != len(done):
        out.append("two orders share one JAGGAER PO number")
    absent = sorted(set(done.values()) - set(state["purchase_orders"]))
    if absent:
        out.append(f"posted POs missing in JAGGAER: {absent[:5]}")
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (p95 of 50 values: the 48th)."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


@dataclass
class Burst:
    orders: int
    spread_s: float
    duplicates: int
    shuffle_s: float
    started: float  # epoch seconds, before the first order
    created: dict[str, float] = field(default_factory=dict)  # order id -> when its create call returned
    arrived: dict[str, float] = field(default_factory=dict)  # order id -> first seen as a PO in JAGGAER
    wall_s: float = 0.0  # first order created -> last order arrived

    @property
    def ids(self) -> list[str]:
        return list(self.created)

    def latencies(self) -> list[float]:
        return sorted(self.arrived[i] - self.created[i] for i in self.ids if i in self.arrived)

    def figures(self) -> dict[str, float]:
        lat = self.latencies()
        return {
            "p50_s": round(statistics.median(lat), 1),
            "p95_s": round(percentile(lat, 0.95), 1),
            "max_s": round(lat[-1], 1),
            "min_s": round(lat[0], 1),
        }

    def line(self) -> str:
        f = self.figures()
        return (
            f"webhook PO push: {self.orders} orders over {self.spread_s:.0f} s, duplicates x{1 + self.duplicates} "
            f"and out-of-order ({self.shuffle_s:g} s window) on; latency creation -> JAGGAER PO: "
            f"p50 {f['p50_s']:.1f} s, p95 {f['p95_s']:.1f} s, max {f['max_s']:.1f} s"
        )


def run_burst(
    s: AirflowStack,
    orders: int,
    spread_s: float,
    *,
    duplicates: int = 1,
    shuffle_s: float = 3.0,
    timeout: float = 180.0,
) -> Burst:
    """Create ``orders`` orders evenly over ``spread_s`` seconds, alternating the two divisions, with each
    notification delivered ``1 + duplicates`` times in random order within ``shuffle_s``; wait until every order is a
    PO in JAGGAER (``StackError`` after ``timeout`` seconds) and every run has ended."""
    s.exact.settings(webhook_duplicates=duplicates, webhook_shuffle_s=shuffle_s)
    burst = Burst(orders, spread_s, duplicates, shuffle_s, started=time.time())

    def all_arrived() -> bool:
        now = time.time()
        in_jaggaer = set(jaggaer_state(s)["purchase_orders"])
        for source_id, po_number in posted(s, burst.ids).items():
            if source_id not in burst.arrived and po_number in in_jaggaer:
                burst.arrived[source_id] = now
        return len(burst.arrived) == len(burst.created)

    t0 = time.time()
    for n in range(orders):
        burst.created[create_order(s, DIVISIONS[n % 2], n)] = time.time()
        next_at = t0 + (n + 1) * spread_s / orders
        while time.time() < next_at:
            all_arrived()
            time.sleep(max(0.0, min(1.0, next_at - time.time())))
    s.wait_for(f"{orders} orders to reach JAGGAER", all_arrived, timeout=timeout, interval=1.0)
    burst.wall_s = round(max(burst.arrived.values()) - t0, 1)
    s.wait_idle(EXACT_DAG, timeout=240)
    return burst


def runs_since(s: AirflowStack, since: float) -> list[dict[str, Any]]:
    return [r for r in s.dag_runs(EXACT_DAG) if ts(r.get("queued_at") or r.get("start_date")) >= since]
