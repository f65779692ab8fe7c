"""The invoice poll against a division's daily Exact budget (``exact.daily_budget``), over real HTTP.

The Exact sandbox enforces a small daily limit; the stages run as the DAG runs them, each in a context of its own (a
task is a process of its own: its hook knows nothing of the earlier tasks' calls). Day 1 posts what fits the invoice
poll's share and keeps the rest of the day's calls for the PO push and searches; the post task and the run end green
with "N invoices left for tomorrow (budget resets at …)" in the report, the alert and the console; the records left stay
pending. Day 2 (the sandbox clock moved on a day) posts them first, then the day's new ones, each exactly once.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from invoice_poll_support import DIV_MFG, World, day_window

from ml_connector.exact.clock import SimClock
from ml_connector.exact.daily_budget import reset_text
from ml_connector.flows import runtime
from ml_connector.flows.budget_plan import LEFT, left_lines
from ml_connector.flows.invoice_poll import FLOW

LIMIT = 60  # Exact's daily calls per division, in this test
SHARE = 0.7  # the invoice poll's default share: 18 of 60 calls are kept for the PO push and searches
KEPT = 18


@pytest.fixture
def sim_hooks(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Hooks on the sandbox's clock (the test moves it a day on), as tasks build them."""
    world: World = request.getfixturevalue("world")

    def factory(ctx: runtime.FlowContext) -> Any:
        from ml_connector.exact.hook import ExactOnlineHook

        clock = SimClock.from_anchors(world.exact.clock())
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
    request.addfinalizer(lambda: runtime.set_hook_factory("exact", None))


def run_as_tasks(w: World, window: tuple[datetime, datetime], run_id: str) -> dict[str, Any]:
    """extract → map vendors → validate → post → report, each stage in a fresh context (as Airflow tasks are)."""
    from ml_connector.flows import invoice_poll as ip

    def ctx(division: int | None = None) -> runtime.FlowContext:
        base = runtime.FlowContext.for_test(
            w.tenant, FLOW, w.engine, run_id=run_id, window=window, run_type="scheduled", scheduled="interval"
        )
        return base.for_division(division) if division is not None else base

    results: dict[str, Any] = {"extract": ip.extract(ctx()).to_dict()}
    for division in w.tenant.exact.divisions:
        results[f"map_vendors_{division}"] = ip.map_vendors(ctx(division)).to_dict()
        checked = ip.validate(ctx(division))
        results[f"validate_{division}"] = checked
        posted = ip.post(ctx(division), checked.get("master"))
        # the post task's own verdict (run_stage(fail_on_records=True)): None means it ends successfully
        assert runtime.records_not_done(posted, f"post {division}") is None
        results[f"post_{division}"] = posted.to_dict()
    # raise_on_failure=True as the DAG's report task: a red run would raise here
    summary = ip.report_run(ctx(), results, raise_on_failure=True)
    summary["stages"] = results
    return summary


def division_calls(w: World, division: int) -> Counter[int]:
    """Exact API calls to ``division`` since the last clear, by HTTP status."""
    return Counter(int(c["status"]) for c in w.exact.calls()["log"] if c["path"].startswith(f"/api/v1/{division}/"))


