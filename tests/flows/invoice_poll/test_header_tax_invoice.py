"""A header-tax invoice through the whole flow (issue 11), real HTTP against both sandboxes: JAGGAER serves the
common J1P shape — the tax only on the header (``taxCharge1``, ``tax1HeaderChargeDetail``), lines flagged
``taxable`` "true"/"false" with neither line tax nor a rate — and Exact receives the taxable lines on the taxable
VAT code with the header tax spread over them, the non-taxable line on the zero-rate code."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from invoice_poll_support import DIV_MFG, World

DETAIL_PATH = "/j1p/api/public/ji/v1/invoices/{id}$"


def header_tax_shape(j1p: dict[str, Any]) -> dict[str, Any]:
    """The sandbox's line-tax detail turned into the header-tax shape: line taxes and rate fields removed."""
    detail = copy.deepcopy(j1p)
    for line in detail["lineList"]["invoiceLine"]:
        line.pop("taxCharge1", None)
        line.pop("taxCharge2", None)
        line.pop("customFieldValueSetList", None)  # TaxCode / TaxRate
    return {"returnCode": 0, "returnMessage": "", **detail}


def serve(w: World, invoice_id: Any, body: dict[str, Any]) -> None:
    """JAGGAER's J1P detail endpoint answers ``body`` for this invoice (HTTP 200) until the faults are cleared."""
    w.jag("POST", "faults", {"path": DETAIL_PATH.format(id=invoice_id), "count": None, "status": 200, "body": body})


def _lines(entry: dict[str, Any]) -> list[tuple[float, str, float]]:
    return [(ln["AmountFC"], ln["VATCode"], ln["VATAmountFC"]) for ln in entry["PurchaseEntryLines"]]


def test_header_tax_invoice_is_posted_with_its_taxable_lines_on_the_taxable_vat_code(world: World) -> None:
    w = world
    created = w.invoice(
        supplier_number="1001",
        supplier_invoice_number="HDR-TAX-1",
        lines=[
            {"unit_price": "100.00", "quantity": 3, "vat_code": "1"},  # 300.00 taxable
            {"unit_price": "33.33", "vat_code": "1"},  # 33.33 taxable
            {"unit_price": "40.00", "vat_code": "3"},  # 40.00 zero rated: taxable "false"
        ],
    )
    served = header_tax_shape(created["j1p"])
    header = served["header"]
    assert Decimal(str(header["taxCharge1"])) == Decimal("66.67")  # 60.00 + 6.67 (the supplier's per-line rounding)
    assert [line["taxable"] for line in served["lineList"]["invoiceLine"]] == ["true", "true", "false"]
    assert all("taxCharge1" not in line for line in served["lineList"]["invoiceLine"])
    serve(w, created["summary"]["invoiceId"], served)
    try:
        summary = w.run()
    finally:
        w.jag("DELETE", "faults")

    assert summary["counts"]["posted"] == 1 and not summary["problems"], summary
    [entry] = w.entries_for("HDR-TAX-1")
    assert entry["Division"] == DIV_MFG
    # 66.67 over 333.33 of taxable net: 300.00 gets 60.00 (60.0006), 33.33 gets 6.67 (6.6664) — largest remainder
    assert _lines(entry) == [(300.0, "1", 60.0), (33.33, "1", 6.67), (40.0, "3", 0.0)]
    assert Decimal(str(entry["AmountFC"])) == Decimal(created["summary"]["total"]) == Decimal("440.00")


def test_header_tax_at_a_rate_the_tenant_does_not_know_is_quarantined_without_calling_exact(world: World) -> None:
    w = world
    created = w.invoice(supplier_number="1001", supplier_invoice_number="HDR-TAX-ODD", lines=[{"unit_price": "200.00"}])
    served = header_tax_shape(created["j1p"])
    served["header"]["taxCharge1"] = 37.5  # 18.75 % of 200.00
    served["header"]["tax1HeaderChargeDetail"]["currentTax"] = 37.5
    served["header"]["total"]["value"] = 237.5
    serve(w, created["summary"]["invoiceId"], served)
    try:
        summary = w.run()
    finally:
        w.jag("DELETE", "faults")
    assert summary["counts"].get("posted", 0) == 0 and summary["counts"]["quarantined"] == 1
    entry = w.ledger(created["summary"]["invoiceId"])
    assert entry.state == "quarantined"
    assert "the header tax 37.50 over the taxable lines' net 200.00 implies a rate of 18.75 %" in entry.reason
    assert w.entries_for("HDR-TAX-ODD") == []
    posts = {
        k: n for k, n in w.exact.calls()["by_endpoint"].items() if k.startswith("POST ") and "PurchaseEntries" in k
    }
    assert posts == {}  # quarantined before Exact was asked
