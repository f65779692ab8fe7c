"""The Exact sandbox's schema comes from Exact's published entity reference (include/sandbox/exact/reference/):
every property it lists can be selected, nothing it lacks is accepted, and what the company has no data for is
null, never missing."""

from __future__ import annotations

import pytest
from exact_support import MFG, Api, error_text, results

from sandbox.common import demo_company as demo
from sandbox.exact import reference
from sandbox.exact.app import ExactSandbox

SYNC = "sync/PurchaseOrder/PurchaseOrders"

# Every endpoint the connector uses, with the filter a GET of it needs (if any).
CONNECTOR_ENDPOINTS = {
    "sync/PurchaseOrder/PurchaseOrders": "Timestamp gt 1L",
    "purchaseorder/PurchaseOrders": None,
    "purchaseorder/PurchaseOrderLines": "PurchaseOrderID eq guid'{po}'",
    "crm/Accounts": "IsSupplier eq true",
    "purchaseentry/PurchaseEntries": None,
    "purchaseentry/PurchaseEntryLines": None,
    "financial/GLAccounts": None,
    "bulk/Financial/GLAccounts": None,
    "financial/Journals": None,
    "hrm/Costcenters": None,
    "hrm/Costunits": None,
    "vat/VATCodes": None,
    "system/Divisions": None,
    "hrm/Divisions": None,
    "sync/Deleted": "Timestamp gt 1L",
    "logistics/Items": None,
}


def _first_po(api: Api) -> str:
    (row,) = results(api.get("purchaseorder/PurchaseOrders", **{"$top": "1", "$select": "PurchaseOrderID"}))
    return row["PurchaseOrderID"]


@pytest.mark.parametrize("endpoint", sorted(CONNECTOR_ENDPOINTS))
def test_every_reference_property_can_be_selected(api: Api, endpoint: str) -> None:
    ep = reference.endpoint(endpoint)
    params = {"$select": ",".join(ep.plain)}
    if endpoint.startswith("purchaseentry/"):  # the demo company starts with no purchase entries: book one
        body = {"Journal": "60", "Supplier": demo.SUPPLIERS[0].account_id(MFG), "EntryDate": "2026-11-20T00:00:00",
                "PurchaseEntryLines": [{"GLAccount": demo.GL_ACCOUNTS[2].id(MFG), "AmountFC": 10.0}]}  # fmt: skip
        assert api.post("purchaseentry/PurchaseEntries", body).status_code == 201
    flt = CONNECTOR_ENDPOINTS[endpoint]
    if flt:
        params["$filter"] = flt.format(po=_first_po(api)) if "{po}" in flt else flt
    r = api.get(endpoint, **params)
    assert r.status_code == 200, (endpoint, error_text(r))
    rows = results(r)
    assert rows, endpoint
    for row in rows:
        assert set(row) - {"__metadata"} == set(ep.plain), endpoint  # null where there is no data, never missing


def test_current_me_has_every_reference_property(api: Api) -> None:
    me = api.http.get(f"{api.ex.url}/api/v1/current/Me", timeout=10).json()["d"]["results"][0]
    assert set(me) - {"__metadata"} == set(reference.endpoint("current/Me").plain)
    assert me["CurrentDivision"] == MFG and me["UserID"] == demo.DEMO_USER["UserID"]


def test_line_count_exists_on_purchase_orders_but_not_on_the_sync_endpoint(api: Api) -> None:
    r = api.get(SYNC, **{"$filter": "Timestamp gt 1L", "$select": "Timestamp,PurchaseOrderLineCount"})
    assert r.status_code == 400
    assert error_text(r) == (
        "No property 'PurchaseOrderLineCount' exists in type "
        "'Exact.Web.Api.Models.Sync.PurchaseOrder.PurchaseOrder' at position 10."
    )
    rows = results(api.get("purchaseorder/PurchaseOrders", **{"$select": "PurchaseOrderID,PurchaseOrderLineCount"}))
    assert rows and all(isinstance(r["PurchaseOrderLineCount"], int) for r in rows)


@pytest.mark.parametrize("option", ["$select", "$filter", "$orderby"], ids=["select", "filter", "orderby"])
def test_an_invented_property_is_refused_in_every_query_option(api: Api, option: str) -> None:
    value = {"$select": "Code,Invented", "$filter": "Invented eq 1", "$orderby": "Invented"}[option]
    params = {"$select": "Code", option: value} if option != "$select" else {option: value}
    r = api.get("financial/GLAccounts", **params)
    assert r.status_code == 400
    assert "No property 'Invented' exists in type 'Exact.Web.Api.Models.GLAccount'" in error_text(r)


def test_an_invented_property_in_a_body_is_refused(api: Api) -> None:
    r = api.post("crm/Accounts", {"Name": "Invented Ltd", "IsSupplier": True, "Invented": 1})
    assert r.status_code == 400 and "'Invented'" in error_text(r) and "Exact.Web.Api.Models.Account" in error_text(r)
    line = {"GLAccount": demo.GL_ACCOUNTS[2].id(MFG), "AmountFC": 1.0, "Invented": 2}
    body = {"Journal": "60", "Supplier": demo.SUPPLIERS[0].account_id(MFG), "EntryDate": "2026-11-20T00:00:00",
            "PurchaseEntryLines": [line]}  # fmt: skip
    r = api.post("purchaseentry/PurchaseEntries", body)
    assert r.status_code == 400 and "PurchaseEntryLine" in error_text(r)


