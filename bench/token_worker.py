"""The token-chain scenario's worker processes (started by forkserver; they import no Airflow).

Each worker is one "task process" of the connector sharing the tenant's Exact token chain through the connector
database: it builds an ``ExactClient`` (what ``ExactOnlineHook`` wraps) on the sandbox's sped-up clock and calls
Exact until the simulated end, ``current/Me`` mostly and a division endpoint every fifth call, with short random
pauses. The chain's refreshes happen inside those calls, whichever process finds the token due.
"""

from __future__ import annotations

import json
import random
import time
import traceback
from pathlib import Path
from typing import Any

TENANT = "demo"
CONN_ID = "exact_demo"
DIVISIONS = (111111, 222222)


def _client(db_url: str, base_url: str, secret: str, redirect_uri: str, anchors: dict[str, float]) -> Any:
    from ml_connector.exact.client import ExactClient
    from ml_connector.exact.clock import SimClock
    from ml_connector.exact.tokens import ExactApp
    from ml_connector.http import RetryPolicy
    from ml_connector.store.db import get_engine

    app = ExactApp(base_url, "mlc-demo-client", secret, redirect_uri)
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, read_timeout=30.0, max_429_wait=5.0)
    return ExactClient(
        app, TENANT, CONN_ID, engine=get_engine(db_url), clock=SimClock.from_anchors(anchors), policy=policy
    )


def worker(
    db_url: str, base_url: str, secret: str, redirect_uri: str, plan_path: str, ready: Any, go: Any, out: Any, idx: int
) -> None:
    """Wait for the start signal, call Exact until the simulated end, put a summary on ``out``."""
    import ml_connector.exact.client  # noqa: F401  (imported before the start signal)

    ready.set()
    go.wait(300)
    plan = json.loads(Path(plan_path).read_text(encoding="utf-8"))
    errors: list[str] = []
    calls = 0
    client = None
    token_s: list[float] = []
    call_s: list[float] = []
    try:
        client = _client(db_url, base_url, secret, redirect_uri, plan["anchors"])
        tokens = client.tokens
        original = tokens.get_access_token

        def timed_token() -> str:  # the token look-up every API call makes (reads the shared row)
            t = time.perf_counter()
            try:
                return original()
            finally:
                token_s.append(time.perf_counter() - t)

        tokens.get_access_token = timed_token  # type: ignore[method-assign]
        rng = random.Random(idx)
        while client.clock() < plan["end"]:
            t0 = time.perf_counter()
            try:
                if calls % 5 == 4:
                    client.get(DIVISIONS[idx % 2], "system/Divisions", {"$select": "Code"})
                else:
                    client.get(None, "current/Me", {"$select": "UserID"})
                calls += 1
                call_s.append(time.perf_counter() - t0)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                if len(errors) > 20:
                    break
            time.sleep(rng.uniform(0.15, 0.35))
    except BaseException:
        errors.append(traceback.format_exc()[-1000:])
    tokens = client.tokens if client is not None else None
    out.put(
        {
            "idx": idx,
            "calls": calls,
            "errors": errors,
            "token_calls": getattr(tokens, "token_calls", 0),
            "refreshes": getattr(tokens, "refreshes", 0),
            "skipped_refreshes": getattr(tokens, "skipped_refreshes", 0),
            "token_lookup_s": token_s,
            "call_s": call_s,
        }
    )
