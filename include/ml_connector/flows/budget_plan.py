"""The invoice poll's post stage against its share of a division's daily Exact budget (``exact.daily_budget``).

:class:`PostPlan`: what the batch needs — one POST per invoice, and for
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
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from ml_connector.exact.daily_budget import (
    KEPT_FOR,
    WHAT,
    Allowance,
    allowance,
    context_limiter,
    left_text,
    remember,
    reset_text,
    timezone_of,
)
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ml_connector.errors import RateBudgetExhausted
    from ml_connector.flows.runtime import FlowContext, Outcomes

#: The outcome a post stage counts the records it left for the next day as (not a failure: the task stays green).
LEFT = "left_for_tomorrow"
#: The ledger reason of a record left for the next day; the console and the report find them by it.
LEFT_REASON = "left for tomorrow (budget resets at {when}): {why}"
_LEFT_RE = re.compile(r"^left for tomorrow \(budget resets at (.*?)\): ")
#: Calls kept back for the worst case of the last invoice admitted: after an unclear POST, a search, one more POST
#: and one more search (``invoice_poll.post.Poster._send``).
MARGIN = 3


def fits(costs: Iterable[int], left: int, margin: int = MARGIN) -> int:
    """How many of ``costs``, taken in order, can be spent from ``left`` keeping ``margin``."""
    n, spent = 0, 0
    for cost in costs:
        if spent + cost + margin > left:
            break
        spent += cost
        n += 1
    return n


# ------------------------------------------------------------------------------------------------ the post plan
class PostPlan:
    """The invoice poll post stage's budget for one division (module docstring).

    ``costs``: calls each ledger entry of the batch needs (:func:`entry_cost`), by entry id. :meth:`admit` is asked
    before each invoice (and before the look); the first time what is left is known it logs the plan for the whole
    rest of the batch. :meth:`leave` records what is left for the next day."""

    def __init__(self, ctx: FlowContext, division: int, costs: Mapping[int, int]):
        self.ctx = ctx
        self.division = division
        self.costs = costs  # filled a chunk at a time as the post stage reads the batch (absent: 1 call)
        self.planned = False

    def now(self) -> Allowance | None:
        return allowance(context_limiter(self.ctx), self.division)

    def stops(
        self, out: Outcomes, first: int, remaining: int, rest: Callable[[], list[int]], *, before: int = 0
    ) -> bool:
        """Whether the batch stops here for the budget: invoice ``first`` (of ``remaining`` still to post) does not
        fit (then ``rest()``, this invoice and all after it, is left for the next day: :meth:`leave`)."""
        if self.admit(first, remaining, before=before):
            return False
        self.leave(out, rest())
        return True

    def admit(self, first: int, remaining: int, *, before: int = 0) -> bool:
        """Whether invoice ``first`` (after ``before`` calls, e.g. the look) fits what is left."""
        a = self.now()
        if a is None:
            return True  # nothing known yet: the first call tells (the limiter still refuses one into the reserve)
        if not self.planned:
            self._plan(a, remaining, before)
        return fits([self.costs.get(first, 1)], a.left - before) == 1

    def _plan(self, a: Allowance, remaining: int, before: int) -> None:
        # the batch is streamed: invoices not read yet count one call each (those left `posting`, read first, two)
        self.planned = True
        need = remaining + sum(c - 1 for c in self.costs.values() if c > 1)
        n = min(remaining, max(0, a.left - before - (need - remaining)))
        self.ctx.logger.info(
            "division %s: %d invoice(s) need about %d Exact call(s)%s; %d of %d calls are left today, %d kept for %s: "
            "%s",
            self.division,
            remaining,
            need + before,
            f" ({before} for the look before posting)" if before else "",
            a.remaining,
            a.limit,
            a.kept,
            KEPT_FOR["invoice_poll"],
            "all fit"
            if n == remaining
            else f"{n} fit, {left_text(remaining - n, 'invoice_poll', a.reset_at, self._tz())}",
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


def check_room(ctx: FlowContext, division: int, what: str) -> None:
    """Raise ``RateBudgetExhausted`` (nothing sent) when what is left of the day's share, as far as known, cannot
    post even one invoice (one POST plus :data:`MARGIN`): reading ``what`` (the supplier list, the master data) then
    would only spend calls kept for others, for invoices that wait for tomorrow anyway."""
    from ml_connector.errors import RateBudgetExhausted

    a = allowance(context_limiter(ctx), division)
    if a is not None and fits([1], a.left) == 0:
        raise RateBudgetExhausted(
            f"not reading {what} of division {division}: {a.remaining} of {a.limit} Exact calls are left today and "
            f"{a.kept} are kept for {KEPT_FOR.get(ctx.flow, 'other work')}, too few to post one invoice",
            reset_at=a.reset_at,
        )


def stage_refused(ctx: FlowContext, stage: str, exc: RateBudgetExhausted, n: int) -> None:
    """A stage before the post (map vendors, validate) was refused its first Exact call for the day's share: it
    ends normally without touching its ``n`` records (no call was sent). The refusal is remembered
    (``exact.daily_budget``), so the post stage knows it without a call and leaves the pending invoices for
    tomorrow with the reason, and the report warns once (:meth:`PostPlan.leave`)."""
    when = reset_text(exc.reset_at, timezone_of(ctx.tenant, ctx.flow))
    ctx.logger.warning(
        "division %s: %s skipped for %d invoice(s): the %s's share of Exact's daily calls is used (budget resets at "
        "%s); they wait for the next run",
        ctx.division,
        stage,
        n,
        ctx.flow.replace("_", " "),
        when,
    )


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
        what = WHAT.get(fl, "record")
        where_text = f"division {division}: " if division is not None else ""
        lines.append(
            f"[{fl}] {where_text}{n} {what}{'s' if n != 1 else ''} left for tomorrow (budget resets at {when})"
        )
    return lines


# ------------------------------------------------------------------------------------------------ the PO push paused
#: The outcome a PO push stage counts when its share of the division's daily Exact calls is spent (not a failure).
PAUSED = "budget_paused"
#: Where the day's "PO push paused" alert is remembered (cursor table: one row per flow and division; the value is
#: the reset it named), so the 15-minute runs until the reset alert once.
ALERTED_FLOW = "exact_budget_alerted"


def paused_line(ctx: FlowContext, division: int, exc: RateBudgetExhausted) -> tuple[str, str]:
    """``("PO push paused in division D until <reset>: Exact daily share spent (N calls kept for searches)", the
    reset's key)``."""
    a = allowance(context_limiter(ctx), division)
    reset = exc.reset_at or (a.reset_at if a is not None else None)
    kept = a.kept if a is not None else 0
    line = (
        f"PO push paused in division {division} until {reset_text(reset, timezone_of(ctx.tenant, ctx.flow))}: "
        f"Exact daily share spent ({kept} calls kept for searches)"
    )
    key = reset.isoformat() if reset is not None else f"day of {ctx.run_id}"
    return line, key


def po_paused(ctx: FlowContext, stage: str, exc: RateBudgetExhausted, out: Outcomes) -> str:
    """A PO push stage was refused a call for the day's share (nothing sent): count it (``budget_paused``, with
    the line as the detail the report lists), log a warning, and alert once per division and budget day (not on
    every 15-minute run until the reset). Returns the line."""
    from ml_connector.flows import runtime
    from ml_connector.store.cursors import get_cursor, set_cursor

    division = ctx.division if ctx.division is not None else 0
    line, key = paused_line(ctx, division, exc)
    out.add(PAUSED, f"division {division}", detail=f"{stage}: {line}")
    ctx.logger.warning("%s (%s: %s)", line, stage, exc)
    scope = f"{ctx.flow}:{division}"
    with session_scope(ctx.engine) as s:
        first = get_cursor(s, ctx.tenant.name, ALERTED_FLOW, scope) != key
        if first:
            set_cursor(s, ctx.tenant.name, ALERTED_FLOW, scope, key)
    if first:
        from ml_connector.alerts import budget_paused_alert_text

        subject, body = budget_paused_alert_text(ctx.tenant, ctx.flow, ctx.run_id, line)
        runtime.send_alert(ctx.tenant, subject, body)
    return line
