"""The Exact sandbox's REST router: ``/``, ``/api/v1/current/Me`` and ``/api/v1/{division}/...``, and the request
pipeline every REST call goes through (token, division, error budget, rate limit, then the entity's handler)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from sandbox.common import demo_company as demo
from sandbox.exact import contract, reference
from sandbox.exact.entities import EntitySet
from sandbox.exact.odata import ODataError, parse_select
from sandbox.exact.purchase_entries import post_entry
from sandbox.exact.reads import collection, get_by_key
from sandbox.exact.render import plain_fields
from sandbox.exact.responses import (
    Ctx,
    HTTPFail,
    atom_feed,
    error_response,
    html_page,
    parse_body,
    parse_key,
    unauthorized,
    wants_json,
    xml_error_response,
)
from sandbox.exact.state import ExactState
from sandbox.exact.store import ENTITY_TYPE_ACCOUNT, Division
from sandbox.exact.webhook_subscriptions import webhook_subscriptions
from sandbox.exact.writes import post_account, put_account

log = logging.getLogger(__name__)

ME = reference.endpoint("current/Me")


def make_rest_router(sb: ExactState) -> APIRouter:
    router = APIRouter()

    @router.get("/")
    async def index() -> Response:
        body = (
            "<p>Exact Online sandbox (ml-connector). REST under <code>/api/v1/{division}/...</code>, "
            "OAuth under <code>/api/oauth2/</code>, controls under <code>/_admin/</code> "
            '(<a href="/_admin/docs">admin API docs</a>).</p>'
        )
        return HTMLResponse(html_page("Exact Online sandbox", body))

    @router.get("/api/v1/current/Me")
    async def me(request: Request) -> Response:
        contract.record("GET", request.url.path, list(request.query_params.multi_items()), None,
                        request.headers.get("user-agent"))  # fmt: skip
        try:
            return me_response(sb, request)
        except Exception as exc:  # never a bare crash: Exact's error body
            return crash(sb, request, exc)

    @router.api_route("/api/v1/{division}/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def api(request: Request, division: str, rest: str) -> Response:
        body = await request.body() if request.method in ("POST", "PUT", "PATCH") else b""
        contract.record(request.method, request.url.path, list(request.query_params.multi_items()), body,
                        request.headers.get("user-agent"))  # fmt: skip
        # In a worker thread: a slow request (100k rows) must not stall the event loop and every other client;
        # the store lock serialises the state.
        return await run_in_threadpool(handle_safe, sb, request, division, rest, body)

    return router


def crash(sb: ExactState, request: Request, exc: Exception) -> Response:
    log.exception("Exact sandbox: unhandled error in %s %s", request.method, request.url.path)
    message = f"An error has occurred. ({type(exc).__name__}: {exc})"
    if wants_json(request) or sb.settings().non_json_response == "json":
        return error_response(500, message)
    return xml_error_response(500, message)


def error(sb: ExactState, json_ok: bool, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if json_ok:
        return error_response(status, message, headers)
    return xml_error_response(status, message, headers)


def me_response(sb: ExactState, request: Request) -> Response:
    chain = sb.oauth.authenticate(request.headers.get("authorization"))
    if chain is None:
        return unauthorized()
    json_ok = wants_json(request) or sb.settings().non_json_response == "json"
    if not json_ok and sb.settings().non_json_response == "406":
        return xml_error_response(406, "Not acceptable: send Accept: application/json.")
    try:
        select = parse_select(request.query_params.get("$select"))
        fields = plain_fields(sb, ME.plain, select, ME.type_name)
    except ODataError as exc:
        return error(sb, json_ok, 400, str(exc))
    base = sb.base_url(request)
    current = sb.settings().current_division
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
        return atom_feed(sb.base_url(request), "Me", [out])
    return JSONResponse({"d": {"results": [out]}})


def handle_safe(sb: ExactState, request: Request, division_s: str, rest: str, body: bytes) -> Response:
    """:meth:`handle`, but an unexpected error is an Exact-shaped 500, never a bare crash or a reset."""
    try:
        return handle(sb, request, division_s, rest, body)
    except Exception as exc:
        return crash(sb, request, exc)


def handle(sb: ExactState, request: Request, division_s: str, rest: str, body: bytes) -> Response:
    s = sb.settings()
    json_ok = wants_json(request) or s.non_json_response == "json"
    spec, key, nav = resolve(sb, rest)
    endpoint = spec.name if spec else rest.split("(")[0]
    authorization = request.headers.get("authorization")
    chain = sb.oauth.authenticate(authorization)
    if chain is None:
        # An expired or revoked token still names its app: that 401 counts against the app's error budget
        # (a client that keeps sending a dead token locks itself out, as on Exact). Unknown tokens cannot.
        owner = sb.oauth.owner(authorization)
        if owner is not None and division_s.isdigit():
            sb.budget.record(owner.client_id, owner.user_id, int(division_s), endpoint, 401)
        return unauthorized()
    if not division_s.isdigit():
        return error(sb, json_ok, 404, f"Resource not found for the segment '{division_s}'.")
    division = int(division_s)
    if division not in chain.divisions or division not in sb.store.divisions:
        resp = error(sb, json_ok, 403, "Forbidden", {"Reason": "NoDivisionAccess"})
        sb.budget.record(chain.client_id, chain.user_id, division, endpoint, 403)
        return resp
    if division in s.blocked_divisions:
        sb.budget.record(chain.client_id, chain.user_id, division, endpoint, 403)
        return error(sb, json_ok, 403, "Forbidden: the division is blocked.", {"Reason": "DivisionBlocked"})
    until = sb.budget.blocked_until(chain.client_id, chain.user_id, division, endpoint)
    if until is not None:
        ts = datetime.fromtimestamp(until, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        return error(
            sb,
            json_ok,
            s.error_budget_block_status,
            f"API rate limit exceeded: more than {s.error_budget_threshold} errors on this endpoint within an "
            f"hour. Your application is blocked for this endpoint until {ts} UTC.",
        )
    allowed, rate_headers = sb.limiter.hit(chain.client_id, division)
    if not allowed:
        return Response(b"", status_code=429, headers=rate_headers)
    ctx = Ctx(
        base=sb.base_url(request),
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
        with sb.store.lock:
            div = sb.store.divisions[division]
            resp = dispatch(sb, request.method, ctx, spec, div, key, nav, body, request.headers)
    except HTTPFail as exc:
        resp = error(sb, ctx.json, exc.status, exc.message, exc.headers)
    except ODataError as exc:
        resp = error(sb, ctx.json, 400, str(exc))
    for k, v in rate_headers.items():
        resp.headers[k] = v
    sb.budget.record(chain.client_id, chain.user_id, division, endpoint, resp.status_code)
    return resp


def resolve(sb: ExactState, rest: str) -> tuple[EntitySet | None, str | None, str | None]:
    for name in sorted(sb.sets, key=len, reverse=True):
        if rest == name:
            return sb.sets[name], None, None
        if rest.startswith(name + "("):
            m = re.match(r"^\(([^)]*)\)(?:/([A-Za-z]+))?$", rest[len(name) :])
            if m is None:
                return None, None, None
            return sb.sets[name], m.group(1), m.group(2)
    return None, None, None


def dispatch(
    sb: ExactState,
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
        return webhook_subscriptions(sb, method, ctx, spec, div, key, body)
    if method == "GET":
        if key is not None:
            return get_by_key(sb, ctx, spec, div, key, nav)
        return collection(sb, ctx, spec, div)
    if method == "POST" and key is None:
        data = parse_body(body)
        prefer = "return=representation" in (headers.get("prefer") or "").lower()
        if spec.name == "crm/Accounts":
            return post_account(sb, ctx, spec, div, data, prefer)
        if spec.name == "purchaseentry/PurchaseEntries":
            return post_entry(sb, ctx, spec, div, data, prefer)
    if method == "PUT" and key is not None and spec.name == "crm/Accounts":
        return put_account(sb, ctx, spec, div, key, parse_body(body))
    if method == "DELETE" and key is not None and spec.name == "crm/Accounts":
        guid = parse_key(key)
        if div.accounts.get(guid) is None:
            raise HTTPFail(404, "Not found")
        div.accounts.remove(guid)
        div.deleted.append(sb.store.deleted_row(div, guid, ENTITY_TYPE_ACCOUNT, sb.store.now_ms()))
        return Response(status_code=204)
    if method == "DELETE" and key is not None and spec.name == "purchaseentry/PurchaseEntries":
        guid = parse_key(key)
        if div.purchase_entries.get(guid) is None:
            raise HTTPFail(404, "Not found")
        div.purchase_entries.remove(guid)
        return Response(status_code=204)
    if method in spec.methods:
        # Exact has this method here (the reference says so); the sandbox has no behaviour behind it.
        raise HTTPFail(501, f"The Exact sandbox does not implement {method} on {spec.name} (Exact Online does).")
    raise HTTPFail(405, f"The requested resource does not support http method '{method}'.")
