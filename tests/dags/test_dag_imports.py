"""DAG files parse fast, with no network and no database, and no connector code touches Airflow's ORM.

The timing runs in a fresh interpreter: Airflow and its DAG-authoring API (``airflow.sdk``, the ``@task``
decorator's module and the timetable base that ``DAG()`` imports on first use — all loaded in a dag-processor
anyway) are imported first, then sockets and SQLAlchemy's
``create_engine`` are made to raise, then each file in ``dags/`` is executed and timed.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
MAX_SECONDS = 0.5

_PROBE = r"""
import importlib.util, json, socket, sys, time
import airflow, airflow.sdk
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, TaskGroup, task  # noqa: F401
import airflow.providers.standard.decorators.python  # noqa: F401  (what @task loads on first use)
import airflow.timetables.base  # noqa: F401  (what DAG() loads on first use)
import sqlalchemy, sqlalchemy.engine

def _no(*a, **k):
    raise RuntimeError("network or database access at DAG import time")

socket.socket.connect = _no
socket.socket.connect_ex = _no
socket.create_connection = _no
socket.getaddrinfo = _no
sqlalchemy.create_engine = _no
sqlalchemy.engine.create_engine = _no

out = {}
for path in sys.argv[1:]:
    t = time.perf_counter()
    spec = importlib.util.spec_from_file_location("dagfile_" + str(abs(hash(path))), path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        error = None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    dags = sorted(k for k, v in vars(module).items() if type(v).__name__ == "DAG")
    out[path] = {"seconds": time.perf_counter() - t, "dags": dags, "error": error}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def import_probe() -> dict[str, dict]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *map(str, DAG_FILES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=REPO,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, f"probe failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_imports_fast_without_network_or_database(import_probe: dict[str, dict], path: Path) -> None:
    result = import_probe[str(path)]
    assert result["error"] is None, result["error"]
    assert result["dags"], f"{path.name} defines no DAG"
    assert result["seconds"] < MAX_SECONDS, f"{path.name} took {result['seconds']:.3f}s to import"


def test_po_push_file_defines_one_dag_per_tenant(import_probe: dict[str, dict]) -> None:
    assert import_probe[str(REPO / "dags" / "exact_po_push.py")]["dags"] == ["exact_po_push__demo"]


def _orm_uses(path: Path) -> list[str]:
    """Imports of Airflow's ORM session (and ``settings.Session`` on an imported ``airflow.settings``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    settings_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("airflow.utils.session"):
                    found.append(f"line {node.lineno}: import {alias.name}")
                if alias.name == "airflow.settings":
                    settings_names.add(alias.asname or "airflow.settings")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {a.name for a in node.names}
            if module.startswith("airflow.utils.session") or (module == "airflow.utils" and "session" in names):
                found.append(f"line {node.lineno}: from {module} import {', '.join(sorted(names))}")
            if module == "airflow.settings" and "Session" in names:
                found.append(f"line {node.lineno}: from airflow.settings import Session")
            if module == "airflow" and "settings" in names:
                settings_names.update(a.asname or a.name for a in node.names if a.name == "settings")
        elif isinstance(node, ast.Attribute) and node.attr == "Session":
            base = ast.unparse(node.value)
            if base in settings_names or base == "airflow.settings":
                found.append(f"line {node.lineno}: {base}.Session")
    return found


def test_no_module_uses_airflows_orm_session() -> None:
    files = sorted((REPO / "include" / "ml_connector").rglob("*.py")) + DAG_FILES
    assert len(files) > 20
    offenders = {str(f.relative_to(REPO)): uses for f in files if (uses := _orm_uses(f))}
    assert offenders == {}, f"tasks may not use Airflow's ORM (use ml_connector.store): {offenders}"


def test_the_orm_check_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from airflow.utils.session import create_session\n"
        "from airflow import settings\n"
        "from airflow.settings import Session\n"
        "s = settings.Session()\n"
    )
    assert len(_orm_uses(bad)) == 3  # the plain "from airflow import settings" is fine; its .Session is not
