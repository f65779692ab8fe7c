"""Pure pieces: run params and windows, outcomes and the report, fail-fast, DAG helpers, folding sync rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ml_connector.errors import ConfigError, RateBudgetExhausted, TokenChainBroken
from ml_connector.flows.po_push import model
from ml_connector.flows.runtime import FlowContext, Outcomes, RunParams, fail_fast, report, resolve_window

T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)


def test_run_params_parse_and_complain() -> None:
    p = RunParams.from_mapping({"dry_run": "true", "date_from": "2026-11-01", "date_to": None, "ids": "12, 13;14"})
    assert p == RunParams(dry_run=True, date_from=date(2026, 11, 1), date_to=None, ids=("12", "13", "14"))
    assert RunParams.from_mapping(None) == RunParams()
    with pytest.raises(ConfigError) as info:
        RunParams.from_mapping({"date_from": "2026-13-01", "date_to": "2026-11-01"})
    assert "param date_from: '2026-13-01' is not a date" in str(info.value)
    with pytest.raises(ConfigError, match="needs date_from"):
        RunParams.from_mapping({"date_to": "2026-11-01"})
    with pytest.raises(ConfigError, match="before date_from"):
        RunParams.from_mapping({"date_from": "2026-11-02", "date_to": "2026-11-01"})


@pytest.mark.parametrize(
    ("run_type", "params", "scheduled", "expected"),
    [
        ("scheduled", {}, "cursor", None),
        ("scheduled", {}, "interval", (T0, T1)),
        ("manual", {}, "cursor", None),
        ("manual", {}, "interval", (T0, T1)),
        ("backfill", {}, "cursor", (T0, T1)),
        ("backfill", {}, "interval", (T0, T1)),
        (
            "manual",
            {"date_from": "2026-11-01", "date_to": "2026-11-02"},
            "cursor",
            (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)),
        ),
        (
            "backfill",
            {"date_from": "2026-11-01", "date_to": "2026-11-01"},
            "interval",
            (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)),
        ),
    ],
)
def test_resolve_window(run_type: str, params: dict, scheduled: str, expected) -> None:
    got = resolve_window(
        run_type=run_type, params=RunParams.from_mapping(params), data_interval=(T0, T1), scheduled=scheduled
    )
    assert got == expected


def test_point_intervals_and_missing_intervals_fall_back() -> None:
    for interval in ((T0, T0), (None, None)):
        assert (
            resolve_window(run_type="backfill", params=RunParams(), data_interval=interval, scheduled="cursor") is None
        )
        assert (
            resolve_window(run_type="manual", params=RunParams(), data_interval=interval, scheduled="interval") is None
        )
    now = T1 + timedelta(hours=3)
    got = resolve_window(run_type="manual", params=RunParams(date_from=date(2026, 11, 21)), scheduled="cursor", now=now)
    assert got == (datetime(2026, 11, 21, tzinfo=UTC), now)


def test_outcomes_merge_roundtrip() -> None:
    a = Outcomes()
    a.add("posted", "1")
    a.add("failed", "2", detail="order 2: refused")
    b = Outcomes.from_dict(a.to_dict())
    b.add("posted", "3")
    merged = Outcomes().merge(a).merge(b.to_dict())
    assert merged["posted"] == 3 and merged.failed == 2
    assert merged.ids["posted"] == ["1", "1", "3"]
    assert Outcomes.from_dict({"posted": 2})["posted"] == 2  # plain counts are accepted too
    assert "posted" in merged.table()


def _ctx(sqlite_engine, tenant) -> FlowContext:
    return FlowContext.for_test(tenant, "po_push", sqlite_engine, run_id="r1", division=111111)


@pytest.fixture
def tenant():
    from ml_connector.flows.runtime import load_tenant

    return load_tenant("demo")


def test_report_alerts_and_fails(sqlite_engine, tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr("ml_connector.alerts.send_alert", lambda t, subject, body: sent.append((subject, body)))
    ok = Outcomes()
    ok.add("posted", "1")
    summary = report(_ctx(sqlite_engine, tenant), ok)
    assert summary["counts"] == {"posted": 1} and summary["note"] == "demo/po_push/division 111111: posted 1"
    assert sent == []

    quarantined = Outcomes()
    quarantined.add("quarantined", "7", detail="order 7: line 1: quantity 'x' is not a number")
    summary = report(_ctx(sqlite_engine, tenant), quarantined)  # alerted, not red
    assert sent and "1 quarantined" in sent[-1][0] and "quantity 'x'" in sent[-1][1]

    failed = Outcomes()
    failed.add("failed", "8", detail="order 8: JAGGAER refused PO")
    with pytest.raises(Exception) as info:
        report(_ctx(sqlite_engine, tenant), failed)
    assert type(info.value).__name__ == "AirflowFailException" and "JAGGAER refused" in str(info.value)
    with pytest.raises(Exception, match="did not finish"):
        report(_ctx(sqlite_engine, tenant), Outcomes(), problems=["task x did not finish"])


def test_fail_fast(tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    alerts: list[str] = []
    monkeypatch.setattr("ml_connector.alerts.token_failure_alert", lambda t, exc: alerts.append(exc.reason))
    with pytest.raises(AirflowFailException) as info, fail_fast(tenant):
        raise TokenChainBroken("demo", "Old refresh token used")
    assert alerts == ["Old refresh token used"] and "mlc exact connect --tenant demo" in str(info.value)
    # also a TokenChainBroken marked alerted: alerts.failure_callback will not alert a second time
    assert isinstance(info.value, TokenChainBroken) and info.value.alerted
    with pytest.raises(AirflowFailException, match="Configuration problem:\n  a\n  b"), fail_fast(tenant):
        raise ConfigError(["a", "b"])
    reset = datetime(2026, 11, 24, tzinfo=UTC)
    with pytest.raises(AirflowFailException, match="2026-11-24T00:00:00"), fail_fast(tenant):
        raise RateBudgetExhausted("spent", reset_at=reset)
    with pytest.raises(ValueError), fail_fast(tenant):  # anything else: Airflow's retries apply
        raise ValueError("x")


def test_dag_helpers(tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_connector.dagbuild.common import default_args, flow_params, pool_name, pools_for

    assert pool_name("demo", 111111) == "mlc_exact__demo__111111"
    assert [p[0] for p in pools_for({"demo": tenant})] == ["mlc_exact__demo__111111", "mlc_exact__demo__222222"]
    assert all(p[1] == 1 for p in pools_for([tenant]))
    monkeypatch.setenv("MLC_TASK_RETRY_DELAY", "0.5")
    args = default_args(tenant)
    assert args["retries"] == 3 and args["retry_delay"].total_seconds() == 0.5 and args["retry_exponential_backoff"]
    assert callable(args["on_failure_callback"])
    assert set(flow_params("x")) == {"dry_run", "date_from", "date_to", "ids"}


def _row(order: str, ts: int, line_no: int, **kw) -> dict:
    return {
        "Timestamp": ts,
        "PurchaseOrderID": order,
        "LineNumber": line_no,
        "OrderNumber": 5,
        "OrderDate": "/Date(1763596800000)/",
        "QuantityInPurchaseUnits": 1.1 * line_no if line_no else None,
        "UnitPrice": 0.1,
        **kw,
    }


def test_order_folding_across_pages_and_incomplete_orders() -> None:
    a, b, c, d, e = (f"0000000{i}-0000-0000-0000-000000000000" for i in (1, 2, 3, 4, 5))
    folder = model.OrderFolder(111111, settle_rows=2)
    released = []
    for row in [_row(a, 10, 0), _row(a, 11, 1), _row(b, 13, 0)]:  # page 1 ends inside order a
        released += list(folder.add(row))
    assert released == []
    # a's second line comes after b's header; c is a line without its header row
    for row in [_row(a, 12, 2), _row(b, 14, 1), _row(c, 15, 1)]:
        released += list(folder.add(row))
    assert [o["id"] for o in released] == [a]
    assert [ln["line_number"] for ln in released[0]["lines"]] == [1, 2]
    assert released[0]["lines"][0]["quantity"] == "1.1" and released[0]["order_date"] == "2025-11-20"
    # d settles and is released; a row of d that comes later makes d a straggler, read again whole by id
    for row in [_row(d, 16, 0), _row(d, 17, 1), _row(e, 18, 0), _row(e, 19, 1), _row(d, 20, 2)]:
        released += list(folder.add(row))
    assert [o["id"] for o in released] == [a, b, d]
    done, incomplete = folder.flush()
    assert [o["id"] for o in done] == [e] and incomplete == [c, d]  # re-read by id
    assert folder.max_timestamp == 20


def test_sync_rows_carry_the_codes_in_code_fields() -> None:
    """On the sync endpoint CostCenter/CostUnit are GUIDs; the payload takes the codes from the *Code fields, so a
    sync read and a dated read of one order give the same payload."""
    order = "00000001-0000-0000-0000-000000000000"
    cc_guid, cu_guid = "9d6d1a43-0000-0000-0000-000000000001", "9d6d1a43-0000-0000-0000-000000000002"
    folder = model.OrderFolder(111111)
    for row in [
        _row(order, 1, 0),
        _row(order, 2, 1, CostCenter=cc_guid, CostCenterCode="CC100", CostUnit=cu_guid, CostUnitCode="CU1"),
    ]:
        assert list(folder.add(row)) == []
    (synced,), _ = folder.flush()
    expanded_line = _row(order, 2, 1, CostCenter="CC100", CostUnit="CU1")
    dated = model.order_from_expanded(_row(order, 1, 0), [expanded_line], 111111)
    assert synced["lines"][0]["cost_center"] == "CC100" and synced["lines"][0]["cost_unit"] == "CU1"
    assert synced == dated


def test_payload_ignores_volatile_fields() -> None:
    row = _row("00000001-0000-0000-0000-000000000000", 1, 1, Modified="/Date(1)/", ReceivedQuantity=3)
    a = model.order_from_expanded(row, [row], 111111)
    row2 = {**row, "Timestamp": 99, "Modified": "/Date(2)/", "ReceivedQuantity": 4}
    assert model.order_from_expanded(row2, [row2], 111111) == a


def test_or_filters_respect_term_and_length_limits() -> None:
    lits = [f"guid'{i:08d}-0000-0000-0000-000000000000'" for i in range(45)]
    batches = model.batched_or_filters("ID", lits)
    assert [b.count(" or ") + 1 for b in batches] == [20, 20, 5]
    small = model.batched_or_filters("ID", lits, max_chars=200)
    assert all(len(b) <= 200 for b in small) and sum(b.count(" eq ") for b in small) == 45


# --------------------------------------------------------------------------------------------------- post tasks fail
class _TI:
    """What ``run_stage`` uses of Airflow's task instance: its id and ``xcom_push``."""

    def __init__(self, task_id: str = "division_111111.post") -> None:
        self.task_id = task_id
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def _stage_result(**counts: list[str]):
    def stage(ctx) -> Outcomes:
        out = Outcomes()
        for outcome, refs in counts.items():
            for ref in refs:
                out.add(outcome, ref, detail=f"order {ref}: {outcome} (JAGGAER said: secret-free text)")
        return out

    return stage


