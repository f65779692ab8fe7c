"""The token chain in one process: window, re-read after lock, 401 rule, dead chains, budgets, lost answers.

Every test runs on SQLite and PostgreSQL (``engine`` fixture) against the sandbox over real HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from exact_hook_support import TENANT, connect, token_endpoint_statuses
from sqlalchemy import text

from ml_connector.errors import RateBudgetExhausted, TokenChainBroken, TransientError
from ml_connector.exact.tokens import classify_token_response
from ml_connector.store.db import session_scope
from ml_connector.store.models import TokenRecord


def row(engine: Any) -> TokenRecord:
    with session_scope(engine) as s:
        return s.query(TokenRecord).one()


def token_calls(handle: Any) -> int:
    return handle.calls()["by_endpoint"].get("POST /api/oauth2/token", 0)


def test_not_connected_says_how_to_connect(engine, make_client) -> None:
    client = make_client(engine)
    with pytest.raises(TokenChainBroken) as err:
        client.tokens.get_access_token()
    assert "not connected yet" in str(err.value)
    assert "mlc exact connect --tenant demo" in str(err.value)


def test_pair_is_stored_encrypted_and_reused_until_the_window(engine, make_client, exact_sandbox, morning) -> None:
    sim = morning
    client = make_client(engine)
    connect(client, exact_sandbox)
    first = client.tokens.get_access_token()
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT access_token, refresh_token FROM mlc_token")).one()
    assert first not in raw[0] and row(engine).refresh_token not in raw[1]  # ciphertext only

    for age in (300, 269, 3):  # 300 s, 569 s, 572 s after issue: never refreshed early
        sim.advance(age)
        assert client.tokens.get_access_token() == first
        assert client.get(None, "current/Me")["d"]["results"][0]["UserID"]
    assert token_calls(exact_sandbox) == 1

    sim.advance(5)  # 577 s: inside Exact's window [570, 600)
    second = client.tokens.get_access_token()
    assert second != first
    assert client.tokens.get_access_token() == second  # stored before use; not refreshed twice
    assert token_endpoint_statuses(exact_sandbox) == [200, 200]  # no TooEarly, no error of any kind
    stored = row(engine)
    assert stored.access_token == second and stored.refresh_started_at is None and stored.version == 2
    assert stored.token_calls_today == 2

    sim.advance(5000)  # long after expiry: refresh is allowed too
    assert client.tokens.get_access_token() not in (first, second)
    assert token_endpoint_statuses(exact_sandbox) == [200, 200, 200]


def test_rereads_after_locking_and_skips_when_someone_else_refreshed(engine, make_client, exact_sandbox, sim) -> None:
    a, b = make_client(engine), make_client(engine)
    connect(a, exact_sandbox)
    seen = row(engine).version
    sim.advance(580)
    fresh = a.tokens.get_access_token()  # a refreshes
    # b decided to refresh on the version it had read before a's refresh; after the lock it re-reads and skips
    with b.tokens.lock.held():
        assert b.tokens._refresh_locked(seen_version=seen, failed_token=None) == fresh
    assert b.tokens.skipped_refreshes == 1 and b.tokens.token_calls == 0
    assert token_calls(exact_sandbox) == 2


def test_a_401_refreshes_once_and_retries(engine, make_client, exact_sandbox, sim) -> None:
    # Our clock falls a minute behind Exact's after the token was issued: Exact expires the token while we still
    # think it is fresh.
    lag = [0.0]
    client = make_client(engine, clock=lambda: sim() - lag[0])
    connect(client, exact_sandbox)
    lag[0] = 60.0
    sim.advance(605)
    me = client.get(None, "current/Me")
    assert me["d"]["results"][0]["UserID"]
    assert token_endpoint_statuses(exact_sandbox) == [200, 200]
    statuses = [c["status"] for c in exact_sandbox.calls()["log"] if c["endpoint"] == "GET /api/v1/current/Me"]
    assert statuses == [401, 200]


def test_a_second_401_marks_the_chain_broken(engine, make_client, exact_sandbox, sim) -> None:
    alerts: list[TokenChainBroken] = []
    lag = [0.0]
    client = make_client(engine, clock=lambda: sim() - lag[0], on_broken=alerts.append)
    connect(client, exact_sandbox)
    lag[0] = 60.0
    sim.advance(605)
    exact_sandbox.fault(method="GET", path="current/Me", action="status", status=401, count=2)
    with pytest.raises(TokenChainBroken) as err:
        client.get(None, "current/Me")
    assert "HTTP 401 twice" in err.value.reason
    assert row(engine).status == "broken" and len(alerts) == 1


def test_401_on_a_young_token_does_not_break_the_chain(engine, make_client, exact_sandbox) -> None:
    client = make_client(engine)
    connect(client, exact_sandbox)
    exact_sandbox.fault(method="GET", path="current/Me", action="status", status=401, count=1)
    with pytest.raises(TransientError, match="too early"):
        client.get(None, "current/Me")
    assert row(engine).status == "ok" and row(engine).refresh_started_at is None
    assert client.get(None, "current/Me")  # the stored token still works


def test_refresh_token_used_elsewhere_breaks_the_chain_and_alerts(
    engine, make_client, exact_sandbox, sim, monkeypatch
) -> None:
    from ml_connector import alerts
    from ml_connector.alerts import token_failure_alert
    from ml_connector.config import load_tenants

    sent: list[str] = []
    real_log = alerts.CHANNELS["log"]
    monkeypatch.setitem(
        alerts.CHANNELS, "log", lambda t, subj, body: (sent.append(f"{subj}\n{body}"), real_log(t, subj, body))
    )
    tenant_cfg = load_tenants()[TENANT]
    client = make_client(engine, on_broken=lambda exc: token_failure_alert(tenant_cfg, exc))
    connect(client, exact_sandbox)
    sim.advance(580)
    stolen = row(engine).refresh_token
    assert exact_sandbox.refresh(stolen).status_code == 200  # another client refreshes behind our back

    with pytest.raises(TokenChainBroken) as err:
        client.tokens.get_access_token()
    assert "Old refresh token used." in err.value.reason
    assert "mlc exact connect --tenant demo" in str(err.value)
    assert getattr(err.value, "alerted", False)
    stored = row(engine)
    assert stored.status == "broken" and "Old refresh token used." in (stored.status_reason or "")
    assert len(sent) == 1
    alert = sent[0]
    assert "Exact Online must be reconnected (tenant demo)" in alert
    assert "mlc exact connect --tenant demo" in alert and "/ml-connector/exact/connect?tenant=demo" in alert

    before = token_calls(exact_sandbox)
    with pytest.raises(TokenChainBroken):
        client.tokens.get_access_token()  # a broken chain is not retried
    assert token_calls(exact_sandbox) == before


def test_expired_refresh_token_breaks_the_chain(engine, make_client, exact_sandbox, sim) -> None:
    client = make_client(engine)
    connect(client, exact_sandbox)
    sim.advance(31 * 86400)
    with pytest.raises(TokenChainBroken, match="The refresh token expired at"):
        client.tokens.get_access_token()
    assert row(engine).status == "broken"


def test_refused_client_secret_marks_broken_until_fixed(engine, make_client, exact_sandbox, sim) -> None:
    good = make_client(engine)
    connect(good, exact_sandbox)
    sim.advance(580)
    wrong = make_client(engine, secret="not-the-secret")
    with pytest.raises(TokenChainBroken) as err:
        wrong.tokens.get_access_token()
    assert "client secret refused by Exact" in err.value.reason
    assert "Airflow connection 'exact_demo'" in err.value.how_to_fix
    assert row(engine).status == "broken"
    # Exact rejected the client before looking at the refresh token: once the secret is fixed, the chain works.
    assert good.tokens.get_access_token()
    assert row(engine).status == "ok"
    assert not any(c["dead"] for c in exact_sandbox.state()["oauth"]["chains"])


def test_daily_token_calls_are_counted_and_refused_near_the_cap(engine, make_client, exact_sandbox, morning) -> None:
    sim = morning
    client = make_client(engine)
    connect(client, exact_sandbox)
    with session_scope(engine) as s:
        r = s.query(TokenRecord).one()
        r.token_calls_today = 190
        r.token_calls_day = datetime.fromtimestamp(sim(), tz=UTC).date().isoformat()
    sim.advance(580)
    with pytest.raises(RateBudgetExhausted) as err:
        client.tokens.get_access_token()
    assert err.value.reset_at is not None and err.value.reset_at.hour == 0
    assert token_calls(exact_sandbox) == 1  # nothing sent


def test_exacts_token_cap_is_a_clean_refusal(engine, make_client, exact_sandbox, morning) -> None:
    sim = morning
    client = make_client(engine)
    connect(client, exact_sandbox)
    exact_sandbox.settings(token_calls_per_day=1)
    sim.advance(580)
    with pytest.raises(RateBudgetExhausted):
        client.tokens.get_access_token()
    stored = row(engine)
    assert stored.status == "ok" and stored.refresh_started_at is None


def test_lost_answer_to_a_refresh_is_detected_on_next_use(engine, make_client, exact_sandbox, sim) -> None:
    client = make_client(engine)
    connect(client, exact_sandbox)
    sim.advance(580)
    # Exact rotates the pair, but the connection drops before we read it.
    exact_sandbox.fault(method="POST", path="oauth2/token", action="drop_after_commit", count=1)
    with pytest.raises(TransientError, match="no answer"):
        client.tokens.get_access_token()
    assert row(engine).refresh_started_at is not None
    assert client.tokens.refresh_interrupted() is not None
    with pytest.raises(TokenChainBroken) as err:
        client.tokens.get_access_token()
    assert "a refresh was interrupted at" in err.value.reason
    assert "Old refresh token used." in err.value.reason
    assert "mlc exact connect --tenant demo" in str(err.value)


def test_refresh_that_never_reached_exact_survives(engine, make_client, exact_sandbox, sim) -> None:
    client = make_client(engine)
    connect(client, exact_sandbox)
    sim.advance(580)
    exact_sandbox.fault(method="POST", path="oauth2/token", action="status", status=503, count=1)
    with pytest.raises(TransientError):
        client.tokens.get_access_token()
    assert row(engine).refresh_started_at is not None
    token = client.tokens.get_access_token()  # the stored refresh token is still good: the chain lives on
    assert token and row(engine).status == "ok" and row(engine).refresh_started_at is None
    assert client.get(None, "current/Me")


def test_maintenance_page_from_the_token_endpoint_keeps_the_chain(engine, make_client, exact_sandbox, sim) -> None:
    """Review finding: an HTTP 200 HTML page (Exact's maintenance page) at the token endpoint escaped as a raw
    JSONDecodeError. Exact did not process the refresh: a clear TransientError, no marker left behind, and the
    stored refresh token refreshes on the next attempt."""
    from ml_connector.store.audit import DbAuditSink

    client = make_client(engine, audit=DbAuditSink(engine))
    connect(client, exact_sandbox)
    before = row(engine)
    sim.advance(580)
    exact_sandbox.fault(method="POST", path="oauth2/token", action="html_maintenance", count=1)
    with pytest.raises(TransientError, match="maintenance page") as err:
        client.tokens.get_access_token()
    assert "refresh token was not used" in str(err.value)
    after = row(engine)
    assert after.status == "ok" and after.refresh_started_at is None and after.version == before.version
    assert after.refresh_token == before.refresh_token and client.tokens.refresh_interrupted() is None
    fresh = client.tokens.get_access_token()  # the chain is intact
    assert fresh != before.access_token and row(engine).status == "ok"
    assert token_endpoint_statuses(exact_sandbox) == [200, 200, 200]  # consent, maintenance page, refresh


def test_token_calls_are_audited_without_tokens(engine, make_client, exact_sandbox, sim) -> None:
    """Review finding: the refresh POSTs (which rotate the chain) were never audited."""
    from sqlalchemy import select

    from ml_connector.store.audit import DbAuditSink
    from ml_connector.store.models import AuditLog

    client = make_client(engine, audit=DbAuditSink(engine))
    connect(client, exact_sandbox)
    sim.advance(580)
    client.tokens.get_access_token()
    sim.advance(580)
    exact_sandbox.fault(method="POST", path="oauth2/token", action="html_maintenance", count=1)
    with pytest.raises(TransientError):
        client.tokens.get_access_token()
    sim.advance(1)
    exact_sandbox.fault(method="POST", path="oauth2/token", action="drop_after_commit", count=1)
    with pytest.raises(TransientError, match="no answer"):
        client.tokens.get_access_token()
    stored = row(engine)
    with session_scope(engine) as s:
        rows = list(s.scalars(select(AuditLog).order_by(AuditLog.id)))
        got = [(r.flow, r.action, r.http_status, r.outcome, r.source_ref, r.method) for r in rows]
        texts = [" ".join(str(v) for v in (r.message, r.url, r.source_ref, r.target_ref, r.target_id)) for r in rows]
    assert got == [
        ("exact_token", "token_exchange", 200, "ok", "exact_demo", "POST"),
        ("exact_token", "token_refresh", 200, "ok", "exact_demo", "POST"),
        ("exact_token", "token_refresh", 200, "maintenance", "exact_demo", "POST"),
        ("exact_token", "token_refresh", None, "ambiguous", "exact_demo", "POST"),
    ]
    for secret in (stored.access_token, stored.refresh_token, exact_sandbox.client_secret):
        assert secret and not any(secret in t for t in texts)


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body
    r.headers.update(headers or {})
    return r


@pytest.mark.parametrize(
    ("status", "body", "headers", "outcome"),
    [
        (200, b'{"access_token":"a","refresh_token":"r","expires_in":"600"}', {}, "ok"),
        (
            400,
            b'{"error":"access_denied","error_description":"Rate limit exceeded: access_token not expired"}',
            {"Reason": "TooEarlyToRefreshTokens"},
            "too_early",
        ),
        (401, b'{"error":"access_denied","error_description":"Access Token not expired"}', {}, "too_early"),
        (
            400,
            b'{"error":"access_denied","error_description":"Rate limit exceeded: too many token requests"}',
            {},
            "cap",
        ),
        (429, b"", {}, "cap"),
        (400, b'{"error":"invalid_request"}', {}, "credentials"),
        (401, b'{"error":"invalid_client"}', {}, "credentials"),
        (401, b'{"error":"unauthorized_client","error_description":"Old refresh token used."}', {}, "dead"),
        (400, b'{"error":"invalid_grant"}', {}, "dead"),
        (400, b'{"error":"invalid_request","error_description":"The refresh token expired at 2026-01-01"}', {}, "dead"),
        (503, b"", {}, "unknown"),
    ],
)
def test_token_answers_are_classified(status: int, body: bytes, headers: dict[str, str], outcome: str) -> None:
    assert classify_token_response(_response(status, body, headers))[0] == outcome


def test_token_pair_repr_and_expires_in_string() -> None:
    from ml_connector.exact.tokens import ExactApp, TokenPair

    pair = TokenPair.from_response({"access_token": "SECRET-A", "refresh_token": "SECRET-R", "expires_in": "600"})
    assert pair.expires_in == 600.0
    assert "SECRET" not in repr(pair)
    assert "hush" not in repr(ExactApp("https://x", "id", "hush"))