def test_a_backlog_above_the_share_posts_what_fits_keeps_the_reserve_and_finishes_the_next_day(
    world: World, sim_hooks: None, caplog: pytest.LogCaptureFixture
) -> None:
    w = world
    w.exact.settings(daily_limit=LIMIT)
    # move the sandbox's clock on to the next 06:00 UTC, so a day later is the next budget day at any time of test
    now = datetime.fromtimestamp(float(w.exact.clock()["time"]), UTC)
    six = now.replace(hour=6, minute=0, second=0, microsecond=0)
    six += timedelta(days=1) if six <= now else timedelta(0)
    w.exact.advance((six - now).total_seconds())
    reset = (six + timedelta(days=1)).replace(hour=0)
    n = 50
    invoices = [
        w.invoice(supplier_invoice_number=f"BUDGET-{i:02d}", minute=i, lines=[{"unit_price": f"{10 + i}.00"}])
        for i in range(n)
    ]
    numbers = [inv["summary"]["invoiceNumber"] for inv in invoices]

    caplog.set_level(logging.INFO)
    day1 = run_as_tasks(w, day_window(w.day), "day-1")
    calls = division_calls(w, DIV_MFG)
    assert calls[429] == 0
    spent = sum(calls.values())
    post = day1["stages"][f"post_{DIV_MFG}"]["counts"]
    posted, left = post.get("posted", 0), post.get(LEFT, 0)
    # what fits is posted, the rest is left; the calls the share keeps for others are not touched
    assert posted > 0 and left > 0 and posted + left == n
    assert LIMIT - spent >= KEPT, f"{spent} calls spent of {LIMIT}: the {KEPT} kept for the PO push were touched"
    # and no more was left than needed: one more invoice (1 POST + the margin of 3) would have gone into the reserve
    assert LIMIT - spent - KEPT < 1 + 3
    assert len(w.entries(DIV_MFG)) == posted

    # the run is green with a warning; report, alert and console say how many wait and when the budget resets
    when = reset_text(reset, "Europe/London")  # the tenant's invoice_poll.timezone
    assert reset_text(datetime(2026, 12, 9, tzinfo=UTC), "Europe/London") == "2026-12-09 00:00 GMT (Europe/London)"
    assert reset_text(datetime(2026, 7, 1, tzinfo=UTC), "Europe/London") == (
        "2026-07-01 01:00 BST (Europe/London), 00:00 UTC"
    )
    line = f"{left} invoices left for tomorrow (budget resets at {when})"
    assert day1["counts"][LEFT] == left and not day1["problems"]
    assert day1["warnings"] == [f"[invoice_poll] division {DIV_MFG}: {line}"]
    assert line in day1["note"]
    alerts = [r.getMessage() for r in caplog.records if r.name == "ml_connector.alerts" and "ALERT" in r.getMessage()]
    [alert] = [a for a in alerts if "left for tomorrow" in a]
    assert line in alert and "Nothing failed" in alert and "invoice_poll.exact_daily_share (0.7" in alert
    assert left_lines(w.engine, "demo") == [f"[invoice_poll] division {DIV_MFG}: {line}"]
    plan = [r.getMessage() for r in caplog.records if "Exact call(s)" in r.getMessage()]
    assert plan and f"{n} invoice(s) need about" in plan[0], plan

    # the invoices left stay pending (not failed, not quarantined), oldest first is what was posted
    states = [w.ledger(inv["summary"]["invoiceId"]).state for inv in invoices]
    assert states == ["posted"] * posted + ["pending"] * left
    waiting = w.ledger(invoices[-1]["summary"]["invoiceId"])
    assert waiting.reason.startswith(f"left for tomorrow (budget resets at {when}): ")

    # the post task again the same day (a cleared task, a fresh process): it knows the share is spent without
    # spending a call to learn it (the day-1 stop was remembered), sends nothing, fails nothing
    from ml_connector.flows import invoice_poll as ip

    w.clear_calls()
    ctx = runtime.FlowContext.for_test(w.tenant, FLOW, w.engine, run_id="day-1-again", division=DIV_MFG)
    again = ip.post(ctx, day1["stages"][f"validate_{DIV_MFG}"]["master"])
    assert again.counts.get("posted", 0) == 0 and again.counts[LEFT] == left
    assert runtime.records_not_done(again, "post") is None
    assert sum(division_calls(w, DIV_MFG).values()) == 0

    # day 2: the budget is back; the invoices left yesterday go first, then the new one; each exactly once
    w.exact.advance(86400)
    w.clear_calls()
    day2 = w.day + timedelta(days=1)
    new = w.invoice(day=day2, supplier_invoice_number="BUDGET-NEW", lines=[{"unit_price": "99.00"}])
    second = run_as_tasks(w, day_window(day2), "day-2")
    assert second["counts"].get("posted") == left + 1 and LEFT not in second["counts"], second["counts"]
    assert "warnings" not in second and division_calls(w, DIV_MFG)[429] == 0
    entries = w.entries(DIV_MFG)
    refs = Counter(e["YourRef"] for e in entries)
    assert len(entries) == n + 1 and set(refs.values()) == {1}  # no duplicate
    by_number = sorted(entries, key=lambda e: e["EntryNumber"])
    order = [e["YourRef"] for e in by_number]
    assert order[-1] == "BUDGET-NEW"  # yesterday's first
    assert order[:n] == [f"BUDGET-{i:02d}" for i in range(n)]
    assert left_lines(w.engine, "demo") == []
    assert w.ledger(new["summary"]["invoiceId"]).state == "posted"
    assert numbers  # (invoice numbers, for the failure messages above)


