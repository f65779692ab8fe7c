"""Scenario 1 — PO push: a cold run (N new orders x L lines from V new suppliers, one division), a steady-state
re-run with nothing changed, and a run with 5 % of the orders changed.

Exact's rate limits are on with their real 60-second minute: the connector's pacing (``exact.ratelimit``) is part
of the wall time, and the seconds it spent waiting are reported next to it.
"""

from __future__ import annotations

import math
import os
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

    out = {"seeded": seeded, "cold": cold, "steady": steady, "changed_5pct": delta}
    out.update(_scaling_and_memory(lab))
    return out


# --------------------------------------------------------------------------------- CPU ratio 10k/1k, memory at 100k
#: Sizes of the zero-latency runs: (full, --quick) orders; ``--scale`` multiplies them like every count.
SMALL, LARGE, MEMORY = (1000, 100), (10000, 300), (100000, 300)
CPU_RATIO_LIMIT = 1.10  # CPU per order at LARGE within 10 % of that at SMALL, every stage
RSS_LIMIT_MB = 300.0  # peak RSS at MEMORY orders
CHILD_TIMEOUT_S = 7200.0
#: The whole scenario's process (bench.cli): the 2,000-order runs and the three zero-latency runs above.
SCENARIO_TIMEOUT_S = 900.0 + 3 * CHILD_TIMEOUT_S
#: ``small,large,memory`` orders instead of the sizes above (e.g. ``1000,10000,20000`` on a busy machine).
SIZES_ENV = "MLC_BENCH_PO_SIZES"


def _size(lab: Lab, which: int, default: tuple[int, int]) -> int:
    raw = os.environ.get(SIZES_ENV, "").strip()
    if raw:
        return int(raw.split(",")[which])
    return lab.options.n(*default)


