"""A real Airflow deployment for the end-to-end tests: api-server, scheduler, dag-processor and triggerer (it runs
the PO push's asset watchers: Exact webhook notifications) as subprocesses,
LocalExecutor, metadata and connector tables on PostgreSQL, and the two sandboxes in this process.

``AirflowStack.start()`` builds a private AIRFLOW_HOME (an ``airflow.cfg`` written here, nothing inherited from the
test process), creates a database of its own on the test PostgreSQL server, runs ``airflow db migrate`` and
``mlc db upgrade``, imports the demo connections (pointing at the sandboxes' real ports), starts the components and
waits until ``/api/v2/monitor/health`` reports them healthy. ``stop()`` kills every process group it started and
drops the database; it is safe to call twice and runs at interpreter exit as a last resort. Every child also gets
``PR_SET_PDEATHSIG`` so it goes away when the test process is killed outright.

Everything a test needs to talk to the stack is here too: a REST client with the admin's JWT, waits for DAGs, runs
and backfills with diagnostics (component log tails, failed task logs) when they time out or fail.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ADMIN_USER = "admin"
TENANT = "demo"
EXACT_DAG = f"exact_po_push__{TENANT}"
JAGGAER_DAG = f"jaggaer_invoice_poll__{TENANT}"
TERMINAL_RUN_STATES = {"success", "failed"}
# The long-running components; a test fails with their log tails when one of them dies.
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

# Runs ``argv`` after asking the kernel to SIGTERM it when its parent (this test process) dies: a SIGKILLed pytest
# must not leave a scheduler behind. The flag survives exec.
_PDEATHSIG = (
    "import ctypes,os,signal,sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "sys.exit(1) if os.getppid() == 1 else os.execvp(sys.argv[1], sys.argv[1:])"
)


class StackError(RuntimeError):
    """The stack did not come up (or a wait timed out); the message carries the evidence."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(data[-lines:])


