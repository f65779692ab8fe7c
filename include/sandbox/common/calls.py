"""Request counting: every non-admin request is counted by ``"METHOD /path/template"`` and logged (bounded).

Tests use it to prove how many API calls the connector made. The template is the matched route's path when the
app uses routes with parameters, else what the ``templater`` callable makes of the raw path, else the raw path.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.common.clock import Clock

Templater = Callable[[str], str]


class CallLog:
    """Thread-safe call counter with a bounded log of the most recent calls."""

    def __init__(self, maxlen: int = 500, clock: Clock | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._total = 0
        self._log: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._clock = clock

    def record(self, method: str, template: str, path: str, query: str, status: int | None) -> None:
        ts = self._clock.time() if self._clock is not None else time.time()
        key = f"{method} {template}"
        with self._lock:
            self._total += 1
            self._counts[key] += 1
            self._log.append(
                {"method": method, "path": path, "endpoint": key, "query": query, "status": status, "ts": ts}
            )

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"total": self._total, "by_endpoint": dict(self._counts), "log": list(self._log)}

    def count(self, endpoint: str | None = None) -> int:
        """Total calls, or calls to one ``"METHOD /template"`` key."""
        with self._lock:
            return self._total if endpoint is None else self._counts.get(endpoint, 0)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._total = 0
            self._log.clear()


class CallCounterMiddleware:
    """Pure ASGI middleware feeding a :class:`CallLog`. Add it outermost so faulted requests count too."""

    def __init__(
        self,
        app: ASGIApp,
        log: CallLog,
        templater: Templater | None = None,
        admin_prefix: str = "/_admin",
    ) -> None:
        self.app = app
        self.log = log
        self.templater = templater
        self.admin_prefix = admin_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.admin_prefix):
            await self.app(scope, receive, send)
            return
        status: int | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope["path"]
            if self.templater is not None:
                template = self.templater(path)
            else:
                route = scope.get("route")
                template = getattr(route, "path", None) or path
            query = scope.get("query_string", b"").decode("latin-1")
            self.log.record(scope["method"], template, path, query, status)
