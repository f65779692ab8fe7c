"""The exactly-once ledger: what has been done with each source record.

States::

    pending ──▶ posting ──▶ posted
       │  ▲        │
       │  └────────┘ (write refused / failed: failed; ambiguous: stays posting)
       ├──▶ held          waiting on a mapping; retried every run
       ├──▶ quarantined   failed validation; retried when its data changes or an admin requeues it
       ├──▶ skipped       policy said so
       └──▶ cancelled

``posting`` is committed *before* the write is sent. A record still in ``posting`` when a later attempt starts
(worker killed, response lost) is ambiguous: the flow must look it up at the target before sending again.
``failed`` means the target refused the write: no post stage picks it up again (the same request would be refused
again); it becomes ``pending`` when the source record changes (:func:`stage`) or an admin requeues it.
State changes made by a run record its id (``last_run_id``): a run's report counts the records it left
``failed`` or ``posting`` (``flows.runtime.left_open``).
Every state change writes an audit row in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog, LedgerEntry, StagedRecord

STATES = ("pending", "held", "quarantined", "posting", "posted", "failed", "skipped", "cancelled")
# States of records not done yet (``failed`` only comes back through a change or a requeue, see above).
WORKABLE = ("pending", "held", "posting", "failed")

StageResult = Literal["new", "changed", "unchanged"]


def payload_hash(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def stage(
    session: Session,
    *,
    tenant: str,
    flow: str,
    source_id: str,
    payload: dict[str, Any],
    source_ref: str | None = None,
    division: int | None = None,
    run_id: str | None = None,
    repost_changed: bool,
) -> StageResult:
    """Keep this version of a record and make the ledger know about it.

    ``repost_changed``: whether a change to a record already posted makes it pending again (a PO update goes to
    JAGGAER again; an invoice edited after posting must not be posted twice, so its change is only audited).
    """
    digest = payload_hash(payload)
    exists = session.scalar(
        select(StagedRecord.id).where(
            StagedRecord.tenant == tenant,
            StagedRecord.flow == flow,
            StagedRecord.source_id == source_id,
            StagedRecord.payload_hash == digest,
        )
    )
    if exists is None:
        session.add(
            StagedRecord(
                tenant=tenant, flow=flow, source_id=source_id, payload_hash=digest, payload=payload, run_id=run_id
            )
        )
    entry = get_entry(session, tenant, flow, source_id)
    if entry is None:
        entry = LedgerEntry(
            tenant=tenant,
            flow=flow,
            source_id=source_id,
            source_ref=source_ref,
            division=division,
            state="pending",
            staged_hash=digest,
            last_run_id=run_id,
            attempts=0,
        )
        session.add(entry)
        session.flush()
        _audit_state(session, entry, "staged", "new record", run_id)
        return "new"
    if entry.staged_hash == digest:
        return "unchanged"
    entry.staged_hash = digest
    entry.source_ref = source_ref or entry.source_ref
    entry.division = division if division is not None else entry.division
    if entry.state == "posted" and not repost_changed:
        _audit_state(session, entry, "changed_after_post", "source changed after posting; not posted again", run_id)
        return "changed"
    if entry.state in ("posted", "quarantined", "failed", "skipped", "held"):
        # posting: leave it, the ambiguity must be resolved first; cancelled: the flow decides on revival.
        entry.state = "pending"
        entry.reason = None
    _audit_state(session, entry, "staged", "changed record", run_id)
    return "changed"


def get_entry(session: Session, tenant: str, flow: str, source_id: str) -> LedgerEntry | None:
    return session.scalar(
        select(LedgerEntry).where(
            LedgerEntry.tenant == tenant, LedgerEntry.flow == flow, LedgerEntry.source_id == source_id
        )
    )


def staged_payload(session: Session, entry: LedgerEntry) -> dict[str, Any]:
    """The newest staged version of a ledger entry."""
    payload = session.scalar(
        select(StagedRecord.payload).where(
            StagedRecord.tenant == entry.tenant,
            StagedRecord.flow == entry.flow,
            StagedRecord.source_id == entry.source_id,
            StagedRecord.payload_hash == entry.staged_hash,
        )
    )
    if payload is None:
        raise LookupError(f"no staged payload for {entry.flow}/{entry.source_id}")
    return payload


def entries(
    session: Session,
    tenant: str,
    flow: str,
    *,
    states: Iterable[str] = WORKABLE,
    division: int | None = None,
    source_ids: Iterable[str] | None = None,
) -> list[LedgerEntry]:
    query = select(LedgerEntry).where(
        LedgerEntry.tenant == tenant, LedgerEntry.flow == flow, LedgerEntry.state.in_(list(states))
    )
    if division is not None:
        query = query.where(LedgerEntry.division == division)
    if source_ids is not None:
        query = query.where(LedgerEntry.source_id.in_(list(source_ids)))
    return list(session.scalars(query.order_by(LedgerEntry.id)))


def transition(
    session: Session,
    entry: LedgerEntry,
    state: str,
    *,
    reason: str | None = None,
    target_id: str | None = None,
    target_ref: str | None = None,
    run_id: str | None = None,
) -> None:
    if state not in STATES:
        raise ValueError(f"unknown ledger state {state!r}")
    entry.state = state
    entry.reason = reason
    if target_id is not None:
        entry.target_id = target_id
    if target_ref is not None:
        entry.target_ref = target_ref
    if run_id is not None:
        entry.last_run_id = run_id
    if state == "posted":
        entry.posted_hash = entry.staged_hash
        entry.posted_at = datetime.now(UTC)
    _audit_state(session, entry, f"state:{state}", reason or "", run_id)


def begin_post(engine: Engine, entry_id: int, run_id: str | None) -> tuple[LedgerEntry, bool]:
    """Mark a record as being posted, committed before the write goes out.

    Returns the entry and whether it was *already* ``posting`` (a previous attempt's outcome is unknown).
    """
    with session_scope(engine) as session:
        entry = session.get(LedgerEntry, entry_id, with_for_update=True)
        if entry is None:
            raise LookupError(f"ledger entry {entry_id} vanished")
        was_posting = entry.state == "posting"
        entry.attempts += 1
        if not was_posting:
            transition(session, entry, "posting", run_id=run_id)
        else:
            entry.last_run_id = run_id
        session.flush()
        session.expunge(entry)
        return entry, was_posting


def finish(
    engine: Engine,
    entry_id: int,
    state: str,
    *,
    reason: str | None = None,
    target_id: str | None = None,
    target_ref: str | None = None,
    run_id: str | None = None,
) -> None:
    with session_scope(engine) as session:
        entry = session.get(LedgerEntry, entry_id, with_for_update=True)
        if entry is None:
            raise LookupError(f"ledger entry {entry_id} vanished")
        transition(session, entry, state, reason=reason, target_id=target_id, target_ref=target_ref, run_id=run_id)


def requeue(engine: Engine, tenant: str, flow: str, source_ids: Iterable[str], *, by: str = "admin") -> int:
    """Put quarantined/failed/skipped/held records back to pending (after an admin fixed the cause)."""
    count = 0
    with session_scope(engine) as session:
        for entry in entries(
            session, tenant, flow, states=("quarantined", "failed", "skipped", "held"), source_ids=source_ids
        ):
            transition(session, entry, "pending", reason=f"requeued by {by}")
            count += 1
    return count


def counts(session: Session, tenant: str, flow: str) -> dict[str, int]:
    result: dict[str, int] = dict.fromkeys(STATES, 0)
    for state in session.scalars(
        select(LedgerEntry.state).where(LedgerEntry.tenant == tenant, LedgerEntry.flow == flow)
    ):
        result[state] += 1
    return result


def _audit_state(session: Session, entry: LedgerEntry, action: str, message: str, run_id: str | None) -> None:
    session.add(
        AuditLog(
            tenant=entry.tenant,
            flow=entry.flow,
            action=action,
            division=entry.division,
            source_id=entry.source_id,
            source_ref=entry.source_ref,
            target_id=entry.target_id,
            target_ref=entry.target_ref,
            outcome=entry.state,
            message=message,
            run_id=run_id,
            attempt=entry.attempts or 1,
        )
    )
