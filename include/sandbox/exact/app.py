"""The Exact Online sandbox: a FastAPI app behaving like Exact's REST API (docs/sandbox-exact.md).

``create_app(settings=None)`` returns the app; ``app.state.sandbox`` is the :class:`ExactSandbox` behind it
(clock, store, OAuth server, limits, faults, call log) for in-process tests.

The state is :class:`sandbox.exact.state.ExactState`; the routes are routers over it: ``oauth_routes`` (OAuth),
``rest`` (the REST API, with ``reads``, ``sync``, ``writes``, ``purchase_entries`` and ``webhook_subscriptions``
behind it) and ``admin`` (``/_admin``). This module only puts them together; none of them imports it.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.common.admin import make_admin_router
from sandbox.common.calls import CallCounterMiddleware
from sandbox.common.clock import Clock
from sandbox.common.date_header import DateHeaderMiddleware
from sandbox.common.faults import FaultMiddleware
from sandbox.exact.admin import make_exact_admin_router
from sandbox.exact.oauth_routes import make_oauth_router
from sandbox.exact.responses import error_response
from sandbox.exact.rest import make_rest_router
from sandbox.exact.settings import ExactSettings
from sandbox.exact.state import ExactState

_DIVISION_PATH = re.compile(r"^/api/v1/(\d+)/")


class ExactSandbox(ExactState):
    """The sandbox's state with its app built over it (``.app``)."""

    def __init__(self, settings: ExactSettings | dict[str, Any] | None = None, clock: Clock | None = None) -> None:
        super().__init__(settings, clock)
        self.app = build_app(self)


def build_app(sb: ExactState) -> FastAPI:
    """The FastAPI app over ``sb``: the common and Exact admin routers, OAuth, REST, and the middleware."""
    app = FastAPI(title="Exact Online sandbox", docs_url="/_admin/docs", openapi_url="/_admin/openapi.json")
    app.state.sandbox = sb
    app.include_router(
        make_admin_router(
            clock=sb.clock,
            faults=sb.faults,
            calls=sb.calls,
            reset=sb.reset,
            seed=sb.store.generate,
            state=sb.state,
            get_settings=lambda: sb.settings().model_dump(mode="json"),
            patch_settings=sb.patch_settings,
        )
    )
    app.include_router(make_exact_admin_router(sb))
    app.include_router(make_oauth_router(sb))
    app.include_router(make_rest_router(sb))
    app.add_middleware(FaultMiddleware, injector=sb.faults, vendor_hooks={"rate_limit": sb.rate_limit_fault})
    app.add_middleware(RequestSizeMiddleware, sandbox=sb)
    # Outermost but the Date stamp: every call counted (faulted ones too), requests in flight per division.
    app.add_middleware(CallCounterMiddleware, log=sb.calls, templater=path_template, concurrency_key=division_key)
    app.add_middleware(DateHeaderMiddleware, clock=sb.clock)
    return app


class RequestSizeMiddleware:
    """Exact's front door: URLs longer than ``max_url_length`` characters get 414, request bodies larger than
    ``max_body_bytes`` get 413 (checked on ``Content-Length`` here and on the bytes read in the handler). Applies to
    ``/api/`` only (REST and OAuth), never to ``/_admin``."""

    def __init__(self, app: ASGIApp, sandbox: ExactState) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        s = self.sandbox.settings()
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        host = headers.get(b"host", b"").decode("latin-1")
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        length = len(f"{scope.get('scheme', 'http')}://{host}") + len(raw_path) + (len(query) + 1 if query else 0)
        if length > s.max_url_length:
            response = error_response(
                414, f"Request-URI Too Long: the URL has {length} characters; at most {s.max_url_length} are allowed."
            )
            await response(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > s.max_body_bytes:
            response = error_response(
                413, f"Request Entity Too Large: the body has {int(declared)} bytes; at most {s.max_body_bytes}."
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def division_key(path: str) -> str | None:
    """The division of a REST path (``/api/v1/111111/...`` -> ``"111111"``): the call log's concurrency key."""
    m = _DIVISION_PATH.match(path)
    return m.group(1) if m else None


def path_template(path: str) -> str:
    """``/api/v1/111111/crm/Accounts(guid'..')`` -> ``/api/v1/{division}/crm/Accounts(...)``."""
    path = re.sub(r"^/api/v1/\d+/", "/api/v1/{division}/", path)
    return re.sub(r"\([^)]*\)", "(...)", path)


def create_app(settings: ExactSettings | dict[str, Any] | None = None, clock: Clock | None = None) -> FastAPI:
    """The Exact Online sandbox app (``app.state.sandbox`` is its :class:`ExactSandbox`)."""
    return ExactSandbox(settings, clock).app
