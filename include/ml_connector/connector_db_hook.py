"""The hook behind the ``ml_connector_db`` connection's *Test* button when it is a SQLite file.

Airflow 3.3 ships no SQLite provider, so a ``sqlite`` connection has no hook and its *Test* button can only fail.
``ml_connector.provider`` registers this hook for the ``sqlite`` type (PostgreSQL connections keep the postgres
provider's hook). It opens the database the way the connector does (``store.db.url_from_connection``) and says
whether the connector's tables are there and at the newest revision, naming the command that fixes it if not.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook


class ConnectorDbHook(BaseHook):
    conn_name_attr = "sqlite_conn_id"
    default_conn_name = "ml_connector_db"
    conn_type = "sqlite"
    hook_name = "SQLite (ml-connector database)"

    def __init__(self, sqlite_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sqlite_conn_id = sqlite_conn_id

    def test_connection(self) -> tuple[bool, str]:
        from ml_connector.errors import ConfigError
        from ml_connector.store.db import url_from_connection

        try:
            conn = self.get_connection(self.sqlite_conn_id)
            url = url_from_connection(conn)
        except ConfigError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"connection {self.sqlite_conn_id!r} cannot be read: {type(exc).__name__}: {exc}"
        return check_database(url)


def check_database(url: str) -> tuple[bool, str]:
    """``(ok, message)``: can the connector database at ``url`` be opened, and are its tables current?"""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from ml_connector.store.db import MIGRATIONS, SCHEMA, VERSION_TABLE

    parsed = make_url(url)
    where = parsed.database if parsed.get_backend_name() == "sqlite" else parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        from pathlib import Path

        path = Path(parsed.database or "")
        if not path.is_file():
            return False, f"no connector database at {path}: run `mlc db upgrade` (it creates the file and tables)"
        # read-only, so a test never creates or locks the file
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
        connect_args: dict[str, Any] = {}
    else:
        connect_args = {"options": f"-csearch_path={SCHEMA}"}
    engine = create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as db:
            current = MigrationContext.configure(db, opts={"version_table": VERSION_TABLE}).get_current_revision()
    except SQLAlchemyError as exc:
        return False, f"cannot open the connector database {where}: {str(exc.orig or exc).splitlines()[0]}"
    finally:
        engine.dispose()
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if current is None:
        return False, f"connector database {where} is reachable but has no connector tables: run `mlc db upgrade`"
    if current != head:
        return False, (
            f"connector database {where}: tables at revision {current}, newest is {head}: run `mlc db upgrade`"
        )
    return True, f"connector database {where}: reachable, tables at the newest revision ({head})"
