"""How the Exact sandbox's store fills itself: the demo company's divisions (master data, suppliers, purchase
orders) and the volume generator behind ``POST /_admin/seed``. A mixin of :class:`sandbox.exact.store.ExactStore`:
its methods use the store's clock, lock and helpers."""

from __future__ import annotations

import random
import uuid
from typing import Any

from sandbox.common import demo_company as demo
from sandbox.exact.divisions import DAY_MS, ENTITY_TYPE_ACCOUNT, PO, Division, Line, new_division


class StoreSeeding:
    """The seeding half of :class:`sandbox.exact.store.ExactStore`."""

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
