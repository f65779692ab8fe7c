"""Deterministic seed data: the demo company's JAGGAER side, the ``acme`` customer, and the invoice generator
(the volume generator behind ``POST /_admin/seed`` is ``volume``).

Everything is generated from a ``random.Random(seed)`` and the sandbox clock's ``now``: the same seed and the
same ``now`` give byte-identical data. Dates are relative to ``now`` so a daily ``lastUpdate`` window always finds
a realistic handful of invoices.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sandbox.common import demo_company as dc
from sandbox.jaggaer.model import ZERO, Invoice, InvoiceLine, Split, Supplier, Tenant, money

DEMO = {
    "key": "demo",
    "client_id": "mlc-demo",
    "client_secret": "mlc-demo-secret",
    "identity": "MLCDEMO",
    "shared_secret": "mlc-demo-xml-secret",
}
NORTHFIELD = {  # the second demo tenant (cluster runs); seeded only on reset with {"second_tenant": true}
    "key": dc.SECOND_TENANT,
    "client_id": "mlc-northfield",
    "client_secret": "mlc-northfield-secret",
    "identity": "MLCNORTHFIELD",
    "shared_secret": "mlc-northfield-xml-secret",
}
ACME = {
    "key": "acme",
    "client_id": "acme-client",
    "client_secret": "acme-secret",
    "identity": "ACME",
    "shared_secret": "acme-xml-secret",
}

VAT_RATES: dict[str, Decimal] = {"1": Decimal("0.20"), "2": Decimal("0.05"), "3": Decimal("0"), "4": Decimal("0")}
_VAT_NAMES = {v.code: v.description for v in dc.VAT_CODES}
_GL_NAMES = {g.code: g.description for g in dc.GL_ACCOUNTS}
_CC_NAMES = {c.code: c.description for c in dc.COST_CENTERS}
ACTIVE_CCS = [c.code for c in dc.COST_CENTERS if c.active]

# The seeded invoice that carries the inactive cost centre CC900 (a validation failure the demo can show).
BAD_DATA_SUPPLIER_INVOICE_NUMBER = "INV-CC900-0001"

_QTY_RANGES: dict[str, tuple[int, int]] = {
    "kg": (40, 1200),
    "m": (6, 120),
    "sheet": (2, 30),
    "pc": (10, 400),
    "set": (1, 12),
    "h": (4, 60),
    "batch": (1, 6),
    "drum": (1, 8),
    "pair": (10, 120),
    "job": (1, 4),
    "visit": (1, 3),
    "day": (1, 10),
    "month": (1, 3),
}


def new_tenant(spec: dict[str, str], business_units: list[str]) -> Tenant:
    return Tenant(
        key=spec["key"],
        client_id=spec["client_id"],
        client_secret=spec["client_secret"],
        identity=spec["identity"],
        shared_secret=spec["shared_secret"],
        business_units=list(business_units),
    )


def make_split(cc: str, gl: str, percent: Decimal | int | str) -> Split:
    return Split(
        cost_centre=cc,
        gl_account=gl,
        percent=Decimal(str(percent)),
        cost_centre_name=_CC_NAMES.get(cc),
        gl_account_name=_GL_NAMES.get(gl),
    )


# ---------------------------------------------------------------------------------------------------------------
# vendors


def demo_vendor(s: dc.Supplier, now: datetime) -> Supplier:
    return Supplier(
        id=s.jaggaer_id,
        name=s.jaggaer_name,
        supplier_number=s.code or None,
        duns=s.duns or None,
        vat_number=s.vat_number or None,
        tax_id=s.chamber_of_commerce or None,
        active=True,
        address={
            "type": "remitto",
            "addressLine1": s.address_line1,
            "city": s.city,
            "postalCode": s.postcode,
            "isoCountryCode": s.country,
        },
        contacts=[{"type": "accounts", "email": s.email, "phone": s.phone}],
        email=s.email,
        source="seed",
        created_at=now - timedelta(days=400),
        updated_at=now - timedelta(days=400),
    )


# ---------------------------------------------------------------------------------------------------------------
# invoices


@dataclass
class VendorProfile:
    supplier: Supplier
    category: str
    business_units: list[str]
    terms_days: int
    vat_registered: bool


def _pick_vat(rng: random.Random, profile: VendorProfile) -> str:
    if not profile.vat_registered:
        return "4"
    r = rng.random()
    if r < 0.84:
        return "1"
    if r < 0.93:
        return "2"
    return "3"


def _status(rng: random.Random, age_days: float) -> tuple[str, str]:
    """(workflowStatus, paymentStatus): older invoices are further along."""
    r = rng.random()
    if age_days < 1.5 and r < 0.3:
        return "Pending", rng.choice(["InProcess", "InProcess", "Payable"])
    if age_days > 6 and r < 0.45:
        return "Completed", "Paid"
    r = rng.random()
    if r < 0.8:
        return "Completed", "Payable"
    if r < 0.9:
        return "Completed", "InProcess"
    return "Pending", "InProcess"


_ALL_STATES = [
    ("Completed", "Payable"),
    ("Completed", "InProcess"),
    ("Completed", "Paid"),
    ("Pending", "Payable"),
    ("Pending", "InProcess"),
    ("Pending", "Paid"),
]


def build_invoice(
    tenant: Tenant,
    rng: random.Random,
    profile: VendorProfile,
    *,
    now: datetime,
    last_update: datetime,
    created_at: datetime,
    credit_memo: bool,
    business_unit: str,
    currency: str = "GBP",
    po_counter: list[int] | None = None,
    invoice_id: int | None = None,
) -> Invoice:
    """One realistic invoice (ids are assigned by the caller through ``invoice_id`` or by the tenant)."""
    category = profile.category
    defaults = dc.CATEGORY_DEFAULTS[category]
    items = dc.items_for_category(category)
    n_lines = rng.choice([1, 1, 2, 2, 3]) if credit_memo else rng.choice([1, 1, 2, 2, 2, 3, 3, 4, 5, 6])
    with_po = (not credit_memo) and category in {"raw", "components", "subcontract", "consumables"}
    with_po = with_po and rng.random() < 0.7
    po_number = None
    if with_po:
        if po_counter is None:
            po_counter = [rng.randint(30000, 39999)]
        po_counter[0] += 1
        po_number = str(po_counter[0])
    header_split = rng.random() < 0.15
    sign = Decimal(-1) if credit_memo else Decimal(1)
    vat_code_for_invoice = _pick_vat(rng, profile)
    lines: list[InvoiceLine] = []
    split_line = rng.randrange(n_lines) if (n_lines > 1 and rng.random() < 0.45) else -1
    for ln in range(1, n_lines + 1):
        item = rng.choice(items)
        lo, hi = _QTY_RANGES.get(item.unit, (1, 20))
        qty = Decimal(rng.randint(lo, hi)) if not credit_memo else Decimal(rng.randint(1, max(1, lo)))
        price = money(Decimal(str(item.price)) * Decimal(str(round(rng.uniform(0.9, 1.15), 3))))
        if price <= 0:
            price = Decimal("0.01")
        vat_code = vat_code_for_invoice if rng.random() < 0.85 else _pick_vat(rng, profile)
        splits: list[Split] = []
        if not header_split:
            if ln - 1 == split_line:
                other = rng.choice([c for c in ACTIVE_CCS if c != defaults["cc"]])
                splits = [make_split(defaults["cc"], defaults["gl"], 60), make_split(other, defaults["gl"], 40)]
            else:
                splits = [make_split(defaults["cc"], defaults["gl"], 100)]
        lines.append(
            InvoiceLine(
                line_id=tenant.new_line_id(),
                line_number=ln,
                description=item.description,
                quantity=qty,
                unit_price=price * sign,
                tax_rate=VAT_RATES[vat_code],
                vat_code=vat_code,
                vat_description=_VAT_NAMES.get(vat_code),
                unit_of_measure=item.unit.upper() if item.unit in {"kg", "m", "h"} else "EA",
                product_type="CatalogItem" if with_po else "NonCatalogItem",
                po_number=po_number,
                po_line_number=str(ln) if po_number else None,
                item_code=item.code,
                splits=splits,
            )
        )
    header_splits: list[Split] = []
    if header_split:
        if rng.random() < 0.5:
            header_splits = [make_split(defaults["cc"], defaults["gl"], 100)]
        else:
            other = rng.choice([c for c in ACTIVE_CCS if c != defaults["cc"]])
            header_splits = [make_split(defaults["cc"], defaults["gl"], 60), make_split(other, defaults["gl"], 40)]
    shipping = handling = discount = ZERO
    if not credit_memo:
        if rng.random() < 0.25:
            shipping = money(rng.randint(1500, 9500) / 100)
        if rng.random() < 0.1:
            handling = money(rng.randint(500, 2500) / 100)
        if rng.random() < 0.1:
            subtotal = sum((line.extended for line in lines), ZERO)
            discount = money(subtotal * Decimal("0.025"))
    invoice_date = (created_at - timedelta(days=rng.randint(0, 9))).date()
    prefix = "CN" if credit_memo else "INV"
    inv = Invoice(
        invoice_id=invoice_id if invoice_id is not None else tenant.new_invoice_id(),
        invoice_number=tenant.new_invoice_number(),
        supplier_invoice_number=f"{prefix}-{rng.randint(10000, 99999)}",
        invoice_type="Credit memo" if credit_memo else "Invoice",
        invoice_date=invoice_date,
        due_date=invoice_date + timedelta(days=profile.terms_days),
        accounting_date=created_at.date(),
        created_at=created_at,
        last_update=last_update,
        workflow_status="Completed",
        payment_status="Payable",
        business_unit=business_unit,
        supplier=profile.supplier,
        currency=currency,
        category=category,
        lines=lines,
        header_splits=header_splits,
        shipping=shipping,
        handling=handling,
        discount=discount,
        match_status=(rng.choice(["Matched", "Matched", "Matched", "Unmatched"]) if with_po else "Do Not Match"),
        invoice_source=rng.choice(["Manual", "Automated", "Supplier Portal"]),
        submitted_by=rng.choice(
            ["ap.clerk@midlandsprecision.co.uk", "j.singh@midlandsprecision.co.uk", "invoices@midlandsprecision.co.uk"]
        ),
    )
    return inv


def _timeline(rng: random.Random, now: datetime, days: float) -> tuple[datetime, datetime, bool]:
    """(created_at, last_update, edited): lastUpdate spread over the last ``days`` days, ~1 in 4 edited later."""
    last_update = now - timedelta(seconds=rng.uniform(120, days * 86400))
    last_update = last_update.replace(microsecond=rng.randint(0, 999) * 1000)
    edited = rng.random() < 0.25
    if edited:
        created = last_update - timedelta(seconds=rng.uniform(3600, 3 * 86400))
    else:
        created = last_update - timedelta(seconds=rng.uniform(5, 1800))
    created = created.replace(microsecond=rng.randint(0, 999) * 1000)
    return created, last_update, edited


def generate_invoices(
    tenant: Tenant,
    profiles: list[VendorProfile],
    *,
    now: datetime,
    seed: int,
    invoices: int,
    credit_memos: int,
    days: float = 10.0,
    currency: str = "GBP",
    cover_states: bool = True,
) -> list[Invoice]:
    """``invoices`` + ``credit_memos`` documents, ids ascending with creation time, added to ``tenant``."""
    rng = random.Random(seed)
    plans: list[tuple[datetime, datetime, bool, bool, VendorProfile, str, int]] = []
    kinds = [False] * invoices + [True] * credit_memos
    rng.shuffle(kinds)
    for n, credit in enumerate(kinds):
        profile = profiles[rng.randrange(len(profiles))]
        created, last_update, edited = _timeline(rng, now, days)
        bu = rng.choice(profile.business_units)
        plans.append((created, last_update, edited, credit, profile, bu, n))
    plans.sort(key=lambda p: (p[0], p[6]))
    po_counter = [30000 + rng.randint(0, 999)]
    out: list[Invoice] = []
    for created, last_update, edited, credit, profile, bu, _n in plans:
        inv = build_invoice(
            tenant,
            rng,
            profile,
            now=now,
            last_update=last_update,
            created_at=created,
            credit_memo=credit,
            business_unit=bu,
            currency=currency,
            po_counter=po_counter,
        )
        age = (now - created).total_seconds() / 86400
        inv.workflow_status, inv.payment_status = _status(rng, age)
        inv.edits = 1 if edited else 0
        out.append(inv)
    if cover_states and len(out) >= len(_ALL_STATES):
        # every (workflowStatus, paymentStatus) pair appears at least once
        step = max(1, len(out) // len(_ALL_STATES))
        for k, (wf, pay) in enumerate(_ALL_STATES):
            if not any(i.workflow_status == wf and i.payment_status == pay for i in out):
                target = out[min(len(out) - 1, k * step + 1)]
                target.workflow_status, target.payment_status = wf, pay
    for inv in out:
        tenant.invoices[inv.invoice_id] = inv
    return out


# ---------------------------------------------------------------------------------------------------------------
# customers


def demo_profiles(tenant: Tenant) -> list[VendorProfile]:
    profiles = []
    for s in dc.ALL_VENDORS:
        sup = tenant.suppliers[s.jaggaer_id]
        if s.exact:
            bus = [bu for bu, div in dc.BUSINESS_UNITS.items() if div in s.divisions]
        else:
            bus = list(dc.BUSINESS_UNITS)
        profiles.append(
            VendorProfile(
                supplier=sup,
                category=s.category,
                business_units=bus,
                terms_days=s.payment_terms_days,
                vat_registered=bool(s.vat_number),
            )
        )
    return profiles


def seed_demo(tenant: Tenant, now: datetime, seed: int = 42) -> dict[str, Any]:
    """The demo company: 60 Exact-matched + 6 JAGGAER-only vendors, 60 invoices and 8 credit memos."""
    for s in dc.ALL_VENDORS:
        tenant.suppliers[s.jaggaer_id] = demo_vendor(s, now)
    tenant.next_supplier_id = max(tenant.next_supplier_id, 1003837000)
    profiles = demo_profiles(tenant)
    invoices = generate_invoices(tenant, profiles, now=now, seed=seed, invoices=60, credit_memos=8, days=10.0)
    # Some invoices come from JAGGAER-only vendors (no Exact counterpart) - make sure there are a few.
    only = [p for p in profiles if p.supplier.supplier_number is None]
    plain = [i for i in invoices if i.invoice_type == "Invoice"]
    for k, inv in enumerate(plain[3:30:9]):
        profile = only[k % len(only)]
        inv.supplier = profile.supplier
        inv.business_unit = profile.business_units[k % len(profile.business_units)]
    # One recent, approved invoice posts to the inactive cost centre CC900: the connector must quarantine it.
    recent = [i for i in plain if (now - i.last_update) < timedelta(hours=20) and i.supplier.supplier_number]
    bad = recent[0] if recent else plain[-1]
    bad.workflow_status, bad.payment_status = "Completed", "Payable"
    bad.supplier_invoice_number = BAD_DATA_SUPPLIER_INVOICE_NUMBER
    bad.header_splits = []
    for line in bad.lines:
        gl = line.splits[0].gl_account if line.splits else dc.CATEGORY_DEFAULTS[bad.category or "raw"]["gl"]
        line.splits = [make_split("CC900", gl, 100)]
    return {"suppliers": len(tenant.suppliers), "invoices": len(invoices)}


def seed_second(tenant: Tenant, now: datetime, seed: int = 4242) -> dict[str, Any]:
    """The second demo tenant: the demo's vendors (its divisions mirror the demo's), 24 invoices and 3 credit
    memos of its own on business units NF-FAB / NF-ASM, ids in a range of their own."""
    for s in dc.ALL_VENDORS:
        tenant.suppliers[s.jaggaer_id] = demo_vendor(s, now)
    tenant.next_supplier_id = 1004837000
    tenant.next_invoice_id = 8100000
    tenant.next_line_id = 8900000
    # demo division -> this tenant's business unit routed to the division that mirrors it
    mirrored = {dc.SECOND_COMPANY_MIRRORS[div]: bu for bu, div in dc.SECOND_BUSINESS_UNITS.items()}
    profiles = []
    for s in dc.ALL_VENDORS:
        bus = [mirrored[d] for d in s.divisions] if s.exact else list(dc.SECOND_BUSINESS_UNITS)
        profiles.append(
            VendorProfile(tenant.suppliers[s.jaggaer_id], s.category, bus, s.payment_terms_days, bool(s.vat_number))
        )
    invoices = generate_invoices(tenant, profiles, now=now, seed=seed, invoices=24, credit_memos=3, days=10.0)
    return {"suppliers": len(tenant.suppliers), "invoices": len(invoices)}


_ACME_VENDORS = [
    ("A100", "Acme Bolts GmbH", "DE811234567", "components"),
    ("A101", "Roadrunner Logistics BV", "NL812345678B01", "carriage"),
    ("A102", "Coyote Consulting SARL", "FR12345678901", "professional"),
    ("A103", "Desert Steel SpA", "IT12345678901", "raw"),
    ("A104", "Canyon IT Services SL", "ESB12345678", "it"),
]


def seed_acme(tenant: Tenant, now: datetime, seed: int = 7) -> dict[str, Any]:
    """A small, different customer: 5 EU vendors, 6 EUR invoices on business unit ACME-HQ."""
    rng = random.Random(seed)
    for n, (code, name, vat, _cat) in enumerate(_ACME_VENDORS):
        sid = 2000001 + n
        tenant.suppliers[sid] = Supplier(
            id=sid,
            name=name,
            supplier_number=code,
            duns=str(rng.randint(300_000_000, 399_999_999)),
            vat_number=vat,
            tax_id=None,
            address={"type": "remitto", "addressLine1": f"{n + 1} Hauptstrasse", "city": "Berlin"},
            email=f"billing@acme-vendor{n}.example",
            created_at=now - timedelta(days=90),
            updated_at=now - timedelta(days=90),
        )
    tenant.next_supplier_id = 2000100
    tenant.next_invoice_id = 9100000
    tenant.next_line_id = 9900000
    profiles = [
        VendorProfile(tenant.suppliers[2000001 + n], cat, ["ACME-HQ"], 30, True)
        for n, (_c, _nm, _v, cat) in enumerate(_ACME_VENDORS)
    ]
    invoices = generate_invoices(
        tenant, profiles, now=now, seed=seed, invoices=5, credit_memos=1, days=5.0, currency="EUR", cover_states=False
    )
    return {"suppliers": len(tenant.suppliers), "invoices": len(invoices)}
