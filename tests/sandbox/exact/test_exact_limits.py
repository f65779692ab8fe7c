"""Rate limits (per app and division, fixed windows on the sandbox clock) and the error budget."""

from __future__ import annotations

import math

from exact_support import MFG, SEL, SVC, Api

from sandbox.exact.testing import ExactSandboxHandle

MINUTELY = ("X-RateLimit-Minutely-Limit", "X-RateLimit-Minutely-Remaining", "X-RateLimit-Minutely-Reset")
DAILY = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def limited_api(ex: ExactSandboxHandle, **settings: object) -> Api:
    ex.settings(error_budget_enabled=False, **settings)
    return Api(ex, ex.connect())


def test_headers_in_epoch_milliseconds(exact_sandbox: ExactSandboxHandle) -> None:
    api = limited_api(exact_sandbox)
    now = exact_sandbox.clock()["time"]
    r = api.get("financial/Journals", **SEL)
    assert r.status_code == 200
    h = r.headers
    assert h["X-RateLimit-Minutely-Limit"] == "60" and h["X-RateLimit-Minutely-Remaining"] == "59"
    assert h["X-RateLimit-Limit"] == "5000" and h["X-RateLimit-Remaining"] == "4999"
    minute_reset = int(h["X-RateLimit-Minutely-Reset"])
    day_reset = int(h["X-RateLimit-Reset"])
    assert minute_reset == (math.floor(now / 60) + 1) * 60_000  # end of the calendar minute, in ms
    assert day_reset == (math.floor(now / 86400) + 1) * 86_400_000  # next 00:00 UTC, in ms
    assert api.get("financial/Journals", **SEL).headers["X-RateLimit-Minutely-Remaining"] == "58"


def test_minutely_429_is_empty_and_has_only_minutely_headers(exact_sandbox: ExactSandboxHandle) -> None:
    exact_sandbox.clock(set=1_800_000_000)  # exactly on a minute boundary
    api = limited_api(exact_sandbox, minutely_limit=3)
    for _ in range(3):
        assert api.get("financial/Journals", **SEL).status_code == 200
    r = api.get("financial/Journals", **SEL)
    assert r.status_code == 429
    assert r.content == b""
    assert "Retry-After" not in r.headers
    assert all(k in r.headers for k in MINUTELY)
    assert not any(k in r.headers for k in DAILY)
    assert r.headers["X-RateLimit-Minutely-Reset"] == str(1_800_000_060_000)
    # Per division: the other division has its own budget.
    assert api.get("financial/Journals", division=SVC, **SEL).status_code == 200
    # Calls without a division do not count and carry no headers.
    assert api.http.get(f"{exact_sandbox.url}/api/v1/current/Me").status_code == 200
    # The next calendar minute opens a fresh window.
    exact_sandbox.advance(60)
    assert api.get("financial/Journals", **SEL).status_code == 200


def test_daily_limit(exact_sandbox: ExactSandboxHandle) -> None:
    exact_sandbox.clock(set=1_800_000_000)
    api = limited_api(exact_sandbox, daily_limit=2)
    assert api.get("financial/Journals", **SEL).status_code == 200
    assert api.get("financial/Journals", **SEL).headers["X-RateLimit-Remaining"] == "0"
    r = api.get("financial/Journals", **SEL)
    assert r.status_code == 429 and r.content == b"" and "Retry-After" not in r.headers
    assert r.headers["X-RateLimit-Remaining"] == "0"
    exact_sandbox.advance(86400)
    api = Api(exact_sandbox, exact_sandbox.connect())  # the old access token expired meanwhile
    assert api.get("financial/Journals", **SEL).status_code == 200


def test_compressed_windows(exact_sandbox: ExactSandboxHandle) -> None:
    exact_sandbox.clock(set=1_800_000_000)
    api = limited_api(exact_sandbox, minutely_limit=2, minute_window_s=5)
    assert api.get("financial/Journals", **SEL).status_code == 200
    assert api.get("financial/Journals", **SEL).status_code == 200
    r = api.get("financial/Journals", **SEL)
    assert r.status_code == 429 and r.headers["X-RateLimit-Minutely-Reset"] == str(1_800_000_005_000)
    exact_sandbox.advance(5)
    assert api.get("financial/Journals", **SEL).status_code == 200


def test_error_budget_blocks_an_endpoint_for_an_hour(exact_sandbox: ExactSandboxHandle) -> None:
    exact_sandbox.settings(rate_limits_enabled=False)  # error budget on, as by default
    api = Api(exact_sandbox, exact_sandbox.connect())
    for _ in range(10):
        assert api.get("crm/Accounts", **SEL).status_code == 400  # missing filter: an error each time
    assert api.get("crm/Accounts", **SEL).status_code == 400  # the 11th exceeds the budget ...
    ok_filter = {"$filter": "IsSupplier eq true", "$select": "ID"}
    r = api.get("crm/Accounts", **ok_filter)
    assert r.status_code == 429 and "blocked" in r.json()["error"]["message"]["value"]  # ... now even good calls
    assert api.get("financial/Journals", **SEL).status_code == 200  # other endpoints are fine
    assert api.get("crm/Accounts", division=SVC, **ok_filter).status_code == 200  # and other divisions
    exact_sandbox.advance(3601)
    api2 = Api(exact_sandbox, exact_sandbox.connect())
    assert api2.get("crm/Accounts", **ok_filter).status_code == 200


def test_rate_limit_counts_per_app(exact_sandbox: ExactSandboxHandle) -> None:
    exact_sandbox.clock(set=1_800_000_000)
    api = limited_api(exact_sandbox, minutely_limit=1)
    assert api.get("financial/Journals", division=MFG, **SEL).status_code == 200
    assert api.get("financial/Journals", division=MFG, **SEL).status_code == 429
    # A second consent of the same app shares the app's budget.
    other = Api(exact_sandbox, exact_sandbox.connect())
    assert other.get("financial/Journals", division=MFG).status_code == 429
