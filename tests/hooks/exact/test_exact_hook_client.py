"""REST semantics against the sandbox: paging, expanded paging, POST outcomes, 403 reasons, maintenance pages."""

from __future__ import annotations

import pytest
from exact_hook_support import connect

from ml_connector.errors import AmbiguousWriteError, ConfigError, RejectedError, TransientError
from ml_connector.exact import odata
from ml_connector.http import AuditContext
from ml_connector.store.audit import DbAuditSink
from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog

DIV = 111111


@pytest.fixture
def client(sqlite_engine, make_client, exact_sandbox):
    c = make_client(sqlite_engine, audit=DbAuditSink(sqlite_engine))
    connect(c, exact_sandbox)
    exact_sandbox.clear_calls()
    return c


def calls(handle, endpoint: str) -> list[int]:
    return [c["status"] for c in handle.calls()["log"] if c["endpoint"] == endpoint]


def audit_rows(engine) -> list[AuditLog]:
    """The audit rows of the API writes (token calls are audited too, as flow ``exact_token``)."""
    with session_scope(engine) as s:
        return list(s.query(AuditLog).filter(AuditLog.flow != "exact_token").order_by(AuditLog.id))


def ctx(action: str = "create_supplier") -> AuditContext:
    return AuditContext(tenant="demo", flow="test", action=action, source_id="S-1")


SUPPLIERS = "IsSupplier eq true"


def test_iter_collection_follows_every_next(client, exact_sandbox) -> None:
    exact_sandbox.settings(page_size=10)
    rows = list(client.iter_collection(DIV, "crm/Accounts", select=["ID", "Code", "Name"], filter=SUPPLIERS))
    everything = exact_sandbox.settings(page_size=1000)
    assert everything
    once = list(client.iter_collection(DIV, "crm/Accounts", select="ID,Code,Name", filter=SUPPLIERS))
    assert len(rows) == len(once) > 50
    assert [r["ID"] for r in rows] == [r["ID"] for r in once]
    pages = calls(exact_sandbox, "GET /api/v1/{division}/crm/Accounts")
    assert len(pages) == -(-len(rows) // 10) + 1 and set(pages) == {200}
    assert all(len(r["Code"]) == 18 for r in rows)  # padded codes come back as they are
    first = rows[0]
    found = list(
        client.iter_collection(
            DIV, "crm/Accounts", select=["ID"], filter=odata.eq("Code", odata.pad_code(first["Code"]))
        )
    )
    assert [r["ID"] for r in found] == [first["ID"]]


def test_top_stops_early_and_bare_lists_are_tolerated(client, exact_sandbox) -> None:
    exact_sandbox.settings(page_size=10, bare_list=True)
    rows = list(client.iter_collection(DIV, "crm/Accounts", select=["ID"], filter=SUPPLIERS, top=15))
    assert len(rows) == 15
    single = client.get(DIV, "system/Divisions", {"$select": "Code", "$filter": f"Code eq {DIV}"})
    assert [r["Code"] for r in odata.results(single)] == [DIV]


def test_expanded_collections_are_paged_too(client, exact_sandbox) -> None:
    exact_sandbox.settings(expand_page_size=2)
    select = "PurchaseOrderID,OrderNumber,PurchaseOrderLines/LineNumber,PurchaseOrderLines/Item"
    orders = list(
        client.iter_collection(DIV, "purchaseorder/PurchaseOrders", select=select, expand="PurchaseOrderLines", top=40)
    )
    many = [o for o in orders if o["PurchaseOrderLines"].get("__next")]
    assert many, "the seed has orders with more than two lines"
    order = many[0]
    lines = list(client.iter_expanded(order, "PurchaseOrderLines"))
    assert len(lines) > 2
    assert sorted(ln["LineNumber"] for ln in lines) == list(range(1, len(lines) + 1))
    # Not expanded: a __deferred link, fetched (and paged) on demand with its own $select.
    [plain] = list(
        client.iter_collection(
            DIV,
            "purchaseorder/PurchaseOrders",
            select="PurchaseOrderID,PurchaseOrderLines",
            filter=f"PurchaseOrderID eq guid'{order['PurchaseOrderID']}'",
        )
    )
    assert "__deferred" in plain["PurchaseOrderLines"]
    deferred = list(client.iter_expanded(plain, "PurchaseOrderLines", select=["LineNumber", "Item"]))
    assert [ln["LineNumber"] for ln in deferred] == [ln["LineNumber"] for ln in lines]


def test_post_returns_the_created_entity_and_audits_it(client, exact_sandbox, sqlite_engine) -> None:
    created = client.post(DIV, "crm/Accounts", {"Name": "Test Supplies Ltd", "IsSupplier": True}, audit_ctx=ctx())
    assert created["ID"] and created["Name"] == "Test Supplies Ltd" and len(created["Code"]) == 18
    [row] = audit_rows(sqlite_engine)
    assert (row.method, row.http_status, row.outcome, row.division) == ("POST", 201, "ok", DIV)


def test_validation_error_500_is_rejected_with_exacts_message_and_not_retried(
    client, exact_sandbox, sqlite_engine
) -> None:
    with pytest.raises(RejectedError) as err:
        client.post(DIV, "crm/Accounts", {"Name": "", "IsSupplier": True}, audit_ctx=ctx())
    assert err.value.status == 500
    expected = odata.parse_error(err.value.body)
    assert expected is not None and err.value.message == expected.message and "Name" in err.value.message
    assert calls(exact_sandbox, "POST /api/v1/{division}/crm/Accounts") == [500]  # sent once
    [row] = audit_rows(sqlite_engine)
    assert (row.http_status, row.outcome) == (500, "rejected") and row.message == err.value.message


def test_validation_error_400_variant(client, exact_sandbox) -> None:
    exact_sandbox.settings(validation_error_status=400)
    with pytest.raises(RejectedError) as err:
        client.post(DIV, "crm/Accounts", {"Name": "", "IsSupplier": True}, audit_ctx=ctx())
    assert err.value.status == 400
    assert calls(exact_sandbox, "POST /api/v1/{division}/crm/Accounts") == [400]


def test_dropped_connection_after_commit_is_ambiguous(client, exact_sandbox, sqlite_engine) -> None:
    exact_sandbox.fault(method="POST", path="crm/Accounts", action="drop_after_commit", count=1)
    with pytest.raises(AmbiguousWriteError):
        client.post(DIV, "crm/Accounts", {"Name": "Dropped Answer Ltd", "IsSupplier": True}, audit_ctx=ctx())
    assert calls(exact_sandbox, "POST /api/v1/{division}/crm/Accounts") == [201]  # it was applied, once
    found = list(client.iter_collection(DIV, "crm/Accounts", select=["ID"], filter="Name eq 'Dropped Answer Ltd'"))
    assert len(found) == 1
    [row] = audit_rows(sqlite_engine)
    assert row.outcome == "ambiguous" and row.http_status is None


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"action": "html_maintenance"}, AmbiguousWriteError),
        ({"action": "status", "status": 503}, AmbiguousWriteError),
        (
            {"action": "status", "status": 404, "body": {"error": {"code": "", "message": {"value": "Not found"}}}},
            RejectedError,
        ),
        ({"action": "status", "status": 409, "body": ""}, RejectedError),
    ],
)
def test_post_outcomes_are_never_retried(client, exact_sandbox, fault, expected) -> None:
    exact_sandbox.fault(method="POST", path="crm/Accounts", count=1, **fault)
    with pytest.raises(expected):
        client.post(DIV, "crm/Accounts", {"Name": "Once Only Ltd", "IsSupplier": True}, audit_ctx=ctx())
    assert len(calls(exact_sandbox, "POST /api/v1/{division}/crm/Accounts")) == 1


