"""Entity-set definitions of the Exact sandbox: schemas, how stored objects become API rows, navigation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.common import demo_company as demo
from sandbox.exact import reference
from sandbox.exact.odata import Schema
from sandbox.exact.store import (
    APPROVAL_STATUS,
    PO,
    Division,
    Table,
    line_id,
    po_description,
    po_your_ref,
)


@dataclass
class Nav:
    name: str
    target: str | None  # the linked endpoint (reference name); None where the reference does not say
    key_field: str = ""  # field of the child that holds the parent key


@dataclass
class EntitySet:
    """One endpoint the sandbox serves. Its schema, type name, methods and collections come from Exact's entity
    reference (:mod:`sandbox.exact.reference`); behaviour (data, required filters, validation) is added by hand."""

    name: str  # path under /api/v1/{division}/, e.g. "crm/Accounts"
    key: str
    table: Callable[[Division], Table] | None = None
    kind: str = "normal"  # normal (60/page) | bulk / sync (1000/page, $select mandatory)
    full: Callable[[Division, Any], dict[str, Any]] | None = None  # stored object -> API row
    getters: dict[str, Callable[[Any], Any]] | None = None  # for $filter on stored objects
    # getters bound to a division (fields that need the division's accounts or code tables); complete: every
    # schema field, so a $filter on any of them works on stored objects
    getters_for: Callable[[Division], dict[str, Callable[[Any], Any]]] | None = None
    required_filter: frozenset[str] | None = None  # GET needs a $filter naming one of these
    ref: reference.Endpoint = field(init=False)
    type_name: str = field(init=False)
    schema: Schema = field(init=False)  # every non-collection property -> value kind
    navs: dict[str, Nav] = field(init=False)  # every collection property
    methods: frozenset[str] = field(init=False)
    writable: frozenset[str] = field(init=False)  # properties a POST may set (the reference's hints)
    updatable: frozenset[str] = field(init=False)  # properties a PUT may set

    def __post_init__(self) -> None:
        self.ref = reference.endpoint(self.name)
        self.type_name = self.ref.type_name
        self.schema = self.ref.plain
        self.navs = {n: Nav(n, p.collection_of, self.key) for n, p in self.ref.collections.items()}
        self.methods = self.ref.methods
        self.writable = frozenset(n for n, p in self.ref.properties.items() if "POST" in p.methods)
        self.updatable = frozenset(n for n, p in self.ref.properties.items() if "PUT" in p.methods)


ACCOUNT = reference.endpoint("crm/Accounts").plain
# crm/Accounts refuses a GET without a filter on one of these (Exact's error text lists them; docs/sandbox-exact.md).
# Modified is a switch (ExactSettings.accounts_filter_on_modified): sources disagree.
ACCOUNT_REQUIRED_FILTER = frozenset(
    {
        "ID",
        "Code",
        "Name",
        "SearchCode",
        "VATNumber",
        "ChamberOfCommerce",
        "Email",
        "IsSupplier",
        "IsSales",
        "IsPurchase",
        "Created",
        "Blocked",
        "City",
        "Country",
        "Postcode",
        "Status",
        "Type",
    }
)
PO_HEADER = reference.endpoint("purchaseorder/PurchaseOrders").plain
PO_LINE = reference.endpoint("purchaseorder/PurchaseOrderLines").plain
SYNC_PO = reference.endpoint("sync/PurchaseOrder/PurchaseOrders").plain


# --------------------------------------------------------------------------------------------------- PO rows
class Lookups:
    """Per-division code tables for rendering, rebuilt when a reset/seed replaces them."""

    def __init__(self, div: Division) -> None:
        self.vat = {v["Code"]: v for v in div.vat_codes}
        self.cc = {c["Code"]: c for c in div.cost_centers}
        self.cu = {c["Code"]: c for c in div.cost_units}
        self.items = {i["Code"]: i for i in div.items}


_LOOKUPS: dict[int, tuple[Division, Lookups]] = {}


def lookups(div: Division) -> Lookups:
    hit = _LOOKUPS.get(div.code)
    if hit is None or hit[0] is not div:
        hit = (div, Lookups(div))
        _LOOKUPS[div.code] = hit
    return hit[1]


def _line_amounts(lk: Lookups, ln: tuple) -> tuple[float, float, float]:
    amount = round(ln[3] * ln[4], 2)
    vat = lk.vat.get(ln[5])
    pct = vat["Percentage"] if vat else 0.0
    return amount, pct, round(amount * pct, 2)


def po_header_row(div: Division, po: PO) -> dict[str, Any]:
    lk = lookups(div)
    acct = div.accounts.get(po.supplier)
    amount = 0.0
    vat_total = 0.0
    for ln in po.lines:
        a, _, v = _line_amounts(lk, ln)
        amount += a
        vat_total += v
    receipt_status = {10: 10, 20: 20, 30: 30, 40: 10}.get(po.status, 10)
    return {
        "PurchaseOrderID": po.id,
        "AmountDC": round(amount, 2),
        "AmountFC": round(amount, 2),
        "ApprovalStatus": po.approval,
        "ApprovalStatusDescription": APPROVAL_STATUS.get(po.approval, ""),
        "Created": po.created,
        "Creator": demo.DEMO_USER["UserID"],
        "CreatorFullName": demo.DEMO_USER["FullName"],
        "Currency": po.currency,
        "Description": po_description(po),
        "Division": po.division,
        "ExchangeRate": 1.0,
        "InvoiceStatus": 30 if po.status == 30 else 10,
        "Modified": po.modified,
        "OrderDate": po.order_date,
        "OrderNumber": po.order_number,
        "OrderStatus": po.status,
        "PaymentCondition": acct["PaymentConditionPurchase"] if acct else None,
        "PurchaseOrderLineCount": len(po.lines),
        "ReceiptDate": po.receipt_date,
        "ReceiptStatus": receipt_status,
        "Remarks": po.remarks,
        "Supplier": po.supplier,
        "SupplierCode": acct["Code"] if acct else None,
        "SupplierName": acct["Name"] if acct else None,
        "VATAmount": round(vat_total, 2),
        "YourRef": po_your_ref(po),
    }


def po_line_row(div: Division, po: PO, ln: tuple) -> dict[str, Any]:
    lk = lookups(div)
    amount, pct, vat = _line_amounts(lk, ln)
    item = lk.items.get(ln[1])
    cc = lk.cc.get(ln[6])
    cu = lk.cu.get(ln[7]) if ln[7] else None
    vat_code = lk.vat.get(ln[5])
    return {
        "ID": line_id(po.id, ln[0]),
        "PurchaseOrderID": po.id,
        "LineNumber": ln[0],
        "AmountDC": amount,
        "AmountFC": amount,
        "CostCenter": ln[6] or None,
        "CostCenterDescription": cc["Description"] if cc else None,
        "CostUnit": ln[7] or None,
        "CostUnitDescription": cu["Description"] if cu else None,
        "Created": po.created,
        "Description": ln[2] if ln[2] is not None else (item["Description"] if item else ln[1]),
        "Discount": 0.0,
        "Division": po.division,
        "InvoicedQuantity": ln[10],
        "Item": item["ID"] if item else None,
        "ItemCode": ln[1],
        "ItemDescription": item["Description"] if item else None,
        "Modified": po.modified,
        "NetPrice": ln[4],
        "Notes": None,
        "Quantity": ln[3],
        "QuantityInPurchaseUnits": ln[3],
        "ReceiptDate": ln[8],
        "ReceivedQuantity": ln[9],
        "Unit": item["Unit"] if item else None,
        "UnitDescription": item["Unit"] if item else None,
        "UnitPrice": ln[4],
        "VATAmount": vat,
        "VATCode": ln[5],
        "VATDescription": vat_code["Description"] if vat_code else None,
        "VATPercentage": pct,
    }


_LINE_ONLY = [k for k in SYNC_PO if k in PO_LINE and k not in PO_HEADER and k != "ID"]


def _sync_line_codes(div: Division, line: dict[str, Any]) -> dict[str, Any]:
    """On the sync endpoint ``CostCenter``/``CostUnit`` are GUIDs and the codes are ``CostCenterCode``/
    ``CostUnitCode`` (the reference's types); on ``PurchaseOrderLines`` the plain fields hold the codes."""
    lk = lookups(div)
    cc = lk.cc.get(line["CostCenter"]) if line.get("CostCenter") else None
    cu = lk.cu.get(line["CostUnit"]) if line.get("CostUnit") else None
    return {
        "CostCenter": cc["ID"] if cc else None,
        "CostCenterCode": line.get("CostCenter"),
        "CostUnit": cu["ID"] if cu else None,
        "CostUnitCode": line.get("CostUnit"),
    }


def sync_head(div: Division, po: PO) -> dict[str, Any]:
    """The header fields an order's sync rows carry: those of ``po_header_row`` the sync entity has too."""
    return {k: v for k, v in po_header_row(div, po).items() if k in SYNC_PO}


def sync_po_row(div: Division, po: PO, index: int, head: dict[str, Any] | None = None) -> dict[str, Any]:
    """Row ``index`` of an order on the sync endpoint: 0 is the header, 1.. are the lines. Pass ``head``
    (:func:`sync_head`, built once) when rendering several rows of one order."""
    if head is None:
        head = sync_head(div, po)
    if index == 0:
        row = {"Timestamp": po.ts, "ID": po.id, **head, "LineNumber": 0}
        for k in _LINE_ONLY:
            row.setdefault(k, None)
        row.update(CostCenter=None, CostCenterCode=None, CostUnit=None, CostUnitCode=None)
        return row
    line = po_line_row(div, po, po.lines[index - 1])
    return {"Timestamp": po.ts + index, **head, **line, **_sync_line_codes(div, line)}


PO_GETTERS: dict[str, Callable[[PO], Any]] = {
    "PurchaseOrderID": lambda p: p.id,
    "OrderNumber": lambda p: p.order_number,
    "Supplier": lambda p: p.supplier,
    "Modified": lambda p: p.modified,
    "Created": lambda p: p.created,
    "OrderDate": lambda p: p.order_date,
    "OrderStatus": lambda p: p.status,
    "ApprovalStatus": lambda p: p.approval,
    "YourRef": po_your_ref,
    "Description": po_description,
    "Currency": lambda p: p.currency,
    "Division": lambda p: p.division,
    "ReceiptDate": lambda p: p.receipt_date,
    "PurchaseOrderLineCount": lambda p: len(p.lines),
    "ApprovalStatusDescription": lambda p: APPROVAL_STATUS.get(p.approval, ""),
    "InvoiceStatus": lambda p: 30 if p.status == 30 else 10,
    "ReceiptStatus": lambda p: {10: 10, 20: 20, 30: 30, 40: 10}.get(p.status, 10),
    "Remarks": lambda p: p.remarks,
    "ExchangeRate": lambda p: 1.0,
    "Creator": lambda p: demo.DEMO_USER["UserID"],
    "CreatorFullName": lambda p: demo.DEMO_USER["FullName"],
}


def po_getters(div: Division) -> dict[str, Callable[[PO], Any]]:
    """A getter for every ``purchaseorder/PurchaseOrders`` field on stored ``PO`` objects of ``div``: cheap ones
    straight from the object, the rest from the rendered header row (correct by construction)."""

    def account_field(name: str) -> Callable[[PO], Any]:
        def get(p: PO) -> Any:
            acct = div.accounts.get(p.supplier)
            return acct[name] if acct else None

        return get

    out: dict[str, Callable[[PO], Any]] = dict(PO_GETTERS)
    out["SupplierCode"] = account_field("Code")
    out["SupplierName"] = account_field("Name")
    out["PaymentCondition"] = account_field("PaymentConditionPurchase")
    for name in PO_HEADER:
        if name not in out:  # amounts and VAT: need the code tables
            out[name] = lambda p, _n=name: po_header_row(div, p).get(_n)
    return out


# Sync rows of one order: fields whose value is the same on the header row and on every line row, so a $filter
# term on them only is decided once per order.
SYNC_ORDER_FIELDS = frozenset((set(PO_HEADER) - set(PO_LINE)) | {"PurchaseOrderID", "Created", "Division", "Modified"})

SyncPair = tuple[PO, int]  # (order, row index): 0 is the header row, 1.. the lines


def sync_getters(div: Division) -> dict[str, Callable[[SyncPair], Any]]:
    """A getter for every ``sync/PurchaseOrder/PurchaseOrders`` field on ``(po, row index)`` pairs, so a $filter
    runs before any row is rendered. Agrees with :func:`sync_po_row`."""
    head = po_getters(div)
    lk = lookups(div)

    def line(p: PO, i: int) -> tuple:
        return p.lines[i - 1]

    cheap_line: dict[str, Callable[[PO, int], Any]] = {
        "LineNumber": lambda p, i: line(p, i)[0],
        "ItemCode": lambda p, i: line(p, i)[1],
        "Quantity": lambda p, i: line(p, i)[3],
        "QuantityInPurchaseUnits": lambda p, i: line(p, i)[3],
        "UnitPrice": lambda p, i: line(p, i)[4],
        "NetPrice": lambda p, i: line(p, i)[4],
        "VATCode": lambda p, i: line(p, i)[5],
        "CostCenter": lambda p, i: line(p, i)[6] or None,
        "CostUnit": lambda p, i: line(p, i)[7] or None,
        "ReceiptDate": lambda p, i: line(p, i)[8],
        "ReceivedQuantity": lambda p, i: line(p, i)[9],
        "InvoicedQuantity": lambda p, i: line(p, i)[10],
        "AmountDC": lambda p, i: _line_amounts(lk, line(p, i))[0],
        "AmountFC": lambda p, i: _line_amounts(lk, line(p, i))[0],
        "VATPercentage": lambda p, i: _line_amounts(lk, line(p, i))[1],
        "VATAmount": lambda p, i: _line_amounts(lk, line(p, i))[2],
    }
    out: dict[str, Callable[[SyncPair], Any]] = {}
    for name in SYNC_PO:
        if name == "Timestamp":
            out[name] = lambda pr: pr[0].ts + pr[1]
        elif name == "ID":
            out[name] = lambda pr: pr[0].id if pr[1] == 0 else line_id(pr[0].id, line(*pr)[0])
        elif name == "LineNumber":
            out[name] = lambda pr: 0 if pr[1] == 0 else line(*pr)[0]
        elif name in ("CostCenterCode", "CostUnitCode"):
            g = cheap_line["CostCenter" if name == "CostCenterCode" else "CostUnit"]
            out[name] = lambda pr, _g=g: None if pr[1] == 0 else _g(*pr)
        elif name in ("CostCenter", "CostUnit"):  # GUIDs on the sync endpoint
            table = lk.cc if name == "CostCenter" else lk.cu
            g = cheap_line[name]

            def guid_of(pr: SyncPair, _g: Callable[[PO, int], Any] = g, _t: dict[str, Any] = table) -> Any:
                code = None if pr[1] == 0 else _g(*pr)
                row = _t.get(code) if code else None
                return row["ID"] if row else None

            out[name] = guid_of
        elif name in SYNC_ORDER_FIELDS:
            hg = head[name]
            out[name] = lambda pr, _hg=hg: _hg(pr[0])
        else:  # a line field: None on the header row (or the header's value where both have it)
            lg = cheap_line.get(name)
            hg = head.get(name)
            if lg is None:  # as sync_po_row merges them: the line's value where the line row has the field
                lg = lambda p, i, _n=name, _hg=hg: (  # noqa: E731
                    r[_n] if _n in (r := po_line_row(div, p, line(p, i))) else (_hg(p) if _hg else None)
                )
            if hg is None:
                out[name] = lambda pr, _lg=lg: None if pr[1] == 0 else _lg(*pr)
            else:
                out[name] = lambda pr, _lg=lg, _hg=hg: _hg(pr[0]) if pr[1] == 0 else _lg(*pr)
    return out


def build_sets() -> dict[str, EntitySet]:
    """The endpoints the sandbox serves, each with its reference schema and the sandbox's data behind it."""
    sets = [
        EntitySet("crm/Accounts", "ID", table=lambda d: d.accounts, required_filter=ACCOUNT_REQUIRED_FILTER),
        EntitySet(
            "purchaseorder/PurchaseOrders",
            "PurchaseOrderID",
            table=lambda d: d.purchase_orders,
            full=po_header_row,
            getters=PO_GETTERS,
            getters_for=po_getters,
        ),
        EntitySet("purchaseorder/PurchaseOrderLines", "ID"),
        EntitySet("sync/PurchaseOrder/PurchaseOrders", "Timestamp", kind="sync"),
        EntitySet("sync/Deleted", "Timestamp", kind="sync"),
        EntitySet("purchaseentry/PurchaseEntries", "EntryID", table=lambda d: d.purchase_entries),
        EntitySet("purchaseentry/PurchaseEntryLines", "ID"),
        EntitySet("financial/GLAccounts", "ID", table=lambda d: d.gl_accounts),
        EntitySet("bulk/Financial/GLAccounts", "ID", table=lambda d: d.gl_accounts, kind="bulk"),
        # one row per purchase-entry line, derived from the stored purchase entries (``transaction_lines``)
        EntitySet("bulk/Financial/TransactionLines", "ID", kind="bulk"),
        EntitySet("hrm/Costcenters", "ID", table=lambda d: d.cost_centers),
        EntitySet("hrm/Costunits", "ID", table=lambda d: d.cost_units),
        EntitySet("vat/VATCodes", "ID", table=lambda d: d.vat_codes),
        EntitySet("financial/Journals", "ID", table=lambda d: d.journals),
        EntitySet("logistics/Items", "ID", table=lambda d: d.items),
        EntitySet("system/Divisions", "Code"),
        EntitySet("system/AllDivisions", "Code"),
        EntitySet("hrm/Divisions", "Code"),
        # per division and app; rows from the webhook hub (sandbox.exact.webhooks), not the store
        EntitySet("webhooks/WebhookSubscriptions", "ID"),
    ]
    return {s.name: s for s in sets}
