"""Fixtures for the Exact hook tests: a real sandbox over loopback, a clock that follows it, clients.

- ``exact_sandbox``: one Exact sandbox server per session, reset before each test (settings, clock, faults).
- ``sim``: a ``SandboxClock`` (callable, epoch seconds on the sandbox's clock) with ``advance(s)`` and ``speed(x)``
  that move the sandbox clock and keep ours in step.
- ``make_client(engine, **kw)``: an ``ExactClient`` for tenant ``demo`` on the sandbox (``exact_hook_support.connect``
  runs the consent and stores the first token pair).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from exact_hook_support import FAST, SandboxClock, exact_app

from sandbox.exact.testing import ExactSandboxHandle

TENANT = "demo"
CONN_ID = "exact_demo"


@pytest.fixture(scope="session")
def _exact_hook_server() -> Iterator[ExactSandboxHandle]:
    handle = ExactSandboxHandle()
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def exact_sandbox(_exact_hook_server: ExactSandboxHandle) -> ExactSandboxHandle:
    _exact_hook_server.reset()
    return _exact_hook_server


@pytest.fixture
def sim(exact_sandbox: ExactSandboxHandle) -> SandboxClock:
    return SandboxClock(exact_sandbox)


@pytest.fixture
def morning(exact_sandbox: ExactSandboxHandle, sim: SandboxClock) -> SandboxClock:
    """The sandbox's clock (and ``sim``) set to 06:00 UTC today, for tests that move it by hours while counting
    Exact's daily token calls: those counters reset at 00:00 UTC, so a run near midnight must not cross it.
    Only for tests whose every client uses ``sim``: a client on the real clock would be hours apart."""
    today = datetime.now(UTC).date()
    exact_sandbox.clock(set=datetime(today.year, today.month, today.day, 6, tzinfo=UTC).isoformat())
    sim.sync()
    return sim


@pytest.fixture
def make_client(exact_sandbox: ExactSandboxHandle, sim: SandboxClock) -> Callable[..., Any]:
    from ml_connector.exact.client import ExactClient

    def make(engine: Any, *, secret: str | None = None, **kw: Any) -> ExactClient:
        kw.setdefault("clock", sim)
        kw.setdefault("policy", FAST)
        return ExactClient(exact_app(exact_sandbox, secret), TENANT, CONN_ID, engine=engine, **kw)

    return make
