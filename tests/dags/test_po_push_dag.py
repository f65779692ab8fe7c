"""The PO push DAG: its shape, and whole runs with ``dag.test()`` against both sandboxes (real HTTP).

Airflow's metadata DB is the session's migrated SQLite (``airflow_db``); the connector store is a SQLite file named
by ``MLC_DB_URL``; connections come from ``AIRFLOW_CONN_*`` JSON env vars; retries and HTTP waits are short.
The per-division pools are deliberately *not* created: ``dag.test()`` runs the tasks anyway.
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows" / "po_push"))

from po_push_support import DIV, DIV2, World, line, make_world, po_number

PO_IMPORT = "POST /apps/Router/POXMLImport"


@pytest.fixture
def dag_world(airflow_db, sqlite_engine, monkeypatch: pytest.MonkeyPatch) -> World:
    world = make_world(sqlite_engine, monkeypatch)
    monkeypatch.setenv("MLC_DB_URL", sqlite_engine.url.render_as_string(hide_password=False))
    return world


def _dag(world: World):
    from ml_connector.dagbuild.po_push import build_dag

    return build_dag(world.tenant)  # built after the env is set: short retry delays


def _states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def test_dag_shape() -> None:
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable

    from ml_connector.dagbuild.po_push import build_all
    from ml_connector.flows.runtime import load_tenant
    from ml_connector.webhooks.trigger import ExactNotificationTrigger

    dags = build_all({"demo": load_tenant("demo")})
    dag = dags["exact_po_push__demo"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    # cron OR an Exact webhook notification of one of the divisions (changed deliberately for issue 16)
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert isinstance(dag.timetable.timetable, CronDataIntervalTimetable)
    assets = list(dag.timetable.asset_condition.objects)
    assert [a.uri for a in assets] == [f"exact://demo/{DIV}/purchase-orders", f"exact://demo/{DIV2}/purchase-orders"]
    for a, div in zip(assets, (DIV, DIV2), strict=True):
        (watcher,) = a.watchers
        assert isinstance(watcher.trigger, ExactNotificationTrigger) and watcher.trigger.division == div
    assert set(dag.params.keys()) == {"dry_run", "date_from", "date_to", "ids"}
    ids = [t.task_id for t in dag.tasks]
    for div in (DIV, DIV2):
        stages = [f"division_{div}.{s}" for s in ("extract", "map_vendors", "validate", "post")]
        assert all(s in ids for s in stages)
        for up, down in itertools.pairwise(stages):
            assert down in dag.get_task(up).downstream_task_ids
        assert {dag.get_task(s).pool for s in stages} == {f"mlc_exact__demo__{div}"}
        assert "report" in dag.get_task(stages[-1]).downstream_task_ids
    report = dag.get_task("report")
    assert str(report.trigger_rule) in ("all_done", "TriggerRule.ALL_DONE") and report.retries == 0


def test_an_asset_triggered_run_is_for_the_notified_divisions_only() -> None:
    from types import SimpleNamespace

    from airflow.sdk import Asset

    from ml_connector.dagbuild.po_push import notified_divisions

    events = {Asset(name="a", uri=f"exact://demo/{DIV2}/purchase-orders"): [object()]}
    asset_run = SimpleNamespace(run_type="asset_triggered")
    assert notified_divisions({"dag_run": asset_run, "triggering_asset_events": events}) == {DIV2}
    for run_type in ("scheduled", "manual", "backfill"):  # every other run works on every division
        run = SimpleNamespace(run_type=run_type)
        assert notified_divisions({"dag_run": run, "triggering_asset_events": events}) is None


def test_dag_dry_run_then_new_changed_cancelled_quarantined_then_same_dates(dag_world: World) -> None:
    w = dag_world
    a = w.create_po("1001", [line(), line("CP-M8X25-HT", 20, 0.11, "CC200")])
    b = w.create_po("1002", [line()], division=DIV2)
    bad = w.create_po("1003", [line()], Currency="JPY")

    dr = _dag(w).test(run_conf={"dry_run": True})  # a manual dry run: nothing sent, nothing staged
    assert str(dr.state) == "success", _states(dr)
    assert w.jaggaer_calls() == {} and w.ledger() == {}

    dr = _dag(w).test()
    assert str(dr.state) == "success", _states(dr)  # a quarantine alerts but does not fail the run
    assert set(w.jaggaer_pos()) == {po_number(a), po_number(b, DIV2)}
    summary = dr.get_task_instance("report").xcom_pull(task_ids="report")  # the run's note lives here
    assert summary["counts"]["posted"] == 2 and summary["counts"]["quarantined"] == 1
    assert summary["note"].startswith("demo/po_push: ") and "posted 2" in summary["note"]
    assert any("JPY" in d for d in summary["details"])
    entries = w.ledger()
    assert entries[po_number(bad)].state == "quarantined" and "JPY" in entries[po_number(bad)].reason

    w.modify_po(a, LineUpdates=[{"LineNumber": 2, "UnitPrice": 0.12}])
    w.servers.exact.cancel_po(b["PurchaseOrderID"])
    w.clear_calls()
    dr = _dag(w).test()
    assert str(dr.state) == "success", _states(dr)
    pos = w.jaggaer_pos()
    assert pos[po_number(a)]["lines"][1]["unitPrice"] == "0.12"
    assert pos[po_number(b, DIV2)]["status"] == "Cancelled"
    assert w.jaggaer_calls() == {PO_IMPORT: 2}

    today = w.servers.exact.clock()["now"][:10]
    w.clear_calls()
    dr = _dag(w).test(run_conf={"date_from": today, "date_to": today})  # a backfill over the same dates
    assert str(dr.state) == "success", _states(dr)
    assert PO_IMPORT not in w.jaggaer_calls()
    creates = [m["poNumber"] for m in w.jaggaer_state()["po_messages"] if m["action"] == "create"]
    assert sorted(creates) == sorted([po_number(a), po_number(b, DIV2)])


def _creates(w: World) -> Counter[str]:
    """PONumber -> how many times JAGGAER created it (a second create would be a duplicate PO)."""
    return Counter(m["poNumber"] for m in w.jaggaer_state()["po_messages"] if m["action"] == "create")


def _post_try(dr, division: int = DIV) -> tuple[str, int]:
    ti = dr.get_task_instance(f"division_{division}.post")
    return str(ti.state), ti.try_number


def test_dag_jaggaer_500_burst_fails_the_post_task_and_its_retry_posts_the_rest_once(dag_world: World) -> None:
    """JAGGAER loses the answer to the first ``POXMLImport`` (after creating the PO) and answers 500 to the next
    two (writes are never re-sent by the HTTP layer, so the burst outlasts it): the post task works through its
    batch, then fails; Airflow's retry (the fault is over) resends what is still open and the run ends green, each
    PO created once."""
    w = dag_world
    orders = [w.create_po(code, [line()]) for code in ("1001", "1002", "1003")]
    w.jaggaer_fault(path="POXMLImport", action="drop_after_commit", count=1)
    w.jaggaer_fault(path="POXMLImport", action="status", status=500, count=2)
    dr = _dag(w).test()
    states = _states(dr)
    assert str(dr.state) == "success", states
    assert _post_try(dr) == ("success", 2)  # the first attempt failed after its whole batch; the retry healed it
    assert states["report"] == "success"
    summary = dr.get_task_instance("report").xcom_pull(task_ids="report")
    counts = summary["counts"]  # the post task's latest attempt: all three posted, nothing failed or left open
    assert counts["posted"] == 3 and not {"ambiguous", "failed", "left_posting", "left_failed"} & set(counts), counts
    assert {e.state for e in w.ledger().values()} == {"posted"}
    assert _creates(w) == {po_number(o): 1 for o in orders}
    assert w.jaggaer_calls()[PO_IMPORT] == 3 + 3 + 1  # 3 in the burst, 3 resent, 1 update after "already exists"


def test_dag_outage_longer_than_the_retries_goes_red_and_a_rerun_replays_once(dag_world: World) -> None:
    """The burst outlasts Airflow's retries too: the post task ends failed with the orders in ``posting`` and the
    run is red, the report counting them from the post task's XCom (pushed although it failed) and the ledger.
    With JAGGAER back, re-running the same run replays them: green, each PO created once."""
    from datetime import UTC, datetime

    w = dag_world
    orders = [w.create_po(code, [line()]) for code in ("1001", "1002")]
    w.jaggaer_fault(path="POXMLImport", action="drop_after_commit", count=1)
    w.jaggaer_fault(path="POXMLImport", action="status", status=500, count=None)
    when = datetime.now(UTC).replace(microsecond=0)
    dr = _dag(w).test(logical_date=when, run_after=when)  # run_after too: the same run_id when run again below
    run_id = dr.run_id
    states = _states(dr)
    assert str(dr.state) == "failed" and states["report"] == "failed", states
    assert _post_try(dr) == ("failed", 2)  # MLC_TASK_RETRIES=1: both tries used
    counts = dr.get_task_instance(f"division_{DIV}.post").xcom_pull(task_ids=f"division_{DIV}.post")["counts"]
    assert counts == {"ambiguous": 2}  # the latest attempt's XCom, pushed before the task failed
    assert {e.state for e in w.ledger().values()} == {"posting"}
    assert sum(_creates(w).values()) == 1  # the dropped answer: JAGGAER did create that one

    w.jaggaer_admin("DELETE", "faults")
    dr = _dag(w).test(logical_date=when, run_after=when)  # the same run (same run_id) again, like clearing it
    assert str(dr.state) == "success" and dr.run_id == run_id, _states(dr)
    assert {e.state for e in w.ledger().values()} == {"posted"}
    assert _creates(w) == {po_number(o): 1 for o in orders}


def test_dag_order_refused_for_good_turns_the_run_red_and_is_not_resent(dag_world: World) -> None:
    """JAGGAER refuses one order (a 400 with its error XML). The post task fails, its retry has nothing to resend
    (``failed`` is not picked up again) and succeeds, yet the run is red: the report finds the order this run left
    ``failed`` in the ledger. Re-running the run sends nothing and stays red; the next run is green (the refusal was
    reported where it happened); after ``mlc ledger requeue`` it is sent again."""
    from datetime import UTC, datetime

    from ml_connector.store import ledger
    from sandbox.jaggaer.xml_import import po_response

    w = dag_world
    refused, fine = (w.create_po(code, [line()]) for code in ("1001", "1002"))
    body = po_response(400, datetime.now(UTC), errors=["Buyer MLCDEMO may not order from this supplier"]).decode()
    w.jaggaer_fault(
        path="POXMLImport", action="status", status=400, body=body, headers={"content-type": "text/xml"}, count=1
    )
    when = datetime.now(UTC).replace(microsecond=0)
    dr = _dag(w).test(logical_date=when, run_after=when)
    run_id = dr.run_id
    states = _states(dr)
    assert str(dr.state) == "failed" and states["report"] == "failed", states
    assert _post_try(dr) == ("success", 2)  # try 1 failed (1 failed); try 2 had nothing to resend
    entry = w.ledger()[po_number(refused)]
    assert entry.state == "failed" and "may not order from this supplier" in entry.reason
    assert w.ledger()[po_number(fine)].state == "posted"
    assert w.jaggaer_calls()[PO_IMPORT] == 2  # one each: the refused order was not sent again by the retry

    w.clear_calls()
    dr = _dag(w).test(logical_date=when, run_after=when)  # the red run again (same run_id): red, nothing resent
    assert str(dr.state) == "failed" and dr.run_id == run_id and _states(dr)["report"] == "failed", _states(dr)
    assert PO_IMPORT not in w.jaggaer_calls()
    dr = _dag(w).test()  # the next run: the refusal is not its doing
    assert str(dr.state) == "success", _states(dr)
    assert PO_IMPORT not in w.jaggaer_calls()

    assert ledger.requeue(w.engine, "demo", "po_push", [entry.source_id]) == 1  # an admin fixed it in JAGGAER
    dr = _dag(w).test()
    assert str(dr.state) == "success", _states(dr)
    assert w.ledger()[po_number(refused)].state == "posted"
    assert _creates(w) == {po_number(refused): 1, po_number(fine): 1}


def test_dag_a_read_exact_refuses_fails_at_once_alerts_and_is_not_resent(
    dag_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exact refuses the sync read (400 with its error body). That is no outage: the extract task fails without
    Airflow's retries, one alert carries Exact's message, and Exact sees one request per division, not four."""
    from ml_connector import alerts

    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(alerts, "send_alert", lambda t, subject, body: sent.append((subject, body)))
    w = dag_world
    w.create_po("1001", [line()])
    message = "No property 'Invented' exists in type 'Exact.Web.Api.Models.Sync.PurchaseOrder.PurchaseOrder'."
    body = {"error": {"code": "", "message": {"lang": "", "value": message}}}
    w.servers.exact.fault(path="sync/PurchaseOrder/PurchaseOrders", action="status", status=400, body=body, count=None)
    dr = _dag(w).test()
    states = _states(dr)
    assert str(dr.state) == "failed", states
    for div in (DIV, DIV2):
        assert states[f"division_{div}.extract"] == "failed" and states[f"division_{div}.post"] == "upstream_failed"
        assert dr.get_task_instance(f"division_{div}.extract").try_number == 1  # no retries
    assert w.exact_calls()["GET /api/v1/{division}/sync/PurchaseOrder/PurchaseOrders"] == 2  # one per division
    refusals = [b for subject, b in sent if "refused" in subject]
    assert len(refusals) == 2 and all(message in b and "not retried" in b for b in refusals)
    assert w.jaggaer_calls() == {}