@dataclass
class Proc:
    """One child process in a process group of its own, with its output in ``log``."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        """Signal the whole group (the child leads its own group: ``start_new_session``)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def finish(self, timeout: float) -> None:
        """Wait for the leader up to ``timeout`` (SIGKILL after), then SIGKILL what is left in its group (executor
        workers, task supervisors, api-server workers). Only for a process that was running when stopping began:
        the id of one reaped earlier may belong to someone else by now."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)
        self.signal_group(signal.SIGKILL)  # stragglers, right after the leader was reaped

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.signal_group(signal.SIGTERM)
            self.finish(timeout)

    def describe(self, lines: int = 40) -> str:
        state = "running" if self.alive else f"exited with {self.popen.returncode}"
        return f"----- {self.name} ({state}), last {lines} lines of {self.log} -----\n{tail(self.log, lines)}"


@dataclass
class AirflowStack:
    pg_url: str  # a database URL on the test PostgreSQL server (the stack creates a sibling database)
    api_port: int = field(default_factory=free_port)
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mlc-e2e-")))
    procs: dict[str, Proc] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    # filled by start()
    db_name: str = ""
    db_url: str = ""  # SQLAlchemy URL (psycopg2) of the stack's database: Airflow's tables and the connector's
    exact_url: str = ""
    jaggaer_url: str = ""
    token: str = ""
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    exact: Any = None  # sandbox.exact.testing.ExactSandboxHandle
    jaggaer_server: Any = None  # sandbox.common.server.ServerThread
    jaggaer: Any = None  # sandbox.jaggaer.JaggaerSandbox (in-process)
    _engine: Engine | None = None
    _admin_engine: Engine | None = None
    _session: requests.Session | None = None
    _stopped: bool = False
    keep_home: bool = field(default_factory=lambda: bool(os.environ.get("MLC_E2E_KEEP_HOME")))

    # ------------------------------------------------------------------------------------------- properties
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def callback_url(self) -> str:
        return f"{self.api_url}/ml-connector/exact/callback"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def engine(self) -> Engine:
        """The connector's tables (schema ``ml_connector``) in the stack's database."""
        if self._engine is None:
            self._engine = create_engine(self.db_url, connect_args={"options": "-csearch_path=ml_connector"})
        return self._engine

    # ------------------------------------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 180.0) -> AirflowStack:
        t0 = time.monotonic()
        atexit.register(self.stop)
        try:
            self._create_database()
            self._start_sandboxes()
            self._write_home()
            self.timings["prepare"] = time.monotonic() - t0

            t = time.monotonic()
            migrate = self._spawn("db-migrate", ["airflow", "db", "migrate"])
            upgrade = self._spawn("mlc-db-upgrade", ["mlc", "db", "upgrade"])
            self._wait_exit(migrate, timeout=120)
            self._wait_exit(upgrade, timeout=120)
            self.timings["migrate"] = time.monotonic() - t

            # The scheduler starts once the connections and pools exist, so no task ever runs without them.
            t = time.monotonic()
            conns = self._spawn(
                "connections-import", ["airflow", "connections", "import", str(self.home / "connections.json")]
            )
            pools = self._spawn("mlc-pools-sync", ["mlc", "pools", "sync"])
            self._spawn("dag-processor", ["airflow", "dag-processor"])
            self._spawn("api-server", ["airflow", "api-server", "--port", str(self.api_port), "--host", "127.0.0.1"])
            self._wait_exit(conns, timeout=120)
            self._wait_exit(pools, timeout=120)
            self._spawn("scheduler", ["airflow", "scheduler"])
            self._spawn("triggerer", ["airflow", "triggerer"])
            self._wait_healthy(deadline=t0 + timeout)
            self.timings["components"] = time.monotonic() - t

            t = time.monotonic()
            self.token = self._login()
            self.timings["login"] = time.monotonic() - t
            self.timings["total"] = time.monotonic() - t0
            (self.home / "startup-timings.json").write_text(json.dumps(self.timings, indent=2), encoding="utf-8")
            return self
        except BaseException:
            self.keep_home = True
            self.stop()
            raise

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        # the scheduler first (no new task starts), then the rest at once; up to 15 s to exit cleanly
        running = sorted(
            (p for p in self.procs.values() if p.popen.poll() is None), key=lambda p: p.name != "scheduler"
        )
        for proc in running:
            proc.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in running:
            proc.finish(max(0.1, deadline - time.monotonic()))
        if self._session is not None:
            self._session.close()
        if self.exact is not None:
            self.exact.stop()
        if self.jaggaer_server is not None:
            self.jaggaer_server.stop()
        if self._engine is not None:
            self._engine.dispose()
        if self._admin_engine is not None:
            with contextlib.suppress(Exception), self._admin_engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
            self._admin_engine.dispose()
        if self.keep_home:
            print(f"e2e: Airflow home kept for inspection: {self.home}", file=sys.stderr)
        else:
            shutil.rmtree(self.home, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    # ------------------------------------------------------------------------------------------- steps
    def _create_database(self) -> None:
        self.db_name = f"mlc_e2e_{uuid.uuid4().hex[:10]}"
        self._admin_engine = create_engine(self.pg_url, isolation_level="AUTOCOMMIT")
        with self._admin_engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
        url = make_url(self.pg_url).set(drivername="postgresql+psycopg2", database=self.db_name)
        self.db_url = url.render_as_string(hide_password=False)

    def _start_sandboxes(self) -> None:
        from sandbox.common.server import ServerThread
        from sandbox.exact.testing import ExactSandboxHandle
        from sandbox.jaggaer import create_app as create_jaggaer

        # The consent comes back to the plugin's callback on this stack's api-server port; webhooks may go to the
        # receiver on loopback over http (Exact itself delivers to https only).
        self.exact = ExactSandboxHandle(
            settings={"extra_redirect_uris": [self.callback_url], "webhook_allow_http": True}
        )
        self.exact_url = self.exact.start()
        app = create_jaggaer()
        self.jaggaer = app.state.sandbox
        self.jaggaer_server = ServerThread(app)
        self.jaggaer_url = self.jaggaer_server.start()

    def _write_home(self) -> None:
        from sandbox.exact.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_WEBHOOK_SECRET
        from sandbox.jaggaer.seed import DEMO

        home = self.home
        self.logs.mkdir(parents=True, exist_ok=True)
        (home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}), encoding="utf-8")

        # The demo tenant, with one change: the PO push is scheduled once a year, so no scheduled run lands in
        # the middle of a test (the invoice poll keeps its daily data-interval schedule: the backfill needs it).
        tenants = yaml.safe_load((REPO / "include" / "config" / "tenants.yaml").read_text(encoding="utf-8"))
        tenants["tenants"][TENANT].setdefault("po_push", {})["schedule"] = "0 3 1 1 *"
        (home / "tenants.yaml").write_text(yaml.safe_dump(tenants, sort_keys=False), encoding="utf-8")

        self.connections = {
            "exact_demo": {
                "conn_type": "exact_online",
                "host": self.exact_url,
                "login": DEMO_CLIENT_ID,
                "password": DEMO_CLIENT_SECRET,
                "extra": json.dumps(
                    {"redirect_uri": self.callback_url, "sandbox": True, "webhook_secret": DEMO_WEBHOOK_SECRET}
                ),
            },
            "jaggaer_demo": {
                "conn_type": "jaggaer",
                "host": self.jaggaer_url,
                "login": DEMO["client_id"],
                "password": DEMO["client_secret"],
                "extra": json.dumps(
                    {
                        "token_url": f"{self.jaggaer_url}/auth/realms/J1p-integrations/protocol/openid-connect/token",
                        "xml_url": f"{self.jaggaer_url}/apps/Router",
                        "xml_identity": DEMO["identity"],
                        "xml_shared_secret": DEMO["shared_secret"],
                        "sandbox": True,
                    }
                ),
            },
        }
        # The connector database as a stored connection too (the components get it from AIRFLOW_CONN_ML_CONNECTOR_DB,
        # which wins): so it is listed in the UI and its *Test* button can be pressed.
        self.connections["ml_connector_db"] = self.db_connection()
        (home / "connections.json").write_text(json.dumps(self.connections, indent=2), encoding="utf-8")

        cfg = f"""[core]
