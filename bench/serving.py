"""Scenario 3 — sandbox serving: how fast the sandboxes answer at volume, and how fast they start.

Fresh sandbox processes (started for this scenario, stopped after it): Exact seeded with 100,000 purchase orders in
one division, JAGGAER with 20,000 invoices. A plain ``requests`` client in the bench process measures each
request from send to last byte (keep-alive connection, ``Accept: application/json``), one request at a time.
Exact's rate limits are switched off here: this is about serving, not pacing.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from bench.env import DIV_MFG, JAGGAER_LOGIN, JAGGAER_SECRET
from bench.lab import Lab
from bench.measure import latency_summary
from bench.servers import SandboxProcess

HEADER_SELECT = "PurchaseOrderID,OrderNumber,Supplier,SupplierCode,OrderDate,Modified,OrderStatus,Currency"
LINE_SELECT = "PurchaseOrderLines/LineNumber,PurchaseOrderLines/Item,PurchaseOrderLines/QuantityInPurchaseUnits"
SYNC_SELECT = "Timestamp,PurchaseOrderID,OrderNumber,LineNumber,Supplier,Item,QuantityInPurchaseUnits,UnitPrice"
INVOICES = "/j1p/api/public/ji/v1/invoices"


def _timed(session: requests.Session, url: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = session.get(url, params=params, timeout=120)
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"GET {url} {params}: {r.status_code} {r.text[:300]}")
    return elapsed, r.json()


def _walk(session: requests.Session, url: str, params: dict[str, Any], pages: int) -> tuple[list[float], int]:
    """Follow ``__next`` for up to ``pages`` pages; latencies and rows seen."""
    out: list[float] = []
    rows = 0
    link: str | None = url
    query: dict[str, Any] | None = params
    while link and len(out) < pages:
        elapsed, body = _timed(session, link, query)
        out.append(elapsed)
        d = body["d"]
        rows += len(d["results"]) if isinstance(d, dict) else len(d)
        link = d.get("__next") if isinstance(d, dict) else None
        query = None
    return out, rows


def _start_times(kind: str, repeats: int) -> dict[str, Any]:
    walls, inner = [], []
    for _ in range(repeats):
        proc = SandboxProcess(kind)
        try:
            proc.start()
            walls.append(proc.start_wall_s)
            inner.append(proc.start_in_process_s)
        finally:
            proc.stop()
    return {
        "runs": repeats,
        "spawn_to_ready_s_median": round(statistics.median(walls), 3),
        "spawn_to_ready_s_max": round(max(walls), 3),
        "in_process_s_median": round(statistics.median(inner), 3),
    }


def _exact(lab: Lab, samples: int, n_pos: int) -> dict[str, Any]:
    from sandbox.exact.testing import ExactSandboxHandle

    out: dict[str, Any] = {}
    with SandboxProcess("exact") as proc:
        ex = ExactSandboxHandle(url=proc.url)
        ex.settings(rate_limits_enabled=False, error_budget_enabled=False)
        t0 = time.perf_counter()
        seeded = ex.seed(purchase_orders=n_pos, suppliers=500, divisions=[DIV_MFG], lines=[1, 5], days=730, seed=42)
        out["seed_s"] = round(time.perf_counter() - t0, 2)
        out["purchase_orders"] = seeded["divisions"][str(DIV_MFG)]["purchase_orders"]
        out["sandbox_rss_mb"] = proc.memory()["rss_mb"]
        api = ex.session(ex.connect()["access_token"])
        base = ex.api_url(DIV_MFG, "")
        lab.say(f"serving: Exact seeded with {out['purchase_orders']} POs in {out['seed_s']}s; measuring pages")

        lat, rows = _walk(api, base + "purchaseorder/PurchaseOrders", {"$select": HEADER_SELECT}, samples)
        out["po_page_60"] = {**latency_summary(lat), "rows": rows, "what": "PurchaseOrders, 60-row pages via __next"}

        rng = random.Random(7)
        now = datetime.now(UTC)
        lat_window: list[float] = []
        rows = 0
        for _ in range(max(3, samples // 3)):
            day = (now - timedelta(days=rng.randint(1, 720))).replace(hour=0, minute=0, second=0, microsecond=0)
            flt = (
                f"Modified ge datetime'{day:%Y-%m-%dT%H:%M:%S}' and "
                f"Modified lt datetime'{day + timedelta(days=1):%Y-%m-%dT%H:%M:%S}'"
            )
            params = {
                "$select": HEADER_SELECT + "," + LINE_SELECT,
                "$filter": flt,
                "$expand": "PurchaseOrderLines",
            }
            lat, n = _walk(api, base + "purchaseorder/PurchaseOrders", params, 10)
            lat_window += lat
            rows += n
        out["po_page_modified_window_expanded"] = {
            **latency_summary(lat_window),
            "rows": rows,
            "what": "PurchaseOrders by one-day Modified window, lines expanded (the connector's backfill read)",
        }

        top = out["purchase_orders"]
        lat_key = []
        for _ in range(samples):
            number = rng.randint(1, top)
            lat, _ = _walk(
                api,
                base + "purchaseorder/PurchaseOrders",
                {"$select": HEADER_SELECT, "$filter": f"OrderNumber eq {number}"},
                1,
            )
            lat_key += lat
        out["po_by_order_number"] = {**latency_summary(lat_key), "what": "PurchaseOrders?$filter=OrderNumber eq N"}

        lat_scan = []
        for i in range(max(3, samples // 10)):
            lat, _ = _walk(
                api,
                base + "purchaseorder/PurchaseOrders",
                {"$select": HEADER_SELECT, "$filter": f"Remarks eq 'no such remark {i}'"},
                1,
            )
            lat_scan += lat
        out["po_unindexed_filter"] = {
            **latency_summary(lat_scan),
            "what": "PurchaseOrders?$filter=Remarks eq '…' (no index: every order is looked at)",
        }

        lat, rows = _walk(
            api,
            base + "sync/PurchaseOrder/PurchaseOrders",
            {"$select": SYNC_SELECT, "$filter": "Timestamp gt 1L"},
            samples,
        )
        out["sync_page_1000"] = {**latency_summary(lat), "rows": rows, "what": "sync/PurchaseOrder, 1,000-row pages"}
        out["sandbox_rss_after_mb"] = proc.memory()["rss_mb"]
        api.close()
        ex.admin.close()
    return out


def _jaggaer(lab: Lab, samples: int, n_invoices: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with SandboxProcess("jaggaer") as proc:
        t0 = time.perf_counter()
        seeded = proc.admin("POST", "seed", {"invoices": n_invoices, "vendors": 500, "days": 10, "seed": 1})
        out["seed_s"] = round(time.perf_counter() - t0, 2)
        out["invoices"] = seeded["total_invoices"]
        out["sandbox_rss_mb"] = proc.memory()["rss_mb"]
        lab.say(f"serving: JAGGAER seeded with {out['invoices']} invoices in {out['seed_s']}s; measuring pages")
        http = requests.Session()
        token = http.post(
            proc.url + "/auth/realms/J1p-integrations/protocol/openid-connect/token",
            data={"grant_type": "client_credentials", "client_id": JAGGAER_LOGIN, "client_secret": JAGGAER_SECRET},
            timeout=30,
        ).json()["access_token"]
        http.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        page_size = int(proc.admin("GET", "settings").get("page_size", 37))
        now = datetime.now(UTC)

        def iso(dt: datetime) -> str:
            return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")

        ids: list[int] = []

        def pages(lo: datetime, hi: datetime, starts: Callable[[int], list[int]]) -> tuple[list[float], int]:
            flt = f"lastUpdate=ge={iso(lo)};lastUpdate=lt={iso(hi)}"
            first, body = _timed(http, proc.url + INVOICES, {"flt": flt})
            total = int(body.get("totRecords", 0))
            lat = [first]
            for start in starts(total):
                elapsed, body = _timed(http, proc.url + INVOICES, {"flt": flt, "start": start})
                lat.append(elapsed)
                found = (body.get("jiinvoiceList") or {}).get("jiinvoice") or []
                ids.extend(int(item["header"]["invoiceId"]) for item in found[:1])
            return lat, total

        def spread(total: int) -> list[int]:
            last = max(1, total - page_size + 1)
            return [1 + (last - 1) * i // max(1, samples - 2) for i in range(samples - 1)]

        lat, total = pages(now - timedelta(days=11), now + timedelta(days=1), spread)
        out["list_page_all"] = {
            **latency_summary(lat),
            "matching": total,
            "page_size": page_size,
            "what": f"invoice list, {page_size}-row pages spread over all {total} matching invoices",
        }
        lat, total = pages(
            now - timedelta(days=1),
            now,
            lambda t: [1 + page_size * i for i in range(1, min(samples, t // page_size + 1))],
        )
        out["list_page_one_day"] = {
            **latency_summary(lat),
            "matching": total,
            "what": "invoice list, one-day lastUpdate window (what a daily poll reads)",
        }
        lat_detail = []
        for invoice_id in ids[:samples]:
            elapsed, _ = _timed(http, f"{proc.url}{INVOICES}/{invoice_id}")
            lat_detail.append(elapsed)
        out["invoice_detail"] = {**latency_summary(lat_detail), "what": "one invoice's detail"}
        out["sandbox_rss_after_mb"] = proc.memory()["rss_mb"]
        http.close()
    return out


def run(lab: Lab) -> dict[str, Any]:
    samples = 12 if lab.options.quick else 60
    n_pos = lab.options.n(100_000, 10_000, minimum=1000)
    n_inv = lab.options.n(20_000, 2_000, minimum=200)
    lab.say("serving: start times")
    starts = {k: _start_times(k, 1 if lab.options.quick else 3) for k in ("exact", "jaggaer")}
    lab.say(f"serving: Exact at {n_pos} purchase orders")
    exact = _exact(lab, samples, n_pos)
    lab.say(f"serving: JAGGAER at {n_inv} invoices")
    jaggaer = _jaggaer(lab, samples, n_inv)
    problems = []
    if exact["purchase_orders"] < n_pos:
        problems.append(f"Exact holds {exact['purchase_orders']} POs, wanted {n_pos}")
    return {"start": starts, "exact": exact, "jaggaer": jaggaer, "samples": samples, "problems": problems}
