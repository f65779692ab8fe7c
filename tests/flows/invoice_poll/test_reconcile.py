"""Reconciliation, JAGGAER ⇄ Exact, against both sandboxes over HTTP and the real ledger (SQLite and PostgreSQL).

Every kind of discrepancy is planted — an entry keyed by hand in Exact, an amount edited in Exact, an entry deleted
in Exact, a held invoice — and the reconciliation finds each of them and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
from invoice_poll_support import DIV_MFG, DIV_SVC, World

from ml_connector import reconcile as rc
from ml_connector.reconcile.run import reconcile
from ml_connector.reconcile.sources import Period

GRAINGER = 59001  # JAGGAER-only vendor: no Exact supplier, so its invoice is held


def _hand_keyed(w: World, template: dict[str, Any], your_ref: str) -> dict[str, Any]:
    """A purchase entry a person keys in Exact: same supplier and GL account as ``template``, no JAGGAER reference."""
    from ml_connector.http import AuditContext

    hook = w.ctx().exact_hook()
    body = {
        "Journal": "60",
        "Supplier": template["Supplier"],
        "EntryDate": f"{w.day.isoformat()}T00:00:00",
        "YourRef": your_ref,
        "Description": "keyed by hand",
        "PurchaseEntryLines": [{"GLAccount": template["PurchaseEntryLines"][0]["GLAccount"], "AmountFC": 40.0}],
    }
    return hook.client.post(
        DIV_MFG,
        "purchaseentry/PurchaseEntries",
        body,
        audit_ctx=AuditContext(tenant="demo", flow="test", action="hand_keyed"),
    )


def _delete(w: World, entry_id: str) -> None:
    from ml_connector.http import AuditContext

    w.ctx().exact_hook().client.delete(
        DIV_MFG,
        f"purchaseentry/PurchaseEntries(guid'{entry_id}')",
        audit_ctx=AuditContext(tenant="demo", flow="test", action="deleted_by_hand"),
    )


def _run(w: World, division: int = DIV_MFG, **kw: Any) -> Any:
    ctx = w.ctx()
    return reconcile(
        w.tenant,
        division,
        Period(w.day, w.day),
        engine=w.engine,
        exact_hook=ctx.exact_hook(),
        jaggaer_hook=ctx.jaggaer_hook(),
        trigger="test",
        **kw,
    )


def _rows(rec_id: int, w: World) -> list[dict[str, Any]]:
    from ml_connector.reconcile.store import get

    saved = get(w.engine, rec_id)
    assert saved is not None
    return saved.rows


def test_every_planted_discrepancy_is_found_and_nothing_else(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_connector.flows import runtime

    alerts: list[tuple[str, str]] = []
    monkeypatch.setattr(runtime, "send_alert", lambda tenant, subject, body: alerts.append((subject, body)))
    w = world
    ok = [w.invoice(supplier_invoice_number=f"OK-{i}", lines=[{"unit_price": f"{10 + i}.00"}]) for i in range(3)]
    edited = w.invoice(supplier_invoice_number="EDIT-1", lines=[{"unit_price": "20.00"}])
    deleted = w.invoice(supplier_invoice_number="DEL-1", lines=[{"unit_price": "30.00"}])
    held = w.invoice(supplier_id=GRAINGER, supplier_number=None, supplier_invoice_number="HELD-1")
    other_div = w.invoice(supplier_invoice_number="SVC-1", business_unit="UK-SVC")
    summary = w.run()
    assert summary["counts"]["posted"] == 6 and summary["counts"]["held"] == 1, summary

    # before anything is planted: all matched, no alert
    clean = _run(w)
    assert clean.counts == {rc.MATCHED: 5, rc.DIFFERS: 0, rc.JAGGAER_ONLY: 1, rc.EXACT_ONLY: 0, rc.POSTED_MISSING: 0}

    [edit_entry] = w.entries_for("EDIT-1")
    [del_entry] = w.entries_for("DEL-1")
    w.exact.edit_entry(edit_entry["EntryID"], line=1, AmountFC=25.0)
    _delete(w, del_entry["EntryID"])
    hand = _hand_keyed(w, edit_entry, "HAND-1")
    alerts.clear()
    w.clear_calls()

    out = _run(w)
    # bulk, paged reads: one Exact call (the lines fit one 1,000-row page), JAGGAER list pages, no invoice details
    calls = w.exact.calls()
    assert out.exact_calls == 1 and calls["total"] == 1 and "bulk/Financial/TransactionLines" in str(calls)
    jag_calls = w.jag("GET", "calls")
    assert out.jaggaer_calls >= 1 and "/invoices/" not in str(jag_calls), jag_calls
    rows = _rows(out.id, w)
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_cat.setdefault(row["category"], []).append(row)
    assert out.counts == {rc.MATCHED: 3, rc.DIFFERS: 1, rc.JAGGAER_ONLY: 1, rc.EXACT_ONLY: 1, rc.POSTED_MISSING: 1}
    assert out.off == 4 and len(rows) == 7
    assert sorted(r["your_ref"] for r in by_cat[rc.MATCHED]) == ["OK-0", "OK-1", "OK-2"]
    assert {r["jaggaer_invoice_id"] for r in by_cat[rc.MATCHED]} == {str(i["summary"]["invoiceId"]) for i in ok}

    [differs] = by_cat[rc.DIFFERS]
    assert differs["jaggaer_invoice_id"] == str(edited["summary"]["invoiceId"])
    assert differs["exact_entry_number"] == edit_entry["EntryNumber"]
    assert differs["jaggaer_amount"] == f"{edit_entry['AmountFC']:.2f}" != differs["exact_amount"]
    assert differs["note"].startswith("amount: JAGGAER") and "date" not in differs["note"]

    [gone] = by_cat[rc.POSTED_MISSING]
    assert gone["jaggaer_invoice_id"] == str(deleted["summary"]["invoiceId"])
    assert gone["exact_entry_id"] == del_entry["EntryID"].lower() and "no longer in" in gone["note"]

    [only_j] = by_cat[rc.JAGGAER_ONLY]
    assert only_j["jaggaer_invoice_id"] == str(held["summary"]["invoiceId"]) and only_j["ledger_state"] == "held"
    assert only_j["note"].startswith("ledger: held: ") and str(GRAINGER) in only_j["note"]

    [only_e] = by_cat[rc.EXACT_ONLY]
    assert only_e["your_ref"] == "HAND-1" and only_e["exact_entry_id"] == hand["EntryID"].lower()
    assert only_e["note"].startswith("keyed by hand") and only_e["exact_amount"] is not None

    # the other division's invoice is not in this division's reconciliation, and is matched in its own
    assert str(other_div["summary"]["invoiceId"]) not in {r["jaggaer_invoice_id"] for r in rows}
    assert _run(w, DIV_SVC).counts[rc.MATCHED] == 1

    # one alert naming each discrepancy and the page
    [(subject, body)] = alerts
    assert "4 row(s) off" in subject and f"division {DIV_MFG}" in subject
    for ref in ("EDIT-1", "DEL-1", "HAND-1", held["summary"]["invoiceNumber"]):
        assert ref in body
    assert f"/ml-connector/ui/reconcile?tenant=demo&id={out.id}" in body


def test_exact_reads_follow_the_next_link(sqlite_world: World) -> None:
    """At a page size of 2 lines the reconciliation follows ``__next`` and still matches everything."""
    w = sqlite_world
    for i in range(5):
        w.invoice(supplier_invoice_number=f"PG-{i}", lines=[{"unit_price": f"{5 + i}.00"}])
    assert w.run()["counts"]["posted"] == 5
    w.exact.settings(sync_page_size=2)
    out = _run(w, alert=False)
    assert out.counts[rc.MATCHED] == 5 and out.off == 0
    assert out.exact_calls == 3  # 5 lines, 2 a page


def test_period_must_not_end_before_it_starts() -> None:
    from datetime import date

    with pytest.raises(ValueError, match="ends"):
        Period(date(2026, 12, 2), date(2026, 12, 1))


def test_cli_reconciles_prints_what_is_off_and_writes_xlsx_and_csv(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import pandas as pd
    from typer.testing import CliRunner

    from ml_connector.cli import app

    w = sqlite_world
    w.invoice(supplier_invoice_number="CLI-1", lines=[{"unit_price": "7.00"}])
    held = w.invoice(supplier_id=GRAINGER, supplier_number=None, supplier_invoice_number="CLI-HELD")
    w.run()
    monkeypatch.setenv("MLC_DB_URL", w.engine.url.render_as_string(hide_password=False))
    day = w.day.isoformat()
    args = ["reconcile", "--tenant", "demo", "--division", str(DIV_MFG), "--from", day, "--to", day]
    xlsx, csv = tmp_path / "r.xlsx", tmp_path / "r.csv"
    result = CliRunner().invoke(app, [*args, "--xlsx", str(xlsx), "--csv", str(csv)])
    assert result.exit_code == 1, result.output  # something is off: the held invoice
    assert "matched 1, amount or date differs 0, in JAGGAER only 1" in result.output
    assert f"[in JAGGAER only] JAGGAER {held['summary']['invoiceNumber']}" in result.output
    assert "CLI-HELD" in result.output and "/ml-connector/ui/reconcile?tenant=demo&id=" in result.output
    frame = pd.read_excel(xlsx, sheet_name="Reconciliation")
    assert sorted(frame["your_ref"]) == ["CLI-1", "CLI-HELD"]
    assert sorted(pd.read_csv(csv)["category"]) == ["in JAGGAER only", "matched"]

    bad = CliRunner().invoke(app, ["reconcile", "--tenant", "demo", "--division", "999", "--from", day, "--to", day])
    assert bad.exit_code == 2 and "has no Exact division 999" in bad.output


def test_an_entry_re_dated_in_exact_is_a_date_difference(sqlite_world: World) -> None:
    from datetime import UTC, datetime, time, timedelta

    w = sqlite_world
    w.invoice(supplier_invoice_number="DATE-1", lines=[{"unit_price": "11.00"}])
    assert w.run()["counts"]["posted"] == 1
    [entry] = w.entries_for("DATE-1")
    next_day = datetime.combine(w.day + timedelta(days=1), time(0), tzinfo=UTC)
    w.exact.edit_entry(entry["EntryID"], EntryDate=int(next_day.timestamp() * 1000))
    ctx = w.ctx()
    out = reconcile(
        w.tenant,
        DIV_MFG,
        Period(w.day, w.day + timedelta(days=1)),
        engine=w.engine,
        exact_hook=ctx.exact_hook(),
        jaggaer_hook=ctx.jaggaer_hook(),
        trigger="test",
        alert=False,
    )
    [row] = _rows(out.id, w)
    assert row["category"] == rc.DIFFERS and out.counts[rc.DIFFERS] == 1
    assert row["note"] == f"date: JAGGAER {w.day.isoformat()}, Exact {(w.day + timedelta(days=1)).isoformat()}"
    # reconciled over the invoice's day only, the re-dated entry is outside: the ledger says it was posted
    only_day = reconcile(
        w.tenant,
        DIV_MFG,
        Period(w.day, w.day),
        engine=w.engine,
        exact_hook=ctx.exact_hook(),
        jaggaer_hook=ctx.jaggaer_hook(),
        trigger="test",
        alert=False,
    )
    assert only_day.counts[rc.POSTED_MISSING] == 1 and only_day.off == 1
