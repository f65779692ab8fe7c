"""``python -m bench``: run the scenarios, print the table, write bench/results.json and bench/results.md.

See docs/benchmarks.md for what each scenario measures and how to read the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.measure import REPO, git_info, machine_facts, machine_snapshot

SCENARIOS = ("po_push", "invoice_poll", "serving", "token_chain", "webhooks", "dags_test")
FLOW_SCENARIOS = ("po_push", "invoice_poll")
RESULTS_DIR = REPO / "bench"
SCENARIOS += ("daily_cap",)  # bench/daily_cap.py: a backlog above the invoice poll's daily Exact share


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="ml-connector benchmarks (docs/benchmarks.md)")
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, under a minute; results not kept")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every record count by this (default 1)")
    p.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated scenarios (default all: {','.join(SCENARIOS)})"
    )
    p.add_argument(
        "--minute-seconds",
        type=float,
        default=1.0,
        help="length of Exact's rate-limit minute in the invoice-poll scenario (default 1: compressed 60x)",
    )
    p.add_argument(
        "--no-trace", action="store_true", help="skip the tracemalloc passes (faster; --quick skips them too)"
    )
    p.add_argument("--token-procs", type=int, default=None, help="token chain: processes (default 20; quick 6)")
    p.add_argument(
        "--token-hours", type=float, default=None, help="token chain: simulated hours (default 2; quick 0.25)"
    )
    p.add_argument("--token-speed", type=float, default=120.0, help="token chain: sandbox clock speed (default 120)")
    p.add_argument(
        "--pg-server",
        default=None,
        help="PostgreSQL server URL (e.g. from scripts/pg.sh start): the connector store runs in a database the "
        "bench creates there and drops afterwards (default: a fresh SQLite file per scenario)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="directory for results.json/results.md (default: bench/ for a full run, a temporary one otherwise)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, Airflow home)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)} (known: {', '.join(SCENARIOS)})", file=sys.stderr)
        return 2

    from bench.env import BenchEnv
    from bench.lab import Lab, Options
    from bench.servers import SandboxProcess

    options = Options(
        quick=args.quick,
        scale=args.scale,
        minute_s=args.minute_seconds,
        trace=not (args.no_trace or args.quick),
        token_procs=args.token_procs or (6 if args.quick else 20),
        token_hours=args.token_hours or (0.25 if args.quick else 2.0),
        token_speed=args.token_speed,
        store="postgresql" if args.pg_server else "sqlite",
    )
    # Only a run with every default writes bench/results.*: those are the figures the README shows.
    full_run = (
        not args.quick
        and args.scale == 1.0
        and set(only) == set(SCENARIOS)
        and args.pg_server is None
        and args.minute_seconds == 1.0
        and not args.no_trace
        and args.token_procs is None
        and args.token_hours is None
        and args.token_speed == 120.0
    )
    out_dir = args.output or (RESULTS_DIR if full_run else Path(tempfile.mkdtemp(prefix="mlc-bench-results-")))

    results: dict[str, Any] = {
        "kind": "quick" if args.quick else "full" if full_run else "partial",
        "options": {k: v for k, v in vars(options).items()},
        "git": git_info(),
        "code": _code_paths(),
        "machine": machine_facts(),
        "machine_start": machine_snapshot(),
        "scenarios": {},
        "errors": {},
    }
    env = BenchEnv(pg_server=args.pg_server, keep=args.keep)
    env.apply()
    if args.pg_server:
        env.create_pg_database()
    t0 = time.perf_counter()
    exact, jaggaer = SandboxProcess("exact"), SandboxProcess("jaggaer")
    try:
        exact.start()
        jaggaer.start()
        env.connect(exact.url, jaggaer.url)
        lab = Lab(options=options, env=env, exact=exact, jaggaer=jaggaer)
        lab.say(f"sandboxes up: Exact {exact.url} ({exact.start_wall_s:.2f}s), JAGGAER {jaggaer.url}")
        results["sandbox_processes"] = {
            "exact_start_s": round(exact.start_wall_s, 3),
            "jaggaer_start_s": round(jaggaer.start_wall_s, 3),
        }
        pending = list(only)
        if options.quick:  # one connector process for both flows: a smoke run need not pay two imports
            flows = [n for n in only if n in FLOW_SCENARIOS]
            if flows:
                t_s = time.perf_counter()
                try:
                    from bench.child import run_in_child

                    for name, result in zip(flows, run_in_child(lab, [(n, "run") for n in flows]), strict=True):
                        results["scenarios"][name] = result
                except Exception as exc:
                    traceback.print_exc()
                    results["errors"][",".join(flows)] = f"{type(exc).__name__}: {exc}"[:4000]
                for name in flows:
                    results["scenarios"].setdefault(name, {})["scenario_wall_s"] = round(time.perf_counter() - t_s, 1)
                pending = [n for n in only if n not in flows]
        for name in pending:
            t_s = time.perf_counter()
            try:
                results["scenarios"][name] = _run_scenario(lab, name)
            except Exception as exc:  # a broken scenario is reported, the others still run
                traceback.print_exc()
                results["errors"][name] = f"{type(exc).__name__}: {exc}"[:4000]
            results["scenarios"].setdefault(name, {})["scenario_wall_s"] = round(time.perf_counter() - t_s, 1)
    finally:
        exact.stop()
        jaggaer.stop()
        env.cleanup()
    results["total_wall_s"] = round(time.perf_counter() - t0, 1)
    results["machine_end"] = machine_snapshot()

    from bench.report import render_markdown

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    markdown = render_markdown(results)
    (out_dir / "results.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    print(f"results written to {out_dir}/results.json and results.md", file=sys.stderr)
    problems = [p for s in results["scenarios"].values() for p in _all_problems(s)]
    if results["errors"] or problems:
        print(f"{len(results['errors'])} scenario error(s), {len(problems)} problem(s)", file=sys.stderr)
        return 1
    return 0


def _code_paths() -> dict[str, str]:
    """Where the measured code was imported from (the repo's ``include/`` unless PYTHONPATH says otherwise)."""
    import importlib.util

    out = {}
    for name in ("ml_connector", "sandbox", "bench"):
        spec = importlib.util.find_spec(name)
        out[name] = str(Path(spec.origin).parent) if spec and spec.origin else "?"
    return out


def _run_scenario(lab: Any, name: str) -> dict[str, Any]:
    """The flow scenarios run in fresh connector processes (``bench.child``), the others here."""
    if name in FLOW_SCENARIOS:
        from bench.child import run_in_child

        module = __import__(f"bench.{name}", fromlist=["run"])
        (result,) = run_in_child(lab, [(name, "run")], timeout=getattr(module, "SCENARIO_TIMEOUT_S", 900.0))
        if lab.options.trace:
            try:
                (result["tracemalloc"],) = run_in_child(lab, [(name, "run_traced")])
            except Exception as exc:  # keep the timed figures; the missing pass is a problem of its own
                traceback.print_exc()
                result["tracemalloc"] = {"problems": [f"tracemalloc pass failed: {exc}"[:2000]]}
        # a scenario's further passes (e.g. invoice poll at 10,000 and 100,000), each in a fresh process
        for function, timeout in getattr(__import__(f"bench.{name}", fromlist=["run"]), "CHILD_PASSES", ()):
            try:
                (result[function],) = run_in_child(lab, [(name, function)], timeout=timeout)
            except Exception as exc:
                traceback.print_exc()
                result[function] = {"problems": [f"{function} failed: {exc}"[:2000]]}
        return result
    module = __import__(f"bench.{name}", fromlist=["run"])
    return module.run(lab)


def _all_problems(node: Any) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "problems" and isinstance(value, list):
                out.extend(str(v) for v in value)
            else:
                out.extend(_all_problems(value))
    return out
