"""Money arithmetic (property-based) and the invoice → purchase-entry transform, without any server."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_connector.flows.invoice_poll.build import EntryInvalid, plan_entry
from ml_connector.flows.invoice_poll.invoice import InvoiceDataError, jsonable, parse_invoice, rate_key
from ml_connector.flows.invoice_poll.master import GL, MasterData
from ml_connector.flows.invoice_poll.money import CENT, allocate, money
from ml_connector.mappings.codes import CodeRules, normalize_rate

cents = st.integers(min_value=-10_000_000, max_value=10_000_000).map(lambda c: Decimal(c) * CENT)
weights = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=8).filter(lambda w: sum(w) > 0)


@given(total=cents, ws=weights)
@settings(max_examples=300, deadline=None)
def test_allocate_adds_up_exactly_and_stays_within_a_cent(total: Decimal, ws: list[int]) -> None:
    parts = allocate(total, [Decimal(w) for w in ws])
    assert sum(parts, Decimal(0)) == total
    weight_sum = Decimal(sum(ws))
    for part, w in zip(parts, ws, strict=True):
        exact = total * Decimal(w) / weight_sum
        assert abs(part - exact) < CENT
        assert part == part.quantize(CENT)
        assert part == 0 or (part > 0) == (total > 0)  # never the opposite sign of the whole
        if w == 0:
            assert part == 0


@given(total=cents)
def test_allocate_sixty_forty(total: Decimal) -> None:
    a, b = allocate(total, [Decimal(60), Decimal(40)])
    assert a + b == total
    assert abs(a - total * Decimal("0.6")) < CENT


def test_allocate_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        allocate(Decimal("1.00"), [])
    with pytest.raises(ValueError):
        allocate(Decimal("1.00"), [Decimal(0)])
    with pytest.raises(ValueError):
        allocate(Decimal("1.001"), [Decimal(1)])
    assert allocate(Decimal("100.00"), [Decimal(1)] * 3) == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]


def test_rates_normalise() -> None:
    assert normalize_rate("20.00") == "20" == rate_key(Decimal("20.00"))
    assert normalize_rate(" 17.50 % ") == "17.5"
    assert normalize_rate("0.0") == "0"
    with pytest.raises(ValueError):
        normalize_rate("twenty")


# ------------------------------------------------------------------------------------------------ plan_entry
def _split(*shares: tuple[str, Any], amount: bool = False) -> dict[str, Any]:
    return {
        "splittableFieldSetGroup": [
            {
                "splittableFieldIndexSet": [
                    {
                        "distributionType": "AmountOfPrice" if amount else "PercentOfPrice",
                        "splittableFieldIndexList": {
                            "splittableFieldIndex": [
                                {
                                    "splitIndex": i,
                                    "distributionValue": value,
                                    "customFieldValueList": {
                                        "customFieldValue": [
                                            {"internalName": "CostCenter", "value": cc},
                                            {"internalName": "GLAccount", "value": "7000"},
                                        ]
                                    },
                                }
                                for i, (cc, value) in enumerate(shares)
                            ]
                        },
                    }
                ]
            }
        ]
    }


def _line(n: int, net: Decimal, rate: Decimal, *, splits: dict[str, Any] | None = None, tax: bool = True) -> dict:
    line: dict[str, Any] = {
        "lineNumber": n,
        "item": {"description": f"item {n}"},
        "extendedPrice": net,
        "customFieldValueSetList": {
            "customFieldValueSet": [
                {"name": "TaxRate", "customFieldValueList": {"customFieldValue": [{"value": str(rate)}]}}
            ]
        },
    }
    if tax:
        line["taxCharge1"] = money(net * rate / 100)
    if splits:
        line["splittableFieldSetGroupList"] = splits
    return line


def _detail(lines: list[dict], *, kind: str = "Invoice", shipping: str = "0", discount: str = "0", **header: Any):
    subtotal = sum((Decimal(str(line["extendedPrice"])) for line in lines), Decimal(0))
    tax = sum((Decimal(str(line.get("taxCharge1", 0))) for line in lines), Decimal(0))
    total = subtotal + tax + Decimal(shipping) - Decimal(discount)
    head = {
        "invoiceId": 777,
        "invoiceNumber": "I00777",
        "supplierInvoiceNumber": "SUP-777",
        "invoiceType": kind,
        "invoiceDate": "2026-11-20T00:00:00.000Z",
        "dueDate": "2026-12-20T00:00:00.000Z",
        "businessUnit": "UK-MFG",
        "supplier": {"id": 50001, "name": "Brammer Steel Stockholders Ltd", "supplierNumber": "1001"},
        "taxCharge1": tax,
        "shippingCharge": Decimal(shipping),
        "discountAmount": Decimal(discount),
        "total": {"currency": "GBP", "value": total},
    }
    head.update(header)
    return jsonable({"header": head, "lineList": {"invoiceLine": lines}})


def _rules(**invoice_poll: Any) -> CodeRules:
    from invoice_poll_support import demo_tenant

    return CodeRules(tenant=demo_tenant(**invoice_poll), overrides={})


def _master() -> MasterData:
    return MasterData(
        division=111111,
        gl={"7000": GL("gl-7000", "7000", False), "7999": GL("gl-7999", "7999", True)},
        cost_centers={"CC100": ("CC100", True), "CC300": ("CC300", True), "CC900": ("CC900", False)},
        vat_codes={"1": ("1", False), "2": ("2", False), "3": ("3", False), "9": ("9", True)},
        journals={"60": 22, "70": 20},
    )


def _plan(detail: dict, **kw: Any) -> Any:
    return plan_entry(
        parse_invoice(detail),
        division=111111,
        supplier_id="f9759f89-5178-5372-89ec-7d11fae93a97",
        rules=kw.pop("rules", None) or _rules(),
        master=kw.pop("master", _master()),
    )


def test_a_split_line_becomes_two_exact_lines_that_add_up() -> None:
    detail = _detail(
        [
            _line(1, Decimal("100.01"), Decimal(20), splits=_split(("CC100", 60), ("CC300", 40))),
            _line(2, Decimal("50.00"), Decimal(5)),
        ],
        shipping="12.50",
        discount="3.00",
    )
    entry = _plan(detail)
    body = entry.body()
    assert body["Journal"] == "60" and body["YourRef"] == "SUP-777" and body["EntryDate"].startswith("2026-11-20")
    assert body["ExternalLinkReference"] == "JAGGAER:777" and "I00777" in body["Description"]
    amounts = [(line.cost_center, line.amount, line.vat_code, line.vat_amount) for line in entry.lines]
    assert amounts[:2] == [
        ("CC100", Decimal("60.01"), "1", Decimal("12.00")),
        ("CC300", Decimal("40.00"), "1", Decimal("8.00")),
    ]
    assert amounts[2] == ("CC100", Decimal("50.00"), "2", Decimal("2.50"))
    assert [(line.description.split(" (")[0], line.amount, line.vat_code) for line in entry.lines[3:]] == [
        ("Shipping charge", Decimal("12.50"), "3"),
        ("Discount", Decimal("-3.00"), "3"),
    ]
    assert entry.total == Decimal(str(detail["header"]["total"]["value"]))
    assert all(line["GLAccount"] == "gl-7000" for line in body["PurchaseEntryLines"])


def test_credit_memo_sent_with_positive_amounts_becomes_negative() -> None:
    detail = _detail([_line(1, Decimal("40.00"), Decimal(20))], kind="Credit memo")
    entry = _plan(detail)
    assert entry.total == Decimal("-48.00")
    assert [line.amount for line in entry.lines] == [Decimal("-40.00")]


def test_every_problem_is_named_with_its_fix() -> None:
    detail = _detail(
        [_line(1, Decimal("10.00"), Decimal("17.5"), splits=_split(("CC900", 100)))],
        kind="Odd type",
    )
    detail["header"]["total"]["value"] = "99.99"
    with pytest.raises(EntryInvalid) as err:
        _plan(detail)
    text = str(err.value)
    assert "no GL account for invoice type 'Odd type'" in text and "--kind gl_account" in text
    assert "no Exact VAT code for tax rate 17.5%" in text
    assert "but the invoice total is 99.99" in text
    assert "cost centre 'CC900' is inactive" in text


def test_master_data_checks() -> None:
    detail = _detail([_line(1, Decimal("10.00"), Decimal(20))])
    rules = _rules(journal="70", gl_by_invoice_type={"Invoice": "7999"})
    with pytest.raises(EntryInvalid) as err:
        _plan(detail, rules=rules)
    assert "journal '70'" in str(err.value) and "not a purchase journal" in str(err.value)
    assert "GL account '7999' is blocked" in str(err.value)
    # offline (no master data): only the configuration is checked
    assert _plan(detail, rules=rules, master=None).journal == "70"


def test_rounding_within_tolerance_is_accepted_and_unreadable_data_is_named() -> None:
    detail = _detail([_line(1, Decimal("10.00"), Decimal(20))])
    detail["header"]["total"]["value"] = "12.01"
    assert _plan(detail).total == Decimal("12.00")
    detail["header"]["total"]["value"] = "twelve"
    with pytest.raises(InvoiceDataError, match="total"):
        parse_invoice(detail)


line_st = st.tuples(
    st.integers(min_value=-500_000, max_value=500_000).map(lambda c: Decimal(c) * CENT),
    st.sampled_from([Decimal(20), Decimal(5), Decimal(0)]),
    st.lists(st.integers(min_value=1, max_value=100), min_size=0, max_size=4),
)


@given(lines=st.lists(line_st, min_size=1, max_size=5), shipping=st.integers(0, 5000), discount=st.integers(0, 500))
@settings(max_examples=150, deadline=None)
def test_entries_always_add_up_to_the_invoice(lines: list[Any], shipping: int, discount: int) -> None:
    built = []
    for n, (net, rate, shares) in enumerate(lines, start=1):
        ccs = ["CC100", "CC300"]
        splits = _split(*[(ccs[i % 2], s) for i, s in enumerate(shares)]) if shares else None
        built.append(_line(n, net, rate, splits=splits))
    ship, disc = Decimal(shipping) * CENT, Decimal(discount) * CENT
    detail = _detail(built, shipping=str(ship), discount=str(disc))
    entry = _plan(detail)
    invoice = parse_invoice(detail)
    assert entry.net == invoice.subtotal + ship - disc
    assert entry.vat == invoice.tax1
    assert entry.total == invoice.total
    for line in entry.lines:
        assert line.amount == line.amount.quantize(CENT) and line.vat_amount == line.vat_amount.quantize(CENT)
