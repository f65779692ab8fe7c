"""Queries behind the ledger console: records (filtered, paged on the server), one record with its history, the
records that need a person (grouped by cause), the audit trail of a period, and marking a record resolved by hand.

Identifiers (what each column holds, per flow):

- invoice poll: ``source_id`` = JAGGAER invoice id (e.g. 2428071), ``source_ref`` = JAGGAER invoice number
  (I00071), ``target_id`` = Exact PurchaseEntry id, ``target_ref`` = Exact entry number;
- PO push: ``source_id`` = Exact PurchaseOrderID, ``source_ref`` = Exact order number, ``target_ref`` = JAGGAER
  PONumber.

So one search box takes any of them: :func:`search_clause` matches the text against all four columns
(case-insensitive, exact), which is how an invoice number and an invoice id both find the same record.

Reads only use ``store.models``; the one write (:func:`resolve_by_hand`) goes through ``store.ledger.transition``
so the ledger writes its own ``state:`` audit row, plus a ``console:resolved`` row that carries the person's note.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, Select, and_, func, or_, select

from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog, LedgerEntry

FLOWS = ("invoice_poll", "po_push")
#: states in which a record waits for a person (and the ones requeue accepts)
ATTENTION_STATES = ("held", "quarantined", "failed")
REQUEUE_STATES = ("held", "quarantined", "failed", "skipped")
RESOLVABLE_STATES = ("held", "quarantined", "failed")
STATES = ("pending", "held", "quarantined", "posting", "posted", "failed", "skipped", "cancelled")
PAGE_SIZES = (25, 50, 100, 200)
MAX_EXPORT_ROWS = 200_000
RESOLVED_PREFIX = "resolved by hand"


@dataclass(frozen=True)
class RecordFilter:
    tenant: str
    flow: str | None = None
    division: int | None = None
    states: tuple[str, ...] = ()
    date_from: date | None = None  # last change on or after (UTC)
    date_to: date | None = None  # last change on or before (UTC, inclusive)
    q: str | None = None


@dataclass
class Page:
    rows: list[LedgerEntry]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def search_clause(q: str) -> Any:
    """``q`` against every identifier column (invoice id or number, order number, PONumber, entry number/id)."""
    text = q.strip().lower()
    columns = (LedgerEntry.source_id, LedgerEntry.source_ref, LedgerEntry.target_id, LedgerEntry.target_ref)
    clauses = [func.lower(c) == text for c in columns]
    # "111111/1001": a division-qualified id as the run report prints it
    m = re.fullmatch(r"(\d+)\s*[/:]\s*(\S+)", text)
    if m:
        inner = [func.lower(c) == m.group(2) for c in columns]
        clauses.append(and_(LedgerEntry.division == int(m.group(1)), or_(*inner)))
    return or_(*clauses)


def _filtered(f: RecordFilter) -> Select[Any]:
    query = select(LedgerEntry).where(LedgerEntry.tenant == f.tenant)
    if f.flow:
        query = query.where(LedgerEntry.flow == f.flow)
    if f.division is not None:
        query = query.where(LedgerEntry.division == f.division)
    if f.states:
        query = query.where(LedgerEntry.state.in_(f.states))
    if f.date_from:
        query = query.where(LedgerEntry.updated_at >= day_start(f.date_from))
    if f.date_to:
        query = query.where(LedgerEntry.updated_at < day_start(f.date_to + timedelta(days=1)))
    if f.q and f.q.strip():
        query = query.where(search_clause(f.q))
    return query


def records(engine: Engine, f: RecordFilter, page: int = 1, size: int = 50) -> Page:
    """One page of ledger records (newest change first), and how many match in all."""
    size = size if size in PAGE_SIZES else 50
    page = max(1, page)
    query = _filtered(f)
    with session_scope(engine) as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(
            session.scalars(
                query.order_by(LedgerEntry.updated_at.desc(), LedgerEntry.id.desc())
                .offset((page - 1) * size)
                .limit(size)
            )
        )
        session.expunge_all()
    return Page(rows=rows, total=int(total), page=page, size=size)


def divisions(engine: Engine, tenant: str) -> list[int]:
    with session_scope(engine) as session:
        values = session.scalars(
            select(LedgerEntry.division).where(LedgerEntry.tenant == tenant).distinct().order_by(LedgerEntry.division)
        )
        return [v for v in values if v is not None]


def find(engine: Engine, tenant: str, flow: str | None, ident: str) -> list[LedgerEntry]:
    """Records whose invoice id/number, order number, PONumber or entry number/id is ``ident``."""
    query = select(LedgerEntry).where(LedgerEntry.tenant == tenant, search_clause(ident))
    if flow:
        query = query.where(LedgerEntry.flow == flow)
    with session_scope(engine) as session:
        rows = list(session.scalars(query.order_by(LedgerEntry.id).limit(20)))
        session.expunge_all()
        return rows


def get(engine: Engine, entry_id: int) -> LedgerEntry | None:
    with session_scope(engine) as session:
        entry = session.get(LedgerEntry, entry_id)
        if entry is not None:
            session.expunge(entry)
        return entry


def history(engine: Engine, entry: LedgerEntry) -> list[AuditLog]:
    """Every audit row of the record (its own flow, and the console/mappings rows about it), oldest first."""
    with session_scope(engine) as session:
        rows = list(
            session.scalars(
                select(AuditLog)
                .where(
                    AuditLog.tenant == entry.tenant,
                    AuditLog.source_id == entry.source_id,
                    AuditLog.flow.in_((entry.flow, f"console:{entry.flow}")),
                )
                .order_by(AuditLog.at, AuditLog.id)
            )
        )
        session.expunge_all()
        return rows


# ---------------------------------------------------------------------------------------------- needs a person
@dataclass
class CauseGroup:
    key: str
    title: str
    fix: str  # "vendor" | "code" | "requeue"
    help: str
    entries: list[LedgerEntry] = field(default_factory=list)


_CAUSES: tuple[tuple[str, str, str, str, re.Pattern[str]], ...] = (
    (
        "vendor",
        "JAGGAER vendor not linked to an Exact supplier",
        "vendor",
        "Link the vendor to its Exact supplier code here; the invoice is tried again by the next run.",
        re.compile(r"mlc mappings set vendor|vendor .*not (?:mapped|linked|matched)", re.I),
    ),
    (
        "code",
        "Code not mapped (GL account, cost centre, VAT code, business unit)",
        "code",
        "Add the code mapping on the Mappings page; held records are tried again by the next run.",
        re.compile(r"mlc mappings set code", re.I),
    ),
    (
        "refused",
        "Refused by the target (Exact Online / JAGGAER said no)",
        "requeue",
        "Fix the cause the message names (in Exact or in JAGGAER), then requeue.",
        re.compile(r"refused|rejected|HTTP 4\d\d|\b4\d\d\b|error budget", re.I),
    ),
)
_OTHER = ("other", "Other", "requeue", "Read the reason; requeue once its cause is fixed.")


def cause_of(entry: LedgerEntry) -> str:
    reason = entry.reason or ""
    for key, _title, _fix, _help, pattern in _CAUSES:
        if pattern.search(reason):
            return key
    return "other"


def needs_a_person(engine: Engine, tenant: str, flow: str | None = None, limit: int = 500) -> list[CauseGroup]:
    """Held, quarantined and failed records, grouped by cause (non-empty groups, in a fixed order)."""
    groups = {key: CauseGroup(key, title, fix, help_) for key, title, fix, help_, _p in _CAUSES}
    groups["other"] = CauseGroup(*_OTHER)
    query = select(LedgerEntry).where(LedgerEntry.tenant == tenant, LedgerEntry.state.in_(ATTENTION_STATES))
    if flow:
        query = query.where(LedgerEntry.flow == flow)
    with session_scope(engine) as session:
        ordered = query.order_by(LedgerEntry.flow, LedgerEntry.division, LedgerEntry.id).limit(limit)
        rows = list(session.scalars(ordered))
        session.expunge_all()
    for entry in rows:
        groups[cause_of(entry)].entries.append(entry)
    return [g for g in groups.values() if g.entries]


def left_for_tomorrow(engine: Engine, tenant: str) -> list[str]:
    """Records waiting for the next day's Exact call budget (still ``pending``: not a person's job), one line per
    flow and division: ``[invoice_poll] division 111111: 105 invoices left for tomorrow (budget resets at …)``."""
    from ml_connector.flows.budget_plan import left_lines

    return left_lines(engine, tenant)


def attention_counts(engine: Engine, tenant: str) -> dict[str, int]:
    with session_scope(engine) as session:
        result = session.execute(
            select(LedgerEntry.state, func.count())
            .where(LedgerEntry.tenant == tenant, LedgerEntry.state.in_(ATTENTION_STATES))
            .group_by(LedgerEntry.state)
        )
        return {state: int(n) for state, n in result}


# ---------------------------------------------------------------------------------------------- audit export
AUDIT_COLUMNS = (
    "at",
    "tenant",
    "flow",
    "division",
    "action",
    "source_id",
    "source_ref",
    "target_id",
    "target_ref",
    "method",
    "url",
    "http_status",
    "outcome",
    "message",
    "run_id",
    "attempt",
)


def audit_rows(engine: Engine, tenant: str, date_from: date, date_to: date) -> Iterator[list[Any]]:
    """The audit trail of ``[date_from, date_to]`` (UTC days, inclusive), oldest first, as CSV-ready rows."""
    query = (
        select(AuditLog)
        .where(
            AuditLog.tenant == tenant,
            AuditLog.at >= day_start(date_from),
            AuditLog.at < day_start(date_to + timedelta(days=1)),
        )
        .order_by(AuditLog.at, AuditLog.id)
        .limit(MAX_EXPORT_ROWS)
    )
    with session_scope(engine) as session:
        for row in session.scalars(query):
            yield [_cell(getattr(row, c)) for c in AUDIT_COLUMNS]


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat(timespec="seconds")
    return "" if value is None else value


# ---------------------------------------------------------------------------------------------- writes
class NotResolvable(Exception):
    pass


def resolve_by_hand(engine: Engine, entry_id: int, note: str, who: str) -> LedgerEntry:
    """Mark a held/quarantined/failed record as settled by a person (state ``skipped``: nothing more is sent).

    The ledger writes its ``state:skipped`` audit row (reason: who and the note); a ``console:resolved`` row in
    flow ``console:<flow>`` keeps the note on its own. A record that is ``posting`` is never resolved by hand: its
    last write's outcome is unknown and only a run's lookup at the target may settle it."""
    from ml_connector.store import ledger

    note = note.strip()
    if not note:
        raise NotResolvable("a note is required: say how the record was settled (e.g. keyed in Exact as 2026-104)")
    with session_scope(engine) as session:
        entry = session.get(LedgerEntry, entry_id, with_for_update=True, populate_existing=True)
        if entry is None:
            raise NotResolvable(f"no ledger record {entry_id}")
        if entry.state not in RESOLVABLE_STATES:
            raise NotResolvable(
                f"record {entry.source_ref or entry.source_id} is {entry.state}; only held, quarantined or failed "
                "records can be resolved by hand"
            )
        reason = f"{RESOLVED_PREFIX} by {who}: {note}"[:2000]
        ledger.transition(session, entry, "skipped", reason=reason)
        session.add(
            AuditLog(
                tenant=entry.tenant,
                flow=f"console:{entry.flow}"[:32],
                action="console:resolved",
                division=entry.division,
                source_id=entry.source_id,
                source_ref=entry.source_ref,
                target_id=entry.target_id,
                target_ref=entry.target_ref,
                method="POST",
                outcome="skipped",
                message=reason,
                attempt=entry.attempts or 1,
            )
        )
        session.flush()
        session.expunge(entry)
        return entry


def requeue(engine: Engine, tenant: str, flow: str, source_ids: Sequence[str], who: str) -> int:
    from ml_connector.store import ledger

    return ledger.requeue(engine, tenant, flow, list(source_ids), by=who)


def resolve_source_id(engine: Engine, tenant: str, flow: str, ident: str) -> tuple[str | None, str]:
    """The ledger ``source_id`` meant by ``ident`` (an invoice number or id, order number, PONumber, entry number),
    and a hint for a person when there is none or several: for ``mlc audit`` / ``mlc ledger requeue``, which take
    the source id (JAGGAER invoice id 2428071) while reports show the invoice number (I00071)."""
    found = find(engine, tenant, flow, ident)
    if len(found) == 1:
        return found[0].source_id, ""
    if not found:
        return None, (
            f"no {flow} record of tenant {tenant!r} has {ident!r} as its id, number, target id or target number"
        )
    listed = ", ".join(f"{e.source_id} ({e.source_ref}, division {e.division})" for e in found[:5])
    return None, f"{ident!r} names {len(found)} {flow} records: {listed}; give the id"
