"""Test-only DAG for the cluster test: 20 mapped tasks share one tenant's Exact token chain from Celery workers.

Each task builds the connector's ``ExactOnlineHook`` (what the flows use) on the Exact sandbox's clock (sped up by
the test, so the 570 s refresh age comes round every few real seconds) and calls ``current/Me`` until the simulated
``end`` in the run's conf, with short random pauses; the chain's refreshes happen inside those calls, in whichever
task process finds the token due. A task fails if any call failed. (The words "airflow" and "dag" keep safe-mode
discovery from skipping this file.)
"""

from __future__ import annotations

import random
import time
from typing import Any

import pendulum
from airflow.sdk import dag, get_current_context, task

PROCESSES = 20


@task(retries=0)
def chain_user(idx: int) -> dict[str, Any]:
    from airflow.sdk import BaseHook

    from ml_connector.exact.clock import SimClock
    from ml_connector.exact.hook import ExactOnlineHook

    conf = get_current_context()["dag_run"].conf or {}
    tenant, conn_id = conf.get("tenant", "demo"), conf.get("conn_id", "exact_demo")
    clock = SimClock.from_sandbox(BaseHook.get_connection(conn_id).host)
    hook = ExactOnlineHook(conn_id, tenant=tenant, clock=clock)
    rng = random.Random(idx)
    calls, errors = 0, []
    while clock() < float(conf["end"]):
        try:
            hook.client.get(None, "current/Me", {"$select": "UserID"})
            calls += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            if len(errors) > 5:
                break
        time.sleep(rng.uniform(0.15, 0.35))
    tokens = hook.client.tokens
    summary = {"idx": idx, "calls": calls, "errors": errors, "token_calls": getattr(tokens, "token_calls", 0)}
    print(f"token chain probe: {summary}")
    if errors:
        raise RuntimeError(f"{len(errors)} call(s) failed: {errors}")
    return summary


@dag(
    dag_id="mlc_cluster_token_chain",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=PROCESSES,
    tags=["ml-connector-test"],
)
def mlc_cluster_token_chain() -> None:
    chain_user.expand(idx=list(range(PROCESSES)))


mlc_cluster_token_chain()
