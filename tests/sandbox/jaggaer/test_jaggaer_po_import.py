"""eProcurement PurchaseOrderMessage import: create, update, cancel, and every refusal; HTTP mirrors StatusCode."""

from __future__ import annotations

import pytest
import requests
from jaggaer_support import PO_IMPORT, JaggaerHandle, po_line, po_xml
from lxml import etree


def status(r: requests.Response) -> tuple[int, str, list[str]]:
    """(StatusCode, StatusText, every ErrorMessage) - and check that HTTP mirrors StatusCode."""
    doc = etree.fromstring(r.content)
    assert doc.tag == "PurchaseOrderMessage"
    code = int(doc.findtext("ResponseMessage/Status/StatusCode"))
    assert r.status_code == code
    assert r.headers["Content-Type"].startswith("application/xml")
    return code, doc.findtext("ResponseMessage/Status/StatusText"), [e.text for e in doc.iter("ErrorMessage")]


def po_state(h: JaggaerHandle, po_number: str) -> dict:
    return h.state()["tenants"]["demo"]["purchase_orders"][po_number]


def test_create(jaggaer_sandbox: JaggaerHandle) -> None:
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-1001"))
    code, text, errors = status(r)
    assert (code, text.lower(), errors) == (200, "success", [])
    doc = etree.fromstring(r.content)
    assert doc.findtext("ResponseMessage/PurchaseOrderRef/PONumber") == "PO-1001"
    assert doc.findtext("Header/RelatedMessageId") == "msg-1"
    po = po_state(jaggaer_sandbox, "PO-1001")
    assert po["status"] == "Open"
    assert po["supplier"]["supplierNumber"] == "1001"
    assert po["total"] == "40.50"  # 2 x 12.50 + 5 x 3.10
    assert po["header"]["PONumber"] == "PO-1001"
    assert po["header"]["PaymentInfo"] == {"Terms": "Net 30"}
    assert po["header"]["CustomFields"] == {"BusinessUnit": "UK-MFG"}
    line = po["lines"][0]
    assert line["linenumber"] == 1
    assert line["description"] == "Hex bolt M8x25"
    assert line["catalogNumber"] == "CP-M8X25-HT"
    assert line["unitOfMeasure"] == "EA"
    assert line["commodityCode"] == "31161500"
    assert (line["quantity"], line["unitPrice"], line["currency"]) == ("2", "12.50", "GBP")
    assert line["customFields"] == {"GLAccount": "7010", "CostCenter": "CC100"}
    assert [h["action"] for h in po["history"]] == ["create"]
    full = jaggaer_sandbox.admin("GET", "/purchase-orders/PO-1001")
    assert "<PONumber>PO-1001</PONumber>" in full["lastXml"]


def test_update_and_cancel(jaggaer_sandbox: JaggaerHandle) -> None:
    assert status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-2")))[0] == 200
    r = jaggaer_sandbox.post_xml(
        PO_IMPORT,
        po_xml("PO-2", type="update", supplier="<SupplierNumber>1002</SupplierNumber>", lines=[po_line(1, qty=10)]),
    )
    assert status(r)[0] == 200
    po = po_state(jaggaer_sandbox, "PO-2")
    assert po["supplier"]["supplierNumber"] == "1002"
    assert len(po["lines"]) == 1
    assert po["total"] == "125.00"
    update = po["history"][-1]
    assert update["action"] == "update"
    assert update["before"]["total"] == "40.50"

    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-2", type="cancel", lines=[]))
    assert status(r)[0] == 200
    po = po_state(jaggaer_sandbox, "PO-2")
    assert po["status"] == "Cancelled"
    assert [h["action"] for h in po["history"]] == ["create", "update", "cancel"]
    # cancelling again is harmless; updating a cancelled PO is not allowed
    assert status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-2", type="cancel", lines=[])))[0] == 200
    code, _, errors = status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-2", type="update")))
    assert code == 400 and "cancelled" in errors[0]
    # a cancelled PO's number is still taken
    code, _, errors = status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-2")))
    assert code == 400 and "already exists" in errors[0]


def test_duplicate_po_number_already_exists(jaggaer_sandbox: JaggaerHandle) -> None:
    assert status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-DUP")))[0] == 200
    code, text, errors = status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-DUP")))
    assert code == 400
    assert text == "Error processing XML"
    assert errors == ["Purchase order PO-DUP already exists"]
    # the text is a setting
    jaggaer_sandbox.settings(po_duplicate_message="Duplicate order number {po_number}: already exists in system")
    code, _, errors = status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-DUP")))
    assert errors == ["Duplicate order number PO-DUP: already exists in system"]
    assert len(po_state(jaggaer_sandbox, "PO-DUP")["history"]) == 1


@pytest.mark.parametrize(
    "supplier",
    [
        "<SupplierNumber>1003</SupplierNumber>",
        "<Name>  sheffield bright bar   LIMITED </Name>",  # JAGGAER spells this one "Limited"
    ],
)
def test_supplier_by_number_or_name(jaggaer_sandbox: JaggaerHandle, supplier: str) -> None:
    assert status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-S", supplier=supplier)))[0] == 200
    assert po_state(jaggaer_sandbox, "PO-S")["supplier"]["supplierNumber"] == "1003"


