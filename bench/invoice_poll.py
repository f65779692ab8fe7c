"""Scenario 2 — invoice poll: N approved JAGGAER invoices updated over one day, both business units (both Exact
divisions), posted as purchase entries; then a steady-state re-run over the same day.

Exact enforces its 60 calls a minute per division, with the minute **compressed** to ``--minute-seconds`` (default
1 s, i.e. 60x): at the real 60 s a 1,000-invoice run would take about 17 minutes of pacing. The connector paces from
the ``X-RateLimit-*`` headers exactly as in production (it reads the window's end from the headers), so what is
measured is its pacing against a 60-calls-per-window budget, at 60x the real rate. 429s must be 0.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.env import DIV_MFG, DIV_SVC, TENANT, commits, connect_exact
from bench.lab import Lab
from bench.measure import measure
from bench.servers import rate_windows, summarise_requests

BUSINESS_UNITS = {DIV_MFG: "UK-MFG", DIV_SVC: "UK-SVC"}
SUPPLIERS_PER_DIVISION = 20
LIST_PATH = "/j1p/api/public/ji/v1/invoices"


def bench_day() -> date:
    """A day after everything the JAGGAER seed generates, so the window holds only the benchmark's invoices."""
    return datetime.now(UTC).date() + timedelta(days=3)


