"""Regression tests for defects an adversarial review reproduced in the PO push flow and what it shares.

- A PO "already exists" after a lost answer was assumed to be ours, so an order of another division with the same
  PONumber overwrote the first division's PO (the PONumber of an order that has a PO must also never follow a
  changed ``po_number_format``).
- Inside a task ``dag_run.run_type`` is the task SDK's ``DagRunType`` enum, whose ``str()`` is
  ``"DagRunType.BACKFILL"``: backfills were read by cursor instead of by their data interval.
- The supplier upsert's audit row named at most a few suppliers of its batch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from po_push_support import DIV, DIV2, World, line, po_number

from ml_connector.store.audit import history

PO_IMPORT = "POST /apps/Router/POXMLImport"


def _tenant_with_format(world: World, fmt: str) -> Any:
    """The demo tenant with another ``po_number_format``, *bypassing* config validation (``model_copy``): the flow
    must not rely on the config check alone."""
    t = world.tenant
    return t.model_copy(update={"po_push": t.po_push.model_copy(update={"po_number_format": fmt})})


def _run(world: World, division: int, run_id: str, tenant: Any = None) -> Any:
    return world.run(division, run_id=run_id, tenant=tenant)


def _same_number_in_both_divisions(world: World) -> tuple[dict, dict]:
    a = world.create_po(division=DIV, supplier="1001", lines=[line(qty=10, price=1.25)])
    b = world.create_po(division=DIV2, supplier="1002", lines=[line(qty=999, price=9.99)])
    assert a["OrderNumber"] == b["OrderNumber"]  # order numbers repeat across divisions
    return a, b


def _po_fields(po: dict) -> tuple[Any, ...]:
    return (po["supplier"]["supplierNumber"], po["total"], [(ln["quantity"], ln["unitPrice"]) for ln in po["lines"]])


# --------------------------------------------------------------------------------------------------- finding 2
def test_another_divisions_po_is_never_overwritten(world: World) -> None:
    """The reviewer's sequence: division A's order is posted as PONumber N; division B's order maps to the same N
    (a format without {division}), its first answer is lost, and the next run took "already exists" as its own
    success and sent an update over A's PO. Now B fails, before anything is sent, naming A's order."""
    tenant = _tenant_with_format(world, "{order_number}")
    a, _ = _same_number_in_both_divisions(world)
    number = str(a["OrderNumber"])
    assert _run(world, DIV, "r1", tenant)["posted"] == 1
    before = _po_fields(world.jaggaer_pos()[number])

    world.jaggaer_fault(method="POST", path="POXMLImport", action="drop_after_commit", count=1)
    world.clear_calls()
    out = _run(world, DIV2, "r2", tenant)
    assert out["failed"] == 1 and out["posted"] == 0, out.to_dict()
    assert PO_IMPORT not in world.jaggaer_calls()  # refused before sending: the fault is still armed
    out = _run(world, DIV2, "r3", tenant)
    assert out["posted"] == 0 and PO_IMPORT not in world.jaggaer_calls(), out.to_dict()

    assert _po_fields(world.jaggaer_pos()[number]) == before  # A's PO untouched
    entry_b = world.ledger()[f"{DIV2}-{number}"]
    assert entry_b.state == "failed" and entry_b.target_ref is None
    assert f"PONumber {number}" in entry_b.reason and f"division {DIV}" in entry_b.reason
    assert a["PurchaseOrderID"] in entry_b.reason and "po_number_format" in entry_b.reason
    assert "mlc ledger requeue" in entry_b.reason
    assert world.ledger()[f"{DIV}-{number}"].state == "posted"


def test_already_exists_is_not_taken_as_ours_when_another_order_may_own_it(world: World) -> None:
    """Both orders' first imports lose their answers (A's created the PO, B's was refused as a duplicate): neither
    holds the PONumber in the ledger, so B's resend goes out, and JAGGAER answers "already exists". The audit log
    shows that A sent that PONumber with an unknown outcome, so B is failed instead of updating the PO; A, seeing
    B's unknown attempt, cannot tell either and is failed too. Nothing is overwritten; a person decides."""
    tenant = _tenant_with_format(world, "{order_number}")
    a, b = _same_number_in_both_divisions(world)
    number = str(a["OrderNumber"])
    world.jaggaer_fault(method="POST", path="POXMLImport", action="drop_after_commit", count=2)
    assert _run(world, DIV, "r1", tenant)["ambiguous"] == 1
    assert _run(world, DIV2, "r1", tenant)["ambiguous"] == 1
    created = _po_fields(world.jaggaer_pos()[number])
    assert created[0] == "1001"  # A's PO

    world.clear_calls()
    out = _run(world, DIV2, "r2", tenant)
    assert out["failed"] == 1 and out["posted"] == 0, out.to_dict()
    assert world.jaggaer_calls() == {PO_IMPORT: 1}  # the resent new ("already exists"), no update after it
    entry_b = world.ledger()[f"{DIV2}-{number}"]
    assert entry_b.state == "failed" and entry_b.target_ref is None
    assert a["PurchaseOrderID"] in entry_b.reason and "unknown outcome" in entry_b.reason

    out = _run(world, DIV, "r2", tenant)
    assert out["failed"] == 1 and out["posted"] == 0, out.to_dict()
    assert b["PurchaseOrderID"] in world.ledger()[f"{DIV}-{number}"].reason
    assert _po_fields(world.jaggaer_pos()[number]) == created  # never overwritten
    outcomes = [r.outcome for r in history(world.engine, "demo", "po_push", b["PurchaseOrderID"]) if r.method]
    assert outcomes == ["ambiguous", "already_exists"]


