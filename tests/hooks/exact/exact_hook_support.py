"""Helpers shared by the Exact hook tests (imported by name: this directory is on sys.path under pytest)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from ml_connector.exact.clock import SimClock
from ml_connector.http import RetryPolicy
from sandbox.exact.testing import ExactSandboxHandle

TENANT = "demo"
CONN_ID = "exact_demo"
CALLBACK = "http://127.0.0.1:8080/ml-connector/exact/callback"
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, read_timeout=10.0, max_429_wait=5.0)


class SandboxClock:
    """Our side of the sandbox's simulated clock (re-synced from its anchors whenever the tests move it)."""

    def __init__(self, handle: ExactSandboxHandle) -> None:
        self.handle = handle
        self.sync()

    def sync(self) -> None:
        self._clock = SimClock.from_anchors(self.handle.clock())

    def __call__(self) -> float:
        return self._clock()

    def sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds)

    def anchors(self) -> dict[str, float]:
        return self._clock.anchors()

    def advance(self, seconds: float) -> None:
        self.handle.advance(seconds)
        self.sync()

    def speed(self, speed: float) -> None:
        self.handle.clock(speed=speed)
        self.sync()


def exact_app(handle: ExactSandboxHandle, secret: str | None = None):  # -> ExactApp
    from ml_connector.exact.tokens import ExactApp

    return ExactApp(handle.url, handle.client_id, secret or handle.client_secret, CALLBACK)


def consent_code(handle: ExactSandboxHandle, redirect_uri: str = CALLBACK) -> str:
    return handle.authorize(state="t", redirect_uri=redirect_uri)


def connect(client: Any, handle: ExactSandboxHandle) -> None:
    """Consent and first token pair, as ``mlc exact authorize`` does it."""
    client.tokens.exchange_code(consent_code(handle), CALLBACK)


def follow_consent(url: str) -> str:
    """Open a consent URL like a browser would (sandbox auto-consent) and return where it redirects."""
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:300]
    return response.headers["location"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def token_endpoint_statuses(handle: ExactSandboxHandle) -> list[int]:
    return [c["status"] for c in handle.calls()["log"] if c["endpoint"] == "POST /api/oauth2/token"]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def mp_context() -> Any:
    """Process start method for the multi-process tests.

    ``forkserver`` (default): every worker is a fresh process forked from a clean server that was itself started
    like ``spawn`` (no threads, sockets, engines or locks inherited from the test process) and has imported the
    client once; twenty ``spawn`` starts cost 20-30 s of imports on two cores. ``MLC_TEST_MP_START=spawn`` runs
    the same tests with plain spawn.
    """
    import multiprocessing as mp
    import os

    method = os.environ.get("MLC_TEST_MP_START", "forkserver")
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["exact_hook_workers", "ml_connector.exact.client"])
    return ctx
