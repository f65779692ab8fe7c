"""Exact Online's OAuth 2.0 authorization-code grant with rotating refresh tokens, as docs/sandbox-exact.md describes.

A *chain* is what one consent produces: the current access token and refresh token, replaced together on every
refresh. Choices where the contract is silent (all switchable in ``ExactSettings``):

* reusing a superseded refresh token answers 401 "Old refresh token used." and kills the chain: every access
  token it ever issued (also an earlier one still inside its 600 s) and its refresh token are revoked
  (``reuse_kills_chain``), so the person must consent again;
* the code exchange must repeat the authorize call's ``redirect_uri`` exactly (missing: 400 ``invalid_request``,
  different: 400 ``invalid_grant``), as RFC 6749 §4.1.3 requires;
* after a successful refresh the previous access token stays valid until it expires
  (``old_access_token_valid_after_refresh``);
* an unknown refresh token or code answers 400 ``invalid_grant``;
* the client authenticates at the token endpoint with ``client_id``/``client_secret`` in the form body or with
  HTTP Basic authentication (RFC 6749 §2.3.1: an authorization server must support Basic), for every grant. Wrong
  credentials either way answer 400 ``{"error":"invalid_request"}``, as Exact does (docs/sandbox-exact.md). Both ways
  in one request with different values answer 400 ``invalid_request`` too: RFC 6749 §5.2 names that error for a
  request that "utilizes more than one mechanism for authenticating the client", and Exact answers every
  client-credential problem with it (the same values both ways are accepted);
* past the daily cap of token calls (per app, per user, per UTC day) the answer is 400
  ``{"error":"access_denied","error_description":"Rate limit exceeded: ..."}`` or an empty 429
  (``token_cap_status``).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from sandbox.common import demo_company as demo
from sandbox.common.clock import Clock
from sandbox.exact.settings import ExactSettings

TokenResult = tuple[int, dict[str, str], dict[str, Any] | None]

# Bounds of the token tables (a long soak or a leaky client must not grow them without end).
MAX_CODES = 1_000  # outstanding authorization codes; used/expired ones are dropped first
MAX_ACCESS_TOKENS = 10_000  # access tokens remembered (expired ones are kept an hour, for 401 attribution)
MAX_OLD_REFRESH_PER_CHAIN = 1_000  # superseded refresh tokens remembered per chain (reuse -> "Old refresh token")
MAX_CHAINS = 1_000  # dead chains beyond this are forgotten, oldest first
EXPIRED_KEEP_S = 3600.0


class ClientAuthError(ValueError):
    """The client's credentials at the token endpoint cannot be read (malformed Basic header, or Basic and body
    disagree); the message is the ``error_description`` sent back."""


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from an ``Authorization: Basic ...`` header, None when there is no Basic
    header. RFC 6749 §2.3.1: both are form-urlencoded before being joined by ``:`` and base64-encoded, so they are
    decoded here (a secret may contain ``:`` once encoded; the id may not)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ClientAuthError(
            "The Authorization header is not valid Basic authentication (base64 of id:secret)."
        ) from exc
    if ":" not in decoded:
        raise ClientAuthError("The Authorization header is not valid Basic authentication (base64 of id:secret).")
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def client_credentials(form: dict[str, str], authorization: str | None) -> tuple[str, str]:
    """The client id and secret of a token request, from the form body and/or HTTP Basic. A value given both
    ways must be the same both ways."""
    basic = basic_credentials(authorization)
    body_id, body_secret = form.get("client_id"), form.get("client_secret")
    if basic is None:
        return body_id or "", body_secret or ""
    if (body_id is not None and body_id != basic[0]) or (body_secret is not None and body_secret != basic[1]):
        raise ClientAuthError(
            "The client credentials in the Authorization header and in the request body differ: send them one way."
        )
    return basic


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    user_id: str
    divisions: list[int]
    issued: float
    used: bool = False


@dataclass
class Chain:
    id: str
    client_id: str
    user_id: str
    divisions: list[int]
    created: float
    access_token: str = ""
    access_issued: float = 0.0
    refresh_token: str = ""
    refresh_issued: float = 0.0
    refreshes: int = 0
    dead: bool = False
    dead_reason: str = ""
    old_refresh_tokens: dict[str, None] = field(default_factory=dict)  # insertion-ordered set


@dataclass
class AccessToken:
    token: str
    chain_id: str
    issued: float
    expires: float
    revoked: bool = False


class OAuthServer:
    def __init__(self, clock: Clock, settings: Callable[[], ExactSettings]) -> None:
        self.clock = clock
        self.settings = settings
        self.lock = threading.Lock()
        self._reset()

    def reset(self) -> None:
        with self.lock:
            self._reset()

    def _reset(self) -> None:
        self.codes: dict[str, AuthCode] = {}
        self.chains: dict[str, Chain] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, str] = {}  # refresh token (current or old) -> chain id
        self.token_calls: dict[tuple[str, str, int], int] = {}

    # ---- authorize ------------------------------------------------------------------------------------
    def check_client_redirect(self, client_id: str | None, redirect_uri: str | None) -> str | None:
        """None when the pair is acceptable, else the reason."""
        s = self.settings()
        app = s.apps.get(client_id or "")
        if app is None:
            return "The client_id is unknown."
        if redirect_uri not in app.redirect_uris and redirect_uri not in s.extra_redirect_uris:
            return "The redirect_uri does not match the one registered for this application."
        return None

    def issue_code(self, client_id: str, redirect_uri: str, divisions: list[int]) -> str:
        code = "mlc-code-" + secrets.token_urlsafe(24)
        with self.lock:
            self._prune_codes()
            self.codes[code] = AuthCode(
                code, client_id, redirect_uri, demo.DEMO_USER["UserID"], list(divisions), self.clock.time()
            )
        return code

    # ---- bounds (caller holds the lock) ---------------------------------------------------------------------
    def _prune_codes(self) -> None:
        if len(self.codes) < MAX_CODES:
            return
        now = self.clock.time()
        ttl = self.settings().auth_code_ttl_s
        for k in [k for k, c in self.codes.items() if c.used or now - c.issued >= ttl]:
            del self.codes[k]
        while len(self.codes) >= MAX_CODES:  # all fresh: the oldest go (dicts keep insertion order)
            del self.codes[next(iter(self.codes))]

    def _prune_access(self, now: float) -> None:
        if len(self.access) < MAX_ACCESS_TOKENS:
            return
        for k in [k for k, a in self.access.items() if a.expires + EXPIRED_KEEP_S <= now]:
            del self.access[k]
        if len(self.access) >= MAX_ACCESS_TOKENS:
            for k in [k for k, a in self.access.items() if a.revoked or a.expires <= now]:
                del self.access[k]
        while len(self.access) >= MAX_ACCESS_TOKENS:
            del self.access[next(iter(self.access))]

    def _remember_old_refresh(self, chain: Chain, token: str) -> None:
        chain.old_refresh_tokens[token] = None
        while len(chain.old_refresh_tokens) > MAX_OLD_REFRESH_PER_CHAIN:
            oldest = next(iter(chain.old_refresh_tokens))
            del chain.old_refresh_tokens[oldest]
            self.refresh.pop(oldest, None)

    def _prune_chains(self) -> None:
        if len(self.chains) < MAX_CHAINS:
            return
        for chain in [c for c in self.chains.values() if c.dead][: len(self.chains) - MAX_CHAINS + 1]:
            del self.chains[chain.id]
            for tok in [*chain.old_refresh_tokens, chain.refresh_token]:
                self.refresh.pop(tok, None)
            for k in [k for k, a in self.access.items() if a.chain_id == chain.id]:
                del self.access[k]

    def _prune_token_calls(self, today: int) -> None:
        if len(self.token_calls) > 100:
            self.token_calls = {k: v for k, v in self.token_calls.items() if k[2] >= today - 1}

    # ---- token endpoint ------------------------------------------------------------------------------------
    def _new_tokens(self, chain: Chain, now: float) -> dict[str, Any]:
        s = self.settings()
        self._prune_access(now)
        if chain.access_token and not s.old_access_token_valid_after_refresh:
            old = self.access.get(chain.access_token)
            if old is not None:
                old.revoked = True
        if chain.refresh_token:
            self._remember_old_refresh(chain, chain.refresh_token)
        chain.access_token = "mlc-at-" + secrets.token_urlsafe(32)
        chain.refresh_token = "mlc-rt-" + secrets.token_urlsafe(32)
        chain.access_issued = chain.refresh_issued = now
        self.access[chain.access_token] = AccessToken(chain.access_token, chain.id, now, now + s.access_token_ttl_s)
        self.refresh[chain.refresh_token] = chain.id
        return {
            "access_token": chain.access_token,
            "token_type": s.token_type,
            "expires_in": str(int(s.access_token_ttl_s)),
            "refresh_token": chain.refresh_token,
        }

    def _kill(self, chain: Chain, reason: str) -> None:
        """The chain is dead: every access token it issued is revoked (not only the current one: the one before
        a refresh may still be inside its 600 s), and its refresh token becomes old."""
        chain.dead = True
        chain.dead_reason = reason
        for at in self.access.values():
            if at.chain_id == chain.id:
                at.revoked = True
        self._remember_old_refresh(chain, chain.refresh_token)

    def _count_token_call(self, client_id: str, user_id: str, now: float) -> TokenResult | None:
        s = self.settings()
        key = (client_id, user_id, int(now // 86400))
        self._prune_token_calls(key[2])
        self.token_calls[key] = self.token_calls.get(key, 0) + 1
        if self.token_calls[key] > s.token_calls_per_day:
            if s.token_cap_status == 429:
                return 429, {}, None
            return (
                400,
                {},
                {
                    "error": "access_denied",
                    "error_description": "Rate limit exceeded: too many token requests today",
                },
            )
        return None

    def token(self, form: dict[str, str], authorization: str | None = None) -> TokenResult:
        """One token-endpoint call: ``form`` is the form body, ``authorization`` the request's Authorization header
        (client credentials may come as HTTP Basic instead of, or as well as, ``client_id``/``client_secret``)."""
        s = self.settings()
        try:
            client_id, client_secret = client_credentials(form, authorization)
        except ClientAuthError as exc:
            return 400, {}, {"error": "invalid_request", "error_description": str(exc)}
        app = s.apps.get(client_id)
        if app is None or client_secret != app.client_secret:
            return 400, {}, {"error": "invalid_request"}
        grant = form.get("grant_type")
        with self.lock:
            now = self.clock.time()
            if grant == "authorization_code":
                code = self.codes.get(form.get("code", ""))
                if code is None or code.client_id != client_id:
                    return 400, {}, {"error": "invalid_grant", "error_description": "Unknown code."}
                limited = self._count_token_call(client_id, code.user_id, now)
                if limited:
                    return limited
                if code.used:
                    return 400, {}, {"error": "invalid_grant", "error_description": "Code already used."}
                if now - code.issued >= s.auth_code_ttl_s:
                    return 400, {}, {"error": "invalid_grant", "error_description": "Code expired."}
                # RFC 6749 §4.1.3: the exchange must repeat the authorize call's redirect_uri, identically.
                if not form.get("redirect_uri"):
                    return (
                        400,
                        {},
                        {"error": "invalid_request", "error_description": "The redirect_uri parameter is missing."},
                    )
                if form.get("redirect_uri") != code.redirect_uri:
                    return 400, {}, {"error": "invalid_grant", "error_description": "redirect_uri mismatch."}
                code.used = True
                chain = Chain(
                    id="chain-" + secrets.token_hex(6),
                    client_id=client_id,
                    user_id=code.user_id,
                    divisions=code.divisions,
                    created=now,
                )
                self._prune_chains()
                self.chains[chain.id] = chain
                return 200, {}, self._new_tokens(chain, now)
            if grant == "refresh_token":
                token = form.get("refresh_token", "")
                chain_id = self.refresh.get(token)
                chain = self.chains.get(chain_id) if chain_id else None
                if chain is None or chain.client_id != client_id:
                    return 400, {}, {"error": "invalid_grant", "error_description": "Unknown refresh token."}
                limited = self._count_token_call(client_id, chain.user_id, now)
                if limited:
                    return limited
                if chain.dead or token != chain.refresh_token:
                    if s.reuse_kills_chain and not chain.dead:
                        self._kill(chain, "old refresh token used")
                    return 401, {}, {"error": "unauthorized_client", "error_description": "Old refresh token used."}
                expires_at = chain.refresh_issued + s.refresh_token_idle_ttl_s
                if now >= expires_at:
                    ts = datetime.fromtimestamp(expires_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
                    return (
                        400,
                        {},
                        {"error": "invalid_request", "error_description": f"The refresh token expired at {ts}"},
                    )
                access_expires = chain.access_issued + s.access_token_ttl_s
                if now < chain.access_issued + s.refresh_min_age_s and now < access_expires:
                    if s.too_early_style == "legacy":
                        return 401, {}, {"error": "access_denied", "error_description": "Access Token not expired"}
                    return (
                        400,
                        {"Reason": "TooEarlyToRefreshTokens"},
                        {
                            "error": "access_denied",
                            "error_description": "Rate limit exceeded: access_token not expired",
                        },
                    )
                chain.refreshes += 1
                return 200, {}, self._new_tokens(chain, now)
            return 400, {}, {"error": "unsupported_grant_type"}

    # ---- bearer auth ---------------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Chain | None:
        """The chain of a valid access token; None for a missing, unknown, expired or revoked one, or one of a
        dead chain."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        token = authorization[7:].strip()
        with self.lock:
            at = self.access.get(token)
            if at is None or at.revoked or self.clock.time() >= at.expires:
                return None
            chain = self.chains.get(at.chain_id)
            if chain is None or chain.dead:
                return None
            return chain

    def owner(self, authorization: str | None) -> Chain | None:
        """The chain that issued a token, valid or not (expired, revoked, dead chain): whose app a 401 counts
        against in the error budget. None for a missing or unknown token."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        with self.lock:
            at = self.access.get(authorization[7:].strip())
            return self.chains.get(at.chain_id) if at is not None else None

    def state(self) -> dict[str, Any]:
        with self.lock:
            now = self.clock.time()
            return {
                "chains": [
                    {
                        "id": c.id,
                        "client_id": c.client_id,
                        "user_id": c.user_id,
                        "divisions": c.divisions,
                        "dead": c.dead,
                        "dead_reason": c.dead_reason,
                        "refreshes": c.refreshes,
                        "access_token_age_s": now - c.access_issued,
                        "refresh_token_age_s": now - c.refresh_issued,
                    }
                    for c in self.chains.values()
                ],
                "token_calls": {f"{k[0]}|{k[1]}|{k[2]}": v for k, v in self.token_calls.items()},
                "codes_outstanding": sum(1 for c in self.codes.values() if not c.used),
            }
