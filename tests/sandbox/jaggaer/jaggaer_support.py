"""Helpers for the JAGGAER sandbox tests: a handle on a running server and XML message builders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import requests
from fastapi import FastAPI

from sandbox.jaggaer import JaggaerSandbox

TOKEN_PATH = "/auth/realms/J1p-integrations/protocol/openid-connect/token"
INVOICES = "/j1p/api/public/ji/v1/invoices"
PROFILES = "/j1p/api/public/ja/v1/companyprofiles"
PO_IMPORT = "/apps/Router/POXMLImport"
SUPPLIER_IMPORT = "/apps/Router/TSMSupplierXMLImport"

DEMO = {
    "client_id": "mlc-demo",
    "client_secret": "mlc-demo-secret",
    "identity": "MLCDEMO",
    "secret": "mlc-demo-xml-secret",
}
ACME = {"client_id": "acme-client", "client_secret": "acme-secret", "identity": "ACME", "secret": "acme-xml-secret"}


@dataclass
class JaggaerHandle:
    """A running JAGGAER sandbox: base URL, the app and its state, and small client helpers."""

    url: str
    app: FastAPI
    sandbox: JaggaerSandbox
    http: requests.Session = field(default_factory=requests.Session)

    # -- admin ---------------------------------------------------------------------------------------------
    def admin(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, f"{self.url}/_admin{path}", timeout=30, **kw)
        r.raise_for_status()
        return r.json()

    def reset(self, **params: Any) -> Any:
        return self.admin("POST", "/reset", json=params or None)

    def settings(self, **changes: Any) -> dict[str, Any]:
        return self.admin("POST", "/settings", json=changes)

    def fault(self, **rule: Any) -> list[dict[str, Any]]:
        return self.admin("POST", "/faults", json=rule)

    def advance(self, seconds: float) -> dict[str, Any]:
        return self.admin("POST", "/clock", json={"advance": seconds})

    def state(self) -> dict[str, Any]:
        return self.admin("GET", "/state")

    # -- J1P -----------------------------------------------------------------------------------------------
    def token_response(self, client_id: str, client_secret: str, **extra: str) -> requests.Response:
        data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret, **extra}
        return self.http.post(f"{self.url}{TOKEN_PATH}", data=data, timeout=10)

    def token(self, creds: dict[str, str] = DEMO) -> str:
        r = self.token_response(creds["client_id"], creds["client_secret"])
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def get(self, path: str, token: str | None = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(f"{self.url}{path}", params=params, headers=headers, timeout=10)

    def all_invoice_headers(self, token: str, **params: Any) -> list[dict[str, Any]]:
        """Page the invoice list the way the contract says: start += returnedRecords until done."""
        out: list[dict[str, Any]] = []
        start = 1
        while True:
            body = self.get(INVOICES, token, start=start, **params).json()
            assert int(body["returnCode"]) == 0, body
            items = body.get("jiinvoiceList", {}).get("jiinvoice", [])
            assert body["returnedRecords"] == len(items)
            out += [i["header"] for i in items]
            if body["returnedRecords"] == 0:
                break
            start += body["returnedRecords"]
            if start - 1 >= body["totRecords"]:
                break
        return out

    # -- XML -----------------------------------------------------------------------------------------------
    def post_xml(self, path: str, body: str | bytes) -> requests.Response:
        data = body.encode() if isinstance(body, str) else body
        return self.http.post(f"{self.url}{path}", data=data, headers={"Content-Type": "application/xml"}, timeout=10)


def _auth(identity: str, secret: str) -> str:
    return (
        "<Header><MessageId>msg-1</MessageId><Timestamp>2026-11-23T10:00:00Z</Timestamp>"
        f"<Authentication><Identity>{escape(identity)}</Identity><SharedSecret>{escape(secret)}</SharedSecret>"
        "</Authentication></Header>"
    )


def po_line(
    n: int | str, qty: Any = 2, price: Any = "12.50", desc: str = "Hex bolt M8x25", currency: str = "GBP"
) -> str:
    return (
        f'<POLine linenumber="{n}"><Item><Description>{escape(desc)}</Description>'
        "<CatalogNumber>CP-M8X25-HT</CatalogNumber><ProductUnitOfMeasure>EA</ProductUnitOfMeasure>"
        "<CommodityCode>31161500</CommodityCode></Item>"
        f'<Quantity>{qty}</Quantity><LineCharges><UnitPrice><Money currency="{currency}">{price}</Money>'
        "</UnitPrice></LineCharges>"
        '<CustomFieldValueSet name="GLAccount"><CustomFieldValue><Value>7010</Value></CustomFieldValue>'
        "</CustomFieldValueSet>"
        '<CustomFieldValueSet name="CostCenter"><CustomFieldValue><Value>CC100</Value></CustomFieldValue>'
        "</CustomFieldValueSet></POLine>"
    )


def po_xml(
    po_number: str,
    *,
    supplier: str = "<SupplierNumber>1001</SupplierNumber>",
    lines: list[str] | None = None,
    type: str | None = None,
    identity: str = DEMO["identity"],
    secret: str = DEMO["secret"],
) -> str:
    type_attr = f' type="{type}"' if type else ""
    body_lines = "".join(lines if lines is not None else [po_line(1), po_line(2, qty=5, price="3.10")])
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<PurchaseOrderMessage version="2.0">{_auth(identity, secret)}<PurchaseOrder>'
        f"<POHeader{type_attr}><PONumber>{escape(po_number)}</PONumber><OrderDate>2026-11-23</OrderDate>"
        f"<Supplier>{supplier}</Supplier>"
        "<BillTo><Address><AddressLine1>1 Foleshill Road</AddressLine1><City>Coventry</City></Address></BillTo>"
        "<PaymentInfo><Terms>Net 30</Terms></PaymentInfo>"
        '<CustomFieldValueSet name="BusinessUnit"><CustomFieldValue><Value>UK-MFG</Value></CustomFieldValue>'
        "</CustomFieldValueSet>"
        f"</POHeader>{body_lines}</PurchaseOrder></PurchaseOrderMessage>"
    )


def supplier_el(erp: str, name: str | None = "New Supplier Ltd", **fields: str) -> str:
    parts = [f"<ERPNumber>{escape(erp)}</ERPNumber>"]
    if name is not None:
        parts.append(f"<Name>{escape(name)}</Name>")
    for tag in ("Active", "VatIdentificationNumber", "TaxIdentificationNumber", "DUNS"):
        if tag in fields:
            parts.append(f"<{tag}>{escape(fields[tag])}</{tag}>")
    parts.append(
        '<AddressList><Address type="remitto"><AddressLine1>1 High Street</AddressLine1><City>Leeds</City>'
        "<PostalCode>LS1 1AA</PostalCode><IsoCountryCode>GB</IsoCountryCode></Address></AddressList>"
        '<ContactList><Contact type="accounts"><FirstName>Ann</FirstName><Email>ann@example.com</Email>'
        "</Contact></ContactList>"
    )
    return "<Supplier>" + "".join(parts) + "</Supplier>"


def supplier_xml(suppliers: list[str], *, identity: str = DEMO["identity"], secret: str = DEMO["secret"]) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><SupplierSyncMessage version="1.0">'
        f"{_auth(identity, secret)}<SupplierRequestMessage>{''.join(suppliers)}</SupplierRequestMessage>"
        "</SupplierSyncMessage>"
    )
