"""The staged form of an Exact purchase order, and how Exact's rows become it.

Both read paths produce the same payload, so the ledger's payload hash says whether an order *changed* no matter
how it was read:

- the sync endpoint (``sync/PurchaseOrder/PurchaseOrders``) returns header and line rows in one flat list
  (``LineNumber`` 0 is the header): :class:`OrderFolder` folds them back into orders;
- the by-date endpoint (``purchaseorder/PurchaseOrders`` with ``$expand=PurchaseOrderLines``) returns headers with
  their lines: :func:`order_from_expanded`.

The payload keeps only what JAGGAER receives or what decides the action (status, deletion): volatile fields
(``Modified``, ``Timestamp``, received/invoiced quantities, amounts Exact computes) stay out, so re-versioning an
order in Exact without a real change does not send an update. Numbers are kept as decimal strings (exact, JSON-able).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ml_connector.exact import odata

ORDER_STATUS_CANCELLED = 40
ENTITY_TYPE_PURCHASE_ORDER = 22

SYNC_PATH = "sync/PurchaseOrder/PurchaseOrders"
ORDERS_PATH = "purchaseorder/PurchaseOrders"
DELETED_PATH = "sync/Deleted"
ITEMS_PATH = "logistics/Items"
ACCOUNTS_PATH = "crm/Accounts"
LINES_NAV = "PurchaseOrderLines"

HEADER_FIELDS = [
    "PurchaseOrderID",
    "OrderNumber",
    "OrderDate",
    "OrderStatus",
    "ApprovalStatus",
    "Supplier",
    "SupplierCode",
    "SupplierName",
    "Currency",
    "Description",
    "YourRef",
]
#: Line fields common to both read paths.
_LINE_COMMON = [
    "ID",
    "LineNumber",
    "Item",
    "ItemCode",
    "ItemDescription",
    "Description",
    "QuantityInPurchaseUnits",
    "UnitPrice",
    "Unit",
    "VATCode",
    "ReceiptDate",
]
# Where each read path carries the cost centre and cost unit *codes* (Exact's entity reference): on
# ``PurchaseOrderLines`` the plain fields are the codes; on the sync endpoint they are GUIDs and the codes are in
# ``CostCenterCode``/``CostUnitCode``. Reading the code fields on both paths makes their payloads identical.
EXPANDED_CODES = {"cost_center": "CostCenter", "cost_unit": "CostUnit"}
SYNC_CODES = {"cost_center": "CostCenterCode", "cost_unit": "CostUnitCode"}
LINE_FIELDS = [*_LINE_COMMON, *EXPANDED_CODES.values()]
SYNC_LINE_FIELDS = [*_LINE_COMMON, *SYNC_CODES.values()]
#: ``$select`` of the sync endpoint: header and line fields in one flat row (never ``*``, which Exact refuses).
SYNC_SELECT = ["Timestamp", *dict.fromkeys(HEADER_FIELDS + SYNC_LINE_FIELDS)]
#: ``$select`` of the by-date endpoint: header fields and the expanded lines' fields as ``PurchaseOrderLines/F``.
EXPANDED_SELECT = [*HEADER_FIELDS, *(f"{LINES_NAV}/{f}" for f in LINE_FIELDS)]
DELETED_SELECT = ["Timestamp", "EntityKey", "EntityType", "DeletedDate"]
ITEM_SELECT = ["ID", "Code", "ItemGroupCode"]
ACCOUNT_SELECT = [
    "ID",
    "Code",
    "Name",
    "VATNumber",
    "ChamberOfCommerce",
    "Email",
    "AddressLine1",
    "City",
    "Postcode",
    "Country",
    "Blocked",
    "IsSupplier",
]


# --------------------------------------------------------------------------------------------------- values
def number_text(value: Any) -> str | None:
    """A number as exact decimal text (``1.18`` → ``"1.18"``); anything not numeric is kept as its text so
    validation can name it; ``None`` stays ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | Decimal):
        return format(Decimal(value), "f")
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    text = str(value).strip()
    try:
        return format(Decimal(text), "f")
    except InvalidOperation:
        return text


