"""Exact Online's per-division call budget, driven by the ``X-RateLimit-*`` headers (docs/sandbox-exact.md).

Exact allows 60 calls a minute and 5,000 a day per app and division; every division call reports what is left:
``X-RateLimit-Minutely-Limit|Remaining|Reset`` and ``X-RateLimit-Limit|Remaining|Reset`` (resets in epoch ms).
The budget is shared with every other process of the app, so the headers, not our own counting, are the truth.

- **Pacing.** After a small burst, calls are spaced so the remaining minutely budget is spread over the time left
  in the window (``interval = time_left / remaining``): a steady run never sees a 429.
- **429** (empty body, no ``Retry-After``): wait until the minutely reset the response (or the last one) names;
  never a reset in the past (clock skew), never unbounded (``max_wait``), short growing waits when no usable reset.
- **Daily budget spent**: ``RateBudgetExhausted(reset_at)`` before sending anything more; also when only the calls
  this flow keeps for others are left (``keep_share``, a flow's ``exact_daily_share``: ``exact.daily_budget``).
- ``current/Me`` and other division-less calls do not count and are not paced (the hook does not call in here).

All times are on the injected ``clock`` (epoch seconds) and waits go through the injected ``sleep``, so a test can
run the whole thing on a sandbox's sped-up clock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ml_connector.errors import RateBudgetExhausted

log = logging.getLogger(__name__)

H_MIN_LIMIT = "X-RateLimit-Minutely-Limit"
H_MIN_REMAINING = "X-RateLimit-Minutely-Remaining"
H_MIN_RESET = "X-RateLimit-Minutely-Reset"
H_DAY_LIMIT = "X-RateLimit-Limit"
H_DAY_REMAINING = "X-RateLimit-Remaining"
H_DAY_RESET = "X-RateLimit-Reset"


def _int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None or str(value).strip() == "":
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _epoch(headers: Mapping[str, str], name: str) -> float | None:
    """A reset header as epoch seconds. Exact sends milliseconds; a value that can only be seconds is taken so."""
    value = headers.get(name)
    if value is None or str(value).strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number / 1000.0 if number > 1e11 else number


@dataclass
class DivisionBudget:
    minutely_limit: int | None = None
    minutely_remaining: int | None = None
    minutely_reset: float | None = None
    daily_limit: int | None = None
    daily_remaining: int | None = None
    daily_reset: float | None = None
    last_call_at: float | None = None
    waited: float = 0.0  # total seconds spent pacing (for benchmarks)


class RateLimiter:
    """Per-division budget of one process. Thread-safe; calls to one division are expected to be sequential."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        burst: int = 5,
        max_wait: float = 65.0,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.burst = burst
        self.max_wait = max_wait
        self._budgets: dict[int, DivisionBudget] = {}
        self._lock = threading.Lock()
        #: the fraction of each division's daily limit left for others (1 - the flow's share; 0: spend it all)
        self.keep_share = 0.0
        self.keep_for = "other work"  # for whom, in the message
        self.share_of = "this flow's share"  # whose share, in the message
        #: called with the division just before a call is refused for the daily budget (``exact.daily_budget``
        #: remembers it, so the next task refuses without spending a call to learn it)
        self.on_spent: Callable[[int], None] | None = None

    def kept(self, division: int) -> int:
        """Calls of ``division``'s daily budget this process leaves for others (0 while the limit is unknown)."""
        limit = self.budget(division).daily_limit
        return math.ceil(limit * self.keep_share - 1e-9) if limit and self.keep_share > 0 else 0

    def budget(self, division: int) -> DivisionBudget:
        with self._lock:
            return self._budgets.setdefault(int(division), DivisionBudget())

    # -- before a call ---------------------------------------------------------------------------------------
    def delay_for(self, division: int) -> float:
        """How long to wait before the next call to ``division`` (raises when the daily budget is spent)."""
        b = self.budget(division)
        now = self.clock()
        if b.daily_remaining is not None and b.daily_remaining <= 0:
            if b.daily_reset is not None and b.daily_reset > now:
                self._spent(division)
                raise RateBudgetExhausted(
                    f"Exact daily call budget for division {division} is spent "
                    f"({b.daily_limit} calls); it resets at {_fmt(b.daily_reset)}",
                    reset_at=datetime.fromtimestamp(b.daily_reset, tz=UTC),
                )
            # The reset is behind us (or our clock runs ahead): the day rolled over; the next answer will tell.
            b.daily_remaining = None
        keep = self.kept(division)
        spent = b.daily_remaining is not None and b.daily_remaining <= keep
        if keep and spent and b.daily_reset is not None and b.daily_reset > now:
            self._spent(division)
            raise RateBudgetExhausted(
                f"{self.share_of} of Exact's daily call budget for division {division} is used: "
                f"{b.daily_remaining} of {b.daily_limit} calls are left and {keep} are kept for {self.keep_for}; "
                f"it resets at {_fmt(b.daily_reset)}",
                reset_at=datetime.fromtimestamp(b.daily_reset, tz=UTC),
            )
        if b.minutely_remaining is None or b.minutely_reset is None:
            return 0.0
        left = b.minutely_reset - now
        if left <= 0:
            return 0.0  # a new window has started (by our clock); a lagging server answers 429 and on_429 waits
        if b.minutely_remaining <= 0:
            return min(left + 0.01, self.max_wait)
        used = (b.minutely_limit or 0) - b.minutely_remaining
        if used < self.burst:
            return 0.0
        interval = left / b.minutely_remaining
        since = now - b.last_call_at if b.last_call_at is not None else interval
        return max(0.0, min(interval - since, self.max_wait))

    def _spent(self, division: int) -> None:
        if self.on_spent is not None:
            try:
                self.on_spent(division)
            except Exception:  # remembering is an optimisation: the refusal stands
                log.exception("could not remember that division %s's daily budget is spent", division)

    def before_call(self, division: int) -> float:
        """Wait as the budget requires; returns the seconds waited."""
        wait = self.delay_for(division)
        if wait > 0:
            self.sleep(wait)
        b = self.budget(division)
        b.waited += wait
        b.last_call_at = self.clock()
        return wait

    # -- after a call ----------------------------------------------------------------------------------------
    def observe(self, division: int, headers: Mapping[str, str]) -> None:
        b = self.budget(division)
        with self._lock:
            for attr, name, conv in (
                ("minutely_limit", H_MIN_LIMIT, _int),
                ("minutely_remaining", H_MIN_REMAINING, _int),
                ("minutely_reset", H_MIN_RESET, _epoch),
                ("daily_limit", H_DAY_LIMIT, _int),
                ("daily_remaining", H_DAY_REMAINING, _int),
                ("daily_reset", H_DAY_RESET, _epoch),
            ):
                value = conv(headers, name)
                if value is not None:
                    setattr(b, attr, value)

    def on_429(self, division: int, headers: Mapping[str, str], attempt: int) -> float:
        """Seconds to wait after a 429 (``attempt`` counts 429s of this request, from 1)."""
        self.observe(division, headers)
        b = self.budget(division)
        now = self.clock()
        day_left = _int(headers, H_DAY_REMAINING)
        if day_left is not None and day_left <= 0 and b.daily_reset is not None and b.daily_reset > now:
            raise RateBudgetExhausted(
                f"Exact daily call budget for division {division} is spent; it resets at {_fmt(b.daily_reset)}",
                reset_at=datetime.fromtimestamp(b.daily_reset, tz=UTC),
            )
        reset = _epoch(headers, H_MIN_RESET) or b.minutely_reset
        # No usable reset (missing, or in the past by our clock): short, growing, bounded waits.
        wait = reset - now + 0.05 if reset is not None and reset > now else min(2.0 ** (attempt - 1), 8.0)
        wait = min(wait, self.max_wait)
        log.info("Exact 429 for division %s: waiting %.1fs for the minutely reset", division, wait)
        # After the wait a fresh window starts; forget the stale "0 left" so pacing does not wait again.
        b.minutely_remaining = None
        return wait


def _fmt(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")
