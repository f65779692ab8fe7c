"""The URLs of a ``jaggaer`` Airflow connection, and their check against the outbound URL policy.

Kept apart from the hook (which imports Airflow's HTTP provider) so ``mlc config check`` can check a connection
without importing Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ml_connector.net_policy import UrlCheck, check_url, is_sandbox

TOKEN_PATH = "/auth/realms/J1p-integrations/protocol/openid-connect/token"
XML_ROUTER_PATH = "/apps/Router"


def base_url_of(conn: Any) -> str:
    """The J1P base URL: the host as given when it has a scheme, else ``https://host`` (``http`` only when the
    connection's schema says so), with the port appended; ``""`` without a host."""
    host = str(conn.host or "").strip().rstrip("/")
    if not host:
        return ""
    if "://" not in host:
        schema = str(getattr(conn, "schema", None) or "").strip().lower()
        host = f"{schema if schema in ('http', 'https') else 'https'}://{host}"
    if getattr(conn, "port", None):
        host = f"{host}:{conn.port}"
    return host


def xml_router_url(value: str | None, base_url: str) -> str:
    """The eProcurement Router base from the ``xml_url`` extra, which may name the host only
    (``https://xyz.jaggaer.com``) or the Router (``https://xyz.jaggaer.com/apps/Router``); default: the J1P host's."""
    url = (value or "").strip().rstrip("/")
    if not url:
        return f"{base_url}{XML_ROUTER_PATH}"
    if "://" not in url:
        url = f"https://{url}"
    if urlsplit(url).path in ("", "/"):
        return f"{url}{XML_ROUTER_PATH}"
    return url


@dataclass(frozen=True)
class JaggaerUrls:
    base_url: str
    token_url: str
    xml_url: str
    sandbox: bool
    #: one outbound-URL-policy check per URL the connection names (none for an empty host)
    checks: tuple[UrlCheck, ...]


def jaggaer_urls(conn: Any, conn_id: str) -> JaggaerUrls:
    """Every URL the connection sends credentials to (J1P host, token URL, XML Router), each checked."""
    extra = getattr(conn, "extra_dejson", None) or {}
    base_url = base_url_of(conn)
    token_url = str(extra.get("token_url") or f"{base_url}{TOKEN_PATH}").strip()
    xml_url = xml_router_url(extra.get("xml_url"), base_url)
    sandbox = is_sandbox(extra)
    where = f"connection {conn_id!r}"
    checks = (
        tuple(
            check_url(url, what=f"{where}: {name}", sandbox=sandbox)
            for name, url in (("host", base_url), ("token_url", token_url), ("xml_url", xml_url))
        )
        if base_url
        else ()
    )
    return JaggaerUrls(base_url, token_url, xml_url, sandbox, checks)
