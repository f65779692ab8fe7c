"""The per-division rate budget: pacing from the X-RateLimit-* headers, 429 waits, daily exhaustion."""

from __future__ import annotations

import time

import pytest
from exact_hook_support import connect

from ml_connector.errors import RateBudgetExhausted
from ml_connector.exact.ratelimit import RateLimiter

NOW = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.t = NOW
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def headers(m_left: int, m_reset: float, d_left: int = 4000, d_reset: float = NOW + 40000, limit: int = 60):
    return {
        "X-RateLimit-Minutely-Limit": str(limit),
        "X-RateLimit-Minutely-Remaining": str(m_left),
        "X-RateLimit-Minutely-Reset": str(int(m_reset * 1000)),
        "X-RateLimit-Limit": "5000",
        "X-RateLimit-Remaining": str(d_left),
        "X-RateLimit-Reset": str(int(d_reset * 1000)),
    }


def test_pacing_spreads_the_remaining_budget_over_the_window() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock=clock, sleep=clock.sleep, burst=5)
    assert rl.delay_for(1) == 0  # nothing known yet
    rl.observe(1, headers(m_left=58, m_reset=NOW + 30))
    assert rl.delay_for(1) == 0  # within the burst
    rl.before_call(1)
    rl.observe(1, headers(m_left=30, m_reset=NOW + 30))
    assert rl.delay_for(1) == pytest.approx(1.0)  # 30 calls left, 30 s left
    clock.t += 0.4
    assert rl.delay_for(1) == pytest.approx(29.6 / 30 - 0.4)  # counts the time since the last call
    rl.observe(1, headers(m_left=0, m_reset=NOW + 10))
    assert rl.delay_for(1) == pytest.approx(9.61, abs=0.02)  # wait for the reset, not longer
    rl.observe(1, headers(m_left=0, m_reset=NOW - 5))
    assert rl.delay_for(1) == 0  # a reset in the past is never trusted (clock skew): no wait
    assert rl.delay_for(2) == 0  # divisions are independent


def test_waits_are_bounded() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock=clock, sleep=clock.sleep, max_wait=65)
    rl.observe(1, headers(m_left=0, m_reset=NOW + 10_000))  # a skewed or absurd reset
    assert rl.delay_for(1) == 65
    assert rl.on_429(1, headers(m_left=0, m_reset=NOW + 10_000), 1) == 65


def test_429_waits_until_the_minutely_reset_or_backs_off_without_one() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock=clock, sleep=clock.sleep)
    assert rl.on_429(1, headers(m_left=0, m_reset=NOW + 12), 1) == pytest.approx(12.05)
    assert [rl.on_429(2, {}, n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 8]  # nothing known about division 2
    past = {"X-RateLimit-Minutely-Remaining": "0", "X-RateLimit-Minutely-Reset": str(int((NOW - 3) * 1000))}
    assert rl.on_429(1, past, 1) == 1


def test_daily_budget_spent_raises_with_the_reset_time() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock=clock, sleep=clock.sleep)
    rl.observe(7, headers(m_left=10, m_reset=NOW + 30, d_left=0, d_reset=NOW + 3600))
    with pytest.raises(RateBudgetExhausted) as err:
        rl.before_call(7)
    assert err.value.reset_at is not None and err.value.reset_at.timestamp() == pytest.approx(NOW + 3600)
    with pytest.raises(RateBudgetExhausted):
        rl.on_429(7, headers(m_left=0, m_reset=NOW + 30, d_left=0, d_reset=NOW + 3600), 1)
    clock.t += 3601  # the day rolled over: try again
    assert rl.delay_for(7) >= 0


