"""Start-up time and serving 100,000 purchase orders."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlparse

import pytest
from exact_support import MFG, Api

STARTUP = """
import json, time
t0 = time.perf_counter()
from sandbox.common.server import ServerThread
from sandbox.exact import create_app
server = ServerThread(create_app())
url = server.start()
elapsed = time.perf_counter() - t0
import requests
status = requests.get(url + "/_admin/state", timeout=5).status_code
server.stop()
print(json.dumps({"startup_s": elapsed, "status": status}))
"""


@pytest.mark.slow
def test_starts_in_under_two_seconds() -> None:
    """Fresh interpreter: import, build the app with its default seed, bind, accept. (Interpreter start-up itself
    is not counted.)"""
    # Best of up to three fresh starts: a timing on a shared 2-core machine measures the neighbours too.
    timings = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, timeout=60, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["status"] == 200
        timings.append(result["startup_s"])
        if result["startup_s"] < 2.0:
            break
    print("startup: " + ", ".join(f"{t:.3f} s" for t in timings))
    assert min(timings) < 2.0


def _timed(api: Api, url: str) -> tuple[float, dict]:
    t = time.perf_counter()
    r = api.follow(url)
    elapsed = time.perf_counter() - t
    assert r.status_code == 200, r.text
    return elapsed, r.json()["d"]


@pytest.mark.slow
def test_100k_purchase_orders(api: Api) -> None:
    t = time.perf_counter()
    summary = api.ex.seed(purchase_orders=100_000, seed=42)
    seed_s = time.perf_counter() - t
    assert summary["divisions"][str(MFG)]["purchase_orders"] == 100_038
    base = api.ex.api_url(MFG, "purchaseorder/PurchaseOrders")
    select = "$select=PurchaseOrderID,OrderNumber,Supplier,SupplierCode,Modified,OrderStatus,AmountDC"

    # Walk 30 pages of 60 from the start, and 10 pages from deep inside (via a skiptoken taken from the middle).
    url = f"{base}?{select}"
    times = []
    for _ in range(30):
        elapsed, d = _timed(api, url)
        assert len(d["results"]) == 60
        times.append(elapsed)
        url = d["__next"]
    middle = sorted(api.ex.sandbox.store.divisions[MFG].purchase_orders.keys)[50_000]
    url = f"{base}?{select}&$skiptoken=guid'{middle}'"
    for _ in range(10):
        elapsed, d = _timed(api, url)
        assert len(d["results"]) == 60 and d["results"][0]["PurchaseOrderID"] > middle
        times.append(elapsed)
        url = d["__next"]
    page_median = statistics.median(times)

    # A one-day Modified window (what a backfill asks), with expanded lines.
    window = (
        f"{base}?$filter=Modified ge datetime'{_day(api, 200)}' and Modified lt datetime'{_day(api, 199)}'"
        "&$expand=PurchaseOrderLines&$select=PurchaseOrderID,Modified,PurchaseOrderLines/ItemCode"
    )
    window_times = []
    for _ in range(5):
        elapsed, d = _timed(api, window)
        assert d["results"]
        window_times.append(elapsed)

    # Sync pages of 1,000 rows from the middle of the Timestamp range.
    sync = api.ex.api_url(MFG, "sync/PurchaseOrder/PurchaseOrders")
    ts_mid = api.ex.sandbox.store.divisions[MFG].sync.starts[50_000]
    url = f"{sync}?$filter=Timestamp gt {ts_mid}L&$select=Timestamp,PurchaseOrderID,LineNumber,ItemCode,AmountFC"
    sync_times = []
    for _ in range(3):
        elapsed, d = _timed(api, url)
        assert len(d["results"]) == 1000
        sync_times.append(elapsed)
        nxt = parse_qs(urlparse(d["__next"]).query)["$skiptoken"][0]
        assert nxt == f"{d['results'][-1]['Timestamp']}L"
        url = d["__next"]
    window_median = statistics.median(window_times)
    print(
        f"\nseed 100k POs: {seed_s:.2f} s; 60-row page median {page_median * 1000:.1f} ms "
        f"(max {max(times) * 1000:.1f}); one-day window + lines median {window_median * 1000:.1f} ms; "
        f"1,000-row sync page median {statistics.median(sync_times) * 1000:.1f} ms"
    )
    assert page_median < 0.050
    assert statistics.median(window_times) < 0.100
    assert statistics.median(sync_times) < 0.500


def _day(api: Api, days_ago: int) -> str:
    from datetime import UTC, datetime, timedelta

    now = datetime.fromtimestamp(api.ex.clock()["time"], tz=UTC)
    return (now - timedelta(days=days_ago)).strftime("%Y-%m-%dT00:00:00")
