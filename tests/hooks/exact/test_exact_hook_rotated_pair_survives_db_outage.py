"""A token pair Exact has rotated is never lost to a database outage (issue 11).

Once Exact answers a refresh, the new refresh token exists only in the refreshing process and the stored one is
spent. These tests break the connector database exactly then, with real processes:

- PostgreSQL: a private server (``scripts/pg.sh`` on its own port and directory; the shared server on 54329 is never
  touched) is stopped and started again while the sandbox holds the refresh answer back (latency fault). The
  refresher keeps the pair, re-takes its advisory lock (it died with the server) and stores the pair; a rival
  process that takes the lock in between does not refresh with the spent token; the next refresh succeeds.
- SQLite: another process holds the database file locked while the answer arrives; the refresher keeps its flock
  and retries until the file is free (also for the code exchange).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import rotated_pair_workers as workers
from exact_hook_support import FAST, connect, mp_context, token_endpoint_statuses, wait_until
from sqlalchemy import create_engine, text

from ml_connector.store.db import session_scope
from ml_connector.store.models import TokenRecord

REPO = Path(__file__).resolve().parents[3]
PG_SH = REPO / "scripts" / "pg.sh"
SHARED_PG_PORT = 54329
TOKEN_PATH = r"/api/oauth2/token$"

# Holds the SQLite database file's write lock for argv[2] seconds (prints "locked" once it has it).
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""

# Tries the chain's flock without waiting; prints "busy" or "free".
FLOCK_PROBE = """
import fcntl, sys
with open(sys.argv[1], "a+b") as fh:
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("free")
    except BlockingIOError:
        print("busy")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """A PostgreSQL server of this module only: ``scripts/pg.sh`` with ``MLC_PG_PORT``/``MLC_PG_DIR`` of its own."""

    def __init__(self) -> None:
        self.port = _free_port()
        assert self.port != SHARED_PG_PORT
        self.dir = f"/tmp/mlc-pg-restart-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "MLC_PG_PORT": str(self.port), "MLC_PG_DIR": self.dir}
        self.admin_url = ""

    def _pg(self, command: str) -> str:
        done = subprocess.run(
            ["bash", str(PG_SH), command], env=self.env, capture_output=True, text=True, timeout=90, check=False
        )
        assert done.returncode == 0, f"scripts/pg.sh {command} failed: {done.stderr or done.stdout}"
        return done.stdout.strip()

    def start(self) -> str:
        self.admin_url = self._pg("start")
        assert f":{self.port}/" in self.admin_url
        return self.admin_url

    def stop(self) -> None:
        self._pg("stop")

    def running(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False


@pytest.fixture(scope="module")
def private_pg() -> Iterator[tuple[PrivatePostgres, str]]:
    server = PrivatePostgres()
    admin = server.start()
    try:
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text('CREATE DATABASE "mlc_restart"'))
        engine.dispose()
        url = admin.rsplit("/", 1)[0] + "/mlc_restart"
        from ml_connector.store import db

        db.migrate(url)
        yield server, url
    finally:
        from ml_connector.store.db import dispose_engines

        dispose_engines()
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def pg_engine(private_pg: tuple[PrivatePostgres, str]) -> Any:
    from ml_connector.store import db

    server, url = private_pg
    if not server.running():
        server.start()
    engine = db.get_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM mlc_token")
    return engine


def _row(engine: Any) -> TokenRecord:
    with session_scope(engine) as s:
        return s.query(TokenRecord).one()


