"""The plugin's FastAPI app: consent redirect with state, callback checks, status page, authentication."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from exact_hook_support import CALLBACK, follow_consent, query_of
from fastapi.testclient import TestClient

from ml_connector.store.db import session_scope
from ml_connector.store.models import OAuthState, TokenRecord

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def env(monkeypatch, sqlite_engine, exact_sandbox):
    monkeypatch.setenv("MLC_DB_URL", sqlite_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv(
        "AIRFLOW_CONN_EXACT_DEMO",
        json.dumps(
            {
                "conn_type": "exact_online",
                "host": exact_sandbox.url,
                "login": "mlc-demo-client",
                "password": "mlc-demo-secret",
                "extra": {"redirect_uri": CALLBACK, "sandbox": True},
            }
        ),
    )
    return sqlite_engine


@pytest.fixture
def web(env) -> TestClient:
    from ml_connector.web.app import create_app

    app = create_app()
    for guard in app.state.guards.values():
        app.dependency_overrides[guard] = lambda: None  # an authorised Airflow user
    return TestClient(app, follow_redirects=False)


def test_routes_need_an_airflow_user(env) -> None:
    from ml_connector.web.app import create_app

    anonymous = TestClient(create_app(), follow_redirects=False)
    for path in ("/exact/connect?tenant=demo", "/exact/callback?code=x&state=y", "/ui/status"):
        assert anonymous.get(path).status_code == 401, path


def test_connect_redirects_to_consent_and_the_callback_stores_tokens(web, env, exact_sandbox) -> None:
    response = web.get("/exact/connect", params={"tenant": "demo"})
    assert response.status_code == 302
    consent = response.headers["location"]
    assert consent.startswith(f"{exact_sandbox.url}/api/oauth2/auth?")
    params = query_of(consent)
    assert params["redirect_uri"] == CALLBACK and len(params["state"]) >= 32
    with session_scope(env) as s:
        [pending] = s.query(OAuthState).all()
        assert pending.tenant == "demo" and pending.state != params["state"]  # only a hash is stored

    landed = follow_consent(consent)
    assert landed.startswith(CALLBACK)
    page = web.get("/exact/callback?" + urlsplit(landed).query)
    assert page.status_code == 200, page.text
    assert "Exact Online connected" in page.text and "Fiona Adams" in page.text
    assert page.text.count("accessible") == 2
    with session_scope(env) as s:
        token = s.query(TokenRecord).one()
        assert token.tenant == "demo" and token.conn_id == "exact_demo" and token.status == "ok"
        assert s.query(OAuthState).count() == 0

    replay = web.get("/exact/callback?" + urlsplit(landed).query)
    assert replay.status_code == 400 and "already used" in replay.text

    status = web.get("/ui/status")
    assert status.status_code == 200 and "demo" in status.text and "exact_demo" in status.text
    assert "Connect to Exact Online" not in status.text
    live = web.get("/ui/status", params={"check": 1})
    assert live.status_code == 200 and "connected as finance.admin@midlandsprecision.co.uk" in live.text


def test_callback_with_a_wrong_state_is_refused(web, env, exact_sandbox) -> None:
    consent = web.get("/exact/connect", params={"tenant": "demo"}).headers["location"]
    landed = follow_consent(consent)
    code = query_of(landed)["code"]
    page = web.get("/exact/callback", params={"code": code, "state": "forged-state"})
    assert page.status_code == 400 and "unknown or already used" in page.text
    assert web.get("/exact/callback", params={"code": code}).status_code == 400
    with session_scope(env) as s:
        assert s.query(TokenRecord).count() == 0
    denied = web.get("/exact/callback", params={"error": "access_denied", "state": query_of(landed)["state"]})
    assert denied.status_code == 400 and "did not give consent" in denied.text


def test_unknown_tenant_and_status_without_tokens(web) -> None:
    assert web.get("/exact/connect", params={"tenant": "nobody"}).status_code == 404
    page = web.get("/ui/status")
    assert page.status_code == 200 and "not connected" in page.text and "Connect to Exact Online" in page.text


def test_plugin_is_thin_and_builds_without_io(env, monkeypatch) -> None:
    monkeypatch.setenv("MLC_DB_URL", "sqlite:////nonexistent-dir/never-opened.db")
    spec = importlib.util.spec_from_file_location(
        "ml_connector_plugin_under_test", REPO / "plugins" / "ml_connector_plugin.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    plugin = module.MlConnectorPlugin
    [app] = plugin.fastapi_apps
    assert app["url_prefix"] == "/ml-connector" and app["name"] == "ml-connector"
    view, *_others = plugin.external_views  # the mappings page and the console: tests/web
    assert view["href"] == "ml-connector/ui/status" and view["destination"] == "nav"
    paths = {route.path for route in app["app"].routes}
    assert {"/exact/connect", "/exact/callback", "/ui/status"} <= paths
