"""Turn a JAGGAER invoice into the Exact purchase entry that will be posted, checking everything Exact checks.

One function, :func:`plan_entry`, used by validate (to quarantine what Exact would refuse), by post (to build the
body) and by dry runs (to show it). It collects *every* problem of an invoice, so the person fixing it sees them
all at once, each with what to change.

Amounts (``Decimal`` throughout; floats only in the JSON body):

- each JAGGAER line becomes one Exact line per accounting split; the split shares of the net amount and of the
  line's VAT are allocated with :func:`money.allocate`, so they add up exactly (a line that cannot be split —
  e.g. an amount with more than two decimals — is a problem like any other: :class:`EntryInvalid`);
- a line's VAT and VAT code are the supplier's, from either J1P shape (tax per line, or tax on the header spread
  over the lines flagged taxable): :mod:`vat`; the entry's VAT equals the invoice's (``taxCharge1 + taxCharge2``);
- shipping and handling charges and the header discount become lines of their own (zero-rate code);
- ``lines + tax + charges - discount`` must equal the invoice total within ``rounding_tolerance``, and each line's
  ``quantity x unitPrice`` its ``extendedPrice``;
- the currency must be ISO 4217 and one the division books (``currencies_by_division``), checked before Exact;
- credit memos are negative throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from ml_connector.currencies import is_iso_currency
from ml_connector.flows.invoice_poll.invoice import Invoice, SplitShare
from ml_connector.flows.invoice_poll.master import PURCHASE_JOURNAL_TYPE, MasterData
from ml_connector.flows.invoice_poll.money import ZERO, allocate, money
from ml_connector.flows.invoice_poll.vat import plan_vat
from ml_connector.mappings.codes import CodeRules, normalize_rate

DESCRIPTION_MAX = 60
LINE_DESCRIPTION_MAX = 100


class EntryInvalid(ValueError):
    """The invoice cannot become a purchase entry; ``problems`` says why, one actionable line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(dict.fromkeys(problems))
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class PlannedLine:
    gl_code: str
    amount: Decimal
    vat_code: str | None
    vat_amount: Decimal
    cost_center: str | None
    description: str
    gl_id: str | None = None