def test_run_stage_fails_a_post_task_after_its_batch_and_keeps_the_counts(sqlite_engine, tenant, monkeypatch) -> None:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from ml_connector.flows.runtime import run_stage
    from ml_connector.task_errors import RecordsNotDone

    monkeypatch.setenv("MLC_DB_URL", sqlite_engine.url.render_as_string(hide_password=False))
    refs = [str(n) for n in range(1001, 1009)]
    ti = _TI()
    with pytest.raises(AirflowException) as info:
        run_stage(
            {"ti": ti, "run_id": "r1"},
            "demo",
            "po_push",
            _stage_result(posted=["1000"], ambiguous=refs, failed=["2001"]),
            scheduled="cursor",
            division=111111,
            fail_on_records=True,
        )
    exc = info.value
    # retryable (Airflow retries it with backoff), not AirflowFailException; recognisable as records not done
    assert not isinstance(exc, AirflowFailException) and isinstance(exc, RecordsNotDone) and exc.report_alerts
    message = str(exc)
    # ids are qualified by division since issue 15 (order numbers repeat across divisions)
    assert message.startswith(
        "demo/po_push division_111111.post: 1 failed (111111/2001); 8 ambiguous (111111/1001, 111111/1002, "
        "111111/1003, 111111/1004, 111111/1005 and 3 more). "
    )
    assert "Airflow retries it" in message and "clearing it replays" in message
    assert "JAGGAER said" not in message  # counts and refs only, no server messages
    # the attempt's counts are its XCom, so the report sees them although the task failed
    pushed = ti.pushed["return_value"]
    assert pushed == exc.outcomes
    assert pushed["counts"] == {"posted": 1, "ambiguous": 8, "failed": 1}
    assert pushed["details"][0].startswith("[division 111111] order 1000")

    # nothing failed: the counts are returned (the SDK pushes them), no manual push
    ti = _TI()
    ok = run_stage(
        {"ti": ti, "run_id": "r1"},
        "demo",
        "po_push",
        _stage_result(posted=["1"], quarantined=["2"], held=["3"]),
        scheduled="cursor",
        division=111111,
        fail_on_records=True,
    )
    assert ok["counts"] == {"posted": 1, "quarantined": 1, "held": 1} and ti.pushed == {}
    # other stages never fail on records (their failures are reported, e.g. a JAGGAER detail refused in extract)
    out = run_stage(
        {"ti": _TI("extract"), "run_id": "r1"}, "demo", "po_push", _stage_result(failed=["9"]), scheduled="cursor"
    )
    assert out["counts"] == {"failed": 1}


