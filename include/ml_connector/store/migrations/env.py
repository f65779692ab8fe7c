"""Alembic environment for the connector's own tables (own version table, never Airflow's)."""

from __future__ import annotations

from alembic import context

from ml_connector.store.db import VERSION_TABLE, get_engine
from ml_connector.store.models import Base

config = context.config
engine = config.attributes.get("engine") or get_engine()

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
