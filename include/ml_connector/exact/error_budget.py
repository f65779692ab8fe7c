"""Exact's error budget, kept on our side.

Exact blocks an app for about an hour once it collects more than 10 error answers (400/401/403/404) per user,
division and endpoint within an hour (docs/sandbox-exact.md). A refused request is never resent blindly, but a
scheduled flow that meets the same refusal every run, or several tasks meeting it at once, could still reach the
limit. So every refused request leaves an audit row (writes already do), and before calling an endpoint of a
division the client counts that endpoint's refusals of the last hour from the audit log; at ``limit`` (8 by
default: a margin below Exact's 10) it sends nothing more and says until when.

The audit rows are the shared memory between tasks and workers; the count is read once per endpoint per client
and kept up to date in memory, so the check costs one query per endpoint and task, not one per call.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from ml_connector import http
from ml_connector.errors import ErrorBudgetSpent

#: The statuses Exact counts against the budget.
COUNTED = (400, 401, 403, 404)
DEFAULT_LIMIT = 8
WINDOW_S = 3600.0
FLOW = "exact_api"

_ENDPOINT = re.compile(r"/api/v1/(?:\d+/)?([^?(]+)")


def endpoint_of(url: str) -> str:
    """``https://…/api/v1/111/crm/Accounts(guid'…')?$select=…`` → ``crm/Accounts``."""
    m = _ENDPOINT.search(url)
    return m.group(1).rstrip("/") if m else url


class ErrorBudget:
    def __init__(
        self,
        engine: Engine | None,
        tenant: str,
        audit: http.AuditSink | None,
        *,
        limit: int = DEFAULT_LIMIT,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.tenant = tenant
        self.audit = audit
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._times: dict[tuple[int, str], list[float]] = {}
        self._lock = threading.Lock()

    def _load(self, division: int, endpoint: str) -> list[float]:
        """Refusal times of this endpoint in this division within the window, from the audit log."""
        if self.engine is None:
            return []
        from ml_connector.store.db import session_scope
        from ml_connector.store.models import AuditLog

        since = datetime.fromtimestamp(self.clock() - self.window_s, tz=UTC)
        with session_scope(self.engine) as session:
            rows = session.execute(
                select(AuditLog.at, AuditLog.url).where(
                    AuditLog.tenant == self.tenant,
                    AuditLog.division == division,
                    AuditLog.http_status.in_(COUNTED),
                    AuditLog.at >= since,
                )
            ).all()
        return sorted(at.timestamp() for at, url in rows if url and endpoint_of(url) == endpoint)

    def _recent(self, division: int, endpoint: str) -> list[float]:
        key = (division, endpoint)
        with self._lock:
            times = self._times.get(key)
        if times is None:
            times = self._load(division, endpoint)
        cutoff = self.clock() - self.window_s
        times = [t for t in times if t >= cutoff]
        with self._lock:
            self._times[key] = times
        return times

    def check(self, division: int | None, endpoint: str) -> None:
        """Raise :class:`ErrorBudgetSpent` when this endpoint of this division has ``limit`` refusals this hour."""
        if division is None:
            return  # calls without a division (current/Me) are not counted by Exact
        times = self._recent(division, endpoint)
        if len(times) >= self.limit:
            until = datetime.fromtimestamp(times[0] + self.window_s, tz=UTC)
            raise ErrorBudgetSpent(
                f"Exact refused {len(times)} requests to {endpoint} in division {division} within the last hour "
                f"(Exact blocks an app after 10); the connector sends nothing more to it before "
                f"{until:%Y-%m-%d %H:%M} UTC. Fix the cause named in the earlier alerts, then clear the task.",
                None,
            )

    def record(
        self, division: int | None, method: str, url: str, status: int, message: str, run_id: str | None
    ) -> None:
        """A refused request: an audit row (what Exact said, never a token) and one more against the budget."""
        endpoint = endpoint_of(url)
        if division is not None and status in COUNTED:
            self._recent(division, endpoint)  # load the count before this refusal's own audit row exists
        if self.audit is not None:
            self.audit.record(
                http.AuditEvent(
                    tenant=self.tenant,
                    flow=FLOW,
                    action="request_refused",
                    method=method,
                    url=url.split("?")[0],
                    status=status,
                    outcome="refused",
                    message=message[:2000],
                    division=division,
                    run_id=run_id,
                    target_ref=endpoint,
                )
            )
        if division is not None and status in COUNTED:
            self.note(division, endpoint)

    def note(self, division: int, endpoint: str) -> None:
        """One more refusal in memory (its audit row is written by whoever sent the request)."""
        times = self._recent(int(division), endpoint)
        with self._lock:
            self._times[(int(division), endpoint)] = [*times, self.clock()]

    def remaining(self, division: int, endpoint: str) -> int:
        return max(0, self.limit - len(self._recent(division, endpoint)))
