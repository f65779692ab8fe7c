"""Fixtures every test may use.

The environment is set before Airflow or the connector are imported: a private AIRFLOW_HOME, a test Fernet key,
examples off, the repo's dags folder. The connector store runs on SQLite and on PostgreSQL (``db_url`` is
parametrised); PostgreSQL comes from ``MLC_TEST_PG_URL`` (``make test`` starts a server on loopback). With
``CI=true`` a missing PostgreSQL fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="mlc-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "Wk2bV4mFf3v0X3cY6l4S0nq8oR1c2tJ8a7pQ9uVx0yE=")
os.environ["MLC_FERNET_KEYS"] = "8Jk1cF0Qm3m5dB6aN2bq0Y7xq4ZrB9uS7dT3vW1xY2Q="
os.environ["MLC_CONFIG_PATH"] = str(REPO / "include" / "config" / "tenants.yaml")
os.environ["MLC_DB_URL"] = f"sqlite:///{_HOME / 'ml_connector.db'}"

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Every request the connector sends to an Exact sandbox during the session is checked against Exact's published
# entity reference; the session fails if one asked for an endpoint, method or property the reference lacks.
pytest_plugins = ["sandbox.exact.contract_plugin", "pytester"]


def _pg_admin_url() -> str | None:
    return os.environ.get("MLC_TEST_PG_URL")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session."""
    admin = _pg_admin_url()
    if not admin:
        message = "PostgreSQL is needed: run the tests with `make test` (it starts one) or set MLC_TEST_PG_URL"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"mlc_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    from ml_connector.store.db import dispose_engines

    dispose_engines()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty connector database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'connector.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(db_url: str):
    """A migrated connector database (emptied again after the test)."""
    from sqlalchemy import text

    from ml_connector.store import db
    from ml_connector.store.models import Base

    db.migrate(db_url)
    engine = db.get_engine(db_url)
    yield engine
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture
def sqlite_engine(tmp_path: Path):
    """A migrated SQLite connector database, for tests that are about something else than the backend."""
    from ml_connector.store import db

    url = f"sqlite:///{tmp_path / 'connector.db'}"
    db.migrate(url)
    return db.get_engine(url)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata database in this session's private AIRFLOW_HOME (for dag.test()). About 6 s, once."""
    from airflow.utils.db import initdb

    initdb()
    return _HOME
