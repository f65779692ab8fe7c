"""A JAGGAER invoice as the invoice poll reads it: parsed from the staged J1P detail into plain values.

The staged payload is the J1P detail as received (``{"header": {...}, "lineList": {"invoiceLine": [...]}}``) with
``Decimal`` numbers turned into strings (:func:`jsonable`), so it fits a JSON column and hashes stably. Parsing
is strict: a field that cannot be read raises :class:`InvoiceDataError` whose message a person can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ml_connector.flows.invoice_poll.money import ZERO, money
from ml_connector.jaggaer import j1p

# Names JAGGAER customers give the accounting-split fields ([guess]: configured per customer). Compared without
# case, spaces and underscores.
COST_CENTER_FIELDS = frozenset({"costcenter", "costcentre", "costcentercode", "costcentrecode", "cc"})
GL_FIELDS = frozenset({"glaccount", "glaccountcode", "glcode", "account"})
TAX_RATE_FIELDS = frozenset({"taxrate", "vatrate", "taxrate%", "taxpercent", "vatpercent"})


#: Key of the placeholder staged for an invoice whose JAGGAER detail could not be read (``extract``): the list
#: header only, so the ledger can hold the invoice (quarantined) until a run reads the detail.
UNREADABLE_KEY = "unreadable"


class InvoiceDataError(ValueError):
    """The invoice cannot be read; the message names the field."""


_PLAIN = (str, int, float, bool, type(None))


def jsonable(value: Any) -> Any:
    """``Decimal`` → ``str`` (exact), recursively; everything else as is. For staging J1P JSON."""
    kind = type(value)
    if kind in _PLAIN:  # the common case first: exact type checks (the ABC checks below cost far more)
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): jsonable(v) for k, v in value.items()}
    if kind is list:
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class SplitShare:
    """One accounting split of a line (or of the whole invoice): a share of the amount on a cost centre."""

    weight: Decimal  # percent, or the amount when ``by_amount``
    cost_center: str | None
    gl_account: str | None
    by_amount: bool = False


@dataclass(frozen=True)
class Vendor:
    id: str
    name: str
    supplier_number: str | None
    duns: str | None = None

    def describe(self) -> str:
        return f"{self.name!r} (id {self.id}" + (
            f", supplier number {self.supplier_number})" if self.supplier_number else ")"
        )


@dataclass(frozen=True)
class InvoiceLine:
    line_number: int
    description: str
    net: Decimal
    tax: Decimal | None  # the line's own tax, when JAGGAER sends it (line-tax shape)
    tax_rate: Decimal | None  # percent, e.g. 20: only the line's own rate custom field (TaxRate), never derived
    splits: tuple[SplitShare, ...] = ()
    taxable: bool | None = None  # the line's ``taxable`` flag ("true"/"false"); None when absent
    quantity: Decimal | None = None
    unit_price: Decimal | None = None


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    invoice_number: str
    supplier_invoice_number: str | None
    invoice_type: str
    is_credit: bool
    invoice_date: date | None
    due_date: date | None
    currency: str | None
    total: Decimal
    tax1: Decimal
    tax2: Decimal
    shipping: Decimal
    handling: Decimal
    discount: Decimal
    business_unit: str | None
    workflow_status: str | None
    payment_status: str | None
    last_update: datetime | None
    vendor: Vendor
    lines: tuple[InvoiceLine, ...]
    header_splits: tuple[SplitShare, ...] = field(default=())

    @property
    def subtotal(self) -> Decimal:
        return sum((line.net for line in self.lines), ZERO)

    @property
    def computed_total(self) -> Decimal:
        return self.subtotal + self.tax1 + self.tax2 + self.shipping + self.handling - self.discount


def _norm_name(name: Any) -> str:
    return "".join(ch for ch in str(name).lower() if ch not in " _-")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    try:
        return int(Decimal(str(value).strip()))
    except (ArithmeticError, ValueError):
        return None


def _money_field(obj: Mapping[str, Any], key: str, where: str, default: Decimal | None = ZERO) -> Decimal | None:
    raw = obj.get(key)
    try:
        value = j1p.to_decimal(raw)
    except ValueError:
        shown = raw.get("value") if isinstance(raw, Mapping) else raw
        raise InvoiceDataError(f"{where} {key} {shown!r} is not a number") from None
    if value is None:
        return default
    return value


def parse_splits(obj: Mapping[str, Any], where: str) -> tuple[SplitShare, ...]:
    """The accounting splits (``splittableFieldSetGroupList``) of a line or header; ``()`` when there are none."""
    shares: list[SplitShare] = []
    for group in j1p.list_items(obj, ("splittableFieldSetGroupList", "splittableFieldSetGroup")):
        if not isinstance(group, Mapping):
            continue
        sets = group.get("splittableFieldIndexSet") or []
        for index_set in sets if isinstance(sets, list) else [sets]:
            if not isinstance(index_set, Mapping):
                continue
            by_amount = "amount" in str(index_set.get("distributionType") or "").lower()
            for index in j1p.list_items(index_set, ("splittableFieldIndexList", "splittableFieldIndex")):
                if not isinstance(index, Mapping):
                    continue
                raw_weight = index.get("distributionValue")
                try:
                    weight = j1p.to_decimal(raw_weight)
                except ValueError:
                    raise InvoiceDataError(
                        f"{where} accounting split distributionValue {raw_weight!r} is not a number"
                    ) from None
                if weight is None:
                    weight = Decimal(100)
                cc = gl = None
                for cf in j1p.list_items(index, ("customFieldValueList", "customFieldValue")):
                    if not isinstance(cf, Mapping):
                        continue
                    name = _norm_name(cf.get("internalName") or cf.get("name") or "")
                    if name in COST_CENTER_FIELDS:
                        cc = _text(cf.get("value"))
                    elif name in GL_FIELDS:
                        gl = _text(cf.get("value"))
                shares.append(SplitShare(weight=weight, cost_center=cc, gl_account=gl, by_amount=by_amount))
    return tuple(shares)


def _rate_field(line: Mapping[str, Any], where: str) -> Decimal | None:
    """The line's own tax rate (a custom field such as ``TaxRate``), in percent; ``None`` when it has none."""
    for name, value in j1p.custom_field_values(line).items():
        if _norm_name(name) in TAX_RATE_FIELDS and value not in (None, ""):
            try:
                rate = j1p.to_decimal(str(value).replace("%", ""))
            except ValueError:
                raise InvoiceDataError(f"{where} custom field {name} {value!r} is not a tax rate in percent") from None
            if rate is None or rate < 0 or rate > 100:
                raise InvoiceDataError(f"{where} custom field {name} {value!r} is not a tax rate between 0 and 100")
            return rate
    return None


