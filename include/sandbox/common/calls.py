"""Request counting: every non-admin request is counted by ``"METHOD /path/template"`` and logged (bounded).

Tests use it to prove how many API calls the connector made. The template is the matched route's path when the
app uses routes with parameters, else what the ``templater`` callable makes of the raw path, else the raw path.

With a ``concurrency_key`` (path → key or None; the Exact sandbox keys by division) it also tracks requests in
flight per key and the peak since the last reset, so a test can prove a client never called one division in
parallel (Exact asks integrations not to). A request is in flight from the moment the server starts on it until
just *before* the last byte of its response is handed to the server, so a strictly sequential client (next request
only after the previous response arrived) never shows a peak above 1.
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
ConcurrencyKey = Callable[[str], str | None]


class CallLog:
    """Thread-safe call counter with a bounded log of the most recent calls."""

    def __init__(self, maxlen: int = 500, clock: Clock | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._total = 0
        self._log: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._clock = clock
        self._in_flight: Counter[str] = Counter()
        self._peak: dict[str, int] = {}
        self._peak_total = 0

    def enter(self, key: str | None) -> None:
        """A request for ``key`` has started (``None``: counted in the total only)."""
        with self._lock:
            self._in_flight["*"] += 1
            self._peak_total = max(self._peak_total, self._in_flight["*"])
            if key is not None:
                self._in_flight[key] += 1
                self._peak[key] = max(self._peak.get(key, 0), self._in_flight[key])

    def leave(self, key: str | None) -> None:
        with self._lock:
            self._in_flight["*"] = max(0, self._in_flight["*"] - 1)
            if key is not None:
                self._in_flight[key] = max(0, self._in_flight[key] - 1)

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
            return {
                "total": self._total,
                "by_endpoint": dict(self._counts),
                "log": list(self._log),
                # requests handled at the same time, per key (Exact: per division) and overall, since the last reset
                "peak_in_flight": dict(self._peak),
                "peak_in_flight_total": self._peak_total,
                "in_flight": {k: v for k, v in self._in_flight.items() if k != "*" and v},
            }

    def peak_in_flight(self, key: str | None = None) -> int:
        """Most requests in flight at once since the last reset, for ``key`` or overall."""
        with self._lock:
            return self._peak_total if key is None else self._peak.get(key, 0)

    def count(self, endpoint: str | None = None) -> int:
        """Total calls, or calls to one ``"METHOD /template"`` key."""
        with self._lock:
            return self._total if endpoint is None else self._counts.get(endpoint, 0)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._total = 0
            self._log.clear()
            # requests still running stay in flight; the peaks restart from them
            self._peak = {k: v for k, v in self._in_flight.items() if k != "*" and v}
            self._peak_total = self._in_flight["*"]


class CallCounterMiddleware:
    """Pure ASGI middleware feeding a :class:`CallLog`. Add it outermost so faulted requests count too."""

    def __init__(
        self,
        app: ASGIApp,
        log: CallLog,
        templater: Templater | None = None,
        admin_prefix: str = "/_admin",
        concurrency_key: ConcurrencyKey | None = None,
    ) -> None:
        self.app = app
        self.log = log
        self.templater = templater
        self.admin_prefix = admin_prefix
        self.concurrency_key = concurrency_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.admin_prefix):
            await self.app(scope, receive, send)
            return
        status: int | None = None
        key = self.concurrency_key(scope["path"]) if self.concurrency_key is not None else None
        left = False
        recorded = False
        self.log.enter(key)

        def record() -> None:
            nonlocal recorded
            recorded = True
            path = scope["path"]
            if self.templater is not None:
                template = self.templater(path)
            else:
                route = scope.get("route")
                template = getattr(route, "path", None) or path
            query = scope.get("query_string", b"").decode("latin-1")
            self.log.record(scope["method"], template, path, query, status)

        async def send_wrapper(message: Message) -> None:
            nonlocal status, left
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False) and not left:
                # Out of flight and in the log *before* the last byte goes out: the client cannot start its next
                # request, or read the log, before this one is counted.
                left = True
                self.log.leave(key)
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if not left:
                left = True
                self.log.leave(key)
            if not recorded:
                record()
