"""Fixtures for the Exact sandbox tests."""

from __future__ import annotations

import pytest
from exact_support import Api

from sandbox.exact.testing import ExactSandboxHandle


@pytest.fixture
def api(exact_sandbox: ExactSandboxHandle) -> Api:
    """Connected through the real OAuth flow, with rate limits and the error budget off (tests that are about
    those switch them back on)."""
    exact_sandbox.settings(rate_limits_enabled=False, error_budget_enabled=False)
    return Api(exact_sandbox, exact_sandbox.connect())
