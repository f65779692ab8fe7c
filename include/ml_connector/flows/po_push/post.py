"""Post: one ``POXMLImport`` per order, each order's effect exactly once.

For every ``pending`` order of the division, and every order left in ``posting`` by an earlier attempt:

1. decide the action: ``cancel`` (``OrderStatus`` 40 or deleted in Exact; only when it was sent before — never
   sent ⇒ ``skipped``), ``update`` (it was posted before), or ``new``;
2. the PONumber: the one the order already has in JAGGAER (``target_ref``, or for an order left in ``posting`` the
   PONumber its last attempt carried), else ``po_push.po_number_format``. When another order of the tenant holds
   that PONumber in the ledger, nothing is sent and the order is ``failed`` with a reason naming both (sending would
   change the other order's PO);
3. ``ledger.begin_post`` commits ``posting`` *before* anything is sent;
4. send; the hook writes one audit row per attempt (tenant, division, Exact PurchaseOrderID as ``source_id``,
   OrderNumber as ``source_ref``, PONumber as ``target_ref``, HTTP status, outcome, JAGGAER's message);
5. ``ledger.finish``: ``posted`` / ``cancelled`` with ``target_ref`` = PONumber, or ``failed`` with JAGGAER's
   message when it refused (not retried blindly: replayed when the order changes or an admin requeues it).

An ambiguous outcome (connection dropped after sending, no readable answer, still rate limited) leaves the order in
``posting`` and counts it ``ambiguous``: the next attempt resends, which is safe because JAGGAER keys POs on
``PONumber`` — a ``new`` that finds "PONumber already exists" for an order *we* had in ``posting`` is a success (and
is followed by one ``update`` carrying the current data, in case the order changed meanwhile) **unless another order
of the tenant holds that PONumber or sent an import with it that was accepted or ended unknown** (ledger and audit
log, read fresh): then the PO may be the other order's, and the order is ``failed`` with a reason instead of
overwriting it. An ``update`` or ``cancel`` sent twice leaves the same result. Residual risk (docs/po-push.md): a PO
created by *another system* with the same PONumber while our ``new`` was in doubt cannot be told from ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from ml_connector.errors import AmbiguousWriteError, ConfigError, TransientError
from ml_connector.flows.po_push import batches, model
from ml_connector.flows.po_push.validate import check_order, line_accounting, po_number, quarantine_reason
from ml_connector.flows.po_push.vendors import known_links, supplier_number_of
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.store import ledger
from ml_connector.store.audit import deferred, take_deferred
from ml_connector.store.db import session_scope
from ml_connector.store.lease import LeaseBusy, LeaseLost, PostingLease
from ml_connector.store.models import AuditLog, LedgerEntry

FLOW = "po_push"
#: The posting lease's scope: JAGGAER PO writes are exclusive per tenant (all divisions' post stages share it).
LEASE_SCOPE = "jaggaer"


def build_order(
    ctx: FlowContext, payload: dict[str, Any], action: str, supplier_number: str, *, number: str | None = None
) -> Any:
    """The ``jaggaer.xml.PurchaseOrder`` for an order (a cancel carries the header only). ``number``: the PONumber
    to use (the one the order already has in JAGGAER, :func:`known_po_number`); default: from the current
    ``po_push.po_number_format``."""
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
        po_number=number or po_number(ctx.tenant, payload),
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


# --------------------------------------------------------------------------------------------------- PONumbers
#: Audit actions of the PO imports (``_send``); their ``target_ref`` is the PONumber sent.
PO_ACTIONS = ("po_new", "po_update", "po_cancel")
#: Outcomes of an import attempt after which the PO may be that order's: it was accepted, or nobody knows.
MAYBE_CREATED = ("ok", "ambiguous")
#: How a claim made by this run's own send is described (``Claim.how``).
SENT_IT = "sent it"


@dataclass(frozen=True)
class Claim:
    """Another order of the tenant that has, or may have, a PONumber."""

    source_id: str
    source_ref: str | None
    division: int | None
    how: str  # what makes it a claim, in words

    def describe(self) -> str:
        where = f" of division {self.division}" if self.division is not None else ""
        return f"order {self.source_ref or '?'}{where} (Exact PurchaseOrderID {self.source_id}) {self.how}"


def known_po_number(ctx: FlowContext, entry: LedgerEntry) -> str | None:
    """The PONumber the order already has (or may have) in JAGGAER, which updates, cancels and resends must keep
    using even when ``po_push.po_number_format`` changed since: ``entry.target_ref`` once a PO was confirmed; for an
    order left in ``posting`` without one, the PONumber its latest import attempt carried (its audit rows).
    ``None`` when nothing was sent yet."""
    if entry.target_ref:
        return entry.target_ref
    if entry.state != "posting":
        return None
    with session_scope(ctx.engine) as session:
        return session.scalar(
            select(AuditLog.target_ref)
            .where(
                AuditLog.tenant == ctx.tenant.name,
                AuditLog.flow == FLOW,
                AuditLog.source_id == entry.source_id,
                AuditLog.action.in_(PO_ACTIONS),
                AuditLog.target_ref.is_not(None),
            )
            .order_by(AuditLog.id.desc())
            .limit(1)
        )


def po_number_owners(ctx: FlowContext, numbers: set[str]) -> dict[str, list[Claim]]:
    """``{PONumber: [claims]}``: the orders of the tenant whose ledger entry holds one of ``numbers`` as
    ``target_ref`` (their PO in JAGGAER). One query per 500 numbers."""
    out: dict[str, list[Claim]] = {}
    wanted = sorted(n for n in numbers if n)
    with session_scope(ctx.engine) as session:
        for start in range(0, len(wanted), 500):
            rows = session.execute(
                select(
                    LedgerEntry.target_ref,
                    LedgerEntry.source_id,
                    LedgerEntry.source_ref,
                    LedgerEntry.division,
                    LedgerEntry.state,
                ).where(
                    LedgerEntry.tenant == ctx.tenant.name,
                    LedgerEntry.flow == FLOW,
                    LedgerEntry.target_ref.in_(wanted[start : start + 500]),
                )
            ).all()
            for number, source_id, source_ref, division, state in rows:
                how = f"holds it in the ledger (state {state})"
                out.setdefault(str(number), []).append(Claim(source_id, source_ref, division, how))
    return out


def _claims_by_others(ctx: FlowContext, entry: LedgerEntry, number: str) -> list[Claim]:
    """Every sign that another order of the tenant created, or may have created, PO ``number``: it holds it in the
    ledger, or one of its imports with that PONumber was accepted or ended with an unknown outcome (audit log).
    Read fresh; used before "already exists" is taken as our own earlier attempt having arrived."""
    claims = [c for c in po_number_owners(ctx, {number}).get(number, []) if c.source_id != entry.source_id]
    seen = {c.source_id for c in claims}
    with session_scope(ctx.engine) as session:
        rows = session.execute(
            select(AuditLog.source_id, AuditLog.source_ref, AuditLog.division, AuditLog.action, AuditLog.outcome)
            .where(
                AuditLog.tenant == ctx.tenant.name,
                AuditLog.flow == FLOW,
                AuditLog.target_ref == number,
                AuditLog.action.in_(PO_ACTIONS),
                AuditLog.outcome.in_(MAYBE_CREATED),
                AuditLog.source_id.is_not(None),
                AuditLog.source_id != entry.source_id,
            )
            .order_by(AuditLog.id)
        ).all()
    for source_id, source_ref, division, action, outcome in rows:
        if source_id in seen:
            continue
        seen.add(source_id)
        what = "was accepted" if outcome == "ok" else "has an unknown outcome"
        claims.append(Claim(source_id, source_ref, division, f"sent it too ({action} {what})"))
    return claims


def _conflict_reason(ctx: FlowContext, ref: str, entry: LedgerEntry, number: str, claims: list[Claim]) -> str:
    others = "; ".join(c.describe() for c in claims[:3]) + (f" and {len(claims) - 3} more" if len(claims) > 3 else "")
    return (
        f"order {ref}: JAGGAER PONumber {number} is not known to be this order's: {others}. Nothing was sent that "
        f"could overwrite it. Two orders map to one PONumber: check the PO in JAGGAER, make tenant "
        f"{ctx.tenant.name} po_push.po_number_format unique per order (with {{division}} when several divisions "
        f"push POs), then requeue this order (mlc ledger requeue --tenant {ctx.tenant.name} --flow {FLOW} "
        f"{entry.source_id})"
    )


def _supplier_numbers(
    ctx: FlowContext, division: int, payloads: list[dict[str, Any]], cache: dict[str, str | None]
) -> dict[str, str | None]:
    """Fill ``cache`` (``{supplier GUID: JAGGAER supplier number or None}``) for the suppliers of ``payloads`` it
    does not know yet (one query)."""
    ids = sorted({p["supplier_id"] for p in payloads if p.get("supplier_id")} - set(cache))
    if not ids:
        return cache
    with session_scope(ctx.engine) as session:
        rows = known_links(session, ctx.tenant.name, division, ids)
        for account_id in ids:
            row = rows.get(account_id)
            cache[account_id] = (supplier_number_of(row) if row.active else None) if row is not None else None
    return cache


def post(ctx: FlowContext) -> Outcomes:
    """Send the division's pending (and ambiguous) orders to JAGGAER (module docstring)."""
    if ctx.division is None:
        raise ValueError("post needs a division")
    outcomes = Outcomes()
    if ctx.dry_run:
        return outcomes
    division = ctx.division
    if not batches.open_ids(ctx, POST_STATES, division):
        return outcomes
    cfg = ctx.jaggaer_hook().config  # connection problems fail the task here, before anything is marked posting
    if not cfg.xml_identity or not cfg.xml_shared_secret:
        raise ConfigError(
            f"connection {ctx.tenant.jaggaer.conn_id!r}: xml_identity and xml_shared_secret are needed to import POs"
        )
    # one post stage writes the tenant's POs to JAGGAER at a time (store.lease), whatever Airflow's pools do
    lease = ctx.posting_lease(LEASE_SCOPE)
    try:
        lease.acquire()
    except LeaseBusy as busy:
        ctx.logger.warning("%s", busy)
        outcomes.add("busy", f"division {division}", detail=str(busy))
        outcomes.add("not_sent", n=len(batches.open_ids(ctx, POST_STATES, division)))
        return outcomes
    lease.start_heartbeat()
    try:
        # listed again under the lease: what a stage that held it before left is seen as it is now
        ids = batches.open_ids(ctx, POST_STATES, division)
        numbers: dict[str, str | None] = {}  # supplier GUID -> JAGGAER supplier number, read per chunk as needed
        carried: dict[str, list[Claim]] = {}  # PONumbers this run sent that the ledger does not show as held yet
        done = 0
        for chunk in batches.chunks(ids):
            items = _load_chunk(ctx, chunk)
            _supplier_numbers(ctx, division, [p for _, p in items], numbers)
            # PONumbers already held by orders of the tenant, read once per chunk; a number found nowhere is known to
            # be free (an empty list), so no order asks again (the run's own claims are added as orders are sent)
            provisional = {p for p in (_provisional_number(ctx, e, p) for e, p in items) if p}
            owners = po_number_owners(ctx, provisional)
            for number in provisional:
                owners.setdefault(number, [])
            for number, claims in carried.items():
                owners.setdefault(number, []).extend(claims)
            for entry, payload in items:
                lease.check()  # a stage that was frozen past its lease stops here
                with deferred(ctx.audit):  # each import's audit row is committed with its outcome
                    _post_one(ctx, division, entry, payload, numbers, owners, outcomes, lease)
                done += 1
            carried = _unrecorded_claims(ctx, chunk, owners)
    except LeaseLost as lost:
        ctx.logger.error("%s", lost)
        outcomes.add("lease_lost", f"division {division}", detail=str(lost))
        outcomes.add("not_sent", n=len(ids) - done)
    finally:
        lease.release()
    return outcomes


