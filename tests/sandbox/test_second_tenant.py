"""The second demo tenant (``make cluster``): opt-in, seeded in both sandboxes, consistent between them."""

from __future__ import annotations

from sandbox.common import demo_company as dc
from sandbox.common.clock import Clock
from sandbox.exact.store import ExactStore
from sandbox.jaggaer.app import JaggaerSandbox


def test_default_reset_has_only_the_demo_company() -> None:
    store = ExactStore(Clock())
    assert set(store.reset()["divisions"]) == set(dc.DIVISIONS)
    jaggaer = JaggaerSandbox()
    assert dc.SECOND_TENANT not in jaggaer.tenants


def test_second_tenant_divisions_and_customer_match() -> None:
    store = ExactStore(Clock())
    summary = store.reset({"second_tenant": True})["divisions"]
    assert set(summary) == set(dc.DIVISIONS) | set(dc.SECOND_DIVISIONS)
    for code, mirrored in dc.SECOND_COMPANY_MIRRORS.items():
        div = store.divisions[code]
        assert div.name == dc.SECOND_DIVISIONS[code]["name"]
        assert summary[code]["accounts"] == summary[mirrored]["accounts"] > 0
        assert summary[code]["purchase_orders"] > 0
        ids = {a["ID"] for a in div.accounts}
        assert ids.isdisjoint({a["ID"] for a in store.divisions[mirrored].accounts})  # GUIDs of its own

    jaggaer = JaggaerSandbox()
    info = jaggaer.reset({"second_tenant": True})
    tenant = jaggaer.tenants[dc.SECOND_TENANT]
    assert info[dc.SECOND_TENANT]["invoices"] == len(tenant.invoices) == 27
    assert tenant.business_units == list(dc.SECOND_BUSINESS_UNITS)
    assert set(tenant.invoices).isdisjoint(jaggaer.tenants["demo"].invoices)
    for inv in tenant.invoices.values():
        assert inv.business_unit in dc.SECOND_BUSINESS_UNITS
        code = inv.supplier.supplier_number
        if code:  # an Exact vendor: it has an account in the division the business unit posts to
            division = dc.SECOND_BUSINESS_UNITS[inv.business_unit]
            accounts = {a["Code"].strip() for a in store.divisions[division].accounts}
            assert code in accounts, (inv.invoice_id, code, division)
    assert jaggaer.tenant_by_identity("MLCNORTHFIELD") is tenant