def _taxable(line: Mapping[str, Any], where: str) -> bool | None:
    try:
        return j1p.to_bool(line.get("taxable"))
    except ValueError:
        raise InvoiceDataError(f'{where} taxable {line.get("taxable")!r} is not "true" or "false"') from None


def _parsed(header: Mapping[str, Any], key: str, where: str, parse: Callable[[Any], Any], expected: str) -> Any:
    """``parse(header[key])``, or an ``InvoiceDataError`` naming the field, its value and what was expected."""
    value = header.get(key)
    try:
        return parse(value)
    except ValueError:
        raise InvoiceDataError(f"{where} {key} {value!r} is not {expected}") from None


def _date_field(header: Mapping[str, Any], key: str, where: str) -> date | None:
    return _parsed(header, key, where, j1p.parse_date, "an ISO date (YYYY-MM-DD)")


def _instant_field(header: Mapping[str, Any], key: str, where: str) -> datetime | None:
    return _parsed(header, key, where, j1p.parse_datetime, "an ISO-8601 timestamp")


def _header_tax1(header: Mapping[str, Any], where: str) -> Decimal:
    """The header's tax: ``taxCharge1``; without it, ``tax1HeaderChargeDetail.currentTax`` (the same amount in
    JAGGAER's charge detail, which some customers' payloads carry alone)."""
    tax = _money_field(header, "taxCharge1", where, default=None)
    detail = header.get("tax1HeaderChargeDetail")
    if tax is None and isinstance(detail, Mapping):
        tax = _money_field(detail, "currentTax", f"{where} tax1HeaderChargeDetail", default=None)
    return tax if tax is not None else ZERO


