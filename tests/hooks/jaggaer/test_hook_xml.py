"""JaggaerHook eProcurement XML imports and ``test_connection`` against the JAGGAER sandbox over real HTTP."""

from __future__ import annotations

import socket
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from ml_connector.errors import AmbiguousWriteError, TokenChainBroken, TransientError
from ml_connector.http import AuditContext
from ml_connector.jaggaer import hook as hook_module
from ml_connector.jaggaer.xml import Address, PoLine, PurchaseOrder, Supplier
from ml_connector.store.audit import DbAuditSink
from ml_connector.store.models import AuditLog

PO_ENDPOINT = "POST /apps/Router/POXMLImport"
SUPPLIER_ENDPOINT = "POST /apps/Router/TSMSupplierXMLImport"
NASTY = "Nuts & <bolts> \"M8\" 'zinc' — Größe 東京"
SECRETS = ("mlc-demo-xml-secret", "mlc-demo-secret", "acme-xml-secret", "acme-secret")


def ctx(source_id: str = "PO-1", tenant: str = "demo") -> AuditContext:
    return AuditContext(tenant=tenant, flow="po_push", action="import_po", source_id=source_id, run_id="run-1")


def make_po(number: str = "111111-1001", action: str = "new", supplier: str = "1001", **kw) -> PurchaseOrder:
    lines = kw.pop(
        "lines",
        [
            PoLine(1, NASTY, Decimal("10"), Decimal("1.25"), uom="pc", item_code="NB-8", gl_account="7000"),
            PoLine(2, "Machining", Decimal("2.5"), Decimal("80"), cost_center="CC200", commodity_code="C-7"),
        ],
    )
    return PurchaseOrder(number, action, supplier, "GBP", date(2026, 11, 20), lines, **kw)  # type: ignore[arg-type]


def test_import_new_update_cancel(jag):
    hook = jag.hook()
    result = hook.import_po(make_po(description=NASTY, your_ref="EX-1001"), audit_ctx=ctx())
    assert result.ok and result.status_code == 200 and result.target_id
    po = jag.purchase_order("111111-1001")
    assert po["status"] == "Open" and po["supplier"]["supplierNumber"] == "1001"
    assert [ln["description"] for ln in po["lines"]] == [NASTY, "Machining"]
    assert po["lines"][0]["customFields"] == {"GLAccount": "7000"}
    assert po["lines"][1]["customFields"] == {"CostCenter": "CC200"}
    assert Decimal(po["total"]) == Decimal("212.50")

    updated = make_po(action="update", lines=[PoLine(1, "Only line", Decimal(3), Decimal("9.99"))])
    assert hook.import_po(updated, audit_ctx=ctx()).ok
    po = jag.purchase_order("111111-1001")
    assert len(po["lines"]) == 1 and Decimal(po["total"]) == Decimal("29.97")

    assert hook.import_po(make_po(action="cancel", lines=[]), audit_ctx=ctx()).ok
    assert jag.purchase_order("111111-1001")["status"] == "Cancelled"
    assert [h["action"] for h in jag.purchase_order("111111-1001")["history"]] == ["create", "update", "cancel"]


@pytest.mark.parametrize(
    "message",
    [
        "Purchase order {po_number} already exists",
        "Duplicate PONumber: {po_number}",
        "PO {po_number} has already been imported",
    ],
)
def test_repeated_po_number_is_already_exists(jag, message):
    jag.settings(po_duplicate_message=message)
    hook = jag.hook()
    assert hook.import_po(make_po(), audit_ctx=ctx()).ok
    again = hook.import_po(make_po(), audit_ctx=ctx())
    assert not again.ok and again.already_exists and again.status_code == 400