def test_reads_ride_out_maintenance_pages_and_5xx(client, exact_sandbox) -> None:
    exact_sandbox.fault(method="GET", path="system/Divisions", action="html_maintenance", count=1)
    exact_sandbox.fault(method="GET", path="system/Divisions", action="status", status=502, count=1)
    assert client.get(DIV, "system/Divisions", {"$select": "Code"})
    assert calls(exact_sandbox, "GET /api/v1/{division}/system/Divisions") == [200, 502, 200]
    exact_sandbox.fault(method="GET", path="system/Divisions", action="html_maintenance", count=None)
    with pytest.raises(TransientError, match="maintenance"):
        client.get(DIV, "system/Divisions", {"$select": "Code"})


def test_read_errors_with_a_body_are_rejections(client, exact_sandbox) -> None:
    with pytest.raises(RejectedError) as err:
        client.get(DIV, "crm/Accounts", {"$select": "ID"})  # no $filter: Exact insists on one
    assert err.value.status == 400 and "filter" in err.value.message.lower()
    assert calls(exact_sandbox, "GET /api/v1/{division}/crm/Accounts") == [400]


def test_403_reasons_are_named(client, exact_sandbox) -> None:
    exact_sandbox.settings(blocked_divisions=[222222])
    with pytest.raises(RejectedError) as err:
        client.get(222222, "system/Divisions", {"$select": "Code"})
    assert err.value.status == 403 and err.value.message.startswith("DivisionBlocked")
    with pytest.raises(RejectedError, match="NoDivisionAccess"):
        client.get(333333, "system/Divisions", {"$select": "Code"})


def test_check_divisions_names_each_inaccessible_division(sqlite_engine, make_client, exact_sandbox) -> None:
    exact_sandbox.settings(consent_divisions=[111111])
    c = make_client(sqlite_engine)
    connect(c, exact_sandbox)
    assert c.me()["CurrentDivision"] == 111111
    c.check_divisions([111111])
    with pytest.raises(ConfigError) as err:
        c.check_divisions([111111, 222222])
    assert err.value.problems == ["division 222222 not accessible: NoDivisionAccess: Forbidden"]


def test_links_never_leave_the_configured_host(client) -> None:
    assert client.url(None, "https://evil.example/api/v1/1/x?$skiptoken=1").startswith(client.app.base_url)
    assert client.division_of(client.url(5, "crm/Accounts")) == 5
    assert client.call_count == 0
