"""Rate limits (429 with and without Retry-After), every fault action, and the call counter."""

from __future__ import annotations

import time

import pytest
import requests
from jaggaer_support import DEMO, INVOICES, PO_IMPORT, SUPPLIER_IMPORT, JaggaerHandle, po_xml, supplier_el, supplier_xml
from lxml import etree

# ---------------------------------------------------------------------------------------------------------------
# rate limits


def test_rate_limit_without_retry_after(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.settings(rate_limit_per_minute=3)
    assert [jaggaer_sandbox.get(INVOICES, demo_token).status_code for _ in range(3)] == [200] * 3
    r = jaggaer_sandbox.get(INVOICES, demo_token)
    assert r.status_code == 429
    assert "Retry-After" not in r.headers
    # the window is a minute of the sandbox clock
    jaggaer_sandbox.advance(60)
    assert jaggaer_sandbox.get(INVOICES, demo_token).status_code == 200


def test_rate_limit_with_retry_after(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.settings(rate_limit_per_minute=1, retry_after=7)
    assert jaggaer_sandbox.get(INVOICES, demo_token).status_code == 200
    r = jaggaer_sandbox.get(f"{INVOICES}/2428001", demo_token)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    jaggaer_sandbox.settings(retry_after="none")
    assert "Retry-After" not in jaggaer_sandbox.get(INVOICES, demo_token).headers


def test_rate_limit_is_per_customer(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.settings(rate_limit_per_minute=1)
    assert jaggaer_sandbox.get(INVOICES, demo_token).status_code == 200
    assert jaggaer_sandbox.get(INVOICES, demo_token).status_code == 429
    acme = jaggaer_sandbox.token({"client_id": "acme-client", "client_secret": "acme-secret"})
    assert jaggaer_sandbox.get(INVOICES, acme).status_code == 200


def test_rate_limit_on_xml_imports(jaggaer_sandbox: JaggaerHandle) -> None:
    jaggaer_sandbox.settings(rate_limit_per_minute=1, retry_after=30)
    assert jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-R1")).status_code == 200
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-R2"))
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "30"
    assert etree.fromstring(r.content).findtext(".//StatusCode") == "429"
    r = jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, supplier_xml([supplier_el("8500")]))
    assert r.status_code == 429
    assert "PO-R2" not in jaggaer_sandbox.state()["tenants"]["demo"]["purchase_orders"]


# ---------------------------------------------------------------------------------------------------------------
# fault actions


def test_fault_status(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.fault(path="/ji/v1/invoices$", count=2, action="status", status=503, body="upstream down")
    for _ in range(2):
        r = jaggaer_sandbox.get(INVOICES, demo_token)
        assert (r.status_code, r.text) == (503, "upstream down")
    assert jaggaer_sandbox.get(INVOICES, demo_token).status_code == 200


def test_fault_latency(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.fault(path="/invoices", action="latency", delay_s=0.3)
    t0 = time.monotonic()
    r = jaggaer_sandbox.get(INVOICES, demo_token)
    assert r.status_code == 200
    assert time.monotonic() - t0 >= 0.3


def test_fault_drop_after_commit_po(jaggaer_sandbox: JaggaerHandle) -> None:
    jaggaer_sandbox.fault(method="POST", path="POXMLImport", action="drop_after_commit")
    with pytest.raises(requests.exceptions.RequestException):
        jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-DROP"))
    # the server committed: the PO is there, and a blind resend is told so
    po = jaggaer_sandbox.state()["tenants"]["demo"]["purchase_orders"]["PO-DROP"]
    assert po["status"] == "Open"
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-DROP"))
    assert r.status_code == 400 and "already exists" in r.text


def test_fault_drop_after_commit_supplier_sync(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.fault(method="POST", path="TSMSupplierXMLImport", action="drop_after_commit")
    with pytest.raises(requests.exceptions.RequestException):
        jaggaer_sandbox.post_xml(SUPPLIER_IMPORT, supplier_xml([supplier_el("8600")]))
    body = jaggaer_sandbox.get("/j1p/api/public/ja/v1/companyprofiles", demo_token, flt="extCode==8600").json()
    assert body["totRecords"] == 1


@pytest.mark.parametrize("retry_after, expected", [(None, None), (12, "12")])
def test_fault_rate_limit(jaggaer_sandbox: JaggaerHandle, demo_token: str, retry_after: int | None, expected) -> None:
    jaggaer_sandbox.settings(retry_after=retry_after)
    jaggaer_sandbox.fault(path="/invoices", action="rate_limit", count=3)
    for _ in range(3):
        r = jaggaer_sandbox.get(INVOICES, demo_token)
        assert r.status_code == 429
        assert r.headers.get("Retry-After") == expected
    assert jaggaer_sandbox.get(INVOICES, demo_token).status_code == 200
    # on the XML channel the 429 is an XML document
    jaggaer_sandbox.fault(path="POXMLImport", action="rate_limit")
    r = jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-RL"))
    assert r.status_code == 429
    assert etree.fromstring(r.content).findtext(".//StatusCode") == "429"


def test_fault_html_maintenance(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.fault(path="/invoices", action="html_maintenance")
    r = jaggaer_sandbox.get(INVOICES, demo_token)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "maintenance" in r.text.lower()


@pytest.mark.parametrize("path", [PO_IMPORT, SUPPLIER_IMPORT])
def test_fault_malformed_xml_imports(jaggaer_sandbox: JaggaerHandle, path: str) -> None:
    jaggaer_sandbox.fault(path=path, action="malformed_xml")
    body = po_xml("PO-MX") if path == PO_IMPORT else supplier_xml([supplier_el("8700")])
    r = jaggaer_sandbox.post_xml(path, body)
    assert r.status_code == 200
    assert b" & " in r.content
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(r.content)


def test_fault_malformed_xml_invoice_export(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.fault(path="/invoices", action="malformed_xml")
    r = jaggaer_sandbox.get(INVOICES, demo_token)
    assert r.status_code == 200
    assert b"Smith & Sons" in r.content
    with pytest.raises(ValueError):
        r.json()


def test_admin_is_never_faulted(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.fault(path="", action="status", status=500, count=None)
    assert jaggaer_sandbox.get(INVOICES, demo_token).status_code == 500
    assert jaggaer_sandbox.state()["tenants"]["demo"]["counts"]["invoices"] == 68
    assert len(jaggaer_sandbox.admin("GET", "/faults")) == 1
    jaggaer_sandbox.admin("DELETE", "/faults")
    assert jaggaer_sandbox.get(INVOICES, demo_token).status_code == 200


# ---------------------------------------------------------------------------------------------------------------
# call counter


def test_calls_counter(jaggaer_sandbox: JaggaerHandle) -> None:
    token = jaggaer_sandbox.token(DEMO)
    jaggaer_sandbox.get(INVOICES, token)
    jaggaer_sandbox.get(INVOICES, token, start=38)
    jaggaer_sandbox.get(f"{INVOICES}/2428001", token)
    jaggaer_sandbox.get(f"{INVOICES}/2428002", token)
    jaggaer_sandbox.fault(path="/invoices/", action="status", status=502)
    jaggaer_sandbox.get(f"{INVOICES}/2428003", token)
    jaggaer_sandbox.post_xml(PO_IMPORT, po_xml("PO-C"))
    calls = jaggaer_sandbox.admin("GET", "/calls")
    assert calls["total"] == 7
    assert calls["by_endpoint"] == {
        "POST /auth/realms/J1p-integrations/protocol/openid-connect/token": 1,
        "GET /j1p/api/public/ji/v1/invoices": 2,
        "GET /j1p/api/public/ji/v1/invoices/{invoice_id}": 3,
        "POST /apps/Router/POXMLImport": 1,
    }
    assert [c["status"] for c in calls["log"]][-2:] == [502, 200]
    jaggaer_sandbox.admin("DELETE", "/calls")
    assert jaggaer_sandbox.admin("GET", "/calls")["total"] == 0
