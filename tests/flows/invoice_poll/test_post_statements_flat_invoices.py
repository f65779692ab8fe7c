"""The invoice post stage's SQL per invoice does not grow with the ledger: statements counted with a SQLAlchemy event
listener at 100 and at 2,000 ledger rows are the same, and each further invoice costs a fixed number (two
transactions: the fenced ``posting`` mark, then the outcome with the POST's audit row)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from invoice_poll_support import DIV_MFG, World
from store_probes import counting_statements, fill_ledger  # tests/flows

from ml_connector.flows import invoice_poll as ip

#: Statements per further invoice: begin (BEGIN, lease row read + renewal, ledger row, audit row of the state change,
#: ledger update) and finish (BEGIN, the POST's audit row, ledger row, audit row, ledger update) = 11, plus the Exact
#: hook's read of the token row before each call (BEGIN + SELECT; ``exact/tokens.py``, not the ledger's).
PER_INVOICE_BUDGET = 13
INVOICES = 4


def _fill_ledger(w: World, upto: int) -> None:
    fill_ledger(w.engine, ip.FLOW, upto, source_ref=lambda n: f"F{n}", target_ref=str)


def _post(w: World, tag: str, count: int, hour: int) -> int:
    for i in range(count):
        w.invoice(hour=hour, minute=i, supplier_invoice_number=f"{tag}-{i}", lines=[{"unit_price": f"{10 + i}.00"}])
    ctx = w.ctx(run_id=f"run-{tag}")
    ip.extract(ctx)
    dctx = ctx.for_division(DIV_MFG)
    ip.map_vendors(dctx)
    master = ip.validate(dctx)["master"]
    with counting_statements(w.engine) as seen:
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
