"""``python -m sandbox`` / ``mlc sandbox``: run the Exact Online and JAGGAER sandboxes in one process."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from sandbox.common.server import ServerThread, serve_until_stopped

EXACT_PORT = 8701
JAGGAER_PORT = 8702


def _exact_credentials() -> dict[str, Any]:
    """The Exact sandbox's demo OAuth app (read from ``sandbox.exact.settings``, tolerant of its shape)."""
    try:
        mod = importlib.import_module("sandbox.exact.settings")
    except ImportError:
        return {}
    out: dict[str, Any] = {}
    for attr, key in (
        ("DEMO_CLIENT_ID", "client_id"),
        ("DEMO_CLIENT_SECRET", "client_secret"),
        ("DEMO_REDIRECT_URIS", "redirect_uris"),
    ):
        if hasattr(mod, attr):
            out[key] = getattr(mod, attr)
    try:
        from sandbox.common import demo_company as dc

        out["user"] = dc.DEMO_USER.get("UserName")
        out["divisions"] = ", ".join(f"{div} ({bu})" for bu, div in dc.BUSINESS_UNITS.items())
    except (ImportError, AttributeError):
        pass
    return out


def banner(exact_url: str | None, jaggaer_url: str, jaggaer_credentials: dict[str, dict[str, Any]]) -> str:
    lines = ["ml-connector sandboxes are running", ""]
    if exact_url is not None:
        ex = _exact_credentials()
        lines += [
            f"Exact Online sandbox   {exact_url}",
            f"  OAuth authorize      {exact_url}/api/oauth2/auth",
            f"  OAuth token          {exact_url}/api/oauth2/token",
            f"  client_id            {ex.get('client_id', '(see /_admin/settings)')}",
            f"  client_secret        {ex.get('client_secret', '(see /_admin/settings)')}",
        ]
        if ex.get("redirect_uris"):
            lines.append(f"  redirect URIs        {', '.join(ex['redirect_uris'])}")
        if ex.get("user"):
            lines.append(f"  demo user            {ex['user']} (consent is automatic)")
        if ex.get("divisions"):
            lines.append(f"  divisions            {ex['divisions']}")
        lines += [f"  admin                {exact_url}/_admin/state", ""]
    demo = jaggaer_credentials.get("demo", {})
    lines += [
        f"JAGGAER sandbox        {jaggaer_url}",
        f"  J1P base URL         {jaggaer_url}",
        f"  J1P token URL        {jaggaer_url}/auth/realms/J1p-integrations/protocol/openid-connect/token",
        f"  client_id            {demo.get('client_id')}",
        f"  client_secret        {demo.get('client_secret')}",
        f"  XML import URL       {jaggaer_url}/apps/Router/  (POXMLImport, TSMSupplierXMLImport)",
        f"  XML Identity         {demo.get('identity')}",
        f"  XML SharedSecret     {demo.get('shared_secret')}",
        f"  business units       {', '.join(demo.get('business_units', []))}",
    ]
    for key, cred in jaggaer_credentials.items():
        if key == "demo":
            continue
        lines.append(
            f"  other customer       {key}: client {cred['client_id']} / {cred['client_secret']}, "
            f"Identity {cred['identity']} / {cred['shared_secret']}"
        )
    lines += [f"  admin                {jaggaer_url}/_admin/state  (API docs: {jaggaer_url}/_admin/docs)", ""]
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def build_apps(*, with_exact: bool = True) -> tuple[Any, Any, Any]:
    """``(exact_app or None, jaggaer_app, clock)`` as ``serve`` runs them: one *shared* clock, so moving time
    (``POST /_admin/clock`` on either) moves the whole demo company together, while a plain ``POST /_admin/reset``
    of one sandbox leaves the other's time alone (``{"clock": true}`` on Exact, ``{"now": ...}`` on JAGGAER still
    move it for both)."""
    from sandbox.common.clock import Clock
    from sandbox.jaggaer import create_app as create_jaggaer

    clock = Clock(shared=True)
    exact_app = None
    if with_exact:
        exact_module = importlib.import_module("sandbox.exact")
        factory = getattr(exact_module, "create_app", None)
        if factory is None:
            raise RuntimeError("the Exact Online sandbox is not available (sandbox.exact.create_app is missing)")
        exact_app = factory(clock=clock)
    jaggaer_app = create_jaggaer(clock=clock)
    return exact_app, jaggaer_app, clock


def serve(
    exact_port: int = EXACT_PORT,
    jaggaer_port: int = JAGGAER_PORT,
    host: str = "127.0.0.1",
    *,
    with_exact: bool = True,
) -> None:
    """Start both sandboxes, print their URLs and demo credentials, block until Ctrl-C or SIGTERM."""
    exact_app, jaggaer_app, _clock = build_apps(with_exact=with_exact)

    def start(servers: list[ServerThread]) -> None:
        exact_url = None
        if exact_app is not None:
            exact_server = ServerThread(exact_app, host=host, port=exact_port, log_level="warning")
            exact_url = exact_server.start()
            servers.append(exact_server)
        jaggaer_server = ServerThread(jaggaer_app, host=host, port=jaggaer_port, log_level="warning")
        jaggaer_url = jaggaer_server.start()
        servers.append(jaggaer_server)
        credentials = jaggaer_app.state.sandbox.credentials()
        print(banner(exact_url, jaggaer_url, credentials), flush=True)

    serve_until_stopped(start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--exact-port", type=int, default=EXACT_PORT)
    parser.add_argument("--jaggaer-port", type=int, default=JAGGAER_PORT)
    parser.add_argument("--jaggaer-only", action="store_true", help="do not start the Exact Online sandbox")
    args = parser.parse_args(argv)
    try:
        serve(args.exact_port, args.jaggaer_port, args.host, with_exact=not args.jaggaer_only)
    except (OSError, RuntimeError) as exc:
        print(f"cannot start the sandboxes: {exc}", file=sys.stderr)
        return 1
    return 0
