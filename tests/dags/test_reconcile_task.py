"""The invoice poll's daily ``division_<n>.reconcile`` task: shape, and a ``dag.test()`` run that saves each
division's reconciliation and alerts about the held invoice (sandboxes over HTTP, SQLite store)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows" / "invoice_poll"))

from invoice_poll_support import DIV_MFG, DIV_SVC, TENANT, Servers, World, start_servers, stop_servers, world_fixture

LONDON = ZoneInfo("Europe/London")
GRAINGER = 59001  # no Exact supplier: held


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
    monkeypatch.setenv("MLC_TASK_RETRIES", "0")
    yield from world_fixture(dag_servers, sqlite_engine, monkeypatch)


def _dag() -> Any:
    from ml_connector.dagbuild.invoice_poll import build_dag
    from ml_connector.flows.runtime import load_tenant

    return build_dag(load_tenant(TENANT))


def test_each_division_has_a_reconcile_task_after_its_post_in_its_pool(airflow_db: Path) -> None:
    dag = _dag()
    for division in (DIV_MFG, DIV_SVC):
        task = dag.get_task(f"division_{division}.reconcile")
        assert task.pool == f"mlc_exact__demo__{division}"
        assert task.trigger_rule == "all_done"
        assert task.upstream_task_ids == {f"division_{division}.post"}
    assert "division_111111.reconcile" not in dag.get_task("report").upstream_task_ids


def test_daily_period_is_the_last_days_up_to_the_window_end() -> None:
    from datetime import date

    from ml_connector.reconcile.run import daily_period

    period = daily_period(datetime(2026, 12, 8, 2, 0, tzinfo=UTC), days=31)
    assert (period.date_from, period.date_to) == (date(2026, 11, 8), date(2026, 12, 8))
    midnight = daily_period(datetime(2026, 12, 8, 0, 0, tzinfo=UTC), days=1)
    assert (midnight.date_from, midnight.date_to) == (date(2026, 12, 7), date(2026, 12, 7))


def test_a_daily_run_saves_each_divisions_reconciliation_and_alerts_what_is_off(
    dag_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    from ml_connector.flows import runtime
    from ml_connector.reconcile import JAGGAER_ONLY, MATCHED
    from ml_connector.reconcile.store import listing

    # the test day and the next (the interval ends early on the next day): the sandbox's seeded invoices are older
    monkeypatch.setenv("MLC_RECONCILE_DAYS", "2")
    alerts: list[tuple[str, str]] = []
    monkeypatch.setattr(runtime, "send_alert", lambda tenant, subject, body: alerts.append((subject, body)))
    w = dag_world
    w.invoice(hour=9, supplier_invoice_number="REC-1", lines=[{"unit_price": "12.00"}])
    w.invoice(hour=10, supplier_id=GRAINGER, supplier_number=None, supplier_invoice_number="REC-HELD")
    logical = datetime(w.day.year, w.day.month, w.day.day, 2, 0, tzinfo=LONDON) + timedelta(days=1, hours=1)
    run = _dag().test(logical_date=logical)
    assert run.state == DagRunState.SUCCESS
    ti = run.get_task_instance(f"division_{DIV_MFG}.reconcile")
    assert ti is not None and ti.state == "success"
    saved = {s.division: s for s in listing(w.engine, TENANT)}
    assert set(saved) == {DIV_MFG, DIV_SVC}
    assert saved[DIV_MFG].date_from == w.day.isoformat()
    assert saved[DIV_MFG].counts[MATCHED] == 1 and saved[DIV_MFG].counts[JAGGAER_ONLY] == 1
    assert saved[DIV_MFG].off == 1 and saved[DIV_SVC].off == 0
    assert saved[DIV_MFG].trigger == run.run_id and saved[DIV_MFG].exact_calls == 1
    assert any(f"reconciliation: 1 row(s) off in division {DIV_MFG}" == subject for subject, _ in alerts)
