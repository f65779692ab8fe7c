"""pytest plugin: the whole test session's connector requests must stay within Exact's entity reference.

At the start of a session (on the xdist controller, before any worker starts) it points ``MLC_CONTRACT_LOG`` at a
fresh file; every Exact sandbox in the session, in-process or a child process, appends the connector's offences to
it (:mod:`sandbox.exact.contract`). At the end it prints each offence with the test that caused it and fails the
run when there is any. Enable with ``pytest_plugins = ["sandbox.exact.contract_plugin"]`` or ``-p``.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict

import pytest

from sandbox.exact.contract import LOG_ENV, read_log

_KEY = pytest.StashKey[str]()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if _is_worker(config):
        return
    fd, path = tempfile.mkstemp(prefix="mlc-exact-contract-", suffix=".jsonl")
    os.close(fd)
    os.environ[LOG_ENV] = path  # inherited by xdist workers and every process a test starts
    config.stash[_KEY] = path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.stash.get(_KEY, None)
    if path is None:
        return
    found, _ = read_log(path)
    if found and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    path = config.stash.get(_KEY, None)
    if path is None:
        return
    found, shapes = read_log(path)
    tr = terminalreporter
    if not found:
        tr.write_line(
            f"Exact contract check: {shapes} distinct connector request shape(s) checked; "
            "0 requests outside Exact's entity reference."
        )
        return
    tr.section("Exact contract check FAILED", sep="=", red=True, bold=True)
    by_offence: dict[str, list[dict[str, str]]] = defaultdict(list)
    for item in found:
        by_offence[item["offence"]].append(item)
    for offence, items in sorted(by_offence.items()):
        tr.write_line(f"- {offence} ({len(items)} request(s))", red=True)
        for item in items[:5]:
            tr.write_line(f"    in {item.get('test') or '(no test running)'}: {item.get('request')}")
    tr.write_line(
        f"{len(found)} connector request offence(s) outside Exact's entity reference "
        "(include/sandbox/exact/reference/exact-online-entities.json). Fix the connector's request, never the "
        "reference."
    )
    os.environ.pop(LOG_ENV, None)
