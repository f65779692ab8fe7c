"""VAT as the supplier billed it: each line's VAT amount and Exact VAT code, from either J1P shape.

JAGGAER sends an invoice's tax in one of two shapes:

- **line tax**: every line carries its own ``taxCharge1`` (and the header's ``taxCharge1 + taxCharge2`` is their
  sum). A line's VAT is its own tax; its rate is its rate custom field (``TaxRate``), else 0 for a line flagged
  ``taxable: "false"`` or without tax, else derived from ``tax / net`` and rounded to the nearest rate the tenant
  knows (``invoice_poll.vat_codes`` and ``vat_code`` code maps) whose tax at that rate is within
  ``rounding_tolerance`` of the line's tax. A difference between the lines' tax and the header's within the
  tolerance goes on the line with the largest taxed amount; a larger one is a problem (both figures named);
- **header tax**: no line carries tax, the header does (``taxCharge1``, ``taxCharge2``, ``tax1HeaderChargeDetail``)
  and the lines are flagged ``taxable`` ``"true"``/``"false"``. The header tax is spread over the taxable lines
  (a line without the flag counts as taxable) in proportion to their net amounts — to the cent, largest remainder
  (``money.round_shares``) — and non-taxable lines get 0 on the zero-rate code. The rate of a taxable line is its
  rate custom field, else the rate the header tax implies over the taxable net, rounded to a known rate of the
  tenant within ``rounding_tolerance + 0.005 per taxable line`` (the rounding a supplier may do per line). With
  rate custom fields of several rates, the lines' shares are weighted by ``net x rate`` (the same as by net for one
  rate), so every line lands on its own rate.

The VAT code: a line's rate custom field → ``vat_codes[rate]``; else, when the tenant maps codes by the flag
(``invoice_poll.vat_codes_by_taxable``), the line's flag → that code; else ``vat_codes[rate]``. Non-taxable lines,
charges and the discount use the zero-rate code: ``vat_codes_by_taxable[false]`` when set, else ``vat_codes["0"]``.

Everything is ``Decimal``; credit memos are negative throughout and mirror invoices (``tax / net`` is positive).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from ml_connector.flows.invoice_poll.invoice import Invoice, InvoiceLine
from ml_connector.flows.invoice_poll.money import ZERO, money, round_shares
from ml_connector.mappings.codes import CodeRules, normalize_rate

HUNDRED = Decimal(100)
#: A supplier rounds each line's tax to the cent: over n taxable lines the header tax may be n half-cents off.
PER_LINE_ROUNDING = Decimal("0.005")

Shape = Literal["line", "header"]


@dataclass(frozen=True)
class LineVat:
    """A JAGGAER line's VAT: the amount, the rate it was booked at (percent) and the Exact VAT code."""

    amount: Decimal
    rate: Decimal | None
    code: str | None


@dataclass
class VatPlan:
    shape: Shape
    lines: list[LineVat]


def known_rates(rules: CodeRules) -> list[Decimal]:
    """Every rate the tenant has a VAT code for (tenant file and ``vat_code`` code maps), ascending."""
    keys: set[str] = set()
    for raw in rules.tenant.invoice_poll.vat_codes:
        try:
            keys.add(normalize_rate(raw))
        except ValueError:
            continue  # the config check reports it
    keys.update(rules.overrides.get("vat_code", {}))
    return sorted({Decimal(k) for k in keys})


def nearest_rate(tax: Decimal, net: Decimal, rates: list[Decimal], tolerance: Decimal) -> Decimal | None:
    """The known rate whose tax on ``net`` comes closest to ``tax``, if within ``tolerance``; else ``None``."""
    best: tuple[Decimal, Decimal] | None = None
    for rate in rates:
        off = abs(net * rate / HUNDRED - tax)
        if off <= tolerance and (best is None or off < best[0]):
            best = (off, rate)
    return best[1] if best is not None else None


def _shown(rate: Decimal) -> str:
    return f"{rate.quantize(Decimal('0.01')).normalize():f}"


