"""The Exact Online sandbox: a FastAPI app behaving like Exact's REST API as api-contracts.md §1 describes.

``create_app(settings=None)`` returns the app; ``app.state.sandbox`` is the :class:`ExactSandbox` behind it
(clock, store, OAuth server, limits, faults, call log) for in-process tests.
"""

from __future__ import annotations

import html
import json
import logging
import re
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.common import demo_company as demo
from sandbox.common.admin import make_admin_router
from sandbox.common.calls import CallCounterMiddleware, CallLog
from sandbox.common.clock import Clock
from sandbox.common.date_header import DateHeaderMiddleware
from sandbox.common.faults import FaultInjector, FaultMiddleware, FaultRule
from sandbox.exact import contract, reference
from sandbox.exact.entities import (
    SYNC_ORDER_FIELDS,
    EntitySet,
    build_sets,
    lookups,
    po_getters,
    po_header_row,
    po_line_row,
    sync_getters,
    sync_head,
    sync_po_row,
)
from sandbox.exact.ledger_lines import edit_entry, transaction_lines
from sandbox.exact.limits import ErrorBudget, RateLimiter
from sandbox.exact.oauth import Chain, OAuthServer
from sandbox.exact.odata import (
    BOOL,
    DATETIME,
    FLOAT,
    GUID,
    INT,
    STR,
    BoolOp,
    ODataError,
    compile_filter,
    conjuncts,
    filter_fields,
    format_date,
    is_guid,
    parse_expand,
    parse_filter,
    parse_iso_to_ms,
    parse_select,
    simple_comparison,
)
from sandbox.exact.settings import DEMO_CLIENT_ID, DEMO_REDIRECT_URIS, ExactSettings
from sandbox.exact.store import DAY_MS, ENTITY_TYPE_ACCOUNT, PO, Division, ExactStore
from sandbox.exact.webhooks import Subscription, WebhookHub

log = logging.getLogger(__name__)

_SAFE = "$'(),/:*=@"
_DIVISION_PATH = re.compile(r"^/api/v1/(\d+)/")
_OPTIONS = frozenset(("$select", "$filter", "$expand", "$top", "$skiptoken", "$orderby", "$format", "$inlinecount"))
_KEY_RE = re.compile(r"^\s*guid'([0-9a-fA-F-]{36})'\s*$")
_TS_RE = re.compile(r"^\s*(\d+)L?\s*$")

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "mandatory_journal": "Mandatory: Diary",
        "invalid_journal": "Invalid reference: Journal",
        "not_purchase_journal": "Invalid reference: Journal {0} is not a purchase journal",
        "mandatory_supplier": "Mandatory: Relationship",
        "invalid_supplier": "Invalid reference: Relationship",
        "not_supplier": "Relationship is not a supplier: {0}",
        "blocked_supplier": "Relationship is blocked: {0}",
        "no_lines": "Mandatory: Lines",
        "mandatory_gl": "Mandatory: G/L account",
        "invalid_gl": "Invalid reference: G/L account",
        "blocked_gl": "G/L account is blocked: {0}",
        "mandatory_amount": "Mandatory: Amount",
        "invalid_amount": "Invalid value: Amount",
        "invalid_cc": "Invalid reference: Cost center",
        "invalid_cu": "Invalid reference: Cost unit",
        "invalid_vat": "Invalid reference: VAT code",
        "blocked_vat": "VAT code is blocked: {0}",
        "mandatory_date": "Mandatory: Entry date",
        "invalid_date": "Invalid value: Entry date",
        "closed_period": "Period is closed: {0}",
        "mandatory_name": "Mandatory: Name",
        "duplicate_code": "Code already exists: {0}",
        "code_too_long": "Invalid value: Code (at most 18 characters): {0}",
        "invalid_currency": "Invalid reference: Currency {0}",
    },
    "nl": {
        "mandatory_journal": "Verplicht: Dagboek",
        "invalid_journal": "Ongeldige referentie: Dagboek",
        "not_purchase_journal": "Ongeldige referentie: Dagboek {0} is geen inkoopdagboek",
        "mandatory_supplier": "Verplicht: Relatie",
        "invalid_supplier": "Ongeldige referentie: Relatie",
        "not_supplier": "Relatie is geen leverancier: {0}",
        "blocked_supplier": "Relatie is geblokkeerd: {0}",
        "no_lines": "Verplicht: Regels",
        "mandatory_gl": "Verplicht: Grootboekrekening",
        "invalid_gl": "Ongeldige referentie: Grootboekrekening",
        "blocked_gl": "Grootboekrekening is geblokkeerd: {0}",
        "mandatory_amount": "Verplicht: Bedrag",
        "invalid_amount": "Ongeldige waarde: Bedrag",
        "invalid_cc": "Ongeldige referentie: Kostenplaats",
        "invalid_cu": "Ongeldige referentie: Kostendrager",
        "invalid_vat": "Ongeldige referentie: Btw-code",
        "blocked_vat": "Btw-code is geblokkeerd: {0}",
        "mandatory_date": "Verplicht: Boekdatum",
        "invalid_date": "Ongeldige waarde: Boekdatum",
        "closed_period": "Periode is afgesloten: {0}",
        "mandatory_name": "Verplicht: Naam",
        "duplicate_code": "Code bestaat al: {0}",
        "code_too_long": "Ongeldige waarde: Code (maximaal 18 tekens): {0}",
        "invalid_currency": "Ongeldige referentie: Valuta {0}",
    },
}


# ISO 4217 currency codes in use (Exact's currency table): PurchaseEntries.Currency must be one of them.
_ISO_CURRENCY_TEXT = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF
    CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL
    HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL
    MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON
    RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX
    USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL"""
ISO_CURRENCIES = frozenset(_ISO_CURRENCY_TEXT.split())
ACCOUNT_CODE_MAX = 18

_INT_TEXT = re.compile(r"^\s*[-+]?\d{1,9}\s*$")


def _type_ok(t: str, v: Any) -> bool:
    """Can Exact's OData reader take JSON value ``v`` for a property of type ``t``? (Business validation of the
    value comes later: e.g. ``"AmountFC": "lots"`` reads, then fails as "Invalid value: Amount".)"""
    if t == GUID:
        return is_guid(v)
    if t == STR:
        return isinstance(v, str)
    if t == INT:
        return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and bool(_INT_TEXT.match(v)))
    if t == FLOAT:
        return isinstance(v, int | float | str) and not isinstance(v, bool)
    if t == BOOL:
        return isinstance(v, bool)
    if t == DATETIME:
        return isinstance(v, str)
    return True


ME = reference.endpoint("current/Me")


def no_property(name: str, type_name: str, select: list[str] | None = None) -> str:
    """Exact's answer to a query option naming a property the entity does not have."""
    pos = 0
    for item in select or []:
        if item == name or item.endswith("/" + name) or item.startswith(name + "/"):
            break
        pos += len(item) + 1
    return f"No property '{name}' exists in type '{type_name}' at position {pos}."


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"code": "", "message": {"lang": "", "value": message}}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(error_body(message), status_code=status, headers=headers)


def xml_error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The error as Exact writes it for a client that did not ask for JSON (OData v2 XML error)."""
    body = (
        '<?xml version="1.0" encoding="utf-8" standalone="yes"?>'
        '<error xmlns="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"><code></code>'
        f'<message xml:lang="en-US">{html.escape(message, quote=False)}</message></error>'
    )
    return Response(body, status_code=status, headers=headers, media_type="application/xml;charset=utf-8")


def wants_json(request: Request) -> bool:
    """Did the client ask for JSON (``Accept: application/json`` or ``$format=json``)? Exact's default is XML."""
    return "application/json" in request.headers.get("accept", "") or request.query_params.get("$format") == "json"


def division_key(path: str) -> str | None:
    """The division of a REST path (``/api/v1/111111/...`` -> ``"111111"``): the call log's concurrency key."""
    m = _DIVISION_PATH.match(path)
    return m.group(1) if m else None


class RequestSizeMiddleware:
    """Exact's front door: URLs longer than ``max_url_length`` characters get 414, request bodies larger than
    ``max_body_bytes`` get 413 (checked on ``Content-Length`` here and on the bytes read in the handler). Applies to
    ``/api/`` only (REST and OAuth), never to ``/_admin``."""

    def __init__(self, app: ASGIApp, sandbox: ExactSandbox) -> None:
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


