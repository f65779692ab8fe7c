"""Consent: the authorization-code grant, started by a person (CLI or Airflow UI) once per tenant.

1. ``start_consent`` makes a random CSRF ``state``, stores it (hashed; only its SHA-256 is kept) in ``OAuthState``
   with the tenant, connection and redirect URI, and returns Exact's consent URL.
2. Exact sends the browser to ``redirect_uri?code=…&state=…`` (the Airflow callback route), or the person pastes
   that URL into ``mlc exact authorize --redirect-url``.
3. ``consume_state`` checks the state: known, not older than ``STATE_TTL``, used once (deleted in the same
   transaction). ``TokenChain.exchange_code`` trades the code (valid 3 minutes, single use) for the first pair.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy import Engine, delete, select

from ml_connector.errors import RejectedError
from ml_connector.exact.tokens import ExactApp
from ml_connector.store.db import session_scope
from ml_connector.store.models import OAuthState

STATE_TTL = timedelta(minutes=15)
PASTE_REDIRECT_URI = "urn:mlc:paste"


class ConsentError(RejectedError):
    """The consent could not be completed (bad or used state, refused consent, bad code)."""

    def __init__(self, message: str):
        super().__init__(message, None)


@dataclass(frozen=True)
class PendingConsent:
    tenant: str
    conn_id: str
    redirect_uri: str
    created_at: datetime


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def consent_url(app: ExactApp, redirect_uri: str, state: str) -> str:
    query = urlencode(
        {
            "client_id": app.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "state": state,
            "force_login": "0",
        }
    )
    return f"{app.auth_url}?{query}"


def start_consent(
    engine: Engine,
    app: ExactApp,
    tenant: str,
    conn_id: str,
    redirect_uri: str,
    *,
    clock: Callable[[], float] = time.time,
) -> str:
    """Store a fresh single-use state and return the consent URL to open in a browser."""
    if not redirect_uri:
        raise ConsentError(
            f"no redirect URI: set 'redirect_uri' in the extra of the Airflow connection {conn_id} or pass one"
        )
    state = secrets.token_urlsafe(32)
    now = datetime.fromtimestamp(clock(), tz=UTC)
    with session_scope(engine) as s:
        s.execute(delete(OAuthState).where(OAuthState.created_at < now - STATE_TTL))
        s.add(OAuthState(state=_hash(state), tenant=tenant, conn_id=conn_id, redirect_uri=redirect_uri, created_at=now))
    return consent_url(app, redirect_uri, state)


def consume_state(engine: Engine, state: str, *, clock: Callable[[], float] = time.time) -> PendingConsent:
    """Check and use up a state (single use, expiring). Raises ``ConsentError`` when it is not acceptable."""
    if not state:
        raise ConsentError("the redirect carries no 'state'; start again with mlc exact connect")
    now = datetime.fromtimestamp(clock(), tz=UTC)
    with session_scope(engine) as s:
        row = s.scalars(select(OAuthState).where(OAuthState.state == _hash(state)).with_for_update()).one_or_none()
        if row is None:
            raise ConsentError(
                "unknown or already used 'state' (each consent link works once); start again with mlc exact connect"
            )
        pending = PendingConsent(row.tenant, row.conn_id, row.redirect_uri, row.created_at)
        s.delete(row)
    if now - pending.created_at > STATE_TTL:
        raise ConsentError(
            f"the consent was started at {pending.created_at.isoformat(timespec='seconds')} and has expired; "
            "start again with mlc exact connect"
        )
    return pending


def latest_pending(engine: Engine, tenant: str) -> str | None:
    """The redirect URI of the tenant's most recent pending consent (for ``authorize --code`` without a state)."""
    with session_scope(engine) as s:
        row = s.scalars(
            select(OAuthState).where(OAuthState.tenant == tenant).order_by(OAuthState.created_at.desc()).limit(1)
        ).one_or_none()
        return row.redirect_uri if row else None


def discard_pending(engine: Engine, tenant: str) -> None:
    with session_scope(engine) as s:
        s.execute(delete(OAuthState).where(OAuthState.tenant == tenant))


def parse_redirect(url_or_query: str) -> tuple[str, str]:
    """``(code, state)`` from the URL Exact redirected to (or just its query string).

    Raises ``ConsentError`` when the person refused consent (``error=…``) or the URL carries no code.
    """
    text = url_or_query.strip()
    query = urlsplit(text).query if ("?" in text or "://" in text) else text.lstrip("?")
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if params.get("error"):
        detail = params.get("error_description") or params["error"]
        raise ConsentError(f"Exact did not give consent: {detail}")
    code = params.get("code", "")
    if not code:
        raise ConsentError("the URL carries no 'code'; paste the whole address the browser ended on")
    return code, params.get("state", "")
