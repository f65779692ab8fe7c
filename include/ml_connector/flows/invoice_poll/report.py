"""Stage 5 — report: the run's counts, every held invoice with the fix it needs, an alert, and a red run when
anything failed (``runtime.report``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ml_connector.flows.invoice_poll.common import FLOW, short
from ml_connector.flows.runtime import FlowContext, Outcomes, report
from ml_connector.store import ledger
from ml_connector.store.db import session_scope


def held_listing(ctx: FlowContext, limit: int = 200) -> list[str]:
    """One line per distinct reason: which invoices wait, and what a person must do."""
    groups: dict[str, list[str]] = defaultdict(list)
    with session_scope(ctx.engine) as s:
        for entry in ledger.entries(s, ctx.tenant.name, FLOW, states=("held",))[:limit]:
            groups[entry.reason or "held (no reason recorded)"].append(entry.source_ref or entry.source_id)
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
    details = [] if ctx.dry_run else held_listing(ctx)
    return report(ctx, merged, details, problems=problems, raise_on_failure=raise_on_failure)
