"""The PO push and its share of a division's daily Exact budget (``po_push.exact_daily_share``, default 0.9;
``exact.daily_budget``), against the Exact sandbox with a small daily limit.

The invoice poll stops while 30 % of the day's calls are left: the PO push still has its part of them. The PO push
itself stops before the last 10 % (kept for searches and a person's mlc commands): the call that would go deeper is
not sent, the task fails at once naming what is left and when the budget resets (a retry before then would only
spend calls), and the next run knows it without spending a call to find out.
"""

from __future__ import annotations

from collections import Counter

import pytest
from po_push_support import DIV, World

from ml_connector.errors import RateBudgetExhausted
from ml_connector.flows import runtime

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


def test_the_po_push_uses_its_share_after_the_invoice_poll_and_keeps_the_last_calls_for_searches(
    sqlite_world: World,
) -> None:
    w = sqlite_world
    w.servers.exact.settings(rate_limits_enabled=True, daily_limit=LIMIT, minute_window_s=1.0)
    w.create_po()
    spend(w, LIMIT - 6)  # down to what the invoice poll keeps (1 - 0.7 of the day)
    assert remaining(w) == 6

    first = w.run(run_id="po-1")  # the PO push has room below the invoice poll's floor
    assert first["extracted"] == 1 and first["posted"] == 1
    used = 6 - remaining(w)
    assert used >= 2 and remaining(w) > 2

    w.create_po(supplier="1002")
    w.create_po(supplier="1003")
    with pytest.raises(RateBudgetExhausted) as stop:
        for n in range(10):  # scheduled runs, until the share is spent
            w.run(run_id=f"po-{n + 2}", stages=("extract", "map_vendors"))
    assert remaining(w) == 2  # the 2 calls kept for searches were not touched
    assert division_calls(w)[429] == 0
    text = str(stop.value)
    assert (
        f"the po push's share (0.9) of Exact's daily call budget for division {DIV} is used: 2 of {LIMIT} calls" in text
    )
    assert "2 are kept for searches and a person's mlc commands; it resets at " in text
    assert stop.value.reset_at is not None

    # as a task: failed at once (no retries before the reset), the message says what is left and when it resets
    from airflow.sdk.exceptions import AirflowFailException

    w.clear_calls()
    with pytest.raises(AirflowFailException) as failed, runtime.fail_fast(w.tenant):
        w.run(run_id="po-next")
    message = str(failed.value)
    assert message.startswith(
        f"Exact daily rate budget exhausted; nothing more is sent before {stop.value.reset_at.isoformat()}"
    )
    assert f"2 of {LIMIT} calls are left" in message
    # the next run knew it from the last stop: not one call was spent to find out
    assert sum(division_calls(w).values()) == 0
