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


def _row(order: str, ts: int, line_no: int, count: int = 2, **kw) -> dict:
    return {
        "Timestamp": ts,
        "PurchaseOrderID": order,
        "LineNumber": line_no,
        "PurchaseOrderLineCount": count,
        "OrderNumber": 5,
        "OrderDate": "/Date(1763596800000)/",
        "QuantityInPurchaseUnits": 1.1 * line_no if line_no else None,
        "UnitPrice": 0.1,
        **kw,
    }


def test_order_folding_across_pages_and_incomplete_orders() -> None:
    a, b, c = (f"0000000{i}-0000-0000-0000-000000000000" for i in (1, 2, 3))
    folder = model.OrderFolder(111111)
    released = []
    for row in [_row(a, 10, 0), _row(a, 11, 1), _row(b, 13, 0, count=1)]:  # page 1 ends inside order a
        released += list(folder.add(row))
    assert [o["id"] for o in released] == []
    for row in [_row(a, 12, 2), _row(b, 14, 1, count=1), _row(c, 15, 1)]:  # c: a line without its header
        released += list(folder.add(row))
    assert [o["id"] for o in released] == [a, b]
    assert [ln["line_number"] for ln in released[0]["lines"]] == [1, 2]
    assert released[0]["lines"][0]["quantity"] == "1.1" and released[0]["order_date"] == "2025-11-20"
    done, incomplete = folder.flush()
    assert done == [] and incomplete == [c]  # re-read by id
    assert folder.max_timestamp == 15


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
