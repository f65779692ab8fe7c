"""The PO push DAG of one tenant: ``exact_po_push__<tenant>``.

Shape (one task group per Exact division, built from the tenant config, and one tenant-level supplier step)::

    division_111111.extract >> .map_vendors ─┐                  ┌─▶ division_111111.validate >> .post ─┐
    division_222222.extract >> .map_vendors ─┴─▶ upsert_suppliers ─┴─▶ division_222222.validate >> .post ─┴─▶ report

- Every task of a division group runs in the pool ``mlc_exact__<tenant>__<division>`` (one slot, shared with the
  invoice poll), so no two tasks ever work on one Exact division at the same time. A division's ``map_vendors``
  resolves its suppliers from the vendor map and reads the missing ones from Exact (``vendors.collect_suppliers``);
  ``upsert_suppliers`` (no Exact call, so no division pool) sends each supplier code to JAGGAER once for the whole
  tenant, with the master division's data (``po_push.supplier_master_division``), and holds or releases the orders.
  It runs when every ``map_vendors`` is done (``all_done``): one division's failure does not stop the others; a
  division's ``validate`` waits for its own ``map_vendors`` and for ``upsert_suppliers``.
- Schedule: ``po_push.schedule`` (default every 15 minutes) as a ``CronDataIntervalTimetable`` **or** an event of
  one of the tenant's division assets ``exact://<tenant>/<division>/purchase-orders`` (``AssetOrTimeSchedule``).
  Each asset has an ``AssetWatcher`` whose trigger (``ml_connector.webhooks.trigger``, in the triggerer) turns the
  Exact webhook notifications the receiver stored into asset events. An asset-triggered run works only on the
  divisions whose assets fired (the other division groups are skipped); it reads through the same sync cursor and
  ledger as a scheduled run. ``max_active_runs=1``: events that arrive during a run wait in Airflow's queue and
  start the next run (Airflow 3.3 defers asset-triggered runs at max_active_runs), so nothing runs in parallel and
  nothing is lost; a lost notification is caught by the next cron run's cursor. Scheduled runs read by cursor; the
  data interval is only used by backfills. ``catchup=False``.
- ``post`` works through the division's whole batch, then fails (retryably: Airflow retries it with backoff) when
  an order of that attempt failed or stayed ambiguous; its counts are its XCom either way.
- ``report`` runs whatever happened upstream (``all_done``), merges the counts, adds the orders this run left
  ``failed``/``posting`` in the ledger, alerts, and goes red when orders failed or a stage did not finish.
  Clearing the failed task(s) replays only the orders still open.

Building needs no network or database: the tasks import the flow code when they run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ml_connector.dagbuild.common import default_args, flow_params, pool_name

if TYPE_CHECKING:
    from ml_connector.config.tenant import TenantConfig

DAG_PREFIX = "exact_po_push__"
STAGES = ("extract", "map_vendors", "validate", "post")
SUPPLIERS_TASK = "upsert_suppliers"
# The function each division task runs: (module under ml_connector.flows.po_push, "" for the package, attribute).
# The package's extract sends a dry run to the preview. A division's map_vendors only collects its suppliers; the
# JAGGAER upsert is the tenant-level task's.
STAGE_FUNCTIONS = {
    "extract": ("", "extract"),
    "map_vendors": ("vendors", "collect_suppliers"),
    "validate": ("validate", "validate"),
    "post": ("post", "post"),
}
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)


def dag_id(tenant_name: str) -> str:
    return f"{DAG_PREFIX}{tenant_name}"


def group_id(division: int) -> str:
    return f"division_{int(division)}"


def notified_divisions(context: Mapping[str, Any]) -> set[int] | None:
    """The divisions an asset-triggered run is for (from its triggering asset events); ``None`` for every other
    run (scheduled, manual, backfill): those work on every division."""
    from ml_connector.webhooks import division_of_uri

    run = context.get("dag_run")
    if str(getattr(run, "run_type", "")) not in ("asset_triggered", "DagRunType.ASSET_TRIGGERED"):
        return None
    events = context.get("triggering_asset_events") or {}
    out = set()
    for asset in events:
        division = division_of_uri(str(getattr(asset, "uri", "")))
        if division is not None:
            out.add(division)
    return out or None


def _stage_callable(tenant_name: str, stage: str, division: int | None) -> Callable[[], dict[str, Any]]:
    module, attribute = STAGE_FUNCTIONS.get(stage, ("vendors", stage))

    def run_po_push_stage() -> dict[str, Any]:
        import importlib

        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowSkipException

        from ml_connector.flows import runtime

        context = get_current_context()
        only = notified_divisions(context)
        if division is not None and only is not None and division not in only:
            raise AirflowSkipException(
                f"run triggered by Exact notifications of division(s) {sorted(only)}; division {division} waits "
                "for its own notification or the schedule"
            )
        package = "ml_connector.flows.po_push"
        function = getattr(importlib.import_module(f"{package}.{module}" if module else package), attribute)
        return runtime.run_stage(
            context,
            tenant_name,
            runtime.FLOW_PO_PUSH,
            function,
            scheduled="cursor",
            division=division,
            fail_on_records=stage == "post",
        )

    run_po_push_stage.__name__ = f"po_push_{stage}"
    return run_po_push_stage


def _report_callable(tenant_name: str, task_ids: list[str]) -> Callable[[], dict[str, Any]]:
    def run_po_push_report() -> dict[str, Any]:
        from airflow.sdk import get_current_context

        from ml_connector.dagbuild.common import collect_outcomes
        from ml_connector.flows import runtime

        context = get_current_context()
        only = notified_divisions(context)
        expected = task_ids
        if only is not None:  # an asset-triggered run skipped the other divisions on purpose
            wanted = {group_id(d) for d in only}
            expected = [t for t in task_ids if "." not in t or t.split(".", 1)[0] in wanted]
        with runtime.stage_context(context, tenant_name, runtime.FLOW_PO_PUSH, scheduled="cursor") as ctx:
            outcomes, missing = collect_outcomes(context["ti"], expected)
            problems = [
                f"task {t} did not finish (see its log); the orders it did not reach stay in the ledger and the "
                "next run (or clearing the task) picks them up"
                for t in missing
            ]
            return runtime.report(ctx, outcomes, problems=problems)

    return run_po_push_report


def division_assets(tenant: TenantConfig) -> Any:
    """Any of the tenant's division assets (``AssetAny``), each watched by the webhook notification trigger."""
    from airflow.sdk import Asset, AssetAny, AssetWatcher

    from ml_connector.webhooks import asset_name, asset_uri
    from ml_connector.webhooks.trigger import ExactNotificationTrigger

    assets = [
        Asset(
            name=asset_name(tenant.name, division),
            uri=asset_uri(tenant.name, division),
            group="ml-connector",
            watchers=[
                AssetWatcher(
                    name=f"exact_webhooks__{tenant.name}__{int(division)}",
                    trigger=ExactNotificationTrigger(tenant=tenant.name, division=division),
                )
            ],
        )
        for division in tenant.po_divisions
    ]
    return AssetAny(*assets)


