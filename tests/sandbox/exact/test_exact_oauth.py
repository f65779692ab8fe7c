"""OAuth 2.0 as Exact does it: single-use 3-minute codes, 600 s access tokens, rotating refresh tokens, the
early-refresh refusal, 30-day refresh expiry, the daily token-call cap. Time moves through the sandbox clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import requests
from exact_support import MFG, SEL

from sandbox.exact.testing import ExactSandboxHandle


def me(ex: ExactSandboxHandle, access_token: str) -> requests.Response:
    return ex.session(access_token).get(f"{ex.url}/api/v1/current/Me", timeout=10)


def test_code_exchange_response_shape(exact_sandbox: ExactSandboxHandle) -> None:
    r = exact_sandbox.exchange(exact_sandbox.authorize())
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["expires_in"] == "600" and isinstance(body["expires_in"], str)
    assert body["token_type"] == "bearer"
    assert me(exact_sandbox, body["access_token"]).status_code == 200


def test_authorize_redirect_carries_state(exact_sandbox: ExactSandboxHandle) -> None:
    r = requests.get(
        f"{exact_sandbox.url}/api/oauth2/auth",
        params={
            "client_id": "mlc-demo-client",
            "redirect_uri": "http://localhost:8080/ml-connector/exact/callback",
            "response_type": "code",
            "state": "abc123",
            "force_login": "0",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302
    loc = urlparse(r.headers["location"])
    assert loc.netloc == "localhost:8080" and loc.path == "/ml-connector/exact/callback"
    assert parse_qs(loc.query)["state"] == ["abc123"]


def test_unknown_client_or_redirect_is_an_error_page(exact_sandbox: ExactSandboxHandle) -> None:
    base = {"response_type": "code", "state": "s"}
    for params in (
        {"client_id": "nope", "redirect_uri": exact_sandbox.redirect_uri},
        {"client_id": "mlc-demo-client", "redirect_uri": "http://evil.example/cb"},
    ):
        r = requests.get(f"{exact_sandbox.url}/api/oauth2/auth", params={**base, **params}, allow_redirects=False)
        assert r.status_code == 400
        assert r.headers["content-type"].startswith("text/html")


def test_paste_redirect_shows_the_code(exact_sandbox: ExactSandboxHandle) -> None:
    r = requests.get(
        f"{exact_sandbox.url}/api/oauth2/auth",
        params={"client_id": "mlc-demo-client", "redirect_uri": "urn:mlc:paste", "response_type": "code"},
        timeout=10,
    )
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    code = r.text.split('id="code"')[1].split('value="')[1].split('"')[0]
    assert exact_sandbox.exchange(code, redirect_uri="urn:mlc:paste").status_code == 200


def test_consent_page_grants_the_ticked_divisions(exact_sandbox: ExactSandboxHandle) -> None:
    exact_sandbox.settings(consent_page=True)
    params = {
        "client_id": "mlc-demo-client",
        "redirect_uri": exact_sandbox.redirect_uri,
        "response_type": "code",
        "state": "s1",
    }
    page = requests.get(f"{exact_sandbox.url}/api/oauth2/auth", params=params, timeout=10)
    assert page.status_code == 200 and 'name="division"' in page.text and "Approve" in page.text
    form = {k: v for k, v in params.items() if k != "response_type"}
    r = requests.post(
        f"{exact_sandbox.url}/api/oauth2/auth",
        data={**form, "division": [str(MFG)], "action": "approve"},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302
    q = parse_qs(urlparse(r.headers["location"]).query)
    assert q["state"] == ["s1"]
    tokens = exact_sandbox.exchange(q["code"][0]).json()
    http = exact_sandbox.session(tokens["access_token"])
    assert http.get(exact_sandbox.api_url(MFG, "financial/Journals"), params=SEL).status_code == 200
    denied = http.get(exact_sandbox.api_url(222222, "financial/Journals"), params=SEL)
    assert denied.status_code == 403 and denied.headers["Reason"] == "NoDivisionAccess"
    # Deny sends the person back with error=access_denied.
    r = requests.post(
        f"{exact_sandbox.url}/api/oauth2/auth", data={**form, "action": "deny"}, allow_redirects=False, timeout=10
    )
    assert parse_qs(urlparse(r.headers["location"]).query)["error"] == ["access_denied"]


def test_code_is_single_use(exact_sandbox: ExactSandboxHandle) -> None:
    code = exact_sandbox.authorize()
    assert exact_sandbox.exchange(code).status_code == 200
    again = exact_sandbox.exchange(code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_code_expires_after_three_minutes(exact_sandbox: ExactSandboxHandle) -> None:
    fresh = exact_sandbox.authorize()
    stale = exact_sandbox.authorize()
    exact_sandbox.advance(170)
    assert exact_sandbox.exchange(fresh).status_code == 200
    exact_sandbox.advance(15)
    r = exact_sandbox.exchange(stale)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_wrong_client_credentials(exact_sandbox: ExactSandboxHandle) -> None:
    code = exact_sandbox.authorize()
    r = requests.post(
        f"{exact_sandbox.url}/api/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "mlc-demo-client",
            "client_secret": "wrong",
            "redirect_uri": exact_sandbox.redirect_uri,
        },
        timeout=10,
    )
    assert r.status_code == 400 and r.json() == {"error": "invalid_request"}


def test_early_refresh_is_refused_with_reason_header(exact_sandbox: ExactSandboxHandle) -> None:
    tokens = exact_sandbox.connect()
    exact_sandbox.advance(540)  # "refresh every 9 minutes"
    r = exact_sandbox.refresh(tokens["refresh_token"])
    assert r.status_code == 400
    assert r.headers["Reason"] == "TooEarlyToRefreshTokens"
    assert r.json() == {"error": "access_denied", "error_description": "Rate limit exceeded: access_token not expired"}
    # The refused call did not burn the refresh token: in the window it works.
    exact_sandbox.advance(35)
    assert exact_sandbox.refresh(tokens["refresh_token"]).status_code == 200


def test_legacy_early_refresh_variant(exact_sandbox: ExactSandboxHandle) -> None:
    exact_sandbox.settings(too_early_style="legacy")
    tokens = exact_sandbox.connect()
    r = exact_sandbox.refresh(tokens["refresh_token"])
    assert r.status_code == 401 and r.json()["error_description"] == "Access Token not expired"


def test_refresh_rotates_and_old_token_kills_the_chain(exact_sandbox: ExactSandboxHandle) -> None:
    first = exact_sandbox.connect()
    exact_sandbox.advance(571)
    r = exact_sandbox.refresh(first["refresh_token"])
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["expires_in"] == "600"
    assert me(exact_sandbox, second["access_token"]).status_code == 200
    # The previous access token lives until its own expiry (default of the [guess] setting) ...
    assert me(exact_sandbox, first["access_token"]).status_code == 200
    exact_sandbox.advance(30)
    assert me(exact_sandbox, first["access_token"]).status_code == 401
    # ... and reusing the old refresh token is fatal for the whole chain.
    old = exact_sandbox.refresh(first["refresh_token"])
    assert old.status_code == 401
    assert old.json() == {"error": "unauthorized_client", "error_description": "Old refresh token used."}
    assert me(exact_sandbox, second["access_token"]).status_code == 401
    exact_sandbox.advance(600)
    dead = exact_sandbox.refresh(second["refresh_token"])
    assert dead.status_code == 401 and dead.json()["error_description"] == "Old refresh token used."


def test_refresh_after_expiry_is_fine(exact_sandbox: ExactSandboxHandle) -> None:
    tokens = exact_sandbox.connect()
    exact_sandbox.advance(3 * 3600)
    assert me(exact_sandbox, tokens["access_token"]).status_code == 401
    assert exact_sandbox.refresh(tokens["refresh_token"]).status_code == 200


def test_rotation_race_exactly_one_wins(exact_sandbox: ExactSandboxHandle) -> None:
    tokens = exact_sandbox.connect()
    exact_sandbox.advance(600)
    barrier = threading.Barrier(4)
    results: list[requests.Response] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        r = exact_sandbox.refresh(tokens["refresh_token"])
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 401, 401, 401]
    # The losers burnt the chain: the winner's fresh tokens are dead too (what bites real integrations).
    winner = next(r for r in results if r.status_code == 200).json()
    assert me(exact_sandbox, winner["access_token"]).status_code == 401


def test_refresh_token_expires_after_30_days_unused(exact_sandbox: ExactSandboxHandle) -> None:
    tokens = exact_sandbox.connect()
    exact_sandbox.advance(29 * 86400)
    r = exact_sandbox.refresh(tokens["refresh_token"])
    assert r.status_code == 200
    exact_sandbox.advance(30 * 86400 + 1)
    r = exact_sandbox.refresh(r.json()["refresh_token"])
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_request"
    assert body["error_description"].startswith("The refresh token expired at ")


def test_daily_token_call_cap(exact_sandbox: ExactSandboxHandle) -> None:
    # Start at 06:00 UTC so the 50 minutes this test moves the clock stay inside one UTC day, whenever it runs.
    today = datetime.now(UTC).date()
    exact_sandbox.clock(set=datetime(today.year, today.month, today.day, 6, tzinfo=UTC).isoformat())
    exact_sandbox.settings(token_calls_per_day=5)
    tokens = exact_sandbox.connect()  # call 1
    for _ in range(4):  # calls 2..5
        exact_sandbox.advance(600)
        r = exact_sandbox.refresh(tokens["refresh_token"])
        assert r.status_code == 200
        tokens = r.json()
    exact_sandbox.advance(600)
    r = exact_sandbox.refresh(tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "access_denied"
    exact_sandbox.settings(token_cap_status=429)
    r = exact_sandbox.refresh(tokens["refresh_token"])
    assert r.status_code == 429 and r.content == b""
    # A new UTC day, a new allowance; the refused calls did not rotate anything.
    exact_sandbox.advance(86400)
    assert exact_sandbox.refresh(tokens["refresh_token"]).status_code == 200


def test_expired_and_unknown_access_tokens_get_401(exact_sandbox: ExactSandboxHandle) -> None:
    tokens = exact_sandbox.connect()
    http = exact_sandbox.session(tokens["access_token"])
    url = exact_sandbox.api_url(MFG, "financial/Journals") + "?$select=Code"
    assert http.get(url).status_code == 200
    exact_sandbox.advance(600)
    assert http.get(url).status_code == 401
    assert exact_sandbox.session("made-up").get(url).status_code == 401
    assert requests.get(url, headers={"Accept": "application/json"}, timeout=10).status_code == 401
