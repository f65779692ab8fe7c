"""Fidelity of the Exact sandbox where the real service is strict, over real HTTP: request size limits, the code
exchange's redirect_uri, the error budget for dead tokens, $select everywhere, Accept handling of every response,
$filter on every field, type checks and sequence numbers, a killed chain, expanded lines, sync/Deleted retention,
account codes, currencies, bounded token tables."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from exact_support import MFG, SEL, SVC, Api, error_text, results
from lxml import etree

from sandbox.common import demo_company as demo
from sandbox.exact import oauth as oauth_mod
from sandbox.exact.entities import PO_HEADER, SYNC_PO
from sandbox.exact.odata import BOOL, DATETIME, FLOAT, GUID, INT
from sandbox.exact.testing import ExactSandboxHandle

POS = "purchaseorder/PurchaseOrders"
SYNC = "sync/PurchaseOrder/PurchaseOrders"
ENTRIES = "purchaseentry/PurchaseEntries"
M_NS = "{http://schemas.microsoft.com/ado/2007/08/dataservices/metadata}"


def entry(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Journal": "60",
        "Supplier": demo.SUPPLIERS[0].account_id(MFG),
        "EntryDate": "2026-11-20T00:00:00",
        "YourRef": "INV-F-1",
        "PurchaseEntryLines": [{"GLAccount": demo.GL_ACCOUNTS[2].id(MFG), "AmountFC": 100.0, "VATCode": "1"}],
    }
    body.update(over)
    return body


# ------------------------------------------------------------------------------------------------ 3. sizes
def test_url_longer_than_6000_characters_is_414(api: Api) -> None:
    base = api.ex.api_url(MFG, "financial/Journals") + "?$select=Code&$filter=Code%20eq%20%27"
    pad = 6000 - len(base) - len("%27")
    just = base + "x" * pad + "%27"
    assert len(just) == 6000
    assert api.http.get(just, timeout=30).status_code == 200  # no journal matches, but the URL is fine
    over = base + "x" * (pad + 1) + "%27"
    r = api.http.get(over, timeout=30)
    assert r.status_code == 414 and "6000" in error_text(r)
    api.ex.settings(max_url_length=20_000)
    assert api.http.get(over, timeout=30).status_code == 200


def test_body_larger_than_10_mb_is_413(api: Api) -> None:
    limit = 10 * 1024 * 1024
    assert api.ex.settings()["max_body_bytes"] == limit
    big = b'{"Name": "' + b"x" * (limit - 11) + b'"}'
    assert len(big) == limit + 1
    r = api.http.post(
        api.ex.api_url(MFG, "crm/Accounts"), data=big, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert r.status_code == 413 and "Too Large" in error_text(r)
    api.ex.settings(max_body_bytes=100)
    r = api.post("crm/Accounts", {"Name": "y" * 200})
    assert r.status_code == 413
    assert api.post("crm/Accounts", {"Name": "Small Ltd"}).status_code == 201


# ------------------------------------------------------------------------------------------------ 4. redirect_uri
def test_code_exchange_needs_the_authorize_redirect_uri(exact_sandbox: ExactSandboxHandle) -> None:
    code = exact_sandbox.authorize()
    r = exact_sandbox.token(grant_type="authorization_code", code=code)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    other = "http://localhost:8080/ml-connector/exact/callback"  # registered, but not the one authorized
    r = exact_sandbox.exchange(code, redirect_uri=other)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert exact_sandbox.exchange(code).status_code == 200  # the refused attempts did not use the code up


# ------------------------------------------------------------------------------------------------ 5. error budget
def test_expired_token_401s_count_toward_the_error_budget(exact_sandbox: ExactSandboxHandle) -> None:
    exact_sandbox.settings(rate_limits_enabled=False)
    http = exact_sandbox.session(exact_sandbox.connect()["access_token"])
    url = exact_sandbox.api_url(MFG, "financial/Journals")
    exact_sandbox.advance(601)
    for _ in range(11):
        assert http.get(url, params=SEL, timeout=10).status_code == 401
    fresh = exact_sandbox.session(exact_sandbox.connect()["access_token"])
    r = fresh.get(url, params=SEL, timeout=10)
    assert r.status_code == 429 and "blocked" in error_text(r)
    assert fresh.get(exact_sandbox.api_url(MFG, "financial/GLAccounts"), params=SEL, timeout=10).status_code == 200
    assert fresh.get(exact_sandbox.api_url(SVC, "financial/Journals"), params=SEL, timeout=10).status_code == 200


def test_unknown_token_401s_are_not_attributed(exact_sandbox: ExactSandboxHandle) -> None:
    exact_sandbox.settings(rate_limits_enabled=False)
    url = exact_sandbox.api_url(MFG, "financial/Journals")
    for _ in range(12):
        assert exact_sandbox.session("made-up").get(url, params=SEL, timeout=10).status_code == 401
    fresh = exact_sandbox.session(exact_sandbox.connect()["access_token"])
    assert fresh.get(url, params=SEL, timeout=10).status_code == 200


# ------------------------------------------------------------------------------------------------ 6. $select
def test_select_is_demanded_only_on_sync_and_bulk(api: Api) -> None:
    """Exact returns every property without $select on ordinary endpoints (a GL account by $top, one purchase
    entry by key); sync and bulk endpoints demand it and refuse $select=*."""
    assert api.ex.settings()["select_required_everywhere"] is False
    (gl,) = results(api.get("financial/GLAccounts", **{"$top": "1"}))
    assert set(gl) - {"__metadata"} >= {"ID", "Code", "Description", "IsBlocked", "VATCode", "Costcenter"}
    assert "DeductibilityPercentages" in gl and "__deferred" in gl["DeductibilityPercentages"]
    assert api.get("financial/Journals").status_code == 200
    for path in (SYNC, "bulk/Financial/GLAccounts"):
        r = api.get(path, **{"$filter": "Timestamp gt 1L"} if path == SYNC else {})
        assert r.status_code == 400 and "$select" in error_text(r)
        r = api.get(path, **{"$select": "*", **({"$filter": "Timestamp gt 1L"} if path == SYNC else {})})
        assert r.status_code == 400 and "$select=*" in error_text(r)
    assert results(api.http.get(f"{api.ex.url}/api/v1/current/Me", timeout=10))  # no division: not affected
    api.ex.settings(select_required_everywhere=True)  # the stricter variant stays available
    assert api.get("financial/Journals").status_code == 400
    assert api.get("financial/Journals", **{"$select": "*"}).status_code == 200


# ------------------------------------------------------------------------------------------------ 7. Accept
def test_without_accept_json_every_answer_is_xml(api: Api) -> None:
    plain = requests.Session()  # requests' default Accept: */*
    plain.headers["Authorization"] = f"Bearer {api.tokens['access_token']}"
    me = plain.get(f"{api.ex.url}/api/v1/current/Me", timeout=10)
    assert me.status_code == 200 and me.headers["content-type"].startswith("application/atom+xml")
    assert etree.fromstring(me.content).tag == "{http://www.w3.org/2005/Atom}feed"
    created = plain.post(api.ex.api_url(MFG, "crm/Accounts"), json={"Name": "Atom Ltd"}, timeout=10)
    assert created.status_code == 201 and created.headers["content-type"].startswith("application/atom+xml")
    assert etree.fromstring(created.content).tag == "{http://www.w3.org/2005/Atom}entry"
    for r in (
        plain.get(api.ex.api_url(MFG, "crm/Nothing"), timeout=10),
        plain.get(api.ex.api_url(MFG, "financial/Journals"), params={"$select": "Nope"}, timeout=10),
        plain.post(api.ex.api_url(MFG, ENTRIES), json=entry(Journal=None), timeout=10),
    ):
        assert r.status_code in (400, 404, 500) and r.headers["content-type"].startswith("application/xml")
        root = etree.fromstring(r.content)
        assert root.tag == f"{M_NS}error" and root.findtext(f"{M_NS}message")
    one = plain.get(
        api.ex.api_url(MFG, f"crm/Accounts(guid'{demo.SUPPLIERS[0].account_id(MFG)}')"), params=SEL, timeout=10
    )
    assert etree.fromstring(one.content).tag == "{http://www.w3.org/2005/Atom}entry"
    api.ex.settings(non_json_response="406")
    assert plain.post(api.ex.api_url(MFG, "crm/Accounts"), json={"Name": "No Ltd"}, timeout=10).status_code == 406
    assert plain.get(f"{api.ex.url}/api/v1/current/Me", timeout=10).status_code == 406
    api.ex.settings(non_json_response="json")
    r = plain.post(api.ex.api_url(MFG, "crm/Accounts"), json={"Name": "Json Ltd"}, timeout=10)
    assert r.status_code == 201 and "ID" in r.json()["d"]
    assert error_text(plain.get(api.ex.api_url(MFG, "crm/Nothing"), timeout=10))


# ------------------------------------------------------------------------------------------------ 10. $filter
def _literal(t: str, v: Any) -> str:
    if v is None:
        return "null"
    if t == GUID:
        return f"guid'{v}'"
    if t == DATETIME:
        from datetime import UTC, datetime

        ms = int(v[6:-2])
        return "datetime'" + datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "'"
    if t == BOOL:
        return "true" if v else "false"
    if t == INT:
        return f"{v}L"
    if t == FLOAT:
        return repr(float(v))
    return "'" + str(v).replace("'", "''") + "'"


def _same(a: Any, b: Any) -> bool:
    return a.lower() == b.lower() if isinstance(a, str) and isinstance(b, str) else a == b


def test_filter_and_orderby_on_every_purchase_order_field(api: Api) -> None:
    everything = ",".join(PO_HEADER)
    rows = results(api.get(POS, **{"$select": everything}))
    target = rows[5]
    for field, t in PO_HEADER.items():
        value = target[field]
        r = api.get(POS, **{"$filter": f"{field} eq {_literal(t, value)}", "$select": f"PurchaseOrderID,{field}"})
        got = results(r)
        assert target["PurchaseOrderID"] in {g["PurchaseOrderID"] for g in got}, field
        assert {g["PurchaseOrderID"] for g in got} == {x["PurchaseOrderID"] for x in rows if _same(x[field], value)}
        ordered = results(api.get(POS, **{"$orderby": f"{field} desc", "$select": f"PurchaseOrderID,{field}"}))
        assert len(ordered) == len(rows), field


def test_sync_filter_on_every_field_agrees_with_the_rows(api: Api) -> None:
    """The sync filter runs on (order, row) pairs before rendering; it must agree with the rendered rows."""
    everything = ",".join(SYNC_PO)
    rows = results(api.get(SYNC, **{"$filter": "Timestamp gt 1L", "$select": everything}))
    header = next(r for r in rows if r["LineNumber"] == 0)
    line = next(r for r in rows if r["LineNumber"] == 2)
    for field, t in SYNC_PO.items():
        for sample in (header, line):
            value = sample[field]
            flt = f"Timestamp gt 1L and {field} eq {_literal(t, value)}"
            got = {g["Timestamp"] for g in results(api.get(SYNC, **{"$filter": flt, "$select": "Timestamp"}))}
            want = {x["Timestamp"] for x in rows if _same(x[field], value)}
            assert got == want and sample["Timestamp"] in got, (field, value)


# ------------------------------------------------------------------------------------------------ 11. types, crashes
def test_bad_types_are_400_with_exacts_body_and_use_no_number(api: Api) -> None:
    gl = demo.GL_ACCOUNTS[2].id(MFG)
    bad = [
        entry(ReportingYear="abc"),
        entry(ReportingPeriod=[11]),
        entry(Journal=60),
        entry(Supplier=123),
        entry(Currency={"code": "GBP"}),
        entry(PurchaseEntryLines=[{"GLAccount": gl, "AmountFC": 10.0, "CostCenter": ["CC100"]}]),
        entry(PurchaseEntryLines=[{"GLAccount": gl, "AmountFC": [10.0]}]),
        entry(PurchaseEntryLines=[{"GLAccount": "7000", "AmountFC": 10.0}]),
    ]
    for body in bad:
        r = api.post(ENTRIES, body)
        assert r.status_code == 400, (body, r.text)
        assert "Cannot convert a primitive value" in error_text(r)
    blocked = api.post(ENTRIES, entry(PurchaseEntryLines=[{"GLAccount": demo.GL_ACCOUNTS[-1].id(MFG), "AmountFC": 1}]))
    assert blocked.status_code == 500
    ok = api.post(ENTRIES, entry(ReportingYear="2026", ReportingPeriod=11), Prefer="return=representation")
    assert ok.status_code == 201, ok.text
    d = ok.json()["d"]
    assert str(d["EntryNumber"]).endswith("0001") and (d["ReportingYear"], d["ReportingPeriod"]) == (2026, 11)
    assert api.post("crm/Accounts", {"Name": "Typed Ltd", "IsSupplier": "yes"}).status_code == 400


def test_unexpected_error_is_an_exact_500_not_a_reset(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.exact import rest

    def boom(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(rest, "dispatch", boom)
    r = api.get("financial/Journals", **SEL)
    assert r.status_code == 500 and "boom" in error_text(r)
    monkeypatch.undo()
    assert api.get("financial/Journals", **SEL).status_code == 200  # same session, connection still fine


# ------------------------------------------------------------------------------------------------ 13. concurrency
def test_a_slow_request_does_not_stall_the_others(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.exact import rest as rest_module

    original = rest_module.handle

    def slow(sb: Any, request: Any, division: str, rest: str, body: bytes) -> Any:
        if rest.startswith("financial/GLAccounts"):
            time.sleep(1.5)  # a 100k-row request, outside the store lock
        return original(sb, request, division, rest, body)

    monkeypatch.setattr(rest_module, "handle", slow)
    done: dict[str, float] = {}

    def call(name: str, path: str) -> None:
        t = time.perf_counter()
        assert api.get(path, **SEL).status_code == 200
        done[name] = time.perf_counter() - t

    first = threading.Thread(target=call, args=("slow", "financial/GLAccounts"))
    first.start()
    time.sleep(0.2)
    call("fast", "financial/Journals")
    first.join()
    assert done["fast"] < 1.0 < done["slow"]


@pytest.mark.slow
def test_100k_sync_filter_yourref_and_orderby_are_quick(api: Api) -> None:
    api.ex.seed(purchase_orders=100_000, seed=42)
    t = time.perf_counter()
    r = api.get(SYNC, **{"$filter": "Timestamp gt 1L and OrderStatus eq 99", "$select": "Timestamp"})
    sync_s = time.perf_counter() - t
    assert results(r) == []
    t = time.perf_counter()
    r = api.get(SYNC, **{"$filter": "Timestamp gt 1L and ItemCode eq 'NOPE'", "$select": "Timestamp"})
    line_s = time.perf_counter() - t
    assert results(r) == []
    ref = f"REQ-111-{1500:06d}"
    t = time.perf_counter()
    (hit,) = results(api.get(POS, **{"$filter": f"YourRef eq '{ref}'", "$select": "PurchaseOrderID,YourRef"}))
    ref_s = time.perf_counter() - t
    assert hit["YourRef"] == ref
    t = time.perf_counter()
    top = results(api.get(POS, **{"$orderby": "OrderNumber desc", "$top": "5", "$select": "OrderNumber"}))
    order_s = time.perf_counter() - t
    assert [x["OrderNumber"] for x in top] == sorted((x["OrderNumber"] for x in top), reverse=True)
    print(f"\nsync filters {sync_s:.2f} / {line_s:.2f} s, YourRef {ref_s:.3f} s, $orderby {order_s:.2f} s")
    assert sync_s < 3.0 and line_s < 5.0 and ref_s < 0.5 and order_s < 3.0


# ------------------------------------------------------------------------------------------------ 14. kill
def test_reusing_an_old_refresh_token_revokes_every_access_token(exact_sandbox: ExactSandboxHandle) -> None:
    first = exact_sandbox.connect()
    exact_sandbox.advance(580)
    second = exact_sandbox.refresh(first["refresh_token"]).json()
    url = exact_sandbox.api_url(MFG, "financial/Journals")
    old, new = exact_sandbox.session(first["access_token"]), exact_sandbox.session(second["access_token"])
    assert old.get(url, params=SEL, timeout=10).status_code == 200  # still inside its 600 s
    assert new.get(url, params=SEL, timeout=10).status_code == 200
    assert exact_sandbox.refresh(first["refresh_token"]).status_code == 401  # old one reused: chain dead
    assert new.get(url, params=SEL, timeout=10).status_code == 401
    assert old.get(url, params=SEL, timeout=10).status_code == 401
    assert exact_sandbox.refresh(second["refresh_token"]).status_code == 401


# ------------------------------------------------------------------------------------------------ 15. lines
def test_lines_only_when_select_names_line_fields(api: Api) -> None:
    po = api.ex.create_po(SupplierCode="1009", PurchaseOrderLines=[{"ItemCode": "CP-M8X25-HT"}])
    flt = f"PurchaseOrderID eq guid'{po['PurchaseOrderID']}'"
    for select in ("PurchaseOrderID,PurchaseOrderLines", "*"):
        (row,) = results(api.get(POS, **{"$filter": flt, "$expand": "PurchaseOrderLines", "$select": select}))
        assert set(row["PurchaseOrderLines"]) == {"__deferred"}, select
    (row,) = results(
        api.get(POS, **{"$filter": flt, "$expand": "PurchaseOrderLines", "$select": "PurchaseOrderLines/ItemCode"})
    )
    assert [x["ItemCode"] for x in row["PurchaseOrderLines"]["results"]] == ["CP-M8X25-HT"]
    api.ex.settings(expand_needs_nav_select=False)
    (row,) = results(
        api.get(
            POS, **{"$filter": flt, "$expand": "PurchaseOrderLines", "$select": "PurchaseOrderID,PurchaseOrderLines"}
        )
    )
    assert row["PurchaseOrderLines"]["results"][0]["ItemCode"] == "CP-M8X25-HT"


# ------------------------------------------------------------------------------------------------ 16. retention
def test_sync_deleted_forgets_rows_after_60_days(exact_sandbox: ExactSandboxHandle) -> None:
    exact_sandbox.settings(rate_limits_enabled=False, error_budget_enabled=False)
    po = exact_sandbox.create_po(SupplierCode="1009", PurchaseOrderLines=[{"ItemCode": "CP-M8X25-HT"}])
    exact_sandbox.delete_po(po["PurchaseOrderID"])

    def deleted_keys() -> set[str]:
        api = Api(exact_sandbox, exact_sandbox.connect())
        q = {"$filter": "Timestamp gt 1L", "$select": "EntityKey,DeletedDate"}
        return {d["EntityKey"] for d in results(api.get("sync/Deleted", **q))}

    assert po["PurchaseOrderID"] in deleted_keys()
    exact_sandbox.advance(59 * 86400)
    assert po["PurchaseOrderID"] in deleted_keys()
    exact_sandbox.advance(2 * 86400)
    assert po["PurchaseOrderID"] not in deleted_keys()
    exact_sandbox.settings(deleted_retention_days=None)
    assert po["PurchaseOrderID"] in deleted_keys()


# ------------------------------------------------------------------------------------------------ 17, 18
def test_account_code_at_most_18_characters(api: Api) -> None:
    r = api.post("crm/Accounts", {"Name": "Long Code Ltd", "Code": "1" * 19})
    assert r.status_code == 500 and "at most 18" in error_text(r)
    r = api.post("crm/Accounts", {"Name": "Max Code Ltd", "Code": "9" * 18}, Prefer="return=representation")
    assert r.status_code == 201 and r.json()["d"]["Code"] == "9" * 18


def test_purchase_entry_currency_must_be_an_iso_code(api: Api) -> None:
    r = api.post(ENTRIES, entry(Currency="XYZ"))
    assert r.status_code == 500 and "Currency XYZ" in error_text(r)
    assert api.post(ENTRIES, entry(Currency="gbp")).status_code == 500  # codes are upper case
    r = api.post(ENTRIES, entry(Currency="EUR", YourRef="INV-EUR"), Prefer="return=representation")
    assert r.status_code == 201 and r.json()["d"]["Currency"] == "EUR"


# ------------------------------------------------------------------------------------------------ 25. bounds
def test_token_tables_are_bounded(exact_sandbox: ExactSandboxHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oauth_mod, "MAX_CODES", 5)
    monkeypatch.setattr(oauth_mod, "MAX_ACCESS_TOKENS", 4)
    monkeypatch.setattr(oauth_mod, "MAX_OLD_REFRESH_PER_CHAIN", 2)
    server = exact_sandbox.sandbox.oauth
    for _ in range(12):
        exact_sandbox.authorize()
    assert len(server.codes) <= 5
    tokens = [exact_sandbox.connect()]
    for _ in range(5):
        exact_sandbox.advance(600)
        r = exact_sandbox.refresh(tokens[-1]["refresh_token"])
        assert r.status_code == 200, r.text
        tokens.append(r.json())
    assert len(server.access) <= 4
    assert all(len(c.old_refresh_tokens) <= 2 for c in server.chains.values())
    # A forgotten refresh token is unknown (400), not "old": the chain lives on.
    assert exact_sandbox.refresh(tokens[0]["refresh_token"]).status_code == 400
    http = exact_sandbox.session(tokens[-1]["access_token"])
    assert http.get(exact_sandbox.api_url(MFG, "financial/Journals"), params=SEL, timeout=10).status_code == 200
    # A remembered old one still kills it.
    assert exact_sandbox.refresh(tokens[-2]["refresh_token"]).status_code == 401
