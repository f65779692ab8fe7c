"""Fidelity of the XML imports, over real HTTP: values compared and stored exactly as sent (no trimming of padded
Exact codes), custom-field names checked against the customer's configuration, the ``malformed_xml`` fault after
the request ran, the server-chosen page size."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from jaggaer_support import (
    ACME,
    DEMO,
    INVOICES,
    PO_IMPORT,
    PROFILES,
    SUPPLIER_IMPORT,
    JaggaerHandle,
    po_line,
    po_xml,
    supplier_el,
    supplier_xml,
)
from lxml import etree

PADDED = "              2001"  # an Exact account code as Exact stores it: 18 characters, right-aligned


def _errors(r) -> tuple[list[str], dict[str, list[str]]]:
    root = etree.fromstring(r.content)
    errors = [e.text for e in root.findall("ResponseMessage/Status/Errors/Error/ErrorMessage")]
    lines = {
        ref.get("linenumber"): [e.text for e in ref.findall("Error/ErrorMessage")]
        for ref in root.findall("ResponseMessage/Status/Errors/ObjectErrors/PurchaseOrderLineRef")
    }
    return errors, lines


def _custom(name: str, value: str) -> str:
    return (
        f'<CustomFieldValueSet name="{name}"><CustomFieldValue><Value>{value}</Value></CustomFieldValue>'
        "</CustomFieldValueSet>"
    )


# ---------------------------------------------------------------------------------------------------------------
# 1. values exactly as sent


def test_padded_erp_number_is_stored_as_sent(jaggaer_sandbox: JaggaerHandle) -> None:
    r = jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, supplier_xml([supplier_el(PADDED, "Padded Code Ltd")]))
    assert r.status_code == 200, r.text
    numbers = {s["supplierNumber"] for s in jaggaer_sandbox.admin("GET", "/suppliers?tenant=demo")}
    assert PADDED in numbers and "2001" not in numbers
    # A later upsert with the unpadded code is another supplier, not an update of the padded one.
    r = jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, supplier_xml([supplier_el("2001", "Unpadded Code Ltd")]))
    received = jaggaer_sandbox.state()["tenants"]["demo"]["suppliers_received"]
    assert [x["action"] for x in received if x["erpNumber"] in (PADDED, "2001")] == ["created", "created"]


def test_supplier_number_must_match_exactly(jaggaer_sandbox: JaggaerHandle) -> None:
    jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, supplier_xml([supplier_el(PADDED, "Padded Code Ltd")]))
    unpadded = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-PAD-1", supplier="<SupplierNumber>2001</SupplierNumber>"))
    assert unpadded.status_code == 400
    assert _errors(unpadded)[0] == ["Supplier not found: SupplierNumber '2001'"]
    padded = jaggaer_sandbox.post_xml(
        PO_IMPORT, po_xml("PO-PAD-2", supplier=f"<SupplierNumber>{PADDED}</SupplierNumber>")
    )
    assert padded.status_code == 200, padded.text
    # and a seeded, unpadded supplier is not found under a padded number
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-PAD-3", supplier="<SupplierNumber>  1001</SupplierNumber>"))
    assert r.status_code == 400 and "Supplier not found" in _errors(r)[0][0]


def test_po_number_is_stored_untrimmed(jaggaer_sandbox: JaggaerHandle) -> None:
    assert jaggaer_sandbox.post_xml(PO_IMPORT, po_xml(" PO-SP-1 ")).status_code == 200
    assert " PO-SP-1 " in jaggaer_sandbox.state()["tenants"]["demo"]["purchase_orders"]
    # "PO-SP-1" is another number: it does not collide with " PO-SP-1 "
    assert jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-SP-1")).status_code == 200


def test_ext_code_filter_compares_exactly(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, supplier_xml([supplier_el(PADDED, "Padded Code Ltd")]))

    def found(flt: str) -> list[str]:
        body = jaggaer_sandbox.get(PROFILES, demo_token, flt=flt).json()
        return [c["returnCompanyInfo"]["companyName"] for c in body["returnCompanyData"]]

    assert found(f"extCode=={PADDED}") == ["Padded Code Ltd"]
    assert found("extCode==2001") == []
    assert found("extCode== 1001") == []  # the seeded "1001" is not " 1001"
    assert len(found("extCode==1001")) == 1


def test_xml_formatting_whitespace_is_ignored(jaggaer_sandbox: JaggaerHandle) -> None:
    """Indentation between elements is formatting, not data: a pretty-printed message is accepted."""
    pretty = etree.tostring(etree.fromstring(po_xml("PO-PRETTY").encode()), pretty_print=True)
    r = jaggaer_sandbox.post_xml(PO_IMPORT, pretty)
    assert r.status_code == 200, r.text
    po = jaggaer_sandbox.state()["tenants"]["demo"]["purchase_orders"]["PO-PRETTY"]
    assert po["supplier"]["supplierNumber"] == "1001"


def test_trim_values_setting_is_the_lenient_variant(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    assert jaggaer_sandbox.admin("GET", "/settings")["trim_values"] is False
    jaggaer_sandbox.settings(trim_values=True)
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml(" PO-TRIM ", supplier="<SupplierNumber>  1001  </SupplierNumber>"))
    assert r.status_code == 200, r.text
    assert "PO-TRIM" in jaggaer_sandbox.state()["tenants"]["demo"]["purchase_orders"]
    body = jaggaer_sandbox.get(PROFILES, demo_token, flt="extCode==   1001").json()
    assert body["totRecords"] == 1


# ---------------------------------------------------------------------------------------------------------------
# 2. custom-field names from the customer's configuration


def test_unknown_line_custom_field_is_refused_per_line(jaggaer_sandbox: JaggaerHandle) -> None:
    bad = po_line(2, qty=5, price="3.10").replace("</POLine>", _custom("Kostenstelle", "CC100") + "</POLine>")
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-CF-1", lines=[po_line(1), bad]))
    assert r.status_code == 400
    errors, lines = _errors(r)
    assert errors == ["One or more purchase order lines are invalid"]
    assert list(lines) == ["2"] and "'Kostenstelle'" in lines["2"][0] and "GLAccount" in lines["2"][0]
    assert "PO-CF-1" not in jaggaer_sandbox.state()["tenants"]["demo"]["purchase_orders"]  # refused whole


def test_unknown_header_custom_field_is_refused(jaggaer_sandbox: JaggaerHandle) -> None:
    xml = po_xml("PO-CF-2").replace("</POHeader>", _custom("CostCentre", "CC100") + "</POHeader>")
    r = jaggaer_sandbox.post_xml(PO_IMPORT, xml)
    assert r.status_code == 400
    errors, lines = _errors(r)
    assert lines == {} and len(errors) == 1 and "POHeader custom field 'CostCentre'" in errors[0]


def test_what_the_connector_sends_is_accepted_by_default(jaggaer_sandbox: JaggaerHandle) -> None:
    """The default configuration knows the names ml-connector's builder uses (GLAccount, CostCenter)."""
    from ml_connector.jaggaer.xml import PoLine, PurchaseOrder, build_po_message

    po = PurchaseOrder(
        po_number="PO-CONN-1",
        action="new",
        supplier_number="1001",
        currency="GBP",
        order_date=date(2026, 11, 23),
        lines=[
            PoLine(1, "Hex bolt", Decimal(2), Decimal("12.50"), gl_account="7010", cost_center="CC100"),
            PoLine(2, "Washer", Decimal(5), Decimal("0.10"), gl_account="7010"),
        ],
    )
    r = jaggaer_sandbox.post_xml(PO_IMPORT, build_po_message(po, DEMO["identity"], DEMO["secret"]))
    assert r.status_code == 200, r.text
    lines = jaggaer_sandbox.state()["tenants"]["demo"]["purchase_orders"]["PO-CONN-1"]["lines"]
    assert lines[0]["customFields"] == {"GLAccount": "7010", "CostCenter": "CC100"}


