"""Stage 5 — report: the run's counts, every held invoice with the fix it needs, an alert, and a red run when
anything failed (``runtime.report``).

Besides the stages' failures, these are **problems** (named, alerted, red run): invoice headers JAGGAER listed
without an ``invoiceId`` (``missing_invoice_id``) and a gap older than the catch-up limit that the run could not
read (``window_not_read``). Invoices already in Exact that JAGGAER withdrew (``withdrawn_after_post``) or changed
(``changed_after_post``) get an alert of their own saying what to check in Exact; they do not make the run red
(nothing failed: a person decides about the Exact entry). Invoices left for the next day because the invoice poll's
share of Exact's daily calls was spent (``left_for_tomorrow``) are a warning: logged, alerted, in the summary's
``warnings`` and ``note``, the run stays green (:func:`budget_warnings`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ml_connector.flows import budget_plan, runtime
from ml_connector.flows.invoice_poll.common import FLOW, short
from ml_connector.flows.invoice_poll.extract import MISSING_ID, WINDOW_NOT_READ, WITHDRAWN
from ml_connector.flows.run_states import qualify
from ml_connector.flows.runtime import FlowContext, Outcomes, report
from ml_connector.store import ledger
from ml_connector.store.db import session_scope


def held_listing(ctx: FlowContext, limit: int = 200) -> list[str]:
    """One line per distinct reason: which invoices wait (division-qualified numbers: ``111111/I00071``, which
    ``mlc ledger requeue`` and the console's search take), and what a person must do."""
    groups: dict[str, list[str]] = defaultdict(list)
    with session_scope(ctx.engine) as s:
        for entry in ledger.entries(s, ctx.tenant.name, FLOW, states=("held",))[:limit]:
            number = qualify(entry.division, entry.source_ref or entry.source_id)
            groups[entry.reason or "held (no reason recorded)"].append(number)
    return [f"held: invoice(s) {short(numbers)}: {reason}" for reason, numbers in groups.items()]


def report_run(
    ctx: FlowContext,
    results: Mapping[str, Mapping[str, Any] | None],
    *,
    raise_on_failure: bool = True,
) -> dict[str, Any]:
    """Merge the stage results (``{task_id: counts or None}``) and report. A stage that left nothing (it failed,
    or was skipped after an upstream failure) is named as a problem, which makes the run red."""
    merged = Outcomes()
    problems: list[str] = []
    for task_id, value in results.items():
        if value is None:
            problems.append(
                f"task {task_id} did not finish (see its log); the records it had not done wait for the next run"
            )
            continue
        merged.merge(value)
    problems += extract_problems(merged)
    details = [] if ctx.dry_run else held_listing(ctx)
    alert_exact_corrections(ctx, merged)
    warnings = budget_warnings(ctx, merged)
    summary = report(ctx, merged, details, problems=problems, raise_on_failure=raise_on_failure)
    if warnings:
        summary["warnings"] = warnings
        summary["note"] += "; warning: " + "; ".join(w.split("] ", 1)[-1] for w in warnings)
    return summary


def budget_warnings(ctx: FlowContext, merged: Outcomes) -> list[str]:
    """Invoices this run left for the next day (Exact's daily budget, ``flows.budget_plan``): one line per
    division, logged as a warning and alerted. Not a failure: the run stays green, the invoices stay pending and the
    next run posts them first."""
    if ctx.dry_run:
        return []
    lines = budget_plan.left_lines(ctx.engine, ctx.tenant.name, FLOW, run_id=ctx.run_id)
    if not lines and merged[budget_plan.LEFT]:  # the ledger moved on meanwhile (e.g. a later attempt posted them)
        return []
    if lines:
        from ml_connector.alerts import budget_alert_text

        for line in lines:
            ctx.logger.warning("WARNING %s", line)
        subject, body = budget_alert_text(ctx.tenant, FLOW, ctx.run_id, lines)
        runtime.send_alert(ctx.tenant, subject, body)
    return lines


def extract_problems(merged: Outcomes) -> list[str]:
    """What extract could not read, as report problems (the run goes red and the report alerts)."""
    problems: list[str] = []
    missing = merged[MISSING_ID]
    if missing:
        refs = short(merged.ids.get(MISSING_ID) or [])
        problems.append(
            f"JAGGAER listed {missing} invoice header(s) without an invoiceId (invoice numbers: {refs or 'none'}): "
            "they cannot be read or posted; have them checked in JAGGAER (details above)"
        )
    for gap in merged.ids.get(WINDOW_NOT_READ) or []:
        gap_from, _, gap_to = gap.partition("/")
        problems.append(
            f"invoices updated in JAGGAER between {gap_from} and {gap_to} were not read (older than the catch-up "
            "limit): run the poll with date_from/date_to over that range (details above say how)"
        )
    return problems


def alert_exact_corrections(ctx: FlowContext, merged: Outcomes) -> None:
    """One alert for invoices already in Exact that JAGGAER withdrew or changed since: a person must check the
    Exact entry (reverse or correct it). Not a failure: the run stays green for them."""
    if ctx.dry_run:
        return
    withdrawn, changed = merged[WITHDRAWN], merged["changed_after_post"]
    if not (withdrawn or changed):
        return
    lines = [
        d for d in merged.details if "has since been withdrawn in JAGGAER" in d or "after it was posted to Exact" in d
    ]
    parts = ([f"{withdrawn} withdrawn"] if withdrawn else []) + ([f"{changed} changed"] if changed else [])
    subject = f"{ctx.tenant.name}/{ctx.flow}: posted invoice(s) {' and '.join(parts)} in JAGGAER: check Exact"
    body = (
        f"Run {ctx.run_id}: these invoices are already in Exact Online and JAGGAER no longer shows them as they "
        "were posted. Nothing was changed in Exact; check each entry and reverse or correct it there if needed.\n"
        + "\n".join(f"  - {line}" for line in lines[:200])
    )
    runtime.send_alert(ctx.tenant, subject, body)