class HTTPFail(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Ctx:
    base: str
    division: int
    chain: Chain
    query: list[tuple[str, str]]
    json: bool


def _q(ctx: Ctx, name: str) -> str | None:
    for k, v in ctx.query:
        if k == name:
            return v
    return None


def _encode_query(params: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in params)


class ExactSandbox:
    def __init__(self, settings: ExactSettings | dict[str, Any] | None = None, clock: Clock | None = None) -> None:
        if isinstance(settings, dict):
            settings = ExactSettings.model_validate(settings)
        self._settings = settings or ExactSettings()
        self._initial_settings = self._settings.model_copy(deep=True)
        self.clock = clock or Clock()
        self.store = ExactStore(self.clock)
        self.oauth = OAuthServer(self.clock, self.settings)
        self.limiter = RateLimiter(self.clock, self.settings)
        self.budget = ErrorBudget(self.clock, self.settings)
        self.faults = FaultInjector()
        self.calls = CallLog(clock=self.clock)
        self.sets = build_sets()
        self.webhooks = WebhookHub(self.settings, self._webhook_secret)
        self.store.reset()
        self.store.on_po_change = lambda division, action, key: self.webhooks.notify(
            division, "PurchaseOrders", action, key
        )
        self.app = self._build_app()

    # ---- settings -----------------------------------------------------------------------------------------
    def settings(self) -> ExactSettings:
        return self._settings

    def patch_settings(self, patch: dict[str, Any]) -> dict[str, Any]:
        merged = {**self._settings.model_dump(), **patch}
        self._settings = ExactSettings.model_validate(merged)
        return self._settings.model_dump(mode="json")

    def reset(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        params = params or {}
        if params.get("settings", True):
            self._settings = self._initial_settings.model_copy(deep=True)
        # A shared clock (``mlc sandbox``: one clock for Exact and JAGGAER) is only reset when asked explicitly
        # (``"clock": true``); resetting Exact must not move JAGGAER's time.
        if params.get("clock", not self.clock.shared):
            self.clock.reset()
        self.oauth.reset()
        self.limiter.reset()
        self.budget.reset()
        self.faults.clear()
        self.calls.reset()
        self.webhooks.reset()  # before the store: re-seeding notifies no one
        return self.store.reset(params)

    def _webhook_secret(self, client_id: str) -> str | None:
        app = self._settings.apps.get(client_id)
        return app.webhook_secret if app is not None else None

    def state(self) -> dict[str, Any]:
        with self.store.lock:
            entries = {
                code: [self._entry_view(e) for e in div.purchase_entries] for code, div in self.store.divisions.items()
            }
            return {
                **self.store.summary(),
                "purchase_entries": entries,
                "oauth": self.oauth.state(),
                "settings": self._settings.model_dump(mode="json"),
            }

    @staticmethod
    def _entry_view(e: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in e.items() if not k.startswith("_")}
        out["PurchaseEntryLines"] = e["_lines"]
        return out

    # ---- app ----------------------------------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI(title="Exact Online sandbox", docs_url="/_admin/docs", openapi_url="/_admin/openapi.json")
        app.state.sandbox = self
        app.include_router(
            make_admin_router(
                clock=self.clock,
                faults=self.faults,
                calls=self.calls,
                reset=self.reset,
                seed=self.store.generate,
                state=self.state,
                get_settings=lambda: self._settings.model_dump(mode="json"),
                patch_settings=self.patch_settings,
            )
        )
        app.include_router(self._exact_admin_router())
        self._add_oauth_routes(app)
        self._add_api_routes(app)
        app.add_middleware(FaultMiddleware, injector=self.faults, vendor_hooks={"rate_limit": self._rate_limit_fault})
        app.add_middleware(RequestSizeMiddleware, sandbox=self)
        # Outermost but the Date stamp: every call counted (faulted ones too), requests in flight per division.
        app.add_middleware(CallCounterMiddleware, log=self.calls, templater=path_template, concurrency_key=division_key)
        app.add_middleware(DateHeaderMiddleware, clock=self.clock)
        return app

    def _rate_limit_fault(self, rule: FaultRule, method: str, path: str) -> Response:
        s = self._settings
        reset = int((self.clock.time() // s.minute_window_s + 1) * s.minute_window_s * 1000)
        return Response(
            b"",
            status_code=429,
            headers={
                "X-RateLimit-Minutely-Limit": str(s.minutely_limit),
                "X-RateLimit-Minutely-Remaining": "0",
                "X-RateLimit-Minutely-Reset": str(reset),
                **rule.headers,
            },
        )

    def base_url(self, request: Request) -> str:
        if self._settings.public_base_url:
            return self._settings.public_base_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    # ---- OAuth routes ----------------------------------------------------------------------------------------
    def _add_oauth_routes(self, app: FastAPI) -> None:
        @app.get("/api/oauth2/auth")
        async def authorize(request: Request) -> Response:
            q = request.query_params
            client_id, redirect_uri = q.get("client_id"), q.get("redirect_uri")
            problem = self.oauth.check_client_redirect(client_id, redirect_uri)
            if problem is None and q.get("response_type") != "code":
                problem = "Only response_type=code is supported."
            if problem is not None:
                return HTMLResponse(_page("Exact Online - error", f"<p>{html.escape(problem)}</p>"), status_code=400)
            if self._settings.consent_page:
                return HTMLResponse(self._consent_page(client_id or "", redirect_uri or "", q.get("state")))
            code = self.oauth.issue_code(client_id or "", redirect_uri or "", self._settings.consent_divisions)
            return self._code_redirect(redirect_uri or "", code, q.get("state"))

        @app.post("/api/oauth2/auth")
        async def consent(request: Request) -> Response:
            form = await request.form()
            client_id, redirect_uri = str(form.get("client_id", "")), str(form.get("redirect_uri", ""))
            state = form.get("state")
            problem = self.oauth.check_client_redirect(client_id, redirect_uri)
            if problem is not None:
                return HTMLResponse(_page("Exact Online - error", f"<p>{html.escape(problem)}</p>"), status_code=400)
            if form.get("action") != "approve":
                sep = "&" if "?" in redirect_uri else "?"
                params = {"error": "access_denied"}
                if state:
                    params["state"] = str(state)
                return RedirectResponse(redirect_uri + sep + urlencode(params), status_code=302)
            divisions = [int(d) for d in form.getlist("division") if str(d).isdigit()]
            code = self.oauth.issue_code(client_id, redirect_uri, divisions)
            return self._code_redirect(redirect_uri, code, str(state) if state else None)

        @app.post("/api/oauth2/token")
        async def token(request: Request) -> Response:
            form = await request.form()
            status, headers, body = self.oauth.token(
                {k: str(v) for k, v in form.items()}, request.headers.get("authorization")
            )
            if body is None:
                return Response(b"", status_code=status, headers=headers)
            return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **headers})

    def _code_redirect(self, redirect_uri: str, code: str, state: str | None) -> Response:
        params = {"code": code}
        if state:
            params["state"] = state
        if redirect_uri.startswith("urn:"):
            body = (
                "<p>Copy this code into ml-connector to finish connecting:</p>"
                f'<p><input id="code" size="70" readonly value="{html.escape(code)}"></p>'
                f'<p id="state">{html.escape(state or "")}</p>'
            )
            return HTMLResponse(_page("Exact Online - authorization code", body))
        sep = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(redirect_uri + sep + urlencode(params), status_code=302)

    def _consent_page(self, client_id: str, redirect_uri: str, state: str | None) -> str:
        app = self._settings.apps[client_id]
        boxes = "".join(
            f'<label><input type="checkbox" name="division" value="{code}" checked> {code} - '
            f"{html.escape(info['name'])}</label><br>"
            for code, info in demo.DIVISIONS.items()
        )
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
            for k, v in (("client_id", client_id), ("redirect_uri", redirect_uri), ("state", state or ""))
        )
        body = (
            f"<p>Signed in as {html.escape(demo.DEMO_USER['FullName'])}.</p>"
            f"<p><b>{html.escape(app.name)}</b> asks for access to your Exact Online data. "
            "Choose the divisions it may use:</p>"
            f'<form method="post" action="/api/oauth2/auth">{hidden}{boxes}'
            '<button type="submit" name="action" value="approve">Approve</button> '
            '<button type="submit" name="action" value="deny">Deny</button></form>'
        )
        return _page("Exact Online - grant access", body)

    # ---- API routes ---------------------------------------------------------------------------------------------
    def _add_api_routes(self, app: FastAPI) -> None:
        @app.get("/")
        async def index() -> Response:
            body = (
                "<p>Exact Online sandbox (ml-connector). REST under <code>/api/v1/{division}/...</code>, "
                "OAuth under <code>/api/oauth2/</code>, controls under <code>/_admin/</code> "
                '(<a href="/_admin/docs">admin API docs</a>).</p>'
            )
            return HTMLResponse(_page("Exact Online sandbox", body))

        @app.get("/api/v1/current/Me")
        async def me(request: Request) -> Response:
            contract.record("GET", request.url.path, list(request.query_params.multi_items()), None,
                            request.headers.get("user-agent"))  # fmt: skip
            try:
                return self._me(request)
            except Exception as exc:  # never a bare crash: Exact's error body
                return self._crash(request, exc)

        @app.api_route("/api/v1/{division}/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        async def api(request: Request, division: str, rest: str) -> Response:
            body = await request.body() if request.method in ("POST", "PUT", "PATCH") else b""
            contract.record(request.method, request.url.path, list(request.query_params.multi_items()), body,
                            request.headers.get("user-agent"))  # fmt: skip
            # In a worker thread: a slow request (100k rows) must not stall the event loop and every other client;
            # the store lock serialises the state.
            return await run_in_threadpool(self.handle_safe, request, division, rest, body)

    def _crash(self, request: Request, exc: Exception) -> Response:
        log.exception("Exact sandbox: unhandled error in %s %s", request.method, request.url.path)
        message = f"An error has occurred. ({type(exc).__name__}: {exc})"
        if wants_json(request) or self._settings.non_json_response == "json":
            return error_response(500, message)
        return xml_error_response(500, message)

    def _error(self, json_ok: bool, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        if json_ok:
            return error_response(status, message, headers)
        return xml_error_response(status, message, headers)

    def _me(self, request: Request) -> Response:
        chain = self.oauth.authenticate(request.headers.get("authorization"))
        if chain is None:
            return _unauthorized()
        json_ok = wants_json(request) or self._settings.non_json_response == "json"
        if not json_ok and self._settings.non_json_response == "406":
            return xml_error_response(406, "Not acceptable: send Accept: application/json.")
        try:
            select = parse_select(request.query_params.get("$select"))
            fields = self._plain_fields(ME.plain, select, ME.type_name)
        except ODataError as exc:
            return self._error(json_ok, 400, str(exc))
        base = self.base_url(request)
        current = self._settings.current_division
        if current not in chain.divisions and chain.divisions:
            current = chain.divisions[0]
        row = {
            **{k: v for k, v in demo.DEMO_USER.items() if k in ME.properties},
            "CurrentDivision": current,
            "DivisionCustomer": demo.guid("customer", None, "mpe"),
            "DivisionCustomerCode": "                 1",
            "DivisionCustomerName": demo.COMPANY_NAME,
            "IsClientUser": False,
            "Legislation": 44,
        }
        out = {
            "__metadata": {
                "uri": f"{base}/api/v1/current/Me(guid'{row['UserID']}')",
                "type": ME.type_name,
            }
        }
        out.update({f: row.get(f) for f in fields})
        if not json_ok:
            return _atom_feed(self.base_url(request), "Me", [out])
        return JSONResponse({"d": {"results": [out]}})

    # ---- request pipeline ----------------------------------------------------------------------------------------
    def handle_safe(self, request: Request, division_s: str, rest: str, body: bytes) -> Response:
        """:meth:`handle`, but an unexpected error is an Exact-shaped 500, never a bare crash or a reset."""
        try:
            return self.handle(request, division_s, rest, body)
        except Exception as exc:
            return self._crash(request, exc)

    def handle(self, request: Request, division_s: str, rest: str, body: bytes) -> Response:
        s = self._settings
        json_ok = wants_json(request) or s.non_json_response == "json"
        spec, key, nav = self._resolve(rest)
        endpoint = spec.name if spec else rest.split("(")[0]
        authorization = request.headers.get("authorization")
        chain = self.oauth.authenticate(authorization)
        if chain is None:
            # An expired or revoked token still names its app: that 401 counts against the app's error budget
            # (a client that keeps sending a dead token locks itself out, as on Exact). Unknown tokens cannot.
            owner = self.oauth.owner(authorization)
            if owner is not None and division_s.isdigit():
                self.budget.record(owner.client_id, owner.user_id, int(division_s), endpoint, 401)
            return _unauthorized()
        if not division_s.isdigit():
            return self._error(json_ok, 404, f"Resource not found for the segment '{division_s}'.")
        division = int(division_s)
        if division not in chain.divisions or division not in self.store.divisions:
            resp = self._error(json_ok, 403, "Forbidden", {"Reason": "NoDivisionAccess"})
            self.budget.record(chain.client_id, chain.user_id, division, endpoint, 403)
            return resp
        if division in s.blocked_divisions:
            self.budget.record(chain.client_id, chain.user_id, division, endpoint, 403)
            return self._error(json_ok, 403, "Forbidden: the division is blocked.", {"Reason": "DivisionBlocked"})
        until = self.budget.blocked_until(chain.client_id, chain.user_id, division, endpoint)
        if until is not None:
            ts = datetime.fromtimestamp(until, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
            return self._error(
                json_ok,
                s.error_budget_block_status,
                f"API rate limit exceeded: more than {s.error_budget_threshold} errors on this endpoint within an "
                f"hour. Your application is blocked for this endpoint until {ts} UTC.",
            )
        allowed, rate_headers = self.limiter.hit(chain.client_id, division)
        if not allowed:
            return Response(b"", status_code=429, headers=rate_headers)
        ctx = Ctx(
            base=self.base_url(request),
            division=division,
            chain=chain,
            query=list(request.query_params.multi_items()),
            json=json_ok,
        )
        try:
            if spec is None:
                raise HTTPFail(404, f"Resource not found for the segment '{rest.split('/')[-1].split('(')[0]}'.")
            if not ctx.json and s.non_json_response == "406":
                raise HTTPFail(406, "Not acceptable: send Accept: application/json.")
            if request.method not in spec.methods:
                raise HTTPFail(405, f"The requested resource does not support http method '{request.method}'.")
            if len(body) > s.max_body_bytes:
                raise HTTPFail(
                    413, f"Request Entity Too Large: the body has {len(body)} bytes; at most {s.max_body_bytes}."
                )
            with self.store.lock:
                div = self.store.divisions[division]
                resp = self._dispatch(request.method, ctx, spec, div, key, nav, body, request.headers)
        except HTTPFail as exc:
            resp = self._error(ctx.json, exc.status, exc.message, exc.headers)
        except ODataError as exc:
            resp = self._error(ctx.json, 400, str(exc))
        for k, v in rate_headers.items():
            resp.headers[k] = v
        self.budget.record(chain.client_id, chain.user_id, division, endpoint, resp.status_code)
        return resp

    def _resolve(self, rest: str) -> tuple[EntitySet | None, str | None, str | None]:
        for name in sorted(self.sets, key=len, reverse=True):
            if rest == name:
                return self.sets[name], None, None
            if rest.startswith(name + "("):
                m = re.match(r"^\(([^)]*)\)(?:/([A-Za-z]+))?$", rest[len(name) :])
                if m is None:
                    return None, None, None
                return self.sets[name], m.group(1), m.group(2)
        return None, None, None

    def _dispatch(
        self,
        method: str,
        ctx: Ctx,
        spec: EntitySet,
        div: Division,
        key: str | None,
        nav: str | None,
        body: bytes,
        headers: Any,
    ) -> Response:
        if spec.name == "webhooks/WebhookSubscriptions":
            return self._webhook_subscriptions(method, ctx, spec, div, key, body)
        if method == "GET":
            if key is not None:
                return self._get_by_key(ctx, spec, div, key, nav)
            return self._collection(ctx, spec, div)
        if method == "POST" and key is None:
            data = _parse_body(body)
            prefer = "return=representation" in (headers.get("prefer") or "").lower()
            if spec.name == "crm/Accounts":
                return self._post_account(ctx, spec, div, data, prefer)
            if spec.name == "purchaseentry/PurchaseEntries":
                return self._post_entry(ctx, spec, div, data, prefer)
        if method == "PUT" and key is not None and spec.name == "crm/Accounts":
            return self._put_account(ctx, spec, div, key, _parse_body(body))
        if method == "DELETE" and key is not None and spec.name == "crm/Accounts":
            guid = _parse_key(key)
            if div.accounts.get(guid) is None:
                raise HTTPFail(404, "Not found")
            div.accounts.remove(guid)
            div.deleted.append(self.store.deleted_row(div, guid, ENTITY_TYPE_ACCOUNT, self.store.now_ms()))
            return Response(status_code=204)
        if method == "DELETE" and key is not None and spec.name == "purchaseentry/PurchaseEntries":
            guid = _parse_key(key)
            if div.purchase_entries.get(guid) is None:
                raise HTTPFail(404, "Not found")
            div.purchase_entries.remove(guid)
            return Response(status_code=204)
        if method in spec.methods:
            # Exact has this method here (the reference says so); the sandbox has no behaviour behind it.
            raise HTTPFail(501, f"The Exact sandbox does not implement {method} on {spec.name} (Exact Online does).")
        raise HTTPFail(405, f"The requested resource does not support http method '{method}'.")

    # ---- reading ------------------------------------------------------------------------------------------------
    def _plain_fields(self, schema: dict[str, str], select: list[str] | None, type_name: str) -> list[str]:
        if select is None or select == ["*"]:
            return list(schema)
        for f in select:
            if f not in schema:
                raise ODataError(no_property(f, type_name, select))
        return select

    def _nav_spec(self, spec: EntitySet, nav: str) -> EntitySet | None:
        """The served endpoint a collection links to (None: the sandbox has no data behind it)."""
        target = spec.navs[nav].target
        return self.sets.get(target) if target else None

    def _nav_ref(self, spec: EntitySet, nav: str) -> tuple[dict[str, str], str]:
        """(schema, type name) of the entity a collection holds, from the reference."""
        target = spec.navs[nav].target
        ep = reference.find(target) if target else None
        if ep is None:
            return {}, f"{spec.type_name}.{nav}"
        return ep.plain, ep.type_name

    def _fields(
        self, spec: EntitySet, select: list[str] | None, expand: list[str], *, representation: bool = False
    ) -> tuple[list[str], dict[str, list[str]], list[str]]:
        """(fields, expanded navs with their fields, deferred navs). ``representation``: the sandbox's own
        rendering of a created entity (no $select rules)."""
        for e in expand:
            if e not in spec.navs:
                raise ODataError(f"Could not find a property named '{e}' on type '{spec.type_name}'.")
        s = self._settings
        select_required = spec.kind in ("sync", "bulk") or s.select_required_everywhere
        if select is None and select_required and not representation:
            raise ODataError("$select is mandatory for this endpoint. Please specify the fields you need.")
        if spec.kind in ("sync", "bulk") and select is not None and "*" in select:
            raise ODataError("$select=* is not allowed for this endpoint. Please specify the fields you need.")
        # Lines come back only when $select names them as Nav/Field (api-contracts §1.5); an expanded nav that
        # is not named that way stays deferred.
        nav_select_only = s.expand_needs_nav_select and not representation
        if select is None or select == ["*"]:
            if nav_select_only:
                return list(spec.schema), {}, list(spec.navs)
            navs = {n: list(self._nav_ref(spec, n)[0]) for n in expand}
            deferred = [n for n in spec.navs if n not in expand]
            return list(spec.schema), navs, deferred
        fields: list[str] = []
        navs: dict[str, list[str]] = {}
        deferred: list[str] = []
        for name in select:
            if name == "*":
                fields.extend(f for f in spec.schema if f not in fields)
                deferred.extend(n for n in spec.navs if n not in deferred and n not in expand)
            elif "/" in name:
                nav, _, f = name.partition("/")
                if nav not in spec.navs:
                    raise ODataError(no_property(nav, spec.type_name, select))
                if nav not in expand:
                    raise ODataError(f"Property '{name}' can only be selected when '{nav}' is expanded ($expand).")
                target, target_type = self._nav_ref(spec, nav)
                if f == "*":
                    navs[nav] = list(target)
                    continue
                if f not in target:
                    raise ODataError(no_property(f, target_type, select))
                navs.setdefault(nav, []).append(f)
            elif name in spec.navs:
                if name in expand and not nav_select_only:
                    navs[name] = list(self._nav_ref(spec, name)[0])
                elif name not in deferred:
                    deferred.append(name)
            elif name in spec.schema:
                if name not in fields:
                    fields.append(name)
            else:
                raise ODataError(no_property(name, spec.type_name, select))
        return fields, navs, [n for n in deferred if n not in navs]

    def _query_options(self, ctx: Ctx, spec: EntitySet) -> tuple[Any, list[str] | None, list[str], int | None]:
        for k, _ in ctx.query:
            if k.startswith("$") and k not in (
                "$select",
                "$filter",
                "$expand",
                "$top",
                "$skiptoken",
                "$orderby",
                "$format",
                "$inlinecount",
            ):
                raise ODataError(f"The query parameter '{k}' is not supported.")
        ftext = _q(ctx, "$filter")
        ast = parse_filter(ftext, self._settings.date_timezone) if ftext is not None else None
        select = parse_select(_q(ctx, "$select"))
        expand = parse_expand(_q(ctx, "$expand"))
        top_s = _q(ctx, "$top")
        top = None
        if top_s is not None:
            if not top_s.isdigit():
                raise ODataError(f"Invalid $top value '{top_s}'.")
            top = int(top_s)
        return ast, select, expand, top

    def _convert(self, t: str, v: Any) -> Any:
        if v is None:
            return None
        if t == DATETIME:
            return format_date(v, self._settings.date_timezone)
        if t == FLOAT:
            return float(v)
        return v

    def _key_literal(self, spec: EntitySet, key: Any) -> str:
        t = spec.schema.get(spec.key)
        if t == GUID:
            return f"guid'{key}'"
        if spec.key == "Timestamp":
            return f"{key}L"
        return str(key)

    def _render(
        self,
        ctx: Ctx,
        spec: EntitySet,
        div: Division,
        row: dict[str, Any],
        fields: list[str],
        navs: dict[str, list[str]] | None = None,
        deferred: list[str] | None = None,
        obj: Any = None,
    ) -> dict[str, Any]:
        uri = f"{ctx.base}/api/v1/{div.code}/{spec.name}({self._key_literal(spec, row.get(spec.key))})"
        out: dict[str, Any] = {"__metadata": {"uri": uri, "type": spec.type_name}}
        schema = spec.schema
        for f in fields:
            out[f] = self._convert(schema[f], row.get(f))
        for nav, nf in (navs or {}).items():
            target = self._nav_spec(spec, nav)
            children = self._children(div, spec, nav, obj if obj is not None else row) if target else []
            size = self._settings.expand_page_size
            page = children[:size]
            block: dict[str, Any] = {"results": [self._render(ctx, target, div, c, nf) for c in page if target]}
            if len(children) > size:
                block["__next"] = f"{uri}/{nav}?" + _encode_query(
                    [("$select", ",".join(nf)), ("$skiptoken", f"guid'{page[-1]['ID']}'")]
                )
            out[nav] = block
        for nav in deferred or []:
            out[nav] = {"__deferred": {"uri": f"{uri}/{nav}"}}
        return out

    def _children(self, div: Division, spec: EntitySet, nav: str, obj: Any) -> list[dict[str, Any]]:
        if nav == "PurchaseOrderLines":
            return [po_line_row(div, obj, ln) for ln in obj.lines]
        if nav == "PurchaseEntryLines":
            return list(obj["_lines"])
        return []

    def _full(self, spec: EntitySet, div: Division, obj: Any) -> dict[str, Any]:
        return spec.full(div, obj) if spec.full is not None else obj

    def _envelope(self, ctx: Ctx, spec: EntitySet, results: list[dict[str, Any]], next_url: str | None) -> Response:
        if not ctx.json:
            return _atom(ctx, spec, results)
        if next_url is None and self._settings.bare_list:
            return JSONResponse({"d": results})
        d: dict[str, Any] = {"results": results}
        if next_url is not None:
            d["__next"] = next_url
        return JSONResponse({"d": d})

    def _next_url(self, ctx: Ctx, spec: EntitySet, skiptoken: str, top_left: int | None, suffix: str = "") -> str:
        params = [(k, v) for k, v in ctx.query if k not in ("$skiptoken", "$top")]
        if top_left is not None:
            params.append(("$top", str(top_left)))
        params.append(("$skiptoken", skiptoken))
        return f"{ctx.base}/api/v1/{ctx.division}/{spec.name}{suffix}?" + _encode_query(params)

    def _get_by_key(self, ctx: Ctx, spec: EntitySet, div: Division, key: str, nav: str | None) -> Response:
        guid = _parse_key(key)
        if spec.table is None:
            raise HTTPFail(404, "Not found")
        obj = spec.table(div).get(guid)
        if obj is None:
            raise HTTPFail(404, "Not found")
        ast, select, expand, _ = self._query_options(ctx, spec)
        if nav is not None:
            if nav not in spec.navs:
                raise HTTPFail(404, f"Resource not found for the segment '{nav}'.")
            target = self._nav_spec(spec, nav)
            if target is None:  # a collection the sandbox holds no data for: always empty
                schema, type_name = self._nav_ref(spec, nav)
                self._plain_fields(schema, select, type_name)
                return JSONResponse({"d": {"results": []}}) if ctx.json else _atom_feed(ctx.base, nav, [])
            fields = self._plain_fields(target.schema, select, target.type_name)
            children = self._children(div, spec, nav, obj)
            if ast is not None:
                pred = compile_filter(ast, target.schema, type_name=target.type_name)
                children = [c for c in children if pred(c)]
            tok = _q(ctx, "$skiptoken")
            start = 0
            if tok:
                last = _parse_key(tok)
                ids = [c["ID"] for c in children]
                start = ids.index(last) + 1 if last in ids else len(ids)
            size = self._settings.expand_page_size
            page = children[start : start + size]
            results = [self._render(ctx, target, div, c, fields) for c in page]
            nxt = None
            if start + size < len(children):
                nxt = self._next_url(ctx, spec, f"guid'{page[-1]['ID']}'", None, f"({key})/{nav}")
            return self._envelope(ctx, target, results, nxt)
        fields, navs, deferred = self._fields(spec, select, expand)
        row = self._render(ctx, spec, div, self._full(spec, div, obj), fields, navs, deferred, obj)
        if not ctx.json:
            return _atom_entry(ctx.base, row)
        return JSONResponse({"d": row})

    def _collection(self, ctx: Ctx, spec: EntitySet, div: Division) -> Response:
        if spec.kind == "sync":
            return self._sync(ctx, spec, div)
        ast, select, expand, top = self._query_options(ctx, spec)
        fields, navs, deferred = self._fields(spec, select, expand)
        if spec.required_filter is not None:
            allowed = spec.required_filter | (
                {"Modified"} if spec.name == "crm/Accounts" and self._settings.accounts_filter_on_modified else set()
            )
            if ast is None or not filter_fields(ast) & allowed:
                raise HTTPFail(400, "A required filter is missing.")
        size = self._settings.sync_page_size if spec.kind == "bulk" else self._settings.page_size
        limit = size if top is None else min(size, top)
        tok = _q(ctx, "$skiptoken")
        after = _parse_key(tok) if tok else None
        orderby = _q(ctx, "$orderby")
        if spec.table is not None:
            table = spec.table(div)
            getters = spec.getters_for(div) if spec.getters_for is not None else spec.getters
            pred = compile_filter(ast, spec.schema, getters, spec.type_name) if ast is not None else None
            if orderby:
                candidates = table.query(ast, None, None, len(table))[0] if ast is not None else list(table)
                objs, more, _after_pos = self._ordered(spec, div, candidates, pred, orderby, after, limit, getters)
            else:
                objs, more = table.query(ast, pred, after, limit) if limit > 0 else ([], False)
            rows = [(self._full(spec, div, o), o) for o in objs]
        else:
            all_rows = self._virtual_rows(ctx, spec, div, ast)
            pred = compile_filter(ast, spec.schema, type_name=spec.type_name) if ast is not None else None
            if orderby:
                objs, more, _ = self._ordered(spec, div, all_rows, pred, orderby, after, limit, None)
            else:
                all_rows.sort(key=lambda r: str(r[spec.key]).lower())
                keys = [str(r[spec.key]).lower() for r in all_rows]
                start = bisect_right(keys, after.lower()) if after else 0
                objs = []
                more = False
                for r in all_rows[start:]:
                    if pred is None or pred(r):
                        if len(objs) == limit:
                            more = True
                            break
                        objs.append(r)
            rows = [(o, o) for o in objs]
        results = [self._render(ctx, spec, div, row, fields, navs, deferred, obj) for row, obj in rows]
        nxt = None
        top_left = None if top is None else top - len(results)
        if more and results and (top_left is None or top_left > 0):
            nxt = self._next_url(ctx, spec, self._key_literal(spec, rows[-1][0][spec.key]), top_left)
        return self._envelope(ctx, spec, results, nxt)

    def _ordered(
        self,
        spec: EntitySet,
        div: Division,
        objs: list[Any],
        pred: Callable[[Any], bool] | None,
        orderby: str,
        after: str | None,
        limit: int,
        getters: dict[str, Callable[[Any], Any]] | None,
    ) -> tuple[list[Any], bool, int]:
        """Sort the matches by ``$orderby`` (ties in key order) and cut the page after ``after``. Sort keys come from
        the getters: no API row is built for an object that is not on the page."""
        keys: list[tuple[str, bool]] = []
        for part in orderby.split(","):
            bits = part.strip().split()
            if not bits or len(bits) > 2 or (len(bits) > 1 and bits[1] not in ("asc", "desc")):
                raise ODataError(f"Invalid $orderby '{orderby}'.")
            if bits[0] not in spec.schema:
                raise ODataError(no_property(bits[0], spec.type_name))
            keys.append((bits[0], len(bits) > 1 and bits[1] == "desc"))

        def getter(field: str) -> Callable[[Any], Any]:
            if getters is not None and field in getters:
                return getters[field]
            if spec.full is not None:
                return lambda o, _f=field: self._full(spec, div, o).get(_f)
            return lambda o, _f=field: o.get(_f)

        def sort_key(g: Callable[[Any], Any]) -> Callable[[Any], tuple[bool, Any]]:
            def key(o: Any) -> tuple[bool, Any]:
                v = g(o)
                return (v is None, v.lower() if isinstance(v, str) else v)  # case-insensitive collation

            return key

        matched = [o for o in objs if pred is None or pred(o)]
        key_of = getter(spec.key)
        for field, desc in reversed(keys):
            matched.sort(key=sort_key(getter(field)), reverse=desc)
        start = 0
        if after:
            wanted = after.lower()
            start = len(matched)
            for i, o in enumerate(matched):
                if str(key_of(o)).lower() == wanted:
                    start = i + 1
                    break
        page = matched[start : start + limit]
        return page, start + limit < len(matched), start

    def _virtual_rows(self, ctx: Ctx, spec: EntitySet, div: Division, ast: Any) -> list[dict[str, Any]]:
        if spec.name in ("system/Divisions", "system/AllDivisions", "hrm/Divisions"):
            out = []
            main = next(iter(demo.DIVISIONS))
            for code, d in self.store.divisions.items():
                info = demo.DIVISIONS.get(code, {})
                # the union of the three endpoints' names for the same facts; rendering keeps each one's own
                out.append(
                    {
                        "Code": code,
                        "Description": d.name,
                        "Hid": code // 1000,
                        "HID": code // 1000,
                        "Country": "GB",
                        "Currency": "GBP",
                        "VATNumber": info.get("vat_number"),
                        "ChamberOfCommerceNumber": info.get("chamber_of_commerce"),
                        "City": info.get("city"),
                        "Main": code == main,
                        "IsMainDivision": code == main,
                        "Current": code == self._settings.current_division,
                        "Status": 1,
                        "BlockingStatus": 0,
                        "Customer": demo.guid("customer", None, "mpe"),
                        "CustomerCode": "                 1",
                        "CustomerName": demo.COMPANY_NAME,
                    }
                )
            if spec.name != "system/AllDivisions":  # the divisions the app was granted
                out = [r for r in out if r["Code"] in ctx.chain.divisions]
            return out
        if spec.name == "purchaseorder/PurchaseOrderLines":
            po_ids = _eq_values(ast, "PurchaseOrderID")
            if not po_ids:
                raise HTTPFail(400, "A required filter is missing.")
            rows = []
            for pid in po_ids:
                po = div.purchase_orders.get(pid)
                if po is not None:
                    rows.extend(po_line_row(div, po, ln) for ln in po.lines)
            return rows
        if spec.name == "purchaseentry/PurchaseEntryLines":
            return [ln for e in div.purchase_entries for ln in e["_lines"]]
        if spec.name == "bulk/Financial/TransactionLines":
            return transaction_lines(div)
        if spec.name == "webhooks/WebhookSubscriptions":
            return [sub.row("") for sub in self.webhooks.of(ctx.chain.client_id, div.code)]
        return []

    # ---- webhooks -----------------------------------------------------------------------------------------------
    def _webhook_subscriptions(
        self, method: str, ctx: Ctx, spec: EntitySet, div: Division, key: str | None, body: bytes
    ) -> Response:
        """``webhooks/WebhookSubscriptions`` of the calling app in this division (GET, POST, DELETE by key)."""
        mine = {s.id: s for s in self.webhooks.of(ctx.chain.client_id, div.code)}
        if method == "GET" and key is None:
            return self._collection(ctx, spec, div)
        if method == "GET":
            sub = mine.get(_parse_key(key or ""))
            if sub is None:
                raise HTTPFail(404, "Not found")
            fields, _navs, _deferred = self._fields(spec, None, [])
            return JSONResponse({"d": self._render(ctx, spec, div, sub.row(""), fields)})
        if method == "POST" and key is None:
            data = self._check_props(spec, _parse_body(body), spec.writable)
            url = str(data.get("CallbackURL") or "").strip()
            topic = str(data.get("Topic") or "").strip()
            problems = []
            if not url:
                problems.append("Mandatory: CallbackURL")
            elif not (url.startswith("https://") or (self._settings.webhook_allow_http and url.startswith("http://"))):
                problems.append("CallbackURL: only https callback URLs are allowed")
            if not topic:
                problems.append("Mandatory: Topic")
            elif not any(e.webhook and e.name.split("/")[-1] == topic for e in reference.endpoints().values()):
                problems.append(f"Topic: '{topic}' has no webhook")
            if any(s.topic == topic and s.callback_url == url for s in mine.values()):
                problems.append("A subscription for this topic and callback URL already exists")
            if problems:
                raise self._validation(problems)
            sub = Subscription(
                id=self.webhooks.new_id(),
                division=div.code,
                client_id=ctx.chain.client_id,
                user_id=str(data.get("UserID") or ctx.chain.user_id),
                callback_url=url,
                topic=topic,
                base=ctx.base,
                created=self.store.now_ms(),
            )
            self.webhooks.add(sub)
            prefer = True
            return self._created(ctx, spec, div, sub.row(""), prefer)
        if method == "DELETE" and key is not None:
            sub_id = _parse_key(key)
            if sub_id not in mine:
                raise HTTPFail(404, "Not found")
            self.webhooks.remove(sub_id)
            return Response(status_code=204)
        raise HTTPFail(405, f"The requested resource does not support http method '{method}'.")

    def _sync(self, ctx: Ctx, spec: EntitySet, div: Division) -> Response:
        ast, select, expand, top = self._query_options(ctx, spec)
        if expand:
            raise ODataError("$expand is not supported on sync endpoints.")
        fields, _, _ = self._fields(spec, select, [])
        start = 0
        for term in conjuncts(ast) if ast is not None else []:
            sc = simple_comparison(term)
            if sc and sc[0] == "Timestamp" and isinstance(sc[2], int):
                if sc[1] == "gt":
                    start = max(start, sc[2])
                elif sc[1] == "ge":
                    start = max(start, sc[2] - 1)
        tok = _q(ctx, "$skiptoken")
        if tok:
            m = _TS_RE.match(tok)
            if m is None:
                raise ODataError(f"Invalid $skiptoken '{tok}'.")
            start = max(start, int(m.group(1)))
        size = self._settings.sync_page_size
        limit = size if top is None else min(size, top)
        if spec.name == "sync/Deleted":
            rows, more = self._sync_deleted(spec, div, start, ast, limit)
        else:
            rows, more = self._sync_po_rows(spec, div, start, ast, limit)
        results = [self._render(ctx, spec, div, r, fields) for r in rows]
        nxt = None
        top_left = None if top is None else top - len(results)
        if more and rows and (top_left is None or top_left > 0):
            nxt = self._next_url(ctx, spec, f"{rows[-1]['Timestamp']}L", top_left)
        return self._envelope(ctx, spec, results, nxt)

    def _sync_deleted(
        self, spec: EntitySet, div: Division, start: int, ast: Any, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        pred = compile_filter(ast, spec.schema, type_name=spec.type_name) if ast is not None else None
        days = self._settings.deleted_retention_days
        oldest = None if days is None else self.store.now_ms() - int(days * DAY_MS)
        rows: list[dict[str, Any]] = []
        for row in self.store.deleted_after(div, start):
            if oldest is not None and row["DeletedDate"] < oldest:
                continue  # Exact keeps deletions about two months
            if pred is None or pred(row):
                if len(rows) == limit:
                    return rows, True
                rows.append(row)
        return rows, False

    def _sync_po_rows(
        self, spec: EntitySet, div: Division, start: int, ast: Any, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` sync rows after Timestamp ``start`` matching ``ast``, and whether more exist.

        The filter runs on ``(order, row)`` pairs through getters, before anything is rendered; terms that only
        name order-level fields (``OrderStatus``, ``Supplier``, ``Modified``...) are decided once per order. Only
        the rows of the page are built."""
        terms = conjuncts(ast) if ast is not None else []
        order_terms = [t for t in terms if (f := filter_fields(t)) and f <= SYNC_ORDER_FIELDS]
        row_terms = [t for t in terms if not any(t is o for o in order_terms)]
        order_pred = (
            compile_filter(_all_of(order_terms), spec.schema, po_getters(div), spec.type_name) if order_terms else None
        )
        row_pred = (
            compile_filter(_all_of(row_terms), spec.schema, sync_getters(div), spec.type_name) if row_terms else None
        )
        pairs: list[tuple[PO, int]] = []
        more = False
        for po, first in div.sync.orders_after(start):
            if order_pred is not None and not order_pred(po):
                continue
            for li in range(first, po.row_count):
                if row_pred is None or row_pred((po, li)):
                    if len(pairs) == limit:
                        more = True
                        break
                    pairs.append((po, li))
            if more:
                break
        rows: list[dict[str, Any]] = []
        last: PO | None = None
        head: dict[str, Any] = {}
        for po, li in pairs:
            if po is not last:
                head = sync_head(div, po)
                last = po
            rows.append(sync_po_row(div, po, li, head))
        return rows, more

    # ---- writing --------------------------------------------------------------------------------------------------
    def _validation(self, messages: list[str]) -> HTTPFail:
        return HTTPFail(self._settings.validation_error_status, "\r\n".join(messages))

    def _msg(self, key: str, *args: Any) -> str:
        return MESSAGES[self._settings.language][key].format(*args)

    def _created(
        self, ctx: Ctx, spec: EntitySet, div: Division, row: dict[str, Any], prefer: bool, obj: Any = None
    ) -> Response:
        if prefer or not self._settings.post_minimal_without_prefer:
            fields, navs, deferred = self._fields(spec, None, list(spec.navs), representation=True)
            out = self._render(ctx, spec, div, row, fields, navs, deferred, obj if obj is not None else row)
        else:
            out = self._render(ctx, spec, div, row, [spec.key])
        if not ctx.json:
            return _atom_entry(ctx.base, out, status=201)
        return JSONResponse({"d": out}, status_code=201)

    def _check_props(self, spec: EntitySet, data: dict[str, Any], settable: frozenset[str]) -> dict[str, Any]:
        """The properties of a POST/PUT body to store. A property the entity does not have, or a value of the
        wrong JSON type, is a 400 as Exact's OData reader answers; one the reference shows as read-only is ignored
        or refused (``readonly_property_on_write``)."""
        out: dict[str, Any] = {}
        for k, v in data.items():
            if k == "__metadata":
                continue
            if k not in spec.schema and k not in spec.navs:
                raise HTTPFail(
                    400,
                    f"Error processing request stream. The property name '{k}' specified for type "
                    f"'{spec.type_name}' is not valid.",
                )
            t = spec.schema.get(k)
            if t is not None and v is not None and not _type_ok(t, v):
                raise HTTPFail(
                    400,
                    "Error processing request stream. Cannot convert a primitive value to the expected type "
                    f"'{spec.ref.properties[k].edm}' ({k}). See the inner exception for more details.",
                )
            if k not in settable and k not in spec.navs:
                if self._settings.readonly_property_on_write == "refuse":
                    raise HTTPFail(400, f"Property '{k}' of type '{spec.type_name}' is read-only.")
                continue
            out[k] = v
        return out

    def _post_account(self, ctx: Ctx, spec: EntitySet, div: Division, data: dict[str, Any], prefer: bool) -> Response:
        data = self._check_props(spec, data, spec.writable)
        if not str(data.get("Name") or "").strip():
            raise self._validation([self._msg("mandatory_name")])
        code = data.get("Code")
        if code is None or not str(code).strip():
            codes = [int(a["Code"]) for a in div.accounts if a["Code"].strip().isdigit()]
            code = str(max(codes, default=0) + 1)
        if len(str(code).strip()) > ACCOUNT_CODE_MAX:
            raise self._validation([self._msg("code_too_long", str(code).strip())])
        padded = str(code).strip().rjust(ACCOUNT_CODE_MAX)
        if any(a["Code"] == padded for a in div.accounts.lookup("Code", padded)):
            raise self._validation([self._msg("duplicate_code", str(code).strip())])
        now = self.store.now_ms()
        acct: dict[str, Any] = {}
        acct.update(
            {
                "IsSupplier": False,
                "IsSales": False,
                "IsPurchase": False,
                "Status": "C",
                "Type": "A",
                "Blocked": False,
                "Country": "GB",
                "PurchaseCurrency": "GBP",
            }
        )
        acct.update({k: v for k, v in data.items() if k in spec.schema})
        acct.update(
            {
                "ID": str(uuid.uuid4()),
                "Code": padded,
                "SearchCode": acct.get("SearchCode") or str(code).strip()[:10],
                "Division": div.code,
                "Created": now,
                "Modified": now,
            }
        )
        div.accounts.put(acct)
        return self._created(ctx, spec, div, acct, prefer)

    def _put_account(self, ctx: Ctx, spec: EntitySet, div: Division, key: str, data: dict[str, Any]) -> Response:
        guid = _parse_key(key)
        if div.accounts.get(guid) is None:
            raise HTTPFail(404, "Not found")
        data = self._check_props(spec, data, spec.updatable)
        if "Name" in data and not str(data["Name"] or "").strip():
            raise self._validation([self._msg("mandatory_name")])
        now = self.store.now_ms()

        def mutate(a: dict[str, Any]) -> None:
            for k, v in data.items():
                if k in spec.schema and k != "Code":
                    a[k] = v
            a["Modified"] = now

        div.accounts.update(guid, mutate)
        return Response(status_code=204)

    def _post_entry(self, ctx: Ctx, spec: EntitySet, div: Division, data: dict[str, Any], prefer: bool) -> Response:
        line_spec = self.sets["purchaseentry/PurchaseEntryLines"]
        data = self._check_props(spec, data, spec.writable)
        raw_lines = data.get("PurchaseEntryLines")
        if isinstance(raw_lines, dict) and "results" in raw_lines:
            raw_lines = raw_lines["results"]
        if raw_lines is not None and not isinstance(raw_lines, list):
            raise HTTPFail(400, "Error processing request stream. 'PurchaseEntryLines' must be a collection.")
        checked_lines = []
        for ln in raw_lines or []:
            if not isinstance(ln, dict):
                raise HTTPFail(400, "Error processing request stream. A line must be an object.")
            checked_lines.append(self._check_props(line_spec, ln, line_spec.writable))
        raw_lines = checked_lines if raw_lines is not None else None
        journal = data.get("Journal")
        supplier = data.get("Supplier")
        errors: list[str] = []
        lk = lookups(div)
        jrow = None
        if not journal:
            errors.append(self._msg("mandatory_journal"))
        else:
            jrow = self.store.by_code(div.journals, journal)
            if jrow is None or jrow["Code"] != journal:
                errors.append(self._msg("invalid_journal"))
                jrow = None
            elif jrow["Type"] != 22:
                errors.append(self._msg("not_purchase_journal", journal))
                jrow = None
        acct = None
        if not supplier:
            errors.append(self._msg("mandatory_supplier"))
        else:
            acct = div.accounts.get(supplier)
            if acct is None:
                errors.append(self._msg("invalid_supplier"))
            elif not acct["IsSupplier"]:
                errors.append(self._msg("not_supplier", acct["Code"].strip()))
            elif acct["Blocked"]:
                errors.append(self._msg("blocked_supplier", acct["Code"].strip()))
        entry_ms = None
        if not data.get("EntryDate"):
            errors.append(self._msg("mandatory_date"))
        else:
            try:
                entry_ms = parse_iso_to_ms(data["EntryDate"], self._settings.date_timezone)
            except ValueError:
                errors.append(self._msg("invalid_date"))
        due_ms = None
        if data.get("DueDate"):
            try:
                due_ms = parse_iso_to_ms(data["DueDate"], self._settings.date_timezone)
            except ValueError:
                errors.append("Invalid value: Due date")
        if entry_ms is not None and self._settings.closed_before:
            closed = parse_iso_to_ms(self._settings.closed_before)
            if entry_ms < closed:
                d = datetime.fromtimestamp(entry_ms / 1000, tz=UTC)
                errors.append(self._msg("closed_period", f"{d.year}/{d.month}"))
        currency = data.get("Currency") or "GBP"
        if currency not in ISO_CURRENCIES:
            errors.append(self._msg("invalid_currency", currency))
        if not raw_lines:
            errors.append(self._msg("no_lines"))
        rate = data.get("Rate", 1.0)
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            errors.append("Invalid value: Rate")
            rate = 1.0
        lines: list[dict[str, Any]] = []
        entry_id = str(uuid.uuid4())
        for n, ln in enumerate(raw_lines or [], start=1):
            gl = None
            if not ln.get("GLAccount"):
                errors.append(self._msg("mandatory_gl"))
            else:
                gl = div.gl_accounts.get(ln["GLAccount"])
                if gl is None:
                    errors.append(self._msg("invalid_gl"))
                elif gl["IsBlocked"]:
                    errors.append(self._msg("blocked_gl", gl["Code"]))
                    gl = None
            amount = ln.get("AmountFC")
            if amount is None or amount == "":
                errors.append(self._msg("mandatory_amount"))
                amount = None
            else:
                try:
                    if isinstance(amount, bool):
                        raise ValueError
                    amount = round(float(amount), 2)
                except (TypeError, ValueError):
                    errors.append(self._msg("invalid_amount"))
                    amount = None
            cc = ln.get("CostCenter")
            if cc:
                row = lk.cc.get(cc)
                if row is None or not row["Active"]:
                    errors.append(self._msg("invalid_cc"))
            cu = ln.get("CostUnit")
            if cu:
                row = lk.cu.get(cu)
                if row is None or not row["Active"]:
                    errors.append(self._msg("invalid_cu"))
            vat_code = ln.get("VATCode") or (gl["VATCode"] if gl else None)
            pct = 0.0
            if vat_code:
                vrow = lk.vat.get(str(vat_code))
                if vrow is None:
                    errors.append(self._msg("invalid_vat"))
                elif vrow["IsBlocked"]:
                    errors.append(self._msg("blocked_vat", vat_code))
                else:
                    pct = vrow["Percentage"]
            vat_amount = None
            if ln.get("VATAmountFC") is not None:
                try:
                    vat_amount = round(float(ln["VATAmountFC"]), 2)
                except (TypeError, ValueError):
                    errors.append("Invalid value: VAT amount")
            if amount is not None and vat_amount is None:
                vat_amount = round(amount * pct, 2)
            lines.append(
                {
                    "ID": str(uuid.uuid4()),
                    "EntryID": entry_id,
                    "LineNumber": n,
                    "GLAccount": gl["ID"] if gl else None,
                    "GLAccountCode": gl["Code"] if gl else None,
                    "GLAccountDescription": gl["Description"] if gl else None,
                    "AmountFC": amount,
                    "AmountDC": None if amount is None else round(amount * rate, 2),
                    "VATCode": vat_code,
                    "VATPercentage": pct,
                    "VATAmountFC": vat_amount,
                    "VATAmountDC": None if vat_amount is None else round(vat_amount * rate, 2),
                    "VATBaseAmountFC": amount,
                    "CostCenter": cc or None,
                    "CostUnit": cu or None,
                    "Description": ln.get("Description"),
                    "Quantity": ln.get("Quantity"),
                    "Notes": ln.get("Notes"),
                    "Division": div.code,
                }
            )
        if errors:
            raise self._validation(errors)
        assert jrow is not None and acct is not None and entry_ms is not None
        net = round(sum(ln["AmountFC"] for ln in lines), 2)
        vat_total = round(sum(ln["VATAmountFC"] for ln in lines), 2)
        total = round(net + vat_total, 2)
        d = datetime.fromtimestamp(entry_ms / 1000, tz=UTC)
        reporting_year = int(data.get("ReportingYear") or d.year)  # types checked by _check_props
        reporting_period = int(data.get("ReportingPeriod") or d.month)
        seq_key = f"{jrow['Code']}:{d.year}"
        assert div.entry_seq is not None
        # The entry number is taken last: a refused or failed POST never consumes one.
        seq = div.entry_seq.get(seq_key, 0) + 1
        number = int(f"{d.year % 100:02d}{jrow['Code']}{seq:04d}")
        now = self.store.now_ms()
        terms = (
            int(acct.get("PaymentConditionPurchase") or 30)
            if str(acct.get("PaymentConditionPurchase") or "30").isdigit()
            else 30
        )
        entry = {
            "EntryID": entry_id,
            "EntryNumber": number,
            "InvoiceNumber": number,
            "Journal": jrow["Code"],
            "JournalDescription": jrow["Description"],
            "Supplier": acct["ID"],
            "SupplierName": acct["Name"],
            "EntryDate": entry_ms,
            "DueDate": due_ms if due_ms is not None else entry_ms + terms * DAY_MS,
            "YourRef": data.get("YourRef"),
            "Description": data.get("Description"),
            "PaymentReference": data.get("PaymentReference"),
            "ExternalLinkReference": data.get("ExternalLinkReference"),
            "Currency": currency,
            "Rate": rate,
            "ReportingYear": reporting_year,
            "ReportingPeriod": reporting_period,
            "AmountFC": total,
            "AmountDC": round(total * rate, 2),
            "VATAmountFC": vat_total,
            "VATAmountDC": round(vat_total * rate, 2),
            "Status": 20,
            "StatusDescription": "Open",
            "Type": 31 if total < 0 else 30,
            "TypeDescription": "Purchase credit note" if total < 0 else "Purchase entry",
            "PaymentCondition": acct.get("PaymentConditionPurchase"),
            "Division": div.code,
            "Created": now,
            "Modified": now,
            "_lines": lines,
        }
        response = self._created(ctx, spec, div, entry, prefer)
        div.purchase_entries.put(entry)
        div.entry_seq[seq_key] = seq
        return response

    # ---- Exact-specific admin -----------------------------------------------------------------------------------
    def _exact_admin_router(self) -> APIRouter:
        router = APIRouter(prefix="/_admin", tags=["admin"])
        store = self.store

        def find(po_id: str, division: int | None) -> tuple[Division, PO]:
            for code, div in store.divisions.items():
                if division is not None and code != division:
                    continue
                po = div.purchase_orders.get(po_id)
                if po is not None:
                    return div, po
            raise HTTPFail(404, f"purchase order {po_id} not found")

        def view(div: Division, po: PO) -> dict[str, Any]:
            head = po_header_row(div, po)
            head["Timestamp"] = po.ts
            head["PurchaseOrderLines"] = [po_line_row(div, po, ln) for ln in po.lines]
            return head

        def wrap(fn: Callable[[], Any]) -> Any:
            try:
                with store.lock:
                    return fn()
            except HTTPFail as exc:
                return JSONResponse({"detail": exc.message}, status_code=exc.status)
            except (ValueError, KeyError) as exc:
                return JSONResponse({"detail": str(exc)}, status_code=400)

        @router.post("/purchase_orders")
        async def create_po(request: Request) -> Any:
            body = await request.json()
            division = int(body.pop("division", next(iter(demo.DIVISIONS))))

            def run() -> Any:
                div = store.divisions[division]
                return JSONResponse(view(div, store.create_purchase_order(div, body)), status_code=201)

            return wrap(run)

        @router.get("/purchase_orders/{po_id}")
        async def get_po(po_id: str, division: int | None = None) -> Any:
            return wrap(lambda: view(*find(po_id, division)))

        @router.patch("/purchase_orders/{po_id}")
        async def patch_po(po_id: str, request: Request, division: int | None = None) -> Any:
            body = await request.json()

            def run() -> Any:
                div, po = find(po_id, division)
                return view(div, store.modify_purchase_order(div, po.id, body))

            return wrap(run)

        @router.post("/purchase_orders/{po_id}/cancel")
        async def cancel_po(po_id: str, division: int | None = None) -> Any:
            def run() -> Any:
                div, po = find(po_id, division)
                return view(div, store.modify_purchase_order(div, po.id, {"OrderStatus": 40}))

            return wrap(run)

        @router.delete("/purchase_orders/{po_id}")
        async def delete_po(po_id: str, division: int | None = None) -> Any:
            def run() -> Any:
                div, po = find(po_id, division)
                store.delete_purchase_order(div, po.id)
                return {"ok": True, "deleted": po.id}

            return wrap(run)

        @router.get("/webhooks")
        async def webhooks_view() -> Any:
            return self.webhooks.view()

        @router.post("/webhooks")
        async def webhooks_faults(request: Request) -> Any:
            body = await request.json()
            with self.webhooks.lock:
                self.webhooks.drop_next = int(body.get("drop_next", self.webhooks.drop_next))
                self.webhooks.bad_signature_next = int(body.get("bad_signature_next", self.webhooks.bad_signature_next))
            return self.webhooks.view()

        @router.get("/purchase_entries")
        async def list_entries(division: int | None = None) -> Any:
            def run() -> Any:
                return [
                    self._entry_view(e)
                    for code, div in store.divisions.items()
                    if division is None or code == division
                    for e in div.purchase_entries
                ]

            return wrap(run)

        @router.patch("/purchase_entries/{entry_id}")
        async def patch_entry(entry_id: str, request: Request, division: int | None = None) -> Any:
            """A person edits an entry in Exact's UI: ``{"line": n, "AmountFC": x}`` changes one line's amount (its
            VAT at the line's percentage, the entry's totals follow); other keys replace header fields."""
            body = await request.json()

            def run() -> Any:
                for code, div in store.divisions.items():
                    if division is not None and code != division:
                        continue
                    if div.purchase_entries.get(entry_id) is not None:
                        return self._entry_view(div.purchase_entries.update(entry_id, edit_entry(body, store.now_ms())))
                raise HTTPFail(404, f"purchase entry {entry_id} not found")

            return wrap(run)

        @router.patch("/accounts/{account_id}")
        async def patch_account(account_id: str, request: Request, division: int | None = None) -> Any:
            body = await request.json()

            def run() -> Any:
                for code, div in store.divisions.items():
                    if division is not None and code != division:
                        continue
                    if div.accounts.get(account_id) is not None:
                        now = store.now_ms()

                        def mutate(a: dict[str, Any], now: int = now) -> None:
                            a.update(body)
                            a["Modified"] = now

                        acct = div.accounts.update(account_id, mutate)
                        return {k: v for k, v in acct.items() if not k.startswith("_")}
                raise HTTPFail(404, f"account {account_id} not found")

            return wrap(run)

        @router.post("/oauth/code")
        async def mint_code(request: Request) -> Any:
            """An authorization code without the browser step: {client_id, redirect_uri, divisions}."""
            body = await request.json() if await request.body() else {}
            client_id = body.get("client_id", DEMO_CLIENT_ID)
            redirect_uri = body.get("redirect_uri", DEMO_REDIRECT_URIS[0])
            problem = self.oauth.check_client_redirect(client_id, redirect_uri)
            if problem:
                return JSONResponse({"detail": problem}, status_code=400)
            divisions = body.get("divisions", self._settings.consent_divisions)
            return {"code": self.oauth.issue_code(client_id, redirect_uri, divisions), "redirect_uri": redirect_uri}

        @router.get("/oauth")
        async def oauth_state() -> Any:
            return self.oauth.state()

        return router


# --------------------------------------------------------------------------------------------------- helpers
def _unauthorized() -> Response:
    return Response(
        b"",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token is invalid"'},
    )


def _parse_key(text: str) -> str:
    m = _KEY_RE.match(text)
    if m is None:
        raise ODataError(f"Bad key or skiptoken '{text}': expected guid'...'.")
    return m.group(1).lower()


def _parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"null")
    except ValueError as exc:
        raise HTTPFail(400, "Error processing request stream. The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise HTTPFail(400, "Error processing request stream. An object was expected.")
    return data


def _all_of(terms: list[Any]) -> Any:
    return terms[0] if len(terms) == 1 else BoolOp("and", tuple(terms))


def _eq_values(ast: Any, field: str) -> list[str]:
    out: list[str] = []
    if ast is None:
        return out
    for term in conjuncts(ast):
        sc = simple_comparison(term)
        if sc and sc[0] == field and sc[1] == "eq" and isinstance(sc[2], str):
            out.append(sc[2])
    return out


def path_template(path: str) -> str:
    """``/api/v1/111111/crm/Accounts(guid'..')`` -> ``/api/v1/{division}/crm/Accounts(...)``."""
    path = re.sub(r"^/api/v1/\d+/", "/api/v1/{division}/", path)
    return re.sub(r"\([^)]*\)", "(...)", path)


def _page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:40em;margin:3em auto}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


_ATOM_NS = (
    'xmlns="http://www.w3.org/2005/Atom" xmlns:d="http://schemas.microsoft.com/ado/2007/08/dataservices" '
    'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"'
)


def _atom_entry_xml(r: dict[str, Any], ns: str = "") -> str:
    props = "".join(
        f"<d:{k}>{html.escape(str(v))}</d:{k}>" if v is not None else f'<d:{k} m:null="true"/>'
        for k, v in r.items()
        if not k.startswith("__") and not isinstance(v, dict)
    )
    return (
        f"<entry{ns}><id>{html.escape(r['__metadata']['uri'])}</id>"
        f'<content type="application/xml"><m:properties>{props}</m:properties></content></entry>'
    )


def _atom_feed(base: str, title: str, rows: list[dict[str, Any]], status: int = 200) -> Response:
    """What Exact answers without ``Accept: application/json``: an Atom feed (abridged)."""
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<feed xml:base="{html.escape(base)}/api/v1/" {_ATOM_NS}>'
        f'<title type="text">{html.escape(title)}</title>' + "".join(_atom_entry_xml(r) for r in rows) + "</feed>"
    )
    return Response(xml, status_code=status, media_type="application/atom+xml;type=feed;charset=utf-8")


def _atom_entry(base: str, row: dict[str, Any], status: int = 200) -> Response:
    """One entity (GET by key, POST 201) as an Atom entry document."""
    ns = f' xml:base="{html.escape(base)}/api/v1/" {_ATOM_NS}'
    xml = '<?xml version="1.0" encoding="utf-8"?>' + _atom_entry_xml(row, ns)
    return Response(xml, status_code=status, media_type="application/atom+xml;type=entry;charset=utf-8")


def _atom(ctx: Ctx, spec: EntitySet, rows: list[dict[str, Any]]) -> Response:
    return _atom_feed(ctx.base, spec.name.split("/")[-1], rows)


def create_app(settings: ExactSettings | dict[str, Any] | None = None, clock: Clock | None = None) -> FastAPI:
    """The Exact Online sandbox app (``app.state.sandbox`` is its :class:`ExactSandbox`)."""
    return ExactSandbox(settings, clock).app
