"""The FastAPI app behind the Airflow UI plugin (mounted at ``/ml-connector`` on the api-server).

Routes (every one needs an authenticated Airflow user with the right permission on connections; the api-server's
login cookie or a Bearer JWT both work):

``GET /exact/connect?tenant=T``  (edit connections) stores a single-use state and redirects to Exact's consent page.
``GET /exact/callback?code=&state=``  (edit connections) checks the state (known, fresh, used once), exchanges the
    code, stores the tokens, checks ``current/Me`` and the tenant's divisions, and shows the result.
``GET /ui/status``  (read connections) the status table of ``mlc status`` (``?check=1`` calls the APIs live).
``/ui/mappings...``  the mappings page: viewers look, op/admin change (``ml_connector.web.mappings_views``).
``/ui/ledger...``  the ledger console: records, one record's history, needs a person, audit export
    (``ml_connector.web.ledger_views``; same rules as the mappings page), and its reconciliation page
    (``ml_connector.web.reconcile_views``).

A logged-out browser is sent to Airflow's login page and back (``ml_connector.web.login_redirect``).

No database or network access happens when the app is built; only when a route runs.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ml_connector.web.style import STYLE as _STYLE

log = logging.getLogger(__name__)


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    doc = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h2>{html.escape(title)}</h2>{body}</body></html>"
    )
    return HTMLResponse(doc, status_code=status_code)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _auth_guards() -> dict[str, Any]:
    """Airflow's permission dependencies (imported when the app is built, i.e. inside the api-server)."""
    from airflow.api_fastapi.core_api.security import requires_access_connection

    return {"edit": requires_access_connection("PUT"), "read": requires_access_connection("GET")}


