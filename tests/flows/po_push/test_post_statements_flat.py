"""The PO post stage's SQL per order does not grow with the ledger: statements counted with a SQLAlchemy event
listener at 100 and at 2,000 ledger rows are the same, the count per order stays within a fixed budget, and the
PONumber look-up uses the ``(tenant, flow, target_ref)`` index (migration 0003)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from po_push_support import DIV, World
from sqlalchemy import event, insert, select, text

from ml_connector.flows import po_push
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry

#: SQL statements per new order in the post stage: begin (BEGIN, lease row read + renewal, ledger row, audit row of
#: the state change, ledger update) and finish (BEGIN, the import's audit row, ledger row, audit row, ledger update).
#: One more query per order (e.g. a PONumber owner look-up per new order, as before migration 0003) exceeds it.
PER_ORDER_BUDGET = 11
ORDERS = 5


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
    """Posted orders of other divisions up to ``upto`` ledger rows (never picked up again; each holds a PONumber)."""
    with session_scope(w.engine) as s:
        have = int(s.scalar(select(text("count(*)")).select_from(LedgerEntry.__table__)) or 0)
        now = datetime.now(UTC)
        rows = [
            {
                "tenant": "demo",
                "flow": "po_push",
                "source_id": f"filler-{n}",
                "source_ref": str(n),
                "division": 999999,
                "state": "posted",
                "target_ref": f"999999-{n}",
                "attempts": 1,
                "first_seen_at": now,
                "updated_at": now,
            }
            for n in range(have, upto)
        ]
        if rows:
            s.execute(insert(LedgerEntry), rows)


def _post_new_orders(w: World, run_id: str, orders: int = ORDERS) -> list[str]:
    for _ in range(orders):
        w.create_po(supplier="1001")
    ctx = w.ctx(DIV, run_id=run_id)
    for stage in ("extract", "map_vendors", "validate"):
        getattr(po_push, stage)(ctx)
    with _counting(w.engine) as seen:
        out = po_push.post(ctx)
    assert out.counts["posted"] == orders, out.to_dict()
    return [" ".join(x.split())[:150] for x in seen]


def test_post_statements_per_order_do_not_grow_with_the_ledger(world: World) -> None:
    w = world
    w.create_po(supplier="1001")
    w.run()  # a first run: vendor link made, lease row created (one-off work)
    _fill_ledger(w, 100)
    small_s = _post_new_orders(w, "run-small")
    _fill_ledger(w, 2000)
    large_s = _post_new_orders(w, "run-large")
    double_s = _post_new_orders(w, "run-double", 2 * ORDERS)
    small, large, double = len(small_s), len(large_s), len(double_s)
    per_order = (double - large) / ORDERS
    print(
        f"post stage: {small} statements at 100 ledger rows, {large} at 2,000 ({ORDERS} new orders each); "
        f"{double} for {2 * ORDERS} orders: {per_order:.1f} per order"
    )
    assert large == small  # the same work at 20 times the ledger
    assert per_order <= PER_ORDER_BUDGET


def test_the_po_number_lookup_uses_the_target_ref_index(sqlite_world: World) -> None:
    w = sqlite_world
    _fill_ledger(w, 2000)
    with w.engine.connect() as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT source_id FROM mlc_ledger "
                "WHERE tenant = 'demo' AND flow = 'po_push' AND target_ref IN ('999999-5', '999999-6')"
            )
        )
    assert "ix_ledger_target_ref" in plan, plan
