"""The invoice poll DAG under ``dag.test()`` with a backlog above its share of the division's daily Exact budget
(``exact.daily_budget``): real Airflow task execution against both sandboxes in-process.

Airflow 3 has no "yellow" task state: the post task and the run end **success**, and the warning is in the report
task's XCom (``warnings``, ``note``), its log and the alert; the invoices left stay ``pending``. A second run the
same day (share spent) is green in every task and spends no Exact call.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows" / "invoice_poll"))

from invoice_poll_support import DIV_MFG, TENANT, Servers, World, start_servers, stop_servers, world_fixture

LONDON = ZoneInfo("Europe/London")
LIMIT = 40  # Exact's daily calls per division in this test; the invoice poll keeps 12 (share 0.7)


@pytest.fixture(scope="module")
def dag_servers() -> Iterator[Servers]:
    servers = start_servers()
    try:
        yield servers
    finally:
        stop_servers(servers)


@pytest.fixture
def dag_world(
    airflow_db: Path, dag_servers: Servers, sqlite_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    monkeypatch.setenv("MLC_DB_URL", str(sqlite_engine.url))
    monkeypatch.setenv("MLC_TASK_RETRIES", "1")
    monkeypatch.setenv("MLC_TASK_RETRY_DELAY", "0.2")
    yield from world_fixture(dag_servers, sqlite_engine, monkeypatch)


def test_a_backlog_above_the_share_ends_green_with_the_warning_and_leaves_the_rest_pending(
    dag_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.utils.state import DagRunState

    from ml_connector.dagbuild.invoice_poll import build_dag
    from ml_connector.exact.daily_budget import reset_text
    from ml_connector.flows.runtime import load_tenant

    w = dag_world
    w.exact.settings(daily_limit=LIMIT)
    invoices = [w.invoice(hour=8, minute=i, supplier_invoice_number=f"DAG-CAP-{i:02d}") for i in range(30)]
    now = float(w.exact.clock()["time"])
    reset = datetime.fromtimestamp((now // 86400 + 1) * 86400, UTC)

    caplog.set_level(logging.WARNING)
    day = w.day
    logical = datetime(day.year, day.month, day.day, 2, 0, tzinfo=LONDON) + timedelta(days=1, hours=1)
    run = build_dag(load_tenant(TENANT)).test(logical_date=logical)

    assert run.state == DagRunState.SUCCESS
    post = run.get_task_instance(f"division_{DIV_MFG}.post")
    assert (str(post.state), post.try_number) == ("success", 1)  # green at once: no retry, no failure
    assert str(run.get_task_instance("report").state) == "success"
    summary = run.get_task_instance("report").xcom_pull(task_ids="report")
    posted, left = summary["counts"]["posted"], summary["counts"]["left_for_tomorrow"]
    assert posted + left == 30 and posted > 0 and left > 0
    line = f"{left} invoices left for tomorrow (budget resets at {reset_text(reset, 'Europe/London')})"
    assert summary["warnings"] == [f"[invoice_poll] division {DIV_MFG}: {line}"] and line in summary["note"]
    assert any(line in r.getMessage() and "ALERT" in r.getMessage() for r in caplog.records)
    states = [w.ledger(i["summary"]["invoiceId"]).state for i in invoices]
    assert states == ["posted"] * posted + ["pending"] * left
    assert len(w.entries(DIV_MFG)) == posted

    # a second run the same day, after the share is spent, with an invoice of a vendor never seen (map vendors would
    # need Exact's supplier list) and one of a known vendor (validate would need the master data): every task green,
    # not one Exact call, the warning once with the count and the reset
    w.invoice(hour=9, minute=1, supplier_invoice_number="DAG-CAP-KNOWN")
    w.invoice(hour=9, minute=2, supplier_number="1002", supplier_invoice_number="DAG-CAP-NEWVENDOR")
    w.clear_calls()
    caplog.clear()
    again = build_dag(load_tenant(TENANT)).test(logical_date=logical + timedelta(minutes=30))
    assert again.state == DagRunState.SUCCESS
    tis = {ti.task_id: (str(ti.state), ti.try_number) for ti in again.get_task_instances()}
    assert all(state in ("success", "skipped") and tries == 1 for state, tries in tis.values()), tis
    assert all(tis[f"division_{DIV_MFG}.{t}"][0] == "success" for t in ("map_vendors", "validate", "post")), tis
    assert not [c for c in w.exact.calls()["log"] if c["path"].startswith(f"/api/v1/{DIV_MFG}/")]
    summary2 = again.get_task_instance("report").xcom_pull(task_ids="report")
    line2 = f"{left + 2} invoices left for tomorrow (budget resets at {reset_text(reset, 'Europe/London')})"
    assert summary2["warnings"] == [f"[invoice_poll] division {DIV_MFG}: {line2}"], summary2
    assert summary2["counts"]["left_for_tomorrow"] == left + 2 and not summary2["problems"]
    assert len([r for r in caplog.records if line2 in r.getMessage() and "ALERT" in r.getMessage()]) == 1
