"""The invoice poll DAG of one tenant: ``jaggaer_invoice_poll__<tenant>``.

Shape (one task group per Exact division, built from the tenant config)::

    extract ─┬─▶ division_111111.map_vendors ▶ .validate ▶ .post ─┬─▶ report
             │                                                  └─▶ .reconcile
             └─▶ division_222222.map_vendors ▶ .validate ▶ .post ─┘   (and .reconcile)

- ``extract`` reads JAGGAER only (no Exact calls, no pool), in a dry run as well.
- Every task of a division group runs in the pool ``mlc_exact__<tenant>__<division>`` (one slot, shared with the
  PO push), so no two tasks ever call one Exact division at the same time, whichever runs they belong to. A dry
  run's Exact reads (suppliers, master data) happen in the division's ``validate`` task, under that pool.
- ``validate`` hands the division's master data (codes and GUIDs) to ``post`` through XCom, so it is read once.
- Schedule: ``invoice_poll.schedule`` (default ``0 2 * * *``) in ``invoice_poll.timezone`` as a
  ``CronDataIntervalTimetable``: each run has a real one-day data interval and reads the invoices updated in it
  (plus ``overlap_hours`` before, and back to where the last successful extract ended when runs were missed:
  ``catchup=False`` creates only the latest run), so ``airflow backfill create`` over a date range polls those days
  again; the ledger makes re-reading harmless. ``catchup=False``, ``max_active_runs=1`` for scheduled and manual
  runs; a backfill has its own ``max_active_runs``, so a backfill run **can** overlap another run of the tenant.
  That is safe: every Exact call is under the division pool, only one post stage per division sends at a time
  whatever Airflow does (the connector's posting lease, ``store.lease``: a second one waits, then ends without
  sending), and the ledger posts each invoice at most once (``posting`` is committed, fenced by the lease, before the
  POST; a run finding it ``posting`` under an expired claim looks in Exact first).
- ``post`` works through the division's whole batch, then fails (retryably: Airflow retries it with backoff) when
  an invoice of that attempt failed or stayed ambiguous; its counts are its XCom either way.
- ``reconcile`` (per division, ``all_done`` after its ``post``, in its pool) saves the JAGGAER ⇄ Exact
  reconciliation of the last ``reconcile_days`` (31) days and alerts when anything is off (``ml_connector.reconcile``).
- ``report`` runs whatever happened upstream (``all_done``): counts (plus the invoices this run left
  ``failed``/``posting`` in the ledger), held invoices with their fix, alert, red when records failed or a stage
  did not finish. Clearing the failed task(s) replays only the invoices still open.

Building needs no network or database: the tasks import the flow code when they run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ml_connector.dagbuild.common import MAX_ACTIVE_RUNS, default_args, flow_params, pool_name

if TYPE_CHECKING:
    from ml_connector.config.tenant import TenantConfig

DAG_PREFIX = "jaggaer_invoice_poll__"
DIVISION_STAGES = ("map_vendors", "validate", "post")
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
IDS_HELP = "JAGGAER invoice ids (invoiceId) to poll; empty means every invoice updated in the window."


def dag_id(tenant_name: str) -> str:
    return f"{DAG_PREFIX}{tenant_name}"


def group_id(division: int) -> str:
    return f"division_{int(division)}"


def divisions(tenant: TenantConfig) -> list[int]:
    """The divisions invoices can be routed to (the tenant's Exact divisions, in config order)."""
    out: list[int] = []
    for division in [*tenant.exact.divisions, *tenant.jaggaer.business_units.values()]:
        if int(division) not in out:
            out.append(int(division))
    return out


def _extract_callable(tenant_name: str) -> Callable[[], dict[str, Any]]:
    def run_invoice_poll_extract() -> dict[str, Any]:
        from airflow.sdk import get_current_context

        from ml_connector.flows import invoice_poll, runtime

        return runtime.run_stage(
            get_current_context(), tenant_name, runtime.FLOW_INVOICE_POLL, invoice_poll.extract, scheduled="interval"
        )

    return run_invoice_poll_extract


def _division_callable(tenant_name: str, stage: str, division: int) -> Callable[[], dict[str, Any]]:
    def run_invoice_poll_stage() -> dict[str, Any]:
        from airflow.sdk import get_current_context

        from ml_connector.flows import invoice_poll, runtime

        context = get_current_context()
        stage_fn: Callable[[runtime.FlowContext], Any] = getattr(invoice_poll, stage)
        if stage == "post":
            # the division's master data, read once by validate (codes and GUIDs only)
            checked = context["ti"].xcom_pull(task_ids=f"{group_id(division)}.validate") or {}
            master = checked.get("master") if isinstance(checked, Mapping) else None
            stage_fn = functools.partial(invoice_poll.post, master=master)

        return runtime.run_stage(
            context,
            tenant_name,
            runtime.FLOW_INVOICE_POLL,
            stage_fn,
            scheduled="interval",
            division=division,
            fail_on_records=stage == "post",
        )

    run_invoice_poll_stage.__name__ = f"invoice_poll_{stage}"
    return run_invoice_poll_stage


def _report_callable(tenant_name: str, task_ids: list[str]) -> Callable[[], dict[str, Any]]:
    def run_invoice_poll_report() -> dict[str, Any]:
        from airflow.sdk import get_current_context

        from ml_connector.flows import invoice_poll, runtime

        context = get_current_context()
        with runtime.stage_context(context, tenant_name, runtime.FLOW_INVOICE_POLL, scheduled="interval") as ctx:
            ti = context["ti"]
            results = {task_id: ti.xcom_pull(task_ids=task_id) for task_id in task_ids}
            return invoice_poll.report_run(ctx, results)

    return run_invoice_poll_report


def build_dag(tenant: TenantConfig) -> Any:
    """The DAG object (``airflow.sdk.DAG``) of one tenant's invoice poll."""
    from airflow.sdk import DAG, CronDataIntervalTimetable, TaskGroup, task

    cfg = tenant.invoice_poll
    schedule: Any
    if cfg.schedule in ("@once", "@continuous"):
        schedule = cfg.schedule
    else:
        schedule = CronDataIntervalTimetable(cfg.schedule, timezone=cfg.timezone)
    with DAG(
        dag_id=dag_id(tenant.name),
        description=f"Approved JAGGAER invoices → Exact purchase entries for {tenant.display_name or tenant.name}",
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=MAX_ACTIVE_RUNS,
        default_args=default_args(tenant),
        params=flow_params(IDS_HELP),
        tags=["ml-connector", "invoice_poll", f"tenant:{tenant.name}"],
        doc_md=__doc__,
    ) as dag:
        extract = task(task_id="extract")(_extract_callable(tenant.name))()
        task_ids = ["extract"]
        ends = []
        for division in divisions(tenant):
            pool = pool_name(tenant.name, division)
            with TaskGroup(group_id(division), tooltip=f"Exact division {division}"):
                previous = extract
                for stage in DIVISION_STAGES:
                    op = task(task_id=stage, pool=pool)(_division_callable(tenant.name, stage, division))()
                    task_ids.append(f"{group_id(division)}.{stage}")
                    previous >> op
                    previous = op
                ends.append(previous)
                # daily JAGGAER ⇄ Exact reconciliation of the division, after its post (not awaited by report)
                from ml_connector.reconcile.dag_task import add_task

                add_task(task, tenant.name, division, pool, previous)
        report = task(task_id="report", trigger_rule="all_done", retries=0, on_failure_callback=None)(
            _report_callable(tenant.name, task_ids)
        )()
        for end in ends:
            end >> report
    return dag


def build_all(tenants: Mapping[str, TenantConfig] | None = None) -> dict[str, Any]:
    """``{dag_id: DAG}`` for every tenant whose invoice poll is enabled (tenant file from settings unless given)."""
    if tenants is None:
        from ml_connector.config.loader import load_tenants

        tenants = load_tenants()
    return {dag_id(name): build_dag(t) for name, t in tenants.items() if t.invoice_poll.enabled}
