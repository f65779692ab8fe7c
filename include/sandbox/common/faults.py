"""Fault injection for the sandboxes, as a pure ASGI middleware.

A :class:`FaultRule` says which requests it affects (``method``, a ``path`` regex searched in the URL path, and
``count`` — how many matching requests; ``None`` means every one until cleared) and what happens to them:

``status``             respond with ``status`` (+ optional ``body`` and ``headers``) without touching the app;
``latency``            sleep ``delay_s`` seconds, then handle the request normally;
``drop_after_commit``  let the app handle the request completely (its effect is committed), then send the
                       response head with the real ``Content-Length`` and drop the connection without the body,
                       so the client sees an incomplete read (``requests`` raises ``ChunkedEncodingError``/
                       ``ConnectionError``), never a status it could trust. A response without a body (204, 304,
                       HEAD, empty) has nothing to cut short: the connection is closed before the response head,
                       so the client sees a dropped connection rather than a complete 204;
``rate_limit``         answer 429 the way the vendor does (vendor hook; default: empty-bodied 429);
``html_maintenance``   HTTP 200 with an HTML maintenance page (``Content-Type: text/html``);
``malformed_xml``      a vendor *transform* (JAGGAER): the request runs completely (committed), then its real
                       response is sent with an unescaped ``&`` in the body (not well-formed, status unchanged).

Vendor *hooks* build a response instead of running the app; vendor *transforms* run the app first and rewrite
its response (``(rule, method, path, status, headers, body) -> Response``).

Requests under ``/_admin`` are never faulted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultAction = Literal["status", "latency", "drop_after_commit", "rate_limit", "html_maintenance", "malformed_xml"]

MAINTENANCE_HTML = (
    "<!DOCTYPE html><html><head><title>Maintenance</title></head><body>"
    "<h1>We are performing scheduled maintenance</h1>"
    "<p>The service is temporarily unavailable. Please try again later.</p></body></html>"
)

_ids = itertools.count(1)


class FaultRule(BaseModel):
    """One fault. ``count=None`` affects every matching request until the rules are cleared."""

    id: int = Field(default_factory=lambda: next(_ids))
    method: str = "*"
    path: str = ""
    count: int | None = 1
    action: FaultAction = "status"
    status: int = 500
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    delay_s: float = 0.0

    @field_validator("path")
    @classmethod
    def _valid_regex(cls, v: str) -> str:
        re.compile(v)
        return v

    def matches(self, method: str, path: str) -> bool:
        if self.method != "*" and self.method.upper() != method.upper():
            return False
        return re.search(self.path, path) is not None


# A vendor hook builds the response for a vendor-specific action: (rule, method, path) -> Response.
VendorHook = Callable[[FaultRule, str, str], Response]
# A vendor transform rewrites the app's real (committed) response:
# (rule, method, path, status, headers, body) -> Response.
VendorTransform = Callable[[FaultRule, str, str, int, list[tuple[bytes, bytes]], bytes], Response]


class FaultInjector:
    """Thread-safe list of active fault rules."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule | dict[str, Any]) -> FaultRule:
        if isinstance(rule, dict):
            rule = FaultRule.model_validate(rule)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first rule matching this request, consuming one of its uses (rules used up are removed)."""
        with self._lock:
            for i, rule in enumerate(self._rules):
                if rule.matches(method, path):
                    if rule.count is not None:
                        rule.count -= 1
                        if rule.count <= 0:
                            del self._rules[i]
                    return rule
        return None

    def list(self) -> list[FaultRule]:
        with self._lock:
            return [r.model_copy() for r in self._rules]


class ConnectionDropped(Exception):
    """Raised after a committed response head to make the server drop the connection (drop_after_commit)."""


def _abort_connection() -> bool:
    """Close the client connection of the current request at once, before any response byte is written.

    uvicorn runs each request in a task whose coroutine is ``RequestResponseCycle.run_asgi``; its ``transport`` is
    aborted and the cycle marked disconnected, so uvicorn writes nothing more (no 500 of its own). False when the
    server is not uvicorn (or its internals moved): the caller falls back to a truncated response."""
    try:
        task = asyncio.current_task()
        coro = task.get_coro() if task is not None else None
        frame = getattr(coro, "cr_frame", None)
        cycle = frame.f_locals.get("self") if frame is not None else None
        transport = getattr(cycle, "transport", None)
        if transport is None or not hasattr(transport, "abort") or not hasattr(cycle, "disconnected"):
            return False
        transport.abort()
        cycle.disconnected = True
        return True
    except Exception:  # pragma: no cover - defensive: never break the request over a fault
        return False


def status_response(rule: FaultRule) -> Response:
    body = rule.body
    headers = dict(rule.headers)
    if body is None:
        content = b""
    elif isinstance(body, str | bytes):
        content = body.encode() if isinstance(body, str) else body
    else:
        content = json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    return Response(content=content, status_code=rule.status, headers=headers)


def default_rate_limit(rule: FaultRule, method: str, path: str) -> Response:
    return Response(content=b"", status_code=429, headers=dict(rule.headers))


def maintenance_response(rule: FaultRule, method: str, path: str) -> Response:
    return HTMLResponse(MAINTENANCE_HTML, status_code=200)


class FaultMiddleware:
    """Pure ASGI middleware applying :class:`FaultInjector` rules. Add with
    ``app.add_middleware(FaultMiddleware, injector=..., vendor_hooks={...})``."""

    def __init__(
        self,
        app: ASGIApp,
        injector: FaultInjector,
        vendor_hooks: dict[str, VendorHook] | None = None,
        admin_prefix: str = "/_admin",
        vendor_transforms: dict[str, VendorTransform] | None = None,
    ) -> None:
        self.app = app
        self.injector = injector
        self.hooks: dict[str, VendorHook] = {
            "rate_limit": default_rate_limit,
            "html_maintenance": maintenance_response,
        }
        self.hooks.update(vendor_hooks or {})
        self.transforms: dict[str, VendorTransform] = dict(vendor_transforms or {})
        self.admin_prefix = admin_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.admin_prefix):
            await self.app(scope, receive, send)
            return
        rule = self.injector.take(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.action == "latency":
            await asyncio.sleep(rule.delay_s)
            await self.app(scope, receive, send)
            return
        if rule.action == "status":
            await status_response(rule)(scope, receive, send)
            return
        if rule.action == "drop_after_commit":
            await self._drop_after_commit(scope, receive, send)
            return
        transform = self.transforms.get(rule.action)
        if transform is not None:
            status, headers, body = await self._run_captured(scope, receive)
            response = transform(rule, scope["method"], scope["path"], status, headers, body)
            await response(scope, receive, send)
            return
        hook = self.hooks.get(rule.action)
        if hook is None:
            await Response(f"fault action {rule.action!r} not supported here", status_code=500)(scope, receive, send)
            return
        await hook(rule, scope["method"], scope["path"])(scope, receive, send)

    async def _capture(self, scope: Scope, receive: Receive) -> tuple[Message | None, bytes]:
        start: Message | None = None
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        return start, bytes(body)

    async def _run_captured(self, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        start, body = await self._capture(scope, receive)
        if start is None:
            return 500, [], body
        return start["status"], list(start.get("headers", [])), body

    async def _drop_after_commit(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The app runs to completion: whatever it does is committed before the connection is dropped.
        start, body = await self._capture(scope, receive)
        if start is None:
            raise ConnectionDropped("app produced no response")
        bodyless = start["status"] in (204, 304) or scope["method"] == "HEAD" or not body
        if bodyless and _abort_connection():
            # Nothing to cut short: a 204 head alone would be a complete, trustworthy answer. Close instead.
            return
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(max(len(body), 1) + 64).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        # Half of the body at most, then the connection goes away.
        await send({"type": "http.response.body", "body": bytes(body[: len(body) // 2]), "more_body": True})
        raise ConnectionDropped("connection dropped after commit (fault injection)")


def fault_middleware(
    app: ASGIApp,
    injector: FaultInjector,
    vendor_hooks: dict[str, VendorHook] | None = None,
    vendor_transforms: dict[str, VendorTransform] | None = None,
) -> FaultMiddleware:
    """Factory form of :class:`FaultMiddleware`."""
    return FaultMiddleware(app, injector=injector, vendor_hooks=vendor_hooks, vendor_transforms=vendor_transforms)
