"""Exact's call limits: per app and division, a minutely and a daily fixed window aligned to the clock, and the
error budget (400/401/403/404 per app, user, division, endpoint and hour)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from sandbox.common.clock import Clock
from sandbox.exact.settings import ExactSettings


class RateLimiter:
    def __init__(self, clock: Clock, settings: Callable[[], ExactSettings]) -> None:
        self.clock = clock
        self.settings = settings
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, int, str, int], int] = {}

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()

    def hit(self, client_id: str, division: int) -> tuple[bool, dict[str, str]]:
        """Count one call. Returns (allowed, headers). A refused call is not counted."""
        s = self.settings()
        now = self.clock.time()
        m_start = math.floor(now / s.minute_window_s)
        d_start = math.floor(now / s.day_window_s)
        m_reset = round((m_start + 1) * s.minute_window_s * 1000)
        d_reset = round((d_start + 1) * s.day_window_s * 1000)
        mk = (client_id, division, "m", m_start)
        dk = (client_id, division, "d", d_start)
        with self.lock:
            if len(self.counts) > 10_000:
                self.counts = {k: v for k, v in self.counts.items() if k[3] in (m_start, d_start)}
            used_m = self.counts.get(mk, 0)
            used_d = self.counts.get(dk, 0)
            minutely = {
                "X-RateLimit-Minutely-Limit": str(s.minutely_limit),
                "X-RateLimit-Minutely-Remaining": "0",
                "X-RateLimit-Minutely-Reset": str(m_reset),
            }
            daily = {
                "X-RateLimit-Limit": str(s.daily_limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(d_reset),
            }
            if not s.rate_limits_enabled:
                return True, {}
            if used_d >= s.daily_limit:
                return False, daily
            if used_m >= s.minutely_limit:
                return False, minutely
            self.counts[mk] = used_m + 1
            self.counts[dk] = used_d + 1
            minutely["X-RateLimit-Minutely-Remaining"] = str(s.minutely_limit - used_m - 1)
            daily["X-RateLimit-Remaining"] = str(s.daily_limit - used_d - 1)
            return True, {**minutely, **daily}


class ErrorBudget:
    def __init__(self, clock: Clock, settings: Callable[[], ExactSettings]) -> None:
        self.clock = clock
        self.settings = settings
        self.lock = threading.Lock()
        self.errors: dict[tuple[str, str, int, str, int], int] = {}
        self.blocked: dict[tuple[str, str, int, str], float] = {}

    def reset(self) -> None:
        with self.lock:
            self.errors.clear()
            self.blocked.clear()

    def blocked_until(self, client_id: str, user_id: str, division: int, endpoint: str) -> float | None:
        s = self.settings()
        if not s.error_budget_enabled:
            return None
        with self.lock:
            until = self.blocked.get((client_id, user_id, division, endpoint))
            if until is None:
                return None
            if self.clock.time() >= until:
                del self.blocked[(client_id, user_id, division, endpoint)]
                return None
            return until

    def record(self, client_id: str, user_id: str, division: int, endpoint: str, status: int) -> None:
        s = self.settings()
        if not s.error_budget_enabled or status not in s.error_budget_statuses:
            return
        now = self.clock.time()
        window = math.floor(now / s.error_budget_window_s)
        key = (client_id, user_id, division, endpoint, window)
        with self.lock:
            if len(self.errors) > 10_000:  # bounded: only the current window matters
                self.errors = {k: v for k, v in self.errors.items() if k[4] == window}
            self.errors[key] = self.errors.get(key, 0) + 1
            if self.errors[key] > s.error_budget_threshold:
                self.blocked[key[:4]] = now + s.error_budget_block_s
