"""Incremental-extraction cursors (e.g. Exact's sync Timestamp per division)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ml_connector.store.models import Cursor


def get_cursor(session: Session, tenant: str, flow: str, scope: str) -> str | None:
    row = session.get(Cursor, (tenant, flow, scope))
    return row.value if row else None


def set_cursor(session: Session, tenant: str, flow: str, scope: str, value: str) -> None:
    row = session.get(Cursor, (tenant, flow, scope))
    if row is None:
        session.add(Cursor(tenant=tenant, flow=flow, scope=scope, value=value))
    else:
        row.value = value
