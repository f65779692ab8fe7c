"""Two ``airflow dags test`` processes of the invoice poll over the same dates, started together, against an Exact
that answers each POST after seconds: the way the first round posted invoices twice. ``dags test`` ignores pools
and each process has its own Airflow metadata database, so nothing of Airflow keeps them apart: only the
connector's posting lease and ledger do. Exactly one purchase entry per invoice must come out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows" / "invoice_poll"))

from invoice_poll_support import Servers, World, start_servers, stop_servers, world_fixture

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "jaggaer_invoice_poll__demo"


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    s = start_servers()
    try:
        yield s
    finally:
        stop_servers(s)


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Airflow metadata database migrated by the CLI (``airflow db migrate``, about 10 s), copied per process."""
    home = tmp_path_factory.mktemp("airflow-template")
    env = dict(
        os.environ, AIRFLOW_HOME=str(home), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}"
    )
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return home / "airflow.db"


@pytest.fixture
def world(airflow_db: Path, servers: Servers, sqlite_engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("MLC_DB_URL", str(sqlite_engine.url))
    monkeypatch.setenv("MLC_TASK_RETRIES", "1")
    monkeypatch.setenv("MLC_TASK_RETRY_DELAY", "0.2")
    yield from world_fixture(servers, sqlite_engine, monkeypatch)


def _airflow_env(home: Path, migrated_db: Path) -> dict[str, str]:
    """A private Airflow home per process (its own copy of the migrated metadata database); everything else — the
    connector database, the connections, the tenant file — shared, as two workers of one deployment share it."""
    home.mkdir(parents=True)
    shutil.copy(migrated_db, home / "airflow.db")
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    return env


@pytest.mark.slow
def test_two_dags_test_processes_at_once_post_each_invoice_once(
    world: World, migrated_db: Path, tmp_path: Path
) -> None:
    w = world
    refs = [f"TWO-{i}" for i in range(4)]
    for i, ref in enumerate(refs):
        w.invoice(hour=9 + i, supplier_invoice_number=ref, lines=[{"unit_price": f"{100 + i}.00"}])
    # Exact answers each purchase-entry POST after 2 s: both runs are in their post stages at the same time
    w.exact.fault(method="POST", path="PurchaseEntries", action="latency", delay_s=2.0, count=None)
    # the next day 03:00 London: the inferred one-day interval [day 02:00, day+1 02:00) covers the invoices
    logical = datetime(w.day.year, w.day.month, w.day.day, 3, tzinfo=ZoneInfo("Europe/London")) + timedelta(days=1)
    logical_text = logical.isoformat()
    _run_together(DAG_ID, logical_text, migrated_db, tmp_path)
    for ref in refs:
        assert len(w.entries_for(ref)) == 1, ref
    posts = [c for c in w.exact.calls()["log"] if c["method"] == "POST" and "PurchaseEntries" in c["path"]]
    assert len(posts) == len(refs)  # no second POST of any invoice, not even one refused or found later
    assert w.states().get("posted") == len(refs)


def _run_together(dag_id: str, logical: str, migrated: Path, tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical],
            env=_airflow_env(tmp_path / f"{dag_id}-home{i}", migrated),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
