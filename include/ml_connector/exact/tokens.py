"""The Exact Online token chain: one writer, never a reused refresh token (docs/connecting.md §4).

Exact rotates refresh tokens: every refresh returns a new pair and reusing an old refresh token kills the chain
("Old refresh token used."), after which a person must consent again. A refresh is also refused when the current
access token is younger than 570 s (``TooEarlyToRefreshTokens``). So:

- The pair lives encrypted in ``TokenRecord`` (one row per tenant and connection), shared by every process.
- ``get_access_token()`` returns the stored token while it is younger than the refresh threshold (570 s + margin);
  it keeps the token read in memory until it is due (one row read and decryption per token, not per API call); a
  refresh made by another process meanwhile is picked up at the latest after a 401 (``after_unauthorized``).
- A refresh happens only under the **chain lock** (below) and inside it a **row lock** (SQLite ``BEGIN IMMEDIATE``,
  PostgreSQL ``SELECT … FOR UPDATE``). After locking, the row is **re-read**: if someone else refreshed meanwhile
  (version changed, token fresh again, or a different token than the one that got a 401), nothing is sent.
- It is sent only inside Exact's window: ≥ 570 s after issue, after expiry, or once after a 401 for that token.
  Token age is measured on our own clock from the moment we *received* the token, which is never earlier than
  Exact issued it, so clock offsets between us and Exact cancel out.
- Before the token call, ``refresh_started_at`` is committed; the new pair is committed (marker cleared, version
  bumped) **before** it is returned. A process killed between receiving and storing leaves the marker behind.

The chain lock is a lock the operating system or database releases when its holder dies: ``flock`` on a file next
to a SQLite database, a session-level advisory lock on PostgreSQL. Whoever holds it and still finds the marker
therefore knows the previous refresh never finished. The chain *may* have survived (the process died before its
request reached Exact): the next refresh tries the stored refresh token once, inside the window. If Exact accepts
it, the chain lives on (logged as a warning); if Exact answers "Old refresh token used.", the row is marked broken
with a reason that says a refresh was interrupted at that time and how to reconnect.

A rotated pair is never dropped because the database hiccups (issue 11). Once Exact has answered a refresh or a
code exchange, the new pair exists only in our memory and Exact has already retired the refresh token we sent. So
``_persist`` keeps retrying the write, with full-jitter backoff capped at ``STORE_BACKOFF_MAX`` seconds, for
``store_window`` seconds (default: the access token's lifetime, 600 s), without ever releasing the chain lock:

- SQLite: the ``flock`` beside the database file is not touched by database errors (a file locked by another
  process, a full disk); we keep holding it, so no other process can refresh meanwhile.
- PostgreSQL: the advisory lock lives in a database session and dies with it (a server restart, a terminated
  backend). Before every write attempt the lock is *checked in* ``pg_locks`` for this session and, when gone,
  re-acquired on a new connection; the row is then re-read and the pair is written only if the row still holds the
  refresh token we sent (nobody refreshed or reconnected meanwhile). Between losing and re-acquiring the lock
  another process can take it: such a process finds our marker and, since the server restarted after the marker
  was written (``pg_postmaster_start_time``), knows the marker's owner may be alive with the new pair in memory.
  It therefore does **not** try the stored refresh token (already spent at Exact) until the owner's store window
  has passed (``settle_after``); meanwhile it uses a still-valid access token or raises ``TransientError``. A
  marker from before the server's start proves nothing like that (the lock was released by its holder's session
  ending while the server ran, i.e. the holder died) and is settled at once, as before.

Only when the pair cannot be stored for the whole window does the refresh fail, with ``TokenChainBroken`` naming
the tenant, the connection, when Exact rotated the pair, the last database error and the reconnect command.

Other guarantees: token calls are counted per UTC day (Exact allows 200 per app and user) and refused cleanly
(``RateBudgetExhausted``) when fewer than ``TOKEN_CALL_RESERVE`` are left, keeping a few for a reconnect; a dead
chain (``invalid_grant``, "Old refresh token used.", an expired refresh token) or refused client credentials mark
the row ``broken`` with a reason (never a secret) and raise ``TokenChainBroken``; tokens are registered with
Airflow's secret masker when Airflow is loaded and never appear in logs, exceptions, audit rows or reprs.

Every token call (refresh, code exchange) is audited when the chain has an audit sink: flow ``exact_token``, action
``token_refresh`` / ``token_exchange``, the connection id, HTTP status and outcome (``describe_token_response``:
never a token). An HTTP 200 whose body is not JSON is Exact's maintenance page: Exact did not process the refresh,
so the marker is cleared (the stored refresh token is still the live one) and a ``TransientError`` says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from ml_connector import http
from ml_connector.errors import (
    AmbiguousWriteError,
    ConnectorError,
    RateBudgetExhausted,
    RejectedError,
    TokenChainBroken,
    TransientError,
)
from ml_connector.exact import odata
from ml_connector.store.db import make_durable, session_scope
from ml_connector.store.models import TokenRecord

log = logging.getLogger(__name__)

REFRESH_MIN_AGE = 570.0  # Exact refuses a refresh earlier than this after the access token was issued
DEFAULT_ACCESS_TTL = 600.0
REFRESH_TOKEN_IDLE = timedelta(days=30)  # a refresh token unused this long expires
TOKEN_CALLS_PER_DAY = 200  # per app, per user, per UTC day
TOKEN_CALL_RESERVE = 10  # refreshes stop this many calls short of the cap, so a reconnect stays possible
CREDENTIALS_REFUSED = "client secret refused by Exact (or the client id is unknown)"
AUDIT_FLOW = "exact_token"  # audit rows of token calls (action token_refresh / token_exchange)
NOT_CONNECTED = "not connected yet"
STORE_BACKOFF_MAX = 5.0  # s between attempts to store a rotated pair, at most: a restarted database is written soon
RESTART_SLACK = 5.0  # s: a server that started this close to a marker counts as restarted after it


def reconnect_hint(tenant: str) -> str:
    return (
        f"reconnect with: mlc exact connect --tenant {tenant} "
        f"(or in the Airflow UI: /ml-connector/exact/connect?tenant={tenant})"
    )


def mask(*secrets: str | None) -> None:
    """Register secrets with Airflow's masker, if Airflow is loaded in this process (tasks, api-server).

    Importing Airflow only to mask would cost seconds in processes that never log through it (the CLI, workers of
    the concurrency test), and there is nothing of Airflow's there to mask, so we do not.
    """
    if "airflow.sdk" not in sys.modules and "airflow.sdk.log" not in sys.modules:
        return
    fresh = [s for s in secrets if s and s not in _masked]
    if not fresh:
        return
    try:
        from airflow.sdk.log import mask_secret
    except Exception:  # pragma: no cover - Airflow without the task SDK
        return
    for secret in fresh:
        with contextlib.suppress(Exception):
            mask_secret(secret)
        if len(_masked) > 1000:
            _masked.clear()
        _masked.add(secret)


_masked: set[str] = set()


@dataclass(frozen=True)
class ExactApp:
    """What the Airflow connection holds: region host, client id and secret, redirect URI."""

    host: str
    client_id: str
    client_secret: str
    redirect_uri: str | None = None

    @property
    def base_url(self) -> str:
        return self.host.rstrip("/")

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/api/oauth2/token"

    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/api/oauth2/auth"

    def __repr__(self) -> str:  # never the secret
        return f"ExactApp(host={self.host!r}, client_id={self.client_id!r}, redirect_uri={self.redirect_uri!r})"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: float

    def __repr__(self) -> str:
        return f"TokenPair(expires_in={self.expires_in})"

    @classmethod
    def from_response(cls, body: Any) -> TokenPair:
        if not isinstance(body, dict) or not body.get("access_token") or not body.get("refresh_token"):
            raise TransientError("Exact's token endpoint answered 200 without a token pair")
        try:
            expires_in = float(str(body.get("expires_in") or DEFAULT_ACCESS_TTL).strip())  # a STRING at Exact
        except ValueError:
            expires_in = DEFAULT_ACCESS_TTL
        return cls(str(body["access_token"]), str(body["refresh_token"]), expires_in)


@dataclass(frozen=True)
class TokenState:
    """What ``mlc status`` shows of a chain (no secrets)."""

    tenant: str
    conn_id: str
    connected: bool
    status: str  # ok | broken | not connected
    reason: str | None
    last_refreshed: datetime | None
    access_expires_at: datetime | None
    refresh_lapses_at: datetime | None
    refresh_started_at: datetime | None
    token_calls_today: int
    version: int


# --- classification of token-endpoint answers ---------------------------------------------------------------------
class _Outcome:
    OK = "ok"
    TOO_EARLY = "too_early"
    CAP = "cap"
    CREDENTIALS = "credentials"
    DEAD = "dead"
    UNKNOWN = "unknown"


def classify_token_response(response: requests.Response) -> tuple[str, str]:
    """``(outcome, description)`` of a token endpoint answer. The description never contains a token."""
    status = response.status_code
    if 200 <= status < 300:
        return _Outcome.OK, ""
    error, description = odata.parse_oauth_error(response.content)
    reason_header = response.headers.get("Reason", "")
    lowered = description.lower()
    if reason_header == "TooEarlyToRefreshTokens" or "not expired" in lowered:
        return _Outcome.TOO_EARLY, description or reason_header
    if status == 429 or (error == "access_denied" and "rate limit" in lowered):
        return _Outcome.CAP, description or "too many token requests today"
    if status >= 500:
        return _Outcome.UNKNOWN, f"HTTP {status}"
    if error == "invalid_client" or (error == "invalid_request" and not description):
        return _Outcome.CREDENTIALS, CREDENTIALS_REFUSED
    if status in (400, 401, 403):
        text_ = description or error or f"HTTP {status}"
        return _Outcome.DEAD, f"{error}: {text_}" if error and description else text_
    return _Outcome.UNKNOWN, f"HTTP {status}"


def token_json(response: requests.Response) -> Any:
    """The JSON body of a token endpoint answer, or ``None`` when it is not JSON (Exact's HTML maintenance page)."""
    try:
        return http.json_of(response)  # parsed once: the audit description reads it too
    except ValueError:
        return None


def describe_token_response(response: requests.Response) -> tuple[str, str]:
    """``(outcome, message)`` of a token call for its audit row: the classification and Exact's error text, never a
    token (a 200's body, which holds the tokens, is not quoted)."""
    outcome, description = classify_token_response(response)
    if outcome == _Outcome.OK:
        if token_json(response) is None:
            return "maintenance", "HTTP 200 with a body that is not JSON (maintenance page?)"
        return outcome, "new token pair received"
    return outcome, description


# --- the chain lock -----------------------------------------------------------------------------------------------
# Does this session hold the session-level advisory lock on :k? (A bigint key is split into classid/objid.)
_PG_LOCK_HELD = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() AND objsubid = 1
      AND ((classid::bigint << 32) | objid::bigint) = :k
)
"""


class LockLost(ConnectorError):
    """The chain lock's database session died and another process holds the lock now (retried by ``_persist``)."""


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(key: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


class ChainLock:
    """A mutex around one token chain that is released when its holder dies.

    SQLite: ``flock`` on ``<db file>.mlc-token-<hash>.lock`` (SQLite is single-host by nature). PostgreSQL: a
    session-level ``pg_advisory_lock`` on a dedicated connection. Other back ends: a process-local lock only (the
    row lock still serialises refreshes, but an interrupted refresh cannot be told from one in flight).
    Waiting is bounded by ``timeout`` (real seconds).
    """

    def __init__(self, engine: Engine, tenant: str, conn_id: str, timeout: float = 120.0) -> None:
        self.engine = engine
        self.timeout = timeout
        digest = hashlib.sha256(f"{tenant}\x00{conn_id}".encode()).digest()
        self.key = f"{engine.url.render_as_string(hide_password=True)}|{digest.hex()[:16]}"
        self._pg_key = int.from_bytes(digest[:8], "big", signed=True)
        self._thread = _thread_lock(self.key)
        self._file: Any = None
        self._pg_conn: Any = None
        backend = engine.dialect.name
        database = engine.url.database
        if backend == "sqlite" and database and database != ":memory:" and not database.startswith("file::memory"):
            self._path: Path | None = Path(database).with_name(
                f"{Path(database).name}.mlc-token-{digest.hex()[:12]}.lock"
            )
        else:
            self._path = None
        self._pg = backend == "postgresql"

    @property
    def durable(self) -> bool:
        """True when a dead holder releases the lock (so a leftover marker means an interrupted refresh)."""
        return self._path is not None or self._pg

    @property
    def lost_on_restart(self) -> bool:
        """True when the lock lives in a database session (PostgreSQL), so a database restart releases it while
        its holder lives on."""
        return self._pg

    def ensure_held(self) -> bool:
        """Holding the lock (after ``acquire``): check it is still ours and take it again when its database session
        died (PostgreSQL restart). Returns True when it was taken again; raises ``LockLost`` when another process
        holds it now, and SQLAlchemy's errors while the database is unreachable (callers retry both)."""
        if not self._pg:
            return False  # a flock or a thread lock: database trouble does not touch it
        if self._pg_conn is not None:
            try:
                if self._pg_conn.execute(text(_PG_LOCK_HELD), {"k": self._pg_key}).scalar():
                    return False
            except Exception:  # the session is gone (its lock with it)
                pass
            with contextlib.suppress(Exception):
                self._pg_conn.close()
            self._pg_conn = None
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._pg_key}).scalar()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            raise LockLost("another process holds the token refresh lock now")
        self._pg_conn = conn
        return True

    def acquire(self, blocking: bool = True) -> bool:
        deadline = time.monotonic() + self.timeout
        got = self._thread.acquire(timeout=self.timeout) if blocking else self._thread.acquire(blocking=False)
        if not got:
            if blocking:
                raise TransientError(f"token refresh lock busy for more than {self.timeout:.0f}s")
            return False
        try:
            if self._inner_acquire(blocking, deadline):
                return True
        except BaseException:
            self._thread.release()
            raise
        self._thread.release()
        return False

    def _inner_acquire(self, blocking: bool, deadline: float) -> bool:
        pause = 0.005
        if self._path is not None:
            import fcntl

            fh = open(self._path, "a+b")  # noqa: SIM115 - held until release()
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self._file = fh
                    return True
                except BlockingIOError:
                    if not blocking or time.monotonic() > deadline:
                        fh.close()
                        if blocking:
                            raise TransientError(
                                f"another process has held the token refresh lock for more than {self.timeout:.0f}s"
                            ) from None
                        return False
                    time.sleep(pause)
                    pause = min(pause * 2, 0.1)
        if self._pg:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                while True:
                    got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._pg_key}).scalar()
                    if got:
                        self._pg_conn = conn
                        return True
                    if not blocking or time.monotonic() > deadline:
                        if blocking:
                            raise TransientError(
                                f"another process has held the token refresh lock for more than {self.timeout:.0f}s"
                            )
                        conn.close()
                        return False
                    time.sleep(pause)
                    pause = min(pause * 2, 0.1)
            except BaseException:
                if self._pg_conn is None:
                    conn.close()
                raise
        return True

    def release(self) -> None:
        try:
            if self._file is not None:
                import fcntl

                with contextlib.suppress(OSError):
                    fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
                self._file.close()
                self._file = None
            if self._pg_conn is not None:
                with contextlib.suppress(Exception):
                    self._pg_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._pg_key})
                self._pg_conn.close()
                self._pg_conn = None
        finally:
            self._thread.release()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