def _window(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _suppliers() -> dict[int, list[str]]:
    from sandbox.common.demo_company import suppliers_in

    return {
        div: [s.code for s in suppliers_in(div) if not s.blocked][:SUPPLIERS_PER_DIVISION] for div in BUSINESS_UNITS
    }


def _create_invoices(lab: Lab, n: int, day: date) -> float:
    """N approved invoices, ``lastUpdate`` spread evenly over ``day``, alternating business units; 1-3 lines."""
    suppliers = _suppliers()
    divisions = list(BUSINESS_UNITS)
    start, _ = _window(day)
    t0 = time.perf_counter()
    for i in range(n):
        div = divisions[i % 2]
        codes = suppliers[div]
        lines = [{"unit_price": f"{10 + (i * 7 + j * 3) % 490}.{(i + j) % 100:02d}"} for j in range(1 + i % 3)]
        lab.jaggaer.admin(
            "POST",
            "invoices",
            {
                "supplier_number": codes[(i // 2) % len(codes)],
                "business_unit": BUSINESS_UNITS[div],
                "supplier_invoice_number": f"BENCH-{i:05d}",
                "invoice_date": day.isoformat(),
                "last_update": (start + timedelta(seconds=(i + 0.5) * 86400 / n)).isoformat(),
                "lines": lines,
                "seed": i,
            },
        )
    return time.perf_counter() - t0


def _run_flow(engine: Any, window: tuple[datetime, datetime], run_id: str) -> tuple[dict[str, Any], dict, Any]:
    from ml_connector.flows import invoice_poll as ip
    from ml_connector.flows.runtime import FlowContext, load_tenant

    ctx = FlowContext.for_test(
        load_tenant(TENANT), ip.FLOW, engine, run_id=run_id, window=window, run_type="scheduled", scheduled="interval"
    )
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    results: dict[str, Any] = {"extract": ip.extract(ctx).to_dict()}
    times["extract"] = round(time.perf_counter() - t0, 3)
    for division in ctx.tenant.exact.divisions:
        dctx = ctx.for_division(division)
        t0 = time.perf_counter()
        results[f"map_vendors_{division}"] = ip.map_vendors(dctx).to_dict()
        times[f"map_vendors_{division}"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        checked = ip.validate(dctx)
        results[f"validate_{division}"] = checked
        times[f"validate_{division}"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        results[f"post_{division}"] = ip.post(dctx, checked.get("master")).to_dict()
        times[f"post_{division}"] = round(time.perf_counter() - t0, 3)
    summary = ip.report_run(ctx, results, raise_on_failure=False)
    return summary, times, ctx


def _pacing(ctx: Any) -> dict[str, float]:
    hook = ctx._hooks.get("exact")
    if hook is None or "client" not in hook.__dict__:
        return {}
    return {str(d): round(hook.client.limiter.budget(d).waited, 3) for d in BUSINESS_UNITS}


def _run_measured(lab: Lab, engine: Any, window: Any, run_id: str, *, trace: bool = False) -> dict[str, Any]:
    lab.exact.clear()
    lab.jaggaer.clear()
    commits0 = commits(engine)
    with measure(trace=trace) as m:
        summary, times, ctx = _run_flow(engine, window, run_id)
    ex_rows, jg_rows = lab.exact.requests(), lab.jaggaer.requests()
    return {
        "counts": dict(summary.get("counts") or {}),
        "report_problems": list(summary.get("problems") or [])[:5],
        "stage_s": times,
        "measured": m.as_dict(),
        "store_commits": commits(engine) - commits0,
        "exact": summarise_requests(ex_rows, token_path="/api/oauth2/token"),
        "jaggaer": summarise_requests(jg_rows),
        "jaggaer_list_pages": sum(1 for r in jg_rows if r["path"] == LIST_PATH),
        "exact_peak_in_flight": lab.exact.calls().get("peak_in_flight", {}),
        "exact_rate_windows": rate_windows(ex_rows),
        "exact_pacing_wait_s": _pacing(ctx),
    }


def _setup(lab: Lab, n: int, day: date) -> tuple[Any, float]:
    from ml_connector.jaggaer.hook import clear_token_cache

    lab.exact.admin("POST", "reset", {})
    lab.exact.admin("POST", "settings", {"rate_limits_enabled": True, "minute_window_s": lab.options.minute_s})
    lab.jaggaer.admin("POST", "reset", {})
    created_s = _create_invoices(lab, n, day)
    engine = lab.env.fresh_db("invoice_poll")
    connect_exact(engine, lab.exact.url)
    clear_token_cache()
    return engine, created_s


def run(lab: Lab) -> dict[str, Any]:
    n = lab.options.n(1000, 60, minimum=4)
    day = bench_day()
    window = _window(day)
    lab.say(f"invoice poll: creating {n} approved invoices over {day} in JAGGAER (both business units)")
    engine, created_s = _setup(lab, n, day)
    page_size = int(lab.jaggaer.admin("GET", "settings").get("page_size", 37))

    lab.say(f"invoice poll: first run (Exact minute compressed to {lab.options.minute_s:g}s)")
    first = _run_measured(lab, engine, window, "bench-first")
    pages = math.ceil(n / page_size)
    master = sum(
        v for k, v in first["exact"]["by_endpoint"].items() if k.startswith("GET ") and "PurchaseEntries" not in k
    )
    posted = first["counts"].get("posted", 0)
    first.update(
        n_invoices=n,
        invoice_setup_s=round(created_s, 1),
        page_size=page_size,
        list_pages=pages,
        exact_master_pages=master,
        budget={"jaggaer": pages + n + 2, "exact": n + master + 2},
        # list pages + one detail per invoice + one J1P token; one POST per invoice + the master-data pages
        minimum={"jaggaer": pages + n + 1, "exact": n + master},
        minute_window_s=lab.options.minute_s,
        compression=round(60.0 / lab.options.minute_s, 1),
    )
    wall = first["measured"]["wall_s"]
    first["records_per_s"] = round(posted / wall, 1) if wall else 0.0
    first["problems"] = _problems(first)
    if posted != n:
        first["problems"].append(f"posted {posted} of {n} invoices")
    for side in ("exact", "jaggaer"):
        if first[side]["total"] > first["budget"][side]:
            first["problems"].append(
                f"{side}: {first[side]['total']} calls, over the budget of {first['budget'][side]}"
            )

    lab.say("invoice poll: steady-state re-run over the same day")
    steady = _run_measured(lab, engine, window, "bench-steady")
    steady["minimum"] = {"jaggaer": pages, "exact": 0}
    steady["problems"] = _problems(steady)

    return {"first": first, "steady": steady}


def run_traced(lab: Lab) -> dict[str, Any]:
    """The first run again, in a process of its own, under tracemalloc (memory only; see po_push.run_traced)."""
    n = lab.options.n(1000, 60, minimum=4)
    day = bench_day()
    lab.say("invoice poll: first run again under tracemalloc (memory only)")
    engine, _ = _setup(lab, n, day)
    traced = _run_measured(lab, engine, _window(day), "bench-traced", trace=True)
    problems = _problems(traced)
    if traced["counts"].get("posted", 0) != n:
        problems.append(f"posted {traced['counts'].get('posted', 0)} of {n} invoices")
    return {
        "tracemalloc_peak_mb": traced["measured"].get("tracemalloc_peak_mb"),
        "rss_peak_mb": traced["measured"]["rss_peak_mb"],
        "wall_s_with_tracemalloc": traced["measured"]["wall_s"],
        "posted": traced["counts"].get("posted", 0),
        "exact_429": traced["exact"]["429"],
        "problems": problems,
    }


def _problems(run: dict[str, Any]) -> list[str]:
    out: list[str] = []
    counts = run["counts"]
    for bad in ("failed", "ambiguous", "quarantined", "held"):
        if counts.get(bad):
            out.append(f"{counts[bad]} {bad}")
    for side in ("exact", "jaggaer"):
        if run[side]["429"]:
            out.append(f"{run[side]['429']} HTTP 429 from {side}")
    peaks = {k: v for k, v in run["exact_peak_in_flight"].items() if v > 1}
    if peaks:
        out.append(f"Exact division(s) called in parallel: {peaks}")
    return out
