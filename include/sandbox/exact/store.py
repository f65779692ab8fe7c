"""In-memory state of the Exact sandbox: :class:`ExactStore`, the divisions with their accounts, purchase orders,
purchase entries and master data, behind one lock. The tables are in ``tables``, a division's contents in
``divisions``, the seeding in ``seeding``.
"""

from __future__ import annotations

import threading
import uuid
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from sandbox.common import demo_company as demo
from sandbox.common.clock import Clock
from sandbox.exact.divisions import (
    APPROVAL_STATUS,
    DAY_MS,
    ENTITY_TYPE_ACCOUNT,
    ENTITY_TYPE_PURCHASE_ORDER,
    ORDER_STATUS,
    PO,
    Division,
    Line,
    SyncIndex,
    dict_table,
    line_id,
    new_division,
    po_description,
    po_table,
    po_your_ref,
)
from sandbox.exact.odata import parse_iso_to_ms
from sandbox.exact.seeding import StoreSeeding
from sandbox.exact.tables import Table

# re-exported: the sandbox's modules and tests import these from here
__all__ = [
    "APPROVAL_STATUS",
    "DAY_MS",
    "ENTITY_TYPE_ACCOUNT",
    "ENTITY_TYPE_PURCHASE_ORDER",
    "ORDER_STATUS",
    "PO",
    "Division",
    "ExactStore",
    "Line",
    "SyncIndex",
    "Table",
    "line_id",
    "new_division",
    "po_description",
    "po_your_ref",
]


