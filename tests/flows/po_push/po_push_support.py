"""Shared by the PO push flow tests and DAG tests (imported by name; the DAG tests add this directory to sys.path).

Both sandboxes run in this process over real HTTP on loopback, started once per test process. A ``World`` is one
test's view: both sandboxes reset (Exact: demo company without purchase orders; JAGGAER: customers without data),
Airflow connections pointing at them (``AIRFLOW_CONN_*`` JSON env vars), a migrated connector store holding an Exact
token chain obtained through the sandbox's auto-consent, and helpers to create orders and read what JAGGAER got.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from ml_connector.config.tenant import TenantConfig
from ml_connector.flows.runtime import FlowContext, Outcomes, RunParams
from sandbox.exact.settings import DEMO_REDIRECT_URIS
from sandbox.exact.testing import ExactSandboxHandle

TENANT = "demo"
EXACT_CONN = "exact_demo"
JAGGAER_CONN = "jaggaer_demo"
CALLBACK = DEMO_REDIRECT_URIS[0]
DIV = 111111
DIV2 = 222222
XML_SECRET = "mlc-demo-xml-secret"

# Short waits everywhere: HTTP retries/429 waits (flows.runtime.http_policy) and Airflow task retries.
FAST_ENV = {
    "MLC_HTTP_MAX_ATTEMPTS": "3",
    "MLC_HTTP_BASE_DELAY": "0.01",
    "MLC_HTTP_MAX_DELAY": "0.05",
    "MLC_HTTP_MAX_429_WAIT": "0.2",
    "MLC_HTTP_READ_TIMEOUT": "20",
    "MLC_TASK_RETRIES": "1",
    "MLC_TASK_RETRY_DELAY": "0.1",
}


@dataclass
class Servers:
    exact: ExactSandboxHandle
    jaggaer_url: str
    jaggaer_server: Any
    http: requests.Session = field(default_factory=requests.Session)


_servers: Servers | None = None
_lock = threading.Lock()


def servers() -> Servers:
    """Both sandboxes, started once per process (daemon threads: they end with the process)."""
    global _servers
    with _lock:
        if _servers is None:
            from sandbox.common.server import ServerThread
            from sandbox.jaggaer import create_app

            exact = ExactSandboxHandle()
            exact.start()
            jaggaer = ServerThread(create_app())
            _servers = Servers(exact=exact, jaggaer_url=jaggaer.start(), jaggaer_server=jaggaer)
        return _servers


def connection_env(s: Servers) -> dict[str, str]:
    return {
        f"AIRFLOW_CONN_{EXACT_CONN.upper()}": json.dumps(
            {
                "conn_type": "exact_online",
                "host": s.exact.url,
                "login": s.exact.client_id,
                "password": s.exact.client_secret,
                "extra": {"redirect_uri": CALLBACK, "sandbox": True},
            }
        ),
        f"AIRFLOW_CONN_{JAGGAER_CONN.upper()}": json.dumps(
            {
                "conn_type": "jaggaer",
                "host": s.jaggaer_url,
                "login": "mlc-demo",
                "password": "mlc-demo-secret",
                "extra": {"xml_identity": "MLCDEMO", "xml_shared_secret": XML_SECRET, "sandbox": True},
            }
        ),
    }


def line(item: str = "RM-S275-10", qty: float = 10, price: float = 1.25, cc: str = "CC100", **kw: Any) -> dict:
    return {"ItemCode": item, "QuantityInPurchaseUnits": qty, "UnitPrice": price, "CostCenter": cc, **kw}


@dataclass
class World:
    servers: Servers
    engine: Any
    tenant: TenantConfig
    monkeypatch: pytest.MonkeyPatch

    # -- setup -----------------------------------------------------------------------------------------------
    def reset(self) -> World:
        from ml_connector.exact.tokens import ExactApp, TokenChain
        from ml_connector.jaggaer.hook import clear_token_cache

        ex = self.servers.exact
        ex.reset(empty=True)
        # No pacing in tests (the pacing itself is the Exact hook's tests' business); 429s come from faults.
        ex.settings(rate_limits_enabled=False)
        self.jaggaer_admin("POST", "reset", {"empty": True})
        clear_token_cache()
        app = ExactApp(ex.url, ex.client_id, ex.client_secret, CALLBACK)
        TokenChain(self.engine, TENANT, EXACT_CONN, app).exchange_code(ex.authorize(redirect_uri=CALLBACK), CALLBACK)
        self.clear_calls()
        return self

    # -- Exact -------------------------------------------------------------------------------------------------
    def create_po(self, supplier: str = "1001", lines: list[dict] | None = None, division: int = DIV, **kw: Any):
        body = {"SupplierCode": supplier, "PurchaseOrderLines": lines or [line()], **kw}
        return self.servers.exact.create_po(division, **body)

    def modify_po(self, po: dict, **body: Any) -> dict:
        return self.servers.exact.modify_po(po["PurchaseOrderID"], **body)

    def exact_calls(self) -> dict[str, int]:
        return self.servers.exact.calls()["by_endpoint"]

    # -- JAGGAER ---------------------------------------------------------------------------------------------
    def jaggaer_admin(self, method: str, path: str, body: Any = None) -> Any:
        r = self.servers.http.request(method, f"{self.servers.jaggaer_url}/_admin/{path}", json=body, timeout=30)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text[:300]}"
        return r.json()

    def jaggaer_state(self) -> dict[str, Any]:
        return self.jaggaer_admin("GET", "state")["tenants"]["demo"]

    def jaggaer_pos(self) -> dict[str, dict[str, Any]]:
        return self.jaggaer_state()["purchase_orders"]

    def jaggaer_calls(self) -> dict[str, int]:
        return self.jaggaer_admin("GET", "calls")["by_endpoint"]

    def jaggaer_fault(self, **rule: Any) -> None:
        self.jaggaer_admin("POST", "faults", rule)

    def created_suppliers(self) -> list[str]:
        return [s["erpNumber"] for s in self.jaggaer_state()["suppliers_received"] if s.get("action") == "created"]

    def clear_calls(self) -> None:
        self.servers.exact.clear_calls()
        self.jaggaer_admin("DELETE", "calls")

    # -- flow ------------------------------------------------------------------------------------------------
    def ctx(self, division: int = DIV, *, run_id: str = "run-1", tenant: TenantConfig | None = None, **params: Any):
        return FlowContext.for_test(
            tenant or self.tenant,
            "po_push",
            self.engine,
            run_id=run_id,
            params=RunParams.from_mapping(params),
            division=division,
        )

    def run(self, division: int = DIV, *, stages: tuple[str, ...] | None = None, **kw: Any) -> Outcomes:
        """Run the stages (default: all four) for one division; the merged counts."""
        from ml_connector.flows import po_push

        ctx = self.ctx(division, **kw)
        total = Outcomes()
        for stage in stages or po_push.STAGES:
            total.merge(getattr(po_push, stage)(ctx))
        return total

    def ledger(self) -> dict[str, Any]:
        """``{"<division>-<order number>": LedgerEntry}`` of the po_push flow (order numbers repeat across
        divisions; the key is the demo tenant's PONumber)."""
        from sqlalchemy import select

        from ml_connector.store.db import session_scope
        from ml_connector.store.models import LedgerEntry

        with session_scope(self.engine) as s:
            rows = list(s.scalars(select(LedgerEntry).where(LedgerEntry.flow == "po_push")))
            for r in rows:
                s.expunge(r)
        return {f"{r.division}-{r.source_ref}": r for r in rows}


def make_world(engine: Any, monkeypatch: pytest.MonkeyPatch) -> World:
    from ml_connector.flows.runtime import load_tenant

    s = servers()
    for key, value in {**connection_env(s), **FAST_ENV}.items():
        monkeypatch.setenv(key, value)
    return World(servers=s, engine=engine, tenant=load_tenant(TENANT), monkeypatch=monkeypatch).reset()


def po_number(po: dict, division: int = DIV) -> str:
    return f"{division}-{po['OrderNumber']}"