def _marker(engine: Any) -> Any:
    try:
        return _row(engine).refresh_started_at
    except Exception:  # the database is restarting
        return None


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # reported by the test
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _assert_chain_alive(client: Any, handle: Any, sim: Any, engine: Any, refreshes: int) -> None:
    """The next refresh works: Exact accepts the stored refresh token; no token call was ever refused."""
    before = _row(engine).access_token
    sim.advance(580)
    after = client.tokens.get_access_token()
    assert after != before
    assert client.get(None, "current/Me")["d"]["results"][0]["UserID"]
    assert token_endpoint_statuses(handle) == [200] * (refreshes + 2)  # exchange + refreshes, never a 401
    chain = handle.state()["oauth"]["chains"][0]
    assert not chain["dead"] and chain["refreshes"] == refreshes + 1, chain
    stored = _row(engine)
    assert stored.status == "ok" and stored.refresh_started_at is None and stored.access_token == after


def _url(engine: Any) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.mark.postgres
def test_pair_answered_while_postgres_is_down_is_stored_when_it_is_back(
    private_pg, pg_engine, make_client, exact_sandbox, sim
) -> None:
    server, _ = private_pg
    client = make_client(pg_engine)
    connect(client, exact_sandbox)
    client.tokens.store_window = 120.0
    spent = _row(pg_engine).refresh_token
    sim.advance(580)
    # Exact takes 6 s to answer: time enough to stop the server first, even on a busy machine
    exact_sandbox.fault(method="POST", path=TOKEN_PATH, action="latency", delay_s=6, count=1)
    thread, result = _in_thread(client.tokens.get_access_token)
    assert wait_until(lambda: _marker(pg_engine) is not None, 10), "the refresh never started"
    server.stop()  # while Exact works on the refresh
    # Exact answers while the database is down: the pair cannot be stored, and is retried
    assert wait_until(lambda: client.tokens.store_retries >= 2, 30), "no failed store attempt was seen"
    assert thread.is_alive()
    server.start()
    thread.join(60)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    stored = _row(pg_engine)
    assert stored.access_token == result["value"] and stored.refresh_token != spent
    assert stored.refresh_started_at is None and stored.status == "ok"
    assert client.tokens.lock_retakes >= 1  # the advisory lock died with the server and was taken again
    _assert_chain_alive(client, exact_sandbox, sim, pg_engine, refreshes=1)


@pytest.mark.postgres
def test_rival_after_a_postgres_restart_never_refreshes_with_the_spent_token(
    private_pg, pg_engine, make_client, exact_sandbox, sim
) -> None:
    server, _ = private_pg
    latency = 15.0
    client = make_client(pg_engine, policy=replace(FAST, read_timeout=latency + 15))
    connect(client, exact_sandbox)
    client.tokens.store_window = 120.0
    sim.advance(700)  # the access token has expired: a rival cannot make do with it, it would have to refresh
    ctx = mp_context()
    ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
    rival = ctx.Process(
        target=workers.rival_refresh,
        args=(_url(pg_engine), exact_sandbox.url, exact_sandbox.client_secret, sim.anchors(), ready, go, out),
        daemon=True,
    )
    rival.start()
    try:
        assert ready.wait(90), "the rival process did not start"
        exact_sandbox.fault(method="POST", path=TOKEN_PATH, action="latency", delay_s=latency, count=1)
        sent = time.monotonic()
        thread, result = _in_thread(client.tokens.get_access_token)
        assert wait_until(lambda: _marker(pg_engine) is not None, 10), "the refresh never started"
        server.stop()  # the refresher's advisory lock dies with its session
        server.start()
        go.set()  # a rival takes the free lock while Exact still works on the refresh
        rival_result = out.get(timeout=30)
        assert time.monotonic() - sent < latency, "too slow to test: the refresh answered before the rival ran"
        assert thread.is_alive()
    finally:
        rival.join(10)
        if rival.is_alive():
            rival.kill()
    assert rival_result["token_calls"] == 0, rival_result  # it never sent the (spent) refresh token
    assert rival_result["error"] and rival_result["error"].startswith("TransientError"), rival_result
    assert "restarted" in rival_result["error"] and "may still be storing" in rival_result["error"]

    thread.join(60)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    assert client.tokens.lock_retakes >= 1
    assert _row(pg_engine).access_token == result["value"]
    _assert_chain_alive(client, exact_sandbox, sim, pg_engine, refreshes=1)