def parse_invoice(detail: Mapping[str, Any]) -> Invoice:
    """Read a staged J1P invoice detail. Raises :class:`InvoiceDataError` for anything unreadable."""
    if detail.get(UNREADABLE_KEY):
        header = detail.get("header") if isinstance(detail.get("header"), Mapping) else {}
        raise InvoiceDataError(
            f"invoice {header.get('invoiceNumber') or header.get('invoiceId') or '?'}: JAGGAER's detail could not be "
            "read yet (only its list entry is staged); it is read again on the next run"
        )
    header = detail.get("header")
    if not isinstance(header, Mapping):
        raise InvoiceDataError("the invoice has no header")
    invoice_id = _text(header.get("invoiceId"))
    if invoice_id is None:
        raise InvoiceDataError("the invoice has no invoiceId")
    where = f"invoice {header.get('invoiceNumber') or invoice_id}:"
    invoice_type = _text(header.get("invoiceType")) or "Invoice"
    is_credit = "credit" in invoice_type.lower()

    total_node = header.get("total")
    currency = None
    if isinstance(total_node, Mapping):
        currency = _text(total_node.get("currency"))
        total = _money_field(total_node, "value", f"{where} total", default=None)
    else:
        total = _money_field(header, "total", where, default=None)
    if total is None:
        raise InvoiceDataError(f"{where} total is missing")
    invoice_date = _date_field(header, "invoiceDate", where)
    due_date = _date_field(header, "dueDate", where)
    last_update = _instant_field(header, "lastUpdate", where)

    supplier = header.get("supplier") if isinstance(header.get("supplier"), Mapping) else {}
    vendor_id = _text(supplier.get("id"))
    if vendor_id is None:
        raise InvoiceDataError(f"{where} the supplier has no id")
    vendor = Vendor(
        id=vendor_id,
        name=_text(supplier.get("name")) or f"vendor {vendor_id}",
        supplier_number=_text(supplier.get("supplierNumber")),
        duns=_text(supplier.get("duns")),
    )

    lines: list[InvoiceLine] = []
    for n, raw in enumerate(j1p.invoice_lines(detail), start=1):
        if not isinstance(raw, Mapping):
            raise InvoiceDataError(f"{where} line {n} is not an object")
        number = _int(raw.get("lineNumber")) or n
        lwhere = f"{where} line {number}"
        qty = _money_field(raw, "quantity", lwhere, default=None)
        price = _money_field(raw, "unitPrice", lwhere, default=None)
        net = _money_field(raw, "extendedPrice", lwhere, default=None)
        if net is None:
            if qty is None or price is None:
                raise InvoiceDataError(f"{lwhere}: no extendedPrice, quantity or unitPrice")
            net = money(qty * price)
        tax = _money_field(raw, "taxCharge1", lwhere, default=None)
        tax2 = _money_field(raw, "taxCharge2", lwhere, default=None)
        if tax2:  # a line's second tax is VAT on the same line
            tax = (tax or ZERO) + tax2
        item = raw.get("item") if isinstance(raw.get("item"), Mapping) else {}
        lines.append(
            InvoiceLine(
                line_number=number,
                description=_text(item.get("description")) or _text(raw.get("description")) or f"line {number}",
                net=net,
                tax=tax,
                tax_rate=_rate_field(raw, lwhere),
                splits=parse_splits(raw, lwhere),
                taxable=_taxable(raw, lwhere),
                quantity=qty,
                unit_price=price,
            )
        )

    inv = Invoice(
        invoice_id=invoice_id,
        invoice_number=_text(header.get("invoiceNumber")) or invoice_id,
        supplier_invoice_number=_text(header.get("supplierInvoiceNumber")),
        invoice_type=invoice_type,
        is_credit=is_credit,
        invoice_date=invoice_date,
        due_date=due_date,
        currency=currency,
        total=total,
        tax1=_header_tax1(header, where),
        tax2=_money_field(header, "taxCharge2", where) or ZERO,
        shipping=_money_field(header, "shippingCharge", where) or ZERO,
        handling=_money_field(header, "handlingCharge", where) or ZERO,
        discount=_money_field(header, "discountAmount", where) or ZERO,
        business_unit=_text(header.get("businessUnit")),
        workflow_status=_text(header.get("workflowStatus")),
        payment_status=_text(header.get("paymentStatus")),
        last_update=last_update,
        vendor=vendor,
        lines=tuple(lines),
        header_splits=parse_splits(header, f"{where} header"),
    )
    if inv.is_credit and inv.total > 0:
        inv = _negated(inv)
    return inv


def _negated(inv: Invoice) -> Invoice:
    """A credit memo sent with positive amounts: every amount turned negative (Exact books credits negative)."""
    from dataclasses import replace

    lines = tuple(
        replace(
            line,
            net=-line.net,
            tax=None if line.tax is None else -line.tax,
            unit_price=None if line.unit_price is None else -line.unit_price,
            splits=tuple(replace(s, weight=-s.weight) if s.by_amount else s for s in line.splits),
        )
        for line in inv.lines
    )
    return replace(
        inv,
        total=-inv.total,
        tax1=-inv.tax1,
        tax2=-inv.tax2,
        shipping=-inv.shipping,
        handling=-inv.handling,
        discount=-inv.discount,
        lines=lines,
        header_splits=tuple(replace(s, weight=-s.weight) if s.by_amount else s for s in inv.header_splits),
    )


def rate_key(rate: Decimal) -> str:
    """``Decimal("20.00")`` → ``"20"``, ``Decimal("17.5")`` → ``"17.5"``: the form ``vat_codes`` keys use."""
    normalized = rate.normalize()
    text = f"{normalized:f}"
    return text if text != "-0" else "0"
