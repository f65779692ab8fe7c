"""Scenario — Airflow's share: one ``airflow dags test`` of the invoice poll DAG over 20 approved invoices.

What is measured, in one ``airflow dags test jaggaer_invoice_poll__demo`` process (the CLI as ``make demo`` runs it:
tasks run inside that process, one after the other, through Airflow's in-process execution API):

- **total wall**: process start to exit, seen from outside;
- **work**: the wall time inside the connector's task bodies (``flows.runtime.run_stage``: tenant, context, the stage
  function with its API calls and store writes), summed over the tasks, plus the report task's ``report`` call;
  the **share** is work / total wall (goal: at least 25 %, or the rest explained: docs/airflow-overhead.md);
- the phases around it: interpreter start and Airflow's own import (``-X importtime``: ``airflow`` and
  ``airflow.cli``), the connector imports (every ``ml_connector`` import tree, with the first task's), DAG file parse,
  and the tasks' wall as Airflow runs them (first ``[DAG TEST] starting`` to the last task's end).

The process runs with ``python -X importtime -m bench.dags_test --child ...``: a thin wrapper that times
``run_stage`` (wrapping it when Airflow's task imports ``flows.runtime``, so no import moves) and then hands over to
Airflow's CLI ``main``. Exact's rate limits are off (zero-latency sandbox): the figure is the connector's and
Airflow's own time, not pacing.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

# the child (``--child``) imports nothing of the bench but this: its imports are Airflow's and the connector's only
from bench.measure import REPO

if TYPE_CHECKING:
    from bench.lab import Lab

TENANT = "demo"  # bench.env.TENANT
N_INVOICES = 20
DAG_ID = f"jaggaer_invoice_poll__{TENANT}"
TIMEOUT_S = 900.0


# ------------------------------------------------------------------------------------------- inside the child
class _TimeRunStage(importlib.abc.MetaPathFinder):
    """Wraps ``flows.runtime.run_stage`` and ``report`` the moment Airflow's task imports the module (not before:
    the import cost stays where it is)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.records: list[dict[str, Any]] = []

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "ml_connector.flows.runtime":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.loader is not None
        loader, original = spec.loader, spec.loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            module.run_stage = self._timed(module.run_stage, "stage")
            module.report = self._timed(module.report, "report")

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec

    def _timed(self, fn: Any, kind: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                context = args[0] if args else {}
                ti = context.get("ti") if isinstance(context, dict) else None
                self.records.append(
                    {
                        "kind": kind,
                        "task": getattr(ti, "task_id", None) or kind,
                        "wall_s": round(time.perf_counter() - t0, 4),
                        "cpu_s": round(time.process_time() - c0, 4),
                        "at": time.time(),
                    }
                )
                self.out.write_text(json.dumps(self.records))

        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
        return wrapper


def _child(out: Path, argv: list[str]) -> int:
    sys.meta_path.insert(0, _TimeRunStage(out))
    from airflow.__main__ import main

    sys.argv = ["airflow", *argv]
    main()
    return 0


# ------------------------------------------------------------------------------------------- the parent side
def _importtime(stderr: str) -> dict[str, Any]:
    """Cumulative import seconds of Airflow's CLI and of the connector's outermost import trees."""
    entries: list[tuple[int, int, str]] = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m:
            entries.append((int(m.group(2)), len(m.group(3)), m.group(4)))
    airflow = sum(us for us, depth, name in entries if depth == 0 and name.split(".")[0] == "airflow")
    connector = 0
    trees: list[tuple[str, float]] = []
    # an ml_connector module imported while no other ml_connector module is importing (its tree, once)
    stack: list[tuple[int, str]] = []
    for us, depth, name in reversed(entries):  # importtime prints children before parents
        while stack and stack[-1][0] >= depth:
            stack.pop()
        inside = any(n.startswith("ml_connector") for _, n in stack)
        if name.startswith("ml_connector") and not inside:
            connector += us
            trees.append((name, round(us / 1e6, 3)))
        stack.append((depth, name))
    trees.sort(key=lambda t: -t[1])
    return {
        "airflow_top_level_s": round(airflow / 1e6, 3),
        "connector_s": round(connector / 1e6, 3),
        "connector_trees": trees[:8],
    }


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) (.*)$")