def _zero_latency_run(lab: Lab, n: int, run_id: str) -> dict[str, Any]:
    """A cold push of ``n`` new orders (5 lines, n/10 new suppliers, one division) with Exact's rate limits off:
    per stage its wall, its CPU and CPU per order, and the process's peak RSS during it (VmHWM reset per stage)."""
    import time

    from ml_connector.flows import po_push
    from ml_connector.flows.runtime import FlowContext, Outcomes, RunParams

    engine, _ = _setup(lab, n, max(2, n // 10))
    lab.exact.admin("POST", "settings", {"rate_limits_enabled": False})
    ctx = FlowContext.for_test(
        _tenant(), FLOW, engine, run_id=run_id, params=RunParams(), division=DIV_MFG, run_type="scheduled"
    )
    total = Outcomes()
    stages: dict[str, Any] = {}
    t0 = time.perf_counter()
    with measure() as whole:
        for stage in po_push.STAGES:
            with measure() as m:
                total.merge(getattr(po_push, stage)(ctx))
            stages[stage] = {
                "wall_s": round(m.wall_s, 2),
                "cpu_s": round(m.cpu_s, 2),
                "cpu_ms_per_order": round(m.cpu_s * 1000 / n, 3),
                "rss_peak_mb": m.rss_peak_mb,
            }
    counts = dict(total.counts)
    problems = [f"{counts[b]} {b}" for b in ("failed", "ambiguous", "quarantined", "held") if counts.get(b)]
    if counts.get("posted", 0) + counts.get("skipped", 0) != n:
        problems.append(f"posted {counts.get('posted', 0)} and skipped {counts.get('skipped', 0)} of {n} orders")
    return {
        "n_orders": n,
        "wall_s": round(time.perf_counter() - t0, 1),
        "rss_start_mb": whole.rss_start_mb,
        "rss_peak_mb": max([whole.rss_peak_mb, *(st["rss_peak_mb"] for st in stages.values())]),
        "rss_method": whole.rss_method,
        "stages": stages,
        "counts": {k: counts[k] for k in ("extracted", "posted", "skipped", "vendor_created") if k in counts},
        "problems": problems,
    }


def run_small(lab: Lab) -> dict[str, Any]:
    return _zero_latency_run(lab, _size(lab, 0, SMALL), "bench-cpu-small")


def run_large(lab: Lab) -> dict[str, Any]:
    return _zero_latency_run(lab, _size(lab, 1, LARGE), "bench-cpu-large")


def run_memory(lab: Lab) -> dict[str, Any]:
    return _zero_latency_run(lab, _size(lab, 2, MEMORY), "bench-memory")


def _scaling_and_memory(lab: Lab) -> dict[str, Any]:
    """The CPU-per-order ratio LARGE/SMALL per stage and the peak RSS at MEMORY orders, each run in a fresh
    connector process of its own (``bench.child``), like an Airflow task."""
    from bench.child import run_in_child

    out: dict[str, Any] = {}
    runs: dict[str, Any] = {}
    for key, function in (("small", "run_small"), ("large", "run_large"), ("memory", "run_memory")):
        lab.say(f"PO push: zero-latency cold run ({key}) in a fresh process")
        try:
            (runs[key],) = run_in_child(lab, [("po_push", function)], timeout=CHILD_TIMEOUT_S)
        except Exception as exc:  # the other figures still count; the missing one is a problem of its own
            runs[key] = {"problems": [f"{key} run failed: {exc}"[:2000]]}
    small, large = runs["small"].get("stages") or {}, runs["large"].get("stages") or {}
    ratio = {
        stage: round(large[stage]["cpu_ms_per_order"] / small[stage]["cpu_ms_per_order"], 3)
        for stage in small
        if stage in large and small[stage]["cpu_ms_per_order"]
    }
    scaling: dict[str, Any] = {"small": runs["small"], "large": runs["large"], "cpu_ratio": ratio, "problems": []}
    scaling["problems"] += [
        f"{stage}: CPU per order x{r:.2f} at {large_n} vs {small_n} orders (limit x{CPU_RATIO_LIMIT:.2f})"
        for stage, r in ratio.items()
        if r > CPU_RATIO_LIMIT
        for small_n, large_n in [(runs["small"]["n_orders"], runs["large"]["n_orders"])]
    ]
    memory = runs["memory"]
    if memory.get("rss_peak_mb", 0) > RSS_LIMIT_MB:
        memory.setdefault("problems", []).append(
            f"peak RSS {memory['rss_peak_mb']:.0f} MB at {memory['n_orders']} orders (limit {RSS_LIMIT_MB:.0f} MB)"
        )
    out["scaling"], out["memory"] = scaling, memory
    return out


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


def render_markdown(po: dict[str, Any]) -> list[str]:
    """The CPU-ratio and memory lines of the PO push section of results.md (``bench.report``)."""
    scaling, memory = po.get("scaling") or {}, po.get("memory") or {}
    lines: list[str] = []
    small, large, ratio = scaling.get("small") or {}, scaling.get("large") or {}, scaling.get("cpu_ratio") or {}
    if ratio:
        lines += [
            f"PO push, connector CPU per order at {large['n_orders']:,} vs {small['n_orders']:,} new orders (zero-"
            "latency sandbox: Exact's rate limits off; each run a cold push in a fresh process; goal: within "
            f"{CPU_RATIO_LIMIT - 1:.0%}):",
            "",
            "| stage | CPU ms/order (small) | CPU ms/order (large) | ratio |",
            "|---|---|---|---|",
            *(
                f"| {stage} | {small['stages'][stage]['cpu_ms_per_order']:.2f} "
                f"| {large['stages'][stage]['cpu_ms_per_order']:.2f} | x{r:.2f} |"
                for stage, r in ratio.items()
            ),
            "",
        ]
    if memory.get("stages"):
        per_stage = ", ".join(f"{k} {v['rss_peak_mb']:.0f} MB" for k, v in memory["stages"].items())
        lines += [
            f"PO push memory: peak RSS **{memory['rss_peak_mb']:.0f} MB** (goal ≤ {RSS_LIMIT_MB:.0f} MB) over a "
            f"cold push of {memory['n_orders']:,} new orders x {LINES} lines from {memory['n_orders'] // 10:,} new "
            "suppliers, one division, zero-latency sandbox: the whole connector process (Airflow and the connector "
            f"imported; {memory['rss_start_mb']:.0f} MB before the run), VmHWM reset at each stage's start; by stage "
            f"{per_stage}; {memory['wall_s']:.0f} s wall.",
            "",
        ]
    return lines
