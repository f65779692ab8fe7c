"""A request Exact refuses is not an outage: it is named, audited, never sent again, counted against Exact's error
budget per endpoint and division, and once that budget is nearly spent nothing more goes to the endpoint."""

from __future__ import annotations

import time

import pytest
from exact_hook_support import connect

from ml_connector.errors import ErrorBudgetSpent, RejectedError, TransientError
from ml_connector.exact.error_budget import DEFAULT_LIMIT, ErrorBudget
from ml_connector.store.audit import DbAuditSink
from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog

DIV, DIV2 = 111111, 222222
SYNC = "sync/PurchaseOrder/PurchaseOrders"
EXACT_400 = {"error": {"code": "", "message": {"lang": "", "value": "No property 'Invented' exists in type 'X'."}}}


@pytest.fixture
def client(sqlite_engine, make_client, exact_sandbox):
    c = make_client(sqlite_engine, audit=DbAuditSink(sqlite_engine))
    connect(c, exact_sandbox)
    exact_sandbox.clear_calls()
    return c


def sent(handle, endpoint: str) -> int:
    return sum(1 for c in handle.calls()["log"] if c["endpoint"] == f"GET /api/v1/{{division}}/{endpoint}")


def refusals(engine) -> list[AuditLog]:
    with session_scope(engine) as s:
        rows = list(s.query(AuditLog).filter(AuditLog.action == "request_refused").order_by(AuditLog.id))
        for r in rows:
            s.expunge(r)
        return rows


def refuse(handle, path: str = SYNC, count: int | None = None) -> None:
    """Exact's answer to a request it refuses (the request itself stays within the reference: the contract check
    runs on every connector request in the suite)."""
    handle.fault(path=path, action="status", status=400, body=EXACT_400, count=count)


def test_a_refused_read_is_named_audited_and_never_sent_again(client, exact_sandbox, sqlite_engine) -> None:
    refuse(exact_sandbox, count=None)
    query = {"$select": "Timestamp", "$filter": "Timestamp gt 1L"}
    with pytest.raises(RejectedError) as info:
        client.get(DIV, SYNC, query)
    text = str(info.value)
    assert info.value.status == 400 and f"GET {SYNC} (division {DIV})" in text and "'Invented'" in text
    with pytest.raises(RejectedError):
        client.get(DIV, SYNC, query)  # the same request again: refused from memory
    assert sent(exact_sandbox, SYNC) == 1
    (row,) = refusals(sqlite_engine)
    assert (row.division, row.http_status, row.target_ref, row.outcome) == (DIV, 400, SYNC, "refused")
    assert "Invented" in row.message and "?" not in row.url and "Bearer" not in (row.message + row.url)
    exact_sandbox.clear_faults()
    assert client.get(DIV, SYNC, {"$select": "Timestamp,ID", "$filter": "Timestamp gt 1L"})  # others go on


def test_a_5xx_with_an_error_body_on_a_read_is_retried_not_refused(client, exact_sandbox) -> None:
    exact_sandbox.fault(path="financial/Journals", action="status", status=500, body=EXACT_400, count=1)
    rows = client.get(DIV, "financial/Journals", {"$select": "Code"})  # one 500, then the retry succeeds
    assert rows and sent(exact_sandbox, "financial/Journals") == 2
    exact_sandbox.fault(path="financial/Journals", action="status", status=500, body=EXACT_400, count=None)
    with pytest.raises(TransientError):
        client.get(DIV, "financial/Journals", {"$select": "Code"})


def test_the_error_budget_stops_an_endpoint_before_exact_blocks_the_app(
    client, exact_sandbox, sqlite_engine, make_client
) -> None:
    """Refusals are counted per endpoint and division across clients (tasks) from the audit log; at the limit
    (8, below Exact's 10) nothing more is sent to that endpoint of that division; others are unaffected."""
    refuse(exact_sandbox, count=DEFAULT_LIMIT)
    for n in range(DEFAULT_LIMIT):
        with pytest.raises(RejectedError):
            client.get(DIV, SYNC, {"$select": "Timestamp", "$filter": f"Timestamp gt {n + 1}L"})
    assert sent(exact_sandbox, SYNC) == DEFAULT_LIMIT
    fresh = make_client(sqlite_engine, audit=DbAuditSink(sqlite_engine))  # another task: reads the audit log
    connect(fresh, exact_sandbox)
    with pytest.raises(ErrorBudgetSpent) as info:
        fresh.get(DIV, SYNC, {"$select": "Timestamp", "$filter": "Timestamp gt 1L"})
    assert "nothing more to it before" in str(info.value) and f"division {DIV}" in str(info.value)
    assert sent(exact_sandbox, SYNC) == DEFAULT_LIMIT  # not sent
    assert fresh.get(DIV2, SYNC, {"$select": "Timestamp", "$filter": "Timestamp gt 1L"})  # other division
    assert fresh.get(DIV, "financial/Journals", {"$select": "Code"})  # other endpoint


def test_refusals_older_than_an_hour_no_longer_count(sqlite_engine) -> None:
    now = [time.time()]
    budget = ErrorBudget(sqlite_engine, "demo", DbAuditSink(sqlite_engine), limit=2, clock=lambda: now[0])
    url = f"https://start.exactonline.co.uk/api/v1/{DIV}/{SYNC}?$select=X"
    budget.record(DIV, "GET", url, 400, "no", None)
    budget.record(DIV, "GET", url, 404, "no", None)
    with pytest.raises(ErrorBudgetSpent):
        budget.check(DIV, SYNC)
    now[0] += 3601
    budget.check(DIV, SYNC)  # the window moved on
    assert budget.remaining(DIV, SYNC) == 2
