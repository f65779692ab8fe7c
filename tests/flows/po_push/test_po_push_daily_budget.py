"""The PO push and its share of a division's daily Exact budget (``po_push.exact_daily_share``, default 0.9;
``exact.daily_budget``), against the Exact sandbox with a small daily limit.

The invoice poll stops while 30 % of the day's calls are left: the PO push still has its part of them. The PO push
itself stops before the last 10 % (kept for searches and a person's mlc commands): the call that would go deeper is
not sent, the stage ends green with "PO push paused in division D until <reset>" (alerted once per division and day,
not on every 15-minute run), the next runs know it without spending a call, and the orders not read or pushed yet
go the next day (the sync cursor did not move past them), each exactly once.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from po_push_support import DIV, World

from ml_connector.exact.clock import SimClock
from ml_connector.flows import runtime
from ml_connector.flows.budget_plan import PAUSED

LIMIT = 20  # Exact's daily calls per division, in this test: the invoice poll keeps 6, the PO push 2


def division_calls(w: World) -> Counter[int]:
    return Counter(int(c["status"]) for c in w.servers.exact.calls()["log"] if c["path"].startswith(f"/api/v1/{DIV}/"))


def spend(w: World, n: int) -> None:
    """``n`` calls of the same app to the division by someone else (another flow, a person)."""
    token = w.servers.exact.connect()["access_token"]
    with w.servers.exact.session(token) as s:
        for _ in range(n):
            r = s.get(w.servers.exact.api_url(DIV, "system/Divisions"), params={"$select": "Code"}, timeout=10)
            assert r.status_code == 200, r.text[:200]


def remaining(w: World) -> int:
    return LIMIT - sum(n for status, n in division_calls(w).items() if status < 400)


@pytest.fixture
def sim_hooks(sqlite_world: World, request: pytest.FixtureRequest) -> None:
    """Exact hooks on the sandbox's clock (the test moves it a day on), as tasks build them."""
    exact = sqlite_world.servers.exact

    def factory(ctx: runtime.FlowContext) -> Any:
        from ml_connector.exact.hook import ExactOnlineHook

        clock = SimClock.from_anchors(exact.clock())
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


@pytest.mark.parametrize("room", [3, 4], ids=["paused-in-extract", "paused-in-map-vendors"])
def test_the_po_push_uses_its_share_after_the_invoice_poll_and_pauses_green_before_the_calls_kept_for_searches(
    sqlite_world: World, sim_hooks: None, caplog: pytest.LogCaptureFixture, room: int
) -> None:
    """``room``: calls left when two new orders wait. 3: extract reads the sync page (1 call), is refused the
    deletions read, and stages nothing: the cursor stays. 4: extract completes (2 calls), the new suppliers' read is
    refused: their orders wait ``held`` for the budget (not as unmapped), released the next day."""
    w = sqlite_world
    exact = w.servers.exact
    # the sandbox's clock at the next 06:00 UTC, so a day later is the next budget day whatever the time of the test
    now = datetime.fromtimestamp(float(exact.clock()["time"]), UTC)
    six = now.replace(hour=6, minute=0, second=0, microsecond=0)
    six += timedelta(days=1) if six <= now else timedelta(0)
    exact.advance((six - now).total_seconds())
    exact.settings(rate_limits_enabled=True, daily_limit=LIMIT, minute_window_s=1.0)
    w.create_po()
    spend(w, LIMIT - 6)  # down to what the invoice poll keeps (1 - 0.7 of the day)
    assert remaining(w) == 6

    if room == 3:
        first = w.run(run_id="po-1")  # the PO push has room below the invoice poll's floor
        assert first["extracted"] == 1 and first["posted"] == 1 and not first[PAUSED]
        used = 6 - remaining(w)
        assert used >= 2 and remaining(w) >= room
    else:
        spend(w, 6 - room)  # the first order waits with the others
    w.create_po(supplier="1002")
    w.create_po(supplier="1003")
    spend(w, remaining(w) - room)
    assert remaining(w) == room
    caplog.set_level(logging.WARNING)
    # the 15-minute runs until the reset: every one ends normally (a red stage would raise here)
    runs = [w.run(run_id=f"po-{n + 2}") for n in range(4)]
    assert all(r[PAUSED] for r in runs), [dict(r.counts) for r in runs]
    if room == 3:
        assert runs[0]["extracted"] == 0 and not runs[0]["waiting_for_budget"], dict(runs[0].counts)
    else:
        assert runs[0]["extracted"] == 3 and runs[0]["waiting_for_budget"] == 3, dict(runs[0].counts)
        waiting = [e for e in w.ledger().values() if e.state == "held"]
        assert len(waiting) == 3 and all("PO push paused in division" in (e.reason or "") for e in waiting)
    assert remaining(w) == 2  # the 2 calls kept for searches were not touched
    assert division_calls(w)[429] == 0
    assert sum(r["failed"] + r["ambiguous"] + r["held"] for r in runs) == 0
    line = f"PO push paused in division {DIV} until {(six + timedelta(days=1)).replace(hour=0):%Y-%m-%d %H:%M} UTC: "
    line += "Exact daily share spent (2 calls kept for searches)"
    assert any(line in d for d in runs[-1].details), runs[-1].details
    alerts = [r.getMessage() for r in caplog.records if r.name == "ml_connector.alerts" and "ALERT" in r.getMessage()]
    assert [a for a in alerts if "PO push paused" in a] == [a for a in alerts if line in a], alerts
    assert len([a for a in alerts if line in a]) == 1, alerts  # once per division and day, not every run

    # as a task (fail_fast as the DAG runs it): green, and not one call spent to learn that the share is spent
    w.clear_calls()
    with runtime.fail_fast(w.tenant):
        late = runtime.report(w.ctx(run_id="po-late"), w.run(run_id="po-late"), raise_on_failure=True)
    assert late["counts"][PAUSED] >= 1 and any(line in d for d in late["details"])
    assert sum(division_calls(w).values()) == 0

    # the next day: the orders the paused runs did not read or push go now, each exactly once
    exact.advance(86400)
    w.clear_calls()
    day2 = w.run(run_id="po-day2")
    assert not day2[PAUSED] and day2["failed"] == 0, dict(day2.counts)
    states = {k: e.state for k, e in w.ledger().items()}
    assert sorted(states.values()) == ["posted"] * 3, states
    assert len(w.jaggaer_pos()) == 3
