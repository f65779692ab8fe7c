"""Make the connection list's *Test* button work (a root middleware the plugin installs on the api-server).

Why it fails without this (Airflow 3.3.2, read from its source): the *Test* button in the connection list builds
its request from the stored connection with ``port: Number(connection.port)``; a connection without a port (ours
keep the port inside the host URL, and a SQLite one has none) has ``port = null``, and ``Number(null)`` is ``0``.
It also sends the masked password (``***``). ``POST /api/v2/connections/test`` reuses the stored credentials only
when host and port equal the stored ones; ``0`` differs from the stored ``NULL``, and a masked password is not a
credential of the caller's own, so the API answers 400 "The host or port to test differs from the stored
connection" for every such connection before any hook runs.

The fix: a ``port`` of exactly ``0`` in a test request is dropped (port 0 is never a destination one can connect
to, so it can only mean "no port"). Then the API merges the stored connection as intended and the hook's own
``test_connection`` message comes back. Nothing else in the request is touched, and the API's rule that a
*different* host or real port must bring its own credentials still applies.
"""

from __future__ import annotations

import json
from typing import Any

TEST_PATH_SUFFIX = "/api/v2/connections/test"


def drop_port_zero(body: bytes) -> bytes:
    """The request body without ``"port": 0`` (unchanged when there is none, or when it is not JSON)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    if not isinstance(data, dict) or "port" not in data:
        return body
    port = data["port"]
    if isinstance(port, bool) or port not in (0, "0"):
        return body
    del data["port"]
    return json.dumps(data).encode()


class ConnectionTestPortZeroMiddleware:
    """ASGI middleware: rewrites only ``POST …/api/v2/connections/test`` bodies (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or not str(scope.get("path", "")).rstrip("/").endswith(TEST_PATH_SUFFIX)
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away: let the app see that
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = drop_port_zero(b"".join(chunks))
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        replay = _replay([{"type": "http.request", "body": body, "more_body": False}], receive)
        await self.app({**scope, "headers": headers}, replay, send)


def _replay(messages: list[dict[str, Any]], receive: Any) -> Any:
    pending = list(messages)

    async def replayed() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
