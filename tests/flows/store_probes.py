"""Probes on the connector store shared by the post stages' statement tests: count the SQL a block sends, and fill
the ledger with settled rows of another division (never picked up again) to a given size."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, insert, select, text

from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry


@contextmanager
def counting_statements(engine: Any) -> Iterator[list[str]]:
    """The SQL statements sent on ``engine`` inside the block (SQLite's per-connection PRAGMAs left out)."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("PRAGMA"):  # SQLite's per-connection sync level: set when a connection changes
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def fill_ledger(
    engine: Any, flow: str, upto: int, *, source_ref: Callable[[int], str], target_ref: Callable[[int], str]
) -> None:
    """Posted rows of division 999999 until the ledger holds ``upto`` rows."""
    with session_scope(engine) as s:
        have = int(s.scalar(select(text("count(*)")).select_from(LedgerEntry.__table__)) or 0)
        now = datetime.now(UTC)
        rows = [
            {
                "tenant": "demo",
                "flow": flow,
                "source_id": f"filler-{n}",
                "source_ref": source_ref(n),
                "division": 999999,
                "state": "posted",
                "target_ref": target_ref(n),
                "attempts": 1,
                "first_seen_at": now,
                "updated_at": now,
            }
            for n in range(have, upto)
        ]
        if rows:
            s.execute(insert(LedgerEntry), rows)
