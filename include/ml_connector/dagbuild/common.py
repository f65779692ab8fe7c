"""What every flow's DAG shares: default args, per-division pools, manual-trigger params, the report task.

Nothing here does I/O at import or build time. Airflow is imported lazily inside the builders' callers
(``dagbuild.po_push`` etc.), so ``mlc`` commands can import this module cheaply.

Settings (env ``MLC_*`` or ``[ml_connector]`` in airflow.cfg, read at DAG parse time):

- ``task_retries`` (default 3), ``task_retry_delay`` seconds (default 60), ``task_max_retry_delay`` seconds
  (default 900): Airflow's retries with exponential backoff (Airflow adds its own jitter). Tests set the delay to
  a fraction of a second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ml_connector.errors import ConfigError
from ml_connector.settings import get_setting

if TYPE_CHECKING:
    from ml_connector.config.tenant import TenantConfig

log = logging.getLogger(__name__)

POOL_PREFIX = "mlc_exact"
POOL_SLOTS = 1
#: Active runs per connector DAG (scheduled and manual). One: a second run would only wait on the division pools and
#: the posting lease. Deliberately not relied on for exactly-once — a backfill has its own ``max_active_runs``, and
#: ``dags test`` or a zombie task ignore Airflow's limits — the posting lease (``store.lease``) is what keeps two post
#: stages from sending for one division (invoice poll) or one tenant's JAGGAER POs (PO push) at once.
MAX_ACTIVE_RUNS = 1


# --------------------------------------------------------------------------------------------------- pools
def pool_name(tenant: str, division: int) -> str:
    """The Airflow pool that serialises every task calling one Exact division (across all flows of a tenant).

    One slot: Exact asks integrations never to call one division in parallel (docs/scaling.md, "Pools").
    """
    return f"{POOL_PREFIX}__{tenant}__{int(division)}"


def tenant_divisions(tenant: TenantConfig) -> list[int]:
    """Every Exact division a tenant's flows may call (PO push and invoice poll alike)."""
    divisions = list(tenant.exact.divisions)
    for extra in (*tenant.po_divisions, *tenant.jaggaer.business_units.values()):
        if extra not in divisions:
            divisions.append(extra)
    return divisions


def pools_for(tenants: Mapping[str, TenantConfig] | Iterable[TenantConfig]) -> list[tuple[str, int, str]]:
    """``(pool name, slots, description)`` of every per-division pool the tenants need."""
    items = tenants.values() if isinstance(tenants, Mapping) else tenants
    out: list[tuple[str, int, str]] = []
    for tenant in items:
        for division in tenant_divisions(tenant):
            out.append(
                (
                    pool_name(tenant.name, division),
                    POOL_SLOTS,
                    f"ml-connector: calls to Exact division {division} of tenant {tenant.name} (one at a time)",
                )
            )
    return out


# --------------------------------------------------------------------------------------------------- args
def _number(name: str, default: float) -> float:
    raw = get_setting(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"setting {name}: {raw!r} is not a number") from None


def failure_callback(tenant_name: str) -> Callable[[Mapping[str, Any]], None]:
    """The task failure callback of a tenant: ``alerts.failure_callback(tenant)``, imported when a task fails
    (keeps DAG parsing cheap; a broken alert channel is logged, never raised into Airflow)."""

    def _on_failure(context: Mapping[str, Any]) -> None:
        try:
            from ml_connector.alerts import failure_callback as make
        except ImportError:
            ti = context.get("ti") or context.get("task_instance")
            log.error(
                "ALERT [%s] task %s failed: %s",
                tenant_name,
                getattr(ti, "task_id", "?"),
                context.get("exception"),
            )
            return
        try:
            make(tenant_name)(context)
        except Exception:
            log.exception("failure alert for tenant %s could not be sent", tenant_name)

    _on_failure.__name__ = f"mlc_failure_callback__{tenant_name}"
    return _on_failure


def default_args(tenant: TenantConfig) -> dict[str, Any]:
    """Task defaults of every connector DAG: retries with exponential backoff and the tenant's failure alert."""
    delay = _number("task_retry_delay", 60.0)
    return {
        "owner": "ml-connector",
        "retries": int(_number("task_retries", 3)),
        "retry_delay": timedelta(seconds=delay),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=max(delay, _number("task_max_retry_delay", 900.0))),
        "on_failure_callback": failure_callback(tenant.name),
        "depends_on_past": False,
    }


# --------------------------------------------------------------------------------------------------- params
def flow_params(ids_description: str) -> dict[str, Any]:
    """Manual-trigger params (``airflow.sdk.Param``): ``dry_run``, ``date_from``, ``date_to``, ``ids``.

    A scheduled run leaves them at their defaults (no dates, no ids, not dry).
    """
    from airflow.sdk import Param

    return {
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Log what would be sent (secrets redacted); send nothing, change no ledger state.",
        ),
        "date_from": Param(
            None,
            type=["null", "string"],
            format="date",
            title="From date",
            description="Read records modified on or after this date (UTC) instead of using the cursor.",
        ),
        "date_to": Param(
            None,
            type=["null", "string"],
            format="date",
            title="To date (inclusive)",
            description="Last modification date to read (UTC, inclusive). Needs 'From date'.",
        ),
        "ids": Param(
            [],
            type=["null", "array"],
            items={"type": "string"},
            title="Only these records",
            description=ids_description,
        ),
    }


# --------------------------------------------------------------------------------------------------- report
def collect_outcomes(ti: Any, task_ids: list[str]) -> tuple[Any, list[str]]:
    """Merge the XCom counts of ``task_ids`` (``Outcomes``) and name the tasks that left none (they failed or
    were skipped upstream)."""
    from ml_connector.flows.runtime import Outcomes

    merged = Outcomes()
    missing: list[str] = []
    for task_id in task_ids:
        value = ti.xcom_pull(task_ids=task_id)
        if value is None:
            missing.append(task_id)
            continue
        merged.merge(value)
    return merged, missing