def test_the_failure_callback_leaves_records_not_done_to_the_report(monkeypatch) -> None:
    from types import SimpleNamespace

    from ml_connector import alerts
    from ml_connector.task_errors import records_failure

    sent: list[str] = []
    monkeypatch.setattr(alerts, "send_alert", lambda t, subject, body: sent.append(subject))
    ti = SimpleNamespace(dag_id="exact_po_push__demo", task_id="division_111111.post", run_id="r1", try_number=4)
    callback = alerts.failure_callback("demo")
    callback({"exception": records_failure("1 ambiguous: 1001", {}), "ti": ti, "run_id": "r1"})
    assert sent == []
    callback({"exception": RuntimeError("database gone"), "ti": ti, "run_id": "r1"})
    assert sent == ["exact_po_push__demo.division_111111.post failed"]


def _ledger_entry(engine, source_id: str, *, run_id: str, state: str, division: int = 111111) -> None:
    from ml_connector.store import ledger
    from ml_connector.store.db import session_scope

    with session_scope(engine) as s:
        ledger.stage(
            s,
            tenant="demo",
            flow="po_push",
            source_id=source_id,
            payload={"n": source_id},
            source_ref=source_id.removeprefix("id-"),
            division=division,
            run_id="extract-run",
            repost_changed=True,
        )
        entry_id = ledger.get_entry(s, "demo", "po_push", source_id).id
    ledger.begin_post(engine, entry_id, run_id)
    if state != "posting":
        ledger.finish(engine, entry_id, state, reason=f"JAGGAER refused {source_id}", run_id=run_id)


