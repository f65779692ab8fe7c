"""Health of every tenant's connections, for ``mlc status`` and the plugin's status page.

Per tenant: the Exact token chain (ok / broken / not connected, with the reason), a live check (token, ``current/Me``,
each configured division) when the chain is usable, when the tokens were last refreshed, when the refresh token
lapses if unused (30 days after the last refresh), a refresh left unfinished, and the JAGGAER connection (token
obtainable) through ``JaggaerHook.test_connection()`` when that hook exists. A connection marked
``{"sandbox": true}`` (``ml_connector.net_policy``) is flagged, and its detail starts with "sandbox", so nobody
mistakes a demo for a production connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from ml_connector.config.tenant import TenantConfig
from ml_connector.errors import ConfigError, ConnectorError
from ml_connector.exact.client import ExactClient
from ml_connector.exact.connection import connection_is_sandbox, get_connection, load_app
from ml_connector.exact.tokens import ExactApp, TokenChain


@dataclass
class TenantHealth:
    tenant: str
    exact_conn_id: str
    exact: str  # ok | broken | not connected | failed
    exact_detail: str
    last_refreshed: datetime | None
    refresh_lapses_at: datetime | None
    refresh_interrupted_at: datetime | None
    token_calls_today: int
    jaggaer_conn_id: str
    jaggaer: str  # ok | failed | not checked
    jaggaer_detail: str
    exact_sandbox: bool = False
    jaggaer_sandbox: bool = False

    @property
    def healthy(self) -> bool:
        return self.exact == "ok" and self.jaggaer in ("ok", "not checked")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat(timespec="seconds")
        out["healthy"] = self.healthy
        return out


SANDBOX_NOTE = "sandbox connection (http on loopback allowed)"


def _sandbox(conn_id: str) -> bool:
    """Whether the connection is marked as a sandbox (``False`` when it cannot be read: its check says why)."""
    try:
        return connection_is_sandbox(get_connection(conn_id))
    except ConnectorError:
        return False


def _with_note(detail: str, sandbox: bool) -> str:
    if not sandbox:
        return detail
    return f"{SANDBOX_NOTE}; {detail}" if detail else SANDBOX_NOTE


def _jaggaer(tenant: TenantConfig) -> tuple[str, str]:
    try:
        from ml_connector.jaggaer.hook import JaggaerHook
    except ImportError:
        return "not checked", "JAGGAER hook not available in this build"
    try:
        ok, message = JaggaerHook(tenant.jaggaer.conn_id, tenant=tenant).test_connection()
    except Exception as exc:
        return "failed", f"{type(exc).__name__}: {exc}"
    return ("ok" if ok else "failed"), message


def tenant_health(
    tenant: TenantConfig,
    engine: Engine,
    *,
    live: bool = True,
    check_jaggaer: bool = True,
    clock: Callable[[], float] = time.time,
    app_loader: Callable[[str], ExactApp] = load_app,
) -> TenantHealth:
    conn_id = tenant.exact.conn_id
    exact, detail = "ok", ""
    app: ExactApp | None = None
    try:
        app = app_loader(conn_id)
    except ConfigError as exc:
        exact, detail = "failed", "; ".join(exc.problems)
    except ConnectorError as exc:  # e.g. the host does not resolve right now
        exact, detail = "failed", str(exc)
    chain = TokenChain(engine, tenant.name, conn_id, app or ExactApp("", "", ""), clock=clock)
    state = chain.state()
    interrupted = chain.refresh_interrupted() if state.connected else None
    if app is not None:
        if state.status == "not connected":
            exact, detail = "not connected", f"run: mlc exact connect --tenant {tenant.name}"
        elif state.status == "broken":
            exact, detail = "broken", state.reason or "token chain broken"
        elif live:
            client = ExactClient(app, tenant.name, conn_id, engine=engine, clock=clock)
            ok, message = client.test_connection(list(tenant.exact.divisions), probe_credentials=False)
            exact, detail = ("ok" if ok else "failed"), message
            after = chain.state()
            if after.status == "broken":
                exact, detail = "broken", after.reason or message
            state = after
        else:
            detail = "tokens stored (not checked live)"
    if interrupted is not None and exact == "ok":
        detail += (
            f" (warning: a refresh was interrupted at {interrupted.isoformat(timespec='seconds')}; the chain may be "
            f"dead; if the next refresh fails, reconnect with mlc exact connect --tenant {tenant.name})"
        )
    jaggaer, jdetail = _jaggaer(tenant) if check_jaggaer else ("not checked", "")
    exact_sandbox, jaggaer_sandbox = _sandbox(conn_id), _sandbox(tenant.jaggaer.conn_id)
    return TenantHealth(
        tenant=tenant.name,
        exact_conn_id=conn_id,
        exact=exact,
        exact_detail=_with_note(detail, exact_sandbox),
        last_refreshed=state.last_refreshed,
        refresh_lapses_at=state.refresh_lapses_at,
        refresh_interrupted_at=interrupted,
        token_calls_today=state.token_calls_today,
        jaggaer_conn_id=tenant.jaggaer.conn_id,
        jaggaer=jaggaer,
        jaggaer_detail=_with_note(jdetail, jaggaer_sandbox),
        exact_sandbox=exact_sandbox,
        jaggaer_sandbox=jaggaer_sandbox,
    )


def collect(
    tenants: dict[str, TenantConfig],
    engine: Engine,
    *,
    live: bool = True,
    check_jaggaer: bool = True,
    clock: Callable[[], float] = time.time,
) -> list[TenantHealth]:
    return [
        tenant_health(t, engine, live=live, check_jaggaer=check_jaggaer, clock=clock)
        for _, t in sorted(tenants.items())
    ]
