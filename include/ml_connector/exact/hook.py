"""``ExactOnlineHook``: the Airflow face of the Exact Online client.

Connection (type ``exact_online``): host = region host (``https://start.exactonline.co.uk``), login = client id,
password = client secret, extra ``redirect_uri``. The rotating tokens are *not* in the connection (a task cannot
update a connection): they live encrypted in the connector database, one chain per tenant (see ``tokens.py``).

Nothing is read at construction time (DAG files build hooks at parse time); the connection, the tenant config and
the database are touched on first use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook
from sqlalchemy import Engine

from ml_connector import http
from ml_connector.errors import ConfigError, ConnectorError, TokenChainBroken
from ml_connector.exact.client import USER_AGENT, ExactClient
from ml_connector.exact.connection import app_from_connection
from ml_connector.exact.tokens import CREDENTIALS_REFUSED, ExactApp

log = logging.getLogger(__name__)


class ExactOnlineHook(HttpHook):
    """Exact Online REST API for one tenant. See ``ml_connector.exact.client`` for the call semantics."""

    conn_name_attr = "exact_conn_id"
    default_conn_name = "exact_default"
    conn_type = "exact_online"
    hook_name = "Exact Online"

    def __init__(
        self,
        exact_conn_id: str = default_conn_name,
        tenant: str | None = None,
        *,
        engine: Engine | None = None,
        audit: http.AuditSink | None = None,
        clock: Callable[[], float] = time.time,
        policy: http.RetryPolicy = http.RetryPolicy(),
        sleep: Callable[[float], None] | None = None,
        on_broken: Callable[[TokenChainBroken], None] | None = None,
    ) -> None:
        super().__init__(method="GET", http_conn_id=exact_conn_id)
        self.exact_conn_id = exact_conn_id
        self._tenant = tenant
        self._engine = engine
        self._audit = audit
        self.clock = clock
        self.policy = policy
        self._sleep = sleep
        self._on_broken = on_broken

    # -- lazily resolved pieces ----------------------------------------------------------------------------------
    @cached_property
    def app(self) -> ExactApp:
        return app_from_connection(self.get_connection(self.exact_conn_id))

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from ml_connector.store.db import get_engine

            self._engine = get_engine()
        return self._engine

    @cached_property
    def tenant(self) -> str:
        if self._tenant:
            return self._tenant
        matches = [name for name, _ in self._tenants_for_connection()]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ConfigError(f"no tenant in the tenant config uses the Exact connection {self.exact_conn_id!r}")
        raise ConfigError(
            f"tenants {', '.join(sorted(matches))} share the Exact connection {self.exact_conn_id!r}: pass tenant="
        )

    def _tenants_for_connection(self) -> list[tuple[str, str]]:
        """``(tenant, token-store conn_id)`` of every tenant using this connection.

        Airflow's *Test* button tests a transient copy under a random conn_id; such a copy is matched to the
        tenants whose own connection has the same host and client id (their tokens are stored under their id).
        """
        from ml_connector.config import load_tenants

        tenants = load_tenants()
        direct = [(name, self.exact_conn_id) for name, t in tenants.items() if t.exact.conn_id == self.exact_conn_id]
        if direct:
            return direct
        out = []
        for name, t in tenants.items():
            try:
                other = app_from_connection(self.get_connection(t.exact.conn_id))
            except Exception:
                continue
            if other.base_url == self.app.base_url and other.client_id == self.app.client_id:
                out.append((name, t.exact.conn_id))
        return out

    def _store_conn_id(self, tenant: str) -> str:
        for name, conn_id in self._tenants_for_connection():
            if name == tenant:
                return conn_id
        return self.exact_conn_id

    def _default_on_broken(self, exc: TokenChainBroken) -> None:
        from ml_connector.alerts import token_failure_alert
        from ml_connector.config import load_tenants

        token_failure_alert(load_tenants()[exc.tenant], exc)

    def _make_client(self, tenant: str, conn_id: str) -> ExactClient:
        return ExactClient(
            self.app,
            tenant,
            conn_id,
            engine=self.engine,
            audit=self._audit,
            clock=self.clock,
            sleep=self._sleep,
            policy=self.policy,
            on_broken=self._on_broken or self._default_on_broken,
        )

    @cached_property
    def client(self) -> ExactClient:
        conn_id = self.exact_conn_id if self._tenant else self._store_conn_id(self.tenant)
        return self._make_client(self.tenant, conn_id)

    # -- HttpHook compatibility ----------------------------------------------------------------------------------
    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None) -> Any:
        """A ``requests.Session`` for ad-hoc calls (``HttpHook.run``): bearer token, JSON, no Basic auth."""
        session = requests.Session()
        # HttpHook.url_from_endpoint reads the connection only while base_url is empty
        self.base_url = self.app.base_url
        session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        session.headers["Authorization"] = f"Bearer {self.client.tokens.get_access_token()}"
        if headers:
            session.headers.update(headers)
        return session

    # -- the API the flows use -------------------------------------------------------------------------------------
    @property
    def call_count(self) -> int:
        """API requests made by this hook (retries included, token calls not)."""
        return self.client.call_count if "client" in self.__dict__ else 0

    def me(self) -> dict[str, Any]:
        return self.client.me()

    def check_divisions(self, divisions: list[int]) -> None:
        self.client.check_divisions(divisions)

    def iter_collection(
        self,
        division: int,
        path: str,
        *,
        select: list[str] | str,
        filter: str | None = None,
        expand: str | None = None,
        top: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        return self.client.iter_collection(
            division, path, select=select, filter=filter, expand=expand, top=top, params=params
        )

    def iter_expanded(
        self, entity: dict[str, Any], nav: str, *, select: list[str] | str | None = None
    ) -> Iterator[dict[str, Any]]:
        return self.client.iter_expanded(entity, nav, select=select)

    def get(self, division: int | None, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.client.get(division, path, params)

    def post(self, division: int, path: str, body: dict[str, Any], *, audit_ctx: http.AuditContext) -> dict[str, Any]:
        return self.client.post(division, path, body, audit_ctx=audit_ctx)

    def get_access_token(self) -> str:
        return self.client.tokens.get_access_token()

    # -- Airflow's "Test" button -----------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Credentials, then per tenant using this connection: token, ``current/Me``, each configured division."""
        try:
            app = self.app
        except ConfigError as exc:
            return False, "; ".join(exc.problems)
        except Exception as exc:
            return False, f"cannot read connection {self.exact_conn_id}: {exc}"
        try:
            from ml_connector.config import load_tenants

            tenants = load_tenants()
            pairs = (
                [(self._tenant, self._store_conn_id(self._tenant))] if self._tenant else self._tenants_for_connection()
            )
            clients = [self._make_client(name, conn_id) for name, conn_id in pairs]
        except ConfigError as exc:
            return False, "; ".join(exc.problems)
        if not clients:
            probe = ExactClient(app, "-", self.exact_conn_id, engine=self.engine, clock=self.clock, policy=self.policy)
            try:
                ok = probe.check_client_credentials()
            except ConnectorError as exc:
                return False, f"cannot reach {app.host}: {exc}"
            if not ok:
                return False, CREDENTIALS_REFUSED
            return True, "client id and secret accepted by Exact; no tenant in the tenant config uses this connection"
        messages = []
        healthy = True
        for client in clients:
            ok, message = client.test_connection(list(tenants[client.tenant].exact.divisions))
            healthy = healthy and ok
            messages.append(message)
        return healthy, " | ".join(messages)
