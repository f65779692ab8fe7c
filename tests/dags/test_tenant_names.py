"""A tenant name with a hyphen gives valid DAG ids, task pools and Airflow pool names (Airflow allows ``-`` in all
of them)."""

from __future__ import annotations

from pathlib import Path

from ml_connector.config import load_tenants


def test_hyphenated_tenant_builds_dags_and_pools(tmp_path: Path) -> None:
    from ml_connector.dagbuild import invoice_poll, po_push
    from ml_connector.dagbuild.common import pools_for

    path = tmp_path / "tenants.yaml"
    path.write_text(
        "tenants:\n  acme-uk:\n    exact: {conn_id: exact_acme, divisions: [111111, 222222]}\n"
        "    jaggaer: {conn_id: jaggaer_acme, business_units: {UK: 111111}}\n",
        encoding="utf-8",
    )
    tenants = load_tenants(path)
    dags = {**po_push.build_all(tenants), **invoice_poll.build_all(tenants)}
    assert set(dags) == {"exact_po_push__acme-uk", "jaggaer_invoice_poll__acme-uk"}
    pools = {name for name, _, _ in pools_for(tenants)}
    assert pools == {"mlc_exact__acme-uk__111111", "mlc_exact__acme-uk__222222"}
    for dag in dags.values():
        assert dag.dag_id.endswith("__acme-uk")
        used = {t.pool for t in dag.tasks} - {"default_pool"}
        assert used and used <= pools, (dag.dag_id, used)
