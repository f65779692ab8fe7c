"""The access token kept in memory until it is due (issue 12), with the chain's lock rules unchanged.

Runs on SQLite and PostgreSQL (``engine``) against the sandbox over real HTTP.
"""

from __future__ import annotations

from typing import Any

from exact_hook_support import connect, token_endpoint_statuses
from sqlalchemy import event


class TokenReads:
    """Counts the statements that read the token row on an engine."""

    def __init__(self, engine: Any) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)
        self.engine = engine

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM mlc_token" in statement:
            self.count += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


def test_the_access_token_is_read_once_and_kept_until_it_is_due(engine, make_client, exact_sandbox, sim) -> None:
    client = make_client(engine)
    connect(client, exact_sandbox)
    reads = TokenReads(engine)
    try:
        first = client.tokens.get_access_token()
        assert reads.count == 1
        for _ in range(5):  # 500 s of calls: the token comes from memory, the row is not read again
            sim.advance(100)
            assert client.tokens.get_access_token() == first
            assert client.get(None, "current/Me")["d"]["results"][0]["UserID"]
        assert reads.count == 1
        sim.advance(77)  # 577 s: due, inside Exact's window: read again (under the lock), refreshed once
        second = client.tokens.get_access_token()
        assert second != first and reads.count > 1
        assert client.tokens.get_access_token() == second
        assert token_endpoint_statuses(exact_sandbox) == [200, 200]
    finally:
        reads.close()


def test_a_refresh_by_another_process_reaches_the_token_in_memory_through_the_401_rule(
    engine, make_client, exact_sandbox, sim
) -> None:
    exact_sandbox.settings(old_access_token_valid_after_refresh=False)  # a refresh retires the old access token
    a, b = make_client(engine), make_client(engine)
    a.tokens.refresh_margin = 20.0  # a finds its token due at 590 s, b at 573 s
    connect(a, exact_sandbox)
    held = a.tokens.get_access_token()  # a keeps it in memory
    sim.advance(580)
    fresh = b.tokens.get_access_token()  # b refreshes in Exact's window; a's token is not due yet
    assert fresh != held
    # a still holds the retired token: its call gets a 401, re-reads the row under the chain lock, takes b's token
    # without refreshing again, and the call goes through
    assert a.get(None, "current/Me")["d"]["results"][0]["UserID"]
    assert a.tokens.token_calls == 1 and a.tokens.skipped_refreshes == 1  # its exchange only: no refresh
    assert a.tokens.get_access_token() == fresh
    assert token_endpoint_statuses(exact_sandbox) == [200, 200]  # the exchange and b's one refresh
