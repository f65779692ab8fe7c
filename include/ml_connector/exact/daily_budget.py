"""Each flow's share of a division's daily Exact call budget: the limiter's stop, its memory, what is left.

Exact allows 5,000 calls a day per app and division (``X-RateLimit-Limit``), shared by every flow that calls the
division. Each flow has a share (``invoice_poll.exact_daily_share``, default 0.7; ``po_push.exact_daily_share``,
default 0.9): it may call the division while more than ``limit x (1 - share)`` calls are left today, so the invoice
poll keeps 1,500 calls for the PO push and searches, the PO push 500 for searches. Exact's headers, not our own
counting, say what is left (other processes of the app spend from the same budget), so a share is "how deep into the
day's budget this flow may go", enforced for every call of the flow by the rate limiter (:func:`bind`:
``RateBudgetExhausted`` before a call that would go deeper). A task learns what is left from the first answer of
the division, or before any call from what an earlier task kept when it stopped for the budget (:func:`remember`, in
the cursor table): without that memory its first call goes out whatever is left (one call at most into the reserve).

The invoice poll's post stage plans its batch against what is left (``flows.budget_plan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ml_connector.store.db import session_scope

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ml_connector.config.tenant import TenantConfig
    from ml_connector.exact.ratelimit import RateLimiter
    from ml_connector.flows.runtime import FlowContext

#: What a share leaves, by flow (for the limiter's message).
KEPT_FOR = {"invoice_poll": "the PO push and searches", "po_push": "searches and a person's mlc commands"}
WHAT = {"invoice_poll": "invoice", "po_push": "purchase order"}


def share_of(tenant: TenantConfig, flow: str) -> float | None:
    """The flow's ``exact_daily_share`` (``None`` for a flow without one)."""
    section = getattr(tenant, flow, None)
    share = getattr(section, "exact_daily_share", None)
    return float(share) if share is not None else None


def timezone_of(tenant: TenantConfig, flow: str) -> str:
    section = getattr(tenant, flow, None)
    return str(getattr(section, "timezone", None) or "UTC")


def limiter_of(hook: Any) -> RateLimiter | None:
    """The rate limiter behind an ``ExactOnlineHook`` (or an ``ExactClient``); ``None`` for a stand-in."""
    client = getattr(hook, "client", hook)
    return getattr(client, "limiter", None)


def context_limiter(ctx: FlowContext) -> RateLimiter | None:
    """The limiter of the context's Exact hook (built now if it was not: it starts from what :func:`remember`
    kept, so a stage knows before its first call whether the day's share is spent)."""
    return limiter_of(ctx.exact_hook())


def bind(hook: Any, ctx: FlowContext) -> None:
    """Make every call of ``hook`` respect ``ctx.flow``'s share: the limiter refuses a call that would go deeper,
    starting from what an earlier task of the tenant found spent (:func:`remember`), so a task does not spend a call
    to learn what is already known; and it remembers when it refuses."""
    share = share_of(ctx.tenant, ctx.flow)
    limiter = limiter_of(hook) if share is not None else None
    if limiter is None or share is None:
        return
    limiter.keep_share = max(0.0, 1.0 - share)
    limiter.keep_for = KEPT_FOR.get(ctx.flow, "other work")
    limiter.share_of = f"the {ctx.flow.replace('_', ' ')}'s share ({share:g})"
    known = recalled(ctx.engine, ctx.tenant.name)
    for division, (remaining, limit, reset) in known.items():
        b = limiter.budget(division)
        if b.daily_remaining is None and reset > limiter.clock():
            b.daily_remaining, b.daily_limit, b.daily_reset = remaining, limit, reset
    told: set[int] = set()

    def on_spent(division: int) -> None:
        if division not in told:
            told.add(division)
            remember(ctx.engine, ctx.tenant.name, division, limiter)

    limiter.on_spent = on_spent


#: Where :func:`remember` keeps the last "spent" answer per division (the cursor table: tenant, flow, scope).
MEMORY_FLOW = "exact_daily_budget"


def remember(engine: Engine, tenant: str, division: int, limiter: RateLimiter) -> None:
    """Keep what the last answer of ``division`` said is left today (calls left, limit, reset). What is left only
    shrinks until the reset, so a later task may refuse on it at once; a call's answer corrects it upwards."""
    from ml_connector.store.cursors import set_cursor

    b = limiter.budget(division)
    if b.daily_remaining is None or not b.daily_limit or b.daily_reset is None:
        return
    with session_scope(engine) as s:
        set_cursor(s, tenant, MEMORY_FLOW, str(division), f"{b.daily_remaining}/{b.daily_limit}/{b.daily_reset:.3f}")


def recalled(engine: Engine, tenant: str) -> dict[int, tuple[int, int, float]]:
    """What :func:`remember` kept, by division: ``(remaining, limit, reset epoch)``."""
    from ml_connector.store.models import Cursor

    out: dict[int, tuple[int, int, float]] = {}
    with session_scope(engine) as s:
        rows = s.execute(
            select(Cursor.scope, Cursor.value).where(Cursor.tenant == tenant, Cursor.flow == MEMORY_FLOW)
        ).all()
    for scope, value in rows:
        try:
            remaining, limit, reset = value.split("/")
            out[int(scope)] = (int(remaining), int(limit), float(reset))
        except ValueError:
            continue  # not ours to fix: the next refusal writes it again
    return out


# ------------------------------------------------------------------------------------------------ what is left
@dataclass(frozen=True)
class Allowance:
    """What the flow may still spend in one division today, from the last answer's headers."""

    division: int
    limit: int
    remaining: int
    kept: int
    reset_at: datetime | None

    @property
    def left(self) -> int:
        return max(0, self.remaining - self.kept)


def allowance(limiter: RateLimiter | None, division: int, now: float | None = None) -> Allowance | None:
    """``None`` until an answer from the division said what is left today (or when the day it spoke of is over)."""
    if limiter is None:
        return None
    b = limiter.budget(division)
    if b.daily_remaining is None or not b.daily_limit:
        return None
    now = limiter.clock() if now is None else now
    if b.daily_reset is not None and b.daily_reset <= now:
        return None
    reset = datetime.fromtimestamp(b.daily_reset, tz=UTC) if b.daily_reset is not None else None
    return Allowance(division, b.daily_limit, b.daily_remaining, limiter.kept(division), reset)


def reset_text(reset_at: datetime | None, timezone: str = "UTC") -> str:
    """``2026-12-09 00:00 GMT (Europe/London)``, plus the UTC time when the zone is another."""
    if reset_at is None:
        return "the next daily reset (00:00 UTC)"
    local = reset_at.astimezone(ZoneInfo(timezone))
    if timezone in ("UTC", "Etc/UTC"):
        return f"{local:%Y-%m-%d %H:%M} UTC"
    text = f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({timezone})"
    if local.utcoffset():
        text += f", {reset_at.astimezone(UTC):%H:%M} UTC"
    return text


def left_text(n: int, flow: str, reset_at: datetime | None, timezone: str = "UTC") -> str:
    """The one line people see: ``105 invoices left for tomorrow (budget resets at …)``."""
    what = WHAT.get(flow, "record")
    return f"{n} {what}{'s' if n != 1 else ''} left for tomorrow (budget resets at {reset_text(reset_at, timezone)})"
