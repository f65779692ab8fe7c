"""Run a flow scenario in a fresh connector process (multiprocessing ``spawn``).

Each flow scenario — and its tracemalloc pass — gets a process of its own, like an Airflow task: it imports the
connector (and Airflow with it) from scratch, so its peak RSS is its own and not what an earlier scenario left on
the heap (``--quick`` runs both flow scenarios in one process, to save an import). The child inherits the
environment (``bench.env`` set it before starting the child) and talks to the sandbox processes the parent
started; it sends its results back through a pipe.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
import traceback
from pathlib import Path
from typing import Any


def _log_to_file(path: Path) -> None:
    """Connector (and Alembic) log records go to a file: still formatted and written, as in a task, but the
    terminal shows only the progress lines."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ml_connector", "alembic"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)


def _main(spec: dict[str, Any], conn: Any) -> None:
    try:
        from bench.env import BenchEnv
        from bench.lab import Lab, Options
        from bench.measure import rss_mb
        from bench.servers import SandboxProcess

        t0 = time.perf_counter()
        import ml_connector.exact.hook
        import ml_connector.flows.invoice_poll
        import ml_connector.flows.po_push
        import ml_connector.jaggaer.hook  # noqa: F401

        imported = {"connector_import_s": round(time.perf_counter() - t0, 2), "rss_after_import_mb": rss_mb()}
        env = BenchEnv.attach(Path(spec["root"]), spec["db_url"])
        _log_to_file(env.root / "bench.log")
        lab = Lab(
            options=Options(**spec["options"]),
            env=env,
            exact=SandboxProcess.attach("exact", *spec["exact"]),
            jaggaer=SandboxProcess.attach("jaggaer", *spec["jaggaer"]),
            started=spec["started"],
        )
        results = []
        for module_name, function in spec["calls"]:
            module = __import__(f"bench.{module_name}", fromlist=[function])
            result = getattr(module, function)(lab)
            result["process"] = imported
            results.append(result)
        conn.send(("ok", results))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"))
    finally:
        conn.close()


def run_in_child(lab: Any, calls: list[tuple[str, str]], timeout: float = 900.0) -> list[dict[str, Any]]:
    """``bench.<module>.<function>(lab)`` for each ``(module, function)``, one after the other, in one fresh
    process; their results (or ``RuntimeError`` with the error)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    what = ", ".join(f"{m}.{f}" for m, f in calls)
    spec = {
        "calls": [list(c) for c in calls],
        "root": str(lab.env.root),
        "db_url": lab.env.db_url,
        "options": dict(vars(lab.options)),
        "exact": (lab.exact.url, lab.exact.pid),
        "jaggaer": (lab.jaggaer.url, lab.jaggaer.pid),
        "started": lab.started,
    }
    proc = ctx.Process(target=_main, args=(spec, child), name="bench-child")
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise RuntimeError(f"{what}: no result within {timeout:.0f}s")
        status, payload = parent.recv()
    except EOFError:
        raise RuntimeError(f"{what}: the process died (exit code {proc.exitcode})") from None
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    if status != "ok":
        raise RuntimeError(f"{what} failed: {payload}")
    return payload
