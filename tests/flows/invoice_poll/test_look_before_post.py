"""Look before the first POST: an invoice already keyed by hand in Exact (created through the Exact sandbox's API
before the post stage runs) is recorded as found in Exact and not posted; a same-YourRef entry with another amount is
held for a person with both amounts; the look-up is one batched read, whatever the number of invoices."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

from invoice_poll_support import DIV_MFG, World

from ml_connector.flows import invoice_poll as ip
from ml_connector.flows.invoice_poll.build import plan_entry
from ml_connector.flows.invoice_poll.common import INVOICE_ENDPOINT
from ml_connector.flows.invoice_poll.invoice import parse_invoice
from ml_connector.flows.invoice_poll.master import MasterData
from ml_connector.flows.invoice_poll.post import LOOK_HELD_PREFIX, _vendor
from ml_connector.mappings.codes import CodeRules
from ml_connector.mappings.vendors import find_link
from ml_connector.store import ledger
from ml_connector.store.db import session_scope


def _day(epoch_ms: int) -> date:
    """An entry date as the sandbox's admin view gives it (epoch milliseconds, UTC)."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).date()


def _posts(w: World) -> list[dict[str, Any]]:
    return [c for c in w.exact.calls()["log"] if c["method"] == "POST" and c["path"].endswith("/PurchaseEntries")]


def _looks(w: World) -> list[dict[str, Any]]:
    return [c for c in w.exact.calls()["log"] if c["method"] == "GET" and c["path"].endswith("/PurchaseEntries")]


def _planned_body(w: World, ctx: Any, master: dict[str, Any], invoice_id: str) -> tuple[dict[str, Any], Any]:
    """The purchase entry the connector would post for the invoice (body, planned)."""
    with session_scope(w.engine) as s:
        entry = ledger.get_entry(s, "demo", ip.FLOW, invoice_id)
        payload = ledger.staged_payload(s, entry)
        link = find_link(s, "demo", DIV_MFG, _vendor(payload))
        rules = CodeRules.load(s, ctx.tenant)
    planned = plan_entry(
        parse_invoice(payload),
        division=DIV_MFG,
        supplier_id=link.exact_account_id,
        rules=rules,
        master=MasterData.from_dict(master),
    )
    return copy.deepcopy(planned.body()), planned


def _key_by_hand(
    w: World, ctx: Any, master: dict[str, Any], invoice_id: str, *, factor: float = 1.0, shift_days: int = 0
) -> dict:
    """Key the invoice into Exact by hand (no JAGGAER reference), via the sandbox API; amounts times ``factor``."""
    body, planned = _planned_body(w, ctx, master, invoice_id)
    body.pop("ExternalLinkReference")
    body["Description"] = "keyed by accounts payable"
    body["EntryDate"] = f"{(planned.entry_date + timedelta(days=shift_days)).isoformat()}T00:00:00"
    for line in body["PurchaseEntryLines"]:
        line["AmountFC"] = round(line["AmountFC"] * factor, 2)
        line["VATAmountFC"] = round(line["VATAmountFC"] * factor, 2)
    audit_ctx = ctx.audit_ctx("test_keyed_by_hand", division=DIV_MFG)
    return ctx.exact_hook().post(DIV_MFG, INVOICE_ENDPOINT, body, audit_ctx=audit_ctx)


def test_an_invoice_keyed_by_hand_is_found_and_one_with_another_amount_is_held(sqlite_world: World) -> None:
    w = sqlite_world
    same = w.invoice(hour=8, supplier_invoice_number="LOOK-SAME", lines=[{"unit_price": "10.00"}])
    other = w.invoice(hour=9, supplier_invoice_number="LOOK-DIFF", lines=[{"unit_price": "20.00"}])
    w.invoice(hour=10, supplier_invoice_number="LOOK-NEW", lines=[{"unit_price": "30.00"}])
    ctx = w.ctx()
    ip.extract(ctx)
    dctx = ctx.for_division(DIV_MFG)
    ip.map_vendors(dctx)
    master = ip.validate(dctx)["master"]
    same_id, other_id = same["summary"]["invoiceId"], other["summary"]["invoiceId"]
    keyed = _key_by_hand(w, dctx, master, str(same_id))
    _key_by_hand(w, dctx, master, str(other_id), factor=2.0)
    w.clear_calls()

    out = ip.post(dctx, master)

    assert len(_posts(w)) == 1 and len(w.entries_for("LOOK-NEW")) == 1  # only the new invoice was sent
    assert len(_looks(w)) == 1  # one batched look-up for the whole batch
    assert len(w.entries_for("LOOK-SAME")) == 1 and len(w.entries_for("LOOK-DIFF")) == 1
    assert out.counts["found_in_exact"] == 1 and out.counts["held"] == 1 and out.counts["posted"] == 1

    found = w.ledger(same_id)
    assert found.state == "posted" and found.target_id == keyed["EntryID"]
    assert "already in Exact" in found.reason and keyed["EntryID"] in found.reason
    [row] = [r for r in w.audit(same_id) if r.action == "state:posted"]
    assert row.target_id == keyed["EntryID"] and keyed["EntryID"] in row.message

    held = w.ledger(other_id)
    assert held.state == "held" and held.reason.startswith(LOOK_HELD_PREFIX)
    assert "24.0" in held.reason and "48.0" in held.reason  # both amounts (incl. 20 % VAT)
    assert f"mlc ledger requeue --tenant demo --flow invoice_poll {other_id}" in held.reason
    assert any(LOOK_HELD_PREFIX in d for d in out.details)

    # a person decides the Exact entry is another invoice: requeued, it is posted without looking again
    w.clear_calls()
    assert ledger.requeue(w.engine, "demo", ip.FLOW, [str(other_id)], by="mlc ledger requeue") == 1
    again = ip.post(dctx, master)
    assert again.counts["posted"] == 1 and len(_posts(w)) == 1
    assert len(w.entries_for("LOOK-DIFF")) == 2
    assert w.ledger(other_id).state == "posted"


