"""The REST API: Me, divisions, OData paging and options, purchase orders (sync + regular + deleted), accounts,
purchase entries, master data."""

from __future__ import annotations

import re
from typing import Any

from exact_support import MFG, SEL, SVC, Api, error_text, results

from sandbox.common import demo_company as demo

SYNC = "sync/PurchaseOrder/PurchaseOrders"
POS = "purchaseorder/PurchaseOrders"
ENTRIES = "purchaseentry/PurchaseEntries"


# ------------------------------------------------------------------------------------------------ user, divisions
def test_me(api: Api) -> None:
    r = api.http.get(f"{api.ex.url}/api/v1/current/Me", params={"$select": "CurrentDivision,UserID,FullName"})
    (me,) = results(r)
    assert me["CurrentDivision"] == MFG and me["FullName"] == demo.DEMO_USER["FullName"]
    assert set(me) == {"__metadata", "CurrentDivision", "UserID", "FullName"}
    assert not any(h.lower().startswith("x-ratelimit") for h in r.headers)
    # CurrentDivision follows what the person last opened.
    api.ex.settings(current_division=SVC)
    assert results(api.http.get(f"{api.ex.url}/api/v1/current/Me"))[0]["CurrentDivision"] == SVC


def test_divisions_and_access(api: Api) -> None:
    codes = {d["Code"] for d in results(api.get("system/Divisions", **{"$select": "Code,Description"}))}
    assert codes == {MFG, SVC}
    assert {d["Code"] for d in results(api.get("system/AllDivisions", **{"$select": "Code"}))} == {MFG, SVC}
    r = api.get("financial/Journals", division=333333, **SEL)
    assert r.status_code == 403 and r.headers["Reason"] == "NoDivisionAccess"
    api.ex.settings(blocked_divisions=[SVC])
    r = api.get("financial/Journals", division=SVC, **SEL)
    assert r.status_code == 403 and r.headers["Reason"] == "DivisionBlocked"


def test_unknown_endpoint_and_costcenters_casing(api: Api) -> None:
    assert api.get("hrm/CostCenters").status_code == 404
    rows = results(api.get("hrm/Costcenters", **{"$select": "Code,Description,Active"}))
    assert {r["Code"]: r["Active"] for r in rows}["CC900"] is False
    assert api.get("crm/Nothing").status_code == 404


# ------------------------------------------------------------------------------------------------ OData basics
def test_envelope_metadata_and_dates(api: Api) -> None:
    rows = results(api.get("financial/GLAccounts", **{"$select": "ID,Code,IsBlocked,Created"}))
    assert {r["Code"] for r in rows} >= {"7000", "7999", "1600", "2200"}
    first = rows[0]
    assert first["__metadata"]["type"] == "Exact.Web.Api.Models.GLAccount"
    assert first["__metadata"]["uri"].endswith(f"financial/GLAccounts(guid'{first['ID']}')")
    assert re.fullmatch(r"/Date\(\d+\)/", first["Created"])
    assert next(r for r in rows if r["Code"] == "7999")["IsBlocked"] is True


def test_select_errors(api: Api) -> None:
    assert api.get("financial/GLAccounts", **{"$select": "Code,Nope"}).status_code == 400
    assert "$select" in error_text(api.get(SYNC, **{"$filter": "Timestamp gt 1L"}))
    assert api.get(SYNC, **{"$filter": "Timestamp gt 1L", "$select": "*"}).status_code == 400
    assert api.get("bulk/Financial/GLAccounts").status_code == 400
    assert api.get("financial/GLAccounts", **{"$skip": "10"}).status_code == 400
    assert api.get("financial/GLAccounts", **{"$filter": "Code eq"}).status_code == 400


def test_bulk_gl_accounts(api: Api) -> None:
    rows = results(api.get("bulk/Financial/GLAccounts", **{"$select": "ID,Code,Description"}))
    assert len(rows) == len(demo.GL_ACCOUNTS)