#: The states of the orders a post stage sends: pending, and posting left by an earlier attempt.
POST_STATES = ("pending", "posting")


def _load_chunk(ctx: FlowContext, ids: list[int]) -> list[tuple[LedgerEntry, dict[str, Any]]]:
    """A chunk of the division's orders to send (still pending or posting) with their staged payloads, entries
    expunged. Every decision taken from them is guarded by the state and version read here
    (``ledger.begin_post`` / ``finish(expect_state=, expect_hash=)``): one fewer transaction per order."""
    with session_scope(ctx.engine) as session:
        rows = batches.load_chunk(session, ctx, POST_STATES, ids)
        for e, _ in rows:
            session.expunge(e)
    return rows


def _unrecorded_claims(ctx: FlowContext, ids: list[int], owners: dict[str, list[Claim]]) -> dict[str, list[Claim]]:
    """The claims this chunk's orders made (``sent it``) that the ledger does not hold as their ``target_ref``
    (ambiguous or refused attempts): later chunks must still treat those PONumbers as taken. A PONumber the ledger
    holds is found again by the next chunk's look-up, so it need not stay in memory."""
    mine = {(c.source_id, n) for n, claims in owners.items() for c in claims if c.how == SENT_IT}
    if not mine:
        return {}
    with session_scope(ctx.engine) as session:
        recorded = set(
            session.execute(
                select(LedgerEntry.source_id, LedgerEntry.target_ref).where(
                    LedgerEntry.id.in_(ids), LedgerEntry.target_ref.is_not(None)
                )
            ).all()
        )
    out: dict[str, list[Claim]] = {}
    for number, claims in owners.items():
        for c in claims:
            if c.how == SENT_IT and (c.source_id, number) not in recorded:
                out.setdefault(number, []).append(c)
    return out


