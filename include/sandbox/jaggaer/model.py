"""The JAGGAER sandbox's data: customers (tenants), suppliers, invoices, purchase orders.

Money is ``Decimal`` with two places throughout; an invoice's header charges are derived from its lines, so
``sum(line extendedPrice) + taxCharge1 + taxCharge2 + shippingCharge + handlingCharge - discountAmount == total``
holds exactly for every invoice (credit memos carry negative unit prices, so everything is negative).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def money(value: Decimal | float | int | str) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def num(value: Decimal) -> int | float:
    """JSON number the way J1P writes them: ``475`` for whole amounts, ``620.13`` otherwise."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def fmt_ts(dt: datetime) -> str:
    """``2026-11-22T10:15:30.123Z`` (UTC, milliseconds)."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def fmt_date(d: date | datetime) -> str:
    """Dates travel as midnight UTC timestamps: ``2026-11-22T00:00:00.000Z``."""
    if isinstance(d, datetime):
        d = d.astimezone(UTC).date()
    return f"{d.isoformat()}T00:00:00.000Z"


def parse_ts(text: str) -> datetime:
    """ISO-8601 instant (``Z`` or offset; naive means UTC). Raises ``ValueError``."""
    text = text.strip()
    if not text:
        raise ValueError("empty timestamp")
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


# ---------------------------------------------------------------------------------------------------------------
# suppliers


@dataclass
class Supplier:
    id: int
    name: str
    supplier_number: str | None  # = ERPNumber = Exact account code for matched vendors
    duns: str | None = None
    vat_number: str | None = None
    tax_id: str | None = None  # fiscal code (UK: chamber of commerce / company number)
    active: bool = True
    address: dict[str, Any] = field(default_factory=dict)  # remit-to
    contacts: list[dict[str, Any]] = field(default_factory=list)
    email: str | None = None
    source: str = "seed"  # seed | xml | admin
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def ref(self) -> dict[str, Any]:
        """The ``supplier`` object inside an invoice header."""
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.supplier_number is not None:
            out["supplierNumber"] = self.supplier_number
        out["duns"] = self.duns if self.duns else "DNP"
        return out

    def company_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"bravoId": str(self.id), "companyName": self.name}
        if self.supplier_number is not None:
            info["extCode"] = self.supplier_number
        if self.tax_id:
            info["fiscalCode"] = self.tax_id
        if self.vat_number:
            info["euVat"] = self.vat_number
        return {"returnCompanyInfo": info}

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "supplierNumber": self.supplier_number,
            "duns": self.duns,
            "vatNumber": self.vat_number,
            "taxId": self.tax_id,
            "active": self.active,
            "address": self.address,
            "contacts": self.contacts,
            "email": self.email,
            "source": self.source,
            "createdAt": fmt_ts(self.created_at) if self.created_at else None,
            "updatedAt": fmt_ts(self.updated_at) if self.updated_at else None,
        }


# ---------------------------------------------------------------------------------------------------------------
# invoices


@dataclass
class Split:
    """One accounting split: a cost centre and GL account carrying a share of a line (or of every line)."""

    cost_centre: str
    gl_account: str
    percent: Decimal  # the share, 0 < percent <= 100; the shares of one split set add up to 100
    cost_centre_name: str | None = None
    gl_account_name: str | None = None


@dataclass
class InvoiceLine:
    line_id: int
    line_number: int
    description: str
    quantity: Decimal
    unit_price: Decimal  # negative on credit memos
    tax_rate: Decimal  # 0.20 / 0.05 / 0.00
    vat_code: str | None = None
    vat_description: str | None = None
    unit_of_measure: str = "EA"
    product_type: str = "NonCatalogItem"
    po_number: str | None = None
    po_line_number: str | None = None
    item_code: str | None = None
    splits: list[Split] = field(default_factory=list)

    @property
    def extended(self) -> Decimal:
        return money(self.quantity * self.unit_price)

    @property
    def tax(self) -> Decimal:
        return money(self.extended * self.tax_rate)


@dataclass
class Invoice:
    invoice_id: int
    invoice_number: str
    supplier_invoice_number: str
    invoice_type: str  # "Invoice" | "Credit memo"
    invoice_date: date
    due_date: date
    accounting_date: date
    created_at: datetime
    last_update: datetime
    workflow_status: str  # Completed | Pending
    payment_status: str  # Payable | InProcess | Paid
    business_unit: str
    supplier: Supplier
    currency: str = "GBP"
    category: str | None = None
    lines: list[InvoiceLine] = field(default_factory=list)
    header_splits: list[Split] = field(default_factory=list)
    shipping: Decimal = ZERO
    handling: Decimal = ZERO
    discount: Decimal = ZERO
    tax2: Decimal = ZERO
    match_status: str | None = None
    invoice_source: str = "Manual"
    submitted_by: str = "ap.clerk@demo.example"
    edits: int = 0

    @property
    def is_po(self) -> bool:
        return any(line.po_number for line in self.lines)

    @property
    def subtotal(self) -> Decimal:
        return sum((line.extended for line in self.lines), ZERO)

    @property
    def tax1(self) -> Decimal:
        return sum((line.tax for line in self.lines), ZERO)

    @property
    def total(self) -> Decimal:
        return money(self.subtotal + self.tax1 + self.tax2 + self.shipping + self.handling - self.discount)


@dataclass
class PurchaseOrder:
    po_number: str
    po_id: int
    supplier: Supplier
    status: str  # Open | Cancelled
    header: dict[str, Any]
    lines: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    history: list[dict[str, Any]] = field(default_factory=list)
    last_xml: str | None = None

    @property
    def total(self) -> Decimal:
        return sum((money(line["quantity"] * line["unit_price"]) for line in self.lines), ZERO)

    def view(self) -> dict[str, Any]:
        return {
            "poNumber": self.po_number,
            "poId": self.po_id,
            "status": self.status,
            "supplier": self.supplier.ref(),
            "header": self.header,
            "lines": [
                {
                    **{k: v for k, v in line.items() if k not in {"quantity", "unit_price"}},
                    "quantity": str(line["quantity"]),
                    "unitPrice": str(line["unit_price"]),
                }
                for line in self.lines
            ],
            "total": str(self.total),
            "createdAt": fmt_ts(self.created_at),
            "updatedAt": fmt_ts(self.updated_at),
            "history": self.history,
        }


# ---------------------------------------------------------------------------------------------------------------
# tenants


@dataclass
class Tenant:
    """One JAGGAER customer: its OAuth client, its XML identity and all of its data."""

    key: str
    client_id: str
    client_secret: str
    identity: str
    shared_secret: str
    business_units: list[str] = field(default_factory=list)
    suppliers: dict[int, Supplier] = field(default_factory=dict)
    invoices: dict[int, Invoice] = field(default_factory=dict)
    purchase_orders: dict[str, PurchaseOrder] = field(default_factory=dict)
    supplier_sync_log: list[dict[str, Any]] = field(default_factory=list)
    po_log: list[dict[str, Any]] = field(default_factory=list)
    next_supplier_id: int = 1003837000
    next_invoice_id: int = 2428000
    next_line_id: int = 8875000
    next_invoice_number: int = 1
    next_po_id: int = 700000
    rate_window: int = -1
    rate_count: int = 0

    # -- ids -----------------------------------------------------------------------------------------------
    def new_supplier_id(self) -> int:
        self.next_supplier_id += 1
        return self.next_supplier_id

    def new_invoice_id(self) -> int:
        self.next_invoice_id += 1
        return self.next_invoice_id

    def new_line_id(self) -> int:
        self.next_line_id += 1
        return self.next_line_id

    def new_invoice_number(self) -> str:
        number = f"I{self.next_invoice_number:05d}"
        self.next_invoice_number += 1
        return number

    def new_po_id(self) -> int:
        self.next_po_id += 1
        return self.next_po_id

    # -- look-ups ------------------------------------------------------------------------------------------
    def supplier_by_number(self, number: str, trim: bool = False) -> Supplier | None:
        """The supplier whose number is exactly ``number`` (``trim``: both sides stripped first, lenient)."""
        if trim:
            number = number.strip()
        for s in self.suppliers.values():
            if s.supplier_number is None:
                continue
            if s.supplier_number == number or (trim and s.supplier_number.strip() == number):
                return s
        return None

    def supplier_by_duns(self, duns: str, trim: bool = False) -> Supplier | None:
        if trim:
            duns = duns.strip()
        for s in self.suppliers.values():
            if s.duns and (s.duns == duns or (trim and s.duns.strip() == duns)):
                return s
        return None

    def supplier_by_name(self, name: str) -> Supplier | None:
        wanted = " ".join(name.split()).casefold()
        for s in self.suppliers.values():
            if " ".join(s.name.split()).casefold() == wanted:
                return s
        return None
