"""The Exact sandbox's OAuth pages: ``/api/oauth2/auth`` (consent or straight redirect) and ``/api/oauth2/token``."""

from __future__ import annotations

import html
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from sandbox.common import demo_company as demo
from sandbox.exact.responses import html_page
from sandbox.exact.state import ExactState


def make_oauth_router(sb: ExactState) -> APIRouter:
    router = APIRouter()

    @router.get("/api/oauth2/auth")
    async def authorize(request: Request) -> Response:
        q = request.query_params
        client_id, redirect_uri = q.get("client_id"), q.get("redirect_uri")
        problem = sb.oauth.check_client_redirect(client_id, redirect_uri)
        if problem is None and q.get("response_type") != "code":
            problem = "Only response_type=code is supported."
        if problem is not None:
            return HTMLResponse(html_page("Exact Online - error", f"<p>{html.escape(problem)}</p>"), status_code=400)
        if sb.settings().consent_page:
            return HTMLResponse(consent_page(sb, client_id or "", redirect_uri or "", q.get("state")))
        code = sb.oauth.issue_code(client_id or "", redirect_uri or "", sb.settings().consent_divisions)
        return code_redirect(sb, redirect_uri or "", code, q.get("state"))

    @router.post("/api/oauth2/auth")
    async def consent(request: Request) -> Response:
        form = await request.form()
        client_id, redirect_uri = str(form.get("client_id", "")), str(form.get("redirect_uri", ""))
        state = form.get("state")
        problem = sb.oauth.check_client_redirect(client_id, redirect_uri)
        if problem is not None:
            return HTMLResponse(html_page("Exact Online - error", f"<p>{html.escape(problem)}</p>"), status_code=400)
        if form.get("action") != "approve":
            sep = "&" if "?" in redirect_uri else "?"
            params = {"error": "access_denied"}
            if state:
                params["state"] = str(state)
            return RedirectResponse(redirect_uri + sep + urlencode(params), status_code=302)
        divisions = [int(d) for d in form.getlist("division") if str(d).isdigit()]
        code = sb.oauth.issue_code(client_id, redirect_uri, divisions)
        return code_redirect(sb, redirect_uri, code, str(state) if state else None)

    @router.post("/api/oauth2/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        status, headers, body = sb.oauth.token(
            {k: str(v) for k, v in form.items()}, request.headers.get("authorization")
        )
        if body is None:
            return Response(b"", status_code=status, headers=headers)
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **headers})

    return router


def code_redirect(sb: ExactState, redirect_uri: str, code: str, state: str | None) -> Response:
    params = {"code": code}
    if state:
        params["state"] = state
    if redirect_uri.startswith("urn:"):
        body = (
            "<p>Copy this code into ml-connector to finish connecting:</p>"
            f'<p><input id="code" size="70" readonly value="{html.escape(code)}"></p>'
            f'<p id="state">{html.escape(state or "")}</p>'
        )
        return HTMLResponse(html_page("Exact Online - authorization code", body))
    sep = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + sep + urlencode(params), status_code=302)


def consent_page(sb: ExactState, client_id: str, redirect_uri: str, state: str | None) -> str:
    app = sb.settings().apps[client_id]
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
    return html_page("Exact Online - grant access", body)
