"""The Airflow connections a tenant file names, checked against the outbound URL policy (``mlc config check``).

Reads ``AIRFLOW_CONN_<ID>`` JSON environment variables without importing Airflow; other connections only when
asked (``from_airflow=True``: Airflow's secrets backends and metadata database, several seconds to import).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_connector.config.tenant import TenantConfig
from ml_connector.errors import ConnectorError


@dataclass
class ConnectionReport:
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # one "ok"/"not checked" line per connection


def _read(conn_id: str, from_airflow: bool) -> Any:
    from ml_connector.exact.connection import from_env_json, get_connection

    conn = from_env_json(conn_id)
    if conn is None and from_airflow:
        conn = get_connection(conn_id)
    return conn


def _url_problems(kind: str, conn: Any, conn_id: str) -> tuple[list[str], bool]:
    """(problems, sandbox) of one connection's URLs."""
    if kind == "exact":
        from ml_connector.exact.connection import check_host, connection_is_sandbox

        if not conn.host:
            return [f"connection {conn_id!r}: no region host (e.g. https://start.exactonline.co.uk)"], False
        return check_host(conn).problems, connection_is_sandbox(conn)
    from ml_connector.jaggaer.connection import jaggaer_urls

    if not conn.host:
        return [f"connection {conn_id!r}: host (J1P API base URL) is empty"], False
    urls = jaggaer_urls(conn, conn_id)
    return [p for c in urls.checks for p in c.problems], urls.sandbox


def check_connections(tenants: Mapping[str, TenantConfig], *, from_airflow: bool = False) -> ConnectionReport:
    report = ConnectionReport()
    seen: set[tuple[str, str]] = set()
    for name, tenant in sorted(tenants.items()):
        for kind, field_name, conn_id in (
            ("exact", "exact.conn_id", tenant.exact.conn_id),
            ("jaggaer", "jaggaer.conn_id", tenant.jaggaer.conn_id),
        ):
            if (kind, conn_id) in seen:
                continue
            seen.add((kind, conn_id))
            where = f"tenant {name!r}: {field_name}"
            try:
                conn = _read(conn_id, from_airflow)
            except ConnectorError as exc:
                report.problems.append(f"{where}: {exc}")
                continue
            if conn is None:
                report.lines.append(
                    f"not checked: connection {conn_id!r} (no AIRFLOW_CONN_{conn_id.upper()} variable here; "
                    "mlc config check --connections reads it from Airflow)"
                )
                continue
            problems, sandbox = _url_problems(kind, conn, conn_id)
            report.problems.extend(f"{where}: {p}" for p in problems)
            if not problems:
                note = " (sandbox: http on loopback allowed)" if sandbox else ""
                report.lines.append(f"ok: connection {conn_id!r}: URLs allowed{note}")
    return report
