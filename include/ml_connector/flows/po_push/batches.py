"""The stages' work lists, read in chunks: the ids first, then each chunk's entries and payloads in one query.

A stage never holds a whole batch of orders (with their payloads) in memory: a cold push of 100,000 orders keeps
100,000 integers and one chunk of 500 orders at a time, whatever the size of the backlog.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import select

from ml_connector.flows.runtime import FlowContext
from ml_connector.store import ledger
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry

FLOW = "po_push"
CHUNK = 500  # orders read (and, where a stage writes per chunk, written) per transaction


def open_ids(ctx: FlowContext, states: Iterable[str], division: int) -> list[int]:
    """Ledger ids of the division's orders in ``states``, in id order; only those the run's ``ids`` param names
    (by order reference) when it names any (``vendors.selected``'s rule)."""
    wanted = {i.strip() for i in ctx.params.ids} if ctx.params.ids else None
    query = select(LedgerEntry.id, LedgerEntry.source_ref).where(
        LedgerEntry.tenant == ctx.tenant.name,
        LedgerEntry.flow == FLOW,
        LedgerEntry.state.in_(list(states)),
        LedgerEntry.division == division,
    )
    with session_scope(ctx.engine) as session:
        rows = session.execute(query.order_by(LedgerEntry.id)).all()
    return [entry_id for entry_id, ref in rows if wanted is None or (ref or "") in wanted]


def chunks(ids: Sequence[int], size: int | None = None) -> Iterator[list[int]]:
    """``ids`` in lists of ``size`` (default :data:`CHUNK`, read at call time)."""
    size = size or CHUNK
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def load_chunk(session: Any, ctx: FlowContext, states: Iterable[str], ids: list[int]) -> list[tuple[LedgerEntry, Any]]:
    """The chunk's entries still in ``states`` with their newest staged payloads (one query)."""
    return ledger.entries_with_payloads(session, ctx.tenant.name, FLOW, states=tuple(states), ids=ids)
