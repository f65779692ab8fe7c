"""Dry run: what a run would send, logged, with nothing sent and no ledger state changed.

Reads Exact the way the run would (by order numbers, by window, or from the cursor — which does not move), then for
each order logs the action it would get (new / update / cancel / skip / unchanged), the suppliers that would be
created in JAGGAER, the problems that would quarantine it, and the ``PurchaseOrderMessage`` XML it would send with
the ``SharedSecret`` redacted. Counts use ``would_*`` outcomes, so the report neither alerts nor fails.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ml_connector.flows.po_push import model
from ml_connector.flows.po_push.extract import (
    CURSOR_START,
    ItemGroups,
    SyncRead,
    cursor_scope,
    deleted_cursor_scope,
    order_numbers,
    read_by_numbers,
    read_deleted,
    read_window,
)
from ml_connector.flows.po_push.post import build_order, decide_action
from ml_connector.flows.po_push.validate import check_order
from ml_connector.flows.po_push.vendors import resolve_suppliers, selected, wanted_suppliers
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.store import ledger
from ml_connector.store.cursors import get_cursor
from ml_connector.store.db import session_scope

FLOW = "po_push"


def _read(ctx: FlowContext, division: int) -> list[dict[str, Any]]:
    tenant = ctx.tenant.name
    if ctx.params.ids:
        return list(read_by_numbers(ctx, division, order_numbers(ctx)))
    if ctx.window is not None:
        return list(read_window(ctx, division))
    with session_scope(ctx.engine) as session:
        cursor = int(get_cursor(session, tenant, FLOW, cursor_scope(division)) or CURSOR_START)
        del_cursor = int(get_cursor(session, tenant, FLOW, deleted_cursor_scope(division)) or CURSOR_START)
    orders = list(SyncRead(ctx, division, cursor).orders())
    deleted_ids, _ = read_deleted(ctx, division, del_cursor)
    seen = {o["id"] for o in orders}
    with session_scope(ctx.engine) as session:
        for order_id in deleted_ids:
            entry = ledger.get_entry(session, tenant, FLOW, order_id)
            if entry is not None and order_id not in seen:
                orders.append(model.deleted_payload(ledger.staged_payload(session, entry)))
    return orders


def preview(ctx: FlowContext) -> Outcomes:
    """The dry run of one division (module docstring)."""
    assert ctx.division is not None
    division = ctx.division
    outcomes = Outcomes()
    orders = _read(ctx, division)
    # what earlier runs left open (pending, held, ambiguous) goes out with this run too
    seen = {o.get("id") for o in orders}
    with session_scope(ctx.engine) as session:
        open_entries = ledger.entries(
            session, ctx.tenant.name, FLOW, states=("pending", "held", "posting"), division=division
        )
        for entry in selected(ctx, open_entries):
            if entry.source_id not in seen:
                orders.append(ledger.staged_payload(session, entry))
    ItemGroups(ctx, division).enrich(orders)
    resolved = resolve_suppliers(ctx, division, wanted_suppliers(orders), outcomes, create=False)
    hook = ctx.jaggaer_hook()
    from ml_connector.jaggaer.xml import build_po_message, redact

    cfg = hook.config
    identity = cfg.xml_identity or "(xml_identity not set)"
    secret = cfg.xml_shared_secret or "(xml_shared_secret not set)"
    with session_scope(ctx.engine) as session:
        entries = {o["id"]: ledger.get_entry(session, ctx.tenant.name, FLOW, o["id"]) for o in orders if o.get("id")}
        entries = {k: (SimpleNamespace(**_fields(v)) if v is not None else None) for k, v in entries.items()}
    for payload in orders:
        ref = model.order_ref(payload)
        entry = entries.get(payload.get("id"))
        digest = ledger.payload_hash(payload)
        if entry is not None and entry.state in ("posted", "cancelled", "skipped") and entry.staged_hash == digest:
            # (a pending/held/posting entry with the same data is still to be sent: it falls through)
            outcomes.add("unchanged", ref)
            continue
        if entry is not None and entry.state in ("quarantined", "failed") and entry.staged_hash == digest:
            outcomes.add(f"would_stay_{entry.state}", ref, detail=f"order {ref}: {entry.reason}")
            continue
        probe = entry or SimpleNamespace(posted_hash=None, target_ref=None, state="pending")
        action, skip_reason = decide_action(ctx, probe, payload)  # type: ignore[arg-type]
        if action == "skip":
            outcomes.add("would_skip", ref, detail=f"order {ref}: {skip_reason}")
            continue
        problems = check_order(ctx.tenant, payload)
        if problems:
            outcomes.add("would_quarantine", ref, detail=f"order {ref}: " + "; ".join(problems))
            continue
        res = resolved.get(payload.get("supplier_id") or "")
        if action != "cancel" and (res is None or not res.ok):
            why = res.reason if res is not None else "no supplier"
            outcomes.add("would_hold", ref, detail=f"order {ref}: {why}")
            continue
        number = (res.supplier_number if res is not None else None) or model.unpadded(payload.get("supplier_code"))
        # an order that has a PO in JAGGAER keeps its PONumber (post.known_po_number), whatever the format says now
        order = build_order(ctx, payload, action, number or "-", number=getattr(entry, "target_ref", None))
        xml = build_po_message(
            order, identity, secret, gl_field=cfg.po_gl_field, cost_center_field=cfg.po_cost_center_field
        )
        ctx.logger.info(
            "DRY RUN: would send %s for order %s (POXMLImport):\n%s",
            action,
            ref,
            redact(xml, [s for s in (cfg.xml_shared_secret, cfg.client_secret) if s]),
        )
        outcomes.add({"new": "would_post", "update": "would_update", "cancel": "would_cancel"}[action], ref)
    return outcomes


def _fields(entry: Any) -> dict[str, Any]:
    return {
        "state": entry.state,
        "posted_hash": entry.posted_hash,
        "staged_hash": entry.staged_hash,
        "target_ref": entry.target_ref,
        "reason": entry.reason,
    }
