"""The Exact Online REST client: everything ``ExactOnlineHook`` does, without importing Airflow.

``ExactOnlineHook`` (hook.py) wraps one of these, built from an Airflow connection. Keeping the logic here lets the
CLI and the multi-process tests run it without Airflow's multi-second import; the behaviour is the same object.

Rules (docs/sandbox-exact.md; README.md, "Good API citizen"):
- ``Accept: application/json`` always; ``$select`` always; every ``__next`` followed (never ``$skip``).
- Divisions are pinned by the caller; ``CurrentDivision`` is never used to pick one.
- Calls to one division are sequential within a process and paced from the ``X-RateLimit-*`` headers.
- Reads: network errors, 5xx without an Exact error body and HTML maintenance pages are retried with full-jitter
  backoff, then ``TransientError``.
- Writes (POST): sent once. 400/403/404/409, and 500 *with* an Exact error body (validation errors come as 500),
  are ``RejectedError(Exact's message)``; a lost connection, a timeout after sending, a 5xx without an error body or
  a 200 HTML page are ``AmbiguousWriteError``. Every attempt is audited (without tokens).
- 401: refresh once (Exact allows a refresh after a 401) and send again; a second 401 marks the chain broken.
- 403 with a ``Reason`` header (NoDivisionAccess, DivisionBlocked, LicenseExpired, BlockedUser, …) is a
  ``RejectedError`` naming the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from sqlalchemy import Engine

from ml_connector import http
from ml_connector.errors import (
    AmbiguousWriteError,
    ConfigError,
    ConnectorError,
    RejectedError,
    RequestRefused,
    TokenChainBroken,
    TransientError,
)
from ml_connector.exact import odata
from ml_connector.exact.clock import sleeper_for
from ml_connector.exact.error_budget import COUNTED, ErrorBudget, endpoint_of
from ml_connector.exact.ratelimit import RateLimiter
from ml_connector.exact.tokens import CREDENTIALS_REFUSED, ExactApp, TokenChain, classify_token_response

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return importlib.metadata.version("ml-connector")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


#: Sent on every request, so Exact (and the sandbox's contract check) can tell the connector's calls apart.
USER_AGENT = f"ml-connector/{_version()}"
ME_SELECT = "CurrentDivision,UserID,UserName,FullName,Email"
_DIVISION_IN_URL = re.compile(r"/api/v1/(\d+)/")


class CountingSession(requests.Session):
    """A ``requests.Session`` that counts the requests it sends (``call_count`` for benchmarks)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self._count_lock = threading.Lock()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        with self._count_lock:
            self.count += 1
        return super().request(method, url, *args, **kwargs)


