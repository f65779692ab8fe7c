"""One post stage in a process of its own (tests of the posting lease start two, or freeze one with SIGSTOP).

    python tests/flows/post_worker.py <invoice_poll|po_push> <division> <run_id>

The connector database comes from ``MLC_DB_URL``, the connections from ``AIRFLOW_CONN_*``, the lease times from
``MLC_POST_LEASE_SECONDS`` / ``MLC_POST_LEASE_WAIT_SECONDS`` (the test's environment). Prints ``STARTED`` when the
stage begins and ``RESULT <outcomes as JSON>`` when it ends. Tests start it with :func:`spawn` and read it with
:func:`result`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any


def spawn(flow: str, division: int, run_id: str, engine: Any, *, ttl: float, wait: float) -> subprocess.Popen[str]:
    """This script as a process of its own, on ``engine``'s database with the given lease times."""
    env = dict(os.environ)
    env.update(
        MLC_DB_URL=engine.url.render_as_string(hide_password=False),
        MLC_POST_LEASE_SECONDS=str(ttl),
        MLC_POST_LEASE_WAIT_SECONDS=str(wait),
    )
    return subprocess.Popen(
        [sys.executable, __file__, flow, str(division), run_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(proc: subprocess.Popen[str], timeout: float = 90) -> dict[str, Any]:
    """The stage's outcomes (the ``RESULT`` line) once the process has ended successfully."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"post worker failed ({proc.returncode}):\n{err[-3000:]}"
    [line] = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :])


def main(flow: str, division: str, run_id: str) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    from ml_connector.flows.runtime import FlowContext, load_tenant
    from ml_connector.store.db import get_engine

    ctx = FlowContext.for_test(load_tenant("demo"), flow, get_engine(), run_id=run_id, division=int(division))
    print("STARTED", flush=True)
    if flow == "invoice_poll":
        from ml_connector.flows.invoice_poll import post
    else:
        from ml_connector.flows.po_push import post
    out = post(ctx)
    print("RESULT " + json.dumps(out.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
