"""HTTP behaviour both vendor hooks share.

- Every call has a timeout.
- Reads are retried on network errors and 5xx with exponential backoff and *full jitter*
  (delay = uniform(0, min(cap, base * 2**attempt))), so many workers do not retry in lock-step.
- Writes are never re-sent here: if a write's outcome is unknown (timeout or connection lost after sending,
  5xx without a usable body) the caller gets ``AmbiguousWriteError`` and must look at the target first.
- 429s wait as long as the vendor-specific ``on_429`` says (bounded), then try again; a 429 is a refusal
  before any processing, so this holds for writes too.
- Every write attempt is handed to the audit sink (before any error about it leaves ``send``, a 429 whose
  ``on_429`` gives up included); tokens never reach it. A write about several records (``AuditContext.subjects``)
  gets one row per record.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from ml_connector.errors import AmbiguousWriteError, RejectedError, TransientError
from ml_connector.net_policy import guard_redirects

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_429_wait: float = 65.0
    max_429_retries: int = 5

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff for the given 0-based retry number."""
    cap = min(policy.max_delay, policy.base_delay * (2**attempt))
    return (rng or random).uniform(0, cap)


@dataclass
class AuditEvent:
    tenant: str
    flow: str
    action: str
    method: str
    url: str
    status: int | None
    outcome: str
    message: str = ""
    source_id: str | None = None
    source_ref: str | None = None
    target_id: str | None = None
    target_ref: str | None = None
    division: int | None = None
    run_id: str | None = None
    attempt: int = 1
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class AuditSink(Protocol):
    def record(self, event: AuditEvent) -> None: ...


@dataclass
class AuditContext:
    """What a write is about, so its audit row can name the records on both sides."""

    tenant: str
    flow: str
    action: str
    source_id: str | None = None
    source_ref: str | None = None
    target_ref: str | None = None
    division: int | None = None
    run_id: str | None = None
    # The ledger's attempt number for this record; when unset, the HTTP attempt within this call is used.
    attempt: int | None = None
    # A write about several records at once (a supplier batch): one ``(source_id, source_ref, target_ref)`` per
    # record. When set, each write attempt gets one audit row per record (same status, outcome and message), so
    # every record's history names the attempts that carried it.
    subjects: tuple[tuple[str | None, str | None, str | None], ...] = ()


class NullAudit:
    def record(self, event: AuditEvent) -> None:
        return None