class ExactClient:
    """Exact Online REST calls for one tenant on one app (see the module docstring)."""

    def __init__(
        self,
        app: ExactApp,
        tenant: str,
        conn_id: str,
        *,
        engine: Engine,
        audit: http.AuditSink | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        policy: http.RetryPolicy = http.RetryPolicy(),
        on_broken: Callable[[TokenChainBroken], None] | None = None,
        burst: int = 5,
    ) -> None:
        self.app = app
        self.tenant = tenant
        self.conn_id = conn_id
        self.engine = engine
        self.audit = audit
        self.clock = clock
        self.sleep = sleep or sleeper_for(clock)
        self.policy = policy
        self.session = http.env_settings_once(CountingSession(), app.base_url)
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        self.tokens = TokenChain(
            engine,
            tenant,
            conn_id,
            app,
            session=http.env_settings_once(requests.Session(), app.token_url),
            clock=clock,
            policy=policy,
            on_broken=on_broken,
            audit=audit,
        )
        self.limiter = RateLimiter(clock=clock, sleep=self.sleep, burst=burst, max_wait=policy.max_429_wait)
        self._division_locks: dict[int, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._me: dict[str, Any] | None = None
        self.errors = ErrorBudget(engine, tenant, audit, clock=clock)
        # Reads Exact refused in this client's life (a task): the same request is never sent again.
        self._refused: dict[tuple[str, str], RejectedError] = {}

    def __repr__(self) -> str:
        return f"ExactClient(tenant={self.tenant!r}, conn_id={self.conn_id!r}, host={self.app.host!r})"

    @property
    def call_count(self) -> int:
        """API requests sent by this client (retries included; token calls not)."""
        return self.session.count

    # -- URLs ----------------------------------------------------------------------------------------------------
    def url(self, division: int | None, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return self._same_origin(path)
        path = path.lstrip("/")
        if division is None:
            return f"{self.app.base_url}/api/v1/{path}"
        return f"{self.app.base_url}/api/v1/{int(division)}/{path}"

    def _same_origin(self, link: str) -> str:
        """A link from a response, moved onto our configured host: the bearer token never goes anywhere else."""
        ours = urlsplit(self.app.base_url)
        theirs = urlsplit(link)
        if (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc):
            return link
        return urlunsplit((ours.scheme, ours.netloc, theirs.path, theirs.query, ""))

    @staticmethod
    def division_of(url: str) -> int | None:
        match = _DIVISION_IN_URL.search(url)
        return int(match.group(1)) if match else None

    def _division_lock(self, division: int | None) -> contextlib.AbstractContextManager[Any]:
        if division is None:
            return contextlib.nullcontext()
        with self._locks_guard:
            return self._division_locks.setdefault(int(division), threading.Lock())

    # -- the one place that sends --------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        url: str,
        *,
        division: int | None,
        write: bool,
        audit_ctx: http.AuditContext | None = None,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send with auth, pacing, retries, the 401 rule and the maintenance-page rule; returns a final response."""
        with self._division_lock(division):
            token: str | None = None
            unauthorized = 0
            maintenance = 0
            while True:
                if division is not None:
                    self.limiter.before_call(division)  # may wait: take the token afterwards
                if token is None:
                    token = self.tokens.get_access_token()
                on_429 = None
                if division is not None:
                    div = int(division)

                    def on_429(response: requests.Response, n: int, div: int = div) -> float:
                        return self.limiter.on_429(div, response.headers, n)

                try:
                    response = http.send(
                        self.session,
                        method,
                        url,
                        write=write,
                        policy=self.policy,
                        on_429=on_429,
                        audit=self.audit if write else None,
                        audit_ctx=audit_ctx,
                        describe=_describe_write,
                        sleep=self.sleep,
                        params=params,
                        json=json_body,
                        headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                    )
                except requests.RequestException as exc:  # anything http.send does not translate
                    if write:
                        raise AmbiguousWriteError(
                            f"{method} {_path(url)}: {type(exc).__name__} after sending; the write may have happened"
                        ) from None
                    raise TransientError(f"{method} {_path(url)}: {type(exc).__name__}") from None
                if division is not None:
                    self.limiter.observe(division, response.headers)
                if response.status_code == 401:
                    unauthorized += 1
                    if unauthorized == 1:
                        log.info("tenant %s: 401 from Exact; refreshing the access token once", self.tenant)
                        token = self.tokens.after_unauthorized(token)
                        continue
                    raise self.tokens.mark_broken(
                        "Exact refused a freshly refreshed access token (HTTP 401 twice); the consent may have "
                        "been withdrawn"
                    )
                if 200 <= response.status_code < 300 and _is_html(response):
                    if write:
                        raise AmbiguousWriteError(
                            f"{method} {_path(url)}: HTTP {response.status_code} with an HTML page instead of JSON "
                            "(maintenance?); the write may or may not have been applied",
                            response.status_code,
                        )
                    maintenance += 1
                    if maintenance >= self.policy.max_attempts:
                        raise TransientError(
                            f"{method} {_path(url)}: Exact answered with an HTML (maintenance) page "
                            f"{maintenance} times",
                            response.status_code,
                        )
                    delay = http.backoff_delay(maintenance - 1, self.policy)
                    log.warning("%s %s: HTML maintenance page; retry in %.1fs", method, _path(url), delay)
                    time.sleep(delay)
                    token = None
                    continue
                return response

    def _json(self, method: str, url: str, response: requests.Response, *, write: bool) -> Any:
        """The JSON of a final response, or the right exception."""
        status = response.status_code
        if 200 <= status < 300:
            if status == 204 or not response.content:
                return None
            try:
                return http.json_of(response)
            except ValueError:
                if write:
                    raise AmbiguousWriteError(
                        f"{method} {_path(url)}: HTTP {status} with a body that is not JSON", status
                    ) from None
                raise TransientError(
                    f"{method} {_path(url)}: HTTP {status} with a body that is not JSON", status
                ) from None
        error = odata.parse_error(response.content)
        message = error.message if error and error.message else ""
        if status == 403:
            reason = response.headers.get("Reason", "")
            text = f"{reason}: {message}" if reason and message else (reason or message or "HTTP 403 Forbidden")
            raise RejectedError(text, status, body=_body(response))
        if status == 429:
            raise TransientError(f"{method} {_path(url)}: still rate limited (429) after waiting", status)
        if 400 <= status < 500:
            raise RejectedError(message or f"{method} {_path(url)}: HTTP {status}", status, body=_body(response))
        if error is not None and write:  # 5xx with an Exact error body: an answer (validation errors come as 500)
            raise RejectedError(message or f"HTTP {status}", status, body=_body(response))
        if write:
            raise AmbiguousWriteError(
                f"{method} {_path(url)}: HTTP {status} without an error body; the write may have been applied",
                status,
            )
        raise TransientError(f"{method} {_path(url)}: HTTP {status}", status)

    # -- public API ------------------------------------------------------------------------------------------------
    def get(self, division: int | None, path: str, params: dict[str, Any] | None = None) -> Any:
        """One GET (network errors, 5xx and 429 retried as a read); the raw JSON payload.

        A GET that Exact refuses (400/403/404) is a ``RejectedError`` naming the endpoint, the division and Exact's
        message: it is audited, counted against the error budget (:mod:`ml_connector.exact.error_budget`) and
        never sent again by this client; the task fails at once (``flows.runtime.fail_fast``)."""
        url = self.url(division, path)
        if division is None and path.startswith(("http://", "https://")):
            division = self.division_of(url)
        key = (url, repr(sorted((params or {}).items())))
        if key in self._refused:
            raise self._refused[key]
        endpoint = endpoint_of(url)
        self.errors.check(division, endpoint)
        response = self._send("GET", url, division=division, write=False, params=params)
        try:
            return self._json("GET", url, response, write=False)
        except RejectedError as exc:
            where = f"division {division}" if division is not None else "no division"
            refused = RequestRefused(exc.message, exc.status, body=exc.body, what=f"GET {endpoint} ({where})")
            self.errors.record(division, "GET", url, exc.status or 0, exc.message, None)
            self._refused[key] = refused
            raise refused from None

    def iter_collection(
        self,
        division: int,
        path: str,
        *,
        select: list[str] | str,
        filter: str | None = None,
        expand: str | None = None,
        top: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every row of a collection, following each ``__next`` (rows are yielded as pages arrive)."""
        query: dict[str, Any] = {"$select": select if isinstance(select, str) else ",".join(select)}
        if filter:
            query["$filter"] = filter
        if expand:
            query["$expand"] = expand
        if top is not None:
            query["$top"] = int(top)
        query.update(params or {})
        url: str | None = self.url(division, path)
        page_params: dict[str, Any] | None = query
        seen = 0
        while url:
            payload = self.get(division, url, page_params)
            for row in odata.results(payload):
                yield row
                seen += 1
                if top is not None and seen >= top:
                    return
            url = odata.next_link(payload)
            page_params = None  # __next carries the whole query

    def iter_expanded(
        self, entity: dict[str, Any], nav: str, *, select: list[str] | str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The rows of an expanded navigation collection, following its own ``__next``.

        A navigation property that was not expanded (``{"__deferred": {"uri": …}}``) is fetched from its URI, with
        ``select`` as ``$select`` (Exact wants one); ``__next`` links carry their query already.
        """
        value = entity.get(nav)
        if value is None:
            return
        if isinstance(value, list):
            yield from value
            return
        if not isinstance(value, dict):
            raise ValueError(f"{nav} is not a navigation collection")
        params: dict[str, Any] | None = None
        if "__deferred" in value:
            link: str | None = (value.get("__deferred") or {}).get("uri")
            if select is not None:
                params = {"$select": select if isinstance(select, str) else ",".join(select)}
        else:
            yield from value.get("results") or []
            link = value.get("__next")
        while link:
            url = self._same_origin(link)
            payload = self.get(self.division_of(url), url, params)
            yield from odata.results(payload)
            link = odata.next_link(payload)
            params = None

    def post(self, division: int, path: str, body: dict[str, Any], *, audit_ctx: http.AuditContext) -> dict[str, Any]:
        """Create one entity; returns it as Exact stored it (``d``). Never re-sent blindly (see module docstring)."""
        url = self.url(division, path)
        if audit_ctx.division is None:
            audit_ctx = dataclasses.replace(audit_ctx, division=int(division))
        self.errors.check(division, endpoint_of(url))
        response = self._send(
            "POST",
            url,
            division=division,
            write=True,
            audit_ctx=audit_ctx,
            json_body=body,
            headers={"Prefer": "return=representation", "Content-Type": "application/json"},
        )
        if response.status_code in COUNTED:  # audited by http.send; counted here for this client's next check
            self.errors.note(division, endpoint_of(url))
        payload = self._json("POST", url, response, write=True)
        try:
            return odata.entity(payload)
        except ValueError:
            raise AmbiguousWriteError(
                f"POST {_path(url)}: HTTP {response.status_code} without the created entity", response.status_code
            ) from None

    def delete(self, division: int, path: str, *, audit_ctx: http.AuditContext) -> None:
        """Delete one entity (``path`` names it with its key); sent once, like every write. 404 is a
        ``RejectedError`` (the entity is not there)."""
        url = self.url(division, path)
        if audit_ctx.division is None:
            audit_ctx = dataclasses.replace(audit_ctx, division=int(division))
        self.errors.check(division, endpoint_of(url))
        response = self._send("DELETE", url, division=division, write=True, audit_ctx=audit_ctx)
        if response.status_code in COUNTED:
            self.errors.note(division, endpoint_of(url))
        self._json("DELETE", url, response, write=True)

    def me(self) -> dict[str, Any]:
        """``current/Me`` (cached): who consented. Its ``CurrentDivision`` is never used to pick a division."""
        if self._me is None:
            payload = self.get(None, "current/Me", {"$select": ME_SELECT})
            self._me = odata.entity(payload)
        return self._me

    def check_divisions(self, divisions: list[int]) -> None:
        """Raise ``ConfigError`` naming every division the consenting user cannot use."""
        problems: list[str] = []
        for division in divisions:
            try:
                payload = self.get(
                    division,
                    "system/Divisions",
                    {"$select": "Code,Description", "$filter": odata.eq("Code", int(division))},
                )
                codes = {int(row.get("Code", -1)) for row in odata.results(payload) if row.get("Code") is not None}
                if codes and int(division) not in codes:
                    problems.append(f"division {division} not accessible: not among the user's divisions")
            except RejectedError as exc:
                problems.append(f"division {division} not accessible: {exc.message}")
        if problems:
            raise ConfigError(problems)

    def check_client_credentials(self) -> bool:
        """Ask Exact whether it accepts the client id and secret, without touching the token chain.

        Sends an authorization-code grant with a code that cannot exist: a wrong client id/secret is refused
        as such (``invalid_request``/``invalid_client``), right credentials get ``invalid_grant``. Used by the
        connection test only.
        """
        form = {
            "grant_type": "authorization_code",
            "code": "mlc-connection-test",
            "redirect_uri": self.app.redirect_uri or "urn:mlc:paste",
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
        }
        try:
            response = http.send(
                self.tokens.session, "POST", self.app.token_url, write=True, policy=self.policy, data=form
            )
        except AmbiguousWriteError:  # nothing to be ambiguous about: this grant cannot succeed
            raise TransientError(f"cannot reach Exact at {self.app.host}") from None
        outcome, _ = classify_token_response(response)
        return outcome != "credentials"

    def test_connection(self, divisions: list[int], *, probe_credentials: bool = True) -> tuple[bool, str]:
        """Token (refreshed if due) + ``current/Me`` + each division; a precise message either way.

        ``probe_credentials`` first asks the token endpoint whether the client id/secret are accepted (one
        deliberately failing call; the *Test* button wants it, ``mlc status`` does not).
        """
        try:
            if probe_credentials and not self.check_client_credentials():
                return False, f"{CREDENTIALS_REFUSED} (check the Airflow connection {self.conn_id})"
            self.tokens.get_access_token()
            me = self.me()
            self.check_divisions(divisions)
        except TokenChainBroken as exc:
            return False, f"tenant {self.tenant}: {exc.reason}: {exc.how_to_fix}"
        except ConfigError as exc:
            return False, f"tenant {self.tenant}: " + "; ".join(exc.problems)
        except ConnectorError as exc:
            return False, f"tenant {self.tenant}: {exc}"
        except requests.RequestException as exc:
            return False, f"tenant {self.tenant}: cannot reach {self.app.host} ({type(exc).__name__})"
        who = me.get("UserName") or me.get("FullName") or me.get("UserID") or "?"
        return True, f"tenant {self.tenant}: connected as {who}; divisions {', '.join(map(str, divisions))} accessible"


# --- helpers --------------------------------------------------------------------------------------------------------
def _path(url: str) -> str:
    return urlsplit(url).path


def _is_html(response: requests.Response) -> bool:
    return odata.looks_like_html(response.headers.get("Content-Type", ""), response.content[:200])


def _body(response: requests.Response) -> str:
    return response.text[:2000]


# Key fields of what a POST created, in the order we prefer them for the audit row's target id.
_CREATED_KEYS = ("EntryID", "ID", "PurchaseOrderID")


def _created_key(response: requests.Response) -> str | None:
    try:
        body = http.json_of(response)
    except ValueError:
        return None
    entity = body.get("d") if isinstance(body, dict) else None
    if not isinstance(entity, dict):
        return None
    return next((str(entity[k]) for k in _CREATED_KEYS if entity.get(k)), None)


def _entry_number(response: requests.Response) -> str | None:
    try:
        body = http.json_of(response)
    except ValueError:
        return None
    entity = body.get("d") if isinstance(body, dict) else None
    return str(entity["EntryNumber"]) if isinstance(entity, dict) and entity.get("EntryNumber") else None


def _describe_write(response: requests.Response) -> tuple[str, ...]:
    """The audit outcome of one write attempt (never contains a token: Exact's bodies carry none), and on success
    the key of the entity created, so the audit row names the target record."""
    status = response.status_code
    if 200 <= status < 300:
        if _is_html(response):
            return "ambiguous", "HTML page instead of JSON (maintenance?)"
        number = _entry_number(response)
        return "ok", f"EntryNumber {number}" if number else "", _created_key(response)
    if status == 401:
        return "unauthorized", "access token refused; refreshing once"
    if status == 429:
        return "rate_limited", ""
    error = odata.parse_error(response.content)
    if error is not None:
        return "rejected", error.message
    if status == 403:
        return "rejected", response.headers.get("Reason", "") or "HTTP 403"
    if status < 500:
        return "rejected", f"HTTP {status}"
    return "ambiguous", f"HTTP {status} without an error body"