def _phases(log: str, started: float, ended: float, work: float) -> dict[str, Any]:
    """Where the process's wall time went, from the log's timestamps (epoch ``started``/``ended`` seen outside)."""
    from datetime import datetime

    events: list[tuple[float, str]] = []
    for line in log.splitlines():
        m = _STAMP.match(line)
        if m:
            events.append((datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp(), m.group(2)))
    if not events:
        return {}

    def first(text: str) -> float | None:
        return next((t for t, msg in events if text in msg), None)

    def last(text: str) -> float | None:
        return next((t for t, msg in reversed(events) if text in msg), None)

    starts = [t for t, msg in events if "[DAG TEST] starting task_id=" in msg]
    ends = [t for t, msg in events if "[DAG TEST] end task" in msg]
    parse0, parse1 = first("Filling up the DagBag"), first("Bulk-writing dags")
    run0, api0 = first("[DAG TEST] running task"), first("Task started")
    out: dict[str, Any] = {"tasks": len(starts)}
    out["process_start_and_cli_import_s"] = round(events[0][0] - started, 2)
    if parse0 and parse1:
        out["dag_files_parse_s"] = round(parse1 - parse0, 2)
    if starts:
        out["before_first_task_s"] = round(starts[0] - events[0][0], 2)
    if run0 and api0:
        out["first_task_execution_api_start_s"] = round(api0 - run0, 2)
    if starts and ends:
        span = ends[-1] - starts[0]
        out["tasks_span_s"] = round(span, 2)
        rest = span - work - (api0 - run0 if run0 and api0 else 0.0)
        out["airflow_per_task_s"] = round(rest / len(starts), 3)
        out["after_last_task_s"] = round(ended - ends[-1], 2)
    return out


def run_dags_test(lab: Lab, conf: dict[str, Any], db_url: str, name: str) -> dict[str, Any]:
    timings = lab.env.root / f"{name}-stages.json"
    env = dict(os.environ, MLC_DB_URL=db_url, MLC_TASK_RETRIES="0", PYTHONPATH=os.pathsep.join(_pythonpath()))
    cmd = [sys.executable, "-X", "importtime", "-m", "bench.dags_test", "--child", str(timings)]
    cmd += ["dags", "test", DAG_ID, "-c", json.dumps(conf)]
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, started = time.perf_counter(), time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    wall, ended = time.perf_counter() - t0, time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    process_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    (lab.env.root / f"{name}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr, encoding="utf-8")
    records = json.loads(timings.read_text()) if timings.exists() else []
    work = sum(r["wall_s"] for r in records)
    stages = {r["task"]: r["wall_s"] for r in records}
    out = {
        "exit_code": proc.returncode,
        "total_wall_s": round(wall, 2),
        "process_cpu_s": round(process_cpu, 2),  # the dags-test process's CPU (user + system): load-proof
        "work_s": round(work, 2),
        "work_cpu_s": round(sum(r["cpu_s"] for r in records), 2),
        "work_share": round(work / wall, 3) if wall else 0.0,
        "stages_s": stages,
        "imports": _importtime(proc.stderr),
        "phases": _phases(proc.stdout + proc.stderr, started, ended, work),
        "log": str(lab.env.root / f"{name}.log"),
    }
    if records:
        first = min(r["at"] - r["wall_s"] for r in records)
        last = max(r["at"] for r in records)
        out["first_to_last_stage_s"] = round(last - first, 2)
    return out


def _pythonpath() -> list[str]:
    paths = [str(REPO), str(REPO / "include")]
    return [*paths, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in paths]]


