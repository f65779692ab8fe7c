"""Post: one ``POXMLImport`` per order, each order's effect exactly once.

For every ``pending`` order of the division, and every order left in ``posting`` by an earlier attempt:

1. decide the action: ``cancel`` (``OrderStatus`` 40 or deleted in Exact; only when it was sent before — never
   sent ⇒ ``skipped``), ``update`` (it was posted before), or ``new``;
2. ``ledger.begin_post`` commits ``posting`` *before* anything is sent;
3. send; the hook writes one audit row per attempt (tenant, division, Exact PurchaseOrderID as ``source_id``,
   OrderNumber as ``source_ref``, PONumber as ``target_ref``, HTTP status, outcome, JAGGAER's message);
4. ``ledger.finish``: ``posted`` / ``cancelled`` with ``target_ref`` = PONumber, or ``failed`` with JAGGAER's
   message when it refused (not retried blindly: replayed when the order changes or an admin requeues it).

An ambiguous outcome (connection dropped after sending, no readable answer, still rate limited) leaves the order in
``posting`` and counts it ``ambiguous``: the next attempt resends, which is safe because JAGGAER keys POs on
``PONumber`` — a ``new`` that finds "PONumber already exists" for an order *we* had in ``posting`` is a success (and
is followed by one ``update`` carrying the current data, in case the order changed meanwhile); an ``update`` or
``cancel`` sent twice leaves the same result.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from ml_connector.errors import AmbiguousWriteError, ConfigError, TransientError
from ml_connector.flows.po_push import model
from ml_connector.flows.po_push.validate import check_order, line_accounting, po_number, quarantine_reason
from ml_connector.flows.po_push.vendors import known_links, selected, supplier_number_of
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.store import ledger
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry

FLOW = "po_push"


def build_order(ctx: FlowContext, payload: dict[str, Any], action: str, supplier_number: str) -> Any:
    """The ``jaggaer.xml.PurchaseOrder`` for an order (a cancel carries the header only)."""
    from ml_connector.jaggaer.xml import PoLine, PurchaseOrder

    lines: list[Any] = []
    if action != "cancel":
        for line in payload.get("lines") or []:
            acc = line_accounting(ctx.tenant, line)
            lines.append(
                PoLine(
                    line_number=int(line["line_number"]),
                    description=str(line.get("description") or ""),
                    quantity=model.as_decimal(line.get("quantity")) or Decimal(0),
                    unit_price=model.as_decimal(line.get("unit_price")) or Decimal(0),
                    uom=line.get("unit") or "EA",
                    item_code=line.get("item_code"),
                    gl_account=acc.gl_account,
                    cost_center=acc.cost_center,
                    need_by=model.parse_day(line.get("receipt_date")),
                )
            )
    return PurchaseOrder(
        po_number=po_number(ctx.tenant, payload),
        action=action,  # type: ignore[arg-type]
        supplier_number=supplier_number,
        currency=(payload.get("currency") or "").strip().upper() or "GBP",
        order_date=model.parse_day(payload.get("order_date")) or date.today(),
        lines=lines,
        description=payload.get("description"),
        your_ref=payload.get("your_ref"),
    )


def decide_action(ctx: FlowContext, entry: LedgerEntry, payload: dict[str, Any]) -> tuple[str, str | None]:
    """``(action, reason_to_skip)``: ``new`` | ``update`` | ``cancel``, or ``skip`` with a reason."""
    sent_before = entry.posted_hash is not None or entry.target_ref is not None
    maybe_sent = sent_before or entry.state == "posting"
    if model.is_cancelled(payload):
        why = "deleted" if payload.get("deleted") else "cancelled (OrderStatus 40)"
        if not maybe_sent:
            return "skip", f"{why} in Exact before it was sent to JAGGAER: nothing to cancel"
        if not ctx.tenant.po_push.cancel_in_jaggaer:
            return "skip", f"{why} in Exact; tenant {ctx.tenant.name} po_push.cancel_in_jaggaer is off"
        return "cancel", None
    return ("update" if entry.posted_hash is not None else "new"), None


def _supplier_numbers(ctx: FlowContext, division: int, payloads: list[dict[str, Any]]) -> dict[str, str]:
    ids = sorted({p["supplier_id"] for p in payloads if p.get("supplier_id")})
    with session_scope(ctx.engine) as session:
        rows = known_links(session, ctx.tenant.name, division, ids)
        out: dict[str, str] = {}
        for account_id, row in rows.items():
            number = supplier_number_of(row) if row.active else None
            if number:
                out[account_id] = number
        return out


def post(ctx: FlowContext) -> Outcomes:
    """Send the division's pending (and ambiguous) orders to JAGGAER (module docstring)."""
    if ctx.division is None:
        raise ValueError("post needs a division")
    outcomes = Outcomes()
    if ctx.dry_run:
        return outcomes
    division = ctx.division
    with session_scope(ctx.engine) as session:
        work = selected(
            ctx, ledger.entries(session, ctx.tenant.name, FLOW, states=("pending", "posting"), division=division)
        )
        items = [(e.id, ledger.staged_payload(session, e)) for e in work]
    if not items:
        return outcomes
    cfg = ctx.jaggaer_hook().config  # connection problems fail the task here, before anything is marked posting
    if not cfg.xml_identity or not cfg.xml_shared_secret:
        raise ConfigError(
            f"connection {ctx.tenant.jaggaer.conn_id!r}: xml_identity and xml_shared_secret are needed to import POs"
        )
    numbers = _supplier_numbers(ctx, division, [p for _, p in items])
    for entry_id, payload in items:
        _post_one(ctx, division, entry_id, payload, numbers, outcomes)
    return outcomes


