"""The money adds up: lines + taxCharge1 + taxCharge2 + shipping + handling - discount == total, for every invoice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jaggaer_support import ACME, DEMO, INVOICES, JaggaerHandle

from sandbox.jaggaer import seed as seeding
from sandbox.jaggaer.render import invoice_detail
from sandbox.jaggaer.settings import JaggaerSettings

CENT = Decimal("0.01")


def check_money(detail: dict[str, Any]) -> None:
    h = detail["header"]
    lines = detail["lineList"]["invoiceLine"]
    net = Decimal(0)
    line_tax = Decimal(0)
    for line in lines:
        qty, price, ext = Decimal(line["quantity"]), Decimal(line["unitPrice"]), Decimal(line["extendedPrice"])
        assert (qty * price).quantize(CENT) == ext, line
        net += ext
        line_tax += Decimal(line["taxCharge1"])
    assert line_tax == Decimal(h["taxCharge1"])
    total = (
        net
        + Decimal(h["taxCharge1"])
        + Decimal(h["taxCharge2"])
        + Decimal(h["shippingCharge"])
        + Decimal(h["handlingCharge"])
        - Decimal(h["discountAmount"])
    )
    assert total == Decimal(h["total"]["value"]), (h["invoiceId"], total, h["total"])
    if h["invoiceType"] == "Credit memo":
        assert total < 0 and all(Decimal(line["unitPrice"]) < 0 for line in lines)
    else:
        assert total > 0


def test_every_seeded_invoice_adds_up_over_http(jaggaer_sandbox: JaggaerHandle) -> None:
    checked = 0
    for creds in (DEMO, ACME):
        token = jaggaer_sandbox.token(creds)
        for h in jaggaer_sandbox.all_invoice_headers(token):
            r = jaggaer_sandbox.get(f"{INVOICES}/{h['invoiceId']}", token)
            detail = json.loads(r.content, parse_float=Decimal)
            check_money(detail)
            checked += 1
    assert checked == 74


def test_vat_rates_are_uk_rates(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    rates = set()
    for h in jaggaer_sandbox.all_invoice_headers(demo_token):
        detail = json.loads(jaggaer_sandbox.get(f"{INVOICES}/{h['invoiceId']}", demo_token).content)
        for line in detail["lineList"]["invoiceLine"]:
            values = {
                cf["name"]: cf["customFieldValueList"]["customFieldValue"][0].get("value")
                for cf in line["customFieldValueSetList"]["customFieldValueSet"]
            }
            rates.add(values["TaxRate"])
            assert values["TaxCode"] in {"1", "2", "3", "4"}
    assert rates == {"20", "5", "0"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=2**31),
    count=st.integers(min_value=1, max_value=40),
    credit=st.integers(min_value=0, max_value=10),
    offset=st.integers(min_value=0, max_value=10 * 365 * 86400),
    amount_splits=st.booleans(),
)
def test_generated_invoices_always_add_up(seed: int, count: int, credit: int, offset: int, amount_splits: bool) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
    tenant = seeding.new_tenant(seeding.DEMO, ["UK-MFG", "UK-SVC"])
    seeding.seed_demo(tenant, now, seed=seed)
    extra = seeding.generate_invoices(
        tenant, seeding.demo_profiles(tenant), now=now, seed=seed + 1, invoices=count, credit_memos=credit
    )
    assert len(extra) == count + credit
    cfg = JaggaerSettings(split_distribution="amount" if amount_splits else "percent")
    for inv in tenant.invoices.values():
        detail = json.loads(json.dumps(invoice_detail(inv, cfg)), parse_float=Decimal)
        check_money(detail)
        assert inv.created_at <= inv.last_update <= now
        assert 1 <= len(inv.lines) <= 6


def test_seed_is_deterministic() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    cfg = JaggaerSettings()
    a = seeding.new_tenant(seeding.DEMO, ["UK-MFG", "UK-SVC"])
    b = seeding.new_tenant(seeding.DEMO, ["UK-MFG", "UK-SVC"])
    seeding.seed_demo(a, now)
    seeding.seed_demo(b, now)
    assert [invoice_detail(i, cfg) for i in a.invoices.values()] == [
        invoice_detail(i, cfg) for i in b.invoices.values()
    ]
