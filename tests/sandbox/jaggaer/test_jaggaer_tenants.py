"""Customers are isolated: each OAuth client and each XML identity sees only its own data."""

from __future__ import annotations

from jaggaer_support import (
    ACME,
    DEMO,
    INVOICES,
    PO_IMPORT,
    PROFILES,
    SUPPLIER_IMPORT,
    JaggaerHandle,
    po_xml,
    supplier_el,
    supplier_xml,
)
from lxml import etree


def test_each_client_sees_its_own_invoices(jaggaer_sandbox: JaggaerHandle) -> None:
    demo = jaggaer_sandbox.all_invoice_headers(jaggaer_sandbox.token(DEMO))
    acme = jaggaer_sandbox.all_invoice_headers(jaggaer_sandbox.token(ACME))
    assert len(demo) == 68
    assert len(acme) == 6
    assert {h["businessUnit"] for h in demo} == {"UK-MFG", "UK-SVC"}
    assert {h["businessUnit"] for h in acme} == {"ACME-HQ"}
    assert {h["total"]["currency"] for h in acme} == {"EUR"}
    assert not {h["invoiceId"] for h in demo} & {h["invoiceId"] for h in acme}


def test_other_customers_invoice_is_not_found(jaggaer_sandbox: JaggaerHandle) -> None:
    acme_token = jaggaer_sandbox.token(ACME)
    acme_id = jaggaer_sandbox.all_invoice_headers(acme_token)[0]["invoiceId"]
    r = jaggaer_sandbox.get(f"{INVOICES}/{acme_id}", jaggaer_sandbox.token(DEMO))
    assert r.status_code == 200
    assert r.json()["returnCode"] != 0
    assert "header" in jaggaer_sandbox.get(f"{INVOICES}/{acme_id}", acme_token).json()


def test_company_profiles_are_per_customer(jaggaer_sandbox: JaggaerHandle) -> None:
    demo = jaggaer_sandbox.get(PROFILES, jaggaer_sandbox.token(DEMO), flt="extCode==A100").json()
    acme = jaggaer_sandbox.get(PROFILES, jaggaer_sandbox.token(ACME), flt="extCode==A100").json()
    assert demo["totRecords"] == 0
    assert acme["returnCompanyData"][0]["returnCompanyInfo"]["companyName"] == "Acme Bolts GmbH"


def test_xml_identity_selects_the_customer(jaggaer_sandbox: JaggaerHandle) -> None:
    # 1001 exists for demo only; ACME's vendors are A100..A104
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-ISO-1", identity=ACME["identity"], secret=ACME["secret"]))
    assert r.status_code == 400
    assert "Supplier not found" in r.text
    r = jaggaer_sandbox.post_xml(
        PO_IMPORT,
        po_xml(
            "PO-ISO-1",
            supplier="<SupplierNumber>A100</SupplierNumber>",
            identity=ACME["identity"],
            secret=ACME["secret"],
        ),
    )
    assert r.status_code == 200, r.text
    # the same PONumber is free for the demo customer: numbers are unique per customer
    assert jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-ISO-1")).status_code == 200
    state = jaggaer_sandbox.state()["tenants"]
    assert state["acme"]["purchase_orders"]["PO-ISO-1"]["supplier"]["supplierNumber"] == "A100"
    assert state["demo"]["purchase_orders"]["PO-ISO-1"]["supplier"]["supplierNumber"] == "1001"


def test_crossed_xml_credentials_are_refused(jaggaer_sandbox: JaggaerHandle) -> None:
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-X", identity=ACME["identity"], secret=DEMO["secret"]))
    assert r.status_code == 401
    assert etree.fromstring(r.content).findtext(".//StatusCode") == "401"
    r = jaggaer_sandbox.post_xml(
        SUPPLIER_IMPORT, supplier_xml([supplier_el("7001")], identity=DEMO["identity"], secret=ACME["secret"])
    )
    assert r.status_code == 401
    assert jaggaer_sandbox.state()["tenants"]["demo"]["counts"]["supplier_sync_records"] == 0


def test_supplier_sync_lands_in_one_customer(jaggaer_sandbox: JaggaerHandle) -> None:
    r = jaggaer_sandbox.post_xml(
        SUPPLIER_IMPORT, supplier_xml([supplier_el("7001")], identity=ACME["identity"], secret=ACME["secret"])
    )
    assert r.status_code == 200
    assert jaggaer_sandbox.get(PROFILES, jaggaer_sandbox.token(ACME), flt="extCode==7001").json()["totRecords"] == 1
    assert jaggaer_sandbox.get(PROFILES, jaggaer_sandbox.token(DEMO), flt="extCode==7001").json()["totRecords"] == 0