def test_sqlite_pair_stored_once_another_process_releases_the_database(
    sqlite_engine, make_client, exact_sandbox, sim
) -> None:
    client = make_client(sqlite_engine)
    connect(client, exact_sandbox)
    client.tokens.store_window = 60.0
    client.tokens.store_attempt_timeout = 0.5  # one attempt waits 0.5 s for the locked file (default 30 s)
    spent = _row(sqlite_engine).refresh_token
    sim.advance(580)
    exact_sandbox.fault(method="POST", path=TOKEN_PATH, action="latency", delay_s=4, count=1)
    thread, result = _in_thread(client.tokens.get_access_token)
    assert wait_until(lambda: _marker(sqlite_engine) is not None, 10), "the refresh never started"
    database = sqlite_engine.url.database
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, database, "8"], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        assert wait_until(lambda: client.tokens.store_retries >= 2, 20), "no failed store attempt was seen"
        # Still holding the chain lock while it retries: no other process could refresh meanwhile.
        lock_path = str(client.tokens.lock._path)
        probe = subprocess.run([sys.executable, "-c", FLOCK_PROBE, lock_path], capture_output=True, text=True)
        assert probe.stdout.strip() == "busy", probe
        assert thread.is_alive()
    finally:
        assert locker.wait(20) == 0
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    stored = _row(sqlite_engine)
    assert stored.access_token == result["value"] and stored.refresh_token != spent
    assert stored.refresh_started_at is None
    _assert_chain_alive(client, exact_sandbox, sim, sqlite_engine, refreshes=1)


def test_sqlite_code_exchange_is_stored_once_the_database_is_free(sqlite_engine, make_client, exact_sandbox) -> None:
    client = make_client(sqlite_engine)
    client.tokens.store_attempt_timeout = 0.5
    exact_sandbox.fault(method="POST", path=TOKEN_PATH, action="latency", delay_s=3, count=1)
    thread, result = _in_thread(lambda: connect(client, exact_sandbox))

    def counted() -> bool:  # the call is counted (committed) before it is sent
        try:
            return _row(sqlite_engine).token_calls_today == 1
        except Exception:
            return False

    assert wait_until(counted, 10)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, sqlite_engine.url.database, "6"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        assert wait_until(lambda: client.tokens.store_retries >= 1, 20), "no failed store attempt was seen"
    finally:
        assert locker.wait(20) == 0
    thread.join(30)
    assert "error" not in result, result.get("error")
    assert client.get(None, "current/Me")["d"]["results"][0]["UserID"]
    assert _row(sqlite_engine).status == "ok"


def test_pair_that_cannot_be_stored_in_time_fails_naming_state_and_fix(
    sqlite_engine, make_client, exact_sandbox, sim
) -> None:
    alerts: list[Any] = []
    client = make_client(sqlite_engine, on_broken=alerts.append)
    connect(client, exact_sandbox)
    client.tokens.store_window = 2.0
    client.tokens.store_attempt_timeout = 0.3
    sim.advance(580)
    exact_sandbox.fault(method="POST", path=TOKEN_PATH, action="latency", delay_s=3, count=1)
    thread, result = _in_thread(client.tokens.get_access_token)
    assert wait_until(lambda: _marker(sqlite_engine) is not None, 10)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, sqlite_engine.url.database, "9"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        thread.join(30)
    finally:
        assert locker.wait(20) == 0
    from ml_connector.errors import TokenChainBroken

    err = result.get("error")
    assert isinstance(err, TokenChainBroken), result
    message = str(err)
    assert "Exact issued a new token pair for connection exact_demo" in message
    assert "could not store it for 2s" in message and "database is locked" in message
    assert "mlc exact connect --tenant demo" in message
    assert alerts and alerts[0] is err