def as_decimal(value: str | None) -> Decimal | None:
    """The decimal of a payload number, ``None`` when missing or not a finite number."""
    if value is None:
        return None
    try:
        d = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    return d if d.is_finite() else None


def date_text(value: Any) -> str | None:
    """An Exact date-only value (``/Date(ms)/``) as ``YYYY-MM-DD``.

    Exact writes dates as midnight; whether that midnight is UTC or CET is a guess (docs/sandbox-exact.md), so the
    instant is rounded to the nearest day (right for any zone within ±12 h)."""
    if value in (None, ""):
        return None
    try:
        parsed = odata.parse_date(value)
    except ValueError:
        return str(value)
    if parsed is None:
        return None
    return (parsed + timedelta(hours=12)).date().isoformat()


def parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _guid(value: Any) -> str | None:
    text = _text(value)
    return text.lower().strip("{}") if text else None


# --------------------------------------------------------------------------------------------------- payload
def header_part(row: dict[str, Any], division: int) -> dict[str, Any]:
    return {
        "id": _guid(row.get("PurchaseOrderID")),
        "division": int(division),
        "order_number": _int(row.get("OrderNumber")),
        "order_date": date_text(row.get("OrderDate")),
        "status": _int(row.get("OrderStatus")),
        "approval_status": _int(row.get("ApprovalStatus")),
        "supplier_id": _guid(row.get("Supplier")),
        "supplier_code": _text(row.get("SupplierCode")),
        "supplier_name": _text(row.get("SupplierName")),
        "currency": _text(row.get("Currency")),
        "description": _text(row.get("Description")),
        "your_ref": _text(row.get("YourRef")),
    }


def line_part(row: dict[str, Any], codes: dict[str, str] = EXPANDED_CODES) -> dict[str, Any]:
    """A line's payload; ``codes`` names the fields holding the cost centre and cost unit codes on this path."""
    return {
        "line_number": _int(row.get("LineNumber")),
        "item_id": _guid(row.get("Item")),
        "item_code": _text(row.get("ItemCode")),
        "description": _text(row.get("Description")) or _text(row.get("ItemDescription")) or _text(row.get("ItemCode")),
        "quantity": number_text(row.get("QuantityInPurchaseUnits")),
        "unit_price": number_text(row.get("UnitPrice")),
        "unit": _text(row.get("Unit")),
        "cost_center": _text(row.get(codes["cost_center"])),
        "cost_unit": _text(row.get(codes["cost_unit"])),
        "vat_code": _text(row.get("VATCode")),
        "receipt_date": date_text(row.get("ReceiptDate")),
    }


def make_payload(header: dict[str, Any], lines: Iterable[dict[str, Any]], *, deleted: bool = False) -> dict[str, Any]:
    ordered = sorted(lines, key=lambda ln: (ln.get("line_number") is None, ln.get("line_number") or 0))
    return {**header, "deleted": bool(deleted), "lines": ordered}


def deleted_payload(previous: dict[str, Any]) -> dict[str, Any]:
    """The staged version of an order that was deleted in Exact (its last known data, marked deleted)."""
    return {**previous, "deleted": True}


def order_from_expanded(row: dict[str, Any], lines: Iterable[dict[str, Any]], division: int) -> dict[str, Any]:
    return make_payload(header_part(row, division), (line_part(ln) for ln in lines))


def is_cancelled(payload: dict[str, Any]) -> bool:
    return bool(payload.get("deleted")) or payload.get("status") == ORDER_STATUS_CANCELLED


def order_ref(payload: dict[str, Any]) -> str:
    """How people name an order: its Exact order number."""
    number = payload.get("order_number")
    return str(number) if number is not None else str(payload.get("id"))


