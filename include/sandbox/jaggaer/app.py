"""The JAGGAER sandbox application: ``create_app`` wires the routers over a :class:`JaggaerSandbox`.

The state lives in ``state``, the routers in ``j1p``, ``eproc`` and ``admin``; none of them imports this module."""

from __future__ import annotations

import json
import re
from functools import partial

from fastapi import FastAPI, Request
from starlette.responses import Response

from sandbox.common.admin import make_admin_router
from sandbox.common.calls import CallCounterMiddleware
from sandbox.common.clock import Clock
from sandbox.common.date_header import DateHeaderMiddleware
from sandbox.common.faults import FaultMiddleware
from sandbox.jaggaer.admin import make_jaggaer_admin_router
from sandbox.jaggaer.eproc import make_eproc_router
from sandbox.jaggaer.fault_responses import malformed_xml_response, rate_limit_response, too_many_requests
from sandbox.jaggaer.j1p import make_j1p_router
from sandbox.jaggaer.settings import JaggaerSettings
from sandbox.jaggaer.state import (
    DEFAULT_PORT,
    MAX_TOKENS,
    REALM_PATH,
    XML_PREFIX,
    J1PUnauthorized,
    JaggaerSandbox,
    RateLimited,
    TokenInfo,
)

__all__ = [
    "DEFAULT_PORT",
    "MAX_TOKENS",
    "REALM_PATH",
    "XML_PREFIX",
    "J1PUnauthorized",
    "JaggaerSandbox",
    "RateLimited",
    "TokenInfo",
    "create_app",
    "templater",
    "too_many_requests",
]


_TEMPLATES = [
    (re.compile(r"^/j1p/api/public/ji/v1/invoices/[^/]+/?$"), "/j1p/api/public/ji/v1/invoices/{invoice_id}"),
    (re.compile(r"^/j1p/api/public/ji/v1/invoices/?$"), "/j1p/api/public/ji/v1/invoices"),
]


def templater(path: str) -> str:
    for rx, template in _TEMPLATES:
        if rx.match(path):
            return template
    return path.rstrip("/") or "/"


def create_app(settings: JaggaerSettings | None = None, *, clock: Clock | None = None, seed: int = 42) -> FastAPI:
    """The JAGGAER sandbox as an ASGI app. ``app.state.sandbox`` is the :class:`JaggaerSandbox`."""
    sandbox = JaggaerSandbox(settings=settings, clock=clock, seed=seed)
    app = FastAPI(
        title="JAGGAER sandbox",
        description="J1P REST + eProcurement XML import simulator (ml-connector)",
        docs_url="/_admin/docs",
        redoc_url=None,
        openapi_url="/_admin/openapi.json",
    )
    app.state.sandbox = sandbox

    @app.exception_handler(J1PUnauthorized)
    async def _unauthorized(request: Request, exc: J1PUnauthorized) -> Response:
        body = json.dumps({"error": "invalid_token", "error_description": exc.description}).encode()
        if sandbox.settings.broken_401:
            return Response(body, status_code=401, headers={"content-type": "; charset=UTF-8"})
        return Response(
            body,
            status_code=401,
            media_type="application/json",
            headers={
                "WWW-Authenticate": (
                    f'Bearer realm="J1p-integrations", error="invalid_token", error_description="{exc.description}"'
                )
            },
        )

    @app.exception_handler(RateLimited)
    async def _rate_limited(request: Request, exc: RateLimited) -> Response:
        return too_many_requests(request.url.path, sandbox.clock.now(), sandbox.retry_after_headers())

    app.include_router(make_j1p_router(sandbox))
    app.include_router(make_eproc_router(sandbox))
    app.include_router(
        make_admin_router(
            clock=sandbox.clock,
            faults=sandbox.faults,
            calls=sandbox.calls,
            reset=sandbox.reset,
            seed=sandbox.seed,
            state=sandbox.state,
            get_settings=sandbox.get_settings,
            patch_settings=sandbox.patch_settings,
        )
    )
    app.include_router(make_jaggaer_admin_router(sandbox))
    # Order matters: the call counter is outermost so faulted requests are counted too.
    app.add_middleware(
        FaultMiddleware,
        injector=sandbox.faults,
        vendor_hooks={"rate_limit": partial(rate_limit_response, sandbox)},
        vendor_transforms={"malformed_xml": malformed_xml_response},
    )
    app.add_middleware(CallCounterMiddleware, log=sandbox.calls, templater=templater)
    app.add_middleware(DateHeaderMiddleware, clock=sandbox.clock)
    return app
