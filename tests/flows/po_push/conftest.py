"""PO push flow tests: both sandboxes in-process, the store on SQLite and PostgreSQL (``engine`` fixture)."""

from __future__ import annotations

import pytest
from po_push_support import World, make_world


@pytest.fixture
def world(engine, monkeypatch: pytest.MonkeyPatch) -> World:
    return make_world(engine, monkeypatch)


@pytest.fixture
def sqlite_world(sqlite_engine, monkeypatch: pytest.MonkeyPatch) -> World:
    return make_world(sqlite_engine, monkeypatch)
