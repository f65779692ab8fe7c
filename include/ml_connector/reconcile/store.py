"""Reconciliations kept in the connector database (``mlc_reconciliation``): save one, list the latest, read one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import defer

from ml_connector.reconcile import COLUMNS
from ml_connector.store.db import session_scope
from ml_connector.store.models import Reconciliation

#: How many saved reconciliations the console lists per tenant.
LIST_LIMIT = 30


@dataclass(frozen=True)
class Saved:
    """A reconciliation as read back (rows are JSON: dates as ISO strings, amounts as strings)."""

    id: int
    tenant: str
    division: int
    date_from: str
    date_to: str
    created_at: datetime
    trigger: str
    counts: dict[str, int]
    off: int
    exact_calls: int
    jaggaer_calls: int
    rows: list[dict[str, Any]]


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN from pandas
        return None
    return value


def save(
    engine: Engine,
    *,
    tenant: str,
    division: int,
    date_from: date,
    date_to: date,
    trigger: str,
    counts: dict[str, int],
    off: int,
    exact_calls: int,
    jaggaer_calls: int,
    rows: list[dict[str, Any]],
) -> int:
    with session_scope(engine) as s:
        rec = Reconciliation(
            tenant=tenant,
            division=int(division),
            date_from=date_from.isoformat(),
            date_to=date_to.isoformat(),
            trigger=trigger[:250],
            counts={k: int(v) for k, v in counts.items()},
            off=int(off),
            exact_calls=int(exact_calls),
            jaggaer_calls=int(jaggaer_calls),
            rows=[{c: _json(row.get(c)) for c in COLUMNS} for row in rows],  # every column, always
        )
        s.add(rec)
        s.flush()
        return int(rec.id)


def _saved(rec: Reconciliation, rows: bool = True) -> Saved:
    return Saved(
        id=rec.id,
        tenant=rec.tenant,
        division=rec.division,
        date_from=rec.date_from,
        date_to=rec.date_to,
        created_at=rec.created_at,
        trigger=rec.trigger,
        counts=dict(rec.counts or {}),
        off=rec.off,
        exact_calls=rec.exact_calls,
        jaggaer_calls=rec.jaggaer_calls,
        rows=list(rec.rows or []) if rows else [],
    )


def get(engine: Engine, rec_id: int) -> Saved | None:
    with session_scope(engine) as s:
        rec = s.get(Reconciliation, rec_id)
        return _saved(rec) if rec is not None else None


def listing(engine: Engine, tenant: str, division: int | None = None, limit: int = LIST_LIMIT) -> list[Saved]:
    """The latest reconciliations of a tenant (newest first), without their rows."""
    with session_scope(engine) as s:
        q = select(Reconciliation).options(defer(Reconciliation.rows)).where(Reconciliation.tenant == tenant)
        if division is not None:
            q = q.where(Reconciliation.division == division)
        q = q.order_by(Reconciliation.created_at.desc(), Reconciliation.id.desc()).limit(limit)
        return [_saved(r, rows=False) for r in s.scalars(q)]
