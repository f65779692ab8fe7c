"""Invoice data errors name the field and the value (issue 13), and the currency is checked locally (issue 11):
an unreadable date, a line whose quantity x unit price is not its extended price, a currency that is not ISO 4217
or not booked by the division — each quarantined with the figures, without a POST to Exact, while the other
invoices of the run are posted. Real HTTP against both sandboxes (the details JAGGAER's admin API cannot create are
served through its fault injection)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from invoice_poll_support import DIV_MFG, World, demo_tenant
from test_money_and_build import _detail, _line, _plan, _rules

from ml_connector.flows.invoice_poll.build import EntryInvalid
from ml_connector.flows.invoice_poll.invoice import InvoiceDataError, parse_invoice

DETAIL_PATH = "/j1p/api/public/ji/v1/invoices/{id}$"
POST_ENTRY = "POST /api/v1/{division}/purchaseentry/PurchaseEntries"


# ------------------------------------------------------------------------------------------------ without servers
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("invoiceDate", "31/12/2026", "invoiceDate '31/12/2026' is not an ISO date (YYYY-MM-DD)"),
        ("dueDate", "2026-13-01", "dueDate '2026-13-01' is not an ISO date (YYYY-MM-DD)"),
        ("lastUpdate", "yesterday", "lastUpdate 'yesterday' is not an ISO-8601 timestamp"),
        ("taxCharge1", "twenty", "taxCharge1 'twenty' is not a number"),
    ],
)
def test_a_bad_header_field_is_named_with_its_value(field: str, value: str, message: str) -> None:
    detail = _detail([_line(1, Decimal("10.00"), Decimal(20))])
    detail["header"][field] = value
    with pytest.raises(InvoiceDataError) as err:
        parse_invoice(detail)
    assert str(err.value) == f"invoice I00777: {message}"
    assert "isoformat" not in str(err.value)


def test_a_bad_line_field_is_named_with_its_line_and_value() -> None:
    detail = _detail([_line(1, Decimal("10.00"), Decimal(20))])
    detail["lineList"]["invoiceLine"][0]["quantity"] = "2 boxes"
    with pytest.raises(InvoiceDataError, match=r"invoice I00777: line 1 quantity '2 boxes' is not a number"):
        parse_invoice(detail)
    detail = _detail([_line(1, Decimal("10.00"), Decimal(20))])
    detail["lineList"]["invoiceLine"][0]["taxable"] = "perhaps"
    with pytest.raises(InvoiceDataError, match=r"line 1 taxable 'perhaps' is not \"true\" or \"false\""):
        parse_invoice(detail)
    detail = _detail([_line(1, Decimal("10.00"), Decimal(20))])
    detail["lineList"]["invoiceLine"][0]["customFieldValueSetList"]["customFieldValueSet"][0]["customFieldValueList"][
        "customFieldValue"
    ][0]["value"] = "120"
    with pytest.raises(InvoiceDataError, match=r"line 1 custom field TaxRate '120' is not a tax rate between 0"):
        parse_invoice(detail)


def test_quantity_times_unit_price_must_be_the_extended_price() -> None:
    line = _line(1, Decimal("50.00"), Decimal(20))
    line.update({"quantity": "-5", "unitPrice": "10.00"})  # a negative quantity with a positive extended price
    with pytest.raises(EntryInvalid) as err:
        _plan(_detail([line]))
    assert (
        "line 1: quantity -5 x unitPrice 10.00 = -50.00, but its extendedPrice is 50.00 (difference -100.00, "
        "tolerance 0.02)" in str(err.value)
    )
    line.update({"quantity": "3", "unitPrice": "16.667"})  # 50.001: within the tolerance
    assert _plan(_detail([line])).net == Decimal("50.00")


def test_a_credit_memo_sent_positive_keeps_quantity_and_price_consistent() -> None:
    line = _line(1, Decimal("40.00"), Decimal(20))
    line.update({"quantity": "4", "unitPrice": "10.00"})
    entry = _plan(_detail([line], kind="Credit memo"))
    assert entry.total == Decimal("-48.00")


@pytest.mark.parametrize(
    ("currency", "message"),
    [
        ("XYZ", "currency 'XYZ' is not an ISO 4217 code"),
        ("gbp", "currency 'gbp' is not an ISO 4217 code"),
        ("£", "currency '£' is not an ISO 4217 code"),
    ],
)
def test_a_currency_that_is_not_iso_4217_is_refused_locally(currency: str, message: str) -> None:
    detail = _detail([_line(1, Decimal("10.00"), Decimal(20))])
    detail["header"]["total"]["currency"] = currency
    with pytest.raises(EntryInvalid) as err:
        _plan(detail)
    assert message in str(err.value) and "--kind currency" in str(err.value)


def test_a_currency_the_division_does_not_book_is_refused_and_a_code_map_can_fix_it() -> None:
    detail = _detail([_line(1, Decimal("10.00"), Decimal(20))])
    detail["header"]["total"]["currency"] = "EUR"
    rules = _rules(currencies_by_division={111111: ["GBP"]})
    with pytest.raises(EntryInvalid) as err:
        _plan(detail, rules=rules)
    assert "currency EUR is not accepted by Exact division 111111 (it books GBP" in str(err.value)
    assert _plan(detail, rules=_rules(currencies_by_division={111111: ["GBP", "EUR"]})).currency == "EUR"
    assert _plan(detail, rules=_rules(currencies_by_division={222222: ["GBP"]})).currency == "EUR"  # not listed
    detail["header"]["total"]["currency"] = "STG"  # a JAGGAER spelling mapped to the ISO code
    mapped = _rules(currencies_by_division={111111: ["GBP"]})
    mapped.overrides["currency"] = {"STG": "GBP"}
    assert _plan(detail, rules=mapped).currency == "GBP"


# ------------------------------------------------------------------------------------------------ through the flow
def _serve(w: World, invoice_id: Any, mutate: Any, j1p: dict[str, Any]) -> None:
    detail = copy.deepcopy(j1p)
    mutate(detail)
    body = {"returnCode": 0, "returnMessage": "", **detail}
    w.jag("POST", "faults", {"path": DETAIL_PATH.format(id=invoice_id), "count": None, "status": 200, "body": body})


def _posts(w: World) -> int:
    return int(w.exact.calls()["by_endpoint"].get(POST_ENTRY, 0))


def test_bad_invoice_data_is_quarantined_with_field_and_value_while_the_rest_is_posted(world: World) -> None:
    w = world
    good = w.invoice(hour=8, supplier_invoice_number="DATA-OK", lines=[{"unit_price": "10.00"}])
    bad_date = w.invoice(hour=9, supplier_invoice_number="DATA-DATE", lines=[{"unit_price": "10.00"}])
    bad_qty = w.invoice(hour=10, supplier_invoice_number="DATA-QTY", lines=[{"unit_price": "10.00", "quantity": 5}])
    bad_cur = w.invoice(hour=11, supplier_invoice_number="DATA-CUR", currency="XYZ", lines=[{"unit_price": "10.00"}])

    def date(detail: dict[str, Any]) -> None:
        detail["header"]["invoiceDate"] = "31/12/2026"

    def qty(detail: dict[str, Any]) -> None:
        detail["lineList"]["invoiceLine"][0]["quantity"] = -5

    _serve(w, bad_date["summary"]["invoiceId"], date, bad_date["j1p"])
    _serve(w, bad_qty["summary"]["invoiceId"], qty, bad_qty["j1p"])
    try:
        summary = w.run()
    finally:
        w.jag("DELETE", "faults")

    assert len(w.entries_for("DATA-OK")) == 1 and good["summary"]["invoiceId"]
    assert summary["counts"]["posted"] == 1 and summary["counts"]["quarantined"] == 3
    assert _posts(w) == 1  # nothing of the bad three reached Exact

    reason = w.ledger(bad_date["summary"]["invoiceId"]).reason
    assert "invoiceDate '31/12/2026' is not an ISO date (YYYY-MM-DD)" in reason and "isoformat" not in reason
    reason = w.ledger(bad_qty["summary"]["invoiceId"]).reason
    assert "line 1: quantity -5 x unitPrice 10 = -50.00, but its extendedPrice is 50 (difference -100.00" in reason
    reason = w.ledger(bad_cur["summary"]["invoiceId"]).reason
    assert "currency 'XYZ' is not an ISO 4217 code" in reason


def test_a_currency_the_division_does_not_book_is_quarantined_without_calling_exact(sqlite_world: World) -> None:
    w = sqlite_world
    w.tenant = demo_tenant(currencies_by_division={DIV_MFG: ["GBP"]})
    eur = w.invoice(hour=9, supplier_invoice_number="CUR-EUR", currency="EUR", lines=[{"unit_price": "10.00"}])
    gbp = w.invoice(hour=10, supplier_invoice_number="CUR-GBP", lines=[{"unit_price": "10.00"}])
    summary = w.run()
    assert summary["counts"]["posted"] == 1 and len(w.entries_for("CUR-GBP")) == 1 and gbp
    assert w.entries_for("CUR-EUR") == [] and _posts(w) == 1
    entry = w.ledger(eur["summary"]["invoiceId"])
    assert entry.state == "quarantined"
    assert f"currency EUR is not accepted by Exact division {DIV_MFG} (it books GBP" in entry.reason

    # the tenant lets the division book EUR: the next run posts it by itself (a validation quarantine is re-checked)
    w.tenant = demo_tenant(currencies_by_division={DIV_MFG: ["GBP", "EUR"]})
    w.run()
    [entry_eur] = w.entries_for("CUR-EUR")
    assert entry_eur["Currency"] == "EUR"


def test_the_placeholder_of_an_unreadable_invoice_is_never_taken_for_an_invoice() -> None:
    """What extract stages for an invoice whose detail could not be read (its list header): requeued by hand, it is
    quarantined again as unreadable data, never posted."""
    placeholder = {"header": {"invoiceId": 5, "invoiceNumber": "I00005"}, "unreadable": True}
    with pytest.raises(InvoiceDataError, match=r"invoice I00005: JAGGAER's detail could not be read yet"):
        parse_invoice(placeholder)