def test_rejections_with_line_errors_and_unknown_supplier(jag):
    hook = jag.hook()
    bad_lines = make_po(lines=[PoLine(1, "ok", Decimal(1), Decimal(1)), PoLine(2, "zero", Decimal(0), Decimal(1))])
    result = hook.import_po(bad_lines, audit_ctx=ctx())
    assert not result.ok and not result.already_exists
    assert list(result.line_errors) == [2] and "Quantity" in result.line_errors[2][0]
    unknown = hook.import_po(make_po(number="X-2", supplier="no-such"), audit_ctx=ctx())
    assert not unknown.ok and not unknown.already_exists and "Supplier not found" in unknown.errors[0]
    assert jag.purchase_order("111111-1001") is None and jag.purchase_order("X-2") is None


def test_drop_after_commit_is_ambiguous_and_the_po_exists(jag, sqlite_engine):
    hook = jag.hook(audit=DbAuditSink(sqlite_engine))
    jag.fault(path="POXMLImport", action="drop_after_commit", count=1)
    with pytest.raises(AmbiguousWriteError):
        hook.import_po(make_po(), audit_ctx=ctx())
    assert jag.purchase_order("111111-1001")["status"] == "Open"
    assert jag.count(PO_ENDPOINT) == 1  # never re-sent by the hook
    # what the flow does next: a plain re-send of "new" is recognised as already there
    assert hook.import_po(make_po(), audit_ctx=ctx()).already_exists
    with sqlite_engine.connect() as conn:
        outcomes = [r.outcome for r in conn.execute(select(AuditLog).order_by(AuditLog.id))]
    assert outcomes == ["ambiguous", "already_exists"]


@pytest.mark.parametrize("status,body", [(502, ""), (500, "<html>Internal error</html>"), (200, "")])
def test_no_readable_answer_is_ambiguous(jag, status, body):
    jag.fault(path="POXMLImport", status=status, body=body, count=1)
    with pytest.raises(AmbiguousWriteError, match=f"HTTP {status}"):
        jag.hook().import_po(make_po(), audit_ctx=ctx())
    assert jag.count(PO_ENDPOINT) == 1


def test_5xx_with_a_status_document_is_an_answer(jag):
    body = (
        "<PurchaseOrderMessage><ResponseMessage><Status><StatusCode>500</StatusCode><StatusText>Internal Server "
        "Error</StatusText><Errors><Error><ErrorMessage>Unable to parse XML document</ErrorMessage></Error></Errors>"
        "</Status></ResponseMessage></PurchaseOrderMessage>"
    )
    jag.fault(path="POXMLImport", status=500, body=body, count=1, headers={"content-type": "application/xml"})
    result = jag.hook().import_po(make_po(), audit_ctx=ctx())
    assert not result.ok and result.status_code == 500 and result.errors == ["Unable to parse XML document"]


def test_malformed_success_response_is_recovered(jag):
    jag.fault(path="POXMLImport", action="malformed_xml", count=1)
    result = jag.hook().import_po(make_po(), audit_ctx=ctx())
    assert result.ok and result.status_text == "Success & done"


def test_429_on_import_waits_and_sends_again(jag, sqlite_engine):
    jag.settings(retry_after=2)
    jag.fault(path="POXMLImport", action="rate_limit", count=1)
    hook = jag.hook(audit=DbAuditSink(sqlite_engine))
    assert hook.import_po(make_po(), audit_ctx=ctx()).ok
    assert jag.sleeps == [2.0]
    assert jag.count(PO_ENDPOINT) == 2
    with sqlite_engine.connect() as conn:
        rows = list(conn.execute(select(AuditLog).order_by(AuditLog.id)))
    assert [(r.outcome, r.http_status, r.attempt) for r in rows] == [("rate_limited", 429, 1), ("ok", 200, 2)]
    assert rows[-1].target_id  # the PO id JAGGAER gave it, for the audit trail


def test_429_forever_on_import_is_transient(jag):
    jag.fault(path="POXMLImport", action="rate_limit", count=None)
    with pytest.raises(TransientError, match="rate limited"):
        jag.hook().import_po(make_po(), audit_ctx=ctx())
    assert jag.purchase_order("111111-1001") is None


