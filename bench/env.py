"""The benchmark's own environment, set up before Airflow or the connector are imported.

Nothing of the developer's Airflow home is read or written: a private ``AIRFLOW_HOME`` in a temporary directory,
fresh Fernet keys, the repo's tenant file, connections as ``AIRFLOW_CONN_*`` variables pointing at the sandbox
processes, and a fresh SQLite connector database per scenario (``--pg-server``: a PostgreSQL database instead).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.measure import REPO

TENANT = "demo"
EXACT_CONN = "exact_demo"
JAGGAER_CONN = "jaggaer_demo"
DIV_MFG = 111111
DIV_SVC = 222222
JAGGAER_LOGIN = "mlc-demo"
JAGGAER_SECRET = "mlc-demo-secret"
XML_IDENTITY = "MLCDEMO"
XML_SECRET = "mlc-demo-xml-secret"


class BenchEnv:
    """``pg_server``: the URL of a PostgreSQL server (e.g. ``scripts/pg.sh start``); the bench creates a database of
    its own there, runs the connector store in it, and drops it at the end. Without it: SQLite files."""

    def __init__(self, pg_server: str | None = None, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mlc-bench-"))
        self.pg_server = pg_server
        self.db_url: str | None = None
        self.keep = keep

    @classmethod
    def attach(cls, root: Path, db_url: str | None) -> BenchEnv:
        """The environment a parent process set up (a child inherits its variables)."""
        env = cls.__new__(cls)
        env.root, env.db_url, env.keep, env.pg_server = root, db_url, True, None
        return env

    def create_pg_database(self) -> str:
        """A fresh database on ``pg_server`` for this run (dropped by :meth:`cleanup`)."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        assert self.pg_server
        name = f"mlc_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(self.pg_server, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        self.db_url = make_url(self.pg_server).set(database=name).render_as_string(hide_password=False)
        return self.db_url

    def _drop_pg_database(self) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        if not (self.pg_server and self.db_url):
            return
        from ml_connector.store.db import dispose_engines

        dispose_engines()
        name = make_url(self.db_url).database
        admin = create_engine(self.pg_server, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()

    def apply(self) -> None:
        """Set the process environment (before importing Airflow)."""
        from cryptography.fernet import Fernet

        home = self.root / "airflow"
        home.mkdir()
        os.environ["AIRFLOW_HOME"] = str(home)
        os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
        os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
        os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
        os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
        os.environ["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
        os.environ["MLC_FERNET_KEYS"] = Fernet.generate_key().decode()
        os.environ["MLC_CONFIG_PATH"] = str(REPO / "include" / "config" / "tenants.yaml")
        # Nothing may fall back to a connector database outside the bench's directory.
        os.environ["MLC_DB_URL"] = f"sqlite:///{self.root / 'unused.db'}"

    def connect(self, exact_url: str, jaggaer_url: str) -> None:
        """Airflow connections (env vars) for the demo tenant, pointing at the sandbox processes."""
        from sandbox.exact.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS

        os.environ[f"AIRFLOW_CONN_{EXACT_CONN.upper()}"] = json.dumps(
            {
                "conn_type": "exact_online",
                "host": exact_url,
                "login": DEMO_CLIENT_ID,
                "password": DEMO_CLIENT_SECRET,
                "extra": {"redirect_uri": DEMO_REDIRECT_URIS[0], "sandbox": True},
            }
        )
        os.environ[f"AIRFLOW_CONN_{JAGGAER_CONN.upper()}"] = json.dumps(
            {
                "conn_type": "jaggaer",
                "host": jaggaer_url,
                "login": JAGGAER_LOGIN,
                "password": JAGGAER_SECRET,
                "extra": {"xml_identity": XML_IDENTITY, "xml_shared_secret": XML_SECRET, "sandbox": True},
            }
        )

    def fresh_db(self, name: str) -> Any:
        """A migrated, empty connector database for one scenario; returns its engine."""
        from ml_connector.store import db

        if self.db_url:
            url = self.db_url
            db.migrate(url)
            engine = db.get_engine(url)
            _empty(engine)
            count_commits(engine)
            return engine
        url = f"sqlite:///{self.root / f'{name}-{uuid.uuid4().hex[:6]}.db'}"
        db.migrate(url)
        engine = db.get_engine(url)
        count_commits(engine)
        return engine

    def db_url_of(self, engine: Any) -> str:
        return engine.url.render_as_string(hide_password=False)

    def cleanup(self) -> None:
        try:
            self._drop_pg_database()
        finally:
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)


class CommitCounter:
    """Transactions committed on one engine (a SQLAlchemy ``commit`` event listener)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, conn: Any) -> None:
        self.count += 1


def count_commits(engine: Any) -> CommitCounter:
    """Count the engine's commits from now on (``commits(engine)`` reads the count)."""
    from sqlalchemy import event

    counter = getattr(engine, "_bench_commits", None)
    if counter is None:
        counter = CommitCounter()
        event.listen(engine, "commit", counter)
        engine._bench_commits = counter
    return counter


def commits(engine: Any) -> int:
    counter = getattr(engine, "_bench_commits", None)
    return counter.count if counter is not None else 0


def _empty(engine: Any) -> None:
    from sqlalchemy import text

    from ml_connector.store.models import Base

    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))


def connect_exact(engine: Any, exact_url: str) -> None:
    """Consent (the sandbox's auto-consent) and the first token pair, stored in ``engine``."""
    import requests

    from ml_connector.exact.tokens import ExactApp, TokenChain
    from sandbox.exact.testing import ExactSandboxHandle

    handle = ExactSandboxHandle(url=exact_url)
    try:
        app = ExactApp(exact_url, handle.client_id, handle.client_secret, handle.redirect_uri)
        chain = TokenChain(engine, TENANT, EXACT_CONN, app, session=requests.Session())
        chain.exchange_code(handle.authorize(redirect_uri=handle.redirect_uri), handle.redirect_uri)
    finally:
        handle.admin.close()
