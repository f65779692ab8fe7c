"""``make cluster`` / ``make cluster-down``: the docker-compose topology as processes on this machine, loopback only.

    scripts/cluster.sh up        Redis, PostgreSQL, the sandboxes (two demo tenants), Airflow's api-server,
                                 scheduler, dag-processor, triggerer and two Celery workers; prints where things are
    scripts/cluster.sh down      stops every process ``up`` started (and the cluster's PostgreSQL); nothing stays
    scripts/cluster.sh status    what runs
    scripts/cluster.sh worker N  start Celery worker N (another worker, or one that died)

The Airflow settings come from ``ml_connector.deploy.settings``, the module the compose file is checked against
(``tests/unit/test_cluster_config.py``): CeleryExecutor, Redis broker, PostgreSQL metadata database and Celery result
backend, the connector's tables in schema ``ml_connector`` of that database, the connection ``ml_connector_db``,
Fernet keys, JWT secret. What only the cluster adds is where things run (ports on 127.0.0.1, an Airflow home under
the state directory) and per-worker names (``MLC_NODE_NAME``, recorded as the task instances' ``hostname``).

State lives in ``$MLC_CLUSTER_DIR`` (default ``.cluster``): ``secrets.json`` (keys and the admin password, made once
and kept), ``home/`` (AIRFLOW_HOME, logs), ``run/`` (one file per process started), ``cluster.json`` (URLs, ports)
and ``cluster.env`` (``set -a; . .cluster/cluster.env`` points the ``airflow`` and ``mlc`` CLIs at the cluster).
Every process started carries ``MLC_CLUSTER_ID`` in its environment: ``down`` finds and stops stragglers by it.

Ports (environment): MLC_CLUSTER_API_PORT (8090), MLC_CLUSTER_EXACT_PORT (8711), MLC_CLUSTER_JAGGAER_PORT (8712),
MLC_CLUSTER_REDIS_PORT (6391), MLC_CLUSTER_PG_PORT (54341; never the shared test server's 54329); MLC_CLUSTER_WORKERS
(2), MLC_CLUSTER_CONCURRENCY (8 task slots per worker), MLC_CLUSTER_DAGS_FOLDER, MLC_CLUSTER_PG_DIR.
``up --set KEY=VALUE`` adds an Airflow/connector setting for every component (the tests shorten timeouts with it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))  # this checkout's code first, whatever is installed

from ml_connector.deploy import settings  # noqa: E402
from ml_connector.deploy.procs import (  # noqa: E402
    port_free,
    process_alive,
    process_tree,
    processes_with,
    signal_group,
    start_time,
    tail,
)

INIT_COMMANDS = settings.INIT_COMMANDS
ADMIN = "admin"
DB_NAME = settings.DB_NAME
VENV_BIN = Path(sys.executable).parent
CORE = ("api-server", "scheduler", "dag-processor", "triggerer")


class ClusterError(RuntimeError):
    """Something the person running the cluster must fix; the message says what and how."""


# --------------------------------------------------------------------------------------------------- configuration
@dataclass
class ClusterConfig:
    dir: Path
    api_port: int = 8090
    exact_port: int = 8711
    jaggaer_port: int = 8712
    redis_port: int = 6391
    pg_port: int = 54341
    pg_dir: Path = Path()
    workers: int = 2
    concurrency: int = 8
    tenant_file: Path = REPO / "include" / "config" / "tenants.cluster.yaml"
    dags_folder: Path = REPO / "dags"
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str] = os.environ) -> ClusterConfig:
        def num(name: str, default: int) -> int:
            raw = env.get(name)
            if not raw:
                return default
            try:
                return int(raw)
            except ValueError:
                raise ClusterError(f"{name}={raw!r} is not a number") from None

        directory = Path(env.get("MLC_CLUSTER_DIR") or REPO / ".cluster").resolve()
        pg_port = num("MLC_CLUSTER_PG_PORT", 54341)
        if pg_port == 54329:
            raise ClusterError("MLC_CLUSTER_PG_PORT=54329 is the shared test server's port: choose another")
        return cls(
            dir=directory,
            api_port=num("MLC_CLUSTER_API_PORT", 8090),
            exact_port=num("MLC_CLUSTER_EXACT_PORT", 8711),
            jaggaer_port=num("MLC_CLUSTER_JAGGAER_PORT", 8712),
            redis_port=num("MLC_CLUSTER_REDIS_PORT", 6391),
            pg_port=pg_port,
            pg_dir=Path(env.get("MLC_CLUSTER_PG_DIR") or f"/tmp/mlc-cluster-pg-{os.getuid()}-{pg_port}"),
            workers=num("MLC_CLUSTER_WORKERS", 2),
            concurrency=num("MLC_CLUSTER_CONCURRENCY", 8),
            dags_folder=Path(env.get("MLC_CLUSTER_DAGS_FOLDER") or REPO / "dags").resolve(),
        )

    @property
    def home(self) -> Path:
        return self.dir / "home"

    @property
    def run(self) -> Path:
        return self.dir / "run"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def exact_url(self) -> str:
        return f"http://127.0.0.1:{self.exact_port}"

    @property
    def jaggaer_url(self) -> str:
        return f"http://127.0.0.1:{self.jaggaer_port}"

    @property
    def callback_url(self) -> str:
        return f"{self.api_url}/ml-connector/exact/callback"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    def pg_env(self) -> dict[str, str]:
        return {**os.environ, "MLC_PG_PORT": str(self.pg_port), "MLC_PG_DIR": str(self.pg_dir)}


@dataclass
class Secrets:
    """Made on the first ``up`` and kept: the data in the database is encrypted with these keys."""

    fernet_key: str
    mlc_fernet_keys: str
    jwt_secret: str
    api_secret_key: str
    admin_password: str
    cluster_id: str

    @classmethod
    def load_or_create(cls, path: Path) -> Secrets:
        if path.exists():
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        from cryptography.fernet import Fernet

        made = cls(
            fernet_key=Fernet.generate_key().decode(),
            mlc_fernet_keys=Fernet.generate_key().decode(),
            jwt_secret=secrets.token_urlsafe(32),
            api_secret_key=secrets.token_urlsafe(24),
            admin_password=secrets.token_urlsafe(12),
            cluster_id=uuid.uuid4().hex,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(made), indent=2), encoding="utf-8")
        path.chmod(0o600)
        return made


def site(config: ClusterConfig, keys: Secrets) -> settings.Site:
    """The cluster as a ``Site`` of the shared settings: everything on 127.0.0.1, trust-authenticated PostgreSQL."""
    return settings.Site(
        pg_host="127.0.0.1",
        pg_port=config.pg_port,
        pg_user="postgres",
        pg_password="",
        redis_host="127.0.0.1",
        redis_port=config.redis_port,
        api_url=config.api_url,
        fernet_key=keys.fernet_key,
        jwt_secret=keys.jwt_secret,
        mlc_fernet_keys=keys.mlc_fernet_keys,
        tenant_file=str(config.tenant_file),
    )


def component_env(config: ClusterConfig, keys: Secrets) -> dict[str, str]:
    """The environment of every process the cluster starts: the shared settings plus where things are here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLC_", "_AIRFLOW"))}
    env.update(settings.airflow_env(site(config, keys)))
    env.update(
        {
            "AIRFLOW_HOME": str(config.home),
            "AIRFLOW_CONFIG": str(config.home / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(config.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "ml_connector.deploy.node.node_name",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(config.passwords_file),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(config.logs),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(config.api_port),
            "AIRFLOW__API__BASE_URL": config.api_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": keys.api_secret_key,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(config.concurrency),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
            # log servers: one port per process (they all run on one machine here)
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(config.api_port + 3),
            "MLC_CLUSTER_ID": keys.cluster_id,
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "include"), os.environ.get("PYTHONPATH")) if p),
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    env.update(config.extra_env)
    return env


def worker_env(config: ClusterConfig, keys: Secrets, n: int) -> dict[str, str]:
    return {
        **component_env(config, keys),
        "MLC_NODE_NAME": f"worker-{n}",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(config.api_port + 10 + n),
    }


def _alive(record: dict[str, Any]) -> bool:
    return process_alive(record["pid"], record["start_time"])


def spawn(config: ClusterConfig, name: str, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Start ``argv`` detached (a session of its own, output in ``logs/<name>.log``) and record it in ``run/``."""
    config.logs.mkdir(parents=True, exist_ok=True)
    config.run.mkdir(parents=True, exist_ok=True)
    log = config.logs / f"{name}.log"
    exe = str(VENV_BIN / argv[0]) if (VENV_BIN / argv[0]).exists() else argv[0]
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            [exe, *argv[1:]],
            cwd=config.home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = {"name": name, "pid": popen.pid, "start_time": start_time(popen.pid), "argv": argv, "log": str(log)}
    (config.run / f"{name}.json").write_text(json.dumps(record), encoding="utf-8")
    return record


def records(config: ClusterConfig) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(config.run.glob("*.json")) if config.run.exists() else []:
        with contextlib.suppress(ValueError, OSError):
            rec = json.loads(path.read_text(encoding="utf-8"))
            out[rec["name"]] = rec
    return out


def run_once(config: ClusterConfig, name: str, argv: list[str], env: dict[str, str], timeout: float = 300) -> None:
    log = config.logs / f"{name}.log"
    config.logs.mkdir(parents=True, exist_ok=True)
    exe = str(VENV_BIN / argv[0]) if (VENV_BIN / argv[0]).exists() else argv[0]
    with open(log, "wb") as out:
        try:
            rc = subprocess.run(
                [exe, *argv[1:]], cwd=config.home, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            raise ClusterError(f"`{shlex.join(argv)}` did not finish in {timeout:.0f} s:\n{tail(log)}") from None
    if rc != 0:
        raise ClusterError(f"`{shlex.join(argv)}` failed (exit {rc}):\n{tail(log)}")


def wait_until(what: str, check: Any, timeout: float, diagnostics: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except ClusterError:  # a component died: no point waiting any longer
            raise
        except Exception as exc:  # keep polling; the last error goes into the message
            last = exc
        time.sleep(0.5)
    extra = f"\n{diagnostics()}" if diagnostics else ""
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last}){extra}")


# --------------------------------------------------------------------------------------------------- services
def ensure_redis() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.getuid() != 0:
        raise ClusterError("redis-server is not installed: run `sudo apt-get install -y redis-server`, then again")
    print("Installing Debian's redis-server (apt-get) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env, stdout=subprocess.DEVNULL)
    # Debian starts a system-wide redis on 6379 after installing: the cluster does not use it (its own port/dir).
    found = shutil.which("redis-server")
    if not found:
        raise ClusterError("apt-get installed redis-server but it is not on PATH")
    return found


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


def start_postgres(config: ClusterConfig) -> str:
    out = subprocess.run(
        [str(REPO / "scripts" / "pg.sh"), "start"], env=config.pg_env(), capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise ClusterError(f"PostgreSQL on port {config.pg_port} did not start:\n{out.stderr}{out.stdout}")
    admin_url = out.stdout.strip().splitlines()[-1]
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DB_NAME}).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    finally:
        engine.dispose()
    return admin_url


def http(method: str, url: str, **kw: Any) -> Any:
    import requests

    session = requests.Session()
    session.trust_env = False
    try:
        return session.request(method, url, timeout=kw.pop("timeout", 30), **kw)
    finally:
        session.close()


def sandbox_admin(url: str, method: str, path: str, body: Any = None) -> Any:
    r = http(method, f"{url}/_admin/{path}", json=body)
    if not r.ok:
        raise ClusterError(f"sandbox {method} {url}/_admin/{path}: HTTP {r.status_code} {r.text[:300]}")
    return r.json() if r.content else None


def exact_apps() -> dict[str, dict[str, Any]]:
    """The Exact sandbox's registered apps: the demo's, and one for the second tenant (its own consent)."""
    from sandbox.common import demo_company as dc
    from sandbox.exact.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS

    return {
        "demo": {
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "redirect_uris": list(DEMO_REDIRECT_URIS),
            "name": "ml-connector (demo)",
            "divisions": list(dc.DIVISIONS),
        },
        dc.SECOND_TENANT: {
            "client_id": f"mlc-{dc.SECOND_TENANT}-client",
            "client_secret": f"mlc-{dc.SECOND_TENANT}-secret",
            "redirect_uris": [],
            "name": f"ml-connector ({dc.SECOND_COMPANY_NAME})",
            "divisions": list(dc.SECOND_DIVISIONS),
        },
    }


def prepare_sandboxes(config: ClusterConfig) -> None:
    """Both tenants seeded, the second tenant's Exact app registered, consent back to this cluster's api-server."""
    sandbox_admin(config.exact_url, "POST", "reset", {"second_tenant": True})
    sandbox_admin(config.jaggaer_url, "POST", "reset", {"second_tenant": True})
    apps = {
        a["client_id"]: {k: a[k] for k in ("client_id", "client_secret", "redirect_uris", "name")}
        for a in exact_apps().values()
    }
    sandbox_admin(config.exact_url, "POST", "settings", {"apps": apps, "extra_redirect_uris": [config.callback_url]})


def connections(config: ClusterConfig) -> dict[str, dict[str, Any]]:
    from sandbox.jaggaer.seed import DEMO, NORTHFIELD

    out: dict[str, dict[str, Any]] = {}
    apps = exact_apps()
    for tenant, jaggaer in (("demo", DEMO), (NORTHFIELD["key"], NORTHFIELD)):
        app = apps[tenant]
        out[f"exact_{tenant}"] = {
            "conn_type": "exact_online",
            "host": config.exact_url,
            "login": app["client_id"],
            "password": app["client_secret"],
            # the sandboxes are plain http on loopback, which the outbound URL policy allows only for sandbox ones
            "extra": json.dumps({"redirect_uri": config.callback_url, "sandbox": True}),
        }
        out[f"jaggaer_{tenant}"] = {
            "conn_type": "jaggaer",
            "host": config.jaggaer_url,
            "login": jaggaer["client_id"],
            "password": jaggaer["client_secret"],
            "extra": json.dumps(
                {
                    "token_url": f"{config.jaggaer_url}/auth/realms/J1p-integrations/protocol/openid-connect/token",
                    "xml_url": f"{config.jaggaer_url}/apps/Router",
                    "xml_identity": jaggaer["identity"],
                    "xml_shared_secret": jaggaer["shared_secret"],
                    "sandbox": True,
                }
            ),
        }
    return out


def login(config: ClusterConfig, keys: Secrets) -> str:
    r = http("POST", f"{config.api_url}/auth/token", json={"username": ADMIN, "password": keys.admin_password})
    if r.status_code not in (200, 201):
        raise ClusterError(f"POST /auth/token: HTTP {r.status_code} {r.text[:300]}")
    return r.json()["access_token"]


def _text(html: str, limit: int = 1500) -> str:
    """The readable text of an HTML error page (the plugin's pages carry a style block first)."""
    import re

    html = re.sub(r"(?is)<(style|script)[^>]*>.*?</\1>", " ", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())[:limit]


def connect_exact(config: ClusterConfig, token: str) -> list[str]:
    """Each tenant's Exact consent the way an admin gives it (the plugin's Connect link; the sandbox consents at
    once, granting that tenant's divisions), unless its token chain is already stored."""
    from urllib.parse import urlsplit

    done = []
    auth = {"Authorization": f"Bearer {token}"}
    for tenant, app in exact_apps().items():
        sandbox_admin(config.exact_url, "POST", "settings", {"consent_divisions": app["divisions"]})
        r = http("GET", f"{config.api_url}/ml-connector/exact/connect", params={"tenant": tenant}, headers=auth,
                 allow_redirects=False)  # fmt: skip
        if r.status_code != 302:
            raise ClusterError(f"Exact connect for tenant {tenant}: HTTP {r.status_code} {_text(r.text)}")
        r = http("GET", r.headers["location"], allow_redirects=False)
        if r.status_code != 302:
            raise ClusterError(f"Exact sandbox consent for tenant {tenant}: HTTP {r.status_code} {r.text[:300]}")
        parts = urlsplit(r.headers["location"])
        r = http("GET", f"{config.api_url}{parts.path}?{parts.query}", headers=auth)
        if r.status_code != 200 or "Exact Online connected" not in r.text:
            raise ClusterError(f"Exact callback for tenant {tenant}: HTTP {r.status_code} {_text(r.text)}")
        done.append(tenant)
    return done


# --------------------------------------------------------------------------------------------------- commands
def write_home(config: ClusterConfig, keys: Secrets, env: dict[str, str]) -> None:
    config.home.mkdir(parents=True, exist_ok=True)
    config.logs.mkdir(parents=True, exist_ok=True)
    (config.home / "airflow.cfg").write_text(
        "# make cluster: every setting comes from the environment (scripts/cluster.py, ml_connector.deploy).\n"
        "# To use the airflow/mlc CLIs on this cluster: set -a; . " + str(config.dir / "cluster.env") + "; set +a\n",
        encoding="utf-8",
    )
    config.passwords_file.write_text(json.dumps({ADMIN: keys.admin_password}), encoding="utf-8")
    config.passwords_file.chmod(0o600)
    conns = config.home / "connections.json"
    conns.write_text(json.dumps(connections(config), indent=2), encoding="utf-8")
    conns.chmod(0o600)
    shell = {k: v for k, v in env.items() if k.startswith(("AIRFLOW", "MLC_CLUSTER_ID", "PYTHONPATH"))}
    cluster_env = config.dir / "cluster.env"
    cluster_env.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(shell.items())), encoding="utf-8")
    cluster_env.chmod(0o600)


def start_worker(config: ClusterConfig, keys: Secrets, n: int) -> dict[str, Any]:
    name = f"worker-{n}"
    argv = ["airflow", "celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", str(config.concurrency)]
    return spawn(config, name, argv, worker_env(config, keys, n))


def worker_ready(rec: dict[str, Any]) -> bool:
    if not _alive(rec):
        raise ClusterError(f"{rec['name']} exited during startup:\n{tail(rec['log'])}")
    return " ready." in Path(rec["log"]).read_text(encoding="utf-8", errors="replace")


def diagnostics(config: ClusterConfig) -> str:
    parts = []
    for name, rec in records(config).items():
        state = "running" if _alive(rec) else "exited"
        parts.append(f"----- {name} ({state}), {rec['log']} -----\n{tail(rec['log'], 20)}")
    return "\n".join(parts)


def up(config: ClusterConfig) -> dict[str, Any]:
    running = [n for n, r in records(config).items() if _alive(r)]
    if running:
        raise ClusterError(
            f"the cluster in {config.dir} is already running ({', '.join(running)}): `make cluster-down`"
        )
    ports = {
        "MLC_CLUSTER_API_PORT": config.api_port,
        "MLC_CLUSTER_EXACT_PORT": config.exact_port,
        "MLC_CLUSTER_JAGGAER_PORT": config.jaggaer_port,
        "MLC_CLUSTER_REDIS_PORT": config.redis_port,
    }
    busy = [f"{var}={port}" for var, port in ports.items() if not port_free(port)]
    if busy:
        raise ClusterError(f"port(s) in use on 127.0.0.1: {', '.join(busy)}; set those variables to free ports")
    t0 = time.monotonic()
    keys = Secrets.load_or_create(config.dir / "secrets.json")
    env = component_env(config, keys)
    for stale in config.run.glob("*.json") if config.run.exists() else []:
        stale.unlink()
    write_home(config, keys, env)
    try:
        redis = ensure_redis()
        (config.dir / "redis").mkdir(parents=True, exist_ok=True)
        redis_rec = spawn(
            config,
            "redis",
            [redis, "--bind", "127.0.0.1", "--port", str(config.redis_port), "--dir", str(config.dir / "redis"),
             "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no"],
            env,
        )  # fmt: skip
        sandbox = spawn(
            config,
            "sandboxes",
            [sys.executable, "-m", "sandbox", "--exact-port", str(config.exact_port),
             "--jaggaer-port", str(config.jaggaer_port)],
            env,
        )  # fmt: skip
        start_postgres(config)
        wait_until("Redis", lambda: redis_ping(config.redis_port), 30, lambda: tail(redis_rec["log"]))
        wait_until(
            "the sandboxes",
            lambda: all(http("GET", f"{u}/_admin/clock").ok for u in (config.jaggaer_url, config.exact_url)),
            60,
            lambda: tail(sandbox["log"]),
        )  # fmt: skip
        prepare_sandboxes(config)
        for command in INIT_COMMANDS:
            run_once(config, command.replace(" ", "-"), shlex.split(command), env)
        run_once(config, "connections-import", ["airflow", "connections", "import", "--overwrite",
                                                str(config.home / "connections.json")], env)  # fmt: skip
        for name in ("dag-processor", "api-server", "scheduler", "triggerer"):
            spawn(config, name, ["airflow", name], env)
        workers = [start_worker(config, keys, n) for n in range(1, config.workers + 1)]

        def healthy() -> bool:
            for name in CORE:
                rec = records(config)[name]
                if not _alive(rec):
                    raise ClusterError(f"{name} exited during startup:\n{tail(rec['log'])}")
            health = http("GET", f"{config.api_url}/api/v2/monitor/health").json()
            parts = ("metadatabase", "scheduler", "dag_processor", "triggerer")
            return all((health.get(p) or {}).get("status") == "healthy" for p in parts)

        wait_until("Airflow to report healthy", healthy, 240, lambda: diagnostics(config))
        for rec in workers:
            wait_until(
                f"{rec['name']} to be ready", lambda rec=rec: worker_ready(rec), 120, lambda: diagnostics(config)
            )
        token = login(config, keys)
        connected = connect_exact(config, token)
    except BaseException:
        if not os.environ.get("MLC_CLUSTER_KEEP_ON_FAILURE"):
            print("startup failed: stopping what was started", file=sys.stderr)
            down(config, quiet=True)
        raise
    info = {
        "ui": config.api_url,
        "admin_user": ADMIN,
        "password_file": str(config.passwords_file),
        "exact_sandbox": config.exact_url,
        "jaggaer_sandbox": config.jaggaer_url,
        "redis": f"redis://127.0.0.1:{config.redis_port}/0",
        "postgres": f"postgresql://postgres@127.0.0.1:{config.pg_port}/{DB_NAME}",
        "pg_dir": str(config.pg_dir),
        "home": str(config.home),
        "logs": str(config.logs),
        "workers": [r["name"] for r in workers],
        "tenants_connected": connected,
        "cluster_id": keys.cluster_id,
        "startup_s": round(time.monotonic() - t0, 1),
    }
    (config.dir / "cluster.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def down(config: ClusterConfig, *, quiet: bool = False, timeout: float = 30.0) -> list[str]:
    """Stop every process ``up`` started: the scheduler first, then the rest (SIGTERM, SIGKILL after ``timeout``),
    stragglers found by ``MLC_CLUSTER_ID``, then the cluster's PostgreSQL."""
    recs = {n: r for n, r in records(config).items() if _alive(r)}
    order = sorted(recs.values(), key=lambda r: (r["name"] != "scheduler", r["name"] in ("redis", "sandboxes")))
    for rec in order:
        signal_group(rec["pid"], signal.SIGTERM)
        if rec["name"] == "scheduler":  # no new task starts while the rest stops
            deadline = time.monotonic() + 10
            while _alive(rec) and time.monotonic() < deadline:
                time.sleep(0.2)
    deadline = time.monotonic() + timeout
    while any(_alive(r) for r in recs.values()) and time.monotonic() < deadline:
        time.sleep(0.3)
    left: list[int] = []
    for _ in range(50):  # SIGKILL is not instant: until nothing of any component is left (zombies aside)
        left = [p for rec in recs.values() for p in process_tree(rec["pid"], rec["start_time"])]
        if not left:
            break
        for rec in recs.values():
            signal_group(rec["pid"], signal.SIGKILL)  # the leader, and what is left in its group
        for pid in left:  # and anything of its session or below it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    secrets_path = config.dir / "secrets.json"
    stragglers: list[int] = []
    if secrets_path.exists():
        cluster_id = Secrets.load_or_create(secrets_path).cluster_id
        for _ in range(10):
            stragglers = processes_with({"MLC_CLUSTER_ID": cluster_id})
            if not stragglers:
                break
            for pid in stragglers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
    subprocess.run([str(REPO / "scripts" / "pg.sh"), "stop"], env=config.pg_env(), check=False)
    for path in config.run.glob("*.json") if config.run.exists() else []:
        path.unlink()
    if stragglers or left:
        raise ClusterError(f"processes of the cluster survived SIGKILL: {sorted(set(stragglers + left))}")
    if not quiet:
        print(f"cluster stopped ({len(recs)} processes and PostgreSQL on port {config.pg_port}); state kept in "
              f"{config.dir} (delete it to start from scratch)")  # fmt: skip
    return sorted(recs)


def status(config: ClusterConfig) -> int:
    recs = records(config)
    if not recs:
        print(f"no cluster running from {config.dir}")
        return 1
    for name, rec in recs.items():
        print(f"{name:14} pid {rec['pid']:>7}  {'running' if _alive(rec) else 'EXITED'}  log {rec['log']}")
    return 0 if all(_alive(r) for r in recs.values()) else 1


def banner(info: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"ml-connector cluster is up ({info['startup_s']} s): CeleryExecutor, Redis, PostgreSQL, "
            f"{len(info['workers'])} workers",
            f"  Airflow UI       {info['ui']}  (user {info['admin_user']}; password in {info['password_file']})",
            f"  Exact sandbox    {info['exact_sandbox']}    JAGGAER sandbox {info['jaggaer_sandbox']}",
            f"  Broker           {info['redis']}    Database {info['postgres']} (connector: schema ml_connector)",
            f"  Tenants          {', '.join(info['tenants_connected'])} (Exact connected; DAGs start paused, as in "
            "docker-compose.yaml: unpause them in the UI)",
            f"  Logs             {info['logs']}",
            "  Stop             make cluster-down   (status: scripts/cluster.sh status; another worker: "
            "scripts/cluster.sh worker 3)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cluster.sh", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the cluster")
    p_up.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra setting for every process")
    sub.add_parser("down", help="stop every process the cluster started")
    sub.add_parser("status", help="what runs")
    p_worker = sub.add_parser("worker", help="start Celery worker N")
    p_worker.add_argument("n", type=int)
    args = parser.parse_args(argv)
    try:
        config = ClusterConfig.from_env()
        extra_path = config.dir / "extra-env.json"
        if args.command == "up":
            extra = dict(item.split("=", 1) for item in args.set)
            config.dir.mkdir(parents=True, exist_ok=True)
            extra_path.write_text(json.dumps(extra), encoding="utf-8")
        if extra_path.exists():
            config.extra_env = json.loads(extra_path.read_text(encoding="utf-8"))
        if args.command == "up":
            print(banner(up(config)), flush=True)
        elif args.command == "down":
            down(config)
        elif args.command == "status":
            return status(config)
        elif args.command == "worker":
            name = f"worker-{args.n}"
            rec = records(config).get(name)
            if rec and _alive(rec):
                raise ClusterError(f"{name} is already running (pid {rec['pid']})")
            keys = Secrets.load_or_create(config.dir / "secrets.json")
            rec = start_worker(config, keys, args.n)
            wait_until(f"{name} to be ready", lambda: worker_ready(rec), 120)
            print(f"{name} is ready (log {rec['log']})")
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
