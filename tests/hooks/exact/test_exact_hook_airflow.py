"""``ExactOnlineHook`` inside Airflow: connection, tenant lookup, test_connection messages, secrets never leak."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from exact_hook_support import CALLBACK, FAST, consent_code

from ml_connector.errors import RejectedError, TokenChainBroken
from ml_connector.http import AuditContext
from ml_connector.store.audit import DbAuditSink
from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog, TokenRecord


def conn_json(url: str, secret: str = "mlc-demo-secret", redirect: str = CALLBACK) -> str:
    return json.dumps(
        {
            "conn_type": "exact_online",
            "host": url,
            "login": "mlc-demo-client",
            "password": secret,
            "extra": {"redirect_uri": redirect, "sandbox": True},
        }
    )


@pytest.fixture
def conn_env(monkeypatch, exact_sandbox):
    monkeypatch.setenv("AIRFLOW_CONN_EXACT_DEMO", conn_json(exact_sandbox.url))
    return monkeypatch


@pytest.fixture
def hook_factory(conn_env, sqlite_engine, sim):
    from ml_connector.exact.hook import ExactOnlineHook

    def make(conn_id: str = "exact_demo", **kw: Any) -> ExactOnlineHook:
        kw.setdefault("engine", sqlite_engine)
        kw.setdefault("clock", sim)
        kw.setdefault("policy", FAST)
        kw.setdefault("on_broken", lambda exc: None)
        return ExactOnlineHook(conn_id, **kw)

    return make


def authorize(hook: Any, handle: Any) -> None:
    hook.client.tokens.exchange_code(consent_code(handle), CALLBACK)


def test_hook_identity_and_lazy_construction() -> None:
    from ml_connector.exact.hook import ExactOnlineHook

    assert (ExactOnlineHook.conn_name_attr, ExactOnlineHook.default_conn_name) == ("exact_conn_id", "exact_default")
    assert (ExactOnlineHook.conn_type, ExactOnlineHook.hook_name) == ("exact_online", "Exact Online")
    hook = ExactOnlineHook("no_such_connection")  # no connection, config or database is read at construction
    assert hook.exact_conn_id == "no_such_connection" and hook.call_count == 0


def test_tenant_comes_from_the_tenant_config(hook_factory, exact_sandbox) -> None:
    hook = hook_factory()
    assert hook.tenant == "demo"
    assert hook.app.client_id == "mlc-demo-client" and hook.app.redirect_uri == CALLBACK
    authorize(hook, exact_sandbox)
    assert hook.me()["UserName"]
    rows = list(hook.iter_collection(111111, "crm/Accounts", select=["ID", "Name"], filter="IsSupplier eq true"))
    assert rows and hook.get(111111, "system/Divisions", {"$select": "Code"})
    hook.check_divisions([111111, 222222])
    assert hook.call_count == 1 + 1 + 1 + 2  # Me, one page, one get, two division checks
    # HttpHook.run still works (bearer token, JSON, no Basic auth with the client secret)
    response = hook.run("api/v1/current/Me", data={"$select": "UserID"})
    assert response.json()["d"]["results"][0]["UserID"]


def test_connection_ok(hook_factory, exact_sandbox) -> None:
    hook = hook_factory()
    authorize(hook, exact_sandbox)
    ok, message = hook_factory().test_connection()
    assert ok, message
    assert message == (
        "tenant demo: connected as finance.admin@midlandsprecision.co.uk; divisions 111111, 222222 accessible"
    )


def test_connection_not_connected(hook_factory) -> None:
    ok, message = hook_factory().test_connection()
    assert not ok
    assert "tenant demo: not connected yet" in message and "mlc exact connect --tenant demo" in message


def test_connection_wrong_secret(hook_factory, conn_env, exact_sandbox) -> None:
    authorize(hook_factory(), exact_sandbox)
    conn_env.setenv("AIRFLOW_CONN_EXACT_DEMO", conn_json(exact_sandbox.url, secret="wrong"))
    ok, message = hook_factory().test_connection()
    assert not ok and message.startswith("client secret refused by Exact")
    with session_scope(hook_factory().engine) as s:
        assert s.query(TokenRecord).one().status == "ok"  # a probe, not a refresh: the chain is untouched


def test_connection_division_not_accessible(hook_factory, exact_sandbox) -> None:
    exact_sandbox.settings(consent_divisions=[111111])
    authorize(hook_factory(), exact_sandbox)
    ok, message = hook_factory().test_connection()
    assert not ok and message == "tenant demo: division 222222 not accessible: NoDivisionAccess: Forbidden"


def test_connection_broken_chain(hook_factory, exact_sandbox, sim) -> None:
    hook = hook_factory()
    authorize(hook, exact_sandbox)
    with session_scope(hook.engine) as s:
        stolen = s.query(TokenRecord).one().refresh_token
    sim.advance(580)
    exact_sandbox.refresh(stolen)
    ok, message = hook_factory().test_connection()
    assert not ok and "Old refresh token used." in message and "mlc exact connect --tenant demo" in message


def test_connection_unreachable(hook_factory, conn_env) -> None:
    conn_env.setenv("AIRFLOW_CONN_EXACT_DEMO", conn_json("http://127.0.0.1:9"))
    ok, message = hook_factory().test_connection()
    assert not ok and "cannot reach Exact at http://127.0.0.1:9" in message


def test_connection_missing_fields(hook_factory, conn_env) -> None:
    conn_env.setenv(
        "AIRFLOW_CONN_EXACT_DEMO", json.dumps({"conn_type": "exact_online", "host": "start.exactonline.nl"})
    )
    ok, message = hook_factory().test_connection()
    assert not ok and "no client id (login)" in message and "no client secret (password)" in message


def test_airflow_test_button_path(hook_factory, conn_env, exact_sandbox) -> None:
    """The UI tests a transient copy under a random conn_id, built through the provider registry."""
    from airflow.models.connection import Connection

    authorize(hook_factory(), exact_sandbox)
    conn_env.setenv("AIRFLOW_CONN_TMP8F3K2", conn_json(exact_sandbox.url))
    conn = Connection(conn_id="tmp8f3k2", uri=Connection(**json.loads(conn_json(exact_sandbox.url))).get_uri())
    hook = conn.get_hook()
    assert type(hook).__name__ == "ExactOnlineHook" and hook.exact_conn_id == "tmp8f3k2"
    hook._engine = hook_factory().engine
    ok, message = hook.test_connection()
    assert ok, message
    assert message.startswith("tenant demo: connected as")


def test_tokens_never_leak(hook_factory, exact_sandbox, sim, sqlite_engine, caplog, monkeypatch) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    from ml_connector.exact import tokens as tokens_mod

    issued: list[str] = []
    original = tokens_mod.TokenPair.from_response.__func__

    def spy(cls, body):
        pair = original(cls, body)
        issued.extend([pair.access_token, pair.refresh_token])
        return pair

    monkeypatch.setattr(tokens_mod.TokenPair, "from_response", classmethod(spy))
    caplog.set_level(logging.DEBUG)
    audit = DbAuditSink(sqlite_engine)
    hook = hook_factory(audit=audit)
    authorize(hook, exact_sandbox)
    texts: list[str] = [repr(hook), repr(hook.client), repr(hook.client.tokens), repr(hook.app)]
    ctx = AuditContext(tenant="demo", flow="test", action="create_supplier", source_id="S-1")
    hook.post(111111, "crm/Accounts", {"Name": "Leak Check Ltd", "IsSupplier": True}, audit_ctx=ctx)
    try:
        hook.post(111111, "crm/Accounts", {"Name": "", "IsSupplier": True}, audit_ctx=ctx)
    except RejectedError as exc:
        texts += [str(exc), repr(exc), exc.body or ""]
    sim.advance(580)
    hook.me()
    hook.get(111111, "system/Divisions", {"$select": "Code"})  # refreshes first
    assert len(issued) == 4
    assert redact(f"token {hook.get_access_token()} here") == "token *** here"  # registered with the masker
    with session_scope(sqlite_engine) as s:
        stolen = s.query(TokenRecord).one().refresh_token
    sim.advance(580)
    exact_sandbox.refresh(stolen)
    with pytest.raises(TokenChainBroken) as err:
        hook.get(111111, "system/Divisions", {"$select": "Code"})
    texts += [str(err.value), repr(err.value), err.value.reason]
    with session_scope(sqlite_engine) as s:
        audit_rows = [" ".join(map(str, vars(r).values())) for r in s.query(AuditLog)]
        token_actions = [r.action for r in s.query(AuditLog).filter(AuditLog.flow == "exact_token")]
        texts += [r.status_reason or "" for r in s.query(TokenRecord)]
    with sqlite_engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT * FROM mlc_token").all()
    texts += [str(r) for r in raw]
    haystack = "\n".join([caplog.text, *texts, *audit_rows])
    # two API writes, and every token call (consent, refresh, the refused refresh): all audited, none with a token
    assert token_actions == ["token_exchange", "token_refresh", "token_refresh"]
    assert len(audit_rows) == 2 + len(token_actions) and "/api/oauth2/token" in caplog.text  # logs saw the traffic
    for secret in issued:
        assert secret not in haystack
