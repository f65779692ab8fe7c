"""The run report's reconciling table: where the records this run touched ended up, per division.

The stages' counts are events (an invoice held by ``map_vendors`` and looked at again by ``post`` is counted by
both; a retried post task counts its own attempt), so they need not add up. This table does: every ledger record
whose last change was made by this run (``last_run_id``) is counted once, in the state it is in now, under its
division. Identifiers in the report are qualified the same way (``111111/1001``): an Exact order number or a
JAGGAER invoice number can repeat across divisions. ``mlc audit``, ``mlc ledger requeue`` and the console's search
box take that form.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ml_connector.flows.runtime import FlowContext

#: Column order of the table (other states follow, sorted).
STATE_ORDER = ("posted", "pending", "posting", "held", "quarantined", "failed", "skipped", "cancelled")
NO_DIVISION = "-"


def qualify(division: int | str | None, ref: str) -> str:
    """``111111/1001``; unchanged without a division or when already qualified / not a record (``division …``)."""
    if division is None or ref.startswith(f"{division}/") or ref.startswith("division "):
        return ref
    return f"{division}/{ref}"


def run_states(ctx: FlowContext) -> dict[str, dict[str, int]]:
    """``{division: {state: n}}`` for the records whose last change was made by this run (``ctx.run_id``), limited
    to ``ctx.division`` when the context has one."""
    from sqlalchemy import func, select

    from ml_connector.store.db import session_scope
    from ml_connector.store.models import LedgerEntry

    where = [
        LedgerEntry.tenant == ctx.tenant.name,
        LedgerEntry.flow == ctx.flow,
        LedgerEntry.last_run_id == ctx.run_id,
    ]
    if ctx.division is not None:
        where.append(LedgerEntry.division == ctx.division)
    query = (
        select(LedgerEntry.division, LedgerEntry.state, func.count())
        .where(*where)
        .group_by(LedgerEntry.division, LedgerEntry.state)
    )
    out: dict[str, Counter[str]] = {}
    with session_scope(ctx.engine) as session:
        for division, state, n in session.execute(query):
            key = NO_DIVISION if division is None else str(division)
            out.setdefault(key, Counter())[str(state)] += int(n)
    return {k: dict(v) for k, v in sorted(out.items())}


def states_table(by_division: dict[str, dict[str, int]]) -> str:
    """The table as the report logs it: one row per division, one column per state, a total column and row."""
    if not by_division:
        return "  records this run changed, by division and state now: none"
    states = [s for s in STATE_ORDER if any(c.get(s) for c in by_division.values())]
    states += sorted({s for c in by_division.values() for s in c if s not in STATE_ORDER})
    header = ["division", *states, "total"]
    rows = [[div, *(str(c.get(s, 0)) for s in states), str(sum(c.values()))] for div, c in by_division.items()]
    if len(rows) > 1:
        totals = [sum(c.get(s, 0) for c in by_division.values()) for s in states]
        rows.append(["all", *(str(n) for n in totals), str(sum(totals))])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  records this run changed, by division and state now (each record once):"]
    for row in [header, *rows]:
        lines.append(
            "    "
            + "  ".join(
                cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)