def test_wrong_xml_secret(jag):
    hook = jag.hook(conn={"xml_shared_secret": "not-the-xml-secret"})
    with pytest.raises(TokenChainBroken, match="XML Identity/SharedSecret refused") as info:
        hook.import_po(make_po(), audit_ctx=ctx())
    assert "not-the-xml-secret" not in str(info.value)


def test_audit_rows_have_no_secrets(jag, sqlite_engine):
    hook = jag.hook(audit=DbAuditSink(sqlite_engine))
    hook.import_po(make_po(), audit_ctx=ctx("A"))
    hook.import_po(make_po(), audit_ctx=ctx("A"))  # already exists
    hook.import_po(make_po(number="B", lines=[PoLine(1, "z", Decimal(0), Decimal(1))]), audit_ctx=ctx("B"))
    hook.sync_suppliers([Supplier("S-1", "Supplier & Co")], audit_ctx=ctx("S-1"))
    assert hook.find_company("1001") is not None  # reads are not audited
    with sqlite_engine.connect() as conn:
        rows = list(conn.execute(select(AuditLog).order_by(AuditLog.id)))
    assert [(r.source_id, r.outcome, r.http_status, r.method) for r in rows] == [
        ("A", "ok", 200, "POST"),
        ("A", "already_exists", 400, "POST"),
        ("B", "rejected", 400, "POST"),
        ("S-1", "ok", 200, "POST"),
    ]
    assert rows[0].url.endswith("/apps/Router/POXMLImport") and rows[0].tenant == "demo" and rows[0].run_id == "run-1"
    assert "already exists" in rows[1].message and "line 1" in rows[2].message
    token = next(iter(hook_module._TOKENS.values()), None)
    for row in rows:
        text = " ".join(str(v) for v in row._mapping.values())
        for secret in SECRETS:
            assert secret not in text
        assert token is None or token.value not in text


# ---------------------------------------------------------------------------------------------------------------
# suppliers


def _suppliers() -> list[Supplier]:
    return [
        Supplier(
            "9001",
            "Smith & Sons <Fasteners> Ltd",
            vat_number="GB123456789",
            duns="123456789",
            email="ap@smith.example",
            address=Address(line1="1 Mill Lane", city="Derby", postal_code="DE1 1AA", country="GB"),
        ),
        Supplier("9002", "Größe Teile GmbH", tax_id="HRB 1234"),
        Supplier("1001", "Brammer Steel Stockholders Ltd", active=False),  # an update of a seeded supplier
    ]


@pytest.mark.parametrize("success_status", [200, 202])
def test_sync_suppliers(jag, success_status):
    jag.settings(supplier_success_status=success_status)
    result = jag.hook().sync_suppliers(_suppliers(), audit_ctx=ctx())
    assert result.ok and result.status_code == success_status
    assert result.counts == {"attempted": 3, "completed": 3, "failed": 0}
    listed = jag.suppliers()
    by_number = {s["supplierNumber"]: s for s in listed}
    assert by_number["9001"]["name"] == "Smith & Sons <Fasteners> Ltd"
    assert by_number["9001"]["address"]["city"] == "Derby" and by_number["9001"]["duns"] == "123456789"
    assert by_number["9002"]["name"] == "Größe Teile GmbH"
    assert by_number["1001"]["active"] is False
    again = jag.hook().sync_suppliers(_suppliers(), audit_ctx=ctx())  # idempotent upsert
    assert again.ok and len(jag.suppliers()) == len(listed)


def test_sync_suppliers_406_per_supplier_errors(jag):
    batch = [*_suppliers()[:2], Supplier("9003", "Bad DUNS Ltd", duns="12")]
    result = jag.hook().sync_suppliers(batch, audit_ctx=ctx())
    assert not result.ok and result.status_code == 406
    assert list(result.object_errors) == ["9003"] and "DUNS" in result.object_errors["9003"][0]
    assert result.counts == {"attempted": 3, "completed": 2, "failed": 1}
    numbers = {s["supplierNumber"] for s in jag.suppliers()}
    assert {"9001", "9002"} <= numbers and "9003" not in numbers