def unpadded(code: str | None) -> str | None:
    return code.strip() if code and code.strip() else None


# --------------------------------------------------------------------------------------------------- folding
@dataclass
class _Partial:
    header: dict[str, Any] | None = None
    lines: dict[int, dict[str, Any]] = field(default_factory=dict)
    last_row: int = 0  # the folder's row count when a row of this order last came


class OrderFolder:
    """Folds the sync endpoint's flat rows into orders.

    A change to an order's header or to any line re-versions all its rows, so every current row of a changed order
    comes in the read, and in practice together (adjacent Timestamps). Nothing guarantees that, and the sync entity
    has no line count, so an order is released once ``settle_rows`` further rows have passed without one of its own
    (one 1,000-row page by default: memory stays bounded however large the read). A row that arrives for an order
    already released marks that order for a re-read by id at the end of the read (:meth:`flush`), which replaces
    what was staged for it.
    """

    def __init__(self, division: int, settle_rows: int = 1000) -> None:
        self.division = division
        self.settle_rows = settle_rows
        self._open: OrderedDict[str, _Partial] = OrderedDict()
        self._released: set[str] = set()
        self._stragglers: dict[str, None] = {}
        self.max_timestamp: int | None = None
        self.rows = 0

    def add(self, row: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Take one row; yield the orders that have settled."""
        self.rows += 1
        ts = _int(row.get("Timestamp"))
        if ts is not None and (self.max_timestamp is None or ts > self.max_timestamp):
            self.max_timestamp = ts
        order_id = _guid(row.get("PurchaseOrderID"))
        if order_id is not None:
            if order_id in self._released:
                self._stragglers[order_id] = None  # split from its order: read it whole at the end
            else:
                partial = self._open.pop(order_id, None) or _Partial()
                self._open[order_id] = partial  # most recently seen last
                partial.last_row = self.rows
                line_no = _int(row.get("LineNumber")) or 0
                if line_no == 0:
                    partial.header = header_part(row, self.division)
                else:
                    partial.lines[line_no] = line_part(row, SYNC_CODES)
        while self._open:
            oldest_id, oldest = next(iter(self._open.items()))
            if self.rows - oldest.last_row < self.settle_rows:
                break
            del self._open[oldest_id]
            yield from self._release(oldest_id, oldest)

    def _release(self, order_id: str, partial: _Partial) -> Iterator[dict[str, Any]]:
        self._released.add(order_id)
        if partial.header is None:  # lines without their header row: read the order whole
            self._stragglers[order_id] = None
            return
        yield make_payload(partial.header, partial.lines.values())

    def flush(self) -> tuple[list[dict[str, Any]], list[str]]:
        """At the end of the read: the orders still open, and the ids of orders to re-read whole by id."""
        done: list[dict[str, Any]] = []
        for order_id, partial in list(self._open.items()):
            done.extend(self._release(order_id, partial))
        self._open.clear()
        incomplete = list(self._stragglers)
        self._stragglers.clear()
        return done, incomplete


def batched_or_filters(
    field_name: str, literals: list[str], *, max_terms: int = 20, max_chars: int = 4000
) -> list[str]:
    """``F eq a or F eq b ...`` filters of at most ``max_terms`` terms and ``max_chars`` characters each (Exact's
    URL limit is 6,000 characters, and the ``$select`` shares it)."""
    out: list[str] = []
    current: list[str] = []
    length = 0
    for lit in literals:
        term = f"{field_name} eq {lit}"
        extra = len(term) + (4 if current else 0)
        if current and (len(current) >= max_terms or length + extra > max_chars):
            out.append(" or ".join(current))
            current, length = [], 0
            extra = len(term)
        current.append(term)
        length += extra
    if current:
        out.append(" or ".join(current))
    return out


def as_datetime_literal(value: datetime) -> str:
    return odata.datetime_literal(value)
