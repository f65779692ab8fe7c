"""Secrets scan: after both flows ran as Airflow DAGs (``dag.test()``) against the sandboxes with DEBUG logging, with
faults (JAGGAER rejecting a PO import, Exact answering 503 twice, JAGGAER down, a dead Exact token chain, refused
credentials), no client secret, XML SharedSecret, access token or refresh token appears in the task logs, the
XComs, the audit rows, the ledger rows (and staged records), the exception texts or the CSV exports.

The Exact sandbox issues tokens that start with ``mlc-at-`` / ``mlc-rt-``, and JAGGAER's are JWTs (``eyJ…``): a
pattern finds any of them, not only the last pair; every JAGGAER token the hook fetched is also looked for by value.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "flows" / "po_push"))
sys.path.insert(0, str(HERE.parent / "flows" / "invoice_poll"))

import invoice_poll_support as ips  # noqa: E402
import po_push_support as pps  # noqa: E402

SECRETS = {
    "Exact client secret": "mlc-demo-secret",  # (the JAGGAER demo client secret is the same string)
    "JAGGAER XML SharedSecret": "mlc-demo-xml-secret",
}
TOKEN_PATTERNS = {
    "Exact access token": re.compile(r"mlc-at-[A-Za-z0-9_-]{8,}"),
    "Exact refresh token": re.compile(r"mlc-rt-[A-Za-z0-9_-]{8,}"),
    "JAGGAER access token (JWT)": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}"),
}


@dataclass
class Haystack:
    """Everything the scan reads, by where it came from."""

    parts: dict[str, str] = field(default_factory=dict)
    jaggaer_tokens: list[str] = field(default_factory=list)

    def add(self, where: str, text: Any) -> None:
        self.parts[where] = self.parts.get(where, "") + "\n" + str(text)


@contextlib.contextmanager
def _fd_capture() -> Iterator[Path]:
    """Everything written to file descriptors 1 and 2 (what a task prints, however it prints it)."""
    handle, name = tempfile.mkstemp(prefix="mlc-secrets-scan-")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    try:
        yield Path(name)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(handle)
        for fd in saved:
            os.close(fd)


@contextlib.contextmanager
def _debug_logging() -> Iterator[io.StringIO]:
    """Every log record of every logger at DEBUG, formatted with its traceback."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    names = ["", "ml_connector", "airflow", "airflow.task", "urllib3", "requests"]
    levels = {n: logging.getLogger(n).level for n in names}
    root.addHandler(handler)
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def _rows_as_text(engine: Any) -> dict[str, str]:
    from sqlalchemy import select

    from ml_connector.store.db import session_scope
    from ml_connector.store.models import AuditLog, LedgerEntry, StagedRecord

    out: dict[str, str] = {}
    with session_scope(engine) as s:
        for name, model in (("audit rows", AuditLog), ("ledger rows", LedgerEntry), ("staged records", StagedRecord)):
            rows = s.scalars(select(model)).all()
            out[name] = "\n".join(
                repr({c.name: getattr(r, c.key, None) for c in model.__table__.columns}) for r in rows
            )
            assert rows or name == "staged records", f"no {name}: the flows did not run"
    return out


def _csv_exports(engine: Any) -> str:
    from ml_connector.mappings.csvio import export_codes, export_vendors
    from ml_connector.store.db import session_scope

    out = io.StringIO()
    with session_scope(engine) as s:
        export_vendors(s, "demo", out)
        export_codes(s, "demo", out)
    return out.getvalue()


def _xcoms(run_ids: list[str]) -> str:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session  # noqa: TID251 - the test reads Airflow's XCom table

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.run_id.in_(run_ids)).all()
        assert rows, "no XComs: the DAG runs did not happen"
        return "\n".join(f"{r.dag_id} {r.task_id} {r.key} {r.value!r}" for r in rows)


def _engine(tmp: Path) -> Any:
    from ml_connector.store import db

    url = f"sqlite:///{tmp / 'connector.db'}"
    db.migrate(url)
    return db.get_engine(url)


