"""In-memory state of the Exact sandbox: divisions with their accounts, purchase orders, purchase entries and
master data, with the indexes that keep 60-row pages fast at 100,000 purchase orders.

Dates are kept as epoch milliseconds (UTC). Purchase orders are compact ``PO`` objects whose lines are tuples;
API rows are built from them only when served.
"""

from __future__ import annotations

import random
import threading
import uuid
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sandbox.common import demo_company as demo
from sandbox.common.clock import Clock
from sandbox.exact.odata import conjuncts, parse_iso_to_ms, simple_comparison

DAY_MS = 86_400_000
_HI = "\U0010ffff"

ORDER_STATUS = {10: "Open", 20: "Partial", 30: "Complete", 40: "Cancelled"}
APPROVAL_STATUS = {0: "Not applicable", 1: "Awaiting approval", 2: "Approved"}
ENTITY_TYPE_ACCOUNT = 2
ENTITY_TYPE_PURCHASE_ORDER = 22


def _norm(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


# --------------------------------------------------------------------------------------------------- tables
class Table:
    """Rows by key, keys kept sorted (Exact pages in key order with ``$skiptoken=guid'<last key>'``), plus
    equality and range indexes the query planner uses for ``and``-ed simple comparisons."""

    def __init__(
        self,
        key_of: Callable[[Any], str],
        eq: dict[str, Callable[[Any], Any]] | None = None,
        ranges: dict[str, Callable[[Any], Any]] | None = None,
        key_field: str | None = None,
    ) -> None:
        self.key_of = key_of
        self.key_field = key_field
        self.rows: dict[str, Any] = {}
        self.keys: list[str] = []
        self._eq_get = eq or {}
        self._rng_get = ranges or {}
        self._eq: dict[str, dict[Any, list[str]]] = {f: {} for f in self._eq_get}
        self._rng: dict[str, list[tuple[Any, str]]] = {f: [] for f in self._rng_get}

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Any]:
        for k in self.keys:
            yield self.rows[k]

    def get(self, key: str) -> Any:
        return self.rows.get(key.lower())

    def _index(self, obj: Any, k: str) -> None:
        for f, g in self._eq_get.items():
            self._eq[f].setdefault(_norm(g(obj)), []).append(k)
        for f, g in self._rng_get.items():
            v = g(obj)
            if v is not None:
                insort(self._rng[f], (v, k))

    def _unindex(self, obj: Any, k: str) -> None:
        for f, g in self._eq_get.items():
            value = _norm(g(obj))
            bucket = self._eq[f].get(value)
            if bucket is not None and k in bucket:
                bucket.remove(k)
                if not bucket:
                    del self._eq[f][value]
        for f, g in self._rng_get.items():
            v = g(obj)
            if v is not None:
                lst = self._rng[f]
                i = bisect_left(lst, (v, k))
                if i < len(lst) and lst[i] == (v, k):
                    del lst[i]

    def put(self, obj: Any) -> None:
        k = self.key_of(obj).lower()
        old = self.rows.get(k)
        if old is not None:
            self._unindex(old, k)
        else:
            insort(self.keys, k)
        self.rows[k] = obj
        self._index(obj, k)

    def bulk_put(self, objs: Iterable[Any]) -> None:
        """Add many new rows at once (indexes rebuilt by sorting, not by insertion)."""
        for obj in objs:
            k = self.key_of(obj).lower()
            if k in self.rows:
                raise ValueError(f"duplicate key {k}")
            self.rows[k] = obj
            self.keys.append(k)
            for f, g in self._eq_get.items():
                self._eq[f].setdefault(_norm(g(obj)), []).append(k)
            for f, g in self._rng_get.items():
                v = g(obj)
                if v is not None:
                    self._rng[f].append((v, k))
        self.keys.sort()
        for lst in self._rng.values():
            lst.sort()

    def update(self, key: str, mutate: Callable[[Any], None]) -> Any:
        k = key.lower()
        obj = self.rows[k]
        self._unindex(obj, k)
        mutate(obj)
        self._index(obj, k)
        return obj

    def remove(self, key: str) -> Any:
        k = key.lower()
        obj = self.rows.pop(k)
        self._unindex(obj, k)
        i = bisect_left(self.keys, k)
        if i < len(self.keys) and self.keys[i] == k:
            del self.keys[i]
        return obj

    def lookup(self, field: str, value: Any) -> list[Any]:
        """Rows whose indexed ``field`` equals ``value``."""
        return [self.rows[k] for k in sorted(self._eq[field].get(_norm(value), ()))]

    # ---- querying ---------------------------------------------------------------------------------------
    def _candidates(self, ast: Any) -> list[str] | None:
        if ast is None:
            return None
        best: list[str] | None = None
        bounds: dict[str, list[tuple[str, Any]]] = {}
        for term in conjuncts(ast):
            sc = simple_comparison(term)
            if sc is None:
                continue
            field, op, value = sc
            if op == "eq" and field == self.key_field and isinstance(value, str):
                k = value.lower()
                return [k] if k in self.rows else []
            if op == "eq" and field in self._eq:
                cand = self._eq[field].get(_norm(value), [])
                if best is None or len(cand) < len(best):
                    best = cand
            elif op in ("gt", "ge", "lt", "le", "eq") and field in self._rng:
                bounds.setdefault(field, []).append((op, value))
        for field, terms in bounds.items():
            lst = self._rng[field]
            lo, hi = 0, len(lst)
            for op, v in terms:
                if v is None:
                    continue
                if op == "gt":
                    lo = max(lo, bisect_right(lst, (v, _HI)))
                elif op == "ge":
                    lo = max(lo, bisect_left(lst, (v, "")))
                elif op == "lt":
                    hi = min(hi, bisect_left(lst, (v, "")))
                elif op == "le":
                    hi = min(hi, bisect_right(lst, (v, _HI)))
                else:  # eq
                    lo = max(lo, bisect_left(lst, (v, "")))
                    hi = min(hi, bisect_right(lst, (v, _HI)))
            size = max(0, hi - lo)
            if best is None or size < len(best):
                best = [k for _, k in lst[lo:hi]] if size else []
        return best

    def query(
        self, ast: Any, pred: Callable[[Any], bool] | None, after_key: str | None, limit: int
    ) -> tuple[list[Any], bool]:
        """Up to ``limit`` rows in key order after ``after_key`` matching ``pred``; and whether more exist."""
        cands = self._candidates(ast)
        if cands is not None and len(cands) <= 50_000:
            keys: list[str] = sorted(cands)
        else:
            keys = self.keys
        start = bisect_right(keys, after_key.lower()) if after_key else 0
        out: list[Any] = []
        rows = self.rows
        for i in range(start, len(keys)):
            obj = rows.get(keys[i])
            if obj is None:
                continue
            if pred is None or pred(obj):
                out.append(obj)
                if len(out) > limit:
                    return out[:limit], True
        return out, False


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