def test_report_counts_what_this_run_left_open_in_the_ledger(sqlite_engine, tenant, monkeypatch) -> None:
    """A record refused in an earlier attempt of this run turns the run red although the latest attempt of its post
    task (whose XCom the report reads) had nothing left to do; records left by an earlier run do not."""
    from airflow.sdk.exceptions import AirflowFailException

    sent: list[str] = []
    monkeypatch.setattr("ml_connector.alerts.send_alert", lambda t, subject, body: sent.append(subject))
    _ledger_entry(sqlite_engine, "id-7001", run_id="r0", state="failed")  # an earlier run's: alerted back then
    _ledger_entry(sqlite_engine, "id-7002", run_id="r0", state="posting")  # picked up (and counted) by the next post
    _ledger_entry(sqlite_engine, "id-7101", run_id="r1", state="failed")
    _ledger_entry(sqlite_engine, "id-7102", run_id="r1", state="posting", division=222222)
    _ledger_entry(sqlite_engine, "id-7103", run_id="r1", state="posted")
    _ledger_entry(sqlite_engine, "id-7104", run_id="r1", state="quarantined")

    def ctx(run_id: str) -> FlowContext:
        return FlowContext.for_test(tenant, "po_push", sqlite_engine, run_id=run_id)

    latest = Outcomes()  # the post tasks' latest attempts: one retry posted 7103 and had nothing else to do
    latest.add("posted", "7103")
    with pytest.raises(AirflowFailException) as info:
        report(ctx("r1"), latest)
    assert "left_failed 1" in str(info.value) and "left_posting 1" in str(info.value)
    summary = report(ctx("r1"), latest, raise_on_failure=False)
    assert summary["counts"] == {"posted": 1, "left_failed": 1, "left_posting": 1}
    # ids are qualified by division (issue 15: order numbers repeat across divisions)
    assert summary["ids"]["left_failed"] == ["111111/7101"] and summary["ids"]["left_posting"] == ["222222/7102"]
    # the counts that add up: every record this run changed, once, in its state now, per division
    assert summary["by_division"] == {"111111": {"failed": 1, "posted": 1, "quarantined": 1}, "222222": {"posting": 1}}
    assert "[division 111111] 7101: failed in this run: JAGGAER refused id-7101" in summary["details"]
    assert any(d.startswith("[division 222222] 7102: left in posting") for d in summary["details"])
    assert sent[-1] == "demo/po_push: 2 left open"

    # the latest attempt explains 7101 itself: counted in both views, its reason not repeated
    explained = Outcomes()
    explained.add("failed", "7101", detail="[division 111111] order 7101: JAGGAER refused PO")
    summary = report(ctx("r1"), explained, raise_on_failure=False)
    assert summary["counts"] == {"failed": 1, "left_failed": 1, "left_posting": 1}
    assert not any("failed in this run" in d for d in summary["details"])

    # a later run that touched none of them is green; so is a dry run
    assert report(ctx("r2"), Outcomes())["counts"] == {}
    dry = FlowContext.for_test(tenant, "po_push", sqlite_engine, run_id="r1", params={"dry_run": True})
    assert report(dry, Outcomes())["counts"] == {}
    # a requeued record is pending again: no longer open for r1
    from ml_connector.store import ledger

    assert ledger.requeue(sqlite_engine, "demo", "po_push", ["id-7101"]) == 1
    assert report(ctx("r1"), Outcomes(), raise_on_failure=False)["counts"] == {"left_posting": 1}
