"""JAGGAER-specific admin routes (the shared ones come from ``sandbox.common.admin``).

``GET  /_admin/credentials``                 both customers' OAuth and XML credentials
``GET  /_admin/invoices?tenant=demo``        invoice summaries (id, number, lastUpdate, statuses, total)
``GET  /_admin/invoices/{id}?tenant=demo``   one invoice as J1P returns it, plus sandbox internals
``POST /_admin/invoices``                    create an invoice (everything optional; see :class:`InvoiceIn`)
``PATCH /_admin/invoices/{id}``              edit an invoice; ``lastUpdate`` moves (clock now or ``last_update``)
``GET  /_admin/suppliers?tenant=demo``       the tenant's supplier directory
``GET  /_admin/purchase-orders/{po}?tenant=demo``  one PO with its history and last XML
``DELETE /_admin/tokens``                    revoke every access token (next API call gets a 401)
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandbox.common import demo_company as dc
from sandbox.jaggaer import seed as seeding
from sandbox.jaggaer.model import Invoice, InvoiceLine, Split, Supplier, Tenant, fmt_ts, money
from sandbox.jaggaer.render import invoice_detail
from sandbox.jaggaer.state import JaggaerSandbox


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cost_centre: str
    gl_account: str
    percent: Decimal = Field(Decimal(100), gt=0, le=100)


class LineIn(BaseModel):
    """One invoice line. Give prices positive: a credit memo's prices are made negative."""

    model_config = ConfigDict(extra="forbid")
    description: str = "Sandbox line"
    quantity: Decimal = Field(Decimal(1), gt=0)
    unit_price: Decimal
    vat_code: Literal["1", "2", "3", "4"] = "1"
    unit_of_measure: str = "EA"
    po_number: str | None = None
    po_line_number: str | None = None
    item_code: str | None = None
    splits: list[SplitIn] = Field(default_factory=list)

    @field_validator("splits")
    @classmethod
    def _hundred(cls, v: list[SplitIn]) -> list[SplitIn]:
        if v and sum(s.percent for s in v) != 100:
            raise ValueError("split percentages must add up to 100")
        return v


class InvoiceIn(BaseModel):
    """Create an invoice. Anything left out is generated (deterministically from ``seed``)."""

    model_config = ConfigDict(extra="forbid")
    tenant: str = "demo"
    supplier_number: str | None = None
    supplier_id: int | None = None
    business_unit: str | None = None
    invoice_type: Literal["Invoice", "Credit memo"] = "Invoice"
    workflow_status: Literal["Completed", "Pending"] = "Completed"
    payment_status: Literal["Payable", "InProcess", "Paid"] = "Payable"
    supplier_invoice_number: str | None = None
    invoice_date: date | None = None
    due_date: date | None = None
    accounting_date: date | None = None
    currency: str | None = None
    category: str | None = None
    lines: list[LineIn] | None = None
    header_splits: list[SplitIn] | None = None
    shipping: Decimal | None = None
    handling: Decimal | None = None
    discount: Decimal | None = None
    created_at: datetime | None = None
    last_update: datetime | None = None
    seed: int = 0

    @field_validator("created_at", "last_update")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return _aware(v)

    @field_validator("header_splits")
    @classmethod
    def _hundred(cls, v: list[SplitIn] | None) -> list[SplitIn] | None:
        if v and sum(s.percent for s in v) != 100:
            raise ValueError("split percentages must add up to 100")
        return v


class InvoicePatch(BaseModel):
    """Edit an invoice. ``lastUpdate`` becomes ``last_update`` if given, else the clock's now."""

    model_config = ConfigDict(extra="forbid")
    tenant: str = "demo"
    workflow_status: Literal["Completed", "Pending"] | None = None
    payment_status: Literal["Payable", "InProcess", "Paid"] | None = None
    supplier_number: str | None = None
    supplier_id: int | None = None
    business_unit: str | None = None
    supplier_invoice_number: str | None = None
    invoice_date: date | None = None
    due_date: date | None = None
    accounting_date: date | None = None
    category: str | None = None
    lines: list[LineIn] | None = None
    header_splits: list[SplitIn] | None = None
    shipping: Decimal | None = None
    handling: Decimal | None = None
    discount: Decimal | None = None
    last_update: datetime | None = None

    @field_validator("last_update")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return _aware(v)

    @field_validator("header_splits")
    @classmethod
    def _hundred(cls, v: list[SplitIn] | None) -> list[SplitIn] | None:
        if v and sum(s.percent for s in v) != 100:
            raise ValueError("split percentages must add up to 100")
        return v


def _aware(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return _ms(v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC))


