"""Fixtures for the plugin's web pages: the real app mounted at ``/ml-connector`` (as the api-server mounts it),
Airflow's real authentication (simple auth manager, JWTs it signs, its metadata DB for revoked tokens) and a
migrated SQLite connector store.

- ``browser(role)``: a TestClient logged in like the Airflow UI (the ``_token`` cookie) as ``<role>-user``;
  ``browser(None)`` is anonymous.
- ``admin``: an admin's browser that opened the page once (CSRF cookie set); its form token is ``admin.csrf``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
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


@pytest.fixture
def store(sqlite_engine: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MLC_DB_URL", sqlite_engine.url.render_as_string(hide_password=False))
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
