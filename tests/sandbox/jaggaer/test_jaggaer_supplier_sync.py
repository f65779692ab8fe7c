"""TSMSupplierXMLImport upserts keyed on ERPNumber, its status variants, and the companyprofiles look-up."""

from __future__ import annotations

import pytest
import requests
from jaggaer_support import PO_IMPORT, PROFILES, SUPPLIER_IMPORT, JaggaerHandle, po_xml, supplier_el, supplier_xml
from lxml import etree


def sync_status(r: requests.Response) -> tuple[int, str, etree._Element]:
    doc = etree.fromstring(r.content)
    assert doc.tag == "SupplierSyncMessage"
    code = int(doc.findtext("SupplierResponseMessage/Status/StatusCode"))
    assert r.status_code == code  # HTTP mirrors StatusCode
    return code, doc.findtext("SupplierResponseMessage/Status/StatusText"), doc


def profile(h: JaggaerHandle, token: str, flt: str) -> list[dict]:
    body = h.get(PROFILES, token, flt=flt).json()
    assert body["returnCode"] == 0
    return [c["returnCompanyInfo"] for c in body["returnCompanyData"]]


def test_upsert_many(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    suppliers = [
        supplier_el(f"80{n:02d}", f"Batch Supplier {n} Ltd", VatIdentificationNumber=f"GB1234567{n:02d}")
        for n in range(25)
    ]
    suppliers.append(supplier_el("1001", "Brammer Steel (renamed) Ltd", TaxIdentificationNumber="01234567"))
    r = jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, supplier_xml(suppliers))
    code, text, _ = sync_status(r)
    assert code == 200
    assert text.startswith("Success (Counts: Total documents attempted=26, Total documents completed=26.")
    received = jaggaer_sandbox.state()["tenants"]["demo"]["suppliers_received"]
    assert [s["action"] for s in received].count("created") == 25
    assert [s["action"] for s in received].count("updated") == 1
    # re-sending the same message is an idempotent upsert: nothing new is created
    code, text, _ = sync_status(jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, supplier_xml(suppliers)))
    assert code == 200
    state = jaggaer_sandbox.state()["tenants"]["demo"]
    assert len(state["suppliers_via_xml"]) == 25
    assert state["counts"]["suppliers"] == 66 + 25
    # visible to the company-profile look-up
    [info] = profile(jaggaer_sandbox, demo_token, "extCode==8007")
    assert info["companyName"] == "Batch Supplier 7 Ltd"
    assert info["euVat"] == "GB123456707"
    assert info["bravoId"]
    [info] = profile(jaggaer_sandbox, demo_token, "extCode==1001")
    assert info["companyName"] == "Brammer Steel (renamed) Ltd"
    assert info["fiscalCode"] == "01234567"


def test_sync_fields_are_kept(jaggaer_sandbox: JaggaerHandle) -> None:
    xml = supplier_xml([supplier_el("8100", "Fields Ltd", Active="false", DUNS="123456789")])
    assert sync_status(jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, xml))[0] == 200
    [sup] = jaggaer_sandbox.state()["tenants"]["demo"]["suppliers_via_xml"]
    assert sup["active"] is False
    assert sup["duns"] == "123456789"
    assert sup["address"] == {
        "type": "remitto",
        "addressLine1": "1 High Street",
        "city": "Leeds",
        "postalCode": "LS1 1AA",
        "isoCountryCode": "GB",
    }
    assert sup["contacts"][0]["Email"] == "ann@example.com"
    # an inactive supplier cannot take purchase orders
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-IN", supplier="<SupplierNumber>8100</SupplierNumber>"))
    assert r.status_code == 400 and "inactive" in r.text
    # re-activated by the next sync
    xml = supplier_xml([supplier_el("8100", None, Active="true")])
    assert sync_status(jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, xml))[0] == 200
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-IN", supplier="<SupplierNumber>8100</SupplierNumber>"))
    assert r.status_code == 200


def test_new_supplier_then_po(jaggaer_sandbox: JaggaerHandle) -> None:
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-N", supplier="<SupplierNumber>8200</SupplierNumber>"))
    assert r.status_code == 400
    assert sync_status(jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, supplier_xml([supplier_el("8200")])))[0] == 200
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-N", supplier="<SupplierNumber>8200</SupplierNumber>"))
    assert r.status_code == 200


def test_accepted_202_variant(jaggaer_sandbox: JaggaerHandle) -> None:
    jaggaer_sandbox.settings(supplier_success_status=202)
    code, text, _ = sync_status(jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, supplier_xml([supplier_el("8300")])))
    assert code == 202
    assert text.startswith("Success (Counts: Total documents attempted=1, Total documents completed=1.")


def test_406_with_per_supplier_errors(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    xml = supplier_xml(
        [
            supplier_el("8400", "Good Ltd"),
            supplier_el("", "No Number Ltd"),
            supplier_el("8401", None),  # new without a name
            supplier_el("8402", "Bad Duns Ltd", DUNS="12-34"),
            supplier_el("8403", "Bad Active Ltd", Active="maybe"),
        ]
    )
    code, text, doc = sync_status(jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, xml))
    assert code == 406
    assert "Total documents attempted=5, Total documents completed=1." in text
    errors = {
        se.findtext("SupplierRef/ERPNumber"): [m.text for m in se.findall("ErrorMessage")]
        for se in doc.iter("SupplierErrors")
    }
    assert set(errors) == {"", "8401", "8402", "8403"}
    assert "ERPNumber is required" in errors[""]
    assert "Name is required" in errors["8401"][0]
    assert "DUNS" in errors["8402"][0]
    assert "Active" in errors["8403"][0]
    # the good one went in anyway
    assert profile(jaggaer_sandbox, demo_token, "extCode==8400")
    assert not profile(jaggaer_sandbox, demo_token, "extCode==8402")


@pytest.mark.parametrize(
    "body, code, fragment",
    [
        (b"<SupplierSyncMessage><Supplier>", 500, "Unable to parse XML"),
        (b"<PurchaseOrderMessage/>", 400, "Unexpected root element"),
        (supplier_xml([]).encode(), 400, "at least one Supplier"),
    ],
)
def test_400_and_500(jaggaer_sandbox: JaggaerHandle, body: bytes, code: int, fragment: str) -> None:
    got, text, doc = sync_status(jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, body))
    assert got == code
    if code == 400:
        assert text == "Error processing XML"
    assert fragment in doc.findtext("SupplierResponseMessage/Status/Errors/ErrorMessage")


def test_company_profile_lookups(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    [info] = profile(jaggaer_sandbox, demo_token, "extCode==1010")
    assert info["extCode"] == "1010"
    assert info["companyName"] == "Precision Bearings UK Ltd"
    assert info["euVat"].startswith("GB")
    assert profile(jaggaer_sandbox, demo_token, f"euVat=={info['euVat']}") == [info]
    assert profile(jaggaer_sandbox, demo_token, f"bravoId=={info['bravoId']}") == [info]
    assert profile(jaggaer_sandbox, demo_token, "extCode==nope") == []
    body = jaggaer_sandbox.get(PROFILES, demo_token).json()
    assert body["totRecords"] == 66 and body["returnedRecords"] == 37
    assert jaggaer_sandbox.get(PROFILES, demo_token, flt="size==3").json()["returnCode"] == 2
