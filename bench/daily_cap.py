"""Scenario — daily cap: a backlog of invoices larger than the invoice poll's share of a division's daily Exact budget.

Exact allows a division ``D`` calls a day (here 1,000; quick 120, instead of 5,000); the invoice poll may use 70 % of
them (``invoice_poll.exact_daily_share``, the default) and keeps the rest for the PO push and searches. ``B`` approved
invoices (D; quick 120) wait in JAGGAER for one division. Day 1 posts what fits, keeps the reserve, and the run ends
green with "N invoices left for tomorrow (budget resets at …)"; the Exact sandbox's clock then moves on a day and day
2 posts the rest, those left first. Checked: posted + left = B on day 1, the reserve untouched, the report line
with the reset time, every invoice in Exact exactly once after day 2, 0 x 429. Each stage runs in a fresh context,
as Airflow tasks do (a task's hook knows nothing of the earlier tasks' calls), with the connector's clock following
the sandbox's (``SimClock``) so the day passes for both.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.env import DIV_MFG, TENANT, connect_exact
from bench.invoice_poll import bench_day
from bench.lab import Lab

BUSINESS_UNIT = "UK-MFG"
SUPPLIERS = 20
SHARE = 0.7  # the default invoice_poll.exact_daily_share (checked below against the tenant file)


def _window(day: Any) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _create(lab: Lab, n: int, day: Any, prefix: str) -> None:
    from sandbox.common.demo_company import suppliers_in

    codes = [s.code for s in suppliers_in(DIV_MFG) if not s.blocked][:SUPPLIERS]
    start, _ = _window(day)
    for i in range(n):
        lab.jaggaer.admin(
            "POST",
            "invoices",
            {
                "supplier_number": codes[i % len(codes)],
                "business_unit": BUSINESS_UNIT,
                "supplier_invoice_number": f"{prefix}-{i:05d}",
                "invoice_date": day.isoformat(),
                "last_update": (start + timedelta(seconds=(i + 0.5) * 86400 / max(n, 1))).isoformat(),
                "lines": [{"unit_price": f"{10 + i % 490}.{i % 100:02d}"}],
                "seed": i,
            },
        )


def _sim_hooks(lab: Lab) -> None:
    """Hooks on the Exact sandbox's clock (rebuilt from its anchors for every context: the day moves on)."""
    from ml_connector.exact.clock import SimClock
    from ml_connector.flows import runtime

    def factory(ctx: Any) -> Any:
        from ml_connector.exact.hook import ExactOnlineHook

        clock = SimClock.from_anchors(lab.exact.admin("GET", "clock"))
        return ExactOnlineHook(
            ctx.tenant.exact.conn_id,
            ctx.tenant.name,
            engine=ctx.engine,
            audit=ctx.audit,
            policy=runtime.http_policy(),
            clock=clock,
            sleep=clock.sleep,
            on_broken=lambda exc: None,
        )

    runtime.set_hook_factory("exact", factory)


def _run_day(engine: Any, window: tuple[datetime, datetime], run_id: str) -> dict[str, Any]:
    """extract → map vendors → validate → post → report, each stage in a fresh context; the report as the DAG's
    (``raise_on_failure=True``: a red run raises here)."""
    from ml_connector.flows import invoice_poll as ip
    from ml_connector.flows import runtime

    tenant = runtime.load_tenant(TENANT)

    def ctx(division: int | None = None) -> Any:
        base = runtime.FlowContext.for_test(
            tenant, ip.FLOW, engine, run_id=run_id, window=window, run_type="scheduled", scheduled="interval"
        )
        return base.for_division(division) if division is not None else base

    t0 = time.perf_counter()
    results: dict[str, Any] = {"extract": ip.extract(ctx()).to_dict()}
    green_posts = True
    for division in tenant.exact.divisions:
        results[f"map_vendors_{division}"] = ip.map_vendors(ctx(division)).to_dict()
        checked = ip.validate(ctx(division))
        results[f"validate_{division}"] = checked
        posted = ip.post(ctx(division), checked.get("master"))
        green_posts = green_posts and runtime.records_not_done(posted, "post") is None
        results[f"post_{division}"] = posted.to_dict()
    summary = ip.report_run(ctx(), results, raise_on_failure=True)
    return {
        "wall_s": round(time.perf_counter() - t0, 1),
        "counts": dict(summary.get("counts") or {}),
        "warnings": list(summary.get("warnings") or []),
        "note": summary.get("note"),
        "post_tasks_green": green_posts,
        "run_green": True,  # report_run(raise_on_failure=True) returned
    }


def _division_calls(lab: Lab) -> Counter[int]:
    return Counter(int(r["status"]) for r in lab.exact.requests() if str(r["path"]).startswith(f"/api/v1/{DIV_MFG}/"))


