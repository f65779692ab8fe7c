"""Which Airflow task try wrote an audit row, for the link to that try's log.

Audit rows carry the run id and the division, not the task: the try is the task instance of that run (current or
earlier try, ``task_instance`` / ``task_instance_history``) that was running when the row was written, preferring
the row's division group (``division_<n>.<stage>``). This runs in the api-server, inside a route, with the session
Airflow's own API routes get (``SessionDep``); tasks never do this.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TryWindow:
    task_id: str
    map_index: int
    try_number: int
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class TaskTry:
    task_id: str
    try_number: int
    url: str


def dag_id_of(flow: str, tenant: str) -> str:
    if flow == "po_push":
        from ml_connector.dagbuild.po_push import dag_id
    else:
        from ml_connector.dagbuild.invoice_poll import dag_id
    return dag_id(tenant)


def log_url(dag_id: str, run_id: str, task_id: str, try_number: int | None = None, map_index: int = -1) -> str:
    """The Airflow 3 UI's page of one task instance (its log tab), from the site root."""
    url = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    if map_index >= 0:
        url += f"/mapped/{map_index}"
    return url + (f"?try_number={try_number}" if try_number else "")


def run_url(dag_id: str, run_id: str) -> str:
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def windows(session: Any, dag_id: str, run_ids: Iterable[str]) -> dict[str, list[TryWindow]]:
    """Every try of every task of these runs, by run id."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from sqlalchemy import select

    ids = sorted(set(run_ids))
    out: dict[str, list[TryWindow]] = {r: [] for r in ids}
    if not ids:
        return out
    for model in (TaskInstance, TaskInstanceHistory):
        query = select(
            model.run_id, model.task_id, model.map_index, model.try_number, model.start_date, model.end_date
        ).where(model.dag_id == dag_id, model.run_id.in_(ids))
        for run_id, task_id, map_index, try_number, start, end in session.execute(query):
            if try_number:
                out[run_id].append(TryWindow(task_id, map_index, try_number, _aware(start), _aware(end)))
    return out


def match(at: datetime, division: int | None, candidates: list[TryWindow]) -> TryWindow | None:
    """The try that was running at ``at`` (its division's group first); ``None`` when none was."""
    at = _aware(at) or at
    running = [w for w in candidates if w.start is not None and w.start <= at and (w.end is None or at <= w.end)]
    if division is not None:
        own = [w for w in running if w.task_id.startswith(f"division_{division}.")]
        running = own or running
    return max(running, key=lambda w: w.start or at) if running else None


def tries_for(session: Any, dag_id: str, rows: list[Any]) -> dict[int, TaskTry]:
    """``{audit row id: TaskTry}`` for the audit rows that have a run id (best effort: {} when Airflow's tables
    cannot be read, e.g. outside the api-server)."""
    if session is None:
        return {}
    try:
        found = windows(session, dag_id, [r.run_id for r in rows if r.run_id])
    except Exception:
        log.warning("could not read task instances of %s", dag_id, exc_info=True)
        return {}
    out: dict[int, TaskTry] = {}
    for row in rows:
        if not row.run_id:
            continue
        w = match(row.at, row.division, found.get(row.run_id, []))
        if w is not None:
            url = log_url(dag_id, row.run_id, w.task_id, w.try_number, w.map_index)
            out[row.id] = TaskTry(w.task_id, w.try_number, url)
    return out