def build_dag(tenant: TenantConfig) -> Any:
    """The DAG object (``airflow.sdk.DAG``) of one tenant's PO push."""
    from airflow.sdk import DAG, AssetOrTimeSchedule, CronDataIntervalTimetable, TaskGroup, task

    cfg = tenant.po_push
    schedule: Any
    if cfg.schedule in ("@once", "@continuous"):
        schedule = cfg.schedule
    else:
        schedule = AssetOrTimeSchedule(
            timetable=CronDataIntervalTimetable(cfg.schedule, timezone=cfg.timezone),
            assets=division_assets(tenant),
        )
    with DAG(
        dag_id=dag_id(tenant.name),
        description=f"Exact Online purchase orders → JAGGAER POs for {tenant.display_name or tenant.name}",
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(tenant),
        params=flow_params("Exact order numbers (OrderNumber) to push; empty means every changed order."),
        tags=["ml-connector", "po_push", f"tenant:{tenant.name}"],
        doc_md=__doc__,
    ) as dag:
        stage_ids: list[str] = [SUPPLIERS_TASK]
        suppliers = task(task_id=SUPPLIERS_TASK, trigger_rule="all_done", multiple_outputs=False)(
            _stage_callable(tenant.name, SUPPLIERS_TASK, None)
        )()
        ends = []
        for division in tenant.po_divisions:
            pool = pool_name(tenant.name, division)
            with TaskGroup(group_id(division), tooltip=f"Exact division {division}"):
                ops = {}
                for stage in STAGES:
                    ops[stage] = task(task_id=stage, pool=pool, multiple_outputs=False)(
                        _stage_callable(tenant.name, stage, division)
                    )()
                    stage_ids.append(f"{group_id(division)}.{stage}")
                ops["extract"] >> ops["map_vendors"] >> suppliers
                [ops["map_vendors"], suppliers] >> ops["validate"]
                ops["validate"] >> ops["post"]
                ends.append(ops["post"])
        report = task(
            task_id="report", trigger_rule="all_done", retries=0, on_failure_callback=None, multiple_outputs=False
        )(_report_callable(tenant.name, stage_ids))()
        for end in ends:
            end >> report
    return dag


def build_all(tenants: Mapping[str, TenantConfig] | None = None) -> dict[str, Any]:
    """``{dag_id: DAG}`` for every tenant whose PO push is enabled (tenant file from settings unless given)."""
    if tenants is None:
        from ml_connector.config.loader import load_tenants

        tenants = load_tenants()
    return {dag_id(name): build_dag(t) for name, t in tenants.items() if t.po_push.enabled}
