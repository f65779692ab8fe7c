"""The append-only audit log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, select

from ml_connector.http import AuditEvent
from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog


class DbAuditSink:
    """Writes each event in its own transaction, so the row exists before the caller moves on — unless the calling
    thread is inside :meth:`deferred`: then the events wait, and the caller writes them in the transaction that
    records the write's outcome (``ledger.finish(audit_events=take_deferred(sink))``): one commit instead of two
    per record. Whatever is not taken is written when the ``with`` block ends (also on an exception). Only a process
    killed between the request and that commit loses the attempt's row; the ledger still says ``posting`` and its
    ``attempts`` count, so the record is looked up in the target before anything is resent."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._local = threading.local()

    def record(self, event: AuditEvent) -> None:
        buffer: list[AuditEvent] | None = getattr(self._local, "buffer", None)
        if buffer is not None:
            buffer.append(event)
            return
        with session_scope(self.engine) as session:
            session.add(audit_row(event))

    @contextmanager
    def deferred(self) -> Iterator[None]:
        outer = getattr(self._local, "buffer", None)
        buffer: list[AuditEvent] = []
        self._local.buffer = buffer
        try:
            yield
        finally:
            self._local.buffer = outer
            if buffer:
                with session_scope(self.engine) as session:
                    session.add_all([audit_row(e) for e in buffer])

    def take(self) -> list[AuditEvent]:
        """The events this thread deferred so far (they are the caller's to write now)."""
        buffer: list[AuditEvent] | None = getattr(self._local, "buffer", None)
        if not buffer:
            return []
        taken = list(buffer)
        buffer.clear()
        return taken


def deferred(sink: Any) -> AbstractContextManager[None]:
    """``sink.deferred()`` for a :class:`DbAuditSink`; any other sink writes as it always does."""
    return sink.deferred() if isinstance(sink, DbAuditSink) else nullcontext()


def take_deferred(sink: Any) -> list[AuditEvent]:
    return sink.take() if isinstance(sink, DbAuditSink) else []


def audit_row(event: AuditEvent) -> AuditLog:
    """The audit row of one event (to add in the caller's transaction)."""
    return AuditLog(
        at=event.at,
        tenant=event.tenant,
        flow=event.flow,
        action=event.action,
        division=event.division,
        source_id=event.source_id,
        source_ref=event.source_ref,
        target_id=event.target_id,
        target_ref=event.target_ref,
        method=event.method,
        url=event.url,
        http_status=event.status,
        outcome=event.outcome,
        message=event.message,
        run_id=event.run_id,
        attempt=event.attempt,
    )


def history(engine: Engine, tenant: str, flow: str, source_id: str) -> list[AuditLog]:
    """Every audit row of one source record, oldest first (what an admin reads before a replay)."""
    with session_scope(engine) as session:
        rows = session.scalars(
            select(AuditLog)
            .where(AuditLog.tenant == tenant, AuditLog.flow == flow, AuditLog.source_id == source_id)
            .order_by(AuditLog.id)
        )
        return list(rows)
