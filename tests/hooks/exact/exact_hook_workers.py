"""Process entry points for the multi-process token-chain tests (spawned: they import only what they need).

They use ``ExactClient`` (the object ``ExactOnlineHook`` wraps) rather than the hook itself: importing Airflow
costs 4-5 CPU-seconds per process, which 20 processes on two cores cannot afford inside a 40-second test. The
token chain, the locks and the HTTP behaviour are the same code either way.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import traceback
from pathlib import Path
from typing import Any

TENANT = "demo"
CONN_ID = "exact_demo"


def _client(db_url: str, base_url: str, anchors: dict[str, float], secret: str) -> Any:
    from ml_connector.exact.client import ExactClient
    from ml_connector.exact.clock import SimClock
    from ml_connector.exact.tokens import ExactApp
    from ml_connector.http import RetryPolicy
    from ml_connector.store.db import get_engine

    app = ExactApp(base_url, "mlc-demo-client", secret, "urn:mlc:paste")
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, read_timeout=20.0, max_429_wait=5.0)
    return ExactClient(
        app, TENANT, CONN_ID, engine=get_engine(db_url), clock=SimClock.from_anchors(anchors), policy=policy
    )


def api_worker(
    db_url: str, base_url: str, secret: str, plan_path: str, ready: Any, go: Any, out: Any, idx: int
) -> None:
    """Wait for the start signal, then call Exact until the simulated deadline; report what happened."""
    from ml_connector.errors import ConnectorError  # noqa: F401  (import before the start signal)
    from ml_connector.exact.client import ExactClient  # noqa: F401

    ready.set()
    go.wait(60)
    plan = json.loads(Path(plan_path).read_text())
    client = _client(db_url, base_url, plan["anchors"], secret)
    rng = random.Random(idx)
    errors: list[str] = []
    calls = 0
    try:
        while client.clock() < plan["end"]:
            try:
                if calls % 5 == 4:
                    client.get(111111 if idx % 2 else 222222, "system/Divisions", {"$select": "Code"})
                else:
                    client.get(None, "current/Me", {"$select": "UserID"})
                calls += 1
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                if len(errors) > 20:
                    break
            time.sleep(rng.uniform(0.15, 0.35))
    except BaseException:
        errors.append(traceback.format_exc())
    out.put(
        {
            "idx": idx,
            "calls": calls,
            "errors": errors,
            "token_calls": client.tokens.token_calls,
            "refreshes": client.tokens.refreshes,
            "skipped": client.tokens.skipped_refreshes,
        }
    )


def refresh_and_die(db_url: str, base_url: str, secret: str, anchors: dict[str, float], when: str) -> None:
    """Start a refresh and SIGKILL this process ``before_send`` or ``after_receive`` (the new pair unsaved)."""
    from ml_connector.exact.tokens import TokenChain

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if when == "after_receive":
        TokenChain.after_receive_hook = die
    else:
        TokenChain.before_send_hook = die
    client = _client(db_url, base_url, anchors, secret)
    client.tokens.get_access_token()
    raise SystemExit("not killed")  # pragma: no cover
