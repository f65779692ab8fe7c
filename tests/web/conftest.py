"""Fixtures for the plugin's web pages: the real app mounted at ``/ml-connector`` (as the api-server mounts it),
Airflow's real authentication (simple auth manager, JWTs it signs, its metadata DB for revoked tokens) and a
migrated SQLite connector store.

- ``browser(role)``: a TestClient logged in like the Airflow UI (the ``_token`` cookie) as ``<role>-user``;
  ``browser(None)`` is anonymous.
- ``admin``: an admin's browser that opened the page once (CSRF cookie set); its form token is ``admin.csrf``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from fastapi import FastAPI
from fastapi.testclient import TestClient
from web_support import PAGE, csrf_of


@pytest.fixture(scope="session")
def jwt_for(airflow_db: Any) -> Callable[[str], str]:
    """A signed Airflow JWT for a user of the given simple-auth-manager role."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = init_auth_manager()

    def make(role: str) -> str:
        return manager.generate_jwt(SimpleAuthManagerUser(username=f"{role}-user", role=role))

    return make


@pytest.fixture(scope="session")
def exact_server() -> Iterator[Any]:
    """The Exact Online sandbox over real HTTP: the mappings page asks it whether a supplier exists."""
    from sandbox.exact.testing import ExactSandboxHandle

    handle = ExactSandboxHandle()
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def store(sqlite_engine: Any, monkeypatch: pytest.MonkeyPatch, exact_server: Any) -> Any:
    """The connector store, with the demo tenant connected to the Exact sandbox (connection ``exact_demo`` and a
    token chain), as after ``mlc exact connect``."""
    from ml_connector.exact.connection import load_app
    from ml_connector.exact.tokens import TokenChain

    monkeypatch.setenv("MLC_DB_URL", sqlite_engine.url.render_as_string(hide_password=False))
    exact_server.reset()
    monkeypatch.setenv(
        "AIRFLOW_CONN_EXACT_DEMO",
        json.dumps(
            {
                "conn_type": "exact_online",
                "host": exact_server.url,
                "login": exact_server.client_id,
                "password": exact_server.client_secret,
                "extra": {"redirect_uri": exact_server.redirect_uri, "sandbox": True},
            }
        ),
    )
    chain = TokenChain(sqlite_engine, "demo", "exact_demo", load_app("exact_demo"), session=requests.Session())
    chain.exchange_code(exact_server.authorize(), exact_server.redirect_uri)
    return sqlite_engine


@pytest.fixture
def server(store: Any) -> FastAPI:
    """The plugin app under ``/ml-connector`` of a parent app, like ``airflow.api_fastapi.app.init_plugins``."""
    from ml_connector.web.app import create_app

    root = FastAPI()
    root.mount("/ml-connector", create_app())
    return root


@pytest.fixture
def browser(server: FastAPI, jwt_for: Callable[[str], str]) -> Callable[[str | None], TestClient]:
    def make(role: str | None) -> TestClient:
        client = TestClient(server, base_url="http://airflow.test", follow_redirects=False)
        if role is not None:
            client.cookies.set("_token", jwt_for(role), domain="airflow.test", path="/")
        return client

    return make


@pytest.fixture
def admin(browser: Callable[[str | None], TestClient]) -> Any:
    """An admin's browser that has opened the page once (so it has the CSRF cookie) and knows its token."""
    client = browser("admin")
    page = client.get(PAGE, params={"tenant": "demo"})
    assert page.status_code == 200, page.text
    client.csrf = csrf_of(page.text)  # type: ignore[attr-defined]
    return client