def test_supplier_by_duns(jaggaer_sandbox: JaggaerHandle) -> None:
    duns = next(s for s in jaggaer_sandbox.admin("GET", "/suppliers") if s["supplierNumber"] == "1010")["duns"]
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-D", supplier=f"<DUNS>{duns}</DUNS>"))
    assert status(r)[0] == 200
    assert po_state(jaggaer_sandbox, "PO-D")["supplier"]["supplierNumber"] == "1010"


@pytest.mark.parametrize(
    "supplier, fragment",
    [
        ("<SupplierNumber>9999</SupplierNumber>", "Supplier not found: SupplierNumber '9999'"),
        ("<DUNS>000000000</DUNS>", "Supplier not found: DUNS"),
        ("<Name>Nobody Ltd</Name>", "Supplier not found: Name"),
        ("", "Supplier is required"),
    ],
)
def test_unknown_supplier_is_rejected(jaggaer_sandbox: JaggaerHandle, supplier: str, fragment: str) -> None:
    code, _, errors = status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-U", supplier=supplier)))
    assert code == 400
    assert fragment in errors[0]
    assert jaggaer_sandbox.state()["tenants"]["demo"]["counts"]["purchase_orders"] == 0


def test_bad_authentication(jaggaer_sandbox: JaggaerHandle) -> None:
    for identity, secret in (("MLCDEMO", "wrong"), ("NOBODY", "mlc-demo-xml-secret"), ("", "")):
        code, text, errors = status(
            jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-A", identity=identity, secret=secret))
        )
        assert (code, text) == (401, "Unauthorized")
        assert "Authentication failed" in errors[0]
    assert jaggaer_sandbox.state()["tenants"]["demo"]["counts"]["purchase_orders"] == 0


def test_line_errors(jaggaer_sandbox: JaggaerHandle) -> None:
    lines = [po_line(1), po_line(2, qty=0), po_line(3, price="abc"), po_line(4, qty=-1, desc="")]
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-L", lines=lines))
    code, _, _ = status(r)
    assert code == 400
    doc = etree.fromstring(r.content)
    refs = {
        ref.get("linenumber"): [m.text for m in ref.iter("ErrorMessage")] for ref in doc.iter("PurchaseOrderLineRef")
    }
    assert set(refs) == {"2", "3", "4"}
    assert "Quantity must be a positive number" in refs["2"][0]
    assert "UnitPrice" in refs["3"][0]
    assert len(refs["4"]) == 2  # no description and a negative quantity
    assert doc.find(".//ObjectErrors/PurchaseOrderLineRef[@linenumber='2']/Error/ErrorMessage") is not None
    assert jaggaer_sandbox.state()["tenants"]["demo"]["counts"]["purchase_orders"] == 0


@pytest.mark.parametrize(
    "body, code, fragment",
    [
        (b"<PurchaseOrderMessage><unclosed>", 500, "Unable to parse XML"),
        (b"not xml at all", 500, "Unable to parse XML"),
        (b"", 500, "empty request body"),
        (b"<?xml version='1.0'?><Something/>", 400, "Unexpected root element"),
        (
            b"<PurchaseOrderMessage version='2.0'><Header><Authentication><Identity>MLCDEMO</Identity>"
            b"<SharedSecret>mlc-demo-xml-secret</SharedSecret></Authentication></Header>"
            b"<PurchaseOrder><POHeader/></PurchaseOrder></PurchaseOrderMessage>",
            400,
            "PONumber is required",
        ),
    ],
)
def test_malformed_and_invalid_xml(jaggaer_sandbox: JaggaerHandle, body: bytes, code: int, fragment: str) -> None:
    got, _, errors = status(jaggaer_sandbox.post_xml(PO_IMPORT, body))
    assert got == code
    assert fragment in errors[0]


def test_update_or_cancel_of_unknown_po(jaggaer_sandbox: JaggaerHandle) -> None:
    for kind in ("update", "cancel"):
        code, _, errors = status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-NEW", type=kind)))
        assert code == 400 and "does not exist" in errors[0]
    code, _, errors = status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-NEW", type="replace")))
    assert code == 400 and "not supported" in errors[0]


def test_no_lines(jaggaer_sandbox: JaggaerHandle) -> None:
    code, _, errors = status(jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-0", lines=[])))
    assert code == 400 and "at least one POLine" in errors[0]


def test_state_keeps_every_message(jaggaer_sandbox: JaggaerHandle) -> None:
    jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-M"))
    jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-M"))
    jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-M", type="cancel", lines=[]))
    log = jaggaer_sandbox.state()["tenants"]["demo"]["po_messages"]
    assert [(m["action"], m["status"]) for m in log] == [("create", 200), ("new", 400), ("cancel", 200)]
    assert "already exists" in log[1]["errors"][0]