def shape_of(inv: Invoice) -> Shape:
    """``header`` when no line carries tax and the header does; ``line`` otherwise (also: no tax at all)."""
    line_tax = any(line.tax for line in inv.lines)
    return "header" if not line_tax and (inv.tax1 + inv.tax2) != 0 else "line"


def plan_vat(
    inv: Invoice,
    rules: CodeRules,
    problems: list[str],
    vat_code_for: Callable[[Decimal | None, str], str | None],
) -> VatPlan:
    """Each line's VAT (see the module docstring); problems are appended to ``problems``. ``vat_code_for(rate,
    what)`` resolves a rate to an Exact code (and records a problem when there is none)."""
    cfg = rules.tenant.invoice_poll
    by_flag = cfg.vat_codes_by_taxable
    tolerance = cfg.rounding_tolerance
    rates = known_rates(rules)
    header_tax = inv.tax1 + inv.tax2

    def zero_code(what: str) -> str | None:
        return by_flag[False] if False in by_flag else vat_code_for(ZERO, what)

    def flag_code(line: InvoiceLine, taxed: bool) -> str | None:
        flag = line.taxable if line.taxable is not None else taxed
        return by_flag.get(flag)

    shape = shape_of(inv)
    out: list[LineVat]
    if shape == "line":
        out = _line_shape(inv, rates, tolerance, problems, vat_code_for, zero_code, flag_code)
    else:
        out = _header_shape(inv, rates, tolerance, problems, vat_code_for, zero_code, flag_code)

    # the entry's VAT must be the invoice's: a rounding difference goes on the line with the largest tax
    difference = header_tax - sum((v.amount for v in out), ZERO)
    if shape == "line" and out and difference:
        if abs(difference) <= tolerance:
            biggest = max(range(len(out)), key=lambda i: (abs(out[i].amount), abs(inv.lines[i].net), -i))
            v = out[biggest]
            out[biggest] = LineVat(v.amount + difference, v.rate, v.code)
        else:
            problems.append(
                f"the lines' tax adds up to {sum((v.amount for v in out), ZERO)} but the header's tax (taxCharge1 "
                f"{inv.tax1} + taxCharge2 {inv.tax2}) is {header_tax} (difference {difference}, tolerance "
                f"{tolerance}); correct the invoice's tax in JAGGAER"
            )
    return VatPlan(shape=shape, lines=out)


def _line_shape(
    inv: Invoice,
    rates: list[Decimal],
    tolerance: Decimal,
    problems: list[str],
    vat_code_for: Callable[[Decimal | None, str], str | None],
    zero_code: Callable[[str], str | None],
    flag_code: Callable[[InvoiceLine, bool], str | None],
) -> list[LineVat]:
    out: list[LineVat] = []
    for line in inv.lines:
        what = f"line {line.line_number}"
        tax = line.tax if line.tax is not None else ZERO
        if line.tax_rate is not None:
            out.append(LineVat(tax, line.tax_rate, vat_code_for(line.tax_rate, what)))
            continue
        if tax == 0:  # flagged non-taxable, or no tax on it: the zero-rate code
            out.append(LineVat(tax, ZERO, zero_code(what)))
            continue
        rate = None if line.net == 0 else nearest_rate(tax, line.net, rates, tolerance)
        if rate is None and line.net != 0:
            rate = (tax / line.net * HUNDRED).quantize(Decimal("0.1"))  # named in the "no VAT code" problem
        code = flag_code(line, True) if line.taxable is not False else None
        out.append(LineVat(tax, rate, code if code is not None else vat_code_for(rate, what)))
    return out


