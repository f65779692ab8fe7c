"""Scenario 1 — PO push: a cold run (N new orders x L lines from V new suppliers, one division), a steady-state
re-run with nothing changed, and a run with 5 % of the orders changed.

Exact's rate limits are on with their real 60-second minute: the connector's pacing (``exact.ratelimit``) is part
of the wall time, and the seconds it spent waiting are reported next to it.
"""

from __future__ import annotations

import math
from typing import Any

from bench.env import DIV_MFG, TENANT, commits, connect_exact
from bench.lab import Lab
from bench.measure import measure
from bench.servers import rate_windows, summarise_requests

FLOW = "po_push"
LINES = 5
CHANGED_SHARE = 0.05


def _budget_exact(n: int, lines: int, v: int) -> int:
    return math.ceil(n * (lines + 1) / 1000) + math.ceil(v / 20) + 2


def _budget_jaggaer(n: int, v: int) -> int:
    return n + math.ceil(v / 50) + 2


def _run_flow(lab: Lab, engine: Any, run_id: str) -> tuple[dict[str, int], dict[str, float], Any]:
    """extract → map_vendors → validate → post for the division, as the DAG's task group does; per-stage times."""
    import time

    from ml_connector.flows import po_push
    from ml_connector.flows.runtime import FlowContext, Outcomes, RunParams

    ctx = FlowContext.for_test(
        _tenant(), FLOW, engine, run_id=run_id, params=RunParams(), division=DIV_MFG, run_type="scheduled"
    )
    total = Outcomes()
    times: dict[str, float] = {}
    for stage in po_push.STAGES:
        t0, c0 = time.perf_counter(), time.process_time()
        total.merge(getattr(po_push, stage)(ctx))
        times[stage] = round(time.perf_counter() - t0, 3)
        times[f"{stage}_cpu"] = round(time.process_time() - c0, 3)
    return dict(total.counts), times, ctx


def _tenant() -> Any:
    from ml_connector.flows.runtime import load_tenant

    return load_tenant(TENANT)


def _pacing(ctx: Any) -> float:
    hook = ctx._hooks.get("exact")
    if hook is None or "client" not in hook.__dict__:
        return 0.0
    return round(hook.client.limiter.budget(DIV_MFG).waited, 3)


def _run_measured(lab: Lab, engine: Any, run_id: str, *, trace: bool = False) -> dict[str, Any]:
    lab.exact.clear()
    lab.jaggaer.clear()
    commits0 = commits(engine)
    with measure(trace=trace) as m:
        counts, stages, ctx = _run_flow(lab, engine, run_id)
    ex_rows, jg_rows = lab.exact.requests(), lab.jaggaer.requests()
    ex_calls = lab.exact.calls()
    return {
        "counts": counts,
        "stage_s": stages,
        "measured": m.as_dict(),
        "store_commits": commits(engine) - commits0,
        "exact": summarise_requests(ex_rows, token_path="/api/oauth2/token"),
        "jaggaer": summarise_requests(jg_rows),
        "exact_peak_in_flight": ex_calls.get("peak_in_flight", {}),
        "exact_rate_windows": rate_windows(ex_rows),
        "exact_pacing_wait_s": _pacing(ctx),
    }


def _setup(lab: Lab, n: int, v: int) -> tuple[Any, dict[str, Any]]:
    from ml_connector.jaggaer.hook import clear_token_cache
    from sandbox.common.demo_company import suppliers_in

    ex, jg = lab.exact, lab.jaggaer
    ex.admin("POST", "reset", {"empty": True})
    ex.admin("POST", "settings", {"rate_limits_enabled": True, "minute_window_s": 60.0, "error_budget_enabled": True})
    jg.admin("POST", "reset", {"empty": True})
    blocked = sum(1 for s in suppliers_in(DIV_MFG) if s.blocked)
    seeded = ex.admin(
        "POST",
        "seed",
        {
            "purchase_orders": n,
            "suppliers": v + blocked,  # the generator's target counts every supplier account, blocked ones too
            "divisions": [DIV_MFG],
            "lines": [LINES, LINES],
            "days": 30,  # recent orders: open, not completed
            "seed": 2026,
        },
    )
    engine = lab.env.fresh_db("po_push")
    connect_exact(engine, ex.url)
    clear_token_cache()
    return engine, seeded


def _posted_ids(engine: Any) -> list[str]:
    from sqlalchemy import select

    from ml_connector.store.db import session_scope
    from ml_connector.store.models import LedgerEntry

    with session_scope(engine) as s:
        return list(
            s.scalars(
                select(LedgerEntry.source_id)
                .where(LedgerEntry.flow == FLOW, LedgerEntry.state == "posted")
                .order_by(LedgerEntry.id)
            )
        )


