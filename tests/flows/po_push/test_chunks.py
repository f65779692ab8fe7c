"""The stages read and work their orders a chunk at a time (``po_push.batches``): with chunks of 2, five orders
go through every stage as with one chunk, and a PONumber one chunk's order may have created in JAGGAER (its answer
lost, so the ledger does not hold it) still keeps the later chunks' orders from sending with it."""

from __future__ import annotations

from typing import Any

import pytest
from po_push_support import DIV, World, line

from ml_connector.flows.po_push import batches

PO_IMPORT = "POST /apps/Router/POXMLImport"


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "CHUNK", 2)


def _tenant_with_format(world: World, fmt: str) -> Any:
    t = world.tenant
    return t.model_copy(update={"po_push": t.po_push.model_copy(update={"po_number_format": fmt})})


def test_five_orders_in_chunks_of_two_go_through_every_stage(sqlite_world: World, small_chunks: None) -> None:
    w = sqlite_world
    for i in range(5):
        w.create_po(supplier="1001" if i % 2 else "1002", lines=[line(qty=i + 1)])
    out = w.run(DIV, run_id="r1")
    assert out["extracted"] == 5 and out["valid"] == 5 and out["posted"] == 5, out.to_dict()
    assert sorted(w.created_suppliers()) == ["1001", "1002"]  # once each, whatever chunk their orders are in
    assert w.jaggaer_calls()[PO_IMPORT] == 5
    assert {e.state for e in w.ledger().values()} == {"posted"}


def test_a_po_number_claimed_in_one_chunk_stays_taken_in_the_next(sqlite_world: World, small_chunks: None) -> None:
    """Every order maps to one PONumber (a broken format, bypassing validation). The first import's answer is lost:
    the order stays in ``posting`` without a ``target_ref``, so only the stage's memory says the PONumber may be
    taken. The other four orders — in the first chunk and in the two after it — fail without sending."""
    w = sqlite_world
    tenant = _tenant_with_format(w, "{tenant}")
    for _ in range(5):
        w.create_po(supplier="1001", lines=[line()])
    w.run(DIV, run_id="r1", tenant=tenant, stages=("extract", "map_vendors", "validate"))
    w.jaggaer_fault(method="POST", path="POXMLImport", action="drop_after_commit", count=1)
    w.clear_calls()
    out = w.run(DIV, run_id="r1", tenant=tenant, stages=("post",))
    assert out["ambiguous"] == 1 and out["failed"] == 4 and out["posted"] == 0, out.to_dict()
    assert w.jaggaer_calls() == {PO_IMPORT: 1}
    states = sorted(e.state for e in w.ledger().values())
    assert states == ["failed", "failed", "failed", "failed", "posting"]
    assert all("PONumber demo is not known to be this order's" in e.reason for e in w.ledger().values() if e.reason
               and e.state == "failed")  # fmt: skip