# --- the chain ----------------------------------------------------------------------------------------------------
def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _next_midnight(now: float) -> datetime:
    return datetime.combine(_dt(now).date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


@dataclass(frozen=True)
class _Held:
    """The access token a chain keeps in memory, with what :meth:`TokenChain._refresh_due` reads (never logged)."""

    access_token: str
    access_issued_at: datetime | None
    access_expires_at: datetime | None

    def __repr__(self) -> str:
        return "_Held(<token>)"


class TokenChain:
    """The token chain of one tenant on one Exact connection (see the module docstring)."""

    # Test seams: called (if set) right before the token request is sent / right after its answer arrived, before
    # anything is stored. The concurrency tests use them to kill a process at exactly those points.
    before_send_hook: Callable[[], None] | None = None
    after_receive_hook: Callable[[], None] | None = None

    def __init__(
        self,
        engine: Engine,
        tenant: str,
        conn_id: str,
        app: ExactApp,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        policy: http.RetryPolicy = http.RetryPolicy(),
        refresh_margin: float = 3.0,
        expiry_margin: float = 2.0,
        lock_timeout: float = 120.0,
        on_broken: Callable[[TokenChainBroken], None] | None = None,
        audit: http.AuditSink | None = None,
        store_window: float = DEFAULT_ACCESS_TTL,
        store_attempt_timeout: float | None = None,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.tenant = tenant
        self.conn_id = conn_id
        self.app = app
        self.session = session or requests.Session()
        self.clock = clock
        self.policy = policy
        self.refresh_margin = refresh_margin
        self.expiry_margin = expiry_margin
        self.on_broken = on_broken
        self.lock = ChainLock(engine, tenant, conn_id, timeout=lock_timeout)
        # How long (real seconds) a rotated pair is retried into the database before the refresh gives up, and
        # (SQLite) how long one attempt waits for a database file another process has locked (None: the
        # engine's busy timeout, 30 s).
        self.store_window = store_window
        self.store_attempt_timeout = store_attempt_timeout
        self.token_calls = 0  # token endpoint calls made by this instance
        self.refreshes = 0
        self.skipped_refreshes = 0  # refreshes found unnecessary after taking the lock
        self.store_retries = 0  # failed attempts to store a rotated pair (each retried)
        self.lock_retakes = 0  # times the chain lock died with its database session and was taken again
        self._held: _Held | None = None  # the access token in memory until it is due (get_access_token)

    def __repr__(self) -> str:
        return f"TokenChain(tenant={self.tenant!r}, conn_id={self.conn_id!r})"

    # -- reading -------------------------------------------------------------------------------------------------
    def _where(self) -> Any:
        return (TokenRecord.tenant == self.tenant) & (TokenRecord.conn_id == self.conn_id)

    def _read(self) -> TokenRecord | None:
        with session_scope(self.engine, durable=True) as s:
            return s.scalars(select(TokenRecord).where(self._where())).one_or_none()

    def _read_locked(self, s: Session) -> TokenRecord | None:
        return s.scalars(select(TokenRecord).where(self._where()).with_for_update()).one_or_none()

    def _refresh_due(self, row: TokenRecord | _Held, now: float) -> bool:
        issued = _ts(row.access_issued_at)
        expires = _ts(row.access_expires_at)
        if not row.access_token or issued is None:
            return True
        if now - issued >= REFRESH_MIN_AGE + self.refresh_margin:
            return True
        return expires is not None and now >= expires - self.expiry_margin

    def _still_valid(self, row: TokenRecord, now: float) -> bool:
        expires = _ts(row.access_expires_at)
        return bool(row.access_token) and expires is not None and now < expires - self.expiry_margin

    def _in_window(self, row: TokenRecord, now: float) -> bool:
        issued = _ts(row.access_issued_at)
        expires = _ts(row.access_expires_at)
        if issued is None:
            return True
        return now - issued >= REFRESH_MIN_AGE or (expires is not None and now >= expires)

    @property
    def settle_after(self) -> float:
        """Seconds after a refresh marker until no process can still be storing its pair: the longest a token call
        can take plus the store window (another process waits this long before it tries the stored refresh token
        when the chain lock may have died in a database restart)."""
        return self.policy.connect_timeout + self.policy.read_timeout + self.store_window + 2 * STORE_BACKOFF_MAX

    def _restarted_after(self, s: Session, marker: datetime, now: float) -> float | None:
        """PostgreSQL: the server's uptime in seconds when it started after ``marker`` (within ``RESTART_SLACK``),
        else None. Compares durations (uptime on the server's clock, marker age on ours), not instants."""
        uptime = s.execute(text("SELECT EXTRACT(EPOCH FROM (now() - pg_postmaster_start_time()))")).scalar()
        if uptime is None:
            return None
        age = now - marker.timestamp()
        return float(uptime) if float(uptime) < age + RESTART_SLACK else None

    def _raise_if_unusable(self, row: TokenRecord | None) -> TokenRecord:
        if row is None or not row.refresh_token:
            raise TokenChainBroken(
                self.tenant,
                f"{NOT_CONNECTED} (no Exact tokens stored for connection {self.conn_id})",
                how_to_fix=f"Run: mlc exact connect --tenant {self.tenant}",
            )
        if row.status == "broken" and not (row.status_reason or "").startswith(CREDENTIALS_REFUSED):
            raise TokenChainBroken(self.tenant, row.status_reason or "token chain broken", reconnect_hint(self.tenant))
        return row

    def state(self) -> TokenState:
        row = self._read()
        if row is None:
            return TokenState(self.tenant, self.conn_id, False, "not connected", None, None, None, None, None, 0, 0)
        last = row.refresh_issued_at
        today = _dt(self.clock()).date().isoformat()
        return TokenState(
            tenant=self.tenant,
            conn_id=self.conn_id,
            connected=bool(row.refresh_token),
            status=row.status if row.refresh_token else "not connected",
            reason=row.status_reason,
            last_refreshed=last,
            access_expires_at=row.access_expires_at,
            refresh_lapses_at=(last + REFRESH_TOKEN_IDLE) if last else None,
            refresh_started_at=row.refresh_started_at,
            token_calls_today=row.token_calls_today if row.token_calls_day == today else 0,
            version=row.version,
        )

    def refresh_interrupted(self) -> datetime | None:
        """When a refresh marker is left behind and nobody is refreshing now: the time it started."""
        row = self._read()
        if row is None or row.refresh_started_at is None or not self.lock.durable:
            return None
        if not self.lock.acquire(blocking=False):
            return None  # someone is refreshing right now
        try:
            row = self._read()
            return row.refresh_started_at if row is not None else None
        finally:
            self.lock.release()

    # -- the access token ----------------------------------------------------------------------------------------
    def get_access_token(self) -> str:
        """A valid access token, refreshing (once, under the lock, in Exact's window) when it is due.

        The token last read from the row is kept in memory (:class:`_Held`) and returned without reading the row
        again until it is due for a refresh (570 s after issue + margin, or near expiry): reading and decrypting the
        row cost measurable CPU per API call. A refresh by another process meanwhile (only possible in Exact's window,
        i.e. when ours is due too, or after a 401 of theirs) does not disturb us: Exact keeps the previous access
        token valid until it expires, and should it not, our call gets a 401, :meth:`after_unauthorized` re-reads the
        row under the chain lock and takes the new token without refreshing again. The lock rules are unchanged:
        every refresh still happens only under the chain lock after re-reading the row."""
        now = self.clock()
        held = self._held
        if held is not None and not self._refresh_due(held, now):
            return held.access_token
        self._held = None
        row = self._raise_if_unusable(self._read())
        if row.status == "ok" and row.refresh_started_at is None and not self._refresh_due(row, now):
            assert row.access_token is not None
            mask(row.access_token, row.refresh_token)
            self._held = _Held(row.access_token, row.access_issued_at, row.access_expires_at)
            return row.access_token
        if row.status == "ok" and self._still_valid(row, now):
            # Due, but still valid: if someone else is refreshing right now, use the current token meanwhile.
            if not self.lock.acquire(blocking=False):
                assert row.access_token is not None
                mask(row.access_token)
                return row.access_token
            try:
                return self._refresh_locked(seen_version=row.version, failed_token=None)
            finally:
                self.lock.release()
        with self.lock.held():
            return self._refresh_locked(seen_version=row.version, failed_token=None)

    def after_unauthorized(self, failed_token: str) -> str:
        """Exact answered 401 to ``failed_token``: refresh once (allowed after a 401) unless someone already did."""
        self._held = None
        with self.lock.held():
            return self._refresh_locked(seen_version=None, failed_token=failed_token)

    def _refresh_locked(self, *, seen_version: int | None, failed_token: str | None) -> str:
        """Holding the chain lock: re-read under the row lock, decide, refresh, store. Returns the access token."""
        with session_scope(self.engine, durable=True) as s:
            row = self._raise_if_unusable(self._read_locked(s))
            now = self.clock()
            interrupted = row.refresh_started_at if self.lock.durable else None
            if interrupted is not None and self.lock.lost_on_restart:
                # The lock we hold may have been freed by a database restart while the marker's owner lives on
                # with Exact's new pair in memory, retrying to store it: the stored refresh token may be spent.
                restarted = self._restarted_after(s, interrupted, now)
                settle_at = interrupted.timestamp() + self.settle_after
                if restarted is not None and now < settle_at:
                    if row.access_token and row.access_token != failed_token and self._still_valid(row, now):
                        self.skipped_refreshes += 1
                        mask(row.access_token)
                        return row.access_token
                    raise TransientError(
                        f"tenant {self.tenant!r}: a token refresh started at "
                        f"{interrupted.isoformat(timespec='seconds')} lost its lock when the connector database "
                        f"restarted {restarted:.0f}s ago; the process doing it may still be storing Exact's new token "
                        "pair, so the stored refresh token (possibly spent at Exact) is not used before "
                        f"{_dt(settle_at).isoformat(timespec='seconds')}. Try again shortly; mlc status shows the "
                        "chain"
                    )
            credentials_retry = row.status == "broken"  # only a credentials refusal gets this far
            # 1. Has someone else refreshed meanwhile?
            if not credentials_retry:
                if failed_token is not None:
                    if row.access_token != failed_token and self._still_valid(row, now):
                        self.skipped_refreshes += 1
                        assert row.access_token is not None
                        return row.access_token
                elif interrupted is None and not self._refresh_due(row, now):
                    if row.version != seen_version:
                        self.skipped_refreshes += 1
                    assert row.access_token is not None
                    mask(row.access_token)
                    return row.access_token
            # 2. Does Exact accept a refresh now? (>= 570 s after issue, after expiry, or once after a 401)
            allowed = self._in_window(row, now) or (failed_token is not None and row.access_token == failed_token)
            if not allowed:
                # An old marker or a credentials retry with a young token: keep using it until the window opens.
                assert row.access_token is not None
                return row.access_token
            # 3. Daily token-call budget.
            day = _dt(now).date().isoformat()
            calls = row.token_calls_today if row.token_calls_day == day else 0
            if calls >= TOKEN_CALLS_PER_DAY - TOKEN_CALL_RESERVE:
                raise RateBudgetExhausted(
                    f"tenant {self.tenant!r}: {calls} Exact token calls today; Exact allows "
                    f"{TOKEN_CALLS_PER_DAY} per app and user per day and the last {TOKEN_CALL_RESERVE} are kept "
                    "for a reconnect. Refreshing resumes after 00:00 UTC.",
                    reset_at=_next_midnight(now),
                )
            # 4. Mark the refresh as started (committed before anything is sent).
            refresh_token = row.refresh_token
            assert refresh_token is not None
            marker = _dt(now)
            row.refresh_started_at = marker
            row.token_calls_day = day
            row.token_calls_today = calls + 1
        if interrupted is not None:
            log.warning(
                "tenant %s: a token refresh started at %s did not finish; trying the stored refresh token once",
                self.tenant,
                interrupted.isoformat(timespec="seconds"),
            )
        return self._send_refresh(refresh_token, marker, interrupted, failed_token)

    def _send_refresh(
        self, refresh_token: str, marker: datetime, interrupted: datetime | None, failed_token: str | None
    ) -> str:
        if TokenChain.before_send_hook is not None:
            TokenChain.before_send_hook()
        try:
            response = self._post_token("token_refresh", grant_type="refresh_token", refresh_token=refresh_token)
        except (AmbiguousWriteError, TransientError):
            # The marker stays: the next refresh will learn whether Exact rotated the pair.
            raise TransientError(
                f"tenant {self.tenant!r}: the Exact token refresh got no answer; the next attempt will find out "
                "whether the token chain survived"
            ) from None
        if TokenChain.after_receive_hook is not None:
            TokenChain.after_receive_hook()
        outcome, description = classify_token_response(response)
        if outcome == _Outcome.OK:
            body = token_json(response)
            if body is None:
                # HTTP 200 with a page that is not JSON: Exact's maintenance page (docs/sandbox-exact.md). Exact did not
                # process the refresh, so the stored refresh token is still the live one: clear our marker (as for
                # TooEarly) and let a later attempt refresh with it.
                self._clear_marker(marker, restore=interrupted)
                raise TransientError(
                    f"tenant {self.tenant!r}: Exact's token endpoint answered HTTP 200 with a page that is not JSON "
                    f"({response.headers.get('Content-Type') or 'no content type'}; a maintenance page?); the refresh "
                    "token was not used and the next attempt refreshes with it",
                    status=response.status_code,
                )
            pair = TokenPair.from_response(body)
            mask(pair.access_token, pair.refresh_token)
            access = self._store(pair, spent=refresh_token)
            self.refreshes += 1
            if interrupted is not None:
                log.warning(
                    "tenant %s: the interrupted refresh had not reached Exact; the chain is intact", self.tenant
                )
            return access
        if outcome == _Outcome.UNKNOWN:
            raise TransientError(
                f"tenant {self.tenant!r}: Exact's token endpoint answered {description}; the next attempt will "
                "find out whether the token chain survived"
            )
        if outcome in (_Outcome.TOO_EARLY, _Outcome.CAP):
            # Exact rotated nothing. Clear our marker (unless an older interrupted one is still unexplained).
            self._clear_marker(marker, restore=interrupted)
            if outcome == _Outcome.CAP:
                raise RateBudgetExhausted(
                    f"tenant {self.tenant!r}: Exact refused the token refresh ({description}); refreshing resumes "
                    "after 00:00 UTC",
                    reset_at=_next_midnight(self.clock()),
                )
            row = self._read()
            if failed_token is None and row is not None and row.access_token and self._still_valid(row, self.clock()):
                return row.access_token
            raise TransientError(
                f"tenant {self.tenant!r}: Exact refused the token refresh as too early ({description})"
            )
        if outcome == _Outcome.CREDENTIALS:
            self._clear_marker(marker, restore=interrupted)
            reason = f"{CREDENTIALS_REFUSED} (check the Airflow connection {self.conn_id})"
            self._mark_broken(reason)
            exc = TokenChainBroken(
                self.tenant,
                reason,
                how_to_fix=f"Fix the client id and secret of the Airflow connection {self.conn_id!r}",
            )
            self._notify(exc)
            raise exc
        # The chain is dead.
        if interrupted is not None:
            reason = (
                f"a refresh was interrupted at {interrupted.isoformat(timespec='seconds')} (the process doing it "
                "stopped before storing the new tokens) and Exact then refused the stored refresh token "
                f"({description}); the chain is dead"
            )
        else:
            reason = f"Exact refused the refresh token ({description}); the chain is dead"
        self._mark_broken(reason)
        exc = TokenChainBroken(self.tenant, reason, reconnect_hint(self.tenant))
        self._notify(exc)
        raise exc

    # -- writing -------------------------------------------------------------------------------------------------
    def _store(self, pair: TokenPair, *, spent: str | None) -> str:
        """Store a pair Exact just issued (module docstring: retried, never dropped) and return the access token to
        use. ``spent``: the refresh token Exact retired for it (None for a code exchange, which replaces any chain).
        The pair is written only while the row still holds ``spent``: after a lost lock, a row that moved on means
        another process reconnected (its chain is kept) or used the spent token (the chain is dead)."""
        self._held = None  # the next call reads the stored pair
        received = self.clock()

        def write(s: Session) -> tuple[str, str | None, str | None] | None:
            now = self.clock()
            row = self._read_locked(s)
            if row is None:
                row = TokenRecord(tenant=self.tenant, conn_id=self.conn_id, version=0, token_calls_today=0)
                s.add(row)
            elif spent is not None and row.refresh_token != spent:
                valid = row.access_token if row.status == "ok" and self._still_valid(row, now) else None
                return row.status, row.status_reason, valid
            row.access_token = pair.access_token
            row.refresh_token = pair.refresh_token
            row.access_issued_at = _dt(now)
            row.access_expires_at = _dt(now + pair.expires_in)
            row.refresh_issued_at = _dt(now)
            row.status = "ok"
            row.status_reason = None
            row.refresh_started_at = None
            row.version = (row.version or 0) + 1
            return None

        try:
            conflict = self._persist("store the new token pair", write)
        except _StoreFailed as exc:
            reason = (
                f"Exact issued a new token pair for connection {self.conn_id} at "
                f"{_dt(received).isoformat(timespec='seconds')}, but the connector database could not store it for "
                f"{self.store_window:.0f}s ({exc.attempts} attempts; last error: {exc.last_error}); the new refresh "
                "token is lost with this process and Exact has retired the stored one, so the chain is dead"
            )
            with contextlib.suppress(Exception):  # the database is most likely still unreachable
                self._mark_broken(reason)
            broken = TokenChainBroken(self.tenant, reason, reconnect_hint(self.tenant))
            self._notify(broken)
            raise broken from None
        if conflict is None:
            return pair.access_token
        status, status_reason, valid = conflict
        if status == "ok" and valid is not None:
            log.warning(
                "tenant %s: the token chain was replaced (reconnected) while this process stored a refresh; the "
                "newer chain is kept",
                self.tenant,
            )
            mask(valid)
            return valid
        reason = (
            f"another process used the stored refresh token while this process was storing the pair Exact had "
            f"just issued for it ({status_reason or 'no reason recorded'})"
        )
        raise TokenChainBroken(self.tenant, reason, reconnect_hint(self.tenant))

    def _persist(self, what: str, write: Callable[[Session], Any]) -> Any:
        """Run ``write`` in one transaction, holding the chain lock, retrying with backoff while the database is
        unreachable or locked for ``store_window`` real seconds; then ``_StoreFailed``."""
        deadline = time.monotonic() + self.store_window
        backoff = http.RetryPolicy(base_delay=0.25, max_delay=STORE_BACKOFF_MAX)
        attempts = 0
        while True:
            try:
                if self.lock.ensure_held():
                    self.lock_retakes += 1
                    log.warning(
                        "tenant %s: the token refresh lock died with its database session (a restart?); taken again",
                        self.tenant,
                    )
                with self._write_session() as s:
                    return write(s)
            except (OperationalError, InterfaceError, LockLost) as exc:
                if _schema_error(exc):
                    raise  # a missing table or column does not heal by waiting
                attempts += 1
                self.store_retries += 1
                last = _db_error(exc)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.error("tenant %s: could not %s for %.0fs: %s", self.tenant, what, self.store_window, last)
                    raise _StoreFailed(attempts, last) from None
                delay = min(remaining, max(0.05, http.backoff_delay(attempts - 1, backoff)))
                log.warning(
                    "tenant %s: could not %s (attempt %d: %s); retrying in %.1fs, for %.0fs more while holding "
                    "the refresh lock",
                    self.tenant,
                    what,
                    attempts,
                    last,
                    delay,
                    remaining,
                )
                time.sleep(delay)

    @contextlib.contextmanager
    def _write_session(self) -> Iterator[Session]:
        """One transaction on its own connection; on SQLite its wait for a locked file is ``store_attempt_timeout``
        (set on the raw connection: a statement through SQLAlchemy would begin the write transaction first)."""
        with self.engine.connect() as conn:
            make_durable(conn)  # a rotated pair must survive a power loss (store.db)
            restore: Any = None
            raw: Any = None
            if self.engine.dialect.name == "sqlite" and self.store_attempt_timeout is not None:
                raw = conn.connection.driver_connection
                assert raw is not None
                restore = raw.execute("PRAGMA busy_timeout").fetchone()[0]
                raw.execute(f"PRAGMA busy_timeout={int(self.store_attempt_timeout * 1000)}")
            try:
                with Session(bind=conn, expire_on_commit=False) as s, s.begin():
                    yield s
            finally:
                if raw is not None:
                    with contextlib.suppress(Exception):
                        raw.execute(f"PRAGMA busy_timeout={int(restore)}")

    def _clear_marker(self, marker: datetime, restore: datetime | None) -> None:
        with session_scope(self.engine, durable=True) as s:
            row = self._read_locked(s)
            if row is not None and row.refresh_started_at == marker:
                row.refresh_started_at = restore

    def _mark_broken(self, reason: str) -> None:
        self._held = None
        with session_scope(self.engine, durable=True) as s:
            row = self._read_locked(s)
            if row is None:
                return
            row.status = "broken"
            row.status_reason = reason
            row.refresh_started_at = None
            row.version = (row.version or 0) + 1
        log.error("tenant %s: Exact token chain marked broken: %s", self.tenant, reason)

    def mark_broken(self, reason: str) -> TokenChainBroken:
        """Mark the chain broken from outside (e.g. a fresh token refused with 401); returns the exception to raise."""
        self._held = None
        self._mark_broken(reason)
        exc = TokenChainBroken(self.tenant, reason, reconnect_hint(self.tenant))
        self._notify(exc)
        return exc

    def _audit_ctx(self, action: str) -> http.AuditContext | None:
        """Token calls are writes (they rotate the chain): one audit row per attempt, flow ``exact_token``, the
        connection as ``source_ref``; HTTP status and outcome only, never a token (``describe_token_response``)."""
        if self.audit is None:
            return None
        return http.AuditContext(tenant=self.tenant, flow=AUDIT_FLOW, action=action, source_ref=self.conn_id)

    def _notify(self, exc: TokenChainBroken) -> None:
        if self.on_broken is None:
            return
        try:
            self.on_broken(exc)  # an alerting callback sets exc.alerted (alerts.token_failure_alert does)
        except Exception:  # alerts never mask the real error
            log.exception("tenant %s: sending the token alert failed", self.tenant)

    # -- a new chain (consent) -----------------------------------------------------------------------------------
    def exchange_code(self, code: str, redirect_uri: str) -> TokenPair:
        """Trade an authorization code for the first pair and store it (a new chain replaces any old one)."""
        with self.lock.held():
            self._count_token_call()
            # (no marker: a lost answer here only loses the code, never an existing chain)
            try:
                response = self._post_token(
                    "token_exchange", grant_type="authorization_code", code=code, redirect_uri=redirect_uri
                )
            except AmbiguousWriteError:
                raise TransientError(
                    "the code exchange got no answer; codes are single use: start again with mlc exact connect"
                ) from None
            outcome, description = classify_token_response(response)
            if outcome == _Outcome.OK:
                body = token_json(response)
                if body is None:
                    raise TransientError(
                        "Exact's token endpoint answered HTTP 200 with a page that is not JSON (a maintenance page?); "
                        f"try again in a few minutes, starting with mlc exact connect --tenant {self.tenant} if the "
                        "code is older than 3 minutes",
                        status=response.status_code,
                    )
                pair = TokenPair.from_response(body)
                mask(pair.access_token, pair.refresh_token)
                self._store(pair, spent=None)  # retried like a refresh: the code is spent, the pair is all we have
                return pair
            if outcome == _Outcome.CREDENTIALS:
                raise RejectedError(
                    f"{CREDENTIALS_REFUSED} (check the Airflow connection {self.conn_id})", response.status_code
                )
            if outcome == _Outcome.CAP:
                raise RateBudgetExhausted(f"Exact refused the code exchange: {description}")
            raise RejectedError(
                f"Exact refused the authorization code ({description}); codes are valid 3 minutes and once: "
                f"start again with mlc exact connect --tenant {self.tenant}",
                response.status_code,
            )

    def _post_token(self, action: str, **grant: str) -> requests.Response:
        """One call to Exact's token endpoint (client credentials in the form body, as Exact wants them); audited
        without the form, never re-sent here. Callers decide what a lost answer means for their chain."""
        self.token_calls += 1
        form = {**grant, "client_id": self.app.client_id, "client_secret": self.app.client_secret}
        return http.send(
            self.session,
            "POST",
            self.app.token_url,
            write=True,
            policy=self.policy,
            data=form,
            audit=self.audit,
            audit_ctx=self._audit_ctx(action),
            describe=describe_token_response,
        )

    def _count_token_call(self) -> None:
        now = self.clock()
        day = _dt(now).date().isoformat()
        with session_scope(self.engine, durable=True) as s:
            row = self._read_locked(s)
            if row is None:
                row = TokenRecord(tenant=self.tenant, conn_id=self.conn_id, version=0, status="ok", token_calls_today=0)
                s.add(row)
            calls = row.token_calls_today if row.token_calls_day == day else 0
            if calls >= TOKEN_CALLS_PER_DAY:
                raise RateBudgetExhausted(
                    f"tenant {self.tenant!r}: {calls} Exact token calls today, the daily maximum",
                )
            row.token_calls_day = day
            row.token_calls_today = calls + 1


class _StoreFailed(Exception):
    """A rotated pair could not be stored within the store window (turned into ``TokenChainBroken``)."""

    def __init__(self, attempts: int, last_error: str) -> None:
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(last_error)


def _schema_error(exc: BaseException) -> bool:
    """SQLite reports a missing table or column as an OperationalError too; those are not worth retrying."""
    text_ = str(getattr(exc, "orig", None) or exc).lower()
    return any(s in text_ for s in ("no such table", "no such column", "syntax error"))


def _db_error(exc: BaseException) -> str:
    """A database error in one line, without SQL or parameters (SQLAlchemy's text carries both)."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    return f"{type(orig).__name__}: {first}"[:300]


def pid_tag() -> str:
    """Identifies this process in logs (used by the concurrency tests)."""
    return f"{os.uname().nodename}:{os.getpid()}"


__all__ = [
    "CREDENTIALS_REFUSED",
    "REFRESH_MIN_AGE",
    "ChainLock",
    "ConnectorError",
    "ExactApp",
    "LockLost",
    "TokenChain",
    "TokenPair",
    "TokenState",
    "classify_token_response",
    "mask",
    "reconnect_hint",
]