def test_a_same_ref_entry_of_another_date_is_held_with_both_dates(sqlite_world: World) -> None:
    w = sqlite_world
    inv = w.invoice(hour=8, supplier_invoice_number="LOOK-DATE", lines=[{"unit_price": "10.00"}])
    ctx = w.ctx()
    ip.extract(ctx)
    dctx = ctx.for_division(DIV_MFG)
    ip.map_vendors(dctx)
    master = ip.validate(dctx)["master"]
    invoice_id = str(inv["summary"]["invoiceId"])
    _key_by_hand(w, dctx, master, invoice_id, shift_days=7)  # same amount, keyed a week after the invoice date
    w.clear_calls()

    out = ip.post(dctx, master)

    assert len(_posts(w)) == 0 and out.counts["held"] == 1
    reason = w.ledger(invoice_id).reason
    assert w.ledger(invoice_id).state == "held" and reason.startswith(LOOK_HELD_PREFIX)
    assert w.day.isoformat() in reason and (w.day + timedelta(days=7)).isoformat() in reason


def test_the_look_up_pages_through_the_suppliers_entries_within_the_call_budget(sqlite_world: World) -> None:
    """E > 60: the batched look-up reads ceil(E/60) pages; Exact calls <= N + ceil(E/60) + master-data pages + 3."""
    import math

    w = sqlite_world
    n = 3
    invoices = [
        w.invoice(hour=8 + i, supplier_invoice_number=f"PAGE-{i}", lines=[{"unit_price": f"{10 + i}.00"}])
        for i in range(n)
    ]
    ctx = w.ctx()
    ip.extract(ctx)
    dctx = ctx.for_division(DIV_MFG)
    ip.map_vendors(dctx)
    master = ip.validate(dctx)["master"]
    # 70 earlier entries of the same supplier keyed by hand (other supplier invoice numbers), through the API
    first = str(invoices[0]["summary"]["invoiceId"])
    _key_by_hand(w, dctx, master, first, factor=3.0)
    body, _ = _planned_body(w, dctx, master, first)
    body.pop("ExternalLinkReference")
    hook = dctx.exact_hook()
    for k in range(69):
        hook.post(
            DIV_MFG,
            INVOICE_ENDPOINT,
            {**body, "YourRef": f"OLD-{k}", "Description": "older invoice"},
            audit_ctx=dctx.audit_ctx("test_keyed_by_hand", division=DIV_MFG),
        )
    supplier = body["Supplier"]
    since = w.day - timedelta(days=31)
    e_read = len([e for e in w.entries(DIV_MFG) if e["Supplier"] == supplier and _day(e["EntryDate"]) >= since])
    assert e_read > 60
    w.clear_calls()

    out = ip.post(dctx)  # master data read again by post: counted as master-data pages

    assert out.counts["posted"] == n - 1 and out.counts["held"] == 1  # PAGE-0 was keyed with another amount
    by_endpoint = w.exact.calls()["by_endpoint"]
    looks = by_endpoint.get("GET /api/v1/{division}/purchaseentry/PurchaseEntries", 0)
    assert looks == math.ceil(e_read / 60)
    master_pages = sum(v for k, v in by_endpoint.items() if k.startswith("GET ") and "PurchaseEntries" not in k)
    assert w.exact_calls() <= n + math.ceil(e_read / 60) + master_pages + 3
