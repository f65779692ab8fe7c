"""`make up` on a fresh checkout, and again after a restart, runs tasks.

The pieces of ``make up`` run here for real, in subprocesses, on a private Airflow home and free ports: the
Makefile's ``home`` recipe (``scripts/init_home.py``, ``airflow db migrate``, the demo connections, ``mlc db
upgrade``, ``mlc pools sync``), then ``scripts/up.sh`` (sandboxes, connector database reset, automatic Exact
consent, ``airflow standalone`` on SQLite). A run of each DAG (PO push, invoice poll), triggered through the REST
API the UI's *Trigger* button calls, must succeed; then the whole thing is stopped the way a person does (Ctrl-C),
started again, and a second run of each must succeed too (no dead token chain, no stale secret). Without ``[api_auth]
jwt_secret`` in the home every task is refused by the api-server ("Signature verification failed") and the first run
fails; without the reset/re-consent the second run fails with "Unknown refresh token". About 5-6 minutes.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from e2e_stack import EXACT_DAG, JAGGAER_DAG, REPO, VENV_BIN, free_port, tail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

SECRETS = [("core", "fernet_key"), ("api", "secret_key"), ("api_auth", "jwt_secret"), ("ml_connector", "fernet_keys")]


class UpRun:
    """One private ``make up`` home; ``start()`` / ``stop()`` the way a person does."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.api_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLC_", "_AIRFLOW"))}
        self.env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__API__PORT=str(self.api_port),
            AIRFLOW__API__BASE_URL=f"http://localhost:{self.api_port}",
            AIRFLOW__API__WORKERS="1",  # two shared cores
            # only the DAG under test runs (unpaused below): no scheduled invoice poll competing for the cores
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
            MLC_EXACT_PORT=str(free_port()),
            MLC_JAGGAER_PORT=str(free_port()),
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.http = requests.Session()
        self.http.trust_env = False

    @property
    def url(self) -> str:
        return f"http://localhost:{self.api_port}"

    @property
    def log(self) -> Path:
        return self.home / f"up-{self.starts}.log"

    def run(self, *argv: str) -> None:
        """One step of the Makefile's ``home`` recipe."""
        r = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"

    def home_recipe(self) -> None:
        self.run(sys.executable, "scripts/init_home.py")
        self.run("airflow", "db", "migrate")
        self.run("airflow", "connections", "import", "--overwrite", str(self.home / "connections.demo.json"))
        self.run("mlc", "db", "upgrade")
        self.run("mlc", "pools", "sync")

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                ["bash", "scripts/up.sh"],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """Ctrl-C (SIGINT to the whole foreground group), then SIGTERM / SIGKILL for what is left."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        for sig, wait in ((signal.SIGINT, 40), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
                break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group (task supervisors)

    def evidence(self) -> str:
        parts = [f"----- {self.log} -----\n{tail(self.log, 60)}"]
        for path in sorted(self.home.glob("logs/dag_id=*/**/attempt=*.log"), key=lambda p: p.stat().st_mtime)[-2:]:
            parts.append(f"----- {path} -----\n{tail(path, 30)}")
        return "\n".join(parts)

    def wait(self, what: str, check: object, timeout: float) -> object:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"make up exited\n{self.evidence()}"
            try:
                last = check()  # type: ignore[operator]
                if last:
                    return last
            except (requests.RequestException, ValueError, KeyError) as exc:
                last = exc
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{self.evidence()}")

    def login(self) -> str:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        password = self.wait("the admin password", lambda: path.exists() and json.loads(path.read_text()), 120)
        assert isinstance(password, dict)

        def token() -> str | None:
            r = self.http.post(f"{self.url}/auth/token", json={"username": "admin", "password": password["admin"]})
            return r.json()["access_token"] if r.status_code in (200, 201) else None

        return str(self.wait("a login at the api-server", token, 300))

    def trigger_and_wait(self, token: str, dag_id: str = EXACT_DAG, timeout: float = 360) -> dict[str, object]:
        """Trigger ``dag_id`` as the UI's *Trigger* button does (the REST API the UI calls) and wait for success."""
        headers = {"Authorization": f"Bearer {token}"}
        api = f"{self.url}/api/v2/dags/{dag_id}/dagRuns"
        self.wait(f"the DAG {dag_id}", lambda: self.http.get(f"{api}?limit=1", headers=headers).ok, 120)
        dag = f"{self.url}/api/v2/dags/{dag_id}"
        r = self.http.patch(dag, json={"is_paused": False}, headers=headers)
        assert r.ok, f"unpause: HTTP {r.status_code} {r.text[:300]}"
        r = self.http.post(api, json={"logical_date": None, "conf": {}}, headers=headers)
        assert r.status_code == 200, f"trigger: HTTP {r.status_code} {r.text[:500]}"
        run_id = r.json()["dag_run_id"]

        def finished() -> dict[str, object] | None:
            run = self.http.get(f"{api}/{run_id}", headers=headers).json()
            return run if run["state"] in ("success", "failed") else None

        run = self.wait(f"run {run_id}", finished, timeout)
        assert isinstance(run, dict)
        tis = self.http.get(f"{api}/{run_id}/taskInstances", headers=headers).json()["task_instances"]
        states = {ti["task_id"]: ti["state"] for ti in tis}
        assert run["state"] == "success", f"run {run_id}: {run['state']} {states}\n{self.evidence()}"
        assert "success" in states.values(), states
        return states

    def secrets(self) -> dict[str, str]:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(self.home / "airflow.cfg")
        return {f"{s}.{k}": parser.get(s, k, fallback="") for s, k in SECRETS}


@pytest.fixture
def up(tmp_path: Path) -> Iterator[UpRun]:
    run = UpRun(tmp_path / "airflow-home")
    try:
        yield run
    finally:
        run.stop()


def test_make_up_runs_tasks_on_a_fresh_home_and_after_a_restart(up: UpRun) -> None:
    up.home_recipe()
    secrets = up.secrets()
    assert all(secrets.values()), f"init_home.py left secrets out: {[k for k, v in secrets.items() if not v]}"
    conns = json.loads((up.home / "connections.demo.json").read_text())
    redirect = json.loads(conns["exact_demo"]["extra"])["redirect_uri"]
    assert redirect == "http://localhost:8080/ml-connector/exact/callback", redirect

    up.start()
    token = up.login()
    for dag_id in (EXACT_DAG, JAGGAER_DAG):  # each DAG's run succeeds on a fresh home
        states = up.trigger_and_wait(token, dag_id)
        assert states, (dag_id, states)
    # the connection list's Test button on the SQLite connector database (port 0, as the UI sends it)
    body = {"connection_id": "ml_connector_db", "conn_type": "sqlite", "host": str(up.home / "ml_connector.db")}
    r = up.http.post(
        f"{up.url}/api/v2/connections/test", json={**body, "port": 0}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200 and r.json()["status"] is True, r.text
    assert "newest revision" in r.json()["message"], r.text
    up.stop()

    up.start()
    token = up.login()
    for dag_id in (EXACT_DAG, JAGGAER_DAG):  # ... and again after a restart
        states = up.trigger_and_wait(token, dag_id)
        assert states, (dag_id, states)
    log = up.log.read_text(errors="replace")
    assert "connector database starts fresh" in log and "is connected to Exact Online" in log, tail(up.log, 40)
    up.stop()
    assert up.secrets() == secrets, "the secrets in airflow.cfg changed across restarts"