def test_custom_field_names_are_per_customer(jaggaer_sandbox: JaggaerHandle) -> None:
    defaults = jaggaer_sandbox.admin("GET", "/settings")["po_custom_fields"]
    assert defaults == {"*": {"header": ["BusinessUnit"], "line": ["GLAccount", "CostCenter"]}}
    jaggaer_sandbox.settings(
        po_custom_fields={"demo": {"header": ["BusinessUnit"], "line": ["GL_Code", "Kostenstelle"]}, **defaults}
    )
    german = (
        po_line(1).replace('name="GLAccount"', 'name="GL_Code"').replace('name="CostCenter"', 'name="Kostenstelle"')
    )
    assert jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-DE-1", lines=[german])).status_code == 200
    # demo no longer knows GLAccount; acme (the '*' entry) still does not know GL_Code
    assert jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-DE-2", lines=[po_line(1)])).status_code == 400
    acme = po_xml(
        "PO-DE-3",
        supplier="<SupplierNumber>A100</SupplierNumber>",
        lines=[german],
        identity=ACME["identity"],
        secret=ACME["secret"],
    )
    r = jaggaer_sandbox.post_xml(PO_IMPORT, acme)
    assert r.status_code == 400 and "'GL_Code'" in _errors(r)[1]["1"][0]
    # a bad shape is refused by the settings endpoint
    bad = jaggaer_sandbox.http.post(
        f"{jaggaer_sandbox.url}/_admin/settings", json={"po_custom_fields": {"demo": {"lines": []}}}, timeout=10
    )
    assert bad.status_code == 400