def _ms(v: datetime) -> datetime:
    """Timestamps are kept to the millisecond J1P shows, so a client's cursor matches what is stored."""
    return v.replace(microsecond=v.microsecond // 1000 * 1000)


def _tenant(sandbox: JaggaerSandbox, key: str) -> Tenant:
    try:
        return sandbox.tenant(key)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from exc


def _supplier(tenant: Tenant, number: str | None, sid: int | None) -> Supplier | None:
    if sid is not None:
        s = tenant.suppliers.get(sid)
        if s is None:
            raise HTTPException(404, f"no supplier with id {sid}")
        return s
    if number is not None:
        s = tenant.supplier_by_number(number, trim=True)  # admin convenience: lenient
        if s is None:
            raise HTTPException(404, f"no supplier with supplierNumber {number!r}")
        return s
    return None


def _category_of(s: Supplier) -> str:
    for d in dc.ALL_VENDORS:
        if d.jaggaer_id == s.id:
            return d.category
    return list(dc.CATEGORY_DEFAULTS)[s.id % len(dc.CATEGORY_DEFAULTS)]


def _splits(items: list[SplitIn]) -> list[Split]:
    return [seeding.make_split(s.cost_centre, s.gl_account, s.percent) for s in items]


def _lines(tenant: Tenant, items: list[LineIn], credit: bool, category: str) -> list[InvoiceLine]:
    defaults = dc.CATEGORY_DEFAULTS.get(category, dc.CATEGORY_DEFAULTS["raw"])
    out = []
    for n, li in enumerate(items, start=1):
        price = money(abs(li.unit_price)) * (-1 if credit else 1)
        out.append(
            InvoiceLine(
                line_id=tenant.new_line_id(),
                line_number=n,
                description=li.description,
                quantity=li.quantity,
                unit_price=price,
                tax_rate=seeding.VAT_RATES[li.vat_code],
                vat_code=li.vat_code,
                vat_description={v.code: v.description for v in dc.VAT_CODES}.get(li.vat_code),
                unit_of_measure=li.unit_of_measure,
                po_number=li.po_number,
                po_line_number=li.po_line_number or (str(n) if li.po_number else None),
                product_type="CatalogItem" if li.po_number else "NonCatalogItem",
                item_code=li.item_code,
                splits=_splits(li.splits) if li.splits else [seeding.make_split(defaults["cc"], defaults["gl"], 100)],
            )
        )
    return out


def summary(inv: Invoice) -> dict[str, Any]:
    return {
        "invoiceId": inv.invoice_id,
        "invoiceNumber": inv.invoice_number,
        "supplierInvoiceNumber": inv.supplier_invoice_number,
        "invoiceType": inv.invoice_type,
        "lastUpdate": fmt_ts(inv.last_update),
        "createdAt": fmt_ts(inv.created_at),
        "workflowStatus": inv.workflow_status,
        "paymentStatus": inv.payment_status,
        "businessUnit": inv.business_unit,
        "supplierId": inv.supplier.id,
        "supplierNumber": inv.supplier.supplier_number,
        "currency": inv.currency,
        "total": str(inv.total),
        "lines": len(inv.lines),
        "edits": inv.edits,
    }


def make_jaggaer_admin_router(sandbox: JaggaerSandbox) -> APIRouter:
    router = APIRouter(prefix="/_admin", tags=["admin"])

    @router.get("/credentials")
    def credentials() -> dict[str, Any]:
        return sandbox.credentials()

    @router.delete("/tokens")
    def revoke_tokens() -> dict[str, Any]:
        with sandbox.lock:
            n = len(sandbox.tokens)
            sandbox.tokens.clear()
        return {"ok": True, "revoked": n}

    @router.get("/invoices")
    def list_invoices(tenant: str = "demo") -> list[dict[str, Any]]:
        with sandbox.lock:
            t = _tenant(sandbox, tenant)
            return [summary(i) for i in sorted(t.invoices.values(), key=lambda i: i.invoice_id)]

    @router.get("/invoices/{invoice_id}")
    def get_invoice(invoice_id: int, tenant: str = "demo") -> dict[str, Any]:
        with sandbox.lock:
            t = _tenant(sandbox, tenant)
            inv = t.invoices.get(invoice_id)
            if inv is None:
                raise HTTPException(404, f"no invoice {invoice_id} in tenant {tenant}")
            return {"summary": summary(inv), "j1p": invoice_detail(inv, sandbox.settings)}

    @router.post("/invoices", status_code=201)
    def create_invoice(body: InvoiceIn) -> dict[str, Any]:
        now = sandbox.clock.now()
        with sandbox.lock:
            t = _tenant(sandbox, body.tenant)
            sup = _supplier(t, body.supplier_number, body.supplier_id)
            rng = random.Random(body.seed)
            if sup is None:
                pool = sorted((s for s in t.suppliers.values() if s.active), key=lambda s: s.id)
                if not pool:
                    raise HTTPException(400, "tenant has no suppliers")
                sup = pool[rng.randrange(len(pool))]
            category = body.category or _category_of(sup)
            if category not in dc.CATEGORY_DEFAULTS:
                raise HTTPException(400, f"unknown category {category!r} (known: {', '.join(dc.CATEGORY_DEFAULTS)})")
            credit = body.invoice_type == "Credit memo"
            bu = body.business_unit or (t.business_units[0] if t.business_units else "UK-MFG")
            last_update = body.last_update or _ms(now)
            created = body.created_at or last_update
            if created > last_update:
                raise HTTPException(400, "created_at must not be after last_update")
            profile = seeding.VendorProfile(sup, category, [bu], 30, bool(sup.vat_number))
            inv = seeding.build_invoice(
                t,
                rng,
                profile,
                now=now,
                last_update=last_update,
                created_at=created,
                credit_memo=credit,
                business_unit=bu,
                currency=body.currency or ("EUR" if t.key == "acme" else "GBP"),
            )
            inv.category = category
            inv.workflow_status = body.workflow_status
            inv.payment_status = body.payment_status
            if body.supplier_invoice_number:
                inv.supplier_invoice_number = body.supplier_invoice_number
            if body.invoice_date:
                inv.invoice_date = body.invoice_date
                inv.due_date = body.invoice_date + timedelta(days=30)
            if body.due_date:
                inv.due_date = body.due_date
            if body.accounting_date:
                inv.accounting_date = body.accounting_date
            if body.lines is not None:
                if not body.lines:
                    raise HTTPException(400, "an invoice needs at least one line")
                inv.lines = _lines(t, body.lines, credit, category)
                inv.header_splits = []
            if body.header_splits is not None:
                inv.header_splits = _splits(body.header_splits)
                if inv.header_splits:
                    for line in inv.lines:
                        line.splits = []
            for name in ("shipping", "handling", "discount"):
                value = getattr(body, name)
                if value is not None:
                    setattr(inv, name, money(value))
            t.invoices[inv.invoice_id] = inv
            return {"summary": summary(inv), "j1p": invoice_detail(inv, sandbox.settings)}

    @router.patch("/invoices/{invoice_id}")
    def patch_invoice(invoice_id: int, body: InvoicePatch) -> dict[str, Any]:
        now = sandbox.clock.now()
        with sandbox.lock:
            t = _tenant(sandbox, body.tenant)
            inv = t.invoices.get(invoice_id)
            if inv is None:
                raise HTTPException(404, f"no invoice {invoice_id} in tenant {body.tenant}")
            sup = _supplier(t, body.supplier_number, body.supplier_id)
            if sup is not None:
                inv.supplier = sup
            for name in (
                "workflow_status",
                "payment_status",
                "business_unit",
                "supplier_invoice_number",
                "invoice_date",
                "due_date",
                "accounting_date",
                "category",
            ):
                value = getattr(body, name)
                if value is not None:
                    setattr(inv, name, value)
            if body.lines is not None:
                if not body.lines:
                    raise HTTPException(400, "an invoice needs at least one line")
                inv.lines = _lines(t, body.lines, inv.invoice_type == "Credit memo", inv.category or "raw")
            if body.header_splits is not None:
                inv.header_splits = _splits(body.header_splits)
                if inv.header_splits:
                    for line in inv.lines:
                        line.splits = []
            for name in ("shipping", "handling", "discount"):
                value = getattr(body, name)
                if value is not None:
                    setattr(inv, name, money(value))
            inv.last_update = body.last_update or _ms(now)
            inv.edits += 1
            return {"summary": summary(inv), "j1p": invoice_detail(inv, sandbox.settings)}

    @router.get("/suppliers")
    def suppliers(tenant: str = "demo") -> list[dict[str, Any]]:
        with sandbox.lock:
            t = _tenant(sandbox, tenant)
            return [s.view() for s in sorted(t.suppliers.values(), key=lambda s: s.id)]

    @router.get("/purchase-orders/{po_number}")
    def purchase_order(po_number: str, tenant: str = "demo") -> dict[str, Any]:
        with sandbox.lock:
            t = _tenant(sandbox, tenant)
            po = t.purchase_orders.get(po_number)
            if po is None:
                raise HTTPException(404, f"no purchase order {po_number!r} in tenant {tenant}")
            return {**po.view(), "lastXml": po.last_xml}

    return router
