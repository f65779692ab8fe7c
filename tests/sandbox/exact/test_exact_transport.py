"""Transport-level fidelity shared by both sandboxes (sandbox.common), over real HTTP: a dropped 204, the Date
header from the sandbox clock, requests in flight per division, and the clock ``mlc sandbox`` shares."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest
import requests
from exact_support import MFG, SEL, SVC, Api, small_entry

from sandbox.cli import build_apps
from sandbox.common import demo_company as demo
from sandbox.common.server import ServerThread

ENTRIES = "purchaseentry/PurchaseEntries"
J1P_INVOICES = "/j1p/api/public/ji/v1/invoices"


# ------------------------------------------------------------------------------------------------ 9. dropped 204
def test_drop_after_commit_on_a_204_is_a_dropped_connection(api: Api) -> None:
    created = api.post(ENTRIES, small_entry("INV-DROP-204")).json()["d"]
    url = api.ex.api_url(MFG, f"{ENTRIES}(guid'{created['EntryID']}')")
    api.ex.fault(action="drop_after_commit", method="DELETE", path="PurchaseEntries")
    with pytest.raises(requests.exceptions.ConnectionError):
        api.http.delete(url, timeout=10)
    assert api.ex.purchase_entries(MFG) == []  # committed: the entry is gone
    account = demo.SUPPLIERS[0].account_id(MFG)
    api.ex.fault(action="drop_after_commit", method="PUT", path="crm/Accounts")
    with pytest.raises(requests.exceptions.ConnectionError):
        api.http.put(api.ex.api_url(MFG, f"crm/Accounts(guid'{account}')"), json={"Phone": "0121 000 0000"}, timeout=10)
    (row,) = api.get("crm/Accounts", **{"$filter": f"ID eq guid'{account}'", "$select": "Phone"}).json()["d"]["results"]
    assert row["Phone"] == "0121 000 0000"
    assert api.get("financial/Journals", **SEL).status_code == 200  # the server is fine


# ------------------------------------------------------------------------------------------------ 21. Date header
def test_date_header_follows_the_sandbox_clock(api: Api) -> None:
    api.ex.clock(set="2031-03-04T05:06:07Z")
    for r in (
        api.get("financial/Journals", **SEL),
        requests.post(f"{api.ex.url}/api/oauth2/token", data={}, timeout=10),
        requests.get(f"{api.ex.url}/_admin/clock", timeout=10),
    ):
        assert len(r.raw.headers.getlist("Date")) == 1
        when = parsedate_to_datetime(r.headers["Date"])
        assert abs((when - datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)).total_seconds()) < 30


# ------------------------------------------------------------------------------------------------ 24. in flight
def test_calls_report_the_peak_of_parallel_requests_per_division(api: Api) -> None:
    api.ex.clear_calls()
    for _ in range(3):
        assert api.get("financial/Journals", **SEL).status_code == 200
    api.get("financial/Journals", division=SVC, **SEL)
    calls = api.ex.calls()
    assert calls["peak_in_flight"] == {str(MFG): 1, str(SVC): 1} and calls["in_flight"] == {}

    api.ex.clear_calls()
    api.ex.fault(action="latency", path="financial/Journals", delay_s=1.0, count=3)
    sessions = [api.ex.session(api.tokens["access_token"]) for _ in range(3)]
    divisions = [MFG, MFG, SVC]
    threads = [
        threading.Thread(target=s.get, args=(api.ex.api_url(d, "financial/Journals"),), kwargs={"params": SEL})
        for s, d in zip(sessions, divisions, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = api.ex.calls()
    assert calls["peak_in_flight"] == {str(MFG): 2, str(SVC): 1}
    assert calls["peak_in_flight_total"] == 3 and calls["in_flight"] == {}
    api.ex.clear_calls()
    assert api.ex.calls()["peak_in_flight"] == {}


# ------------------------------------------------------------------------------------------------ 12. shared clock
def test_mlc_sandbox_clock_is_shared_but_a_reset_moves_only_its_own_sandbox() -> None:
    exact_app, jaggaer_app, clock = build_apps()
    assert clock.shared and exact_app.state.sandbox.clock is clock is jaggaer_app.state.sandbox.clock
    exact, jaggaer = ServerThread(exact_app), ServerThread(jaggaer_app)
    ex_url, jag_url = exact.start(), jaggaer.start()
    try:

        def now(url: str) -> float:
            return requests.get(f"{url}/_admin/clock", timeout=10).json()["time"]

        # explicit clock operations move both
        requests.post(f"{jag_url}/_admin/clock", json={"advance": 5 * 86400}, timeout=10).raise_for_status()
        assert now(ex_url) - time.time() > 5 * 86400 - 60
        # a plain reset of Exact leaves JAGGAER's (shared) time alone ...
        requests.post(f"{ex_url}/_admin/reset", json={}, timeout=30).raise_for_status()
        assert now(jag_url) - time.time() > 5 * 86400 - 60
        # ... and so does a plain reset of JAGGAER
        requests.post(f"{jag_url}/_admin/reset", json={}, timeout=30).raise_for_status()
        assert now(ex_url) - time.time() > 5 * 86400 - 60
        # Date headers agree with the shared clock on both servers
        r = requests.get(f"{jag_url}{J1P_INVOICES}", timeout=10)
        assert parsedate_to_datetime(r.headers["Date"]).timestamp() - time.time() > 5 * 86400 - 60
        # asked explicitly, a reset does move it (for both)
        requests.post(f"{ex_url}/_admin/reset", json={"clock": True}, timeout=30).raise_for_status()
        assert abs(now(jag_url) - time.time()) < 60
        requests.post(f"{jag_url}/_admin/reset", json={"now": "2027-01-01T00:00:00Z"}, timeout=30)
        assert abs(now(ex_url) - datetime(2027, 1, 1, tzinfo=UTC).timestamp()) < 60
    finally:
        jaggaer.stop()
        exact.stop()


def test_a_sandbox_with_its_own_clock_still_resets_it(api: Api) -> None:
    api.ex.advance(3 * 86400)
    api.ex.reset()
    assert abs(api.ex.clock()["time"] - time.time()) < 60
