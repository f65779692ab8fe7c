"""The contract check itself: it names what a request asks for outside Exact's entity reference, and a test session
whose connector sent such a request fails."""

from __future__ import annotations

import json

import pytest

from sandbox.exact.contract import offences

SYNC = "/api/v1/111111/sync/PurchaseOrder/PurchaseOrders"


def test_a_request_within_the_reference_has_no_offence() -> None:
    query = [("$select", "Timestamp,PurchaseOrderID,CostCenterCode"), ("$filter", "Timestamp gt 1L")]
    assert offences("GET", SYNC, query) == []
    assert offences("GET", "/api/v1/current/Me", [("$select", "CurrentDivision,UserID")]) == []
    expanded = [
        ("$expand", "PurchaseOrderLines"),
        ("$select", "PurchaseOrderID,PurchaseOrderLines/CostCenter"),
        ("$filter", "Modified ge datetime'2026-01-01T00:00:00' and substringof('x', Description)"),
    ]
    assert offences("GET", "/api/v1/1/purchaseorder/PurchaseOrders", expanded) == []
    body = json.dumps({"Journal": "60", "PurchaseEntryLines": [{"GLAccount": "g", "AmountFC": 1, "VATCode": "2"}]})
    assert offences("POST", "/api/v1/1/purchaseentry/PurchaseEntries", [], body.encode()) == []
    assert offences("POST", "/api/oauth2/token", []) == []  # not an entity endpoint


def test_each_kind_of_offence_is_named() -> None:
    assert offences("GET", SYNC, [("$select", "Timestamp,PurchaseOrderLineCount")]) == [
        "$select names 'PurchaseOrderLineCount', which sync/PurchaseOrder/PurchaseOrders does not have"
    ]
    assert offences("GET", SYNC, [("$filter", "Timestamp gt 1L and Invented eq 2")]) == [
        "$filter names 'Invented', which sync/PurchaseOrder/PurchaseOrders does not have"
    ]
    assert offences("GET", SYNC, [("$orderby", "Invented desc")]) == [
        "$orderby names 'Invented', which sync/PurchaseOrder/PurchaseOrders does not have"
    ]
    assert offences("DELETE", f"{SYNC}(1L)", []) == [
        "DELETE is not a method of sync/PurchaseOrder/PurchaseOrders (the reference lists GET)"
    ]
    assert offences("GET", "/api/v1/1/hrm/CostCenters", []) == [
        "endpoint 'hrm/CostCenters' is not in Exact's entity reference"
    ]
    nested = [("$expand", "PurchaseOrderLines"), ("$select", "PurchaseOrderLines/Invented")]
    assert offences("GET", "/api/v1/1/purchaseorder/PurchaseOrders", nested) == [
        "$select names 'PurchaseOrderLines/Invented': purchaseorder/PurchaseOrderLines has no property 'Invented'"
    ]
    body = json.dumps({"Journal": "60", "InvoiceDate": "x", "PurchaseEntryLines": [{"Invented": 1}]}).encode()
    assert offences("POST", "/api/v1/1/purchaseentry/PurchaseEntries", [], body) == [
        "body sets 'InvoiceDate', which purchaseentry/PurchaseEntries does not have",
        "body PurchaseEntryLines[] sets 'Invented', which purchaseentry/PurchaseEntryLines does not have",
    ]


INNER_TEST = """
from ml_connector.exact.client import USER_AGENT
from sandbox.exact.testing import ExactSandboxHandle


def test_connector_request(request):
    with ExactSandboxHandle() as ex:
        http = ex.session(ex.connect()["access_token"])
        http.headers["User-Agent"] = USER_AGENT
        select = "Timestamp,PurchaseOrderID" + ("" if request.config.getoption("clean") else ",PurchaseOrderLineCount")
        r = http.get(ex.api_url(111111, "sync/PurchaseOrder/PurchaseOrders"),
                     params={"$select": select, "$filter": "Timestamp gt 1L"}, timeout=30)
        assert r.status_code in (200, 400)  # the test itself passes: only the session check can fail it
"""

INNER_CONFTEST = """
def pytest_addoption(parser):
    parser.addoption("--clean", action="store_true")
"""


@pytest.mark.slow
def test_a_session_with_an_invented_property_fails_and_names_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_planted=INNER_TEST)
    planted = pytester.runpytest_subprocess("-p", "sandbox.exact.contract_plugin", "-p", "no:cacheprovider")
    out = planted.stdout.str()
    assert planted.ret == pytest.ExitCode.TESTS_FAILED, out
    assert "1 passed" in out and "Exact contract check FAILED" in out
    assert "$select names 'PurchaseOrderLineCount', which sync/PurchaseOrder/PurchaseOrders does not have" in out
    assert "test_planted.py::test_connector_request" in out

    clean = pytester.runpytest_subprocess("-p", "sandbox.exact.contract_plugin", "-p", "no:cacheprovider", "--clean")
    assert clean.ret == pytest.ExitCode.OK, clean.stdout.str()
    assert "0 requests outside Exact's entity reference" in clean.stdout.str()
