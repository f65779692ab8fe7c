"""JAGGAER hook tests: one in-process JAGGAER sandbox (real HTTP on loopback) for the whole session, reset before
every test that uses it, and Airflow connections (``AIRFLOW_CONN_*`` env vars) pointing at it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

CREDS = {
    "demo": {
        "login": "mlc-demo",
        "password": "mlc-demo-secret",
        "identity": "MLCDEMO",
        "secret": "mlc-demo-xml-secret",
    },
    "acme": {"login": "acme-client", "password": "acme-secret", "identity": "ACME", "secret": "acme-xml-secret"},
}


@pytest.fixture(scope="session")
def jaggaer_server() -> Iterator[str]:
    from sandbox.common.server import ServerThread
    from sandbox.jaggaer import create_app

    server = ServerThread(create_app())
    url = server.start()
    yield url
    server.stop()


@dataclass
class FakeClock:
    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sandbox:
    """Admin handle on the running sandbox plus a factory for hooks pointed at it."""

    url: str
    monkeypatch: pytest.MonkeyPatch
    http: requests.Session = field(default_factory=requests.Session)
    sleeps: list[float] = field(default_factory=list)
    clock: FakeClock = field(default_factory=FakeClock)

    # -- admin ---------------------------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, f"{self.url}/_admin/{path}", json=body, timeout=10)
        assert response.status_code < 300, f"{method} /_admin/{path}: {response.status_code} {response.text}"
        return response.json()

    def settings(self, **changes: Any) -> dict[str, Any]:
        return self.admin("POST", "settings", changes)

    def fault(self, **rule: Any) -> None:
        self.admin("POST", "faults", rule)

    def calls(self) -> dict[str, Any]:
        return self.admin("GET", "calls")

    def count(self, endpoint: str, status: int | None = None) -> int:
        snap = self.calls()
        if status is None:
            return snap["by_endpoint"].get(endpoint, 0)
        return sum(1 for c in snap["log"] if c["endpoint"] == endpoint and c["status"] == status)

    def clear_calls(self) -> None:
        self.admin("DELETE", "calls")

    def advance_clock(self, seconds: float) -> None:
        self.admin("POST", "clock", {"advance": seconds})

    def state(self, tenant: str = "demo") -> dict[str, Any]:
        return self.admin("GET", "state")["tenants"][tenant]

    def purchase_order(self, po_number: str, tenant: str = "demo") -> dict[str, Any] | None:
        response = self.http.get(f"{self.url}/_admin/purchase-orders/{po_number}", params={"tenant": tenant})
        return None if response.status_code == 404 else response.json()

    def suppliers(self, tenant: str = "demo") -> list[dict[str, Any]]:
        return self.admin("GET", f"suppliers?tenant={tenant}")

    # -- connections and hooks -----------------------------------------------------------------------------
    def connect(self, conn_id: str, tenant: str = "demo", **overrides: Any) -> str:
        creds = CREDS[tenant]
        extra: dict[str, Any] = {
            "token_url": f"{self.url}/auth/realms/J1p-integrations/protocol/openid-connect/token",
            "xml_url": f"{self.url}/apps/Router",
            "xml_identity": creds["identity"],
            "xml_shared_secret": creds["secret"],
            "sandbox": True,
        }
        conn: dict[str, Any] = {
            "conn_type": "jaggaer",
            "host": self.url,
            "login": creds["login"],
            "password": creds["password"],
        }
        for key, value in overrides.items():
            if key in ("host", "login", "password"):
                conn[key] = value
            elif value is None:
                extra.pop(key, None)
            else:
                extra[key] = value
        conn["extra"] = extra
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    def hook(self, tenant: str = "demo", conn_id: str | None = None, conn: dict[str, Any] | None = None, **kw: Any):
        from ml_connector.http import RetryPolicy
        from ml_connector.jaggaer.hook import JaggaerHook

        conn_id = self.connect(conn_id or f"jaggaer_test_{tenant}", tenant, **(conn or {}))
        kw.setdefault("sleep", self.sleeps.append)
        kw.setdefault("clock", self.clock)
        kw.setdefault("policy", RetryPolicy(read_timeout=10.0, max_429_wait=5.0))
        return JaggaerHook(conn_id, tenant, **kw)


@pytest.fixture
def jag(jaggaer_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """The sandbox, reset (default settings, no faults, fresh seed, no tokens), and an empty token cache."""
    from ml_connector.jaggaer.hook import clear_token_cache

    sandbox = Sandbox(jaggaer_server, monkeypatch)
    sandbox.admin("POST", "reset")
    clear_token_cache()
    yield sandbox
    clear_token_cache()
    sandbox.http.close()
