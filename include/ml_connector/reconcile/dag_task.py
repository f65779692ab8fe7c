"""The invoice poll's daily ``division_<n>.reconcile`` task (built by ``dagbuild.invoice_poll``).

It runs after the division's ``post`` whatever happened there (``all_done``), in the division's pool (its Exact
reads never overlap another call to that division), and calls :func:`ml_connector.reconcile.run.daily`. Importing
this module imports neither pandas nor Airflow: both load when the task runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TASK_ID = "reconcile"


def reconcile_callable(tenant_name: str, division: int) -> Callable[[], dict[str, Any]]:
    def run_invoice_poll_reconcile() -> dict[str, Any]:
        from airflow.sdk import get_current_context

        from ml_connector.flows import runtime
        from ml_connector.reconcile.run import daily

        return runtime.run_stage(
            get_current_context(),
            tenant_name,
            runtime.FLOW_INVOICE_POLL,
            daily,
            scheduled="interval",
            division=division,
        )

    return run_invoice_poll_reconcile


def add_task(task: Any, tenant_name: str, division: int, pool: str, after: Any) -> Any:
    """The reconcile task of one division, downstream of ``after`` (the division's post)."""
    op = task(task_id=TASK_ID, pool=pool, trigger_rule="all_done", retries=1)(
        reconcile_callable(tenant_name, division)
    )()
    after >> op
    return op