def run(lab: Lab) -> dict[str, Any]:
    from ml_connector.exact.daily_budget import reset_text
    from ml_connector.flows import runtime
    from ml_connector.jaggaer.hook import clear_token_cache

    limit = lab.options.n(1000, 120, minimum=40)
    backlog = limit
    kept = limit - int(limit * SHARE)
    day = bench_day()
    tenant_share = runtime.load_tenant(TENANT).invoice_poll.exact_daily_share
    lab.exact.admin("POST", "reset", {})
    lab.exact.admin(
        "POST",
        "settings",
        {"rate_limits_enabled": True, "minute_window_s": lab.options.minute_s, "daily_limit": limit},
    )
    lab.jaggaer.admin("POST", "reset", {})
    lab.say(f"daily cap: {backlog} invoices for division {DIV_MFG}, Exact daily limit {limit}, share {tenant_share:g}")
    _create(lab, backlog, day, "CAP")
    engine = lab.env.fresh_db("daily_cap")
    connect_exact(engine, lab.exact.url)  # on the sandbox's clock as it is (the connector's clock is the same)
    clear_token_cache()
    # the sandbox's day starts at 00:00 UTC: move its clock on to the next 06:00, so one day on is the next budget day
    now = datetime.fromtimestamp(float(lab.exact.admin("GET", "clock")["time"]), UTC)
    six = now.replace(hour=6, minute=0, second=0, microsecond=0)
    six += timedelta(days=1) if six <= now else timedelta(0)
    lab.exact.admin("POST", "clock", {"advance": (six - now).total_seconds()})
    reset = (six + timedelta(days=1)).replace(hour=0)
    _sim_hooks(lab)
    try:
        lab.exact.clear()
        lab.say("daily cap: day 1")
        day1 = _run_day(engine, _window(day), "cap-day-1")
        calls1 = _division_calls(lab)
        spent1 = sum(n for status, n in calls1.items() if status < 400)

        lab.exact.admin("POST", "clock", {"advance": 86400})
        lab.exact.clear()
        lab.say("daily cap: day 2 (the sandbox clock moved on a day)")
        day2 = _run_day(engine, _window(day + timedelta(days=1)), "cap-day-2")
        calls2 = _division_calls(lab)
    finally:
        runtime.set_hook_factory("exact", None)

    entries = lab.exact.admin("GET", "purchase_entries", division=DIV_MFG)
    refs = Counter(e.get("YourRef") for e in entries)
    duplicates = sum(n - 1 for n in refs.values() if n > 1)
    posted1, left1 = day1["counts"].get("posted", 0), day1["counts"].get("left_for_tomorrow", 0)
    posted2 = day2["counts"].get("posted", 0)
    timezone = runtime.load_tenant(TENANT).invoice_poll.timezone
    line = f"{left1} invoices left for tomorrow (budget resets at {reset_text(reset, timezone)})"
    out = {
        "daily_limit": limit,
        "share": tenant_share,
        "kept": kept,
        "backlog": backlog,
        "reset_at": reset.isoformat(),
        "day1": {**day1, "exact_calls": spent1, "left_in_budget": limit - spent1, "429": calls1.get(429, 0)},
        "day2": {**day2, "exact_calls": sum(calls2.values()), "429": calls2.get(429, 0)},
        "in_exact": len(entries),
        "duplicates": duplicates,
        "report_line": line,
    }
    problems: list[str] = []
    if tenant_share != SHARE:
        problems.append(f"the tenant's invoice_poll.exact_daily_share is {tenant_share}, the scenario expects {SHARE}")
    if not (posted1 and left1 and posted1 + left1 == backlog):
        problems.append(f"day 1: posted {posted1} and left {left1} of {backlog}")
    if limit - spent1 < kept:
        problems.append(f"day 1 spent {spent1} of {limit} calls: the {kept} kept for the PO push were touched")
    if not any(line in w for w in day1["warnings"]):
        problems.append(f"day 1's report does not say {line!r}: {day1['warnings']}")
    if not (day1["post_tasks_green"] and day2["post_tasks_green"]):
        problems.append("a post task would have failed")
    if posted2 != left1 or day2["counts"].get("left_for_tomorrow"):
        problems.append(f"day 2 posted {posted2} of the {left1} left")
    if len(entries) != backlog or duplicates:
        problems.append(f"{len(entries)} entries in Exact for {backlog} invoices ({duplicates} duplicates)")
    if out["day1"]["429"] or out["day2"]["429"]:
        problems.append(f"429s: day 1 {out['day1']['429']}, day 2 {out['day2']['429']}")
    out["problems"] = problems
    return out
