"""Sandbox fixtures. ``exact_sandbox``: one Exact Online sandbox server per session, reset before every test.

(The JAGGAER sandbox's fixtures live in ``tests/sandbox/jaggaer/conftest.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.exact.testing import ExactSandboxHandle


@pytest.fixture(scope="session")
def _exact_server() -> Iterator[ExactSandboxHandle]:
    handle = ExactSandboxHandle()
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def exact_sandbox(_exact_server: ExactSandboxHandle) -> ExactSandboxHandle:
    """A running Exact sandbox, freshly reset: default settings and seed, real-time clock, no faults, no calls,
    no tokens. ``.url``, ``.sandbox`` (in-process ExactSandbox), admin helpers, ``connect()``, ``session()``."""
    _exact_server.reset()
    return _exact_server