def _provisional_number(ctx: FlowContext, entry: LedgerEntry, payload: dict[str, Any]) -> str | None:
    try:
        return entry.target_ref or po_number(ctx.tenant, payload)
    except ConfigError:
        return None


def _post_one(
    ctx: FlowContext,
    division: int,
    entry: LedgerEntry,
    payload: dict[str, Any],
    numbers: dict[str, str | None],
    owners: dict[str, list[Claim]],
    outcomes: Outcomes,
    lease: PostingLease | None = None,
) -> None:
    engine, run_id, entry_id = ctx.engine, ctx.run_id, entry.id
    # decisions before the import are recorded only if the order is still as read with the batch
    read_as = {"expect_state": entry.state, "expect_hash": entry.staged_hash}
    ref = entry.source_ref or model.order_ref(payload)

    def settle(state: str, reason: str, *, target_ref: str | None = None, guarded: bool = False) -> None:
        """Record an outcome reached without a successful import, with the attempt's audit rows, and count it.
        ``guarded``: a decision taken from the batch's read, recorded (and counted) only if the order is unchanged."""
        done = ledger.finish(
            engine, entry_id, state, reason=reason, target_ref=target_ref, run_id=run_id, lease=lease,
            audit_events=take_deferred(ctx.audit), **(read_as if guarded else {}),
        )  # fmt: skip
        if done or not guarded:
            outcomes.add(state, ref, detail=reason)

    action, skip_reason = decide_action(ctx, entry, payload)
    if action == "skip":
        settle("skipped", f"order {ref}: {skip_reason}", guarded=True)
        return
    problems = check_order(ctx.tenant, payload)
    if problems:
        reason = quarantine_reason(payload, problems)
        if entry.state == "posting":
            # sent before with an unknown outcome: it must be resolved, not parked; a person has to look
            outcomes.add("failed", ref, detail=f"{reason} (left in posting: an earlier attempt's outcome is unknown)")
            return
        settle("quarantined", reason, guarded=True)
        return
    supplier_number = numbers.get(payload.get("supplier_id") or "")
    if supplier_number is None and action == "cancel":
        supplier_number = model.unpadded(payload.get("supplier_code")) or "-"
    if supplier_number is None:
        who = payload.get("supplier_code") or payload.get("supplier_id")
        reason = f"order {ref}: supplier {who} is not mapped to a JAGGAER supplier yet"
        if entry.state == "pending" and not ledger.finish(
            engine,
            entry_id,
            "held",
            reason=reason,
            run_id=run_id,
            lease=lease,
            audit_events=take_deferred(ctx.audit),
            **read_as,
        ):
            return  # changed meanwhile
        outcomes.add("held", ref, detail=reason)
        return
    # The PONumber: the one the order already has in JAGGAER (updates, cancels, resends), else from the format.
    number = known_po_number(ctx, entry) or po_number(ctx.tenant, payload)
    if number not in owners:  # not among the batch's provisional numbers (a resend keeps its earlier PONumber)
        owners[number] = po_number_owners(ctx, {number}).get(number, [])
    taken = [c for c in owners.get(number, []) if c.source_id != entry.source_id]
    if taken:
        # Another order holds this PONumber: sending would update (or cancel) *its* PO in JAGGAER.
        settle("failed", _conflict_reason(ctx, ref, entry, number, taken), guarded=True)
        return
    order = build_order(ctx, payload, action, supplier_number, number=number)

    try:
        entry, was_posting = ledger.begin_post(
            engine,
            entry_id,
            run_id,
            states=(entry.state,),
            staged_hash=entry.staged_hash,
            target={"po_number": number},
            division=division,
            lease=lease,
        )
    except ledger.StateChanged as exc:  # another run or stage moved the order meanwhile: it is theirs now
        outcomes.add("unchanged", ref, detail=f"order {ref}: skipped, it changed meanwhile ({exc.state})")
        return
    # from here on the PONumber is (or may be) this order's: later orders of the batch must not take it
    owners.setdefault(number, []).append(Claim(entry.source_id, entry.source_ref, entry.division, SENT_IT))
    result = _send(ctx, division, entry, order, outcomes, ref, lease)
    if result is None:
        return  # ambiguous: left in posting
    if result.ok:
        state = "cancelled" if action == "cancel" else "posted"
        ledger.finish(
            engine, entry_id, state, target_ref=order.po_number, target_id=result.target_id, run_id=run_id, lease=lease,
            reason=f"JAGGAER PO {order.po_number}: {action} accepted", audit_events=take_deferred(ctx.audit),
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
            settle("failed", reason)
            return
        claims = _claims_by_others(ctx, entry, order.po_number)
        if claims:
            # The PO may be another order's (two orders on one PONumber): an update would overwrite it.
            settle("failed", _conflict_reason(ctx, ref, entry, order.po_number, claims))
            return
        # Our earlier attempt arrived. Send the current data once as an update (the order may have changed since).
        order.action = "update"
        if lease is not None:
            lease.renew()  # fenced below: a stage that lost its lease sends no follow-up
        follow = _send(ctx, division, entry, order, outcomes, ref, lease)
        if follow is None:
            return
        if not follow.ok:
            reason = f"order {ref}: PO {order.po_number} exists; the follow-up update was refused: {follow.summary()}"
            settle("failed", reason, target_ref=order.po_number)
            return
        ledger.finish(
            engine, entry_id, "posted", target_ref=order.po_number, target_id=follow.target_id, run_id=run_id,
            lease=lease, reason=f"JAGGAER PO {order.po_number}: an earlier attempt had arrived; recovered",
            audit_events=take_deferred(ctx.audit),
        )  # fmt: skip
        outcomes.add("posted", ref, detail=f"order {ref}: PO {order.po_number} recovered after an ambiguous attempt")
        return
    if action == "cancel" and entry.posted_hash is None:
        # The PO was never confirmed created, and JAGGAER refuses to cancel it: it never arrived.
        settle("skipped", f"order {ref}: nothing to cancel in JAGGAER ({result.summary()})")
        return
    settle(
        "failed",
        f"order {ref}: JAGGAER refused PO {order.po_number} ({action}): {result.summary()}",
        target_ref=entry.target_ref,
    )


def _send(
    ctx: FlowContext,
    division: int,
    entry: LedgerEntry,
    order: Any,
    outcomes: Outcomes,
    ref: str,
    lease: PostingLease | None = None,
) -> Any:
    """One import; ``None`` (and the entry left in ``posting``) when the outcome is unknown. Nothing leaves once
    the stage's posting lease is lost (``LeaseLost``)."""
    if lease is not None:
        lease.check()
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
