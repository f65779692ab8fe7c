"""Keycloak-style client-credentials token endpoint and bearer-token checks on the J1P API."""

from __future__ import annotations

import base64
import json

from jaggaer_support import ACME, DEMO, INVOICES, PROFILES, TOKEN_PATH, JaggaerHandle


def test_token_ok_has_keycloak_shape(jaggaer_sandbox: JaggaerHandle) -> None:
    r = jaggaer_sandbox.token_response(DEMO["client_id"], DEMO["client_secret"])
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {
        "access_token",
        "expires_in",
        "refresh_expires_in",
        "token_type",
        "not-before-policy",
        "scope",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_expires_in"] == 0
    # JWT-shaped, as Keycloak's are; the client must not need to parse it
    assert body["access_token"].count(".") == 2
    assert jaggaer_sandbox.get(INVOICES, body["access_token"]).status_code == 200


def test_token_basic_auth_credentials(jaggaer_sandbox: JaggaerHandle) -> None:
    basic = base64.b64encode(f"{DEMO['client_id']}:{DEMO['client_secret']}".encode()).decode()
    r = jaggaer_sandbox.http.post(
        jaggaer_sandbox.url + TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def test_bad_secret_gives_keycloak_401(jaggaer_sandbox: JaggaerHandle) -> None:
    r = jaggaer_sandbox.token_response(DEMO["client_id"], "wrong")
    assert r.status_code == 401
    assert r.json() == {
        "error": "invalid_client",
        "error_description": "Invalid client or Invalid client credentials",
    }


def test_unknown_client_gives_401(jaggaer_sandbox: JaggaerHandle) -> None:
    r = jaggaer_sandbox.token_response("nobody", "x")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def test_grant_type_checked(jaggaer_sandbox: JaggaerHandle) -> None:
    r = jaggaer_sandbox.http.post(
        jaggaer_sandbox.url + TOKEN_PATH,
        data={"client_id": DEMO["client_id"], "client_secret": DEMO["client_secret"]},
        timeout=10,
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    r = jaggaer_sandbox.token_response(DEMO["client_id"], DEMO["client_secret"], grant_type="password")
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"


def test_missing_and_garbage_tokens_are_401_with_www_authenticate(jaggaer_sandbox: JaggaerHandle) -> None:
    for token in (None, "not-a-token"):
        r = jaggaer_sandbox.get(INVOICES, token)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json()["error"] == "invalid_token"
    r = jaggaer_sandbox.http.get(jaggaer_sandbox.url + INVOICES, headers={"Authorization": "Basic abc"}, timeout=10)
    assert r.status_code == 401


def test_token_expires_on_the_sandbox_clock(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    assert jaggaer_sandbox.get(INVOICES, demo_token).status_code == 200
    jaggaer_sandbox.advance(3590)
    assert jaggaer_sandbox.get(INVOICES, demo_token).status_code == 200
    jaggaer_sandbox.advance(11)
    r = jaggaer_sandbox.get(INVOICES, demo_token)
    assert r.status_code == 401
    assert "expired" in r.json()["error_description"]
    # a new token works again
    assert jaggaer_sandbox.get(INVOICES, jaggaer_sandbox.token()).status_code == 200


def test_expires_in_is_a_setting(jaggaer_sandbox: JaggaerHandle) -> None:
    jaggaer_sandbox.settings(token_expires_in=60)
    r = jaggaer_sandbox.token_response(DEMO["client_id"], DEMO["client_secret"])
    assert r.json()["expires_in"] == 60
    token = r.json()["access_token"]
    jaggaer_sandbox.advance(61)
    assert jaggaer_sandbox.get(INVOICES, token).status_code == 401


def test_broken_401_variant(jaggaer_sandbox: JaggaerHandle) -> None:
    jaggaer_sandbox.settings(broken_401=True)
    for path in (INVOICES, INVOICES + "/2428001", PROFILES):
        r = jaggaer_sandbox.get(path, "expired-or-bogus")
        assert r.status_code == 401
        assert "WWW-Authenticate" not in r.headers
        assert r.headers["Content-Type"] == "; charset=UTF-8"
        # the body is still there for whoever looks
        assert json.loads(r.content)["error"] == "invalid_token"


def test_revoked_tokens(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    assert jaggaer_sandbox.admin("DELETE", "/tokens")["revoked"] >= 1
    assert jaggaer_sandbox.get(INVOICES, demo_token).status_code == 401


def test_reset_forgets_tokens(jaggaer_sandbox: JaggaerHandle) -> None:
    token = jaggaer_sandbox.token(ACME)
    jaggaer_sandbox.reset()
    assert jaggaer_sandbox.get(INVOICES, token).status_code == 401
