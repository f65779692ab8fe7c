"""The invoice poll DAG under ``dag.test()``: real Airflow task execution against both sandboxes in-process.

Connections are ``AIRFLOW_CONN_<ID>`` JSON env vars pointing at the sandboxes; the connector database is a SQLite
file (``MLC_DB_URL``); retries are short. Shows: the DAG shape and pools, a daily run over its one-day data
interval posting exactly the invoices updated in it, and re-runs/backfill-like runs over the same dates posting
nothing twice.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows" / "invoice_poll"))

from invoice_poll_support import (
    DIV_MFG,
    DIV_SVC,
    TENANT,
    Servers,
    World,
    start_servers,
    stop_servers,
    world_fixture,
)

LONDON = ZoneInfo("Europe/London")


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


def _dag() -> Any:
    from ml_connector.dagbuild.invoice_poll import build_dag
    from ml_connector.flows.runtime import load_tenant

    return build_dag(load_tenant(TENANT))


def _logical_date_for(day: Any) -> datetime:
    """A logical date whose inferred data interval is [day 02:00, day+1 02:00) London time."""
    return datetime(day.year, day.month, day.day, 2, 0, tzinfo=LONDON) + timedelta(days=1, hours=1)


def _xcom(run: Any, task_id: str) -> Any:
    ti = run.get_task_instance(task_id)
    return ti.xcom_pull(task_ids=task_id) if ti is not None else None


def test_dag_shape_pools_and_timetable(airflow_db: Path) -> None:
    from airflow.sdk import CronDataIntervalTimetable

    dag = _dag()
    assert dag.dag_id == "jaggaer_invoice_poll__demo"
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.max_active_runs == 1 and not dag.catchup
    assert set(dag.params.keys()) >= {"dry_run", "date_from", "date_to", "ids"}
    for division in (DIV_MFG, DIV_SVC):
        for stage in ("map_vendors", "validate", "post"):
            task = dag.get_task(f"division_{division}.{stage}")
            assert task.pool == f"mlc_exact__demo__{division}"
        assert dag.get_task(f"division_{division}.map_vendors").upstream_task_ids == {"extract"}
    assert dag.get_task("extract").pool == "default_pool"
    report = dag.get_task("report")
    assert report.trigger_rule == "all_done"
    assert report.upstream_task_ids == {f"division_{d}.post" for d in (DIV_MFG, DIV_SVC)}


def test_dag_file_parses_without_io() -> None:
    """The DAG file only builds objects: it imports (Airflow already loaded) quickly and touches no database."""
    import importlib.util
    import time

    import airflow.sdk  # noqa: F401  (the import cost is Airflow's, paid by every DAG file)

    path = Path(__file__).resolve().parents[2] / "dags" / "jaggaer_invoice_poll.py"
    spec = importlib.util.spec_from_file_location("jaggaer_invoice_poll_parse_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    started = time.perf_counter()
    spec.loader.exec_module(module)
    assert time.perf_counter() - started < 1.0
    assert hasattr(module, "jaggaer_invoice_poll__demo")


def test_daily_run_and_backfill_like_reruns_post_each_invoice_once(dag_world: World) -> None:
    from airflow.utils.state import DagRunState

    w = dag_world
    day = w.day
    inside = [
        w.invoice(hour=9, supplier_invoice_number="DAG-IN-1", lines=[{"unit_price": "120.00", "quantity": 3}]),
        w.invoice(
            hour=15,
            business_unit="UK-SVC",
            supplier_number="1002",
            supplier_invoice_number="DAG-IN-2",
            lines=[{"unit_price": "80.00"}],
        ),
    ]
    # updated the next day after 02:00 London: outside this run's interval (and its overlap reaches backwards only)
    later = w.invoice(
        day=day + timedelta(days=1), hour=12, supplier_invoice_number="DAG-LATER", lines=[{"unit_price": "9.99"}]
    )
    dag = _dag()

    run = dag.test(logical_date=_logical_date_for(day))
    assert run.state == DagRunState.SUCCESS
    assert run.data_interval_end - run.data_interval_start == timedelta(days=1)
    assert len(w.entries_for("DAG-IN-1")) == 1
    assert [e["Division"] for e in w.entries_for("DAG-IN-2")] == [DIV_SVC]
    assert w.entries_for("DAG-LATER") == []
    summary = _xcom(run, "report")
    assert summary["counts"]["posted"] == 2

    # the same day again (a cleared run), the next day (its overlap re-reads this day's evening), and a
    # date-range run over both days: the later invoice is posted once, nothing else again
    assert dag.test(logical_date=_logical_date_for(day)).state == DagRunState.SUCCESS
    assert dag.test(logical_date=_logical_date_for(day + timedelta(days=1))).state == DagRunState.SUCCESS
    ranged = dag.test(
        logical_date=_logical_date_for(day + timedelta(days=5)),
        run_conf={"date_from": day.isoformat(), "date_to": (day + timedelta(days=1)).isoformat()},
    )
    assert ranged.state == DagRunState.SUCCESS
    for ref in ("DAG-IN-1", "DAG-IN-2", "DAG-LATER"):
        assert len(w.entries_for(ref)) == 1, ref
    assert len(w.entries()) == 3
    assert w.ledger(later["summary"]["invoiceId"]).state == "posted"
    assert all(w.ledger(i["summary"]["invoiceId"]).state == "posted" for i in inside)


def test_held_invoice_makes_the_report_alert_and_a_failed_stage_turns_the_run_red(
    dag_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    w = dag_world
    # a JAGGAER-only vendor (no Exact supplier): held under the default policy halt, the run stays green
    w.invoice(hour=11, supplier_id=59001, supplier_number=None, supplier_invoice_number="DAG-HELD")
    dag = _dag()
    run = dag.test(logical_date=_logical_date_for(w.day))
    assert run.state == DagRunState.SUCCESS
    summary = _xcom(run, "report")
    assert summary["counts"]["held"] == 1
    assert any("mlc mappings set vendor" in d and "59001" in d for d in summary["details"])

    # JAGGAER down for the next run: extract fails, the division stages never run, the report goes red
    w.jag("POST", "faults", {"path": "/j1p/api/public/ji/v1/invoices", "count": None, "status": 503})
    monkeypatch.setenv("MLC_TASK_RETRIES", "0")  # (retries are read when the DAG is built)
    run = _dag().test(logical_date=_logical_date_for(w.day + timedelta(days=1)))
    assert run.state == DagRunState.FAILED
    assert run.get_task_instance("report").state == "failed"
    w.jag("DELETE", "faults")


def _post_ti(run: Any, division: int = DIV_MFG) -> tuple[str, int]:
    ti = run.get_task_instance(f"division_{division}.post")
    return str(ti.state), ti.try_number


def _entry_posts(w: World) -> list[dict[str, Any]]:
    return [c for c in w.exact.calls()["log"] if c["method"] == "POST" and c["path"].endswith("/PurchaseEntries")]


def test_exact_5xx_burst_fails_the_post_task_and_its_retry_posts_once(dag_world: World) -> None:
    """Exact answers 503 without a body twice (the post and its one resend after a search found nothing): the
    invoice stays ``posting``, the post task fails after its batch; the retry looks in Exact first, posts once, and
    the run ends green."""
    from airflow.utils.state import DagRunState

    w = dag_world
    invoice = w.invoice(hour=9, supplier_invoice_number="DAG-503", lines=[{"unit_price": "40.00"}])
    w.exact.fault(method="POST", path="PurchaseEntries", action="status", status=503, count=2)
    run = _dag().test(logical_date=_logical_date_for(w.day))
    assert run.state == DagRunState.SUCCESS
    assert _post_ti(run) == ("success", 2)
    assert len(w.entries_for("DAG-503")) == 1
    assert w.ledger(invoice["summary"]["invoiceId"]).state == "posted"
    assert [c["status"] for c in _entry_posts(w)] == [503, 503, 201]
    counts = _xcom(run, "report")["counts"]
    assert counts["posted"] == 1 and not {"ambiguous", "failed", "left_posting", "left_failed"} & set(counts)


def test_invoice_refused_by_exact_turns_the_run_red_and_is_not_resent(dag_world: World) -> None:
    """Exact refuses an invoice for a reason that is not a validation error (403): ``failed``, never picked up again
    by the retry of the post task nor by later runs (Exact blocks apps that collect errors); the run is red because
    the report finds it in the ledger; the next run is green."""
    from airflow.utils.state import DagRunState

    w = dag_world
    invoice = w.invoice(hour=9, supplier_invoice_number="DAG-403", lines=[{"unit_price": "40.00"}])
    w.exact.fault(
        method="POST",
        path="PurchaseEntries",
        action="status",
        status=403,
        headers={"Reason": "NoDivisionAccess"},
        count=None,  # every time: only a person can fix this
    )
    run = _dag().test(logical_date=_logical_date_for(w.day))
    assert run.state == DagRunState.FAILED
    assert run.get_task_instance("report").state == "failed"
    assert _post_ti(run) == ("success", 2)  # try 1 failed on the refusal; try 2 had nothing to resend
    row = w.ledger(invoice["summary"]["invoiceId"])
    assert row.state == "failed" and "NoDivisionAccess" in row.reason and "mlc ledger requeue" in row.reason
    assert [c["status"] for c in _entry_posts(w)] == [403]

    w.clear_calls()
    run = _dag().test(logical_date=_logical_date_for(w.day + timedelta(days=1)))  # the next day's run
    assert run.state == DagRunState.SUCCESS
    assert _entry_posts(w) == [] and w.entries_for("DAG-403") == []


def test_dry_run_previews_each_division_in_its_pooled_validate_task(dag_world: World) -> None:
    """A dry run's Exact reads happen in the division tasks (pool ``mlc_exact__<tenant>__<division>``, shared with
    the PO push), never in the unpooled ``extract`` task; nothing is posted or stored."""
    from airflow.utils.state import DagRunState

    w = dag_world
    w.invoice(hour=9, supplier_invoice_number="DAG-DRY-1", lines=[{"unit_price": "12.00"}])
    day = w.day.isoformat()
    run = _dag().test(
        logical_date=_logical_date_for(w.day), run_conf={"dry_run": True, "date_from": day, "date_to": day}
    )
    assert run.state == DagRunState.SUCCESS
    assert "would_post" not in (_xcom(run, "extract") or {}).get("counts", {})
    assert _xcom(run, f"division_{DIV_MFG}.validate")["counts"] == {"would_post": 1}
    assert _xcom(run, "report")["counts"]["would_post"] == 1
    assert w.entries() == [] and w.states() == {}
    exact_paths = {c["path"] for c in w.exact.calls()["log"] if "/api/v1/" in c["path"]}
    assert exact_paths and all(f"/{DIV_MFG}/" in p for p in exact_paths)
