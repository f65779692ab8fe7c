"""OAuth 2.0 as Exact does it: single-use 3-minute codes, 600 s access tokens, rotating refresh tokens, the
early-refresh refusal, 30-day refresh expiry, the daily token-call cap. Time moves through the sandbox clock."""

from __future__ import annotations

import base64
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


# ---- client authentication: form body or HTTP Basic (RFC 6749 §2.3.1) -------------------------------------------


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")
    return {"Authorization": f"Basic {raw}"}


def _token_call(
    ex: ExactSandboxHandle, form: dict[str, str], headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.post(f"{ex.url}/api/oauth2/token", data=form, headers=headers, timeout=10)


def test_basic_client_authentication_for_code_exchange_and_refresh(exact_sandbox: ExactSandboxHandle) -> None:
    basic = _basic(exact_sandbox.client_id, exact_sandbox.client_secret)
    form = {"grant_type": "authorization_code", "code": exact_sandbox.authorize()}
    form["redirect_uri"] = exact_sandbox.redirect_uri
    r = _token_call(exact_sandbox, form, basic)  # no client_id / client_secret in the body
    assert r.status_code == 200, r.text
    first = r.json()
    assert set(first) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert me(exact_sandbox, first["access_token"]).status_code == 200
    # The refresh rules are those of body credentials: too early is refused, in the window it rotates ...
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    early = _token_call(exact_sandbox, refresh, basic)
    assert early.status_code == 400 and early.headers["Reason"] == "TooEarlyToRefreshTokens"
    exact_sandbox.advance(571)
    r = _token_call(exact_sandbox, refresh, basic)
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert me(exact_sandbox, second["access_token"]).status_code == 200
    # ... and the superseded refresh token is still fatal.
    old = _token_call(exact_sandbox, refresh, basic)
    assert old.status_code == 401 and old.json()["error_description"] == "Old refresh token used."


def test_basic_credentials_are_form_urlencoded_first(exact_sandbox: ExactSandboxHandle) -> None:
    # RFC 6749 §2.3.1: id and secret are application/x-www-form-urlencoded before base64; the server decodes them.
    encoded_secret = exact_sandbox.client_secret.replace("-", "%2D")
    assert encoded_secret != exact_sandbox.client_secret
    form = {"grant_type": "authorization_code", "code": exact_sandbox.authorize()}
    form["redirect_uri"] = exact_sandbox.redirect_uri
    r = _token_call(exact_sandbox, form, _basic(exact_sandbox.client_id, encoded_secret))
    assert r.status_code == 200, r.text


def test_basic_with_wrong_secret_or_unknown_client_is_refused_as_exact_does(exact_sandbox: ExactSandboxHandle) -> None:
    code = exact_sandbox.authorize()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": exact_sandbox.redirect_uri}
    for client_id, secret in ((exact_sandbox.client_id, "wrong"), ("nobody", exact_sandbox.client_secret)):
        r = _token_call(exact_sandbox, form, _basic(client_id, secret))
        assert r.status_code == 400 and r.json() == {"error": "invalid_request"}
    # The refused calls did not use the code up.
    assert _token_call(exact_sandbox, form, _basic(exact_sandbox.client_id, exact_sandbox.client_secret)).ok


def test_malformed_basic_header_is_invalid_request(exact_sandbox: ExactSandboxHandle) -> None:
    form = {"grant_type": "authorization_code", "code": exact_sandbox.authorize()}
    form["redirect_uri"] = exact_sandbox.redirect_uri
    no_colon = base64.b64encode(exact_sandbox.client_id.encode()).decode("ascii")
    for header in ("Basic !!!not-base64!!!", f"Basic {no_colon}"):
        r = _token_call(exact_sandbox, form, {"Authorization": header})
        assert r.status_code == 400
        body = r.json()
        assert body["error"] == "invalid_request"
        assert "Basic authentication" in body["error_description"]


def test_basic_and_body_credentials_that_disagree_are_refused(exact_sandbox: ExactSandboxHandle) -> None:
    ex = exact_sandbox
    tokens = ex.connect()
    ex.advance(571)
    code = ex.authorize()
    good = _basic(ex.client_id, ex.client_secret)
    grants = (
        {"grant_type": "authorization_code", "code": code, "redirect_uri": ex.redirect_uri},
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    for grant in grants:
        for body_creds in ({"client_secret": "wrong"}, {"client_id": "other-app"}):
            # Basic is right, the body names something else (and the reverse: body right, Basic wrong).
            for form, headers in (
                ({**grant, **body_creds}, good),
                ({**grant, "client_id": ex.client_id, "client_secret": ex.client_secret}, _basic("other-app", "x")),
            ):
                r = _token_call(ex, form, headers)
                assert r.status_code == 400, r.text
                body = r.json()
                assert body["error"] == "invalid_request"
                assert "differ" in body["error_description"]
    # Nothing was consumed by the refused calls: the code and the refresh token still work, and the same
    # credentials sent both ways are accepted.
    both = {"client_id": ex.client_id, "client_secret": ex.client_secret}
    assert _token_call(ex, {**grants[0], **both}, good).status_code == 200
    assert _token_call(ex, {**grants[1], **both}, good).status_code == 200


def test_non_basic_authorization_header_leaves_body_credentials_in_charge(exact_sandbox: ExactSandboxHandle) -> None:
    # A client that sends its (unrelated) bearer token along with body credentials is not refused for it.
    form = {
        "grant_type": "authorization_code",
        "code": exact_sandbox.authorize(),
        "redirect_uri": exact_sandbox.redirect_uri,
        "client_id": exact_sandbox.client_id,
        "client_secret": exact_sandbox.client_secret,
    }
    assert _token_call(exact_sandbox, form, {"Authorization": "Bearer something"}).status_code == 200
