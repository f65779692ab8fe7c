"""eProcurement XML builders and response parsers (no server needed)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from ml_connector.jaggaer.xml import (
    Address,
    PoLine,
    PurchaseOrder,
    Supplier,
    build_po_message,
    build_supplier_sync,
    format_money,
    format_quantity,
    parse_po_response,
    parse_supplier_response,
    redact,
)

NASTY = "Smith & Sons <Ltd> \"quoted\" 'single' Ærø Straße — 東京 ]]> &amp;"


def _po(**kw) -> PurchaseOrder:
    base = dict(
        po_number="111111-42",
        action="new",
        supplier_number="1001",
        currency="GBP",
        order_date=date(2026, 11, 20),
        lines=[
            PoLine(1, "Steel bar", Decimal("10"), Decimal("12.5"), uom="kg", item_code="SB-1", gl_account="7000"),
            PoLine(2, "Machining", Decimal("2.5"), Decimal("80.1234"), cost_center="CC200", need_by=date(2026, 12, 1)),
        ],
    )
    base.update(kw)
    return PurchaseOrder(**base)


def _read(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def test_po_message_shape():
    xml = build_po_message(_po(), "MLCDEMO", "s3cret", message_id="m-1", timestamp=datetime(2026, 11, 20, tzinfo=UTC))
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = _read(xml)
    assert root.tag == "PurchaseOrderMessage" and root.get("version") == "2.0"
    assert root.findtext("Header/MessageId") == "m-1"
    assert root.findtext("Header/Timestamp") == "2026-11-20T00:00:00.000Z"
    assert root.findtext("Header/Authentication/Identity") == "MLCDEMO"
    assert root.findtext("Header/Authentication/SharedSecret") == "s3cret"
    head = root.find("PurchaseOrder/POHeader")
    assert head.get("type") is None
    assert head.findtext("PONumber") == "111111-42"
    assert head.findtext("Supplier/SupplierNumber") == "1001"
    lines = root.findall("PurchaseOrder/POLine")
    assert [ln.get("linenumber") for ln in lines] == ["1", "2"]
    assert lines[0].findtext("Item/Description") == "Steel bar"
    assert lines[0].findtext("Item/CatalogNumber") == "SB-1"
    assert lines[0].findtext("Item/ProductUnitOfMeasure") == "kg"
    assert lines[0].findtext("Quantity") == "10"
    money = lines[0].find("LineCharges/UnitPrice/Money")
    assert money.text == "12.50" and money.get("currency") == "GBP"
    assert lines[1].findtext("Quantity") == "2.5"
    assert lines[1].findtext("LineCharges/UnitPrice/Money") == "80.1234"
    assert lines[0].find("CustomFieldValueSet[@name='GLAccount']/CustomFieldValue/Value").text == "7000"
    assert lines[1].find("CustomFieldValueSet[@name='CostCenter']/CustomFieldValue/Value").text == "CC200"
    assert lines[1].findtext("NeedByDate") == "2026-12-01"


@pytest.mark.parametrize("action", ["update", "cancel"])
def test_po_type_attribute(action):
    root = _read(build_po_message(_po(action=action), "I", "S"))
    assert root.find("PurchaseOrder/POHeader").get("type") == action


def test_po_custom_field_names_are_configurable():
    root = _read(build_po_message(_po(), "I", "S", gl_field="GL_Code", cost_center_field="Kostenstelle"))
    assert root.find(".//POLine[@linenumber='1']/CustomFieldValueSet[@name='GL_Code']") is not None
    assert root.find(".//POLine[@linenumber='2']/CustomFieldValueSet[@name='Kostenstelle']") is not None


def test_special_characters_round_trip():
    po = _po(
        description=NASTY,
        your_ref=NASTY,
        payment_terms=NASTY,
        custom_fields={"Note": NASTY},
        lines=[PoLine(1, NASTY, Decimal(1), Decimal(1), item_code=NASTY)],
    )
    xml = build_po_message(po, "ID&<>", 'sec&"<ret>')
    root = _read(xml)  # well-formed
    assert root.findtext("PurchaseOrder/POHeader/Description") == NASTY
    assert root.findtext("PurchaseOrder/POHeader/ExternalReference") == NASTY
    assert root.findtext("PurchaseOrder/POHeader/PaymentInfo/Terms") == NASTY
    assert root.find(".//POHeader/CustomFieldValueSet[@name='Note']/CustomFieldValue/Value").text == NASTY
    assert root.findtext(".//POLine/Item/Description") == NASTY
    assert root.findtext("Header/Authentication/Identity") == "ID&<>"
    assert root.findtext("Header/Authentication/SharedSecret") == 'sec&"<ret>'
    assert "東京".encode() in xml  # UTF-8, not character references


def test_po_validation():
    with pytest.raises(ValueError, match="duplicate PO line"):
        build_po_message(_po(lines=[PoLine(1, "a", Decimal(1), Decimal(1))] * 2), "I", "S")
    with pytest.raises(ValueError, match="Identity and SharedSecret"):
        build_po_message(_po(), "I", "")
    with pytest.raises(ValueError, match="finite"):
        build_po_message(_po(lines=[PoLine(1, "a", Decimal("NaN"), Decimal(1))]), "I", "S")


def test_supplier_sync_shape():
    suppliers = [
        Supplier(
            "1001",
            NASTY,
            vat_number="GB123",
            tax_id="0123",
            duns="123456789",
            email="ap@x.example",
            address=Address(line1="1 High St", city="Leeds", postal_code="LS1 1AA", country="GB"),
        ),
        Supplier("1002", "Other", active=False),
    ]
    root = _read(build_supplier_sync(suppliers, "MLCDEMO", "s3cret"))
    assert root.tag == "SupplierSyncMessage" and root.get("version") == "1.0"
    els = root.findall("SupplierRequestMessage/Supplier")
    assert [e.findtext("ERPNumber") for e in els] == ["1001", "1002"]
    assert els[0].findtext("Name") == NASTY
    assert [e.findtext("Active") for e in els] == ["true", "false"]
    assert els[0].findtext("VatIdentificationNumber") == "GB123"
    assert els[0].findtext("TaxIdentificationNumber") == "0123"
    assert els[0].findtext("DUNS") == "123456789"
    addr = els[0].find("AddressList/Address")
    assert addr.get("type") == "remitto" and addr.findtext("City") == "Leeds"
    assert addr.findtext("IsoCountryCode") == "GB"
    assert els[0].findtext("ContactList/Contact/Email") == "ap@x.example"
    assert els[1].find("AddressList") is None


def test_redact():
    xml = build_po_message(_po(), "MLCDEMO", "top&secret<1>")
    text = redact(xml)
    assert "top" not in text and "<SharedSecret>***</SharedSecret>" in text
    assert "MLCDEMO" in text
    # not well-formed input, namespaced tags, and explicit secrets elsewhere
    broken = b'<a><x:SharedSecret xmlns:x="u">abc & def</x:SharedSecret><b>also abc&amp;d</b>'
    out = redact(broken, ["abc&d"])
    assert "abc & def" not in out and "abc&amp;d" not in out


# ---------------------------------------------------------------------------------------------------------------
# response parsing (documents shaped like KFS / cu-kfs responses and the sandbox's)

PO_OK = b"""<?xml version="1.0" encoding="UTF-8"?>
<PurchaseOrderMessage version="2.0"><Header><MessageId>x</MessageId></Header><ResponseMessage>
<Status><StatusCode>200</StatusCode><StatusText>SUCCESS</StatusText></Status>
<PurchaseOrderRef><PONumber>P1</PONumber><POId>700001</POId></PurchaseOrderRef></ResponseMessage></PurchaseOrderMessage>"""

PO_LINE_ERRORS = b"""<PurchaseOrderMessage version="2.0"><ResponseMessage><Status>
<StatusCode>400</StatusCode><StatusText>Error processing XML</StatusText><Errors>
<Error><ErrorMessage>One or more purchase order lines are invalid</ErrorMessage></Error>
<ObjectErrors><PurchaseOrderLineRef linenumber="2"><Error><ErrorMessage>Quantity must be positive</ErrorMessage></Error>
<Error><ErrorMessage>Item/Description is required</ErrorMessage></Error></PurchaseOrderLineRef>
<PurchaseOrderLineRef linenumber="#3"><Error><ErrorMessage>bad number</ErrorMessage></Error></PurchaseOrderLineRef>
</ObjectErrors></Errors></Status></ResponseMessage></PurchaseOrderMessage>"""


def test_parse_po_success_case_insensitive():
    r = parse_po_response(PO_OK, 200)
    assert r.ok and r.status_code == 200 and r.target_id == "700001" and not r.errors


def test_parse_po_line_errors():
    r = parse_po_response(PO_LINE_ERRORS, 400)
    assert not r.ok and r.status_code == 400 and not r.already_exists
    assert r.errors == ["One or more purchase order lines are invalid"]
    assert r.line_errors == {2: ["Quantity must be positive", "Item/Description is required"]}
    assert r.object_errors == {"line #3": ["bad number"]}
    assert "line 2: Quantity must be positive" in r.summary()


@pytest.mark.parametrize(
    "message",
    [
        "Purchase order P1 already exists",
        "PONumber P1 already exist in the system",
        "Duplicate PO Number: P1",
        "The PO number P1 has already been used",
        "PONumber 'P1' is not unique",
    ],
)
def test_parse_po_already_exists_variants(message):
    body = (
        "<PurchaseOrderMessage><ResponseMessage><Status><StatusCode>400</StatusCode>"
        f"<StatusText>Error processing XML</StatusText><Errors><Error><ErrorMessage>{message}</ErrorMessage>"
        "</Error></Errors></Status></ResponseMessage></PurchaseOrderMessage>"
    ).encode()
    r = parse_po_response(body, 400)
    assert not r.ok and r.already_exists
    assert not parse_po_response(body, 400, already_exists_pattern=r"will never match").already_exists


def test_line_duplicate_is_not_already_exists():
    r = parse_po_response(PO_LINE_ERRORS.replace(b"bad number", b"Duplicate POLine linenumber 3"), 400)
    assert not r.already_exists


def test_parse_unescaped_ampersand_and_namespaces():
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<PurchaseOrderMessage version="2.0"><ResponseMessage>'
        b"<Status><StatusCode>200</StatusCode><StatusText>Success & done</StatusText></Status>"
        b"</ResponseMessage></PurchaseOrderMessage>\n"
    )
    r = parse_po_response(body, 200)
    assert r.ok and r.status_text == "Success & done"
    ns = (
        b'<p:PurchaseOrderMessage xmlns:p="urn:x"><p:Status><p:StatusCode>200</p:StatusCode>'
        b"<p:StatusText>Success</p:StatusText></p:Status></p:PurchaseOrderMessage>"
    )
    assert parse_po_response(ns, 200).ok


@pytest.mark.parametrize("body", [b"", b"<html><body>Bad gateway</body></html>", b"not xml at all &", b"<a><b>"])
def test_unreadable_bodies(body):
    r = parse_po_response(body, 502)
    assert not r.ok and not r.parsed and r.status_code == 502


def test_parse_supplier_success_200_and_202_with_counts():
    text = "Success (Counts: Total documents attempted=3, Total documents completed=3. Total documents failed=0.)"
    for code in (200, 202):
        body = (
            f"<SupplierSyncMessage><SupplierResponseMessage><Status><StatusCode>{code}</StatusCode>"
            f"<StatusText>{text}</StatusText></Status></SupplierResponseMessage></SupplierSyncMessage>"
        ).encode()
        r = parse_supplier_response(body, code)
        assert r.ok and r.status_code == code
        assert r.counts == {"attempted": 3, "completed": 3, "failed": 0}


def test_parse_supplier_406_object_errors():
    body = (
        b'<SupplierSyncMessage version="1.0"><SupplierResponseMessage><Status><StatusCode>406</StatusCode>'
        b"<StatusText>Not Acceptable (Counts: Total documents attempted=3, Total documents completed=1. "
        b"Total documents failed=2.)</StatusText>"
        b"<Errors><ErrorMessage>2 of 3 suppliers were not accepted</ErrorMessage></Errors></Status>"
        b"<SupplierErrors><SupplierRef><ERPNumber>9001</ERPNumber></SupplierRef>"
        b"<ErrorMessage>DUNS must be 9 digits</ErrorMessage><ErrorMessage>Name is required</ErrorMessage>"
        b"</SupplierErrors><SupplierErrors><SupplierRef><ERPNumber>9002</ERPNumber></SupplierRef>"
        b"<ErrorMessage>Active must be true or false</ErrorMessage></SupplierErrors>"
        b"</SupplierResponseMessage></SupplierSyncMessage>"
    )
    r = parse_supplier_response(body, 406)
    assert not r.ok and r.status_code == 406
    assert r.errors == ["2 of 3 suppliers were not accepted"]
    assert r.object_errors == {
        "9001": ["DUNS must be 9 digits", "Name is required"],
        "9002": ["Active must be true or false"],
    }
    assert r.counts == {"attempted": 3, "completed": 1, "failed": 2}


def test_status_code_from_http_when_missing_text():
    body = (
        b"<PurchaseOrderMessage><Status><StatusCode/><StatusText>Success</StatusText></Status></PurchaseOrderMessage>"
    )
    assert parse_po_response(body, 200).ok


# ---------------------------------------------------------------------------------------------------------------
# properties

money = st.decimals(
    min_value=Decimal("-1e9"), max_value=Decimal("1e9"), allow_nan=False, allow_infinity=False, places=None
)


@given(money)
def test_format_money_property(value):
    text = format_money(value)
    assert "E" not in text and "e" not in text
    assert Decimal(text) == value
    assert len(text.split(".")[1]) >= 2


@given(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1e7"), allow_nan=False, allow_infinity=False))
def test_format_quantity_property(value):
    text = format_quantity(value)
    assert "E" not in text and Decimal(text) == value
    assert not (("." in text) and text.endswith("0"))


xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s and s.strip())


@settings(max_examples=60, deadline=None)
@given(
    po_number=xml_text,
    supplier=xml_text,
    description=xml_text,
    quantity=st.decimals(min_value=Decimal("0.001"), max_value=Decimal("99999"), places=3),
    price=st.decimals(min_value=Decimal("0"), max_value=Decimal("999999"), places=4),
    action=st.sampled_from(["new", "update", "cancel"]),
)
def test_po_builder_round_trip(po_number, supplier, description, quantity, price, action):
    po = PurchaseOrder(
        po_number,
        action,
        supplier,
        "EUR",
        date(2026, 1, 2),
        [PoLine(7, description, quantity, price, gl_account="7000")],
    )
    root = etree.fromstring(build_po_message(po, "I", "S"))
    head = root.find("PurchaseOrder/POHeader")
    assert head.findtext("PONumber") == po_number
    assert head.findtext("Supplier/SupplierNumber") == supplier
    assert head.get("type") == (None if action == "new" else action)
    line = root.find("PurchaseOrder/POLine")
    assert int(line.get("linenumber")) == 7
    assert line.findtext("Item/Description") == description
    assert Decimal(line.findtext("Quantity")) == quantity
    assert Decimal(line.findtext("LineCharges/UnitPrice/Money")) == price


@settings(max_examples=60, deadline=None)
@given(status=st.sampled_from([200, 400, 406, 500]), messages=st.lists(xml_text, max_size=4), text=xml_text)
def test_response_parser_round_trip(status, messages, text):
    """Whatever a server writes into a (properly escaped) response comes back unchanged from the parser."""
    root = etree.Element("SupplierSyncMessage", version="1.0")
    st_el = etree.SubElement(etree.SubElement(root, "SupplierResponseMessage"), "Status")
    etree.SubElement(st_el, "StatusCode").text = str(status)
    etree.SubElement(st_el, "StatusText").text = text
    errs = etree.SubElement(st_el, "Errors")
    for m in messages:
        etree.SubElement(errs, "ErrorMessage").text = m
    r = parse_supplier_response(etree.tostring(root, encoding="UTF-8"), status)
    assert r.status_code == status
    assert r.status_text == " ".join(text.split())
    assert r.errors == [" ".join(m.split()) for m in messages if m.split()]