def _current(ctx: FlowContext, entry_id: int) -> LedgerEntry | None:
    with session_scope(ctx.engine) as session:
        entry = session.get(LedgerEntry, entry_id)
        if entry is not None:
            session.expunge(entry)
        return entry


def _post_one(
    ctx: FlowContext,
    division: int,
    entry_id: int,
    payload: dict[str, Any],
    numbers: dict[str, str],
    outcomes: Outcomes,
) -> None:
    engine, run_id = ctx.engine, ctx.run_id
    entry = _current(ctx, entry_id)
    if entry is None or entry.state not in ("pending", "posting"):
        return  # another attempt finished it meanwhile
    ref = entry.source_ref or model.order_ref(payload)
    action, skip_reason = decide_action(ctx, entry, payload)
    if action == "skip":
        ledger.finish(engine, entry_id, "skipped", reason=f"order {ref}: {skip_reason}", run_id=run_id)
        outcomes.add("skipped", ref, detail=f"order {ref}: {skip_reason}")
        return
    problems = check_order(ctx.tenant, payload)
    if problems:
        reason = quarantine_reason(payload, problems)
        if entry.state == "posting":
            # sent before with an unknown outcome: it must be resolved, not parked; a person has to look
            outcomes.add("failed", ref, detail=f"{reason} (left in posting: an earlier attempt's outcome is unknown)")
            return
        ledger.finish(engine, entry_id, "quarantined", reason=reason, run_id=run_id)
        outcomes.add("quarantined", ref, detail=reason)
        return
    supplier_number = numbers.get(payload.get("supplier_id") or "")
    if supplier_number is None and action == "cancel":
        supplier_number = model.unpadded(payload.get("supplier_code")) or "-"
    if supplier_number is None:
        who = payload.get("supplier_code") or payload.get("supplier_id")
        reason = f"order {ref}: supplier {who} is not mapped to a JAGGAER supplier yet"
        if entry.state == "pending":
            ledger.finish(engine, entry_id, "held", reason=reason, run_id=run_id)
        outcomes.add("held", ref, detail=reason)
        return
    order = build_order(ctx, payload, action, supplier_number)

    entry, was_posting = ledger.begin_post(engine, entry_id, run_id)
    result = _send(ctx, division, entry, order, outcomes, ref)
    if result is None:
        return  # ambiguous: left in posting
    if result.ok:
        state = "cancelled" if action == "cancel" else "posted"
        ledger.finish(
            engine, entry_id, state, target_ref=order.po_number, target_id=result.target_id, run_id=run_id,
            reason=f"JAGGAER PO {order.po_number}: {action} accepted",
        )  # fmt: skip
        outcomes.add({"new": "posted", "update": "updated", "cancel": "cancelled"}[action], ref)
        return
    if result.already_exists and action == "new":
        if not was_posting:
            reason = (
                f"order {ref}: JAGGAER already has PONumber {order.po_number}, but this connector has no record of "
                "sending it (another system, or a reset ledger?). Check the PO in JAGGAER; requeue the order once "
                "it is safe to overwrite it with an update."
            )
            ledger.finish(engine, entry_id, "failed", reason=reason, run_id=run_id)
            outcomes.add("failed", ref, detail=reason)
            return
        # Our earlier attempt arrived. Send the current data once as an update (the order may have changed since).
        order.action = "update"
        follow = _send(ctx, division, entry, order, outcomes, ref)
        if follow is None:
            return
        if not follow.ok:
            reason = f"order {ref}: PO {order.po_number} exists; the follow-up update was refused: {follow.summary()}"
            ledger.finish(engine, entry_id, "failed", reason=reason, target_ref=order.po_number, run_id=run_id)
            outcomes.add("failed", ref, detail=reason)
            return
        ledger.finish(
            engine, entry_id, "posted", target_ref=order.po_number, target_id=follow.target_id, run_id=run_id,
            reason=f"JAGGAER PO {order.po_number}: an earlier attempt had arrived; recovered",
        )  # fmt: skip
        outcomes.add("posted", ref, detail=f"order {ref}: PO {order.po_number} recovered after an ambiguous attempt")
        return
    if action == "cancel" and entry.posted_hash is None:
        # The PO was never confirmed created, and JAGGAER refuses to cancel it: it never arrived.
        reason = f"order {ref}: nothing to cancel in JAGGAER ({result.summary()})"
        ledger.finish(engine, entry_id, "skipped", reason=reason, run_id=run_id)
        outcomes.add("skipped", ref, detail=reason)
        return
    reason = f"order {ref}: JAGGAER refused PO {order.po_number} ({action}): {result.summary()}"
    ledger.finish(engine, entry_id, "failed", reason=reason, target_ref=entry.target_ref, run_id=run_id)
    outcomes.add("failed", ref, detail=reason)


def _send(ctx: FlowContext, division: int, entry: LedgerEntry, order: Any, outcomes: Outcomes, ref: str) -> Any:
    """One import; ``None`` (and the entry left in ``posting``) when the outcome is unknown."""
    audit_ctx = ctx.audit_ctx(
        f"po_{order.action}",
        division=division,
        source_id=entry.source_id,
        source_ref=entry.source_ref,
        target_ref=order.po_number,
    )
    try:
        return ctx.jaggaer_hook().import_po(order, audit_ctx=audit_ctx)
    except (AmbiguousWriteError, TransientError) as exc:
        outcomes.add(
            "ambiguous",
            ref,
            detail=f"order {ref}: PO {order.po_number} ({order.action}) outcome unknown ({exc}); "
            "left in posting, the next attempt resolves it",
        )
        return None
