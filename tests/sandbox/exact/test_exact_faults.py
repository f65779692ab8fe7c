"""Fault injection and call counting, over real HTTP."""

from __future__ import annotations

import time

import pytest
import requests
from exact_support import MFG, SEL, Api, small_entry

from sandbox.common import demo_company as demo

ENTRIES = "purchaseentry/PurchaseEntries"


def test_status_fault(api: Api) -> None:
    api.ex.fault(action="status", path="financial/Journals", status=503, body={"oops": True}, count=2)
    assert api.get("financial/Journals", **SEL).status_code == 503
    r = api.get("financial/Journals", **SEL)
    assert r.status_code == 503 and r.json() == {"oops": True}
    assert api.get("financial/Journals", **SEL).status_code == 200  # used up


def test_drop_after_commit_commits_then_drops(api: Api) -> None:
    api.ex.fault(action="drop_after_commit", method="POST", path="PurchaseEntries")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        api.post(ENTRIES, small_entry("INV-LOST-1"))
    # The server did commit: the only way to know is to look, as the connector must.
    supplier = demo.SUPPLIERS[0].account_id(MFG)
    r = api.get(
        ENTRIES, **{"$filter": f"YourRef eq 'INV-LOST-1' and Supplier eq guid'{supplier}'", "$select": "EntryID"}
    )
    assert len(r.json()["d"]["results"]) == 1
    assert [e["YourRef"] for e in api.ex.purchase_entries()] == ["INV-LOST-1"]


def test_html_maintenance_is_200(api: Api) -> None:
    api.ex.fault(action="html_maintenance", path="/api/v1/")
    r = api.get("financial/Journals", **SEL)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        r.json()


def test_latency(api: Api) -> None:
    api.ex.fault(action="latency", path="financial/Journals", delay_s=0.4)
    t = time.perf_counter()
    r = api.get("financial/Journals", **SEL)
    assert r.status_code == 200 and time.perf_counter() - t >= 0.4
    t = time.perf_counter()
    api.get("financial/Journals", **SEL)
    assert time.perf_counter() - t < 0.4


def test_rate_limit_fault_is_exacts_429(api: Api) -> None:
    api.ex.fault(action="rate_limit", path="/api/v1/", count=3)
    for _ in range(3):
        r = api.get("financial/Journals", **SEL)
        assert r.status_code == 429 and r.content == b"" and "Retry-After" not in r.headers
        assert int(r.headers["X-RateLimit-Minutely-Reset"]) > time.time() * 1000 - 120_000
        assert "X-RateLimit-Reset" not in r.headers
    assert api.get("financial/Journals", **SEL).status_code == 200


def test_method_and_token_endpoint_faults(api: Api) -> None:
    api.ex.fault(action="status", method="POST", path="^/api/oauth2/token$", status=502)
    assert api.ex.refresh(api.tokens["refresh_token"]).status_code == 502
    api.ex.fault(action="status", method="POST", path="Journals", status=500)
    assert api.get("financial/Journals", **SEL).status_code == 200  # GET does not match
    faults = requests.get(f"{api.ex.url}/_admin/faults", timeout=5).json()
    assert len(faults) == 1 and faults[0]["method"] == "POST"
    api.ex.clear_faults()
    assert requests.get(f"{api.ex.url}/_admin/faults", timeout=5).json() == []


def test_unlimited_rule_until_cleared(api: Api) -> None:
    api.ex.fault(action="status", path="Journals", status=500, count=None)
    assert all(api.get("financial/Journals", **SEL).status_code == 500 for _ in range(5))
    api.ex.clear_faults()
    assert api.get("financial/Journals", **SEL).status_code == 200


def test_calls_counter(api: Api) -> None:
    api.ex.clear_calls()
    api.get("financial/Journals", **SEL)
    api.get("financial/Journals", division=222222, **SEL)
    api.get("crm/Accounts", **{"$filter": "IsSupplier eq true", "$select": "ID"})
    api.get(f"crm/Accounts(guid'{demo.SUPPLIERS[0].account_id(MFG)}')", **SEL)
    api.http.get(f"{api.ex.url}/api/v1/current/Me")
    api.ex.fault(action="status", path="Journals", status=503)
    api.get("financial/Journals", **SEL)
    api.ex.state()  # admin calls are not counted
    calls = api.ex.calls()
    assert calls["total"] == 6
    assert calls["by_endpoint"]["GET /api/v1/{division}/financial/Journals"] == 3
    assert calls["by_endpoint"]["GET /api/v1/{division}/crm/Accounts"] == 1
    assert calls["by_endpoint"]["GET /api/v1/{division}/crm/Accounts(...)"] == 1
    assert calls["by_endpoint"]["GET /api/v1/current/Me"] == 1
    last = calls["log"][-1]
    assert last["status"] == 503 and last["path"] == "/api/v1/111111/financial/Journals"
    assert "$filter=IsSupplier" in requests.utils.unquote(calls["log"][2]["query"])
    api.ex.clear_calls()
    assert api.ex.calls()["total"] == 0


def test_admin_state_and_settings_validation(api: Api) -> None:
    state = api.ex.state()
    assert set(state["divisions"]) == {str(MFG), "222222"}
    assert state["oauth"]["chains"][0]["divisions"] == [MFG, 222222]
    r = requests.post(f"{api.ex.url}/_admin/settings", json={"no_such_knob": 1}, timeout=5)
    assert r.status_code == 400
    r = requests.post(f"{api.ex.url}/_admin/settings", json={"minutely_limit": "many"}, timeout=5)
    assert r.status_code == 400