def test_sync_rows_carry_guids_in_cost_center_and_codes_in_the_code_fields(api: Api) -> None:
    select = "Timestamp,LineNumber,PurchaseOrderID,CostCenter,CostCenterCode,CostUnit,CostUnitCode,Item,ItemCode"
    rows = results(api.get(SYNC, **{"$filter": "Timestamp gt 1L", "$select": select}))
    lines = [r for r in rows if r["LineNumber"] > 0 and r["CostCenterCode"]]
    assert lines
    codes = {c.code: c for c in demo.COST_CENTERS}
    for r in lines:
        assert r["CostCenterCode"] in codes
        assert r["CostCenter"] == demo.guid("costcenter", MFG, r["CostCenterCode"])
    expanded = results(
        api.get(
            "purchaseorder/PurchaseOrders",
            **{
                "$filter": f"PurchaseOrderID eq guid'{lines[0]['PurchaseOrderID']}'",
                "$expand": "PurchaseOrderLines",
                "$select": "PurchaseOrderID,PurchaseOrderLines/LineNumber,PurchaseOrderLines/CostCenter",
            },
        )
    )
    by_line = {ln["LineNumber"]: ln["CostCenter"] for ln in expanded[0]["PurchaseOrderLines"]["results"]}
    assert by_line[lines[0]["LineNumber"]] == lines[0]["CostCenterCode"]  # a code on the lines endpoint


def test_methods_come_from_the_reference(api: Api) -> None:
    r = api.http.delete(api.ex.api_url(MFG, f"{SYNC}(1L)"), timeout=10)
    assert r.status_code == 405  # the reference lists only GET for sync endpoints
    gl = results(api.get("financial/GLAccounts", **{"$top": "1", "$select": "ID"}))[0]["ID"]
    r = api.http.put(api.ex.api_url(MFG, f"financial/GLAccounts(guid'{gl}')"), json={"Description": "x"}, timeout=10)
    assert r.status_code == 501 and "does not implement PUT" in error_text(r)  # Exact has it; the sandbox says so


def test_every_served_endpoint_is_in_the_reference_and_rows_hold_only_its_properties() -> None:
    sandbox = ExactSandbox()
    for name, spec in sandbox.sets.items():
        assert reference.find(name) is not None, name
        assert set(spec.schema) == set(reference.endpoint(name).plain)
    div = sandbox.store.divisions[MFG]
    from sandbox.exact.entities import po_header_row, po_line_row, sync_po_row

    po = next(iter(div.purchase_orders))
    assert set(po_header_row(div, po)) <= set(sandbox.sets["purchaseorder/PurchaseOrders"].schema)
    assert set(po_line_row(div, po, po.lines[0])) <= set(sandbox.sets["purchaseorder/PurchaseOrderLines"].schema)
    for i in range(po.row_count):
        assert set(sync_po_row(div, po, i)) <= set(sandbox.sets[SYNC].schema)


# ------------------------------------------------------------------------------ gaps found by published clients
def test_hrm_divisions_lists_the_granted_divisions(api: Api) -> None:
    rows = results(api.get("hrm/Divisions", **{"$select": "Code,Description,HID,Main"}))
    assert {r["Code"] for r in rows} == {111111, 222222}
    assert sum(1 for r in rows if r["Main"]) == 1


@pytest.mark.parametrize(
    "flt", ["Blocked eq false", "City eq 'Shrewsbury'", "Country eq 'GB'", "Status eq 'C'", "Type eq 'A'"]
)
def test_accounts_accept_exacts_wider_filter_fields(api: Api, flt: str) -> None:
    r = api.get("crm/Accounts", **{"$filter": flt, "$select": "ID"})
    assert r.status_code == 200, error_text(r)


def test_accounts_filter_on_modified_is_a_switch(api: Api) -> None:
    params = {"$filter": "Modified ge datetime'2020-01-01T00:00:00'", "$select": "ID"}
    assert api.get("crm/Accounts", **params).status_code == 400
    api.ex.settings(accounts_filter_on_modified=True)
    assert api.get("crm/Accounts", **params).status_code == 200


def test_account_post_put_and_delete_take_reference_properties(api: Api) -> None:
    body = {"Name": "Ref Ltd", "IsSupplier": True, "PaymentConditionSales": "30", "InvoiceAttachmentType": 1}
    r = api.post("crm/Accounts", body, Prefer="return=representation")
    assert r.status_code == 201, error_text(r)
    created = r.json()["d"]
    assert created["PaymentConditionSales"] == "30" and created["InvoiceAttachmentType"] == 1
    url = api.ex.api_url(MFG, f"crm/Accounts(guid'{created['ID']}')")
    assert api.http.put(url, json={"City": "Ludlow"}, timeout=10).status_code == 204
    (row,) = results(api.get("crm/Accounts", **{"$filter": f"ID eq guid'{created['ID']}'", "$select": "City"}))
    assert row["City"] == "Ludlow"
    assert api.http.delete(url, timeout=10).status_code == 204
    assert results(api.get("crm/Accounts", **{"$filter": f"ID eq guid'{created['ID']}'", "$select": "ID"})) == []
    gone = results(
        api.get("sync/Deleted", **{"$filter": "Timestamp gt 1L and EntityType eq 2", "$select": "EntityKey"})
    )
    assert created["ID"] in {g["EntityKey"] for g in gone}


def test_read_only_properties_are_ignored_or_refused_by_switch(api: Api) -> None:
    body = {"Name": "RO Ltd", "Created": "2020-01-01T00:00:00"}  # Created: read-only in the reference's hints
    r = api.post("crm/Accounts", body, Prefer="return=representation")
    assert r.status_code == 201 and r.json()["d"]["Created"] != "/Date(1577836800000)/"
    api.ex.settings(readonly_property_on_write="refuse")
    r = api.post("crm/Accounts", {**body, "Name": "RO2 Ltd"})
    assert r.status_code == 400 and "read-only" in error_text(r)