dags_folder = {REPO / "dags"}
plugins_folder = {REPO / "plugins"}
executor = LocalExecutor
parallelism = 2
load_examples = False
test_connection = Enabled
dags_are_paused_at_creation = False
fernet_key = {Fernet.generate_key().decode()}
simple_auth_manager_users = {ADMIN_USER}:admin
simple_auth_manager_passwords_file = {home / "passwords.json"}
execution_api_server_url = {self.api_url}/execution/

[database]
sql_alchemy_conn = {self.db_url}

[logging]
base_log_folder = {self.logs}

[api]
base_url = {self.api_url}
host = 127.0.0.1
port = {self.api_port}
workers = 1
secret_key = {secrets.token_urlsafe(24)}

[api_auth]
jwt_secret = {secrets.token_urlsafe(32)}

[dag_processor]
parsing_processes = 1
print_stats_interval = 0

[ml_connector]
fernet_keys = {Fernet.generate_key().decode()}
config_path = {home / "tenants.yaml"}
# fail fast in tests: one retry one second later (the defaults wait a minute, then longer)
task_retries = 1
task_retry_delay = 1
task_max_retry_delay = 2
"""
        (home / "airflow.cfg").write_text(cfg, encoding="utf-8")
        (home / "airflow.cfg").chmod(0o600)

    def db_connection(self) -> dict[str, Any]:
        """The ``ml_connector_db`` connection: the stack's PostgreSQL database."""
        url = make_url(self.db_url)
        db_conn: dict[str, Any] = {
            "conn_type": "postgres",
            "host": url.host or "127.0.0.1",
            "port": url.port or 5432,
            "login": url.username or "postgres",
            "schema": self.db_name,
        }
        if url.password:
            db_conn["password"] = str(url.password)
        return db_conn

    def child_env(self) -> dict[str, str]:
        """The environment of every component: nothing from the test process's Airflow/connector settings."""
        db_conn = self.db_connection()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLC_", "_AIRFLOW"))}
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW_CONFIG=str(self.home / "airflow.cfg"),
            AIRFLOW_CONN_ML_CONNECTOR_DB=json.dumps(db_conn),
            MLC_CONFIG_PATH=str(self.home / "tenants.yaml"),
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        return env

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.logs / f"{name}.log"
        exe = str(VENV_BIN / argv[0]) if (VENV_BIN / argv[0]).exists() else argv[0]
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-c", _PDEATHSIG, exe, *argv[1:]],
                cwd=self.home,
                env=self.child_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs[name] = proc
        return proc

    def _wait_exit(self, proc: Proc, timeout: float) -> None:
        try:
            rc = proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise StackError(f"{proc.name} did not finish in {timeout:.0f} s\n{proc.describe()}") from None
        if rc != 0:
            raise StackError(f"{proc.name} failed (exit {rc})\n{proc.describe()}")

    def _wait_healthy(self, deadline: float) -> None:
        last: Any = None
        session = requests.Session()
        session.trust_env = False
        try:
            while time.monotonic() < deadline:
                for name in COMPONENTS:
                    proc = self.procs[name]
                    if not proc.alive:
                        raise StackError(f"{name} exited during startup\n{self.diagnostics()}")
                try:
                    r = session.get(f"{self.api_url}/api/v2/monitor/health", timeout=5)
                    last = r.json() if r.ok else f"HTTP {r.status_code}: {r.text[:300]}"
                except (requests.RequestException, ValueError) as exc:
                    last = f"{type(exc).__name__}"
                if isinstance(last, dict) and all(
                    (last.get(part) or {}).get("status") == "healthy"
                    for part in ("metadatabase", "scheduler", "dag_processor", "triggerer")
                ):
                    return
                time.sleep(0.5)
        finally:
            session.close()
        raise StackError(f"Airflow was not healthy in time; last health answer: {last}\n{self.diagnostics()}")

    def _login(self) -> str:
        r = requests.post(
            f"{self.api_url}/auth/token", json={"username": ADMIN_USER, "password": self.password}, timeout=30
        )
        if r.status_code not in (200, 201):
            raise StackError(f"POST /auth/token: HTTP {r.status_code} {r.text[:500]}")
        return r.json()["access_token"]

    # ------------------------------------------------------------------------------------------- REST
    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False
        return self._session

    def api(self, method: str, path: str, *, auth: bool = True, timeout: float = 60, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", None) or {})
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.session.request(method, f"{self.api_url}{path}", headers=headers, timeout=timeout, **kw)

    def api_json(self, method: str, path: str, **kw: Any) -> Any:
        r = self.api(method, path, **kw)
        if not r.ok:
            raise AssertionError(f"{method} {path}: HTTP {r.status_code} {r.text[:1000]}")
        return r.json() if r.content else None

    # ------------------------------------------------------------------------------------------- waits
    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
        """Poll ``check`` until it returns something truthy; on timeout raise with the stack's diagnostics."""
        deadline = time.monotonic() + timeout
        last_exc: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                result = check()
                if result:
                    return result
            except (requests.RequestException, AssertionError) as exc:
                last_exc = exc
            self.assert_components_alive()
            time.sleep(interval)
        raise StackError(
            f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_exc})\n{self.diagnostics()}"
        )

    def assert_components_alive(self) -> None:
        dead = [p for n, p in self.procs.items() if n in COMPONENTS and not p.alive]
        if dead:
            raise StackError(f"{', '.join(p.name for p in dead)} died\n{self.diagnostics()}")

    def import_errors(self) -> list[dict[str, Any]]:
        return self.api_json("GET", "/api/v2/importErrors")["import_errors"]

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 90) -> dict[str, dict[str, Any]]:
        """Wait until every DAG is parsed and registered; fail at once on an import error."""
        wanted = set(dag_ids)

        def check() -> dict[str, dict[str, Any]] | None:
            errors = self.import_errors()
            if errors:
                details = "\n".join(f"{e['filename']}: {e['stack_trace']}" for e in errors)
                raise StackError(f"DAG import errors:\n{details}")
            dags = {d["dag_id"]: d for d in self.api_json("GET", "/api/v2/dags", params={"limit": 100})["dags"]}
            return {d: dags[d] for d in wanted} if wanted <= set(dags) else None

        return self.wait_for(f"DAGs {sorted(wanted)} to be parsed", check, timeout)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, note: str | None = None) -> str:
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if note:
            body["note"] = note
        return self.api_json("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.api_json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        return self.api_json("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100, **params})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api_json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 120, states: set[str] = TERMINAL_RUN_STATES) -> str:
        def check() -> str | None:
            state = self.dag_run(dag_id, run_id)["state"]
            return state if state in states else None

        return self.wait_for(f"run {dag_id}/{run_id} to reach {sorted(states)}", check, timeout)

    def wait_idle(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until no run of ``dag_id`` is queued or running (scheduled runs included)."""

        def check() -> bool:
            return not any(r["state"] not in TERMINAL_RUN_STATES for r in self.dag_runs(dag_id))

        self.wait_for(f"every run of {dag_id} to finish", check, timeout)

    def run_summary(self, dag_id: str, run_id: str) -> str:
        """Task states of one run, with the log tails of failed tasks (for assertion messages)."""
        lines = [f"run {dag_id}/{run_id}: {self.dag_run(dag_id, run_id)['state']}"]
        for ti in self.task_instances(dag_id, run_id):
            lines.append(f"  {ti['task_id']}[{ti.get('map_index', -1)}]: {ti['state']} (try {ti.get('try_number')})")
            if ti["state"] in ("failed", "upstream_failed", "up_for_retry"):
                lines.append(self.task_log_tail(dag_id, run_id, ti["task_id"]))
        return "\n".join(lines)

    def task_log_tail(self, dag_id: str, run_id: str, task_id: str, lines: int = 30) -> str:
        base = self.logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        files = sorted(base.glob("**/attempt=*.log"))
        if not files:
            return f"    <no task log under {base}>"
        return "\n".join(f"    | {line}" for line in tail(files[-1], lines).splitlines())

    def diagnostics(self, lines: int = 40) -> str:
        parts = [p.describe(lines) for n, p in self.procs.items() if n in COMPONENTS]
        failed = sorted(self.logs.glob("dag_id=*/run_id=*/task_id=*/**/attempt=*.log"), key=lambda p: p.stat().st_mtime)
        for path in failed[-3:]:
            parts.append(f"----- task log {path.relative_to(self.logs)} -----\n{tail(path, 25)}")
        return "\n".join(parts)

    # ------------------------------------------------------------------------------------------- sandboxes
    def jaggaer_admin(self, method: str, path: str, **kw: Any) -> Any:
        r = self.session.request(method, f"{self.jaggaer_url}/_admin/{path}", timeout=60, **kw)
        if not r.ok:
            raise AssertionError(f"JAGGAER sandbox {method} /_admin/{path}: HTTP {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def webhook_url(self, tenant: str = TENANT) -> str:
        """The plugin's Exact webhook receiver of ``tenant`` on this stack's api-server."""
        return f"{self.api_url}/ml-connector/webhooks/exact/{tenant}"

    def mlc(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        """Run ``mlc ARGS`` with the components' environment; its output (``StackError`` when it fails and
        ``check``)."""
        proc = self._spawn(f"mlc-{args[0]}-{len(self.procs)}", ["mlc", *args])
        if check:
            self._wait_exit(proc, timeout=timeout)
        else:
            proc.popen.wait(timeout)
        return proc.log.read_text(encoding="utf-8", errors="replace")

    def connection_body(self, conn_id: str) -> dict[str, Any]:
        """The body the UI's *Test* button sends for one of the demo connections (as the form holds it)."""
        conn = self.connections[conn_id]
        return {"connection_id": conn_id, **conn}

    # ------------------------------------------------------------------------------------------- connector DB
    def sql(self, query: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(query), params)]
