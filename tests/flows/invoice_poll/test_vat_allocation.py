"""VAT as the supplier billed it (issue 11): both J1P tax shapes, mixed taxable / non-taxable lines, several rates
and credit memos land on the right Exact VAT codes with amounts that add up to the cent. Property-based over
generated invoices, plus the cases that must be quarantined. No server: ``plan_entry`` is what validate and post
use."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_money_and_build import _master, _plan, _rules, _split

from ml_connector.flows.invoice_poll.build import EntryInvalid
from ml_connector.flows.invoice_poll.invoice import jsonable, parse_invoice
from ml_connector.flows.invoice_poll.money import CENT, money, round_shares
from ml_connector.flows.invoice_poll.vat import shape_of

#: The demo tenant's ``invoice_poll.vat_codes``.
CODE = {Decimal(20): "1", Decimal(5): "2", Decimal(0): "3"}
RATES = sorted(CODE)


@dataclass(frozen=True)
class GenLine:
    net: Decimal  # positive as generated; a credit memo negates it (or JAGGAER sends it positive)
    rate: Decimal
    shares: tuple[int, ...]  # accounting split percentages ((): none)


def _line_json(n: int, line: GenLine, sign: int, *, line_tax: bool, rate_field: bool) -> dict[str, Any]:
    net = line.net * sign
    out: dict[str, Any] = {
        "lineNumber": n,
        "item": {"description": f"item {n}"},
        "quantity": 1,
        "unitPrice": net,
        "extendedPrice": net,
        "taxable": "true" if line.rate > 0 else "false",
    }
    if line_tax:
        out["taxCharge1"] = money(net * line.rate / 100)
        out["taxCharge2"] = 0
    if rate_field:
        out["customFieldValueSetList"] = {
            "customFieldValueSet": [
                {"name": "TaxRate", "customFieldValueList": {"customFieldValue": [{"value": str(line.rate)}]}}
            ]
        }
    if line.shares:
        ccs = ["CC100", "CC300"]
        out["splittableFieldSetGroupList"] = _split(*[(ccs[i % 2], s) for i, s in enumerate(line.shares)])
    return out


def gen_detail(
    lines: list[GenLine],
    *,
    shape: str,
    credit: bool = False,
    credit_positive: bool = False,
    rate_field: bool = False,
    round_per_line: bool = True,
    shipping: Decimal = Decimal(0),
    tax2_share: int = 0,
) -> dict[str, Any]:
    """A J1P detail. ``shape``: ``line`` (tax on every line) or ``header`` (tax on the header only, lines flagged
    taxable). A credit memo carries negative amounts, or positive ones when ``credit_positive``."""
    sign = -1 if credit and not credit_positive else 1
    built = [
        _line_json(n, line, sign, line_tax=shape == "line", rate_field=rate_field)
        for n, line in enumerate(lines, start=1)
    ]
    if round_per_line:
        tax = sum((money(line.net * sign * line.rate / 100) for line in lines), Decimal(0))
    else:  # the supplier computed the tax on the taxable total per rate
        tax = sum(
            (money(sum((ln.net * sign for ln in lines if ln.rate == r), Decimal(0)) * r / 100) for r in RATES),
            Decimal(0),
        )
    subtotal = sum((line.net * sign for line in lines), Decimal(0))
    tax2 = money(tax * tax2_share / 100) if shape == "header" else Decimal(0)
    ship = shipping * sign
    header = {
        "invoiceId": 4242,
        "invoiceNumber": "I04242",
        "supplierInvoiceNumber": "SUP-4242",
        "invoiceType": "Credit memo" if credit else "Invoice",
        "invoiceDate": "2026-11-20T00:00:00.000Z",
        "dueDate": "2026-12-20T00:00:00.000Z",
        "businessUnit": "UK-MFG",
        "supplier": {"id": 50001, "name": "Brammer Steel Stockholders Ltd", "supplierNumber": "1001"},
        "taxCharge1": tax - tax2,
        "taxCharge2": tax2,
        "tax1HeaderChargeDetail": {"currentTax": tax - tax2, "engineTax": 0},
        "shippingCharge": ship,
        "handlingCharge": 0,
        "discountAmount": 0,
        "total": {"currency": "GBP", "value": subtotal + tax + ship},
    }
    return jsonable({"header": header, "lineList": {"invoiceLine": built}})


# at least 10.00: a split share is then never below a cent, and 20 % / 5 % / 0 % are told apart by the amounts
nets = st.integers(min_value=1_000, max_value=500_000).map(lambda c: Decimal(c) * CENT)
shares = st.lists(st.integers(min_value=1, max_value=100), min_size=0, max_size=3).map(tuple)


def gen_lines(rates: st.SearchStrategy[Decimal]) -> st.SearchStrategy[list[GenLine]]:
    return st.lists(st.builds(GenLine, net=nets, rate=rates, shares=shares), min_size=1, max_size=6)


def _check(detail: dict[str, Any], lines: list[GenLine], *, credit: bool) -> None:
    """The entry adds up to the invoice to the cent, and every line is on the VAT code of its own rate."""
    entry = _plan(detail)
    inv = parse_invoice(detail)
    sign = -1 if credit else 1
    assert entry.total == inv.total
    assert entry.vat == inv.tax1 + inv.tax2
    assert entry.net == inv.subtotal + inv.shipping
    taxable = sum(1 for line in lines if line.rate > 0)
    # the entry's lines in order: one per accounting split of each JAGGAER line, then the shipping line
    planned = list(entry.lines)
    for line in lines:
        parts = max(1, len(line.shares))
        mine, planned = planned[:parts], planned[parts:]
        assert {p.vat_code for p in mine} == {CODE[line.rate]}, (line, mine)
        vat = sum((p.vat_amount for p in mine), Decimal(0))
        exact = sign * line.net * line.rate / 100
        # within a cent of its own tax, plus the half-cents the supplier's rounding moved between lines
        assert abs(vat - exact) <= CENT + Decimal("0.005") * taxable + Decimal("0.005") * len(RATES), (line, vat)
        assert vat == 0 or (vat > 0) == (sign > 0)  # credit memos mirror invoices
        for p in mine:
            assert p.amount == p.amount.quantize(CENT) and p.vat_amount == p.vat_amount.quantize(CENT)
    assert all(p.vat_code == "3" and p.vat_amount == 0 for p in planned)  # charges: 0 % code


@given(
    lines=gen_lines(st.sampled_from(RATES)),
    credit=st.booleans(),
    credit_positive=st.booleans(),
    rate_field=st.booleans(),
    shipping=st.integers(0, 5000).map(lambda c: Decimal(c) * CENT),
)
@settings(max_examples=200, deadline=None)
def test_line_tax_several_rates_and_credit_memos_land_on_their_codes(
    lines: list[GenLine], credit: bool, credit_positive: bool, rate_field: bool, shipping: Decimal
) -> None:
    """Tax on every line, rates 20/5/0 mixed, with or without the TaxRate field (derived from tax / net)."""
    detail = gen_detail(
        lines, shape="line", credit=credit, credit_positive=credit_positive, rate_field=rate_field, shipping=shipping
    )
    _check(detail, lines, credit=credit)


@given(
    lines=gen_lines(st.sampled_from([Decimal(20), Decimal(0)])),
    credit=st.booleans(),
    credit_positive=st.booleans(),
    round_per_line=st.booleans(),
    tax2_share=st.sampled_from([0, 0, 30]),
)
@settings(max_examples=200, deadline=None)
def test_header_tax_is_spread_over_the_taxable_lines_at_the_implied_rate(
    lines: list[GenLine], credit: bool, credit_positive: bool, round_per_line: bool, tax2_share: int
) -> None:
    """The common J1P shape: tax on the header (taxCharge1 + taxCharge2), lines flagged taxable true/false, no rate
    on the lines. The implied rate is 20 %; the non-taxable lines go on the zero-rate code."""
    assume(sum((line.net for line in lines if line.rate > 0), Decimal(0)) >= 10)
    detail = gen_detail(
        lines,
        shape="header",
        credit=credit,
        credit_positive=credit_positive,
        round_per_line=round_per_line,
        tax2_share=tax2_share,
    )
    assert shape_of(parse_invoice(detail)) == "header"
    _check(detail, lines, credit=credit)


@given(lines=gen_lines(st.sampled_from(RATES)), credit=st.booleans(), round_per_line=st.booleans())
@settings(max_examples=200, deadline=None)
def test_header_tax_over_several_rates_follows_the_lines_rate_fields(
    lines: list[GenLine], credit: bool, round_per_line: bool
) -> None:
    """Header tax over lines of several rates, each line carrying its TaxRate field: every line gets the tax of its
    own rate (shares weighted by net x rate), to the cent."""
    assume(any(line.rate > 0 for line in lines))
    detail = gen_detail(lines, shape="header", credit=credit, rate_field=True, round_per_line=round_per_line)
    _check(detail, lines, credit=credit)


@given(total=st.integers(-10_000_000, 10_000_000), parts=st.lists(st.integers(-100_000, 100_000), min_size=1))
@settings(max_examples=300, deadline=None)
def test_round_shares_adds_up_and_stays_within_a_cent(total: int, parts: list[int]) -> None:
    weights = [Decimal(p) for p in parts]
    assume(sum(weights) != 0)
    t = Decimal(total) * CENT
    exact = [w * t / sum(weights) for w in weights]
    rounded = round_shares(t, exact)
    assert sum(rounded, Decimal(0)) == t
    assert all(abs(r - e) < CENT for r, e in zip(rounded, exact, strict=True))


# ------------------------------------------------------------------------------------------ the examples of #11
def test_header_tax_example_lands_on_the_taxable_code_not_zero() -> None:
    """issue 11: three lines, header tax 30.00 on 150.00 taxable; the 50.00 non-taxable line stays at 0 %."""
    lines = [GenLine(Decimal("100.00"), Decimal(20), ()), GenLine(Decimal("50.00"), Decimal(20), ())]
    lines.append(GenLine(Decimal("50.00"), Decimal(0), ()))
    entry = _plan(gen_detail(lines, shape="header"))
    assert [(p.amount, p.vat_code, p.vat_amount) for p in entry.lines] == [
        (Decimal("100.00"), "1", Decimal("20.00")),
        (Decimal("50.00"), "1", Decimal("10.00")),
        (Decimal("50.00"), "3", Decimal("0.00")),
    ]


def test_header_tax_is_allocated_to_the_cent_by_largest_remainder() -> None:
    """10.00 of tax over three equal taxable lines: 3.34 + 3.33 + 3.33 (the first, on a tie, gets the cent)."""
    lines = [GenLine(Decimal("16.67"), Decimal(20), ()) for _ in range(3)]
    detail = gen_detail(lines, shape="header")
    detail["header"]["taxCharge1"] = "10.00"
    detail["header"]["total"]["value"] = str(Decimal("50.01") + Decimal("10.00"))
    entry = _plan(detail)
    assert [p.vat_amount for p in entry.lines] == [Decimal("3.34"), Decimal("3.33"), Decimal("3.33")]
    assert {p.vat_code for p in entry.lines} == {"1"}


def test_an_implied_rate_the_tenant_does_not_know_is_quarantined_with_the_figures() -> None:
    lines = [GenLine(Decimal("200.00"), Decimal(20), ())]
    detail = gen_detail(lines, shape="header")
    detail["header"]["taxCharge1"] = "37.50"  # 18.75 %
    detail["header"]["total"]["value"] = "237.50"
    with pytest.raises(EntryInvalid) as err:
        _plan(detail)
    text = str(err.value)
    assert "header tax 37.50 over the taxable lines' net 200.00 implies a rate of 18.75 %" in text
    assert "0 %, 5 %, 20 %" in text and "vat_codes_by_taxable" in text


def test_the_tenant_can_map_vat_codes_by_the_taxable_flag() -> None:
    """invoice_poll.vat_codes_by_taxable: taxable lines on its true code whatever rate the header implies; the
    non-taxable line and the charges on its false code."""
    lines = [GenLine(Decimal("200.00"), Decimal(20), ()), GenLine(Decimal("10.00"), Decimal(0), ())]
    detail = gen_detail(lines, shape="header", shipping=Decimal("5.00"))
    detail["header"]["taxCharge1"] = "37.50"
    detail["header"]["total"]["value"] = str(Decimal("210.00") + Decimal("37.50") + Decimal("5.00"))
    rules = _rules(vat_codes_by_taxable={True: "2", False: "3"}, vat_codes={})
    entry = _plan(detail, rules=rules)
    assert [(p.vat_code, p.vat_amount) for p in entry.lines] == [
        ("2", Decimal("37.50")),
        ("3", Decimal("0.00")),
        ("3", Decimal("0.00")),
    ]


def test_a_rate_field_wins_over_the_flag_map() -> None:
    lines = [GenLine(Decimal("100.00"), Decimal(5), ())]
    entry = _plan(
        gen_detail(lines, shape="header", rate_field=True), rules=_rules(vat_codes_by_taxable={True: "1", False: "3"})
    )
    assert [(p.vat_code, p.vat_amount) for p in entry.lines] == [("2", Decimal("5.00"))]


def test_header_tax_with_no_taxable_line_is_quarantined() -> None:
    lines = [GenLine(Decimal("100.00"), Decimal(0), ())]
    detail = gen_detail(lines, shape="header")
    detail["header"]["taxCharge1"] = "20.00"
    detail["header"]["total"]["value"] = "120.00"
    with pytest.raises(EntryInvalid, match="no line is flagged taxable"):
        _plan(detail)


def test_line_tax_that_does_not_add_up_to_the_header_is_quarantined_with_both_figures() -> None:
    lines = [GenLine(Decimal("100.00"), Decimal(20), ()), GenLine(Decimal("100.00"), Decimal(20), ())]
    detail = gen_detail(lines, shape="line")
    detail["header"]["taxCharge2"] = "7.00"  # a second tax no line carries
    detail["header"]["total"]["value"] = "247.00"
    with pytest.raises(EntryInvalid) as err:
        _plan(detail)
    assert "the lines' tax adds up to 40.00 but the header's tax (taxCharge1 40.00 + taxCharge2 7.00) is 47.00" in str(
        err.value
    )


def test_a_rounding_cent_between_line_and_header_tax_goes_on_the_largest_taxed_line() -> None:
    lines = [GenLine(Decimal("100.00"), Decimal(20), ()), GenLine(Decimal("10.00"), Decimal(20), ())]
    detail = gen_detail(lines, shape="line")
    detail["header"]["taxCharge1"] = "22.01"
    detail["header"]["total"]["value"] = "132.01"
    entry = _plan(detail)
    assert [p.vat_amount for p in entry.lines] == [Decimal("20.01"), Decimal("2.00")]


def test_lines_plus_tax_plus_charges_must_equal_the_total() -> None:
    lines = [GenLine(Decimal("100.00"), Decimal(20), ())]
    detail = gen_detail(lines, shape="header", shipping=Decimal("5.00"))
    detail["header"]["total"]["value"] = "130.00"
    with pytest.raises(EntryInvalid) as err:
        _plan(detail)
    assert "lines 100.00 + tax 20.00 + charges 5.00 - discount 0.00 = 125.00, but the invoice total is 130.00" in str(
        err.value
    )


def test_master_data_still_checks_the_chosen_codes() -> None:
    master = _master()
    master.vat_codes["1"] = ("1", True)  # blocked in Exact
    lines = [GenLine(Decimal("100.00"), Decimal(20), ())]
    with pytest.raises(EntryInvalid, match="VAT code '1' is blocked"):
        _plan(gen_detail(lines, shape="header"), master=master)


def test_the_header_tax_may_come_from_tax1_header_charge_detail_alone() -> None:
    lines = [GenLine(Decimal("100.00"), Decimal(20), ()), GenLine(Decimal("30.00"), Decimal(0), ())]
    detail = gen_detail(lines, shape="header")
    del detail["header"]["taxCharge1"]
    assert detail["header"]["tax1HeaderChargeDetail"]["currentTax"] == "20.00"
    entry = _plan(detail)
    assert [(p.vat_code, p.vat_amount) for p in entry.lines] == [("1", Decimal("20.00")), ("3", Decimal("0.00"))]
    detail["header"]["tax1HeaderChargeDetail"]["currentTax"] = "n/a"
    with pytest.raises(Exception, match=r"tax1HeaderChargeDetail currentTax 'n/a' is not a number"):
        parse_invoice(detail)