def _header_shape(
    inv: Invoice,
    rates: list[Decimal],
    tolerance: Decimal,
    problems: list[str],
    vat_code_for: Callable[[Decimal | None, str], str | None],
    zero_code: Callable[[str], str | None],
    flag_code: Callable[[InvoiceLine, bool], str | None],
) -> list[LineVat]:
    header_tax = inv.tax1 + inv.tax2
    taxable = [i for i, line in enumerate(inv.lines) if line.taxable is not False]
    if not taxable:
        problems.append(
            f"the header carries tax {header_tax} (taxCharge1 {inv.tax1} + taxCharge2 {inv.tax2}) but no line is "
            'flagged taxable ("taxable": "true"): flag the taxed lines in JAGGAER'
        )
        return [LineVat(ZERO, ZERO, zero_code(f"line {line.line_number}")) for line in inv.lines]

    # rates: a line's own rate field; the others share the rate the rest of the header tax implies
    own = [i for i in taxable if inv.lines[i].tax_rate is not None]
    rest = [i for i in taxable if inv.lines[i].tax_rate is None]
    rate_of: dict[int, Decimal] = {i: inv.lines[i].tax_rate for i in own}  # type: ignore[misc]
    flag_coded = bool(rest) and all(flag_code(inv.lines[i], True) is not None for i in rest)
    implied_ok = True
    if rest:
        own_tax = sum((inv.lines[i].net * rate_of[i] / HUNDRED for i in own), Decimal(0))
        residual = header_tax - own_tax
        rest_net = sum((inv.lines[i].net for i in rest), ZERO)
        if rest_net == 0:
            implied = ZERO
            if abs(residual) > tolerance:
                implied_ok = False
                problems.append(
                    f"the header tax {header_tax} cannot be spread over the taxable lines: their net amounts add up "
                    "to 0; correct the invoice in JAGGAER"
                )
        else:
            room = tolerance + PER_LINE_ROUNDING * len(rest)
            snapped = nearest_rate(residual, rest_net, rates, room)
            implied = residual / rest_net * HUNDRED
            if snapped is not None:
                implied = snapped
            elif not flag_coded:
                implied_ok = False
                known = ", ".join(f"{_shown(r)} %" for r in rates) or "none"
                problems.append(
                    f"the header tax {header_tax} over the taxable lines' net {rest_net} implies a rate of "
                    f"{_shown(implied)} %, which is none of the tenant's VAT rates ({known}) within the tolerance "
                    f"{room}: check the invoice's tax in JAGGAER, add the rate to invoice_poll.vat_codes, or map "
                    "codes by the taxable flag (invoice_poll.vat_codes_by_taxable)"
                )
        for i in rest:
            rate_of[i] = implied

    # shares of the header tax: net x rate (by net alone when every taxable line has the same rate)
    expected = {i: inv.lines[i].net * rate_of[i] / HUNDRED for i in taxable}
    expected_sum = sum(expected.values(), Decimal(0))
    amounts = {i: ZERO for i in taxable}
    if expected_sum == 0:
        if implied_ok:
            problems.append(
                f"the header tax {header_tax} cannot be spread over the taxable lines: at their tax rates they "
                "carry no tax; correct the invoice's tax or the lines' TaxRate in JAGGAER"
            )
    else:
        if implied_ok and own and abs(expected_sum - header_tax) > tolerance + PER_LINE_ROUNDING * len(taxable):
            problems.append(
                f"the header tax is {header_tax} but the taxable lines at their tax rates carry {money(expected_sum)} "
                f"(tolerance {tolerance}); correct the invoice's tax or the lines' TaxRate in JAGGAER"
            )
        shares = [expected[i] * header_tax / expected_sum for i in taxable]
        amounts = dict(zip(taxable, round_shares(header_tax, shares), strict=True))

    out: list[LineVat] = []
    for i, line in enumerate(inv.lines):
        what = f"line {line.line_number}"
        if i not in amounts:
            out.append(LineVat(ZERO, ZERO, zero_code(what)))
            continue
        rate = rate_of[i]
        if line.tax_rate is not None:
            code = vat_code_for(rate, what)
        else:
            code = flag_code(line, True)
            if code is None:
                code = vat_code_for(rate, what) if implied_ok else None
        out.append(LineVat(amounts[i], rate, code))
    return out