@pytest.fixture(scope="module")
def haystack(
    airflow_db: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Haystack]:
    from airflow.utils.state import DagRunState

    from ml_connector.jaggaer import hook as jaggaer_hook

    hay = Haystack()
    mp = pytest.MonkeyPatch()
    engine = _engine(tmp_path_factory.mktemp("scan"))
    mp.setenv("MLC_DB_URL", engine.url.render_as_string(hide_password=False))
    mp.setenv("MLC_TASK_RETRIES", "1")
    mp.setenv("MLC_TASK_RETRY_DELAY", "0.2")
    fetch = jaggaer_hook.JaggaerHook._fetch_token

    def recording_fetch(self: Any, cfg: Any) -> Any:  # observe every JAGGAER token the hook obtains
        token = fetch(self, cfg)
        hay.jaggaer_tokens.append(token.value)
        return token

    mp.setattr(jaggaer_hook.JaggaerHook, "_fetch_token", recording_fetch)
    run_ids: list[str] = []
    servers = ips.start_servers()
    try:
        with _debug_logging() as logs, _fd_capture() as printed:
            # -- PO push: two orders, JAGGAER refuses the first PO import once (HTTP 500 with a body)
            from ml_connector.dagbuild.po_push import build_dag as build_po_dag

            pw = pps.make_world(engine, mp)
            pw.create_po("1001", [pps.line()])
            pw.create_po("1002", [pps.line()], division=pps.DIV2)
            pw.jaggaer_fault(path="POXMLImport", action="status", status=500, count=1, body="internal error")
            run = build_po_dag(pw.tenant).test()
            run_ids.append(run.run_id)
            assert pw.jaggaer_pos(), "the PO push posted nothing"

            # -- invoice poll: one invoice posted through two Exact 503s, then a run with JAGGAER down
            from ml_connector.dagbuild.invoice_poll import build_dag as build_poll_dag

            iw = ips.World(servers, engine, mp)
            iw.reset()
            iw.invoice(hour=9, supplier_invoice_number="SCAN-1", lines=[{"unit_price": "40.00"}])
            iw.exact.fault(method="POST", path="PurchaseEntries", action="status", status=503, count=2)
            london = ZoneInfo("Europe/London")
            logical = datetime(iw.day.year, iw.day.month, iw.day.day, 2, tzinfo=london) + timedelta(days=1, hours=1)
            run = build_poll_dag(iw.tenant).test(logical_date=logical)
            run_ids.append(run.run_id)
            assert run.state == DagRunState.SUCCESS and len(iw.entries_for("SCAN-1")) == 1
            iw.jag("POST", "faults", {"path": "/j1p/api/public/ji/v1/invoices", "count": None, "status": 503})
            mp.setenv("MLC_TASK_RETRIES", "0")
            run = build_poll_dag(iw.tenant).test(logical_date=logical + timedelta(days=1))
            run_ids.append(run.run_id)
            assert run.state == DagRunState.FAILED
            iw.jag("DELETE", "faults")
            iw.exact.clear_faults()

            # -- a dead Exact chain: a run fails at once and alerts, naming the tenant and the fix
            from ml_connector.exact.tokens import TokenChain

            chain = TokenChain(engine, "demo", ips.EXACT_CONN, _load_app())
            iw.invoice(day=iw.day + timedelta(days=2), hour=9, supplier_invoice_number="SCAN-2")
            iw.exact.settings(old_access_token_valid_after_refresh=False)  # the thief's refresh kills our token too
            iw.exact.advance(600)
            assert iw.exact.refresh(chain._read().refresh_token).status_code == 200  # used elsewhere: chain dead
            run = build_poll_dag(iw.tenant).test(logical_date=logical + timedelta(days=2))
            run_ids.append(run.run_id)
            assert run.state == DagRunState.FAILED
            _exceptions_simple(hay, iw, engine)
            iw.close()
        hay.add("task logs (logging, DEBUG)", logs.getvalue())
        hay.add("task logs (stdout/stderr)", printed.read_text(encoding="utf-8", errors="replace"))
        printed.unlink()
        # Airflow's task logger (structlog) writes to the sys.stdout it found, which under pytest is pytest's
        # capture: read that too (and hand it back, so a failure still shows it).
        capman = request.config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            out, err = capman.read_global_capture()
            hay.add("task logs (stdout/stderr)", out + err)
            sys.stdout.write(out)
            sys.stderr.write(err)
        home = Path(os.environ["AIRFLOW_HOME"]) / "logs"
        for path in sorted(home.rglob("*")) if home.exists() else []:
            if path.is_file():
                hay.add("task logs (files)", path.read_text(encoding="utf-8", errors="replace"))
        hay.add("XComs", _xcoms(run_ids))
        for where, text in _rows_as_text(engine).items():
            hay.add(where, text)
        hay.add("CSV exports", _csv_exports(engine))
        yield hay
    finally:
        mp.undo()
        ips.stop_servers(servers)