def test_dag_halts_before_posting_when_the_token_chain_is_broken(dag_world: World) -> None:
    from ml_connector.store.db import session_scope
    from ml_connector.store.models import TokenRecord

    w = dag_world
    w.create_po("1001", [line()])
    with session_scope(w.engine) as s:
        row = s.get(TokenRecord, ("demo", "exact_demo"))
        row.status, row.status_reason = "broken", "Old refresh token used"
    dr = _dag(w).test()
    states = _states(dr)
    assert str(dr.state) == "failed"
    assert states[f"division_{DIV}.extract"] == "failed"
    assert states[f"division_{DIV}.post"] == "upstream_failed"
    extract = dr.get_task_instance(f"division_{DIV}.extract")
    assert extract.try_number == 1  # AirflowFailException: no retries with a dead token chain
    assert w.jaggaer_calls() == {}


def test_mlc_pools_sync_creates_one_single_slot_pool_per_division(airflow_db) -> None:
    """Runs last in this file: the runs above had no pools (dag.test() does not need them; a real scheduler does
    — "Tasks using non-existent pool ... will not be scheduled" — hence ``mlc pools sync``)."""
    from typer.testing import CliRunner

    from ml_connector.cli.pools_cmd import app

    runner = CliRunner()
    result = runner.invoke(app, ["sync", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "mlc_exact__demo__111111: would be created" in result.output
    result = runner.invoke(app, ["sync"])
    assert result.exit_code == 0, result.output
    assert "mlc_exact__demo__222222: created" in result.output
    result = runner.invoke(app, ["show"])
    assert result.exit_code == 0 and "mlc_exact__demo__111111: 1 slot(s)" in result.output, result.output
    again = runner.invoke(app, ["sync"])
    assert "mlc_exact__demo__111111: unchanged" in again.output
