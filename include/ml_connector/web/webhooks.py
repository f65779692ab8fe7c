"""The Exact Online webhook receiver: ``POST /ml-connector/webhooks/exact/{tenant}``.

Public on purpose (Exact cannot log in to Airflow): a request counts only when its ``HashCode`` verifies over the raw
body with the tenant's webhook secret (extra ``webhook_secret`` of its ``exact_online`` connection; never logged).

- 200: the notification is stored (or was stored before: a duplicate or a replay is ignored); the row is committed
  **before** the answer, so a crash after answering loses nothing. The asset watcher
  (``ml_connector.webhooks.trigger``) turns it into an asset event of the tenant's division.
- 401: no or bad HashCode, or no secret configured; nothing stored (an audit row says why).
- 404: unknown tenant. 413: body over ``MAX_BODY_BYTES``. 429: over the tenant's rate (``RATE_PER_S``, burst
  ``RATE_BURST``). 422: signed, but not a notification of a division the tenant pins.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024  # an Exact notification is a few hundred bytes
RATE_PER_S = 20.0
RATE_BURST = 200.0
SECRET_TTL_S = 30.0


class _Bucket:
    """A token bucket per tenant (in this api-server process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state: dict[str, tuple[float, float]] = {}

    def take(self, tenant: str) -> bool:
        now = time.monotonic()
        with self.lock:
            tokens, at = self.state.get(tenant, (RATE_BURST, now))
            tokens = min(RATE_BURST, tokens + (now - at) * RATE_PER_S)
            if tokens < 1.0:
                self.state[tenant] = (tokens, now)
                return False
            self.state[tenant] = (tokens - 1.0, now)
            return True


_SECRETS: dict[str, tuple[float, str | None, tuple[int, ...]]] = {}


def _tenant_secret(tenant: str) -> tuple[str | None, tuple[int, ...]] | None:
    """(webhook secret, pinned divisions) of ``tenant``; ``None`` when there is no such tenant. Cached briefly."""
    hit = _SECRETS.get(tenant)
    if hit is not None and time.monotonic() - hit[0] < SECRET_TTL_S:
        return hit[1], hit[2]
    from ml_connector.config import load_tenants
    from ml_connector.errors import ConfigError
    from ml_connector.exact.connection import get_connection
    from ml_connector.webhooks import SECRET_FIELD

    tenants = load_tenants()
    cfg = tenants.get(tenant)
    if cfg is None:
        return None
    try:
        conn = get_connection(cfg.exact.conn_id)
        secret = (getattr(conn, "extra_dejson", None) or {}).get(SECRET_FIELD) or None
    except ConfigError:
        secret = None
    divisions = tuple(int(d) for d in (*cfg.exact.divisions, *cfg.po_divisions))
    _SECRETS[tenant] = (time.monotonic(), secret, divisions)
    return secret, divisions


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` as soon as it is longer than ``limit`` (never buffered beyond that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def install(app: FastAPI) -> None:
    """Add the receiver route to the plugin's app (no login: the HashCode is the authentication)."""
    bucket = _Bucket()

    @app.post("/webhooks/exact/{tenant}", name="exact_webhook")
    async def exact_webhook(tenant: str, request: Request) -> Response:
        from ml_connector.store.db import get_engine
        from ml_connector.webhooks import signing
        from ml_connector.webhooks import store as wstore

        if not bucket.take(tenant):
            return JSONResponse({"detail": "too many notifications; retry later"}, status_code=429)
        raw = await _read_limited(request, MAX_BODY_BYTES)
        if raw is None:
            return JSONResponse({"detail": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        known = await run_in_threadpool(_tenant_secret, tenant)
        if known is None:
            return JSONResponse({"detail": "unknown tenant"}, status_code=404)
        secret, divisions = known
        engine = get_engine()
        try:
            note = signing.verify(raw, secret or "")
        except signing.BadSignature as exc:
            await run_in_threadpool(wstore.audit_refusal, engine, tenant, f"webhook refused: {exc}")
            return JSONResponse({"detail": "invalid or missing HashCode"}, status_code=401)
        if note.division is None or note.division not in divisions:
            await run_in_threadpool(
                wstore.audit_refusal, engine, tenant, f"webhook refused: division {note.division} is not pinned"
            )
            return JSONResponse({"detail": "not a division of this tenant"}, status_code=422)
        new = await run_in_threadpool(wstore.store_notification, engine, tenant, note.hash_code, note.content)
        log.info(
            "webhook %s: tenant %s division %s %s %s",
            "stored" if new else "duplicate ignored",
            tenant,
            note.division,
            note.content.get("Action"),
            note.content.get("Key"),
        )
        body: dict[str, Any] = {"stored": new}
        return JSONResponse(body, status_code=200)


def status_html(engine: Any, tenants: list[str]) -> str:
    """The webhook part of the status page: subscriptions as last seen and notification counts per tenant."""
    import html

    from ml_connector.webhooks.store import status_lines

    rows = "".join(
        f"<tr><td>{html.escape(t)}</td><td>{'<br>'.join(html.escape(x) for x in status_lines(engine, t))}</td></tr>"
        for t in tenants
    )
    head = "<tr><th>tenant</th><th>subscriptions and notifications</th></tr>"
    return f"<h3>Exact webhooks</h3><table>{head}{rows}</table>"
