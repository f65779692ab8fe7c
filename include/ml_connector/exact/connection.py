"""Reading the ``exact_online`` Airflow connection: region host, client id (login), client secret (password),
``redirect_uri`` (extra).

Connections come from Airflow (``airflow.sdk.BaseHook.get_connection``: environment, secrets backends, metadata
database). The CLI takes a shortcut for the common ``AIRFLOW_CONN_<ID>`` JSON environment variable, because
importing Airflow costs several seconds; anything else goes through Airflow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ml_connector.errors import ConfigError
from ml_connector.net_policy import UrlCheck, check_url, enforce, is_sandbox

if TYPE_CHECKING:
    from ml_connector.exact.tokens import ExactApp


@dataclass
class SimpleConnection:
    """The fields of an Airflow connection this package reads (when parsed from a JSON env var)."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    schema: str | None = None
    extra_dejson: dict[str, Any] = field(default_factory=dict)


def from_env_json(conn_id: str) -> SimpleConnection | None:
    """The connection from its ``AIRFLOW_CONN_<ID>`` JSON environment variable (``None`` when there is none)."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw or not raw.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    extra = data.get("extra") or {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra.strip() else {}
        except ValueError:
            extra = {}
    return SimpleConnection(
        conn_id=conn_id,
        conn_type=data.get("conn_type"),
        host=data.get("host"),
        login=data.get("login"),
        password=data.get("password"),
        port=data.get("port"),
        schema=data.get("schema"),
        extra_dejson=extra if isinstance(extra, dict) else {},
    )


def get_connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id`` (``ConfigError`` when it does not exist)."""
    conn = from_env_json(conn_id)
    if conn is not None:
        return conn
    try:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise ConfigError(f"Airflow connection {conn_id!r} not found or unreadable ({type(exc).__name__})") from None


def host_url(conn: Any) -> str:
    """The connection's region host as a URL (``https://`` added when it names no scheme, the port appended)."""
    host = str(conn.host or "").strip().rstrip("/")
    if host and "://" not in host:
        host = f"https://{host}"
    if host and getattr(conn, "port", None):
        host = f"{host}:{conn.port}"
    return host


def connection_is_sandbox(conn: Any) -> bool:
    """The connection's extra says ``{"sandbox": true}`` (see ``ml_connector.net_policy``)."""
    return is_sandbox(getattr(conn, "extra_dejson", None) or {})


def check_host(conn: Any) -> UrlCheck:
    """The outbound URL policy for the connection's host (``ml_connector.net_policy.check_url``)."""
    conn_id = getattr(conn, "conn_id", "?")
    return check_url(host_url(conn), what=f"connection {conn_id!r}: host", sandbox=connection_is_sandbox(conn))


def app_from_connection(conn: Any) -> ExactApp:
    """The Exact app of a connection. Raises ``ConfigError`` for a missing field or a host the outbound URL policy
    refuses (the client secret must never reach it), ``TransientError`` when the host does not resolve."""
    conn_id = getattr(conn, "conn_id", "?")
    problems = []
    if not conn.host:
        problems.append(f"connection {conn_id}: no region host (e.g. https://start.exactonline.co.uk)")
    if not conn.login:
        problems.append(f"connection {conn_id}: no client id (login)")
    if not conn.password:
        problems.append(f"connection {conn_id}: no client secret (password)")
    checked = check_host(conn) if conn.host else None
    if problems:
        raise ConfigError(problems + (checked.problems if checked else []))
    if checked is not None:
        enforce([checked])
    from ml_connector.exact.tokens import ExactApp  # not at import: it pulls in SQLAlchemy (mlc config check)

    host = host_url(conn)
    extra = getattr(conn, "extra_dejson", None) or {}
    return ExactApp(
        host=host,
        client_id=str(conn.login),
        client_secret=str(conn.password),
        redirect_uri=(extra.get("redirect_uri") or None),
    )


def load_app(conn_id: str) -> ExactApp:
    return app_from_connection(get_connection(conn_id))
