"""Scale out, proven: both flows on a real CeleryExecutor cluster (``make cluster``) on this machine.

``scripts/cluster.sh up`` starts Redis, a private PostgreSQL, the sandboxes with two demo tenants (two Exact divisions
each), Airflow's api-server, scheduler, dag-processor, triggerer and two Celery workers, with the settings the compose
file uses; everything below is driven through Airflow's REST API and checked in the sandboxes' admin state and the
connector's ledger (schema ``ml_connector`` of the cluster's database).

1. Both flows for both tenants: every record delivered exactly once; Exact never sees two requests at once for one
   division although both workers run that division's tasks; a run's tasks ran on both workers.
2. A worker is SIGKILLed (every process of it) in the worst moment of the invoice poll's post task on it: Exact
   committed a purchase entry whose answer never arrived (``drop_after_commit``) and the task's look-up of it is in
   flight (slowed by a latency fault). Airflow's heartbeat timeout fails the task instance, it is retried on the other
   worker, the record left ``posting`` is settled by the post stage's look-up (not sent again), nothing is posted twice
   or lost. (A latency fault on the POST itself does not do it: the sandbox drops a request whose client vanished
   before it commits, so that record is simply posted by the retry.)
3. 20 task processes spread over the two workers share one tenant's token chain on a sped-up sandbox clock: every
   token call succeeds (no "Old refresh token used.", no TooEarly), the chain stays alive.
4. ``scripts/cluster.sh down`` leaves no process of the cluster behind (``ps``).

The cluster needs a few minutes to start on a busy 2-core machine; the module's tests share it and run in order.
Timeouts are shortened for the test through ``up --set`` (heartbeat timeout, retry delay), nothing else differs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
TENANTS = {"demo": (111111, 222222), "northfield": (333333, 444444)}
PROBE_DAG = "mlc_cluster_token_chain"
PO, INVOICE = "po_push", "invoice_poll"
HEARTBEAT_TIMEOUT_S = 20
LOOKUP_LATENCY_S = 25.0


def _load_cluster_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlc_cluster_script", REPO / "scripts" / "cluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cluster_mod = _load_cluster_module()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_ts(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Cluster:
    """The running cluster as the test sees it: the script's environment, REST with the admin's JWT, sandboxes."""

    def __init__(self, directory: Path, dags: Path) -> None:
        self.dir = directory
        self.env = {
            **os.environ,
            "MLC_PYTHON": sys.executable,
            "MLC_CLUSTER_DIR": str(directory),
            "MLC_CLUSTER_API_PORT": str(free_port()),
            "MLC_CLUSTER_EXACT_PORT": str(free_port()),
            "MLC_CLUSTER_JAGGAER_PORT": str(free_port()),
            "MLC_CLUSTER_REDIS_PORT": str(free_port()),
            "MLC_CLUSTER_PG_PORT": str(free_port()),
            # not under pytest's 0700 temporary directory: the server runs as the postgres user when we are root
            "MLC_CLUSTER_PG_DIR": f"/tmp/mlc-cluster-pg-test-{uuid.uuid4().hex[:10]}",
            "MLC_CLUSTER_CONCURRENCY": "10",  # 20 token-chain tasks at once over two workers
            "MLC_CLUSTER_DAGS_FOLDER": str(dags),
        }
        self.info: dict[str, Any] = {}
        self.session = requests.Session()
        self.session.trust_env = False
        self.up_output = ""

    # ------------------------------------------------------------------------------------------------- lifecycle
    def script(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO / "scripts" / "cluster.sh"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def up(self) -> None:
        sets = [
            # Airflow notices a dead worker's task after this long without a heartbeat (default 300 s)
            f"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT={HEARTBEAT_TIMEOUT_S}",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL=5",
            # the connector's task retries: two, one second apart (defaults wait a minute and more)
            "AIRFLOW__ML_CONNECTOR__TASK_RETRIES=2",
            "AIRFLOW__ML_CONNECTOR__TASK_RETRY_DELAY=1",
            "AIRFLOW__ML_CONNECTOR__TASK_MAX_RETRY_DELAY=2",
        ]
        out = self.script("up", *(f"--set={s}" for s in sets), timeout=900)
        self.up_output = out.stdout + out.stderr
        if out.returncode != 0:
            raise AssertionError(f"scripts/cluster.sh up failed (exit {out.returncode}):\n{self.up_output[-6000:]}")
        self.info = json.loads((self.dir / "cluster.json").read_text(encoding="utf-8"))
        password = json.loads(Path(self.info["password_file"]).read_text(encoding="utf-8"))["admin"]
        r = self.session.post(f"{self.info['ui']}/auth/token", json={"username": "admin", "password": password})
        assert r.status_code in (200, 201), r.text
        self.session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.script("down", timeout=180)

    def records(self) -> dict[str, dict[str, Any]]:
        """What ``up`` started (``run/*.json``): name -> pid, log, ..."""
        return cluster_mod.records(cluster_mod.ClusterConfig.from_env(self.env))

    @property
    def cluster_id(self) -> str:
        return json.loads((self.dir / "secrets.json").read_text(encoding="utf-8"))["cluster_id"]

    # ------------------------------------------------------------------------------------------------- REST
    def api(self, method: str, path: str, **kw: Any) -> Any:
        r = self.session.request(method, f"{self.info['ui']}{path}", timeout=60, **kw)
        if not r.ok:
            raise AssertionError(f"{method} {path}: HTTP {r.status_code} {r.text[:800]}")
        return r.json() if r.content else None

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        body = {"logical_date": None, "conf": conf or {}}
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def tis(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})[
            "task_instances"
        ]

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                result = check()
                if result:
                    return result
            except (requests.RequestException, AssertionError) as exc:
                last = exc
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last})\n{self.diagnostics()}")

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 420) -> str:
        def done() -> str | None:
            state = self.run(dag_id, run_id)["state"]
            return state if state in ("success", "failed") else None

        return self.wait_for(f"run {dag_id}/{run_id}", done, timeout)

    def wait_idle(self, dag_id: str, timeout: float = 420) -> list[dict[str, Any]]:
        def idle() -> list[dict[str, Any]] | None:
            runs = self.runs(dag_id)
            return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else None

        return self.wait_for(f"every run of {dag_id} to finish", idle, timeout)

    def summary(self, dag_id: str, run_id: str) -> str:
        lines = [f"run {dag_id}/{run_id}: {self.run(dag_id, run_id)['state']}"]
        for ti in self.tis(dag_id, run_id):
            lines.append(
                f"  {ti['task_id']}[{ti.get('map_index', -1)}]: {ti['state']} try {ti.get('try_number')} "
                f"on {ti.get('hostname')}"
            )
        return "\n".join(lines)

    def diagnostics(self) -> str:
        logs = Path(self.info.get("logs", self.dir / "home" / "logs"))
        parts = []
        for name in ("scheduler", "worker-1", "worker-2"):
            parts.append(f"----- {name} -----\n{cluster_mod.tail(logs / f'{name}.log', 25)}")
        return "\n".join(parts)

    # ------------------------------------------------------------------------------------------------- sandboxes
    def exact(self, method: str, path: str, **kw: Any) -> Any:
        r = self.session.request(method, f"{self.info['exact_sandbox']}/_admin/{path}", timeout=60, **kw)
        assert r.ok, f"Exact sandbox {method} {path}: HTTP {r.status_code} {r.text[:500]}"
        return r.json() if r.content else None

    def jaggaer(self, method: str, path: str, **kw: Any) -> Any:
        r = self.session.request(method, f"{self.info['jaggaer_sandbox']}/_admin/{path}", timeout=60, **kw)
        assert r.ok, f"JAGGAER sandbox {method} {path}: HTTP {r.status_code} {r.text[:500]}"
        return r.json() if r.content else None

    # ------------------------------------------------------------------------------------------------- ledger
    def ledger(self, tenant: str, flow: str) -> dict[str, dict[str, Any]]:
        engine = create_engine(
            self.info["postgres"].replace("postgresql://", "postgresql+psycopg2://"),
            connect_args={"options": "-csearch_path=ml_connector"},
        )
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT source_id, division, state, reason, target_ref, attempts FROM mlc_ledger "
                        "WHERE tenant = :tenant AND flow = :flow"
                    ),
                    {"tenant": tenant, "flow": flow},
                )
                return {r.source_id: dict(r._mapping) for r in rows}
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("mlc-cluster")
    dags = directory / "dags"  # the repo's DAGs plus the token-chain probe
    dags.mkdir()
    for source in [*sorted((REPO / "dags").glob("*.py")), REPO / "tests" / "e2e" / "cluster_dags" / f"{PROBE_DAG}.py"]:
        assert source.is_file(), source
        (dags / source.name).symlink_to(source)
    c = Cluster(directory, dags)
    try:
        c.up()
        yield c
    finally:
        c.down()
        shutil.rmtree(c.env["MLC_CLUSTER_PG_DIR"], ignore_errors=True)


def exact_dag(tenant: str) -> str:
    return f"exact_po_push__{tenant}"


def invoice_dag(tenant: str) -> str:
    return f"jaggaer_invoice_poll__{tenant}"


def entries(c: Cluster) -> list[dict[str, Any]]:
    return c.exact("GET", "purchase_entries")


def invoice_refs(rows: list[dict[str, Any]]) -> Counter[tuple[int, str]]:
    refs: Counter[tuple[int, str]] = Counter()
    for e in rows:
        ref = e.get("ExternalLinkReference") or ""
        if ref.startswith("JAGGAER:"):
            refs[(int(e["Division"]), ref.removeprefix("JAGGAER:"))] += 1
    return refs


def assert_invoices_exactly_once(c: Cluster) -> dict[str, dict[str, dict[str, Any]]]:
    """No invoice twice in Exact; each posted ledger row is one entry in its division; no entry the ledger lacks."""
    refs = invoice_refs(entries(c))
    twice = {k: n for k, n in refs.items() if n > 1}
    assert not twice, f"invoices posted more than once: {twice}"
    ledgers = {t: c.ledger(t, INVOICE) for t in TENANTS}
    posted = {(r["division"], sid) for rows in ledgers.values() for sid, r in rows.items() if r["state"] == "posted"}
    assert posted == set(refs), (
        f"posted in the ledger but not in Exact: {sorted(posted - set(refs))[:5]}; "
        f"in Exact but not posted in the ledger: {sorted(set(refs) - posted)[:5]}"
    )
    for tenant, rows in ledgers.items():
        for r in rows.values():
            assert r["division"] in TENANTS[tenant], (tenant, r)
            assert r["state"] in ("posted", "held", "quarantined", "skipped"), (tenant, r)
            if r["state"] != "posted":
                assert r["reason"], r
    return ledgers


def assert_pos_exactly_once(c: Cluster) -> None:
    state = c.jaggaer("GET", "state")["tenants"]
    exact_state = c.exact("GET", "state")["divisions"]
    for tenant, divisions in TENANTS.items():
        jaggaer = state[tenant]
        creates = Counter(
            m["poNumber"] for m in jaggaer["po_messages"] if m.get("action") == "create" and m.get("status") == 200
        )
        twice = {po: n for po, n in creates.items() if n > 1}
        assert not twice, f"{tenant}: POs created more than once in JAGGAER: {twice}"
        rows = c.ledger(tenant, PO)
        posted = {r["target_ref"] for r in rows.values() if r["state"] == "posted"}
        assert posted, f"{tenant}: no PO posted"
        assert posted <= set(jaggaer["purchase_orders"]), f"{tenant}: posted but missing {posted - set(jaggaer)}"
        unknown = set(jaggaer["purchase_orders"]) - {r["target_ref"] for r in rows.values() if r["target_ref"]}
        assert not unknown, f"{tenant}: POs in JAGGAER the ledger does not account for: {sorted(unknown)}"
        for division in divisions:  # nothing lost: every order of the division is in the ledger
            in_ledger = sum(1 for r in rows.values() if r["division"] == division)
            assert in_ledger == exact_state[str(division)]["purchase_orders"], (tenant, division, in_ledger)
        for r in rows.values():
            assert r["state"] == "posted" or r["reason"], r


def division_hosts(c: Cluster, runs: list[tuple[str, str]]) -> dict[int, set[str]]:
    hosts: dict[int, set[str]] = {}
    for dag_id, run_id in runs:
        for ti in c.tis(dag_id, run_id):
            if ti["task_id"].startswith("division_") and ti.get("hostname"):
                hosts.setdefault(int(ti["task_id"].split(".")[0].removeprefix("division_")), set()).add(ti["hostname"])
    return hosts


# --------------------------------------------------------------------------------------------------------- tests
def test_both_flows_two_tenants_two_workers_and_a_killed_worker(cluster: Cluster) -> None:
    c = cluster
    assert c.info["tenants_connected"] == list(TENANTS), c.up_output
    assert c.info["workers"] == ["worker-1", "worker-2"]
    chains = c.exact("GET", "state")["oauth"]["chains"]
    assert sorted(sorted(ch["divisions"]) for ch in chains) == [list(d) for d in TENANTS.values()], chains
    health = c.api("GET", "/api/v2/monitor/health")
    assert {health[p]["status"] for p in ("metadatabase", "scheduler", "dag_processor", "triggerer")} == {"healthy"}
    dags = {d["dag_id"]: d for d in c.api("GET", "/api/v2/dags", params={"limit": 100})["dags"]}
    wanted = [f(t) for t in TENANTS for f in (exact_dag, invoice_dag)]
    assert set(wanted) <= set(dags), sorted(dags)
    assert all(dags[d]["is_paused"] for d in wanted), "DAGs must start paused, as docker-compose.yaml sets"

    # ---- 1. both flows, both tenants, through the REST API ------------------------------------------------------
    c.exact("DELETE", "calls")
    started = datetime.now(UTC)
    for dag_id in wanted:
        c.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    manual = [(dag_id, c.trigger(dag_id)) for dag_id in wanted]
    for dag_id, run_id in manual:
        assert c.wait_run(dag_id, run_id, timeout=600) == "success", c.summary(dag_id, run_id)
    for dag_id in wanted:  # scheduled runs the unpausing started (the invoice poll's last day)
        for r in c.wait_idle(dag_id):
            assert r["state"] == "success", c.summary(dag_id, r["dag_run_id"])

    assert_pos_exactly_once(c)
    ledgers = assert_invoices_exactly_once(c)
    # nothing lost: every approved invoice the manual runs' window covered (the last day and the overlap) is there
    for tenant in TENANTS:
        invoices = c.jaggaer("GET", "invoices", params={"tenant": tenant})
        window = (started - timedelta(days=1, hours=5), started - timedelta(minutes=1))
        approved = {
            str(i["invoiceId"])
            for i in invoices
            if i["workflowStatus"] == "Completed"
            and i["paymentStatus"] in ("Payable", "Paid")
            and window[0] <= parse_ts(i["lastUpdate"]) < window[1]
        }
        assert approved, f"{tenant}: the seed has no approved invoice in {window}"
        missing = approved - set(ledgers[tenant])
        assert not missing, f"{tenant}: approved invoices missing from the ledger: {sorted(missing)}"
        assert any(ledgers[tenant][i]["state"] == "posted" for i in approved), ledgers[tenant]

    calls = c.exact("GET", "calls")
    peaks = {int(k): v for k, v in calls["peak_in_flight"].items()}
    hosts = division_hosts(c, manual)
    print(f"\ncluster: Exact peak in flight per division {peaks}; workers per division {hosts}")
    assert set(peaks) == {d for ds in TENANTS.values() for d in ds}, peaks
    assert set(peaks.values()) == {1}, f"more than one request in flight for one Exact division: {peaks}"
    assert any(len(h) == 2 for h in hosts.values()), f"no division's tasks ran on both workers: {hosts}"
    both = [(d, r) for d, r in manual if {ti.get("hostname") for ti in c.tis(d, r)} >= {"worker-1", "worker-2"}]
    assert both, "no run had tasks on both workers:\n" + "\n".join(c.summary(d, r) for d, r in manual)

    # ---- 2. SIGKILL the worker that runs the invoice poll's post task: entry committed, answer lost, look-up ----
    tenant, division, unit = "demo", 111111, "UK-MFG"
    supplier = "1001"  # Brammer Steel Stockholders: in both demo divisions, matched by supplier number
    new = [
        c.jaggaer(
            "POST",
            "invoices",
            json={
                "tenant": tenant,
                "supplier_number": supplier,
                "business_unit": unit,
                "supplier_invoice_number": f"CLUSTER-KILL-{n}",
                "lines": [{"description": "cluster test", "quantity": 2, "unit_price": 10 + n,
                           "splits": [{"cost_centre": "CC100", "gl_account": "7000"}]}],
            },
        )["summary"]["invoiceId"]
        for n in range(3)
    ]  # fmt: skip
    new = [str(i) for i in new]
    c.exact("POST", "faults", json=[
        {"method": "POST", "path": "PurchaseEntries", "action": "drop_after_commit", "count": 1},
        {"method": "GET", "path": "PurchaseEntries", "action": "latency", "delay_s": LOOKUP_LATENCY_S, "count": None},
    ])  # fmt: skip
    dag_id = invoice_dag(tenant)
    post_task = f"division_{division}.post"
    c.exact("DELETE", "calls")
    run_id = c.trigger(dag_id)

    def committed_unanswered() -> dict[str, Any] | None:
        ti = next((t for t in c.tis(dag_id, run_id) if t["task_id"] == post_task), None)
        if not (ti and ti["state"] == "running" and ti.get("hostname")):
            return None
        in_exact = invoice_refs(entries(c))
        rows = c.ledger(tenant, INVOICE)
        posting = [i for i in new if rows.get(i, {}).get("state") == "posting" and in_exact[(division, i)]]
        looking = c.exact("GET", "calls")["in_flight"].get(str(division), 0)
        return {"ti": ti, "posting": posting} if posting and looking else None

    caught = c.wait_for(f"{post_task} to look up an entry whose answer was lost", committed_unanswered, 420, 0.5)
    victim = caught["ti"]["hostname"]
    survivor = {"worker-1", "worker-2"} - {victim}
    assert victim in ("worker-1", "worker-2") and len(survivor) == 1, caught
    leader = c.records()[victim]
    pids = cluster_mod.process_tree(leader["pid"], leader["start_time"])
    assert len(pids) >= 3, f"{victim}: expected the celery worker, its pool and the task processes, found {pids}"
    for pid in pids:  # the machine is gone: every process of the worker at once
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    c.wait_for(f"{victim}'s processes to be gone", lambda: not cluster_mod.process_tree(leader["pid"]), 30, 0.5)
    c.exact("DELETE", "faults")  # the retry goes at normal speed

    state = c.wait_run(dag_id, run_id, timeout=600)
    took = time.monotonic() - killed_at
    assert state == "success", c.summary(dag_id, run_id)
    post = next(t for t in c.tis(dag_id, run_id) if t["task_id"] == post_task)
    print(f"cluster: killed {victim} with {caught['posting']} posting; run green {took:.0f} s later\n"
          + c.summary(dag_id, run_id))  # fmt: skip
    assert post["try_number"] >= 2, f"the post task was not retried:\n{c.summary(dag_id, run_id)}"
    assert post["hostname"] in survivor, f"the retry did not run on the surviving worker:\n{c.summary(dag_id, run_id)}"
    ledgers = assert_invoices_exactly_once(c)
    refs = invoice_refs(entries(c))
    for i in new:  # nothing lost, nothing twice: each new invoice is one entry in Exact
        assert ledgers[tenant][i]["state"] == "posted", ledgers[tenant][i]
        assert refs[(division, i)] == 1, (i, refs[(division, i)])
    # the record in flight was settled by the look-up, not sent again: one POST per new invoice reached Exact
    counts = c.exact("GET", "calls")["by_endpoint"]
    posts = sum(n for k, n in counts.items() if k.startswith("POST ") and k.endswith("PurchaseEntries"))
    settled = {i: ledgers[tenant][i]["reason"] for i in caught["posting"]}
    print(f"cluster: committed but unanswered when killed, then settled: {settled}")
    assert posts == len(new), f"{posts} POSTs of purchase entries for {len(new)} new invoices: {counts}"
    assert all(settled.values()), f"the interrupted record was not settled by the look-up: {settled}"
    assert_pos_exactly_once(c)
    ensure_workers(c)  # the worker comes back (what a restarted machine or `scripts/cluster.sh worker N` does)


def ensure_workers(c: Cluster) -> None:
    """Both workers running: start the one that is not (``scripts/cluster.sh worker N``)."""
    records = c.records()
    for name in ("worker-1", "worker-2"):
        rec = records.get(name)
        if rec is None or not cluster_mod.process_alive(rec["pid"], rec["start_time"]):
            out = c.script("worker", name.removeprefix("worker-"), timeout=300)
            assert out.returncode == 0, out.stdout + out.stderr


def test_twenty_task_processes_on_two_workers_share_one_token_chain(cluster: Cluster) -> None:
    c = cluster
    ensure_workers(c)
    c.api("PATCH", f"/api/v2/dags/{PROBE_DAG}", json={"is_paused": False})
    demo_client = "mlc-demo-client"

    def chain() -> dict[str, Any]:
        return next(ch for ch in c.exact("GET", "state")["oauth"]["chains"] if ch["client_id"] == demo_client)

    before = chain()
    assert not before["dead"], before
    c.exact("DELETE", "calls")
    # 60x: the token's 570 s refresh age comes round every ~10 real seconds
    clock = c.exact("POST", "clock", json={"speed": 60})
    try:
        sim_now = float(clock["time"])
        run_id = c.trigger(PROBE_DAG, conf={"tenant": "demo", "conn_id": "exact_demo", "end": sim_now + 150 * 60})
        state = c.wait_run(PROBE_DAG, run_id, timeout=600)
    finally:
        c.exact("POST", "clock", json={"speed": 1})
    tis = c.tis(PROBE_DAG, run_id)
    assert state == "success" and len(tis) == 20, c.summary(PROBE_DAG, run_id)
    hosts = Counter(ti["hostname"] for ti in tis)
    assert set(hosts) == {"worker-1", "worker-2"}, f"the 20 tasks did not spread over both workers: {hosts}"

    after = chain()
    counts = c.exact("GET", "calls")["by_endpoint"]
    token_calls = counts.get("POST /api/oauth2/token", 0)
    refreshes = after["refreshes"] - before["refreshes"]
    me_calls = sum(n for k, n in counts.items() if k.endswith("current/Me"))
    print(
        f"\ncluster token chain: 20 tasks {dict(hosts)}, {me_calls} current/Me calls, {refreshes} refreshes, "
        f"{token_calls} token calls"
    )
    assert not after["dead"], f"the chain died: {after['dead_reason']}"
    assert refreshes >= 3, f"too few refreshes to prove anything: {refreshes}"
    assert me_calls > 20 * 20, me_calls
    # every token call was a refresh Exact accepted (a TooEarly or "Old refresh token used." answer is a token call
    # without a refresh, and the latter kills the chain)
    assert token_calls == refreshes, (token_calls, refreshes)


def test_cluster_down_leaves_nothing_running(cluster: Cluster) -> None:
    c = cluster
    pg_dir = c.env["MLC_CLUSTER_PG_DIR"]
    assert cluster_mod.processes_with({"MLC_CLUSTER_ID": c.cluster_id}), "the cluster is not running"
    started = [
        (pid, cluster_mod.start_time(pid))
        for rec in c.records().values()
        for pid in cluster_mod.process_tree(rec["pid"], rec["start_time"])
    ]
    assert len(started) > 10, started
    out = c.down()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cluster stopped" in out.stdout, out.stdout
    assert cluster_mod.processes_with({"MLC_CLUSTER_ID": c.cluster_id}) == []
    alive = [pid for pid, since in started if cluster_mod.process_alive(pid, since)]
    assert alive == [], f"processes started by the cluster still running: {alive}"
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    left = [
        line
        for line in ps.splitlines()
        if str(c.dir) in line or pg_dir in line or f"127.0.0.1:{c.env['MLC_CLUSTER_REDIS_PORT']}" in line
    ]
    assert left == [], "processes of the cluster still running after down:\n" + "\n".join(left)
    for var in ("MLC_CLUSTER_API_PORT", "MLC_CLUSTER_REDIS_PORT", "MLC_CLUSTER_PG_PORT", "MLC_CLUSTER_EXACT_PORT"):
        assert cluster_mod.port_free(int(c.env[var])), f"{var} {c.env[var]} is still bound"
