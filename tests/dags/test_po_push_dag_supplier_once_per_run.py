"""The PO push DAG upserts a supplier used in several divisions once per run (issue 11).

Shape: a tenant-level ``upsert_suppliers`` task after every division's ``map_vendors`` and before any division's
``validate``; the division tasks keep their Exact pools. A whole run with ``dag.test()`` against both sandboxes:
one ``TSMSupplierXMLImport`` carrying the shared supplier once, and the report names a supplier whose data differs
between the divisions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows" / "po_push"))

from po_push_support import DIV, DIV2, World, line, make_world, po_number

SUPPLIER_IMPORT = "POST /apps/Router/TSMSupplierXMLImport"
PO_IMPORT = "POST /apps/Router/POXMLImport"


@pytest.fixture
def dag_world(airflow_db, sqlite_engine, monkeypatch: pytest.MonkeyPatch) -> World:
    world = make_world(sqlite_engine, monkeypatch)
    monkeypatch.setenv("MLC_DB_URL", sqlite_engine.url.render_as_string(hide_password=False))
    return world


def test_upsert_suppliers_sits_between_every_divisions_map_vendors_and_their_validate() -> None:
    from ml_connector.dagbuild.po_push import build_all
    from ml_connector.flows.runtime import load_tenant

    dag = build_all({"demo": load_tenant("demo")})["exact_po_push__demo"]
    upsert = dag.get_task("upsert_suppliers")
    assert upsert.upstream_task_ids == {f"division_{d}.map_vendors" for d in (DIV, DIV2)}
    assert upsert.downstream_task_ids == {f"division_{d}.validate" for d in (DIV, DIV2)}
    assert str(upsert.trigger_rule) in ("all_done", "TriggerRule.ALL_DONE")  # one division's failure stops no other
    assert not upsert.pool.startswith("mlc_exact__")  # it never calls Exact
    for d in (DIV, DIV2):
        validate = dag.get_task(f"division_{d}.validate")
        assert validate.upstream_task_ids == {f"division_{d}.map_vendors", "upsert_suppliers"}
        assert dag.get_task(f"division_{d}.map_vendors").pool == f"mlc_exact__demo__{d}"
    assert dag.max_active_runs == 1


def test_dag_run_upserts_a_supplier_used_in_both_divisions_once(dag_world: World) -> None:
    from ml_connector.dagbuild.po_push import build_dag

    w = dag_world
    a = w.create_po("1012", [line()])
    b = w.create_po("1012", [line()], division=DIV2)
    w.servers.exact._admin(
        "PATCH", f"accounts/{b['Supplier']}", params={"division": DIV2}, json={"Name": "Division Two Trading Ltd"}
    )
    dr = build_dag(w.tenant).test()
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert str(dr.state) == "success", states
    assert states["upsert_suppliers"] == "success"
    assert w.jaggaer_calls() == {SUPPLIER_IMPORT: 1, PO_IMPORT: 2}
    entries = [s for s in w.jaggaer_state()["suppliers_received"] if s["erpNumber"] == "1012"]
    assert len(entries) == 1  # one TSMSupplierXMLImport entry for the run
    pos = w.jaggaer_pos()
    assert {pos[po_number(a)]["supplier"]["supplierNumber"], pos[po_number(b, DIV2)]["supplier"]["supplierNumber"]} == {
        "1012"
    }
    summary = dr.get_task_instance("report").xcom_pull(task_ids="report")
    assert summary["counts"]["vendor_created"] == 1 and summary["counts"]["posted"] == 2
    assert summary["ids"]["supplier_data_differs"] == ["1012"]
    assert any(
        d.startswith("supplier 1012: divisions 111111 and 222222 hold different name") for d in summary["details"]
    )
