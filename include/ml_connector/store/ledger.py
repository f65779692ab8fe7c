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

:func:`begin_post` only starts a write from a state (and staged version) the caller expects, under the row lock, and
raises :class:`StateChanged` otherwise (e.g. a concurrent extract cancelled the record meanwhile). It can record
where the write goes (``attempt_division`` / ``attempt_target``), so a later search after an ambiguous outcome looks
where the write went even if the record's division or supplier changed since; ``finish(..., clear_target=True)``
forgets it once the write is known to have created nothing, and ``posted`` clears it.

:func:`stage` is safe under concurrency on PostgreSQL and SQLite: the staged version and the ledger row are inserted
with ``INSERT ... ON CONFLICT DO NOTHING`` and the ledger row is then read under ``SELECT ... FOR UPDATE``, so two
extracts staging the same record at once neither fail nor lose a version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ml_connector.http import AuditEvent
from ml_connector.store.audit import audit_row
from ml_connector.store.db import session_scope
from ml_connector.store.lease import PostingLease, claim_is_live
from ml_connector.store.models import AuditLog, LedgerEntry, StagedRecord
from ml_connector.store.sql import insert_ignore
from ml_connector.store.types import utcnow

STATES = ("pending", "held", "quarantined", "posting", "posted", "failed", "skipped", "cancelled")
# States of records not done yet (``failed`` only comes back through a change or a requeue, see above).
WORKABLE = ("pending", "held", "posting", "failed")

#: The states a write may start from unless the caller says otherwise (:func:`begin_post`).
BEGIN_STATES = ("pending", "posting")

StageResult = Literal["new", "changed", "unchanged"]


class StateChanged(Exception):
    """:func:`begin_post` refused: the record is not (any more) in a state or version the caller expected.

    Nothing was changed; the caller skips the record (another run or stage moved it meanwhile).
    """

    def __init__(self, entry_id: int, state: str, expected: Iterable[str], why: str = "") -> None:
        self.entry_id = entry_id
        self.state = state
        self.expected = tuple(expected)
        detail = why or f"it is {state!r}, expected one of {', '.join(self.expected)}"
        super().__init__(f"ledger entry {entry_id}: not started: {detail}")


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
    result, _entry = stage_entry(
        session,
        tenant=tenant,
        flow=flow,
        source_id=source_id,
        payload=payload,
        source_ref=source_ref,
        division=division,
        run_id=run_id,
        repost_changed=repost_changed,
    )
    return result


