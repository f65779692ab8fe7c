"""The PO post stage's SQL per order does not grow with the ledger: statements counted with a SQLAlchemy event
listener at 100 and at 2,000 ledger rows are the same, the count per order stays within a fixed budget, and the
PONumber look-up uses the ``(tenant, flow, target_ref)`` index (migration 0003)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from po_push_support import DIV, World
from store_probes import counting_statements, fill_ledger  # tests/flows

from ml_connector.flows import po_push

#: SQL statements per new order in the post stage: begin (BEGIN, lease row read + renewal, ledger row, audit row of
#: the state change, ledger update) and finish (BEGIN, the import's audit row, ledger row, audit row, ledger update).
#: One more query per order (e.g. a PONumber owner look-up per new order, as before migration 0003) exceeds it.
PER_ORDER_BUDGET = 11
ORDERS = 5


def _fill_ledger(w: World, upto: int) -> None:
    """Posted orders of other divisions up to ``upto`` ledger rows (never picked up again; each holds a PONumber)."""
    fill_ledger(w.engine, "po_push", upto, source_ref=str, target_ref=lambda n: f"999999-{n}")


def _post_new_orders(w: World, run_id: str, orders: int = ORDERS) -> list[str]:
    for _ in range(orders):
        w.create_po(supplier="1001")
    ctx = w.ctx(DIV, run_id=run_id)
    for stage in ("extract", "map_vendors", "validate"):
        getattr(po_push, stage)(ctx)
    with counting_statements(w.engine) as seen:
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
