"""End-to-end fixtures: one real Airflow deployment (see ``e2e_stack.py``) shared by every test in ``tests/e2e``.

``airflow_stack`` is session-scoped so every e2e module reuses it, but it is stopped as soon as the last e2e test
has run (``pytest_runtest_teardown`` below): the rest of the suite does not share two cores with an idle scheduler.
``exact_connected`` gives the demo tenant an Exact Online token chain the way an admin does it: the plugin's
*Connect* link, the (sandbox's automatic) consent, the callback that stores the tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from e2e_stack import TENANT, AirflowStack

E2E_DIR = Path(__file__).resolve().parent
_STACKS: list[AirflowStack] = []


@pytest.fixture(scope="session")
def airflow_stack(pg_url: str) -> Iterator[AirflowStack]:
    """api-server + scheduler + dag-processor (LocalExecutor, PostgreSQL), sandboxes, admin JWT, demo connections."""
    stack = AirflowStack(pg_url)
    _STACKS.append(stack)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def exact_connected(airflow_stack: AirflowStack) -> dict[str, Any]:
    """Connect the demo tenant to the Exact sandbox through the plugin's consent routes; returns the chain state."""
    s = airflow_stack
    r = s.api("GET", "/ml-connector/exact/connect", params={"tenant": TENANT}, allow_redirects=False)
    assert r.status_code == 302, f"/ml-connector/exact/connect: HTTP {r.status_code} {r.text[:500]}"
    consent = r.headers["location"]
    assert consent.startswith(f"{s.exact_url}/api/oauth2/auth"), consent
    r = requests.get(consent, allow_redirects=False, timeout=30)  # the sandbox consents at once
    assert r.status_code == 302, f"sandbox consent: HTTP {r.status_code} {r.text[:300]}"
    callback = r.headers["location"]
    assert callback.startswith(s.callback_url), callback
    parts = urlsplit(callback)
    r = s.api("GET", f"{parts.path}?{parts.query}")
    assert r.status_code == 200 and "Exact Online connected" in r.text, f"callback: HTTP {r.status_code} {r.text}"
    chains = s.exact.state()["oauth"]["chains"]
    assert len(chains) == 1 and not chains[0]["dead"], chains
    return chains[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep the stack's AIRFLOW_HOME (logs) when an e2e test fails; it is deleted otherwise."""
    report = yield
    if report.failed:
        for stack in _STACKS:
            stack.keep_home = True
    return report


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the stack right after the last e2e test instead of at the end of the whole session."""
    if not _STACKS:
        return
    if nextitem is None or E2E_DIR not in Path(str(nextitem.path)).resolve().parents:
        for stack in _STACKS:
            stack.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for stack in _STACKS:
        if stack.timings:
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in stack.timings.items())
            terminalreporter.write_line(f"e2e Airflow stack startup: {parts} (home {stack.home})")