def create_app(guards: dict[str, Any] | None = None) -> FastAPI:
    """Build the app. ``guards`` (``{"edit": dep, "read": dep}``) defaults to Airflow's connection permissions."""
    guards = guards or _auth_guards()
    app = FastAPI(title="ml-connector", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.guards = guards

    @app.get("/exact/connect", dependencies=[Depends(guards["edit"])])
    def exact_connect(request: Request, tenant: str) -> Response:
        from ml_connector.config import load_tenants
        from ml_connector.errors import ConfigError, ConnectorError
        from ml_connector.exact import oauth
        from ml_connector.exact.connection import load_app
        from ml_connector.store.db import get_engine

        try:
            tenants = load_tenants()
            if tenant not in tenants:
                return _page("Unknown tenant", f"<p>No tenant <code>{_e(tenant)}</code> in the tenant config.</p>", 404)
            cfg = tenants[tenant]
            exact_app = load_app(cfg.exact.conn_id)
            redirect_uri = exact_app.redirect_uri
            if not redirect_uri or not redirect_uri.startswith(("http://", "https://")):
                redirect_uri = str(request.url_for("exact_callback"))
            url = oauth.start_consent(get_engine(), exact_app, tenant, cfg.exact.conn_id, redirect_uri)
        except ConfigError as exc:
            return _page("Cannot start the consent", "".join(f"<p>{_e(p)}</p>" for p in exc.problems), 400)
        except ConnectorError as exc:
            return _page("Cannot start the consent", f"<p>{_e(exc)}</p>", 400)
        return RedirectResponse(url, status_code=302)

    @app.get("/exact/callback", name="exact_callback", dependencies=[Depends(guards["edit"])])
    def exact_callback(
        code: str | None = None,
        state: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> Response:
        from ml_connector.config import load_tenants
        from ml_connector.errors import ConfigError, ConnectorError
        from ml_connector.exact import oauth
        from ml_connector.exact.client import ExactClient
        from ml_connector.exact.connection import load_app
        from ml_connector.store.db import get_engine

        if error:
            return _page("Exact Online did not give consent", f"<p>{_e(error_description or error)}</p>", 400)
        engine = get_engine()
        try:
            pending = oauth.consume_state(engine, state or "")
        except ConnectorError as exc:
            return _page("Consent refused", f"<p>{_e(exc)}</p>", 400)
        if not code:
            return _page("Consent incomplete", "<p>Exact sent no authorization code.</p>", 400)
        tenant = pending.tenant
        try:
            cfg = load_tenants()[tenant]
            client = ExactClient(load_app(pending.conn_id), tenant, pending.conn_id, engine=engine)
            client.tokens.exchange_code(code, pending.redirect_uri)
        except ConfigError as exc:
            return _page("Connection failed", "".join(f"<p>{_e(p)}</p>" for p in exc.problems), 400)
        except (ConnectorError, KeyError) as exc:
            return _page("Connection failed", f"<p>Tenant {_e(tenant)}: {_e(exc)}</p>", 400)
        rows = []
        problems: list[str] = []
        who = "?"
        try:
            me = client.me()
            who = f"{_e(me.get('FullName') or '?')} &lt;{_e(me.get('UserName') or me.get('Email'))}&gt;"
            client.check_divisions(list(cfg.exact.divisions))
        except ConfigError as exc:
            problems = exc.problems
        except ConnectorError as exc:
            problems = [str(exc)]
        for division in cfg.exact.divisions:
            bad = [p for p in problems if p.startswith(f"division {division} ")]
            cls, text = ("bad", bad[0]) if bad else ("ok", "accessible")
            rows.append(f"<tr><td>{division}</td><td class='{cls}'>{_e(text)}</td></tr>")
        other = [p for p in problems if not p.startswith("division ")]
        body = (
            f"<p class='ok'>Tokens stored for tenant <code>{_e(tenant)}</code>.</p>"
            f"<p>Consent given by {who}.</p>"
            f"<table><tr><th>division</th><th>access</th></tr>{''.join(rows)}</table>"
            + "".join(f"<p class='bad'>{_e(p)}</p>" for p in other)
            + "<p><a href='../ui/status'>Connection status</a></p>"
        )
        title = "Exact Online connected" if not problems else "Exact Online connected, with problems"
        return _page(title, body)

    @app.get("/ui/status", dependencies=[Depends(guards["read"])])
    def ui_status(check: bool = False) -> Response:
        from ml_connector.config import load_tenants
        from ml_connector.errors import ConfigError
        from ml_connector.status import collect
        from ml_connector.store.db import get_engine

        try:
            report = collect(load_tenants(), get_engine(), live=check, check_jaggaer=check)
        except ConfigError as exc:
            return _page("ml-connector status", "".join(f"<p class='bad'>{_e(p)}</p>" for p in exc.problems), 500)
        rows = []
        for r in report:
            cls = "ok" if r.exact == "ok" else "bad"
            jcls = "ok" if r.jaggaer == "ok" else ("muted" if r.jaggaer == "not checked" else "bad")
            action = (
                ""
                if r.exact == "ok"
                else f"<br><a href='../exact/connect?tenant={_e(r.tenant)}' target='_top'>Connect to Exact Online</a>"
            )
            rows.append(
                "<tr>"
                f"<td>{_e(r.tenant)}</td>"
                f"<td><span class='{cls}'>{_e(r.exact)}</span> <span class='muted'>({_e(r.exact_conn_id)})</span>"
                f"<br>{_e(r.exact_detail)}{action}</td>"
                f"<td>{_e(_when(r.last_refreshed))}</td>"
                f"<td>{_e(_when(r.refresh_lapses_at))}</td>"
                f"<td>{r.token_calls_today}</td>"
                f"<td><span class='{jcls}'>{_e(r.jaggaer)}</span> <span class='muted'>({_e(r.jaggaer_conn_id)})</span>"
                f"<br>{_e(r.jaggaer_detail)}</td>"
                "</tr>"
            )
        mode = "live check" if check else "stored state only"
        body = (
            f"<p class='muted'>{mode} &middot; <a href='?check=1'>check the connections now</a></p>"
            "<table><tr><th>tenant</th><th>Exact Online</th><th>last token refresh</th>"
            "<th>refresh token lapses if unused</th><th>token calls today</th><th>JAGGAER</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        from ml_connector.web.webhooks import status_html

        body += status_html(get_engine(), [r.tenant for r in report])
        return _page("ml-connector status", body)

    from ml_connector.web.ledger_views import install as install_ledger
    from ml_connector.web.login_redirect import install as install_login_redirect
    from ml_connector.web.mappings_views import install as install_mappings
    from ml_connector.web.reconcile_views import install as install_reconcile

    install_login_redirect(app)
    install_mappings(app)
    install_ledger(app)
    install_reconcile(app)
    from ml_connector.web.webhooks import install as install_webhooks  # public: verified by HashCode

    install_webhooks(app)
    return app


def _when(value: Any) -> str:
    if value is None:
        return "-"
    return value.isoformat(timespec="minutes") if hasattr(value, "isoformat") else str(value)