class ExactStore(StoreSeeding):
    """All sandbox data. One coarse re-entrant lock guards every read and write."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.divisions: dict[int, Division] = {}
        # Called (division, action, purchase order id) on every create/update/delete of a purchase order, under
        # ``lock``; action is Create, Update or Delete (Exact's webhook actions). The webhook hub queues there.
        self.on_po_change: Callable[[int, str, str], None] | None = None

    def _po_changed(self, div: Division, action: str, po_id: str) -> None:
        if self.on_po_change is not None:
            self.on_po_change(div.code, action, po_id)

    # ---- helpers ----------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.clock.time() * 1000)

    def division(self, code: int) -> Division | None:
        return self.divisions.get(code)

    def account(self, div: Division, account_id: str | None) -> dict[str, Any] | None:
        return div.accounts.get(account_id) if account_id else None

    def by_code(self, table: Table, code: str) -> dict[str, Any] | None:
        hits = table.lookup("Code", code)
        for h in hits:
            if h["Code"] == code:
                return h
        return hits[0] if hits else None

    def item(self, div: Division, code: str) -> dict[str, Any] | None:
        return self.by_code(div.items, code)

    # ---- seeding ----------------------------------------------------------------------------------------
    def reset(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        params = params or {}
        with self.lock:
            self.divisions = {}
            codes = list(demo.DIVISIONS)
            if params.get("second_tenant"):  # the second demo tenant's divisions (cluster runs), opt-in
                codes += list(demo.SECOND_DIVISIONS)
            for code in codes:
                self.divisions[code] = self._seed_division(code, int(params.get("seed", 1)))
            if params.get("empty"):
                for div in self.divisions.values():
                    self._clear_transactions(div)
            return self.summary()

    def _clear_transactions(self, div: Division) -> None:
        div.purchase_orders = po_table()
        div.sync = SyncIndex()
        div.deleted = []
        div.purchase_entries = dict_table("EntryID", eq=("YourRef", "Supplier"), ranges=("Modified",))

    def summary(self) -> dict[str, Any]:
        return {
            "divisions": {
                code: {
                    "accounts": len(d.accounts),
                    "purchase_orders": len(d.purchase_orders),
                    "purchase_entries": len(d.purchase_entries),
                    "deleted": len(d.deleted),
                    "timestamp": d.ts_counter,
                }
                for code, d in self.divisions.items()
            }
        }

    def deleted_row(self, div: Division, key: str, entity_type: int, when: int) -> dict[str, Any]:
        return {
            "ID": str(uuid.uuid5(uuid.UUID(key), f"deleted:{entity_type}")),
            "Timestamp": div.next_ts(),
            "EntityKey": key,
            "EntityType": entity_type,
            "DeletedBy": demo.DEMO_USER["UserID"],
            "DeletedDate": when,
            "Division": div.code,
        }

    _QTYS = (1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 250.0, 500.0)
    _SERVICE_UNITS = frozenset(("h", "day", "visit", "month", "job", "batch"))
    _COST_UNITS = ("", "", "CU01", "CU02", "CU03")

    # ---- PO mutations (admin helpers) ---------------------------------------------------------------------
    def _bump(self, div: Division, po: PO) -> None:
        """A change to header or lines re-versions every row of the order and sets Modified."""
        div.sync.remove(po)
        po.ts = div.next_ts(po.row_count)
        div.sync.append(po)

    def create_purchase_order(self, div: Division, body: dict[str, Any]) -> PO:
        now = self.now_ms()
        supplier = body.get("Supplier")
        if not supplier and body.get("SupplierCode"):
            acct = self.by_code(div.accounts, str(body["SupplierCode"]).strip().rjust(18))
            supplier = acct["ID"] if acct else None
        acct = self.account(div, supplier)
        if acct is None or not acct["IsSupplier"]:
            raise ValueError("Supplier must be an existing supplier account (Supplier GUID or SupplierCode)")
        raw_lines = body.get("PurchaseOrderLines") or []
        if not raw_lines:
            raise ValueError("PurchaseOrderLines: at least one line")
        order_date = now // DAY_MS * DAY_MS
        if body.get("OrderDate"):
            order_date = parse_iso_to_ms(body["OrderDate"])
        lines = [self._line_from_body(div, i + 1, ln, order_date) for i, ln in enumerate(raw_lines)]
        div.order_number_seq += 1
        number = int(body.get("OrderNumber") or div.order_number_seq)
        po = PO(
            id=str(body.get("PurchaseOrderID") or uuid.uuid4()).lower(),
            division=div.code,
            order_number=number,
            supplier=acct["ID"],
            order_date=order_date,
            created=now,
            modified=now,
            ts=0,
            status=int(body.get("OrderStatus", 10)),
            approval=int(body.get("ApprovalStatus", 2)),
            description=body.get("Description") or f"PO {number}",
            your_ref=body.get("YourRef") or "",
            currency=body.get("Currency") or demo.CURRENCY,
            receipt_date=order_date + 14 * DAY_MS,
            remarks=body.get("Remarks"),
            lines=lines,
        )
        po.ts = div.next_ts(po.row_count)
        div.purchase_orders.put(po)
        div.sync.append(po)
        self._po_changed(div, "Create", po.id)
        return po

    def _line_from_body(self, div: Division, n: int, ln: dict[str, Any], order_date: int) -> Line:
        code = ln.get("ItemCode") or demo.ITEMS[0].code
        item = self.item(div, code)
        if item is None:
            raise ValueError(f"unknown ItemCode {code!r}")
        return (
            n,
            code,
            ln.get("Description"),
            float(ln.get("QuantityInPurchaseUnits", ln.get("Quantity", 1))),
            float(ln.get("UnitPrice", item["CostPriceStandard"])),
            str(ln.get("VATCode", item["PurchaseVATCode"])),
            str(ln.get("CostCenter", "CC100")),
            str(ln.get("CostUnit", "")),
            order_date + 14 * DAY_MS,
            float(ln.get("ReceivedQuantity", 0)),
            float(ln.get("InvoicedQuantity", 0)),
        )

    def modify_purchase_order(self, div: Division, po_id: str, body: dict[str, Any]) -> PO:
        now = self.now_ms()
        po = div.purchase_orders.get(po_id)
        if po is None:
            raise KeyError(po_id)

        def mutate(p: PO) -> None:
            for field, attr in (
                ("Description", "description"),
                ("YourRef", "your_ref"),
                ("Remarks", "remarks"),
                ("Currency", "currency"),
            ):
                if field in body:
                    setattr(p, attr, body[field])
            if "OrderStatus" in body:
                p.status = int(body["OrderStatus"])
            if "ApprovalStatus" in body:
                p.approval = int(body["ApprovalStatus"])
            if "Supplier" in body:
                if self.account(div, body["Supplier"]) is None:
                    raise ValueError("unknown Supplier")
                p.supplier = body["Supplier"].lower()
            if "PurchaseOrderLines" in body:
                p.lines = [
                    self._line_from_body(div, i + 1, ln, p.order_date)
                    for i, ln in enumerate(body["PurchaseOrderLines"])
                ]
            for upd in body.get("LineUpdates", []):  # [{"LineNumber": 2, "QuantityInPurchaseUnits": 7}, ...]
                idx = next((i for i, ln in enumerate(p.lines) if ln[0] == int(upd["LineNumber"])), None)
                if idx is None:
                    raise ValueError(f"no line {upd['LineNumber']}")
                ln = list(p.lines[idx])
                for key, pos in (
                    ("ItemCode", 1),
                    ("Description", 2),
                    ("QuantityInPurchaseUnits", 3),
                    ("UnitPrice", 4),
                    ("VATCode", 5),
                    ("CostCenter", 6),
                    ("CostUnit", 7),
                ):
                    if key in upd:
                        ln[pos] = float(upd[key]) if pos in (3, 4) else upd[key]
                p.lines[idx] = tuple(ln)  # type: ignore[assignment]
            p.modified = now

        div.purchase_orders.update(po.id, mutate)
        self._bump(div, po)
        self._po_changed(div, "Update", po.id)
        return po

    def delete_purchase_order(self, div: Division, po_id: str, when: int | None = None) -> None:
        po = div.purchase_orders.get(po_id)
        if po is None:
            raise KeyError(po_id)
        div.purchase_orders.remove(po.id)
        div.sync.remove(po)
        div.deleted.append(
            self.deleted_row(div, po.id, ENTITY_TYPE_PURCHASE_ORDER, when if when is not None else self.now_ms())
        )
        self._po_changed(div, "Delete", po.id)

    def deleted_after(self, div: Division, ts: int) -> list[dict[str, Any]]:
        starts = [d["Timestamp"] for d in div.deleted]
        return div.deleted[bisect_right(starts, ts) :]
