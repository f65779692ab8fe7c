"""The JAGGAER sandbox's volume generator (``POST /_admin/seed``): synthetic vendors and invoices for benchmarks,
from ``random.Random(seed)`` and the clock's ``now`` like the rest of the seed data (``seed``)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sandbox.common import demo_company as dc
from sandbox.jaggaer.model import Supplier, Tenant
from sandbox.jaggaer.seed import VendorProfile, generate_invoices


def volume_vendor(tenant: Tenant, rng: random.Random, n: int, now: datetime) -> Supplier:
    sid = tenant.new_supplier_id()
    return Supplier(
        id=sid,
        name=f"Volume Supplier {n:05d} Ltd",
        supplier_number=str(100000 + n),
        duns=str(rng.randint(200_000_000, 999_999_999)),
        vat_number="GB" + "".join(str(rng.randint(0, 9)) for _ in range(9)),
        tax_id=f"{rng.randint(1_000_000, 13_999_999):08d}",
        address={"type": "remitto", "addressLine1": f"{n} Industrial Estate", "city": "Birmingham"},
        email=f"accounts@volume{n:05d}.co.uk",
        source="seed",
        created_at=now - timedelta(days=200),
        updated_at=now - timedelta(days=200),
    )


def seed_volume(
    tenant: Tenant,
    now: datetime,
    *,
    invoices: int = 0,
    vendors: int = 0,
    seed: int = 1,
    days: float = 10.0,
    credit_memo_ratio: float = 0.1,
) -> dict[str, Any]:
    """Add ``vendors`` synthetic vendors and ``invoices`` synthetic documents (for benchmarks)."""
    if invoices < 0 or vendors < 0:
        raise ValueError("invoices and vendors must be >= 0")
    if not 0 <= credit_memo_ratio <= 1:
        raise ValueError("credit_memo_ratio must be between 0 and 1")
    rng = random.Random(seed)
    existing_volume = sum(1 for s in tenant.suppliers.values() if s.name.startswith("Volume Supplier"))
    new_vendors = []
    for n in range(existing_volume + 1, existing_volume + vendors + 1):
        v = volume_vendor(tenant, rng, n, now)
        tenant.suppliers[v.id] = v
        new_vendors.append(v)
    categories = list(dc.CATEGORY_DEFAULTS)
    bus = tenant.business_units or ["UK-MFG"]
    pool = new_vendors or [s for s in tenant.suppliers.values() if s.active]
    if invoices and not pool:
        raise ValueError("no vendors to invoice from: seed vendors first")
    profiles = [VendorProfile(v, categories[v.id % len(categories)], bus, 30, True) for v in pool]
    # ids continue above everything already there
    tenant.next_invoice_id = max([tenant.next_invoice_id, *tenant.invoices.keys()])
    credit = round(invoices * credit_memo_ratio)
    made = generate_invoices(
        tenant,
        profiles,
        now=now,
        seed=seed,
        invoices=invoices - credit,
        credit_memos=credit,
        days=days,
        cover_states=False,
    )
    return {"vendors_added": len(new_vendors), "invoices_added": len(made)}
