"""Run a reconciliation: read the three sides, classify, save, and alert when anything is off.

Used by ``mlc reconcile``, the console's *Run now* and the invoice poll's daily ``reconcile`` task
(:func:`daily`). Calls: JAGGAER list pages only (no detail reads); Exact ``ceil(lines / 1000)`` reads of
``bulk/Financial/TransactionLines`` per division (at most ``sources.MAX_PAGES``), plus a token refresh when the
access token is due (docs/console.md, "Reconciliation").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from ml_connector.reconcile import CATEGORIES, OFF
from ml_connector.reconcile.sources import Period

log = logging.getLogger("ml_connector.reconcile")

#: How many days (of invoice dates) the daily task reconciles, ending with the day its data interval ends in (the
#: day before, when it ends at midnight). Override: setting
#: ``reconcile_days`` (``MLC_RECONCILE_DAYS``).
DAILY_DAYS = 31


@dataclass(frozen=True)
class Outcome:
    id: int
    tenant: str
    division: int
    period: Period
    counts: dict[str, int]
    off: int
    exact_calls: int
    jaggaer_calls: int

    def summary(self) -> str:
        parts = ", ".join(f"{CATEGORIES[k]} {self.counts.get(k, 0)}" for k in CATEGORIES)
        return (
            f"tenant {self.tenant}, Exact division {self.division}, invoice dates {self.period}: {parts} "
            f"(Exact calls {self.exact_calls}, JAGGAER calls {self.jaggaer_calls})"
        )


def _calls(hook: Any) -> int:
    """Requests sent so far through the hook's HTTP session (the Exact client is built first: its session may be
    shared with the other hooks of the process, so only a difference is meaningful)."""
    try:
        client = getattr(hook, "client", None)
        return int(client.call_count if client is not None else hook.call_count)
    except (AttributeError, TypeError):
        return 0


def reconcile(
    tenant: Any,
    division: int,
    period: Period,
    *,
    engine: Engine,
    exact_hook: Any,
    jaggaer_hook: Any,
    trigger: str,
    alert: bool = True,
) -> Outcome:
    """Reconcile one division of ``tenant`` over ``period``, save the result and (``alert``) alert when it is off."""
    from ml_connector.reconcile import compare, sources, store

    divisions = [int(d) for d in [*tenant.exact.divisions, *tenant.jaggaer.business_units.values()]]
    if int(division) not in divisions:
        from ml_connector.errors import ConfigError

        known = ", ".join(str(d) for d in dict.fromkeys(divisions))
        raise ConfigError(f"tenant {tenant.name!r} has no Exact division {division} (its divisions: {known})")
    exact_before, jaggaer_before = _calls(exact_hook), _calls(jaggaer_hook)
    invoices = sources.jaggaer_invoices(jaggaer_hook, tenant, engine, division, period)
    entries = sources.exact_entries(exact_hook, division, tenant.journal_for(division), period)
    records = sources.ledger_records(engine, tenant.name, division)
    frame = compare.classify(division, period, invoices, entries, records)
    counts = {k: int((frame["category"] == k).sum()) for k in CATEGORIES}
    off = sum(counts[k] for k in OFF)
    exact_calls = _calls(exact_hook) - exact_before
    jaggaer_calls = _calls(jaggaer_hook) - jaggaer_before
    rec_id = store.save(
        engine,
        tenant=tenant.name,
        division=division,
        date_from=period.date_from,
        date_to=period.date_to,
        trigger=trigger,
        counts=counts,
        off=off,
        exact_calls=exact_calls,
        jaggaer_calls=jaggaer_calls,
        rows=frame.to_dict(orient="records"),
    )
    outcome = Outcome(rec_id, tenant.name, int(division), period, counts, off, exact_calls, jaggaer_calls)
    log.info("reconciliation %d: %s", rec_id, outcome.summary())
    if alert and off:
        send_off_alert(tenant, outcome, frame)
    return outcome


def page_url(tenant: str, rec_id: int | None = None) -> str:
    from ml_connector.alerts import ui_base_url

    tail = f"&id={rec_id}" if rec_id is not None else ""
    return f"{ui_base_url()}/ml-connector/ui/reconcile?tenant={tenant}{tail}"


def send_off_alert(tenant: Any, outcome: Outcome, frame: Any, limit: int = 20) -> None:
    from ml_connector.flows.runtime import send_alert
    from ml_connector.reconcile import MATCHED

    off = frame[frame["category"] != MATCHED].head(limit)
    lines = [
        f"- [{CATEGORIES[r['category']]}] JAGGAER {r['jaggaer_invoice_number'] or '-'}, YourRef "
        f"{r['your_ref'] or '-'}, Exact entry {r['exact_entry_number'] or '-'}: {r['note'] or ''}"
        for r in off.to_dict(orient="records")
    ]
    more = f"\n… and {outcome.off - len(lines)} more" if outcome.off > len(lines) else ""
    body = (
        f"JAGGAER and Exact disagree: {outcome.summary()}\n"
        + "\n".join(lines)
        + more
        + f"\nSee and download it (CSV, XLSX): {page_url(outcome.tenant, outcome.id)}"
    )
    send_alert(tenant, f"reconciliation: {outcome.off} row(s) off in division {outcome.division}", body)


def daily_period(window_end: datetime | None, days: int | None = None) -> Period:
    """The period the daily task reconciles: ``days`` days up to the day the run's window ends in."""
    from ml_connector.settings import get_setting

    if days is None:
        raw = get_setting("reconcile_days")
        try:
            days = int(raw) if raw else DAILY_DAYS
        except ValueError:
            from ml_connector.errors import ConfigError

            raise ConfigError(f"setting reconcile_days: {raw!r} is not a whole number of days") from None
    end = (window_end or datetime.now(UTC)).astimezone(UTC)
    last: date = (end - timedelta(microseconds=1)).date()
    return Period(last - timedelta(days=max(days, 1) - 1), last)


def daily(ctx: Any) -> dict[str, Any]:
    """The DAG task (one per division, after that division's post): reconcile the last ``reconcile_days`` days.

    A dry run reconciles nothing. Discrepancies alert and keep the task green (they are data, not a failure)."""
    if ctx.dry_run:
        return {"skipped": "dry run"}
    from ml_connector.errors import RateBudgetExhausted
    from ml_connector.flows import budget_plan

    period = daily_period(ctx.window[1] if ctx.window else None)
    try:
        # the reads come out of the invoice poll's share of the day's Exact calls: when it is spent, the calls kept
        # for the PO push and searches are not touched; the next day's run reconciles (its period overlaps)
        budget_plan.check_room(ctx, int(ctx.division), "the ledger lines to reconcile")
        outcome = reconcile(
            ctx.tenant,
            int(ctx.division),
            period,
            engine=ctx.engine,
            exact_hook=ctx.exact_hook(),
            jaggaer_hook=ctx.jaggaer_hook(),
            trigger=ctx.run_id,
        )
    except RateBudgetExhausted as spent:
        why = f"not reconciled today: the invoice poll's share of Exact's daily calls is used ({spent})"
        ctx.logger.warning("division %s: %s; the next run reconciles", ctx.division, why)
        return {"skipped": why, "period": str(period)}
    ctx.logger.info("%s; %s", outcome.summary(), page_url(outcome.tenant, outcome.id))
    return {
        "reconciliation_id": outcome.id,
        "period": str(period),
        "counts": outcome.counts,
        "off": outcome.off,
        "exact_calls": outcome.exact_calls,
    }
