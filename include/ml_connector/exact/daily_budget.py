"""Each flow's share of a division's daily Exact call budget, and the invoice poll's plan against it.

Exact allows 5,000 calls a day per app and division (``X-RateLimit-Limit``), shared by every flow that calls the
division. Each flow has a share (``invoice_poll.exact_daily_share``, default 0.7; ``po_push.exact_daily_share``,
default 0.9): it may call the division while more than ``limit x (1 - share)`` calls are left today, so the invoice
poll keeps 1,500 calls for the PO push and searches, the PO push 500 for searches. Exact's headers, not our own
counting, say what is left (other processes of the app spend from the same budget), so a share is "how deep into the
day's budget this flow may go", enforced for every call of the flow by the rate limiter (:func:`bind`:
``RateBudgetExhausted`` before a call that would go deeper). A task learns what is left from the first answer of
the division, or before any call from what an earlier task kept when it stopped for the budget (:func:`remember`, in
the cursor table): without that memory its first call goes out whatever is left (one call at most into the reserve).

The invoice poll's post stage plans on top (:class:`PostPlan`). What the batch needs — one POST per invoice, and for
an invoice an earlier attempt left ``posting`` a search first (one GET per ``YourRef`` it had, usually one); the
look before the batch costs at least one request, and what is left is read again from its answer — is compared with
what is left of its share as soon as that is known. It posts, in the order the next run continues (those left
``posting`` first, then oldest first), the invoices that fit while keeping :data:`MARGIN` calls for one invoice's
worst case (an unclear answer: a search, a second POST, a second search). The rest stay ``pending`` with the reason
"left for tomorrow (budget resets at …)"; the stage ends normally (the task is green), counts them
``left_for_tomorrow``, and the report, the alert and the console say "N invoices left for tomorrow (budget resets at
…)". The next run takes them first (ledger order).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update

from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ml_connector.config.tenant import TenantConfig
    from ml_connector.errors import RateBudgetExhausted
    from ml_connector.exact.ratelimit import RateLimiter
    from ml_connector.flows.runtime import FlowContext, Outcomes

#: The outcome a post stage counts the records it left for the next day as (not a failure: the task stays green).
LEFT = "left_for_tomorrow"
#: The ledger reason of a record left for the next day; the console and the report find them by it.
LEFT_REASON = "left for tomorrow (budget resets at {when}): {why}"
_LEFT_RE = re.compile(r"^left for tomorrow \(budget resets at (.*?)\): ")
#: Calls kept back for the worst case of the last invoice admitted: after an unclear POST, a search, one more POST
#: and one more search (``invoice_poll.post.Poster._send``).
MARGIN = 3
#: What a share leaves, by flow (for the limiter's message).
KEPT_FOR = {"invoice_poll": "the PO push and searches", "po_push": "searches and a person's mlc commands"}
_WHAT = {"invoice_poll": "invoice", "po_push": "purchase order"}


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


def fits(costs: Iterable[int], left: int, margin: int = MARGIN) -> int:
    """How many of ``costs``, taken in order, can be spent from ``left`` keeping ``margin``."""
    n, spent = 0, 0
    for cost in costs:
        if spent + cost + margin > left:
            break
        spent += cost
        n += 1
    return n


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
    what = _WHAT.get(flow, "record")
    return f"{n} {what}{'s' if n != 1 else ''} left for tomorrow (budget resets at {reset_text(reset_at, timezone)})"


# ------------------------------------------------------------------------------------------------ the post plan
class PostPlan:
    """The invoice poll post stage's budget for one division (module docstring).

    ``costs``: calls each ledger entry of the batch needs (:func:`entry_cost`), by entry id. :meth:`admit` is asked
    before each invoice (and before the look); the first time what is left is known it logs the plan for the whole
    rest of the batch. :meth:`leave` records what is left for the next day."""

    def __init__(self, ctx: FlowContext, division: int, costs: Mapping[int, int]):
        self.ctx = ctx
        self.division = division
        self.costs = dict(costs)
        self.planned = False

    def now(self) -> Allowance | None:
        return allowance(context_limiter(self.ctx), self.division)

    def stops(self, out: Outcomes, rest: list[int], *, before: int = 0) -> bool:
        """Whether the batch stops here for the budget: the next invoice of ``rest`` does not fit (then ``rest`` is
        left for the next day: :meth:`leave`)."""
        if self.admit(rest, before=before):
            return False
        self.leave(out, rest)
        return True

    def admit(self, rest: list[int], *, before: int = 0) -> bool:
        """Whether the next invoice of ``rest`` (after ``before`` calls, e.g. the look) fits what is left."""
        if not rest:
            return True
        a = self.now()
        if a is None:
            return True  # nothing known yet: the first call tells (the limiter still refuses one into the reserve)
        if not self.planned:
            self._plan(a, rest, before)
        return fits([self.costs.get(rest[0], 1)], a.left - before) == 1

    def _plan(self, a: Allowance, rest: list[int], before: int) -> None:
        self.planned = True
        costs = [self.costs.get(i, 1) for i in rest]
        n = fits(costs, a.left - before)
        self.ctx.logger.info(
            "division %s: %d invoice(s) need about %d Exact call(s)%s; %d of %d calls are left today, %d kept for %s: "
            "%s",
            self.division,
            len(rest),
            sum(costs) + before,
            f" ({before} for the look before posting)" if before else "",
            a.remaining,
            a.limit,
            a.kept,
            KEPT_FOR["invoice_poll"],
            "all fit"
            if n == len(rest)
            else f"{n} fit, {left_text(len(rest) - n, 'invoice_poll', a.reset_at, self._tz())}",
        )

    def _tz(self) -> str:
        return timezone_of(self.ctx.tenant, self.ctx.flow)

    def leave(self, out: Outcomes, entry_ids: list[int], exc: RateBudgetExhausted | None = None) -> None:
        """Count ``entry_ids`` as left for the next day and say so on their ledger entries (they stay ``pending``;
        one left ``posting`` stays so: its earlier write is looked up first next time)."""
        if not entry_ids:
            return
        a = self.now()
        reset = (exc.reset_at if exc is not None else None) or (a.reset_at if a is not None else None)
        when = reset_text(reset, self._tz())
        why = (
            f"the invoice poll's share of Exact's daily calls for division {self.division} is used"
            + (f" ({a.remaining} of {a.limit} left, {a.kept} kept for {KEPT_FOR['invoice_poll']})" if a else "")
            + "; the next run posts it first"
        )
        limiter = context_limiter(self.ctx)
        if limiter is not None:
            remember(self.ctx.engine, self.ctx.tenant.name, self.division, limiter)
        refs = mark_left(self.ctx, entry_ids, LEFT_REASON.format(when=when, why=why))
        line = left_text(len(entry_ids), self.ctx.flow, reset, self._tz())
        out.add(LEFT, n=len(entry_ids), detail=f"division {self.division}: {line}")
        out.ids.setdefault(LEFT, []).extend(refs[: max(0, 50 - len(out.ids.get(LEFT, [])))])
        self.ctx.logger.warning("division %s: %s", self.division, line)


def entry_cost(entry: LedgerEntry, unresolved: bool) -> int:
    """Calls one invoice needs: its POST, and a search (one GET per ``YourRef``; usually one) first when an earlier
    write may have reached Exact."""
    return 2 if unresolved else 1


def mark_left(ctx: FlowContext, entry_ids: list[int], reason: str) -> list[str]:
    """Write ``reason`` on the entries still ``pending`` (no state change, so no audit row) with this run's id;
    returns the first refs (for the report). An entry left ``posting`` (its earlier write is looked up first next
    time) keeps its claim and run id untouched: ``runtime.left_open`` must not count it as this run's."""
    refs: list[str] = []
    with session_scope(ctx.engine) as s:
        for start in range(0, len(entry_ids), 500):
            chunk = entry_ids[start : start + 500]
            s.execute(
                update(LedgerEntry)
                .where(LedgerEntry.id.in_(chunk), LedgerEntry.state == "pending")
                .values(reason=reason[:4000], last_run_id=ctx.run_id)
                .execution_options(synchronize_session=False)
            )
        refs = [
            str(ref or sid)
            for ref, sid in s.execute(
                select(LedgerEntry.source_ref, LedgerEntry.source_id)
                .where(LedgerEntry.id.in_(entry_ids[:50]))
                .order_by(LedgerEntry.id)
            )
        ]
    return refs