def test_lost_answer_of_our_own_po_is_still_recovered(sqlite_world: World) -> None:
    """The check does not get in the way of the normal recovery: no other order claims the PONumber."""
    w = sqlite_world
    a = w.create_po(division=DIV, supplier="1001", lines=[line()])
    w.create_po(division=DIV2, supplier="1002", lines=[line()])  # same order number, other division: own PONumber
    w.jaggaer_fault(method="POST", path="POXMLImport", action="drop_after_commit", count=1)
    assert w.run(DIV, run_id="r1")["ambiguous"] == 1
    assert w.run(DIV2, run_id="r1")["posted"] == 1
    out = w.run(DIV, run_id="r2")
    assert out["posted"] == 1 and out.failed == 0, out.to_dict()
    assert w.ledger()[po_number(a)].target_ref == po_number(a)


def test_updates_cancels_and_resends_keep_the_po_number_they_have(sqlite_world: World) -> None:
    """Changing ``po_number_format`` later must not make updates, cancels or resends go to a new PONumber."""
    w = sqlite_world
    a = w.create_po(supplier="1001", lines=[line()])
    b = w.create_po(supplier="1002", lines=[line()])
    c = w.create_po(supplier="1003", lines=[line()])
    w.jaggaer_fault(method="POST", path="POXMLImport", action="drop_after_commit", count=1)
    out = w.run(run_id="r1")  # a's import (the first) loses its answer; b and c are posted
    assert out["posted"] == 2 and out["ambiguous"] == 1, out.to_dict()
    assert w.ledger()[po_number(a)].state == "posting"

    new_format = _tenant_with_format(w, "NEW-{division}-{order_number}")
    w.modify_po(b, LineUpdates=[{"LineNumber": 1, "QuantityInPurchaseUnits": 12}])
    w.servers.exact.cancel_po(c["PurchaseOrderID"])
    out = w.run(run_id="r2", tenant=new_format)
    assert (out["posted"], out["updated"], out["cancelled"], out.failed) == (1, 1, 1, 0), out.to_dict()
    pos = w.jaggaer_pos()
    assert set(pos) == {po_number(a), po_number(b), po_number(c)}  # no NEW-… PO anywhere
    assert pos[po_number(b)]["lines"][0]["quantity"] == "12"
    assert pos[po_number(c)]["status"] == "Cancelled"
    entries = w.ledger()
    assert [entries[po_number(p)].target_ref for p in (a, b, c)] == [po_number(a), po_number(b), po_number(c)]
    # the resend of a's lost new carried the PONumber the lost attempt had, then the follow-up update
    rows = [r for r in history(w.engine, "demo", "po_push", a["PurchaseOrderID"]) if r.method == "POST"]
    assert [(r.action, r.outcome, r.target_ref) for r in rows] == [
        ("po_new", "ambiguous", po_number(a)),
        ("po_new", "already_exists", po_number(a)),
        ("po_update", "ok", po_number(a)),
    ]


