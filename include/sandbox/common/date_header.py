"""The HTTP ``Date`` header from the sandbox clock.

A real server stamps every response with *its* time. The sandboxes' time is the simulated clock, so clients that
look at ``Date`` (clock-skew checks, ``Retry-After`` as an HTTP date) see the same time as the rest of the
sandbox. ``ServerThread`` turns uvicorn's own (wall-clock) ``Date`` header off; this middleware adds the clock's.
"""

from __future__ import annotations

from email.utils import format_datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.common.clock import Clock


def http_date(clock: Clock) -> str:
    """``Sun, 22 Nov 2026 10:15:30 GMT`` for the clock's now (RFC 9110 IMF-fixdate)."""
    return format_datetime(clock.now().replace(microsecond=0), usegmt=True)


class DateHeaderMiddleware:
    """Pure ASGI middleware: adds ``Date`` (from ``clock``) to every response that has none."""

    def __init__(self, app: ASGIApp, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"date" for k, _ in headers):
                    headers.append((b"date", http_date(self.clock).encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)
