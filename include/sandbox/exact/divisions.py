"""What one Exact division holds in the sandbox: :class:`Division` (its tables), purchase orders as compact
:class:`PO` objects whose lines are tuples (API rows are built from them only when served), and the sync index.

Dates are kept as epoch milliseconds (UTC)."""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sandbox.common import demo_company as demo
from sandbox.exact.tables import Table

DAY_MS = 86_400_000

ORDER_STATUS = {10: "Open", 20: "Partial", 30: "Complete", 40: "Cancelled"}
APPROVAL_STATUS = {0: "Not applicable", 1: "Awaiting approval", 2: "Approved"}
ENTITY_TYPE_ACCOUNT = 2
ENTITY_TYPE_PURCHASE_ORDER = 22


# --------------------------------------------------------------------------------------------------- POs
# A line: (line_no, item_code, description|None, qty, unit_price, vat_code, cost_center, cost_unit,
#          receipt_ms, received_qty, invoiced_qty)
Line = tuple[int, str, str | None, float, float, str, str, str, int, float, float]


class PO:
    __slots__ = (
        "approval",
        "created",
        "currency",
        "description",
        "division",
        "id",
        "lines",
        "modified",
        "order_date",
        "order_number",
        "receipt_date",
        "remarks",
        "status",
        "supplier",
        "ts",
        "your_ref",
    )

    def __init__(self, **kw: Any) -> None:
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    @property
    def row_count(self) -> int:
        return 1 + len(self.lines)


def po_description(po: PO) -> str:
    return po.description if po.description is not None else f"PO {po.order_number} {po.lines[0][1]}"


def po_your_ref(po: PO) -> str | None:
    if po.your_ref is not None:
        return po.your_ref or None
    return f"REQ-{po.division % 1000:03d}-{po.order_number:06d}"


def line_id(po_id: str, line_no: int) -> str:
    return str(uuid.uuid5(uuid.UUID(po_id), str(line_no)))


class SyncIndex:
    """POs in header-Timestamp order. Rows of one order have consecutive Timestamps (header ``ts``, lines
    ``ts+1..ts+n``), so ``Timestamp gt N`` is a bisect."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.pos: list[PO] = []

    def append(self, po: PO) -> None:
        self.starts.append(po.ts)
        self.pos.append(po)

    def remove(self, po: PO) -> None:
        i = bisect_left(self.starts, po.ts)
        if i < len(self.starts) and self.pos[i] is po:
            del self.starts[i]
            del self.pos[i]

    def orders_after(self, ts: int) -> Iterator[tuple[PO, int]]:
        """(po, first row index) for every order with a row Timestamp > ts, in Timestamp order."""
        i = bisect_right(self.starts, ts) - 1
        if i >= 0:
            po = self.pos[i]
            first = max(ts - po.ts + 1, 0)
            if first < po.row_count:
                yield po, first
        for j in range(i + 1, len(self.pos)):
            yield self.pos[j], 0

    def rows_after(self, ts: int) -> Iterator[tuple[PO, int]]:
        """(po, line_index) pairs with row Timestamp > ts, in Timestamp order; line_index 0 is the header."""
        i = bisect_right(self.starts, ts) - 1
        if i >= 0:
            po = self.pos[i]
            first = ts - po.ts + 1
            for li in range(max(first, 0), po.row_count):
                yield po, li
        for j in range(i + 1, len(self.pos)):
            po = self.pos[j]
            for li in range(po.row_count):
                yield po, li


# --------------------------------------------------------------------------------------------------- division
@dataclass
class Division:
    code: int
    name: str
    accounts: Table
    purchase_orders: Table
    purchase_entries: Table
    sync: SyncIndex
    deleted: list[dict[str, Any]]
    gl_accounts: Table
    cost_centers: Table
    cost_units: Table
    vat_codes: Table
    journals: Table
    items: Table
    ts_counter: int = 0
    order_number_seq: int = 1000
    entry_seq: dict[str, int] | None = None

    def next_ts(self, n: int = 1) -> int:
        """Reserve ``n`` consecutive rowversions; returns the first."""
        first = self.ts_counter + 1
        self.ts_counter += n
        return first


def dict_table(key: str = "ID", eq: Iterable[str] = (), ranges: Iterable[str] = ()) -> Table:
    return Table(
        lambda e, _k=key: e[_k],
        eq={f: (lambda e, _f=f: e.get(_f)) for f in eq},
        ranges={f: (lambda e, _f=f: e.get(_f)) for f in ranges},
        key_field=key,
    )


def po_table() -> Table:
    return Table(
        lambda p: p.id,
        eq={
            "OrderNumber": lambda p: p.order_number,
            "Supplier": lambda p: p.supplier,
            "YourRef": po_your_ref,
        },
        ranges={"Modified": lambda p: p.modified},
        key_field="PurchaseOrderID",
    )


def new_division(code: int) -> Division:
    info = demo.division_info(code)
    return Division(
        code=code,
        name=info["name"],
        accounts=dict_table("ID", eq=("Code", "Name", "VATNumber", "ChamberOfCommerce", "Email")),
        purchase_orders=po_table(),
        purchase_entries=dict_table("EntryID", eq=("YourRef", "Supplier"), ranges=("Modified",)),
        sync=SyncIndex(),
        deleted=[],
        gl_accounts=dict_table("ID", eq=("Code",)),
        cost_centers=dict_table("ID", eq=("Code",)),
        cost_units=dict_table("ID", eq=("Code",)),
        vat_codes=dict_table("ID", eq=("Code",)),
        journals=dict_table("ID", eq=("Code",)),
        items=dict_table("ID", eq=("Code",)),
        ts_counter=10_000 + (code % 1000) * 7,
        order_number_seq=1000,
        entry_seq={},
    )
