"""Fixtures for the JAGGAER sandbox tests: one server per session, reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jaggaer_support import DEMO, JaggaerHandle

from sandbox.common.server import ServerThread
from sandbox.jaggaer import create_app


@pytest.fixture(scope="session")
def _jaggaer_server() -> Iterator[JaggaerHandle]:
    app = create_app()
    server = ServerThread(app)
    url = server.start()
    handle = JaggaerHandle(url=url, app=app, sandbox=app.state.sandbox)
    try:
        yield handle
    finally:
        handle.http.close()
        server.stop()


@pytest.fixture
def jaggaer_sandbox(_jaggaer_server: JaggaerHandle) -> JaggaerHandle:
    """A running JAGGAER sandbox, freshly reset (default settings, demo + acme seed, no faults, no calls)."""
    _jaggaer_server.sandbox.clock.reset()
    _jaggaer_server.reset()
    return _jaggaer_server


@pytest.fixture
def demo_token(jaggaer_sandbox: JaggaerHandle) -> str:
    return jaggaer_sandbox.token(DEMO)
