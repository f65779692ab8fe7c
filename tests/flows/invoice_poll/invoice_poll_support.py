"""Test support for the invoice poll: both sandboxes in-process over real HTTP, Airflow connections as
``AIRFLOW_CONN_*`` env vars, an Exact token chain from the sandbox's auto-consent, and a ``World`` that creates
JAGGAER invoices, runs the stages the way the DAG does and looks at what arrived in Exact.

Used by ``tests/flows/invoice_poll`` and ``tests/dags/test_invoice_poll_dag.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import requests

TENANT = "demo"
EXACT_CONN = "exact_demo"
JAGGAER_CONN = "jaggaer_demo"
DIV_MFG = 111111
DIV_SVC = 222222
JAGGAER_CREDS = {
    "login": "mlc-demo",
    "password": "mlc-demo-secret",
    "identity": "MLCDEMO",
    "xml": "mlc-demo-xml-secret",
}

# Short HTTP waits for tests (read by flows.runtime.http_policy via MLC_HTTP_*).
MINUTE_S = 3.0
FAST_HTTP = {
    "MLC_HTTP_BASE_DELAY": "0.01",
    "MLC_HTTP_MAX_DELAY": "0.05",
    "MLC_HTTP_MAX_ATTEMPTS": "3",
    "MLC_HTTP_MAX_429_WAIT": "5",
    "MLC_HTTP_READ_TIMEOUT": "10",
}


def test_day() -> date:
    """A day after everything the JAGGAER seed generates (its lastUpdates lie before now), so a window on this
    day holds only the invoices a test creates."""
    return datetime.now(UTC).date() + timedelta(days=3)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def day_window(day: date) -> tuple[datetime, datetime]:
    return at(day, 0), at(day + timedelta(days=1), 0)


@dataclass
class Servers:
    exact: Any  # sandbox.exact.testing.ExactSandboxHandle
    jaggaer_url: str
    jaggaer_app: Any
    _stops: list[Any] = field(default_factory=list)


def start_servers() -> Servers:
    from sandbox.common.server import ServerThread
    from sandbox.exact.testing import ExactSandboxHandle
    from sandbox.jaggaer import create_app

    exact = ExactSandboxHandle()
    exact.start()
    app = create_app()
    server = ServerThread(app)
    url = server.start()
    servers = Servers(exact=exact, jaggaer_url=url, jaggaer_app=app)
    servers._stops = [exact.stop, server.stop]
    return servers


def stop_servers(servers: Servers) -> None:
    for stop in servers._stops:
        stop()


def connection_env(servers: Servers) -> dict[str, str]:
    from sandbox.exact.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS

    exact = {
        "conn_type": "exact_online",
        "host": servers.exact.url,
        "login": DEMO_CLIENT_ID,
        "password": DEMO_CLIENT_SECRET,
        "extra": {"redirect_uri": DEMO_REDIRECT_URIS[0], "sandbox": True},
    }
    jaggaer = {
        "conn_type": "jaggaer",
        "host": servers.jaggaer_url,
        "login": JAGGAER_CREDS["login"],
        "password": JAGGAER_CREDS["password"],
        "extra": {
            "xml_identity": JAGGAER_CREDS["identity"],
            "xml_shared_secret": JAGGAER_CREDS["xml"],
            "sandbox": True,
        },
    }
    return {
        f"AIRFLOW_CONN_{EXACT_CONN.upper()}": json.dumps(exact),
        f"AIRFLOW_CONN_{JAGGAER_CONN.upper()}": json.dumps(jaggaer),
        **FAST_HTTP,
    }


def demo_tenant(**invoice_poll: Any) -> Any:
    """The demo tenant of include/config/tenants.yaml, with ``invoice_poll`` settings replaced."""
    from ml_connector.config import load_tenants

    tenant = load_tenants()[TENANT]
    if invoice_poll:
        tenant = tenant.model_copy(update={"invoice_poll": tenant.invoice_poll.model_copy(update=invoice_poll)})
    return tenant


class World:
    """Both sandboxes reset, a token chain in ``engine``, and helpers to drive and inspect the invoice poll."""

    def __init__(self, servers: Servers, engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.servers = servers
        self.exact = servers.exact
        self.engine = engine
        self.http = requests.Session()
        self.tenant = demo_tenant()
        for key, value in connection_env(servers).items():
            monkeypatch.setenv(key, value)
        self.day = test_day()
        self.runs = 0

    # -- setup ---------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        from ml_connector.jaggaer.hook import clear_token_cache

        self.exact.reset()
        # Exact's 60 calls a minute, in a 3-second "minute": the hook paces calls over the window (interval =
        # time left / calls left), which at 60 s would make every test wait about a second per call.
        self.exact.settings(minute_window_s=MINUTE_S)
        self.jag("POST", "reset", {})
        clear_token_cache()
        self.connect()
        self.clear_calls()  # the consent's token call is not the flow's

    def connect(self) -> None:
        from ml_connector.exact.connection import load_app
        from ml_connector.exact.tokens import TokenChain

        code = self.exact.authorize()
        chain = TokenChain(self.engine, TENANT, EXACT_CONN, load_app(EXACT_CONN), session=requests.Session())
        chain.exchange_code(code, self.exact.redirect_uri)

    def close(self) -> None:
        self.http.close()

    # -- JAGGAER -------------------------------------------------------------------------------------------------
    def jag(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        r = self.http.request(
            method, f"{self.servers.jaggaer_url}/_admin/{path}", json=body, params=params or None, timeout=30
        )
        assert r.status_code < 300, f"{method} /_admin/{path}: {r.status_code} {r.text}"
        return r.json()

    def invoice(self, *, hour: int = 10, minute: int = 0, day: date | None = None, **body: Any) -> dict[str, Any]:
        """Create an approved invoice updated at ``hour`` on the test day; returns the admin summary + J1P."""
        body.setdefault("last_update", at(day or self.day, hour, minute).isoformat())
        body.setdefault("invoice_date", (day or self.day).isoformat())
        body.setdefault("business_unit", "UK-MFG")
        body.setdefault("supplier_number", "1001")
        return self.jag("POST", "invoices", body)

    def edit(self, invoice_id: int | str, **body: Any) -> dict[str, Any]:
        return self.jag("PATCH", f"invoices/{invoice_id}", body)

    def jag_calls(self) -> int:
        return int(self.jag("GET", "calls")["total"])

    # -- Exact ---------------------------------------------------------------------------------------------------
    def entries(self, division: int | None = None) -> list[dict[str, Any]]:
        return list(self.exact.purchase_entries(division))

    def entries_for(self, your_ref: str) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e.get("YourRef") == your_ref]

    def exact_calls(self) -> int:
        return int(self.exact.calls()["total"])

    def clear_calls(self) -> None:
        self.exact.clear_calls()
        self.jag("DELETE", "calls")

    # -- running -------------------------------------------------------------------------------------------------
    def ctx(
        self,
        *,
        window: tuple[datetime, datetime] | None = None,
        params: dict[str, Any] | None = None,
        run_id: str | None = None,
        tenant: Any = None,
        run_type: str = "scheduled",
    ) -> Any:
        from ml_connector.flows.invoice_poll import FLOW
        from ml_connector.flows.runtime import FlowContext

        self.runs += 1
        if window is None and not (params or {}).get("date_from") and not (params or {}).get("ids"):
            window = day_window(self.day)
        return FlowContext.for_test(
            tenant or self.tenant,
            FLOW,
            self.engine,
            run_id=run_id or f"test-run-{self.runs}",
            params=params,
            window=window,
            run_type=run_type,
            scheduled="interval",
        )

    def run(self, **kw: Any) -> dict[str, Any]:
        """extract → per division (map vendors → validate → post) → report, as the DAG runs them."""
        from ml_connector.flows import invoice_poll as ip

        ctx = self.ctx(**kw)
        results: dict[str, Any] = {"extract": ip.extract(ctx).to_dict()}
        for division in ctx.tenant.exact.divisions:
            dctx = ctx.for_division(division)
            results[f"map_vendors_{division}"] = ip.map_vendors(dctx).to_dict()
            checked = ip.validate(dctx)
            results[f"validate_{division}"] = checked
            results[f"post_{division}"] = ip.post(dctx, checked.get("master")).to_dict()
        summary = ip.report_run(ctx, results, raise_on_failure=False)
        summary["stages"] = results
        return summary

    # -- the connector's store -----------------------------------------------------------------------------------
    def ledger(self, source_id: str | int) -> Any:
        from ml_connector.flows.invoice_poll import FLOW
        from ml_connector.store import ledger
        from ml_connector.store.db import session_scope

        with session_scope(self.engine) as s:
            entry = ledger.get_entry(s, TENANT, FLOW, str(source_id))
            if entry is not None:
                s.expunge(entry)
            return entry

    def states(self) -> dict[str, int]:
        from ml_connector.flows.invoice_poll import FLOW
        from ml_connector.store import ledger
        from ml_connector.store.db import session_scope

        with session_scope(self.engine) as s:
            return {k: v for k, v in ledger.counts(s, TENANT, FLOW).items() if v}

    def audit(self, source_id: str | int) -> list[Any]:
        from ml_connector.flows.invoice_poll import FLOW
        from ml_connector.store.audit import history

        return history(self.engine, TENANT, FLOW, str(source_id))


def world_fixture(servers: Servers, engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    world = World(servers, engine, monkeypatch)
    world.reset()
    try:
        yield world
    finally:
        world.exact.clear_faults()
        world.close()
