"""The embedded store's disk-sync levels (store.db) and the ledger's streaming helpers (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from sqlalchemy import text

from ml_connector.http import env_settings_once, json_of
from ml_connector.store import ledger
from ml_connector.store.db import session_scope


def _level(engine: Any, **kw: Any) -> int:
    with session_scope(engine, **kw) as s:
        return int(s.execute(text("PRAGMA synchronous")).scalar_one())


def test_sqlite_commits_without_a_sync_unless_durable(sqlite_engine: Any) -> None:
    # 1 = NORMAL (no sync at commit; WAL loses at most a suffix on power loss), 2 = FULL
    assert _level(sqlite_engine) == 1
    assert _level(sqlite_engine, durable=True) == 2
    assert _level(sqlite_engine) == 1  # the pooled connection goes back to NORMAL


def _stage(engine: Any, n: int, division: int = 1) -> None:
    with session_scope(engine) as s:
        for i in range(n):
            ledger.stage(
                s,
                tenant="t",
                flow="invoice_poll",
                source_id=f"S{i:04d}",
                payload={"header": {"n": i, "supplier": {"id": i % 3}}, "lines": [{"x": i}]},
                division=division,
                repost_changed=False,
            )


def test_id_chunks_stream_in_ledger_order_and_skip_what_left_the_states(sqlite_engine: Any) -> None:
    _stage(sqlite_engine, 23)
    chunks = ledger.iter_id_chunks(sqlite_engine, "t", "invoice_poll", states=("pending",), division=1, size=10)
    first = next(chunks)
    assert len(first) == 10 and first == sorted(first)
    with session_scope(sqlite_engine) as s:  # one not read yet leaves "pending" before its chunk is read
        [entry] = ledger.entries(s, "t", "invoice_poll", states=("pending",), source_ids=["S0015"])
        ledger.transition(s, entry, "held", reason="test")
    rest = [i for chunk in chunks for i in chunk]
    assert len(rest) == 12 and min(rest) > max(first)
    with session_scope(sqlite_engine) as s:
        assert ledger.count_entries(s, "t", "invoice_poll", states=("pending",), division=1) == 22
        assert ledger.count_entries(s, "t", "invoice_poll", states=("pending",), division=2) == 0


def test_entries_with_payloads_can_read_one_part_of_the_payload(sqlite_engine: Any) -> None:
    _stage(sqlite_engine, 3)
    with session_scope(sqlite_engine) as s:
        rows = ledger.entries_with_payloads(s, "t", "invoice_poll", states=("pending",), part="header")
    assert [h for _e, h in rows] == [{"n": i, "supplier": {"id": i % 3}} for i in range(3)]


def test_a_response_is_parsed_once() -> None:
    response = requests.Response()
    response._content = b'{"d": {"EntryID": "x"}}'
    first = json_of(response)
    assert first == {"d": {"EntryID": "x"}} and json_of(response) is first
    bad = requests.Response()
    bad._content = b"<html>maintenance</html>"
    for _ in range(2):
        with pytest.raises(ValueError):
            json_of(bad)


def test_proxy_settings_are_read_once_and_no_proxy_is_honoured(monkeypatch: Any) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    proxied = env_settings_once(requests.Session(), "https://start.exactonline.nl")
    assert proxied.trust_env is False and proxied.proxies.get("https") == "http://proxy.example:3128"
    direct = env_settings_once(requests.Session(), "https://api.internal.example")
    assert direct.trust_env is False and not direct.proxies
    # hosts the environment treats differently keep requests' per-request lookup
    mixed = env_settings_once(requests.Session(), "https://start.exactonline.nl", "https://api.internal.example")
    assert mixed.trust_env is True