def test_accept_header_matters(api: Api) -> None:
    r = api.http.get(
        api.ex.api_url(MFG, "vat/VATCodes"), params={"$select": "Code,Percentage"}, headers={"Accept": "*/*"}
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    assert r.text.startswith("<?xml")
    api.ex.settings(non_json_response="406")
    r = api.http.get(api.ex.api_url(MFG, "vat/VATCodes"), headers={"Accept": "application/xml"})
    assert r.status_code == 406


def test_vat_codes_and_journals(api: Api) -> None:
    vat = {
        r["Code"]: r for r in results(api.get("vat/VATCodes", **{"$select": "Code,Percentage,IsBlocked,Description"}))
    }
    assert vat["1"]["Percentage"] == 0.2 and vat["9"]["IsBlocked"] is True
    journals = {r["Code"]: r["Type"] for r in results(api.get("financial/Journals", **{"$select": "Code,Type"}))}
    assert journals == {"60": 22, "61": 22, "70": 20, "90": 90}


# ------------------------------------------------------------------------------------------------ accounts
def test_accounts_need_a_filter(api: Api) -> None:
    r = api.get("crm/Accounts", **{"$select": "ID,Code,Name"})
    assert r.status_code == 400 and error_text(r) == "A required filter is missing."
    r = api.get("crm/Accounts", **{"$select": "ID", "$filter": "Modified ge datetime'2020-01-01T00:00:00'"})
    assert r.status_code == 400
    rows = results(api.get("crm/Accounts", **{"$filter": "IsSupplier eq true", "$select": "ID,Code,Name"}))
    assert len(rows) == len(demo.suppliers_in(MFG))


def test_account_code_is_padded(api: Api) -> None:
    s = demo.SUPPLIERS[0]
    rows = results(api.get("crm/Accounts", **{"$filter": f"Code eq '{s.code}'", "$select": "ID,Code"}))
    assert rows == []  # the unpadded code finds nothing
    padded = s.code.rjust(18)
    (row,) = results(api.get("crm/Accounts", **{"$filter": f"Code eq '{padded}'", "$select": "ID,Code,Name"}))
    assert row["Code"] == padded and len(row["Code"]) == 18 and row["ID"] == s.account_id(MFG)
    assert row["Name"] == s.name
    # Exact keeps one database per division: another GUID there.
    (other,) = results(api.get("crm/Accounts", division=SVC, **{"$filter": f"Code eq '{padded}'", "$select": "ID"}))
    assert other["ID"] != row["ID"]


def test_account_post(api: Api) -> None:
    r = api.post("crm/Accounts", {"IsSupplier": True})
    assert r.status_code == 500 and error_text(r) == "Mandatory: Name"
    r = api.post("crm/Accounts", {"Name": "X", "InvoiceDate": "2026-01-01"})
    assert r.status_code == 400 and "InvoiceDate" in error_text(r)
    r = api.post("crm/Accounts", {"Name": "New Supplier Ltd", "IsSupplier": True, "VATNumber": "GB999999973"})
    assert r.status_code == 201
    minimal = r.json()["d"]
    assert set(minimal) == {"__metadata", "ID"}
    r = api.post(
        "crm/Accounts",
        {"Name": "Second Supplier Ltd", "IsSupplier": True, "Code": "7777"},
        Prefer="return=representation",
    )
    assert r.status_code == 201
    full = r.json()["d"]
    assert full["Code"] == "              7777" and full["Name"] == "Second Supplier Ltd" and full["IsSupplier"]
    found = results(api.get("crm/Accounts", **{"$filter": "VATNumber eq 'GB999999973'", "$select": "ID,Code"}))
    assert found[0]["ID"] == minimal["ID"] and len(found[0]["Code"]) == 18
    r = api.post("crm/Accounts", {"Name": "Dup", "Code": "7777"})
    assert r.status_code == 500


# ------------------------------------------------------------------------------------------------ purchase orders
def _sync_all(api: Api, since: int, select: str = "Timestamp,PurchaseOrderID,LineNumber") -> list[dict[str, Any]]:
    r = api.get(SYNC, **{"$filter": f"Timestamp gt {since}L", "$select": select})
    rows = []
    while True:
        d = r.json()["d"]
        rows.extend(d["results"])
        if "__next" not in d:
            return rows
        r = api.follow(d["__next"])


def test_sync_paging_and_timestamp_semantics(api: Api) -> None:
    api.ex.seed(purchase_orders=400, seed=3)  # ~1,200 more rows: more than one page
    r = api.get(SYNC, **{"$filter": "Timestamp gt 1L", "$select": "Timestamp,PurchaseOrderID,LineNumber,OrderNumber"})
    d = r.json()["d"]
    assert len(d["results"]) == 1000 and "$skiptoken=" in d["__next"]
    assert d["__next"].startswith(api.ex.url)
    rows = _sync_all(api, 1)
    stamps = [row["Timestamp"] for row in rows]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    headers = [row for row in rows if row["LineNumber"] == 0]
    assert len(headers) == 400 + 38
    # An order's rows sit together: header (LineNumber 0) then lines 1..n.
    first = rows[0]
    group = [row for row in rows if row["PurchaseOrderID"] == first["PurchaseOrderID"]]
    assert [g["LineNumber"] for g in group] == list(range(len(group)))
    # Change a line: every row of that order gets a new, higher Timestamp; nothing else moves.
    high = max(stamps)
    api.ex.modify_po(first["PurchaseOrderID"], LineUpdates=[{"LineNumber": 1, "QuantityInPurchaseUnits": 7}])
    changed = _sync_all(api, high, "Timestamp,PurchaseOrderID,LineNumber,QuantityInPurchaseUnits")
    assert {c["PurchaseOrderID"] for c in changed} == {first["PurchaseOrderID"]}
    assert [c["LineNumber"] for c in changed] == list(range(len(group)))
    assert changed[1]["QuantityInPurchaseUnits"] == 7.0
    assert _sync_all(api, max(c["Timestamp"] for c in changed)) == []


def test_regular_po_endpoint_pages_of_60(api: Api) -> None:
    api.ex.seed(purchase_orders=100, seed=5)
    r = api.get(POS, **{"$select": "PurchaseOrderID,OrderNumber"})
    d = r.json()["d"]
    assert len(d["results"]) == 60 and "$skiptoken=guid'" in d["__next"]
    seen = [x["PurchaseOrderID"] for x in d["results"]]
    while "__next" in d:
        d = api.follow(d["__next"]).json()["d"]
        seen.extend(x["PurchaseOrderID"] for x in d["results"])
    assert len(seen) == len(set(seen)) == 138
    assert seen == sorted(seen)  # key order
    # Without $expand the lines are deferred.
    (po,) = results(api.get(POS, **{"$top": "1", "$select": "PurchaseOrderID,PurchaseOrderLines"}))
    assert po["PurchaseOrderLines"] == {"__deferred": {"uri": po["__metadata"]["uri"] + "/PurchaseOrderLines"}}


def test_po_filters(api: Api) -> None:
    rows = results(api.get(POS, **{"$select": "PurchaseOrderID,OrderNumber,Supplier,Modified,OrderStatus"}))
    target = rows[3]
    (one,) = results(
        api.get(POS, **{"$filter": f"OrderNumber eq {target['OrderNumber']}", "$select": "PurchaseOrderID"})
    )
    assert one["PurchaseOrderID"] == target["PurchaseOrderID"]
    by_id = api.get(
        POS, **{"$filter": f"PurchaseOrderID eq guid'{target['PurchaseOrderID']}'", "$select": "PurchaseOrderID"}
    )
    assert len(results(by_id)) == 1
    by_supplier = results(api.get(POS, **{"$filter": f"Supplier eq guid'{target['Supplier']}'", "$select": "Supplier"}))
    assert by_supplier and all(x["Supplier"] == target["Supplier"] for x in by_supplier)
    ms = int(target["Modified"][6:-2])
    window = results(
        api.get(
            POS,
            **{
                "$filter": f"Modified ge datetime'{_iso(ms)}' and Modified lt datetime'{_iso(ms + 1000)}'",
                "$select": "PurchaseOrderID,Modified",
            },
        )
    )
    assert target["PurchaseOrderID"] in {w["PurchaseOrderID"] for w in window}
    cancelled = results(api.get(POS, **{"$filter": "OrderStatus eq 40", "$select": "OrderStatus"}))
    assert cancelled and {c["OrderStatus"] for c in cancelled} == {40}


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def test_expanded_lines_need_select_and_page_at_60(api: Api) -> None:
    lines = [{"ItemCode": "CP-M8X25-HT", "QuantityInPurchaseUnits": n + 1, "UnitPrice": 0.11} for n in range(70)]
    po = api.ex.create_po(SupplierCode="1009", PurchaseOrderLines=lines, Description="Big fastener order")
    key = f"guid'{po['PurchaseOrderID']}'"
    flt = f"PurchaseOrderID eq {key}"
    # $select names the lines -> they come back, 60 of them, with their own __next.
    r = api.get(
        POS,
        **{
            "$filter": flt,
            "$expand": "PurchaseOrderLines",
            "$select": "PurchaseOrderID,Description,PurchaseOrderLines/LineNumber,PurchaseOrderLines/ItemCode",
        },
    )
    (row,) = results(r)
    block = row["PurchaseOrderLines"]
    assert len(block["results"]) == 60 and set(block["results"][0]) == {"__metadata", "LineNumber", "ItemCode"}
    rest = api.follow(block["__next"]).json()["d"]
    assert [x["LineNumber"] for x in rest["results"]] == list(range(61, 71)) and "__next" not in rest
    # Expanded but not selected: no lines.
    (row,) = results(api.get(POS, **{"$filter": flt, "$expand": "PurchaseOrderLines", "$select": "PurchaseOrderID"}))
    assert "PurchaseOrderLines" not in row
    # Selecting line fields without $expand is an error.
    assert api.get(POS, **{"$filter": flt, "$select": "PurchaseOrderID,PurchaseOrderLines/ItemCode"}).status_code == 400
    # Single entity by key.
    one = api.get(f"{POS}({key})", **{"$select": "PurchaseOrderID,OrderNumber"})
    assert one.json()["d"]["OrderNumber"] == po["OrderNumber"]


def test_sync_deleted(api: Api) -> None:
    deleted = results(
        api.get("sync/Deleted", **{"$filter": "Timestamp gt 1L", "$select": "Timestamp,EntityKey,EntityType"})
    )
    assert {d["EntityType"] for d in deleted} == {2, 22}
    high = max(d["Timestamp"] for d in deleted)
    (po,) = results(api.get(POS, **{"$top": "1", "$select": "PurchaseOrderID"}))
    api.ex.delete_po(po["PurchaseOrderID"])
    new = results(
        api.get(
            "sync/Deleted",
            **{"$filter": f"Timestamp gt {high}L and EntityType eq 22", "$select": "Timestamp,EntityKey,DeletedDate"},
        )
    )
    assert [n["EntityKey"] for n in new] == [po["PurchaseOrderID"]]
    assert api.get(f"{POS}(guid'{po['PurchaseOrderID']}')", **SEL).status_code == 404


def test_cancel_bumps_timestamp(api: Api) -> None:
    rows = _sync_all(api, 1, "Timestamp,PurchaseOrderID,LineNumber,OrderStatus")
    high = max(r["Timestamp"] for r in rows)
    po_id = next(r["PurchaseOrderID"] for r in rows if r["OrderStatus"] == 10)
    api.ex.cancel_po(po_id)
    changed = _sync_all(api, high, "Timestamp,PurchaseOrderID,LineNumber,OrderStatus")
    assert changed and {c["OrderStatus"] for c in changed} == {40}


# ------------------------------------------------------------------------------------------------ purchase entries
def _entry(**over: Any) -> dict[str, Any]:
    s = demo.SUPPLIERS[0]
    body: dict[str, Any] = {
        "Journal": "60",
        "Supplier": s.account_id(MFG),
        "EntryDate": "2026-11-20T00:00:00",
        "YourRef": "INV-1001",
        "Description": "Steel plate",
        "PurchaseEntryLines": [
            {"GLAccount": demo.GL_ACCOUNTS[2].id(MFG), "AmountFC": 100.0, "VATCode": "1", "CostCenter": "CC100"},
            {"GLAccount": demo.GL_ACCOUNTS[3].id(MFG), "AmountFC": 50.0, "CostCenter": "CC200", "CostUnit": "CU01"},
        ],
    }
    body.update(over)
    return body


def test_purchase_entry_created(api: Api) -> None:
    r = api.post(ENTRIES, _entry(), Prefer="return=representation")
    assert r.status_code == 201
    d = r.json()["d"]
    assert d["Status"] == 20 and d["Type"] == 30 and d["Journal"] == "60"
    assert d["AmountDC"] == 180.0 and d["VATAmountFC"] == 30.0  # net 150 + 20 % VAT (GL default for line 2)
    assert re.fullmatch(r"\d{8}", str(d["EntryNumber"]))
    assert len(d["PurchaseEntryLines"]["results"]) == 2
    r2 = api.post(ENTRIES, _entry(YourRef="INV-1002"))
    assert r2.status_code == 201 and set(r2.json()["d"]) == {"__metadata", "EntryID"}
    numbers = sorted(e["EntryNumber"] for e in api.ex.purchase_entries(MFG))
    assert numbers[1] == numbers[0] + 1  # sequential per journal


def test_credit_note_is_type_31(api: Api) -> None:
    lines = [{"GLAccount": demo.GL_ACCOUNTS[2].id(MFG), "AmountFC": -40.0, "VATCode": "1"}]
    r = api.post(ENTRIES, _entry(YourRef="CN-1", PurchaseEntryLines=lines), Prefer="return=representation")
    assert r.status_code == 201 and r.json()["d"]["Type"] == 31 and r.json()["d"]["AmountDC"] == -48.0


def test_purchase_entry_lookup_by_yourref_and_supplier(api: Api) -> None:
    created = api.post(ENTRIES, _entry(YourRef="INV-77")).json()["d"]
    api.post(ENTRIES, _entry(YourRef="INV-78"))
    supplier = demo.SUPPLIERS[0].account_id(MFG)
    flt = f"YourRef eq 'INV-77' and Supplier eq guid'{supplier}'"
    (hit,) = results(api.get(ENTRIES, **{"$filter": flt, "$select": "EntryID,EntryNumber,YourRef,AmountDC"}))
    assert hit["EntryID"] == created["EntryID"]
    other = demo.SUPPLIERS[1].account_id(MFG)
    assert (
        results(
            api.get(ENTRIES, **{"$filter": f"YourRef eq 'INV-77' and Supplier eq guid'{other}'", "$select": "EntryID"})
        )
        == []
    )


def test_purchase_entry_validation_errors_are_500(api: Api) -> None:
    mfg_gl = {g.code: g.id(MFG) for g in demo.GL_ACCOUNTS}
    gl7000 = mfg_gl["7000"]
    blocked = next(s for s in demo.SUPPLIERS if s.blocked and MFG in s.divisions)
    cases = [
        ({"Journal": None}, "Mandatory: Diary"),
        ({"Journal": "99"}, "Invalid reference: Journal"),
        ({"Journal": "70"}, "not a purchase journal"),
        ({"Supplier": None}, "Mandatory: Relationship"),
        ({"Supplier": "00000000-0000-0000-0000-000000000001"}, "Invalid reference: Relationship"),
        ({"Supplier": blocked.account_id(MFG)}, "Relationship is blocked"),
        ({"EntryDate": None}, "Mandatory: Entry date"),
        ({"PurchaseEntryLines": []}, "Mandatory: Lines"),
        ({"PurchaseEntryLines": [{"AmountFC": 1}]}, "Mandatory: G/L account"),
        ({"PurchaseEntryLines": [{"GLAccount": mfg_gl["7999"], "AmountFC": 1}]}, "G/L account is blocked"),
        ({"PurchaseEntryLines": [{"GLAccount": demo.GL_ACCOUNTS[2].id(SVC), "AmountFC": 1}]}, "Invalid reference: G/L"),
        ({"PurchaseEntryLines": [{"GLAccount": mfg_gl["7000"]}]}, "Mandatory: Amount"),
        ({"PurchaseEntryLines": [{"GLAccount": mfg_gl["7000"], "AmountFC": "lots"}]}, "Invalid value: Amount"),
        ({"PurchaseEntryLines": [{"GLAccount": gl7000, "AmountFC": 1, "CostCenter": "CC900"}]}, "Cost center"),
        ({"PurchaseEntryLines": [{"GLAccount": gl7000, "AmountFC": 1, "CostUnit": "CU77"}]}, "Cost unit"),
        ({"PurchaseEntryLines": [{"GLAccount": gl7000, "AmountFC": 1, "VATCode": "9"}]}, "VAT code is blocked"),
        (
            {"PurchaseEntryLines": [{"GLAccount": gl7000, "AmountFC": 1, "VATCode": "X"}]},
            "Invalid reference: VAT",
        ),
    ]
    for override, message in cases:
        r = api.post(ENTRIES, _entry(**override))
        assert r.status_code == 500, (override, r.status_code, r.text)
        assert message in error_text(r), (override, error_text(r))
    # Several problems come back together, one per line.
    r = api.post(ENTRIES, _entry(Journal=None, Supplier=None))
    assert error_text(r) == "Mandatory: Diary\r\nMandatory: Relationship"
    assert api.ex.purchase_entries() == []


def test_purchase_entry_request_stream_errors_are_400(api: Api) -> None:
    r = api.post(ENTRIES, _entry(InvoiceDate="2026-11-20"))  # there is no InvoiceDate
    assert r.status_code == 400 and "InvoiceDate" in error_text(r)
    assert api.post(ENTRIES, _entry(Journal=60)).status_code == 400  # a number, not the code string
    assert api.post(ENTRIES, _entry(Supplier="1001")).status_code == 400  # not a GUID


def test_purchase_entry_switches(api: Api) -> None:
    api.ex.settings(validation_error_status=400, language="nl", closed_before="2026-01-01")
    r = api.post(ENTRIES, _entry(Journal=None, EntryDate="2025-12-31T00:00:00"))
    assert r.status_code == 400
    assert error_text(r) == "Verplicht: Dagboek\r\nPeriode is afgesloten: 2025/12"


def test_bare_list_variant(api: Api) -> None:
    api.ex.settings(bare_list=True)
    r = api.get("vat/VATCodes", **{"$select": "Code"})
    assert isinstance(r.json()["d"], list)


# ------------------------------------------------------------------------------------------------ more options
def test_top_orderby_and_put(api: Api) -> None:
    api.ex.seed(purchase_orders=50)
    d = api.get(POS, **{"$select": "PurchaseOrderID", "$top": "70"}).json()["d"]
    assert len(d["results"]) == 60 and "$top=10" in d["__next"]
    assert len(api.follow(d["__next"]).json()["d"]["results"]) == 10
    d = api.get(POS, **{"$select": "PurchaseOrderID", "$top": "5"}).json()["d"]
    assert len(d["results"]) == 5 and "__next" not in d
    rows = results(api.get("financial/GLAccounts", **{"$select": "Code", "$orderby": "Code desc"}))
    assert [r["Code"] for r in rows] == sorted((g.code for g in demo.GL_ACCOUNTS), reverse=True)
    s = demo.SUPPLIERS[3]
    key = f"crm/Accounts(guid'{s.account_id(MFG)}')"
    r = api.http.put(api.ex.api_url(MFG, key), json={"Email": "new@example.co.uk"}, timeout=10)
    assert r.status_code == 204 and r.content == b""
    assert api.get(key, **{"$select": "Email"}).json()["d"]["Email"] == "new@example.co.uk"


def test_clock_speed_via_admin(api: Api) -> None:
    before = api.ex.clock()["time"]
    api.ex.clock(speed=3600)  # an hour a second
    import time

    time.sleep(0.3)
    assert api.ex.clock()["time"] - before > 900
    # Time flew: the access token (600 s) has expired.
    assert api.get("financial/Journals", **SEL).status_code == 401
