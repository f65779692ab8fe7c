"""The append-only audit log."""

from __future__ import annotations

from sqlalchemy import Engine, select

from ml_connector.http import AuditEvent
from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog


class DbAuditSink:
    """Writes each event in its own transaction, so the row exists before the caller moves on."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, event: AuditEvent) -> None:
        with session_scope(self.engine) as session:
            session.add(audit_row(event))


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