def test_a_flow_share_keeps_part_of_the_daily_budget_for_others() -> None:
    """``keep_share`` (1 - a flow's ``exact_daily_share``, set by ``exact.daily_budget.bind``): no call once only
    what is kept is left; ``on_spent`` hears of it first; a new day lets calls through again."""
    clock = FakeClock()
    rl = RateLimiter(clock=clock, sleep=clock.sleep)
    rl.keep_share, rl.keep_for, rl.share_of = 0.3, "the PO push", "the invoice poll's share"
    told: list[int] = []
    rl.on_spent = told.append
    rl.observe(7, headers(m_left=50, m_reset=NOW + 30, d_left=1501, d_reset=NOW + 3600))
    assert rl.kept(7) == 1500 and rl.delay_for(7) >= 0 and told == []
    rl.observe(7, headers(m_left=49, m_reset=NOW + 30, d_left=1500, d_reset=NOW + 3600))
    with pytest.raises(RateBudgetExhausted) as err:
        rl.before_call(7)
    assert told == [7] and err.value.reset_at is not None
    assert str(err.value).startswith(
        "the invoice poll's share of Exact's daily call budget for division 7 is used: 1500 of 5000 calls are left "
        "and 1500 are kept for the PO push; it resets at "
    )
    rl.keep_share = 0.0  # a flow without a share spends to the last call
    assert rl.delay_for(7) >= 0
    rl.keep_share = 0.3
    clock.t += 3601  # the reset is behind: the next answer tells
    assert rl.delay_for(7) >= 0


def test_reset_in_seconds_is_tolerated() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock=clock, sleep=clock.sleep, burst=0)
    rl.observe(
        1,
        {
            "X-RateLimit-Minutely-Limit": "60",
            "X-RateLimit-Minutely-Remaining": "20",
            "X-RateLimit-Minutely-Reset": str(int(NOW + 20)),
        },
    )
    rl.budget(1).last_call_at = NOW
    assert rl.delay_for(1) == pytest.approx(1.0)


# --- against the sandbox ------------------------------------------------------------------------------------------
def _division_calls(handle) -> list[dict]:
    return [c for c in handle.calls()["log"] if c["endpoint"] == "GET /api/v1/{division}/system/Divisions"]


def test_a_120_call_run_is_paced_to_the_budget_without_a_429(sqlite_engine, make_client, exact_sandbox) -> None:
    window = 1.5  # a compressed "minute" of 60 calls
    exact_sandbox.settings(minute_window_s=window, minutely_limit=60)
    client = make_client(sqlite_engine)
    connect(client, exact_sandbox)
    exact_sandbox.clear_calls()
    started = time.time()
    for _ in range(120):
        client.get(111111, "system/Divisions", {"$select": "Code"})
    elapsed = time.time() - started
    calls = _division_calls(exact_sandbox)
    assert len(calls) == 120 and {c["status"] for c in calls} == {200}  # zero 429s: the sandbox enforces 60/window
    assert len({int(c["ts"] // window) for c in calls}) >= 2  # 120 calls need two windows at least
    budget = client.limiter.budget(111111)
    # The calls were spaced, not fired in bursts until refused: more than half of each window was spent waiting
    # (pacing), which is what spreads a window's budget over its whole length.
    assert budget.waited >= window * 0.5, budget
    assert elapsed >= window * 0.5


def test_forced_429s_wait_for_the_minutely_reset(sqlite_engine, make_client, exact_sandbox) -> None:
    exact_sandbox.settings(minute_window_s=0.5)
    client = make_client(sqlite_engine)
    connect(client, exact_sandbox)
    exact_sandbox.clear_calls()
    exact_sandbox.fault(method="GET", path="system/Divisions", action="rate_limit", count=2)
    started = time.time()
    assert client.get(111111, "system/Divisions", {"$select": "Code"})
    elapsed = time.time() - started
    assert [c["status"] for c in _division_calls(exact_sandbox)] == [429, 429, 200]
    assert 0.25 <= elapsed < 3.0  # waited for each reset (0.5 s windows), never unbounded


def test_daily_budget_exhaustion_stops_cleanly(sqlite_engine, make_client, exact_sandbox) -> None:
    exact_sandbox.settings(daily_limit=3)
    client = make_client(sqlite_engine)
    connect(client, exact_sandbox)
    for _ in range(3):
        client.get(111111, "system/Divisions", {"$select": "Code"})
    with pytest.raises(RateBudgetExhausted) as err:
        client.get(111111, "system/Divisions", {"$select": "Code"})
    assert err.value.reset_at is not None
    assert len(_division_calls(exact_sandbox)) == 3  # known from the headers: nothing more was sent
    # A process that has not seen the headers yet gets Exact's 429 and stops as cleanly.
    fresh = make_client(sqlite_engine)
    with pytest.raises(RateBudgetExhausted):
        fresh.get(111111, "system/Divisions", {"$select": "Code"})
    # current/Me has no division: it does not count and is not refused.
    assert fresh.me()["UserID"]