def _load_app() -> Any:
    from ml_connector.exact.connection import load_app

    return load_app(ips.EXACT_CONN)


def _exceptions_simple(hay: Haystack, iw: Any, engine: Any) -> None:
    """Exception texts an operator or an alert gets: the dead chain, refused credentials, a refused XML header."""
    from ml_connector.errors import ConnectorError
    from ml_connector.exact.client import ExactClient
    from ml_connector.jaggaer.hook import JaggaerHook, clear_token_cache

    def record(what: str, call: Any) -> None:
        try:
            result = call()
        except ConnectorError as exc:
            hay.add("exception texts", f"{what}: {type(exc).__name__}: {exc} | {exc!r} | {exc.args!r}")
        else:
            hay.add("exception texts", f"{what}: returned {result!r}")

    client = ExactClient(_load_app(), "demo", ips.EXACT_CONN, engine=engine, on_broken=lambda exc: None)
    record("Exact call on a dead chain", lambda: client.get(None, "current/Me"))
    record("Exact connection test on a dead chain", lambda: client.test_connection([ips.DIV_MFG]))
    env_key = f"AIRFLOW_CONN_{ips.JAGGAER_CONN.upper()}"
    good = os.environ[env_key]
    for what, wrong in (
        ("JAGGAER wrong XML secret", good.replace("mlc-demo-xml-secret", "mlc-wrong-xml-00")),
        ("JAGGAER wrong client secret", good.replace('"password": "mlc-demo-secret"', '"password": "wrong-00"')),
    ):
        os.environ[env_key] = wrong
        clear_token_cache()
        hook = JaggaerHook(ips.JAGGAER_CONN, tenant="demo")
        record(what, hook.test_connection)
        record(
            f"{what} (a read)",
            lambda hook=hook: list(
                hook.iter_invoices(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
            ),
        )
    os.environ[env_key] = good
    clear_token_cache()


def _leaks(hay: Haystack, where: str) -> list[str]:
    text = hay.parts.get(where, "")
    found = [name for name, secret in SECRETS.items() if secret in text]
    found += [name for name, pattern in TOKEN_PATTERNS.items() if pattern.search(text)]
    found += ["a JAGGAER access token (by value)" for token in set(hay.jaggaer_tokens) if token in text]
    return found


@pytest.mark.parametrize(
    "where",
    [
        "task logs (logging, DEBUG)",
        "task logs (stdout/stderr)",
        "task logs (files)",
        "XComs",
        "audit rows",
        "ledger rows",
        "staged records",
        "exception texts",
        "CSV exports",
    ],
)
def test_no_secret_or_token_in(haystack: Haystack, where: str) -> None:
    assert _leaks(haystack, where) == [], where


def test_the_scan_saw_the_runs_and_can_find_a_leak(haystack: Haystack) -> None:
    """The haystack is not empty, tokens were issued, and the same scan does flag a planted secret and tokens."""
    assert haystack.jaggaer_tokens, "no JAGGAER token was fetched"
    sizes = {where: len(text) for where, text in haystack.parts.items()}
    for where in ("task logs (logging, DEBUG)", "task logs (stdout/stderr)", "XComs", "audit rows", "ledger rows"):
        assert sizes.get(where, 0) > 100, sizes
    ledger = haystack.parts["ledger rows"]
    assert "'po_push'" in ledger and "'invoice_poll'" in ledger
    assert "Task failed with exception" in haystack.parts["task logs (stdout/stderr)"]  # the faults did happen
    assert "TokenChainBroken" in haystack.parts["exception texts"]
    assert "DEBUG ml_connector" in haystack.parts["task logs (logging, DEBUG)"]
    planted = Haystack(
        parts={"x": f"a mlc-demo-xml-secret b mlc-rt-{'A' * 20} c {haystack.jaggaer_tokens[0]}"},
        jaggaer_tokens=haystack.jaggaer_tokens,
    )
    assert set(_leaks(planted, "x")) >= {
        "JAGGAER XML SharedSecret",
        "Exact refresh token",
        "JAGGAER access token (JWT)",
        "a JAGGAER access token (by value)",
    }