def _airflow_db(lab: Lab) -> float:
    """Airflow's metadata database in the bench's private home (once; not part of the measured run)."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return round(time.perf_counter() - t0, 1)


def run(lab: Lab) -> dict[str, Any]:
    from bench.env import connect_exact
    from bench.invoice_poll import _create_invoices, bench_day

    n = N_INVOICES
    day: date = bench_day()
    lab.say("dags test: Airflow metadata database (airflow db migrate)")
    migrate_s = _airflow_db(lab)
    lab.exact.admin("POST", "reset", {})
    lab.exact.admin("POST", "settings", {"rate_limits_enabled": False})
    lab.jaggaer.admin("POST", "reset", {})
    _create_invoices(lab, n, day)
    engine = lab.env.fresh_db("dags_test")
    connect_exact(engine, lab.exact.url)
    db_url = lab.env.db_url_of(engine)
    conf = {"date_from": day.isoformat(), "date_to": day.isoformat()}
    lab.say(f"dags test: airflow dags test {DAG_ID} over {n} invoices")
    first = run_dags_test(lab, conf, db_url, "dags_test_first")
    posted = _posted(engine)
    problems: list[str] = []
    if first["exit_code"] != 0:
        problems.append(f"airflow dags test exited {first['exit_code']} (log: {first['log']})")
    if posted != n:
        problems.append(f"posted {posted} of {n} invoices")
    return {"n_invoices": n, "airflow_db_migrate_s": migrate_s, "first": first, "posted": posted, "problems": problems}


def _posted(engine: Any) -> int:
    from sqlalchemy import func, select

    from ml_connector.store.db import session_scope
    from ml_connector.store.models import LedgerEntry

    with session_scope(engine) as s:
        return int(
            s.scalar(select(func.count()).where(LedgerEntry.flow == "invoice_poll", LedgerEntry.state == "posted")) or 0
        )


def render_markdown(dt: dict[str, Any]) -> list[str]:
    """The dags-test section of results.md (``bench.report``)."""
    f = dt["first"]
    imp, ph = f.get("imports") or {}, f.get("phases") or {}
    cpu, work_cpu = f.get("process_cpu_s") or 0.0, f.get("work_cpu_s") or 0.0
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in (f.get("stages_s") or {}).items())
    return [
        f"**5. Airflow's share** (`airflow dags test {DAG_ID}` over {dt['n_invoices']} invoices: one process, "
        f"tasks in-process; zero-latency sandbox). Total wall **{f['total_wall_s']:.1f} s**, connector work (task "
        f"bodies) **{f['work_s']:.1f} s = {f['work_share']:.0%}** (goal ≥ 25 %, or Airflow's own time explained: "
        f"docs/airflow-overhead.md). CPU of the process {cpu:.1f} s, of which task bodies {work_cpu:.2f} s "
        f"({work_cpu / cpu if cpu else 0:.0%}). Phases (wall): process start and CLI import "
        f"{ph.get('process_start_and_cli_import_s', 0):.1f} s, DAG files parsed in "
        f"{ph.get('dag_files_parse_s', 0):.1f} s, start to first task {ph.get('before_first_task_s', 0):.1f} s, "
        "first task's in-process execution API "
        f"{ph.get('first_task_execution_api_start_s', 0):.1f} s, Airflow per task "
        f"{ph.get('airflow_per_task_s', 0):.2f} s over {ph.get('tasks', '?')} tasks, after the last task "
        f"{ph.get('after_last_task_s', 0):.1f} s. Imports: "
        f"Airflow's top-level {imp.get('airflow_top_level_s', 0):.1f} s, the connector's "
        f"{imp.get('connector_s', 0):.2f} s. Work by task: {stages or '-'}. (Airflow's metadata DB migration, once "
        f"per home, not counted: {dt.get('airflow_db_migrate_s', 0):.0f} s.)",
        "",
    ]


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--child":
    raise SystemExit(_child(Path(sys.argv[2]), sys.argv[3:]))