def _dict_table(key: str = "ID", eq: Iterable[str] = (), ranges: Iterable[str] = ()) -> Table:
    return Table(
        lambda e, _k=key: e[_k],
        eq={f: (lambda e, _f=f: e.get(_f)) for f in eq},
        ranges={f: (lambda e, _f=f: e.get(_f)) for f in ranges},
        key_field=key,
    )


def _po_table() -> Table:
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
        accounts=_dict_table("ID", eq=("Code", "Name", "VATNumber", "ChamberOfCommerce", "Email")),
        purchase_orders=_po_table(),
        purchase_entries=_dict_table("EntryID", eq=("YourRef", "Supplier"), ranges=("Modified",)),
        sync=SyncIndex(),
        deleted=[],
        gl_accounts=_dict_table("ID", eq=("Code",)),
        cost_centers=_dict_table("ID", eq=("Code",)),
        cost_units=_dict_table("ID", eq=("Code",)),
        vat_codes=_dict_table("ID", eq=("Code",)),
        journals=_dict_table("ID", eq=("Code",)),
        items=_dict_table("ID", eq=("Code",)),
        ts_counter=10_000 + (code % 1000) * 7,
        order_number_seq=1000,
        entry_seq={},
    )


# --------------------------------------------------------------------------------------------------- store
class ExactStore:
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
        div.purchase_orders = _po_table()
        div.sync = SyncIndex()
        div.deleted = []
        div.purchase_entries = _dict_table("EntryID", eq=("YourRef", "Supplier"), ranges=("Modified",))

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

    def _seed_division(self, code: int, seed: int) -> Division:
        div = new_division(code)
        now = self.now_ms()
        created = now - 400 * DAY_MS
        for gl in demo.GL_ACCOUNTS:
            div.gl_accounts.put(
                {
                    "ID": gl.id(code),
                    "Code": gl.code,
                    "Description": gl.description,
                    "Type": gl.type,
                    "BalanceSide": gl.balance_side,
                    "VATCode": gl.vat_code or None,
                    "UseCostcenter": 1 if gl.use_costcenter else 0,
                    "IsBlocked": gl.blocked,
                    "Division": code,
                    "Created": created,
                    "Modified": created,
                }
            )
        for table, rows in ((div.cost_centers, demo.COST_CENTERS), (div.cost_units, demo.COST_UNITS)):
            for cc in rows:
                kind = "costcenter" if table is div.cost_centers else "costunit"
                table.put(
                    {
                        "ID": demo.guid(kind, code, cc.code),
                        "Code": cc.code,
                        "Description": cc.description,
                        "Active": cc.active,
                        "Division": code,
                        "Created": created,
                        "Modified": created,
                    }
                )
        for vat in demo.VAT_CODES:
            div.vat_codes.put(
                {
                    "ID": vat.id(code),
                    "Code": vat.code,
                    "Description": vat.description,
                    "Percentage": vat.percentage,
                    "Type": vat.type,
                    "IsBlocked": vat.blocked,
                    "Division": code,
                    "Created": created,
                    "Modified": created,
                }
            )
        for j in demo.JOURNALS:
            div.journals.put(
                {
                    "ID": j.id(code),
                    "Code": j.code,
                    "Description": j.description,
                    "Type": j.type,
                    "Division": code,
                    "Created": created,
                    "Modified": created,
                }
            )
        groups = {g.code: g for g in demo.ITEM_GROUPS}
        for it in demo.ITEMS:
            div.items.put(
                {
                    "ID": it.id(code),
                    "Code": it.code,
                    "Description": it.description,
                    "ItemGroup": demo.guid("itemgroup", code, it.group),
                    "ItemGroupCode": it.group,
                    "ItemGroupDescription": groups[it.group].description,
                    "Unit": it.unit,
                    "CostPriceStandard": it.price,
                    "PurchaseVATCode": it.vat_code,
                    "IsPurchaseItem": True,
                    "Division": code,
                    "Created": created,
                    "Modified": created,
                }
            )
        for s in demo.suppliers_in(code):
            div.accounts.put(self._supplier_account(code, s, created))
        self._seed_purchase_orders(div, 40, random.Random(seed * 1000 + code), now)
        # One supplier account deleted a month ago: a sync/Deleted row with EntityType 2.
        gone = demo.guid("account", code, "1999")
        div.deleted.append(self.deleted_row(div, gone, ENTITY_TYPE_ACCOUNT, now - 30 * DAY_MS))
        return div

    def _supplier_account(self, code: int, s: demo.Supplier, created: int) -> dict[str, Any]:
        return {
            "ID": s.account_id(code),
            "Code": s.padded_code,
            "Name": s.name,
            "SearchCode": s.code,
            "IsSupplier": True,
            "IsSales": False,
            "IsPurchase": True,
            "Status": "C",
            "Type": "A",
            "Blocked": s.blocked,
            "VATNumber": s.vat_number or None,
            "ChamberOfCommerce": s.chamber_of_commerce,
            "Email": s.email,
            "Phone": s.phone,
            "AddressLine1": s.address_line1,
            "City": s.city,
            "Postcode": s.postcode,
            "Country": s.country,
            "PurchaseCurrency": s.currency,
            "PurchaseVATCode": "1",
            "PaymentConditionPurchase": str(s.payment_terms_days),
            "Division": code,
            "Created": created,
            "Modified": created,
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

    def _supplier_profiles(self, div: Division) -> list[tuple[str, list[demo.Item], dict[str, str]]]:
        """(account id, items it sells, category defaults) for every unblocked supplier."""
        out = []
        for a in div.accounts:
            if not a["IsSupplier"] or a["Blocked"]:
                continue
            category = a.get("_category")
            if category is None:
                try:
                    category = demo.supplier_by_code(a["Code"]).category
                except KeyError:
                    category = "consumables"
            out.append((a["ID"], demo.items_for_category(category), demo.CATEGORY_DEFAULTS[category]))
        return out

    _QTYS = (1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 250.0, 500.0)
    _SERVICE_UNITS = frozenset(("h", "day", "visit", "month", "job", "batch"))
    _COST_UNITS = ("", "", "CU01", "CU02", "CU03")

    def _random_po(
        self,
        div: Division,
        rng: random.Random,
        profiles: list[tuple[str, list[demo.Item], dict[str, str]]],
        order_date: int,
        n_lines: int,
    ) -> PO:
        supplier_id, items, defaults = profiles[int(rng.random() * len(profiles))]
        receipt = order_date + 14 * DAY_MS
        cc = defaults["cc"]
        lines: list[Line] = []
        rnd = rng.random
        for n in range(1, n_lines + 1):
            it = items[int(rnd() * len(items))]
            qty = float(1 + int(rnd() * 12)) if it.unit in self._SERVICE_UNITS else self._QTYS[int(rnd() * 10)]
            price = round(it.price * (0.9 + 0.25 * rnd()), 2)
            lines.append(
                (n, it.code, None, qty, price, it.vat_code, cc, self._COST_UNITS[int(rnd() * 5)], receipt, 0.0, 0.0)
            )
        div.order_number_seq += 1
        number = div.order_number_seq
        created = order_date + (8 + int(rnd() * 10)) * 3_600_000
        return PO(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            division=div.code,
            order_number=number,
            supplier=supplier_id,
            order_date=order_date,
            created=created,
            modified=created,
            ts=0,
            status=10,
            approval=2,
            description=None,  # derived when served: po_description()
            your_ref=None,  # derived when served: po_your_ref()
            currency=demo.CURRENCY,
            receipt_date=receipt,
            remarks=None,
            lines=lines,
        )

    def _seed_purchase_orders(self, div: Division, count: int, rng: random.Random, now: int) -> None:
        profiles = self._supplier_profiles(div)
        pos: list[PO] = []
        for _ in range(count):
            order_date = (now - rng.randint(2, 120) * DAY_MS) // DAY_MS * DAY_MS
            pos.append(self._random_po(div, rng, profiles, order_date, rng.randint(1, 5)))
        pos.sort(key=lambda p: p.order_date)
        for i, po in enumerate(pos):  # order numbers follow order dates
            po.order_number = div.order_number_seq - count + 1 + i
            r = rng.random()
            if r < 0.08:
                po.status = 40
            elif r < 0.2:
                po.status = 30
            elif r < 0.3:
                po.status = 20
            if rng.random() < 0.1:
                po.approval = 1
            po.modified = min(now - 3_600_000, po.created + rng.randint(0, 10) * DAY_MS)
        deleted = pos[-3:-1] if count >= 5 else []
        for po in sorted(pos, key=lambda p: p.modified):
            po.ts = div.next_ts(po.row_count)
        div.purchase_orders.bulk_put(pos)
        for po in sorted(pos, key=lambda p: p.ts):
            div.sync.append(po)
        for po in deleted:
            self.delete_purchase_order(div, po.id, when=po.modified + DAY_MS)

    def generate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Volume generator: ``{"purchase_orders": N, "suppliers": M, "seed": 42, "divisions": [111111],
        "lines": [1, 5], "days": 730, "replace": false}``."""
        n_pos = int(params.get("purchase_orders", 0))
        n_sup = int(params.get("suppliers", 0))
        seed = int(params.get("seed", 42))
        divisions = [int(d) for d in params.get("divisions", [next(iter(demo.DIVISIONS))])]
        lo, hi = (int(x) for x in params.get("lines", [1, 5]))
        days = int(params.get("days", 730))
        if n_pos < 0 or n_sup < 0 or lo < 1 or hi < lo or days < 1:
            raise ValueError("invalid generator parameters")
        with self.lock:
            for code in divisions:
                div = self.divisions.get(code)
                if div is None:
                    raise ValueError(f"unknown division {code}")
                rng = random.Random(seed * 7919 + code)
                if params.get("replace"):
                    self._clear_transactions(div)
                self._generate_suppliers(div, n_sup, rng)
                self._generate_pos(div, n_pos, rng, lo, hi, days)
            return self.summary()

    def _generate_suppliers(self, div: Division, target: int, rng: random.Random) -> None:
        existing = [a for a in div.accounts if a["IsSupplier"]]
        if len(existing) >= target:
            return
        codes = [int(a["Code"]) for a in div.accounts if a["Code"].strip().isdigit()]
        next_code = max(codes, default=1000) + 1
        categories = list(demo.CATEGORY_DEFAULTS)
        words = ["Acme", "Atlas", "Beacon", "Crown", "Delta", "Empire", "Falcon", "Granite", "Harbour", "Iron"]
        words += ["Jubilee", "Kestrel", "Lion", "Meridian", "Northgate", "Oak", "Phoenix", "Quay", "Regent"]
        kinds = ["Engineering", "Supplies", "Components", "Metals", "Services", "Logistics", "Industrial"]
        created = self.now_ms() - 200 * DAY_MS
        new = []
        for _ in range(target - len(existing)):
            code = str(next_code)
            next_code += 1
            name = f"{rng.choice(words)} {rng.choice(kinds)} {code} Ltd"
            acct = {
                "ID": demo.guid("account", div.code, code),
                "Code": code.rjust(18),
                "Name": name,
                "SearchCode": code,
                "IsSupplier": True,
                "IsSales": False,
                "IsPurchase": True,
                "Status": "C",
                "Type": "A",
                "Blocked": False,
                "VATNumber": "GB" + "".join(str(rng.randint(0, 9)) for _ in range(9)),
                "ChamberOfCommerce": f"{rng.randint(1_000_000, 13_999_999):08d}",
                "Email": f"accounts@supplier{code}.co.uk",
                "Phone": f"0121 {rng.randint(200, 999)} {rng.randint(1000, 9999)}",
                "AddressLine1": f"{rng.randint(1, 200)} Industrial Estate",
                "City": rng.choice(["Birmingham", "Coventry", "Leicester", "Derby", "Stoke-on-Trent"]),
                "Postcode": "B1 1AA",
                "Country": "GB",
                "PurchaseCurrency": "GBP",
                "PurchaseVATCode": "1",
                "PaymentConditionPurchase": "30",
                "Division": div.code,
                "Created": created,
                "Modified": created,
                "_category": rng.choice(categories),
            }
            new.append(acct)
        div.accounts.bulk_put(new)

    def _generate_pos(self, div: Division, count: int, rng: random.Random, lo: int, hi: int, days: int) -> None:
        if count <= 0:
            return
        profiles = self._supplier_profiles(div)
        now = self.now_ms()
        start = now - days * DAY_MS
        step = (days * DAY_MS) / count
        span = hi - lo + 1
        pos: list[PO] = []
        for i in range(count):
            order_date = int(start + i * step) // DAY_MS * DAY_MS
            po = self._random_po(div, rng, profiles, order_date, lo + int(rng.random() * span))
            po.modified = min(now - 60_000, po.created + int(rng.random() * 4) * DAY_MS)
            r = rng.random()
            po.status = 40 if r < 0.03 else 30 if r < 0.5 and order_date < now - 60 * DAY_MS else 10
            pos.append(po)
        pos.sort(key=lambda p: p.modified)
        for po in pos:
            po.ts = div.next_ts(po.row_count)
        div.purchase_orders.bulk_put(pos)
        for po in pos:
            div.sync.append(po)
            self._po_changed(div, "Create", po.id)

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