@dataclass(frozen=True)
class PlannedEntry:
    invoice_id: str
    invoice_number: str
    division: int
    journal: str
    supplier_id: str
    your_ref: str
    entry_date: date
    due_date: date | None
    currency: str
    description: str
    external_ref: str
    lines: tuple[PlannedLine, ...] = field(default=())

    @property
    def net(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def vat(self) -> Decimal:
        return sum((line.vat_amount for line in self.lines), ZERO)

    @property
    def total(self) -> Decimal:
        return self.net + self.vat

    def body(self) -> dict[str, Any]:
        """The ``purchaseentry/PurchaseEntries`` POST body (docs/invoice-poll.md, "The stages")."""
        out: dict[str, Any] = {
            "Journal": self.journal,
            "Supplier": self.supplier_id,
            "EntryDate": f"{self.entry_date.isoformat()}T00:00:00",
            "YourRef": self.your_ref,
            "Description": self.description,
            "ExternalLinkReference": self.external_ref,
            "Currency": self.currency,
            "PurchaseEntryLines": [
                {
                    "GLAccount": line.gl_id,
                    "AmountFC": float(line.amount),
                    "VATAmountFC": float(line.vat_amount),
                    **({"VATCode": line.vat_code} if line.vat_code else {}),
                    **({"CostCenter": line.cost_center} if line.cost_center else {}),
                    "Description": line.description,
                }
                for line in self.lines
            ],
        }
        if self.due_date is not None:
            out["DueDate"] = f"{self.due_date.isoformat()}T00:00:00"
        return out

    def preview(self) -> dict[str, Any]:
        """What a dry run shows: the body with codes next to GUIDs and the totals."""
        return {
            "invoice_id": self.invoice_id,
            "invoice_number": self.invoice_number,
            "division": self.division,
            "your_ref": self.your_ref,
            "total": str(self.total),
            "vat": str(self.vat),
            "lines": [
                {
                    "gl": line.gl_code,
                    "amount": str(line.amount),
                    "vat_code": line.vat_code,
                    "vat": str(line.vat_amount),
                    "cost_center": line.cost_center,
                    "description": line.description,
                }
                for line in self.lines
            ],
            "body": self.body(),
        }


def external_ref(invoice_id: str) -> str:
    """What ``ExternalLinkReference`` carries, so a search can tell our entry from a hand-keyed one."""
    return f"JAGGAER:{invoice_id}"


def _shares(splits: tuple[SplitShare, ...]) -> list[Decimal]:
    return [abs(s.weight) for s in splits]


def _split_problem(what: str, net: Decimal, vat: Decimal, splits: tuple[SplitShare, ...], exc: BaseException) -> str:
    """Why a line cannot be split across its cost centres, and what to change (an allocation error)."""
    centres = ", ".join(s.cost_center or "(default)" for s in splits)
    odd = [f"{name} {amount}" for name, amount in (("net amount", net), ("VAT", vat)) if amount != money(amount)]
    if odd:
        return (
            f"{what}: {' and '.join(odd)} {'has' if len(odd) == 1 else 'have'} more than two decimals and cannot be "
            f"split across its accounting splits ({centres}) to the cent: round the line to whole cents in JAGGAER "
            "(Exact books amounts in cents)"
        )
    return (
        f"{what}: the amount {net} (VAT {vat}) cannot be split across its accounting splits ({centres}): {exc}; "
        "correct the split percentages / amounts in JAGGAER"
    )


def currency_problem(currency: str, jaggaer_currency: str, division: int, rules: CodeRules) -> str | None:
    """Why Exact would refuse ``currency`` (after ``currency`` code maps) in ``division``, or ``None``.

    Checked here so a bad code costs no Exact call (every refused POST is an Exact error): it must be an ISO 4217
    code, and one the division books in when the tenant lists them (``invoice_poll.currencies_by_division``; a
    division not listed accepts every ISO 4217 code and Exact decides).
    """
    mapped = "" if currency == jaggaer_currency else f" (mapped from JAGGAER's {jaggaer_currency!r})"
    if not is_iso_currency(currency):
        return (
            f"currency {currency!r}{mapped} is not an ISO 4217 code (three capital letters, e.g. GBP, EUR): correct "
            f"the invoice in JAGGAER, or map it (`mlc mappings set code --tenant {rules.tenant.name} --kind currency "
            f"--source '{jaggaer_currency}' --target <ISO code>`)"
        )
    accepted = rules.tenant.invoice_poll.currencies_by_division.get(division)
    if accepted is not None and currency not in accepted:
        return (
            f"currency {currency}{mapped} is not accepted by Exact division {division} (it books "
            f"{', '.join(accepted)}: invoice_poll.currencies_by_division in the tenant file): add the currency "
            "there once the division can book it, or have the invoice corrected in JAGGAER"
        )
    return None


def line_amount_problems(inv: Invoice, tolerance: Decimal) -> list[str]:
    """Lines whose quantity x unit price is not their extended (net) amount within ``tolerance``, with the figures.
    A negative quantity with a positive extended price (or the other way round) is caught here."""
    out: list[str] = []
    for line in inv.lines:
        if line.quantity is None or line.unit_price is None:
            continue
        product = line.quantity * line.unit_price
        if abs(product - line.net) > tolerance:
            out.append(
                f"line {line.line_number}: quantity {line.quantity} x unitPrice {line.unit_price} = {money(product)}, "
                f"but its extendedPrice is {line.net} (difference {money(product - line.net)}, tolerance "
                f"{tolerance}); correct the line in JAGGAER"
            )
    return out


def plan_entry(
    inv: Invoice,
    *,
    division: int,
    supplier_id: str,
    rules: CodeRules,
    master: MasterData | None,
) -> PlannedEntry:
    """The purchase entry for ``inv``, or :class:`EntryInvalid` listing every problem.

    ``master`` is the division's Exact master data; without it (offline checks) GL accounts, cost centres, VAT
    codes and the journal are only checked for being configured, not for existing in Exact.
    """
    tenant = rules.tenant
    cfg = tenant.invoice_poll
    problems: list[str] = []
    ref = f"invoice {inv.invoice_number} (id {inv.invoice_id})"

    if not inv.currency:
        problems.append("no currency on the invoice total; fix the invoice in JAGGAER")
    else:
        problem = currency_problem(rules.currency(inv.currency), inv.currency, division, rules)
        if problem:
            problems.append(problem)
    if not inv.supplier_invoice_number:
        problems.append("no supplier invoice number (YourRef); fix the invoice in JAGGAER")
    if inv.invoice_date is None:
        problems.append("no invoice date; fix the invoice in JAGGAER")
    if not inv.lines:
        problems.append("the invoice has no lines")

    difference = inv.computed_total - inv.total
    if abs(difference) > cfg.rounding_tolerance:
        problems.append(
            f"lines {inv.subtotal} + tax {inv.tax1 + inv.tax2} + charges {inv.shipping + inv.handling} "
            f"- discount {inv.discount} = {inv.computed_total}, but the invoice total is {inv.total} "
            f"(difference {difference}, tolerance {cfg.rounding_tolerance}); correct the invoice in JAGGAER"
        )

    problems += line_amount_problems(inv, cfg.rounding_tolerance)

    gl_code, gl_where = rules.gl_for_type(inv.invoice_type)
    if not gl_code:
        problems.append(
            f"no GL account for invoice type {inv.invoice_type!r}: set {gl_where} in the tenant file, or run "
            f"`mlc mappings set code --tenant {tenant.name} --kind gl_account --source '{inv.invoice_type}' "
            "--target <GL code>`"
        )
        gl_code = ""
    default_cc = rules.default_cost_center(inv.invoice_type)

    def vat_code_for(rate: Decimal | None, what: str) -> str | None:
        if rate is None:
            problems.append(f"{what}: no tax rate (JAGGAER custom field TaxRate) and none can be derived")
            return None
        try:
            code, where = rules.vat_for_rate(rate)
        except ValueError:
            problems.append(
                f"{what}: its tax implies a rate of {rate} %, which is not a tax rate between 0 and 100 (the line's "
                "tax and net amount disagree); correct the line's tax in JAGGAER"
            )
            return None
        if not code:
            key = normalize_rate(rate)
            problems.append(
                f"no Exact VAT code for tax rate {key}%: set {where} in the tenant file, or run "
                f"`mlc mappings set code --tenant {tenant.name} --kind vat_code --source {key} --target <VAT code>`"
            )
        return code

    # -- VAT per line, as the supplier billed it (line tax or header tax; see vat.py) ----------------------------
    vat_plan = plan_vat(inv, rules, problems, vat_code_for)

    lines: list[PlannedLine] = []
    for line, line_vat in zip(inv.lines, vat_plan.lines, strict=True):
        what = f"line {line.line_number}"
        vat, vat_code = line_vat.amount, line_vat.code
        splits = line.splits or inv.header_splits
        description = line.description[:LINE_DESCRIPTION_MAX]
        if splits and len(splits) > 0 and sum(_shares(splits), Decimal(0)) > 0:
            weights = _shares(splits)
            try:
                nets = allocate(line.net, weights)
                vats = allocate(vat, weights)
            except (ValueError, ArithmeticError) as exc:
                problems.append(_split_problem(what, line.net, vat, splits, exc))
                continue
            for share, net, part_vat in zip(splits, nets, vats, strict=True):
                if net == 0 and part_vat == 0:
                    continue
                cc = rules.cost_center(share.cost_center) if share.cost_center else default_cc
                lines.append(PlannedLine(gl_code, net, vat_code, part_vat, cc, description))
        else:
            lines.append(PlannedLine(gl_code, line.net, vat_code, vat, default_cc, description))

    charges = [
        (inv.shipping, "Shipping charge"),
        (inv.handling, "Handling charge"),
        (-inv.discount, "Discount"),
    ]
    if any(amount != 0 for amount, _ in charges):
        by_flag = cfg.vat_codes_by_taxable
        zero_code = by_flag[False] if False in by_flag else vat_code_for(ZERO, "charges and discount (0 % VAT)")
        for amount, label in charges:
            if amount != 0:
                lines.append(
                    PlannedLine(gl_code, amount, zero_code, ZERO, default_cc, f"{label} ({inv.invoice_number})")
                )

    journal = tenant.journal_for(division)
    if master is not None:
        lines = _check_master(lines, master, journal, gl_where, tenant.name, problems)

    if problems:
        raise EntryInvalid(problems)

    description = f"JAGGAER {inv.invoice_number} {inv.vendor.name}"[:DESCRIPTION_MAX].rstrip()
    assert inv.invoice_date is not None and inv.currency and inv.supplier_invoice_number, ref
    return PlannedEntry(
        invoice_id=inv.invoice_id,
        invoice_number=inv.invoice_number,
        division=division,
        journal=journal,
        supplier_id=supplier_id,
        your_ref=inv.supplier_invoice_number,
        entry_date=inv.invoice_date,
        due_date=inv.due_date,
        currency=rules.currency(inv.currency),
        description=description,
        external_ref=external_ref(inv.invoice_id),
        lines=tuple(lines),
    )


def _check_master(
    lines: list[PlannedLine],
    master: MasterData,
    journal: str,
    gl_where: str,
    tenant: str,
    problems: list[str],
) -> list[PlannedLine]:
    """Check codes against Exact and swap in Exact's own spelling (and the GL account GUIDs)."""
    division = master.division
    journal_type = master.journals.get(journal.strip(), -1)
    if journal_type == -1:
        problems.append(
            f"journal {journal!r} does not exist in Exact division {division}: fix invoice_poll.journal "
            "(or journal_by_division) in the tenant file"
        )
    elif journal_type != PURCHASE_JOURNAL_TYPE:
        problems.append(
            f"journal {journal!r} in Exact division {division} is not a purchase journal (type {journal_type}, "
            f"needs {PURCHASE_JOURNAL_TYPE}): fix invoice_poll.journal in the tenant file"
        )
    out: list[PlannedLine] = []
    for line in lines:
        gl = master.gl.get(line.gl_code.strip()) if line.gl_code else None
        if line.gl_code and gl is None:
            problems.append(
                f"GL account {line.gl_code!r} does not exist in Exact division {division}: fix {gl_where} "
                f"(or `mlc mappings set code --tenant {tenant} --kind gl_account ...`)"
            )
        elif gl is not None and gl.blocked:
            problems.append(
                f"GL account {gl.code!r} is blocked in Exact division {division}: unblock it in Exact or map the "
                f"invoice type to another account ({gl_where})"
            )
        cc = line.cost_center
        if cc:
            found = master.cost_centers.get(cc.strip())
            if found is None:
                problems.append(
                    f"cost centre {cc!r} does not exist in Exact division {division}: create it in Exact or map it "
                    f"(`mlc mappings set code --tenant {tenant} --kind cost_center --source {cc} --target <code>`)"
                )
            elif not found[1]:
                problems.append(
                    f"cost centre {cc!r} is inactive in Exact division {division}: reactivate it in Exact or map it "
                    f"to an active one (`mlc mappings set code --tenant {tenant} --kind cost_center --source {cc} "
                    "--target <code>`)"
                )
            else:
                cc = found[0]
        vat_code = line.vat_code
        if vat_code:
            found_vat = master.vat_codes.get(vat_code.strip())
            if found_vat is None:
                problems.append(f"VAT code {vat_code!r} does not exist in Exact division {division}")
            elif found_vat[1]:
                problems.append(f"VAT code {vat_code!r} is blocked in Exact division {division}")
            else:
                vat_code = found_vat[0]
        out.append(
            PlannedLine(
                gl_code=line.gl_code,
                amount=line.amount,
                vat_code=vat_code,
                vat_amount=line.vat_amount,
                cost_center=cc,
                description=line.description,
                gl_id=gl.id if gl is not None else None,
            )
        )
    return out