# ------------------------------------------------------------------------------------------------ report, console
def left_lines(engine: Engine, tenant: str, flow: str | None = None, run_id: str | None = None) -> list[str]:
    """One line per flow and division with records waiting for the next day's budget: ``[invoice_poll] division
    111111: 105 invoices left for tomorrow (budget resets at …)``. ``run_id``: only those this run left."""
    where = [
        LedgerEntry.tenant == tenant,
        LedgerEntry.state == "pending",
        LedgerEntry.reason.like("left for tomorrow (%"),
    ]
    if flow:
        where.append(LedgerEntry.flow == flow)
    if run_id:
        where.append(LedgerEntry.last_run_id == run_id)
    groups: dict[tuple[str, int | None], dict[str, int]] = defaultdict(dict)
    with session_scope(engine) as s:
        rows = s.execute(
            select(LedgerEntry.flow, LedgerEntry.division, LedgerEntry.reason, func.count())
            .where(*where)
            .group_by(LedgerEntry.flow, LedgerEntry.division, LedgerEntry.reason)
        ).all()
    for fl, division, reason, n in rows:
        m = _LEFT_RE.match(reason or "")
        when = m.group(1) if m else "the next daily reset"
        groups[(fl, division)][when] = groups[(fl, division)].get(when, 0) + int(n)
    lines = []
    for (fl, division), by_reset in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        n = sum(by_reset.values())
        when = sorted(by_reset)[-1]  # the latest reset named (the most recent run's)
        what = _WHAT.get(fl, "record")
        where_text = f"division {division}: " if division is not None else ""
        lines.append(
            f"[{fl}] {where_text}{n} {what}{'s' if n != 1 else ''} left for tomorrow (budget resets at {when})"
        )
    return lines