def stage_entry(
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
) -> tuple[StageResult, LedgerEntry]:
    """:func:`stage`, also returning the ledger entry (read under its row lock: no second query to find it)."""
    digest = payload_hash(payload)
    now = utcnow()
    insert_ignore(
        session,
        StagedRecord.__table__,  # type: ignore[arg-type]
        {
            "tenant": tenant,
            "flow": flow,
            "source_id": source_id,
            "payload_hash": digest,
            "payload": payload,
            "run_id": run_id,
            "staged_at": now,
        },
        ("tenant", "flow", "source_id", "payload_hash"),
    )
    created = insert_ignore(
        session,
        LedgerEntry.__table__,  # type: ignore[arg-type]
        {
            "tenant": tenant,
            "flow": flow,
            "source_id": source_id,
            "source_ref": source_ref,
            "division": division,
            "state": "pending",
            "staged_hash": digest,
            "last_run_id": run_id,
            "attempts": 0,
            "first_seen_at": now,
            "updated_at": now,
        },
        ("tenant", "flow", "source_id"),
    )
    # the row under lock, as committed now (a concurrent stage of the same record waits here until we commit)
    entry = session.scalar(
        select(LedgerEntry)
        .where(LedgerEntry.tenant == tenant, LedgerEntry.flow == flow, LedgerEntry.source_id == source_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if entry is None:  # pragma: no cover - inserted or found just above
        raise LookupError(f"ledger entry {flow}/{source_id} vanished while staging")
    if created:
        _audit_state(session, entry, "staged", "new record", run_id)
        return "new", entry
    if entry.staged_hash == digest:
        return "unchanged", entry
    entry.staged_hash = digest
    entry.source_ref = source_ref or entry.source_ref
    entry.division = division if division is not None else entry.division
    if entry.state == "posted" and not repost_changed:
        _audit_state(session, entry, "changed_after_post", "source changed after posting; not posted again", run_id)
        return "changed", entry
    if entry.state in ("posted", "quarantined", "failed", "skipped", "held"):
        # posting: never reset here, the ambiguity must be resolved at the target first (the flow's post stage
        # looks it up); cancelled: the flow decides on revival.
        entry.state = "pending"
        entry.reason = None
    _audit_state(session, entry, "staged", "changed record", run_id)
    return "changed", entry


def unresolved(entry: LedgerEntry) -> bool:
    """Whether an earlier write of this record may have reached the target without the ledger knowing: it is in
    ``posting``, or a write was started (``attempts``) and never recorded as posted. Such a record is looked up at
    the target before anything is sent again."""
    return entry.state == "posting" or (bool(entry.attempts) and entry.posted_hash is None)


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


def entries_with_payloads(
    session: Session,
    tenant: str,
    flow: str,
    *,
    states: Iterable[str] = WORKABLE,
    division: int | None = None,
    ids: Iterable[int] | None = None,
    part: str | None = None,
) -> list[tuple[LedgerEntry, dict[str, Any]]]:
    """:func:`entries` with each one's newest staged payload, in one query (not one per entry). An entry whose staged
    version is missing is left out. ``part``: only that top-level member of the payload is read and returned (the
    database extracts it; ``{}`` when absent)."""
    column: Any = StagedRecord.payload if part is None else StagedRecord.payload[part]
    query = (
        select(LedgerEntry, column)
        .join(
            StagedRecord,
            (StagedRecord.tenant == LedgerEntry.tenant)
            & (StagedRecord.flow == LedgerEntry.flow)
            & (StagedRecord.source_id == LedgerEntry.source_id)
            & (StagedRecord.payload_hash == LedgerEntry.staged_hash),
        )
        .where(LedgerEntry.tenant == tenant, LedgerEntry.flow == flow, LedgerEntry.state.in_(list(states)))
    )
    if division is not None:
        query = query.where(LedgerEntry.division == division)
    if ids is not None:
        query = query.where(LedgerEntry.id.in_(list(ids)))
    return [(entry, payload or {}) for entry, payload in session.execute(query.order_by(LedgerEntry.id)).all()]


#: Records read per step by the streaming helpers below (issue 12: ~500 per transaction).
CHUNK = 500


def iter_id_chunks(
    engine: Engine,
    tenant: str,
    flow: str,
    *,
    states: Iterable[str],
    division: int | None = None,
    source_ids: Iterable[str] | None = None,
    size: int = CHUNK,
) -> Iterator[list[int]]:
    """The ids of the entries in ``states`` (optionally of one division / only ``source_ids``), ascending, ``size``
    at a time, each chunk read in a short transaction of its own (keyset on the id: an entry that left ``states``
    before its chunk was read is not returned; memory stays flat whatever the ledger holds)."""
    wanted = list(states)
    ids_filter = list(source_ids) if source_ids is not None else None
    last = 0
    while True:
        query = select(LedgerEntry.id).where(
            LedgerEntry.tenant == tenant,
            LedgerEntry.flow == flow,
            LedgerEntry.state.in_(wanted),
            LedgerEntry.id > last,
        )
        if division is not None:
            query = query.where(LedgerEntry.division == division)
        if ids_filter is not None:
            query = query.where(LedgerEntry.source_id.in_(ids_filter))
        with session_scope(engine) as session:
            chunk = list(session.scalars(query.order_by(LedgerEntry.id).limit(size)))
        if not chunk:
            return
        yield chunk
        if len(chunk) < size:
            return
        last = chunk[-1]


def count_entries(
    session: Session,
    tenant: str,
    flow: str,
    *,
    states: Iterable[str],
    division: int | None = None,
    source_ids: Iterable[str] | None = None,
) -> int:
    query = select(func.count()).where(
        LedgerEntry.tenant == tenant, LedgerEntry.flow == flow, LedgerEntry.state.in_(list(states))
    )
    if division is not None:
        query = query.where(LedgerEntry.division == division)
    if source_ids is not None:
        query = query.where(LedgerEntry.source_id.in_(list(source_ids)))
    return int(session.scalar(query) or 0)


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
        entry.attempt_division = None
        entry.attempt_target = None
    _audit_state(session, entry, f"state:{state}", reason or "", run_id)


def begin_post(
    engine: Engine,
    entry_id: int,
    run_id: str | None,
    *,
    states: Iterable[str] = BEGIN_STATES,
    staged_hash: str | None = None,
    target: dict[str, Any] | None = None,
    division: int | None = None,
    lease: PostingLease | None = None,
    durable: bool = True,
) -> tuple[LedgerEntry, bool]:
    """Mark a record as being posted, committed before the write goes out.

    Under the row lock: refuses (:class:`StateChanged`, nothing changed) unless the record is in one of ``states``
    and, when ``staged_hash`` is given, still holds that staged version (the one the caller built its write from).
    ``target`` (with ``division``): where this write goes, kept on the entry (``attempt_target`` /
    ``attempt_division``) for the search after an ambiguous outcome. A caller passes it only when no earlier write
    can be unresolved (never sent, or looked up at the target and not there), so it replaces what was kept.

    ``lease`` (``store.lease.PostingLease``): fenced in this same transaction (raises ``LeaseLost``, nothing changed,
    when the stage no longer holds it); an entry in ``posting`` under another stage's claim whose lease is still
    live is refused (:class:`StateChanged`); the claim (lease scope, generation, owner) is recorded on the entry.

    ``durable``: committed with a disk sync on SQLite (``store.db``). Only a caller whose next attempt looks for the
    write at the target even when this mark is lost (the invoice poll's look before posting) passes False.

    Returns the entry and whether it was *already* ``posting`` (a previous attempt's outcome is unknown).
    """
    expected = tuple(states)
    with session_scope(engine, durable=durable) as session:
        if lease is not None:
            lease.fence(session)  # locks the lease row until this commits: no takeover slips in between
        entry = session.get(LedgerEntry, entry_id, with_for_update=True, populate_existing=True)
        if entry is None:
            raise LookupError(f"ledger entry {entry_id} vanished")
        if entry.state not in expected:
            raise StateChanged(entry_id, entry.state, expected)
        if (
            lease is not None
            and entry.state == "posting"
            and not lease.owns_claim(entry)
            and claim_is_live(session, entry)
        ):
            raise StateChanged(
                entry_id, entry.state, expected, why=f"another live post stage claimed it ({entry.claim_owner})"
            )
        if staged_hash is not None and entry.staged_hash != staged_hash:
            raise StateChanged(
                entry_id, entry.state, expected, why="a newer version of the record was staged meanwhile"
            )
        was_posting = entry.state == "posting"
        entry.attempts += 1
        if target is not None:
            entry.attempt_target = dict(target)
            entry.attempt_division = division if division is not None else entry.division
        if lease is not None:
            for name, value in lease.claim_fields().items():
                setattr(entry, name, value)
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
    clear_target: bool = False,
    lease: PostingLease | None = None,
    audit_events: Iterable[AuditEvent] = (),
    expect_state: str | None = None,
    expect_hash: str | None = None,
) -> bool:
    """Record the outcome of a write (or a decision taken without one).

    ``expect_state`` / ``expect_hash``: the state and staged version the caller decided from (read earlier, e.g.
    with its batch); when the entry moved on meanwhile nothing is recorded (False) — a decision about an old version
    never overwrites a newer one. ``clear_target``: the write is known to have created nothing at the target
    (refused, or never sent), so there is nothing to look up any more. ``audit_events``: the attempt's audit rows,
    written in this same transaction (one commit for outcome and audit).

    ``lease``: the stage's posting lease. An entry in ``posting`` under another stage's live claim is not touched;
    a stage that lost its lease records only the outcome of its own claim. False when nothing was recorded
    (the audit rows are written either way: they say what was sent).

    Committed without a disk sync on SQLite (``store.db``): an outcome lost to a power cut leaves the record
    ``posting``, which is looked up in the target before anything is resent."""
    with session_scope(engine) as session:
        for event in audit_events:
            session.add(audit_row(event))
        entry = session.get(LedgerEntry, entry_id, with_for_update=True, populate_existing=True)
        if entry is None:
            raise LookupError(f"ledger entry {entry_id} vanished")
        if lease is not None and entry.claim_generation is not None and not lease.owns_claim(entry):
            if (entry.state == "posting" and claim_is_live(session, entry)) or lease.lost:
                return False
        elif lease is not None and lease.lost and entry.state != "posting":
            return False  # settled meanwhile by the stage that took over
        if (expect_state is not None and entry.state != expect_state) or (
            expect_hash is not None and entry.staged_hash != expect_hash
        ):
            return False
        if clear_target:
            entry.attempt_division = None
            entry.attempt_target = None
        transition(session, entry, state, reason=reason, target_id=target_id, target_ref=target_ref, run_id=run_id)
        return True


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
