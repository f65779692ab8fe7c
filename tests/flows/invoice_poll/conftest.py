"""Invoice-poll flow fixtures: both sandboxes once per session, reset (and a fresh Exact token chain) per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from invoice_poll_support import Servers, World, start_servers, stop_servers, world_fixture


@pytest.fixture(scope="session")
def poll_servers() -> Iterator[Servers]:
    servers = start_servers()
    try:
        yield servers
    finally:
        stop_servers(servers)


@pytest.fixture
def world(poll_servers: Servers, engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Both stores (sqlite, postgres) via ``engine``."""
    yield from world_fixture(poll_servers, engine, monkeypatch)


@pytest.fixture
def sqlite_world(poll_servers: Servers, sqlite_engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """SQLite only: for tests about the flow, not the store."""
    yield from world_fixture(poll_servers, sqlite_engine, monkeypatch)