# --------------------------------------------------------------------------------------------------- finding 17c
def test_supplier_upsert_is_audited_once_per_supplier(sqlite_world: World) -> None:
    from sqlalchemy import select

    from ml_connector.store.db import session_scope
    from ml_connector.store.models import AuditLog

    w = sqlite_world
    pos = [w.create_po(code, [line()]) for code in ("1005", "1006", "1007")]
    assert w.run()["vendor_created"] == 3
    with session_scope(w.engine) as s:
        rows = list(s.scalars(select(AuditLog).where(AuditLog.action == "supplier_upsert")))
        got = sorted((r.source_id, r.source_ref, r.target_ref, r.outcome, r.http_status) for r in rows)
    suppliers = {p["Supplier"].lower(): code for p, code in zip(pos, ("1005", "1006", "1007"), strict=True)}
    assert got == sorted((sid, code, code, "ok", 200) for sid, code in suppliers.items())
    for sid in suppliers:  # an account's history shows the import that carried it
        assert [r.action for r in history(w.engine, "demo", "po_push", sid)] == ["supplier_upsert", "vendor_created"]


# --------------------------------------------------------------------------------------------------- finding 5
def _task_sdk_dag_run(run_type: str) -> Any:
    from airflow.sdk.api.datamodels._generated import DagRun

    s, e = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    return DagRun(
        dag_id="exact_po_push__demo",
        run_id=f"{run_type}__2026-03-02",
        logical_date=e,
        data_interval_start=s,
        data_interval_end=e,
        run_after=e,
        start_date=e,
        end_date=None,
        run_type=run_type,
        state="running",
        consumed_asset_events=[],
        partition_key=None,
    )


@pytest.mark.parametrize("scheduled", ["cursor", "interval"])
def test_backfill_run_type_from_the_task_sdk_reads_the_data_interval(sqlite_engine, scheduled) -> None:
    from airflow.sdk.api.datamodels._generated import DagRunType

    from ml_connector.flows import runtime

    dag_run = _task_sdk_dag_run("backfill")
    assert isinstance(dag_run.run_type, DagRunType) and str(dag_run.run_type) != "backfill"  # what a task sees
    context = {
        "dag_run": dag_run,
        "run_id": dag_run.run_id,
        "params": {},
        "data_interval_start": dag_run.data_interval_start,
        "data_interval_end": dag_run.data_interval_end,
    }
    ctx = runtime.build_context(
        context, "demo", runtime.FLOW_PO_PUSH, scheduled=scheduled, division=DIV, engine=sqlite_engine
    )
    assert ctx.run_type == "backfill"
    assert ctx.window == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))


def test_run_type_names() -> None:
    from airflow.sdk.api.datamodels._generated import DagRunType

    from ml_connector.flows.runtime import RunParams, resolve_window, run_type_name

    assert [run_type_name(t) for t in DagRunType] == [t.value for t in DagRunType]
    assert run_type_name("BACKFILL") == "backfill" and run_type_name(None) == ""
    interval = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    for kind in (DagRunType.SCHEDULED, DagRunType.MANUAL):
        assert resolve_window(run_type=kind, params=RunParams(), data_interval=interval, scheduled="cursor") is None
    got = resolve_window(run_type=DagRunType.BACKFILL, params=RunParams(), data_interval=interval, scheduled="cursor")
    assert got == interval
