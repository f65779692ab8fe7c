"""The invoice poll against both sandboxes over real HTTP, on SQLite and PostgreSQL (``world``) or SQLite only
(``sqlite_world``): where invoices land, the unmatched-vendor policies, and what a person is told."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from invoice_poll_support import DIV_MFG, DIV_SVC, World, demo_tenant
from sqlalchemy import select

from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog, Cursor, LedgerEntry, StagedRecord, VendorMap

GRAINGER = 59001  # JAGGAER-only vendor "Grainger Lab Supplies Ltd": no Exact supplier
NORDIC = 59002  # JAGGAER-only vendor "Nordic Tooling AB UK Branch"


def _lines(entry: dict[str, Any]) -> list[tuple[str, float, str, float, str | None]]:
    return [
        (ln["GLAccountCode"], ln["AmountFC"], ln["VATCode"], ln["VATAmountFC"], ln["CostCenter"])
        for ln in entry["PurchaseEntryLines"]
    ]


def test_invoices_and_credit_memos_land_on_the_right_division_accounts_cost_centres_and_vat(world: World) -> None:
    invoice = world.invoice(
        supplier_number="1001",
        supplier_invoice_number="INV-A-1",
        lines=[
            {
                "unit_price": "100.00",
                "quantity": 2,
                "vat_code": "1",
                "splits": [
                    {"cost_centre": "CC100", "gl_account": "7000", "percent": 60},
                    {"cost_centre": "CC300", "gl_account": "7000", "percent": 40},
                ],
            },
            {"unit_price": "50.00", "vat_code": "2", "splits": [{"cost_centre": "CC200", "gl_account": "7200"}]},
        ],
        shipping="10.00",
    )
    credit = world.invoice(
        supplier_number="1002",
        business_unit="UK-SVC",
        invoice_type="Credit memo",
        supplier_invoice_number="CN-B-1",
        lines=[{"unit_price": "30.00", "vat_code": "1"}],
    )
    summary = world.run()
    assert summary["counts"]["posted"] == 2 and not summary["problems"]

    [a] = world.entries_for("INV-A-1")
    assert a["Division"] == DIV_MFG and a["Journal"] == "60" and a["Type"] == 30
    assert a["SupplierName"] == "Brammer Steel Stockholders Ltd"
    assert Decimal(str(a["AmountFC"])) == Decimal(invoice["summary"]["total"])
    assert _lines(a) == [
        ("7000", 120.0, "1", 24.0, "CC100"),
        ("7000", 80.0, "1", 16.0, "CC300"),
        ("7000", 50.0, "2", 2.5, "CC200"),
        ("7000", 10.0, "3", 0.0, "CC100"),
    ]
    [b] = world.entries_for("CN-B-1")
    assert b["Division"] == DIV_SVC and b["Type"] == 31
    assert Decimal(str(b["AmountFC"])) == Decimal(credit["summary"]["total"]) == Decimal("-36.00")
    assert _lines(b) == [("7000", -30.0, "1", -6.0, "CC100")]

    # the ledger knows the Exact ids; the audit trail names both sides of every write attempt
    entry = world.ledger(invoice["summary"]["invoiceId"])
    assert (entry.state, entry.target_id, entry.target_ref) == ("posted", a["EntryID"], str(a["EntryNumber"]))
    rows = world.audit(invoice["summary"]["invoiceId"])
    [post] = [r for r in rows if r.method == "POST"]
    assert (post.source_id, post.source_ref, post.http_status, post.outcome) == (
        str(invoice["summary"]["invoiceId"]),
        invoice["summary"]["invoiceNumber"],
        201,
        "ok",
    )
    assert post.division == DIV_MFG and post.url.endswith("/purchaseentry/PurchaseEntries") and post.run_id
    assert post.target_id == a["EntryID"] and str(a["EntryNumber"]) in post.message
    [posted] = [r for r in rows if r.action == "state:posted"]
    assert (posted.target_id, posted.target_ref) == (a["EntryID"], str(a["EntryNumber"]))
    with session_scope(world.engine) as s:
        link = s.scalar(select(VendorMap).where(VendorMap.jaggaer_supplier_id == "50001"))
        assert (link.division, link.exact_code, link.source) == (DIV_MFG, "1001", "matched:supplier_number")


def test_only_approved_invoices_in_the_window_are_read_and_the_ids_param_narrows(sqlite_world: World) -> None:
    w = sqlite_world
    w.invoice(supplier_invoice_number="OK-1", lines=[{"unit_price": "10.00"}])
    w.invoice(supplier_invoice_number="PENDING-1", workflow_status="Pending", lines=[{"unit_price": "10.00"}])
    w.invoice(supplier_invoice_number="INPROC-1", payment_status="InProcess", lines=[{"unit_price": "10.00"}])
    paid = w.invoice(supplier_invoice_number="PAID-1", payment_status="Paid", lines=[{"unit_price": "10.00"}])
    summary = w.run(params={"ids": [str(paid["summary"]["invoiceId"])]})
    assert summary["counts"].get("posted") == 1 and [e["YourRef"] for e in w.entries()] == ["PAID-1"]
    summary = w.run()
    assert summary["counts"]["posted"] == 1 and summary["counts"]["not_approved"] == 2
    assert sorted(e["YourRef"] for e in w.entries()) == ["OK-1", "PAID-1"]


def test_unmatched_vendor_halt_holds_with_the_fix_and_goes_through_once_mapped(
    sqlite_world: World, monkeypatch: Any
) -> None:
    from typer.testing import CliRunner

    from ml_connector.cli.mappings_cmd import app
    from ml_connector.flows import runtime

    alerts: list[tuple[str, str]] = []
    monkeypatch.setattr(runtime, "send_alert", lambda tenant, subject, body: alerts.append((subject, body)))
    w = sqlite_world
    held = w.invoice(supplier_id=GRAINGER, supplier_number=None, supplier_invoice_number="GR-1")
    w.invoice(supplier_invoice_number="FINE-1", lines=[{"unit_price": "5.00"}])
    summary = w.run()
    assert summary["counts"]["held"] == 1 and summary["counts"]["posted"] == 1
    fix = (
        f"map JAGGAER vendor 'Grainger Lab Supplies Ltd' (id {GRAINGER}) to an Exact supplier: "
        f"`mlc mappings set vendor --tenant demo --division {DIV_MFG} --jaggaer-id {GRAINGER} "
        "--exact-code <Exact supplier code>`"
    )
    assert any(fix in d and held["summary"]["invoiceNumber"] in d for d in summary["details"])
    assert alerts and "1 held" in alerts[-1][0] and fix in alerts[-1][1]
    assert w.ledger(held["summary"]["invoiceId"]).state == "held"

    # retried on every run until mapped
    assert w.run()["counts"]["held"] == 1 and w.entries_for("GR-1") == []

    monkeypatch.setenv("MLC_DB_URL", str(w.engine.url))
    args = ["set", "vendor", "--tenant", "demo", "--division", str(DIV_MFG), "--jaggaer-id", str(GRAINGER)]
    result = CliRunner().invoke(app, [*args, "--exact-code", "1003"])
    assert result.exit_code == 0, result.output
    summary = w.run()
    assert summary["counts"]["posted"] == 1 and summary["counts"]["vendor_mapped"] == 1
    [entry] = w.entries_for("GR-1")
    assert entry["SupplierName"] == "Sheffield Bright Bar Ltd"  # Exact supplier 1003
    assert w.ledger(held["summary"]["invoiceId"]).state == "posted"


def test_unmatched_vendor_create_makes_the_supplier_once(sqlite_world: World) -> None:
    w = sqlite_world
    w.tenant = demo_tenant(unmatched_vendor="create")
    w.invoice(supplier_id=NORDIC, supplier_number=None, supplier_invoice_number="NT-1")
    # the supplier is created but the answer is lost: found by name instead of created twice
    w.exact.fault(method="POST", path="/crm/Accounts", action="drop_after_commit")
    summary = w.run()
    assert summary["counts"]["posted"] == 1 and summary["counts"]["suppliers_created"] == 1
    [entry] = w.entries_for("NT-1")
    accounts = _accounts_named(w, "Nordic Tooling AB UK Branch", DIV_MFG)
    assert len(accounts) == 1 and entry["Supplier"] == accounts[0]["ID"]

    w.invoice(hour=14, supplier_id=NORDIC, supplier_number=None, supplier_invoice_number="NT-2")
    w.run()
    assert len(w.entries_for("NT-2")) == 1
    assert len(_accounts_named(w, "Nordic Tooling AB UK Branch", DIV_MFG)) == 1
    with session_scope(w.engine) as s:
        link = s.scalar(select(VendorMap).where(VendorMap.jaggaer_supplier_id == str(NORDIC)))
        assert (link.source, link.exact_account_id) == ("created_in_exact", accounts[0]["ID"])
        vendor_entry = s.scalar(select(LedgerEntry).where(LedgerEntry.flow == "invoice_poll_vendor"))
        assert (vendor_entry.state, vendor_entry.target_id) == ("posted", accounts[0]["ID"])
    posts = [c for c in w.exact.calls()["log"] if c["method"] == "POST" and c["path"].endswith("/crm/Accounts")]
    assert len(posts) == 1


def _accounts_named(w: World, name: str, division: int) -> list[dict[str, Any]]:
    """Exact's accounts of that name, straight from the in-process sandbox's store."""
    return [dict(a) for a in w.exact.sandbox.store.divisions[division].accounts if a["Name"] == name]


def test_unmatched_vendor_skip_records_it_as_skipped(sqlite_world: World) -> None:
    w = sqlite_world
    w.tenant = demo_tenant(unmatched_vendor="skip")
    skipped = w.invoice(supplier_id=GRAINGER, supplier_number=None, supplier_invoice_number="SK-1")
    summary = w.run()
    assert summary["counts"]["skipped"] == 1 and w.entries() == []
    entry = w.ledger(skipped["summary"]["invoiceId"])
    assert entry.state == "skipped" and "Grainger Lab Supplies Ltd" in entry.reason
    assert w.run()["counts"].get("skipped") is None  # recorded once, not retried


def test_validation_failures_quarantine_with_an_actionable_reason_and_heal_when_fixed(
    sqlite_world: World, monkeypatch: Any
) -> None:
    from typer.testing import CliRunner

    from ml_connector.cli.mappings_cmd import app

    w = sqlite_world
    bad_cc = w.invoice(
        supplier_invoice_number="CC900-1",
        lines=[{"unit_price": "10.00", "splits": [{"cost_centre": "CC900", "gl_account": "7000"}]}],
    )
    bad_bu = w.invoice(supplier_invoice_number="BU-1", business_unit="UK-NEW", lines=[{"unit_price": "10.00"}])
    w.clear_calls()
    summary = w.run()
    assert summary["counts"]["quarantined"] == 2
    reasons = " ".join(summary["details"])
    assert "cost centre 'CC900' is inactive in Exact division 111111" in reasons
    assert "business unit 'UK-NEW' is not routed" in reasons
    assert not [c for c in w.exact.calls()["log"] if c["method"] == "POST"]

    # an admin maps the closed cost centre and routes the new business unit: the next run posts both
    monkeypatch.setenv("MLC_DB_URL", str(w.engine.url))
    runner = CliRunner()
    for args in (
        ["--kind", "cost_center", "--source", "CC900", "--target", "CC200"],
        ["--kind", "business_unit", "--source", "UK-NEW", "--target", str(DIV_SVC)],
    ):
        result = runner.invoke(app, ["set", "code", "--tenant", "demo", *args])
        assert result.exit_code == 0, result.output
    summary = w.run()
    assert summary["counts"]["posted"] == 2
    [cc] = w.entries_for("CC900-1")
    assert {ln["CostCenter"] for ln in cc["PurchaseEntryLines"]} == {"CC200"}
    assert [e["Division"] for e in w.entries_for("BU-1")] == [DIV_SVC]
    assert w.ledger(bad_cc["summary"]["invoiceId"]).state == "posted"
    assert w.ledger(bad_bu["summary"]["invoiceId"]).state == "posted"


def test_a_stored_business_unit_map_to_a_foreign_division_is_named_as_the_cause(sqlite_world: World) -> None:
    """A code map stored before imports were checked routes UK-OLD to a division the tenant does not have: the
    quarantine reason names that map and the commands that fix or remove it."""
    from ml_connector.store.db import session_scope
    from ml_connector.store.models import CodeMap

    w = sqlite_world
    with session_scope(w.engine) as s:
        s.add(CodeMap(tenant="demo", kind="business_unit", source_value="UK-OLD", target_value="999999"))
    w.invoice(supplier_invoice_number="BU-OLD", business_unit="UK-OLD", lines=[{"unit_price": "10.00"}])
    summary = w.run()
    assert summary["counts"]["quarantined"] == 1
    reason = " ".join(summary["details"])
    assert "code map business_unit['UK-OLD'] routes to division 999999" in reason
    assert "mlc mappings delete code --tenant demo --kind business_unit --source 'UK-OLD'" in reason


def test_exact_validation_error_quarantines_with_exacts_message_after_one_post(sqlite_world: World) -> None:
    w = sqlite_world
    # Exact supplier 1060 (Redline Couriers) is blocked in Exact: Exact refuses the entry with HTTP 500
    blocked = w.invoice(supplier_number="1060", supplier_invoice_number="BLK-1", lines=[{"unit_price": "10.00"}])
    summary = w.run()
    assert summary["counts"]["quarantined"] == 1
    entry = w.ledger(blocked["summary"]["invoiceId"])
    assert entry.state == "quarantined" and entry.reason.startswith("Exact refused: ")
    assert "1060" in entry.reason  # Exact's own message names the supplier
    [post] = [r for r in w.audit(blocked["summary"]["invoiceId"]) if r.method == "POST"]
    assert (post.http_status, post.outcome) == (500, "rejected") and "1060" in post.message

    assert w.run()["counts"].get("quarantined") is None  # not sent again
    posts = [c for c in w.exact.calls()["log"] if c["method"] == "POST" and "PurchaseEntries" in c["path"]]
    assert len(posts) == 1 and posts[0]["status"] == 500


def test_dry_run_shows_entries_and_changes_nothing(sqlite_world: World) -> None:
    w = sqlite_world
    w.invoice(supplier_invoice_number="DRY-1", lines=[{"unit_price": "42.00"}])
    w.invoice(supplier_id=GRAINGER, supplier_number=None, supplier_invoice_number="DRY-HELD")
    summary = w.run(params={"dry_run": True, "date_from": w.day.isoformat(), "date_to": w.day.isoformat()})
    assert summary["counts"]["would_post"] == 1 and summary["counts"]["would_hold"] == 1
    assert any('"YourRef": "DRY-1"' in d and '"AmountFC": 42.0' in d for d in summary["details"])
    assert w.entries() == []
    assert not [c for c in w.exact.calls()["log"] if c["method"] != "GET"]
    with session_scope(w.engine) as s:
        for model in (LedgerEntry, StagedRecord, VendorMap, AuditLog, Cursor):
            assert s.scalars(select(model)).first() is None, model.__name__


def test_vendor_map_conflicts_and_deactivated_links_hold_with_a_reason(sqlite_world: World) -> None:
    from ml_connector.mappings.vendors import set_link

    w = sqlite_world
    w.invoice(supplier_number="1003", supplier_invoice_number="SH-1", lines=[{"unit_price": "1.00"}])
    grainger = w.invoice(hour=11, supplier_id=GRAINGER, supplier_number=None, supplier_invoice_number="GR-9")
    w.run()  # 1003 (Sheffield Bright Bar) is matched and linked; Grainger is held
    # set_link refuses a second link to 1003 now (issue 15); a conflicting row stored before that (or by hand in the
    # database) must still hold the invoice at run time
    with session_scope(w.engine) as s, pytest.raises(ValueError, match="already linked to JAGGAER vendor 50003"):
        set_link(s, tenant="demo", division=DIV_MFG, jaggaer_id=str(GRAINGER), exact_code="1003")
    with session_scope(w.engine) as s:
        s.add(
            VendorMap(
                tenant="demo", division=DIV_MFG, jaggaer_supplier_id=str(GRAINGER), exact_code="1003", source="admin"
            )
        )
    summary = w.run()
    assert summary["counts"]["held"] == 1
    reason = w.ledger(grainger["summary"]["invoiceId"]).reason
    assert "already linked to JAGGAER vendor 50003" in reason and "one link per supplier" in reason

    with session_scope(w.engine) as s:
        for row in s.scalars(select(VendorMap).where(VendorMap.jaggaer_supplier_id == str(GRAINGER))):
            row.active = False
    w.run()
    assert "is deactivated" in w.ledger(grainger["summary"]["invoiceId"]).reason
    assert w.entries_for("GR-9") == []