def test_sync_suppliers_malformed_response(jag):
    jag.fault(path="TSMSupplierXMLImport", action="malformed_xml", count=1)
    assert jag.hook().sync_suppliers(_suppliers()[:1], audit_ctx=ctx()).ok


def test_sync_suppliers_resends_once_after_ambiguity(jag, sqlite_engine):
    jag.fault(path="TSMSupplierXMLImport", action="drop_after_commit", count=1)
    hook = jag.hook(audit=DbAuditSink(sqlite_engine))
    before = len(jag.suppliers())
    assert hook.sync_suppliers(_suppliers()[:2], audit_ctx=ctx()).ok
    assert jag.count(SUPPLIER_ENDPOINT) == 2
    assert len(jag.suppliers()) == before + 2  # applied twice, created once
    with sqlite_engine.connect() as conn:
        assert [r.outcome for r in conn.execute(select(AuditLog).order_by(AuditLog.id))] == ["ambiguous", "ok"]

    jag.fault(path="TSMSupplierXMLImport", action="drop_after_commit", count=2)
    with pytest.raises(AmbiguousWriteError):
        hook.sync_suppliers(_suppliers()[:2], audit_ctx=ctx())


def test_sync_nothing_sends_nothing(jag):
    hook = jag.hook()
    assert hook.sync_suppliers([], audit_ctx=ctx()).ok
    assert hook.call_count == 0


def test_xml_tenant_isolation(jag):
    acme = jag.hook("acme")
    assert acme.import_po(make_po(number="ACME-1", supplier="A100"), audit_ctx=ctx(tenant="acme")).ok
    # demo's identity cannot see acme's supplier, and acme's PO is not in demo
    assert not jag.hook().import_po(make_po(number="ACME-2", supplier="A100"), audit_ctx=ctx()).ok
    assert jag.purchase_order("ACME-1", tenant="acme") is not None
    assert jag.purchase_order("ACME-1", tenant="demo") is None


# ---------------------------------------------------------------------------------------------------------------
# test_connection


def test_test_connection_ok_creates_nothing(jag):
    before = jag.state()["counts"]
    ok, message = jag.hook().test_connection()
    assert ok, message
    assert "XML Identity/SharedSecret accepted" in message
    assert jag.state()["counts"] == before
    assert jag.count("POST /apps/Router/TSMSupplierXMLImport", status=400) == 1  # "at least one Supplier"


def test_test_connection_params_style(jag):
    jag.settings(invoice_filter_style="params")
    assert jag.hook(conn={"filter_style": "params"}).test_connection()[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "conn,expected",
    [
        ({"password": "wrong"}, "token endpoint refused client id/secret"),
        ({"login": "nobody"}, "token endpoint refused client id/secret"),
        ({"xml_shared_secret": "wrong-xml-secret"}, "XML Identity/SharedSecret refused"),
        ({"xml_identity": "NOBODY"}, "XML Identity/SharedSecret refused"),
        ({"xml_identity": None}, "XML Identity/SharedSecret not set"),
        ({"xml_url": "{url}/apps/Nowhere"}, "XML import endpoint not found (HTTP 404)"),
        ({"host": "http://127.0.0.1:{port}", "token_url": None}, "J1P host unreachable: "),
        ({"xml_url": "http://127.0.0.1:{port}/apps/Router"}, "XML host unreachable: "),
    ],
)
def test_test_connection_failures(jag, conn, expected):
    port = _closed_port()
    conn = {k: (v.format(url=jag.url, port=port) if isinstance(v, str) else v) for k, v in conn.items()}
    ok, message = jag.hook(conn=conn).test_connection()
    assert not ok
    assert message.startswith(expected), message
    for secret in (*SECRETS, "wrong-xml-secret"):
        assert secret not in message