def run(lab: Lab) -> dict[str, Any]:
    n = lab.options.n(2000, 100, minimum=20)
    v = lab.options.n(200, 20, minimum=2)
    lab.say(f"PO push: seeding {n} orders x {LINES} lines from {v} suppliers in division {DIV_MFG}")
    engine, seeded = _setup(lab, n, v)

    lab.say("PO push: cold run")
    cold = _run_measured(lab, engine, "bench-cold")
    c = cold["counts"]
    posted, created = c.get("posted", 0), c.get("vendor_created", 0)
    cold["n_orders"], cold["lines"], cold["v_suppliers"] = n, LINES, created
    cold["extracted"] = c.get("extracted", 0)
    cold["budget"] = {"exact": _budget_exact(n, LINES, created), "jaggaer": _budget_jaggaer(n, created)}
    cold["minimum"] = {
        # sync pages + account reads (20 a call) + one sync/Deleted; one import per order + one per 50 suppliers
        "exact": math.ceil(n * (LINES + 1) / 1000) + math.ceil(created / 20) + 1,
        "jaggaer": posted + math.ceil(created / 50),
    }
    wall = cold["measured"]["wall_s"]
    cold["records_per_s"] = round(posted / wall, 1) if wall else 0.0
    busy = wall - cold["exact_pacing_wait_s"]
    cold["records_per_s_without_pacing"] = round(posted / busy, 1) if busy > 0 else 0.0
    cold["problems"] = _problems(cold, expect_posted=True)
    for side in ("exact", "jaggaer"):
        if cold[side]["total"] > cold["budget"][side]:
            cold["problems"].append(f"{side}: {cold[side]['total']} calls, over the budget of {cold['budget'][side]}")

    lab.say("PO push: steady-state re-run (nothing changed)")
    steady = _run_measured(lab, engine, "bench-steady")
    steady["minimum"] = {"exact": 2, "jaggaer": 0}  # one empty sync page, one sync/Deleted
    steady["problems"] = _problems(steady)

    ids = _posted_ids(engine)
    k = min(len(ids), max(1, round(n * CHANGED_SHARE)))
    changed = [ids[i * len(ids) // k] for i in range(k)]  # spread evenly over the posted orders
    lab.say(f"PO push: changing {len(changed)} of {len(ids)} posted orders in Exact, then a run")
    for po_id in changed:
        lab.exact.admin(
            "PATCH", f"purchase_orders/{po_id}", {"LineUpdates": [{"LineNumber": 1, "QuantityInPurchaseUnits": 999}]}
        )
    delta = _run_measured(lab, engine, "bench-changed")
    delta["n_changed"] = len(changed)
    delta["minimum"] = {"exact": math.ceil(len(changed) * (LINES + 1) / 1000) + 1, "jaggaer": len(changed)}
    dwall = delta["measured"]["wall_s"]
    delta["records_per_s"] = round(delta["counts"].get("updated", 0) / dwall, 1) if dwall else 0.0
    delta["problems"] = _problems(delta)
    if delta["counts"].get("updated", 0) != len(changed):
        delta["problems"].append(f"updated {delta['counts'].get('updated', 0)} of {len(changed)} changed orders")

    return {"seeded": seeded, "cold": cold, "steady": steady, "changed_5pct": delta}


def run_traced(lab: Lab) -> dict[str, Any]:
    """The cold run again, in a process of its own, under tracemalloc: its peak Python heap. The wall time of this
    pass is not comparable (tracemalloc slows allocation down)."""
    n = lab.options.n(2000, 100, minimum=20)
    v = lab.options.n(200, 20, minimum=2)
    lab.say("PO push: cold run again under tracemalloc (memory only)")
    engine, _ = _setup(lab, n, v)
    traced = _run_measured(lab, engine, "bench-cold-traced", trace=True)
    return {
        "tracemalloc_peak_mb": traced["measured"].get("tracemalloc_peak_mb"),
        "rss_peak_mb": traced["measured"]["rss_peak_mb"],
        "wall_s_with_tracemalloc": traced["measured"]["wall_s"],
        "counts": traced["counts"],
        "problems": _problems(traced, expect_posted=True),
    }


def _problems(run: dict[str, Any], *, expect_posted: bool = False) -> list[str]:
    out: list[str] = []
    counts = run["counts"]
    for bad in ("failed", "ambiguous", "quarantined", "held"):
        if counts.get(bad):
            out.append(f"{counts[bad]} {bad}")
    if expect_posted and not counts.get("posted"):
        out.append("nothing posted")
    for side in ("exact", "jaggaer"):
        if run[side]["429"]:
            out.append(f"{run[side]['429']} HTTP 429 from {side}")
    peaks = {k: v for k, v in run["exact_peak_in_flight"].items() if v > 1}
    if peaks:
        out.append(f"Exact division(s) called in parallel: {peaks}")
    return out