def _strip_query(url: str) -> str:
    # Query strings can carry secrets in some APIs; audit rows keep only the path.
    return url.split("?", 1)[0]


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    write: bool,
    policy: RetryPolicy = RetryPolicy(),
    on_429: Callable[[requests.Response, int], float] | None = None,
    audit: AuditSink | None = None,
    audit_ctx: AuditContext | None = None,
    describe: Callable[[requests.Response], tuple[str, ...]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> requests.Response:
    """Send one logical request with the project's retry rules and return the final response.

    The response may still be a 4xx/5xx: turning it into a result or an error is the hook's job, because what
    counts as "rejected" differs per vendor. ``describe(response) -> (outcome, message[, target_id])`` lets the
    hook name the outcome of a write, and the record it created, for the audit row.
    """
    kwargs.setdefault("timeout", policy.timeout)
    guard_redirects(session)  # credentials never follow a redirect to another host
    attempt = 0
    rate_limited = 0
    while True:
        attempt += 1
        try:
            response = session.request(method, url, **kwargs)
        # ChunkedEncodingError (an incomplete body: the connection dropped after the head) is not a subclass of
        # requests.ConnectionError, but it is the same situation: the server may have acted, no usable answer.
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            if write:
                _audit(audit, audit_ctx, method, url, None, "ambiguous", type(exc).__name__, attempt)
                raise AmbiguousWriteError(
                    f"{method} {_strip_query(url)}: no usable response ({type(exc).__name__}); "
                    "the write may have been applied"
                ) from None
            if attempt >= policy.max_attempts:
                raise TransientError(
                    f"{method} {_strip_query(url)}: {type(exc).__name__} after {attempt} attempts"
                ) from None
            delay = backoff_delay(attempt - 1, policy)
            log.warning("%s %s: %s; retry %d in %.1fs", method, _strip_query(url), type(exc).__name__, attempt, delay)
            sleep(delay)
            continue
        except RejectedError as exc:  # a redirect to another host, refused by net_policy's guard: not followed
            if write:
                _audit(audit, audit_ctx, method, url, exc.status, "rejected", str(exc)[:500], attempt)
            raise

        if response.status_code == 429 and on_429 is not None and rate_limited < policy.max_429_retries:
            rate_limited += 1
            try:
                wait = max(0.0, min(on_429(response, rate_limited), policy.max_429_wait))
            except Exception as exc:
                # on_429 gives up (e.g. the daily budget is spent): the attempt was still sent and answered 429,
                # so its audit row is written before the error leaves.
                if write:
                    _audit(audit, audit_ctx, method, url, 429, "rate_limited", f"not retried: {exc}"[:500], attempt)
                raise
            if write:
                _audit(audit, audit_ctx, method, url, 429, "rate_limited", f"waiting {wait:.1f}s", attempt)
            log.info("%s %s: 429, waiting %.1fs", method, _strip_query(url), wait)
            sleep(wait)
            continue

        if write:
            outcome, message, *target = describe(response) if describe else _default_outcome(response)
            _audit(audit, audit_ctx, method, url, response.status_code, outcome, message, attempt, *target[:1])
            return response

        # A read's 5xx is an outage even with an error body (only writes get validation errors as 500s, and
        # writes never reach here): retried with backoff; 4xx answers are final.
        if response.status_code >= 500 and attempt < policy.max_attempts:
            delay = backoff_delay(attempt - 1, policy)
            log.warning(
                "%s %s: HTTP %d; retry %d in %.1fs",
                method,
                _strip_query(url),
                response.status_code,
                attempt,
                delay,
            )
            sleep(delay)
            continue
        return response


def env_settings_once(session: requests.Session, *urls: str) -> requests.Session:
    """Read the environment's proxy and CA-bundle settings once, for the hosts this session talks to (``urls``), and
    stop ``requests`` from looking them up again on every request (``trust_env=False``: that lookup scanned the whole
    environment per call, a measurable share of a request's CPU). ``NO_PROXY`` is honoured per URL; hosts the
    environment proxies differently keep the per-request lookup."""
    if not session.trust_env or not urls:
        return session
    found = [requests.utils.get_environ_proxies(url) for url in urls if url]
    if any(p != found[0] for p in found[1:]):
        return session
    session.proxies.update(found[0] if found else {})
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle
    session.trust_env = False
    return session


_UNPARSED = object()


def json_of(response: requests.Response) -> Any:
    """The response body as JSON, parsed once per response (later calls return the same object, or raise the same
    ``ValueError``): the hooks, the audit description and the caller all read the same answer."""
    cached = response.__dict__.get("_mlc_json", _UNPARSED)
    if cached is _UNPARSED:
        try:
            cached = json.loads(response.content)
        except ValueError as exc:  # (json.JSONDecodeError and UnicodeDecodeError are ValueErrors)
            cached = exc
        response.__dict__["_mlc_json"] = cached
    if isinstance(cached, ValueError):
        raise cached
    return cached


def _default_outcome(response: requests.Response) -> tuple[str, str]:
    if response.status_code < 300:
        return "ok", ""
    return ("rejected" if response.status_code < 500 else "error"), response.text[:500]


def _audit(
    audit: AuditSink | None,
    ctx: AuditContext | None,
    method: str,
    url: str,
    status: int | None,
    outcome: str,
    message: str,
    attempt: int,
    target_id: str | None = None,
) -> None:
    if audit is None or ctx is None:
        return
    subjects = ctx.subjects or ((ctx.source_id, ctx.source_ref, ctx.target_ref),)
    for source_id, source_ref, target_ref in subjects:
        audit.record(
            AuditEvent(
                tenant=ctx.tenant,
                flow=ctx.flow,
                action=ctx.action,
                method=method,
                url=_strip_query(url),
                status=status,
                outcome=outcome,
                message=message[:2000],
                source_id=source_id,
                source_ref=source_ref,
                target_id=target_id,
                target_ref=target_ref,
                division=ctx.division,
                run_id=ctx.run_id,
                attempt=ctx.attempt if ctx.attempt is not None else attempt,
            )
        )
