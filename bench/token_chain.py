"""Scenario 4 — token chain: P processes share one Exact token chain for H simulated hours.

The Exact sandbox's clock runs ``--token-speed`` times faster (default 120: two simulated hours in a minute), the
workers (``bench.token_worker``) rebuild that clock from its anchors, and every refresh happens for real: rotating
refresh tokens, the 570-second early-refresh refusal, "Old refresh token used." killing the chain. Access tokens
live 600 s, so H hours need at least ⌈H·3600/600⌉ - 1 refreshes; refreshing inside Exact's window (≥ 573 s after
issue, with the connector's 3-s margin) gives at most ⌊H·3600/573⌋.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import time
from typing import Any

from bench.env import connect_exact
from bench.lab import Lab
from bench.measure import latency_summary
from bench.servers import summarise_requests

TOKEN_PATH = "/api/oauth2/token"


def run(lab: Lab) -> dict[str, Any]:
    from bench import token_worker
    from sandbox.exact.settings import DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS

    opts = lab.options
    procs_n, hours, speed = opts.token_procs, opts.token_hours, opts.token_speed
    sim_seconds = hours * 3600
    ex = lab.exact
    ex.admin("POST", "reset", {"clock": True})
    engine = lab.env.fresh_db("token_chain")
    db_url = lab.env.db_url_of(engine)
    plan = lab.env.root / "token-plan.json"

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["bench.token_worker", "ml_connector.exact.client"])
    go, out = ctx.Event(), ctx.Queue()
    ready = [ctx.Event() for _ in range(procs_n)]
    lab.say(f"token chain: starting {procs_n} worker processes")
    t_spawn = time.perf_counter()
    procs = [
        ctx.Process(
            target=token_worker.worker,
            args=(db_url, ex.url, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS[0], str(plan), ready[i], go, out, i),
            daemon=True,
        )
        for i in range(procs_n)
    ]
    for p in procs:
        p.start()
    results: list[dict[str, Any]] = []
    try:
        for event in ready:
            if not event.wait(180):
                raise RuntimeError("a token-chain worker did not start")
        spawn_s = time.perf_counter() - t_spawn
        ex.clear()
        connect_exact(engine, ex.url)  # consent now: the first access token is fresh when the clock speeds up
        anchors = ex.admin("POST", "clock", {"speed": speed})
        start_sim = float(anchors["time"])
        plan.write_text(json.dumps({"anchors": anchors, "end": start_sim + sim_seconds}), encoding="utf-8")
        lab.say(f"token chain: {hours:g} simulated hours at {speed:g}x ({sim_seconds / speed:.0f}s)")
        t0 = time.perf_counter()
        go.set()
        for _ in procs:
            results.append(out.get(timeout=sim_seconds / speed + 180))
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            p.join(15)
            if p.is_alive():
                p.kill()
                p.join(5)
        ex.admin("POST", "clock", {"speed": 1})

    rows = ex.requests()
    state = ex.admin("GET", "state")["oauth"]
    ex.admin("POST", "reset", {"clock": True})
    chains = state.get("chains") or []
    chain = chains[0] if chains else {}
    token_rows = [r for r in rows if r["path"] == TOKEN_PATH]
    token_statuses: dict[str, int] = {}
    for r in token_rows:
        token_statuses[str(r["status"])] = token_statuses.get(str(r["status"]), 0) + 1
    api_401 = sum(1 for r in rows if r["path"] != TOKEN_PATH and r["status"] == 401)
    errors = [e for r in results for e in r["errors"]]
    refreshes = int(chain.get("refreshes", 0))
    minimum = math.ceil(sim_seconds / 600) - 1
    window_max = math.floor(sim_seconds / 573)
    api = summarise_requests([r for r in rows if not r["path"].startswith("/api/oauth2/")])
    out_: dict[str, Any] = {
        "processes": procs_n,
        "simulated_hours": hours,
        "clock_speed": speed,
        "wall_s": round(wall, 1),
        "spawn_s": round(spawn_s, 1),
        "api_calls": sum(r["calls"] for r in results),
        "api_by_status": api["by_status"],
        "api_429": api["429"],
        "api_401": api_401,
        "token_calls": len(token_rows),
        "token_call_statuses": token_statuses,
        "refreshes": refreshes,
        "refreshes_minimum": minimum,
        "refreshes_window_max": window_max,
        "refreshes_skipped_after_reread": sum(r["skipped_refreshes"] for r in results),
        "chains": len(chains),
        "chain_dead": bool(chain.get("dead")),
        "token_lookup": latency_summary([x for r in results for x in r["token_lookup_s"]]),
        "api_call": latency_summary([x for r in results for x in r["call_s"]]),
        "worker_errors": len(errors),
        "first_errors": errors[:5],
    }
    problems = []
    if errors:
        problems.append(f"{len(errors)} worker error(s): {errors[0]}")
    if len(chains) != 1 or chain.get("dead"):
        problems.append(f"chain state: {len(chains)} chain(s), dead={chain.get('dead')}")
    if any(status != "200" for status in token_statuses):
        problems.append(f"token endpoint answered {token_statuses}")
    if len(token_rows) != 1 + refreshes:
        problems.append(f"{len(token_rows)} token calls for {refreshes} refreshes + 1 code exchange")
    if refreshes < minimum or refreshes > window_max + 1:
        problems.append(f"{refreshes} refreshes, expected {minimum}..{window_max}")
    out_["problems"] = problems
    return out_