# ---------------------------------------------------------------------------------------------------------------
# 8. malformed_xml: the request ran, the answer is the true one (with an unescaped &)


def test_malformed_xml_fault_runs_the_request_first(jaggaer_sandbox: JaggaerHandle) -> None:
    jaggaer_sandbox.fault(path=PO_IMPORT, action="malformed_xml")
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-MX-1"))
    assert r.status_code == 200 and b"Success & done" in r.content
    po = jaggaer_sandbox.state()["tenants"]["demo"]["purchase_orders"]["PO-MX-1"]  # committed
    assert f"<POId>{po['poId']}</POId>".encode() in r.content  # the real response, only corrupted


def test_malformed_xml_fault_does_not_turn_a_refusal_into_success(jaggaer_sandbox: JaggaerHandle) -> None:
    assert jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-MX-2")).status_code == 200
    jaggaer_sandbox.fault(path=PO_IMPORT, action="malformed_xml")
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-MX-2"))  # duplicate: refused
    assert r.status_code == 400
    assert b"<StatusCode>400</StatusCode>" in r.content and b"already exists" in r.content
    repaired = etree.fromstring(r.content.replace(b" & ", b" &amp; "))
    assert repaired.findtext("ResponseMessage/Status/StatusCode") == "400"


def test_malformed_xml_supplier_sync_is_applied(jaggaer_sandbox: JaggaerHandle) -> None:
    jaggaer_sandbox.fault(path=SUPPLIER_IMPORT, action="malformed_xml")
    r = jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, supplier_xml([supplier_el("8701", "Applied Anyway Ltd")]))
    assert r.status_code == 200 and b" & done" in r.content
    assert "8701" in {s["supplierNumber"] for s in jaggaer_sandbox.admin("GET", "/suppliers?tenant=demo")}


# ---------------------------------------------------------------------------------------------------------------
# 22. the page size is the server's


def test_default_page_size_is_not_50(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    body = jaggaer_sandbox.get(INVOICES, demo_token).json()
    assert body["returnedRecords"] == 37 and body["totRecords"] == 68
    assert jaggaer_sandbox.get(INVOICES, demo_token, start=38).json()["returnedRecords"] == 31


# ---------------------------------------------------------------------------------------------------------------
# 25. bounded token table


def test_token_table_is_bounded(jaggaer_sandbox: JaggaerHandle, monkeypatch) -> None:
    from sandbox.jaggaer import state as app_mod

    monkeypatch.setattr(app_mod, "MAX_TOKENS", 3)
    tokens = [jaggaer_sandbox.token(DEMO) for _ in range(6)]
    assert len(jaggaer_sandbox.sandbox.tokens) <= 3
    assert jaggaer_sandbox.get(INVOICES, tokens[-1]).status_code == 200
    assert jaggaer_sandbox.get(INVOICES, tokens[0]).status_code == 401  # forgotten, oldest first