def test_a_second_run_the_same_day_after_the_share_is_spent_is_green_and_spends_no_call(
    world: World, sim_hooks: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Every stage treats "share spent" like the post does: map vendors (a new vendor needs Exact's supplier list)
    and validate (master data) are refused before sending, end normally and change nothing; the post leaves every
    pending invoice for tomorrow; the report warns once with the count and the reset; not one Exact call."""
    w = world
    w.exact.settings(daily_limit=LIMIT)
    now = datetime.fromtimestamp(float(w.exact.clock()["time"]), UTC)
    six = now.replace(hour=6, minute=0, second=0, microsecond=0)
    six += timedelta(days=1) if six <= now else timedelta(0)
    w.exact.advance((six - now).total_seconds())
    reset = (six + timedelta(days=1)).replace(hour=0)
    for i in range(50):
        w.invoice(supplier_invoice_number=f"AGAIN-{i:02d}", minute=i, lines=[{"unit_price": f"{10 + i}.00"}])
    first = run_as_tasks(w, day_window(w.day), "day-1")
    left = first["counts"][LEFT]
    assert left > 0

    # later the same day: one invoice of a vendor linked on day 1 (validate needs master data), one of a vendor never
    # seen (map vendors needs the supplier list); both reads are refused before anything is sent
    known = w.invoice(supplier_invoice_number="AGAIN-KNOWN", hour=11, lines=[{"unit_price": "5.00"}])
    new = w.invoice(supplier_number="1002", supplier_invoice_number="AGAIN-NEWVENDOR", hour=11)
    w.clear_calls()
    caplog.clear()
    caplog.set_level(logging.INFO)
    again = run_as_tasks(w, day_window(w.day), "day-1-b")  # raises if any stage or the report is red

    assert sum(division_calls(w, DIV_MFG).values()) == 0, w.exact.calls()["log"]
    stages = again["stages"]
    assert stages[f"map_vendors_{DIV_MFG}"]["counts"] == {}  # nothing held, skipped or failed
    assert "master" not in stages[f"validate_{DIV_MFG}"]
    assert stages[f"post_{DIV_MFG}"]["counts"] == {LEFT: left + 2}
    line = f"{left + 2} invoices left for tomorrow (budget resets at {reset_text(reset, 'Europe/London')})"
    assert again["warnings"] == [f"[invoice_poll] division {DIV_MFG}: {line}"] and not again["problems"]
    assert line in again["note"]
    alerts = [r.getMessage() for r in caplog.records if r.name == "ml_connector.alerts" and "ALERT" in r.getMessage()]
    assert len([a for a in alerts if "left for tomorrow" in a]) == 1, alerts
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("map vendors skipped for 1 invoice(s)" in m for m in logged), logged
    assert any("validate skipped for " in m for m in logged), logged
    for inv in (known, new):
        entry = w.ledger(inv["summary"]["invoiceId"])
        assert entry.state == "pending", entry.state
        assert entry.reason.startswith("left for tomorrow (budget resets at "), entry.reason
