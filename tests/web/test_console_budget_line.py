"""The ledger console says when records wait for the next day's Exact call budget (``exact.daily_budget``): a line
above every page, from the ledger rows the post stage left ``pending`` with the budget reason; they are not a
person's job, so "Needs a person" does not count them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ml_connector.exact.daily_budget import reset_text
from ml_connector.flows.budget_plan import LEFT_REASON
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry

LEDGER = "/ml-connector/ui/ledger"
NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
RESET = datetime(2026, 12, 9, 0, 0, tzinfo=UTC)


def _entry(n: int, state: str, reason: str | None) -> LedgerEntry:
    return LedgerEntry(
        tenant="demo", flow="invoice_poll", source_id=f"24{n:05d}", source_ref=f"I{n:05d}", division=111111,
        state=state, reason=reason, attempts=0, first_seen_at=NOW, updated_at=NOW, last_run_id="scheduled__1",
    )  # fmt: skip


def test_every_ledger_page_says_how_many_wait_for_tomorrow_and_when_the_budget_resets(browser: Any, store: Any) -> None:
    when = reset_text(RESET, "Europe/London")
    reason = LEFT_REASON.format(when=when, why="the invoice poll's share of Exact's daily calls is used")
    with session_scope(store) as s:
        s.add_all([_entry(n, "pending", reason) for n in range(105)])
        s.add(_entry(900, "pending", None))  # new, not left by a budget stop
        s.add(_entry(901, "posted", None))
    viewer = browser("viewer")
    line = (
        "[invoice_poll] division 111111: 105 invoices left for tomorrow "
        "(budget resets at 2026-12-09 00:00 GMT (Europe/London))"
    )
    for path in ("", "/attention", "/audit"):
        page = viewer.get(LEDGER + path, params={"tenant": "demo"})
        assert page.status_code == 200, page.text[:300]
        assert f'<div class="box" id="budget"><div>{line}</div></div>' in page.text, path
    assert "Needs a person (" not in page.text  # pending records are not a person's job

    with session_scope(store) as s:  # once posted, the line goes
        for entry in s.query(LedgerEntry).filter(LedgerEntry.reason.isnot(None)):
            entry.state, entry.reason = "posted", None
    assert 'id="budget"' not in viewer.get(LEDGER, params={"tenant": "demo"}).text
