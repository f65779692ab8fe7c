"""SQL the store's modules share, written once for each backend the connector database runs on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def insert_ignore(session: Session, table: Table, values: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """Insert a row unless one with the same ``keys`` exists (committed or being inserted by a concurrent
    transaction, which this waits for). True when this call inserted it."""
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        module: Any = postgresql if dialect == "postgresql" else sqlite
        stmt = module.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys))
        return bool(session.connection().execute(stmt).rowcount)
    for attempt in range(3):  # other backends: a savepoint, and a concurrent insert's IntegrityError means "exists"
        exists = session.scalar(select(table.c[keys[0]]).where(*(table.c[k] == values[k] for k in keys)).limit(1))
        if exists is not None:
            return False
        try:
            with session.begin_nested():
                session.connection().execute(insert(table).values(**values))
            return True
        except IntegrityError:
            if attempt == 2:
                raise
    return False  # pragma: no cover
