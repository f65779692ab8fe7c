"""The invoice post stage's SQL per invoice does not grow with the ledger: statements counted with a SQLAlchemy event
listener at 100 and at 2,000 ledger rows are the same, and each further invoice costs a fixed number (two
transactions: the fenced ``posting`` mark, then the outcome with the POST's audit row)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from invoice_poll_support import DIV_MFG, World
from sqlalchemy import event, insert, select, text

from ml_connector.flows import invoice_poll as ip
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry

#: Statements per further invoice: begin (BEGIN, lease row read + renewal, ledger row, audit row of the state change,
#: ledger update) and finish (BEGIN, the POST's audit row, ledger row, audit row, ledger update) = 11, plus the Exact
#: hook's read of the token row before each call (BEGIN + SELECT; ``exact/tokens.py``, not the ledger's).
PER_INVOICE_BUDGET = 13
INVOICES = 4


@contextmanager
def _counting(engine: Any) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("PRAGMA"):  # SQLite's per-connection sync level: set when a connection changes
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _fill_ledger(w: World, upto: int) -> None:
    with session_scope(w.engine) as s:
        have = int(s.scalar(select(text("count(*)")).select_from(LedgerEntry.__table__)) or 0)
        now = datetime.now(UTC)
        rows = [
            {
                "tenant": "demo",
                "flow": ip.FLOW,
                "source_id": f"filler-{n}",
                "source_ref": f"F{n}",
                "division": 999999,
                "state": "posted",
                "target_ref": str(n),
                "attempts": 1,
                "first_seen_at": now,
                "updated_at": now,
            }
            for n in range(have, upto)
        ]
        if rows:
            s.execute(insert(LedgerEntry), rows)


def _post(w: World, tag: str, count: int, hour: int) -> int:
    for i in range(count):
        w.invoice(hour=hour, minute=i, supplier_invoice_number=f"{tag}-{i}", lines=[{"unit_price": f"{10 + i}.00"}])
    ctx = w.ctx(run_id=f"run-{tag}")
    ip.extract(ctx)
    dctx = ctx.for_division(DIV_MFG)
    ip.map_vendors(dctx)
    master = ip.validate(dctx)["master"]
    with _counting(w.engine) as seen:
        out = ip.post(dctx, master)
    assert out.counts["posted"] == count, out.to_dict()
    return len(seen)


def test_post_statements_per_invoice_do_not_grow_with_the_ledger(world: World) -> None:
    w = world
    _post(w, "WARM", 1, hour=1)  # one-off work: vendor link, lease row
    _fill_ledger(w, 100)
    small = _post(w, "SMALL", INVOICES, hour=2)
    _fill_ledger(w, 2000)
    large = _post(w, "LARGE", INVOICES, hour=3)
    double = _post(w, "DOUBLE", 2 * INVOICES, hour=4)
    per_invoice = (double - large) / INVOICES
    print(
        f"invoice post stage: {small} statements at 100 ledger rows, {large} at 2,000 ({INVOICES} invoices each); "
        f"{double} for {2 * INVOICES}: {per_invoice:.1f} per invoice"
    )
    assert large == small  # the same work at 20 times the ledger
    assert per_invoice <= PER_INVOICE_BUDGET
