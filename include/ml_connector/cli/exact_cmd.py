"""mlc exact connect | authorize: consent to Exact Online for one tenant, from a shell; mlc exact webhooks.

    mlc exact connect --tenant demo            # prints the consent link (with a single-use state)
    mlc exact authorize --tenant demo --redirect-url 'http://…/callback?code=…&state=…'
    mlc exact authorize --tenant demo --code CODE [--state STATE]
    mlc exact webhooks subscribe|list|unsubscribe --tenant demo [--callback-url URL]

The connection (host, client id/secret, redirect URI) comes from the tenant's Airflow connection; the tokens are
stored encrypted in the connector database (``MLC_DB_URL`` or the Airflow connection ``ml_connector_db``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ml_connector.errors import ConfigError, ConnectorError

if TYPE_CHECKING:
    from ml_connector.config import TenantConfig

# OAuth, the Exact client and the store are imported inside the commands: `mlc --help` stays fast.

app = typer.Typer(no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(1)


def _tenant(name: str) -> TenantConfig:
    from ml_connector.config import load_tenants

    tenants = load_tenants()
    if name not in tenants:
        raise _fail(f"no tenant {name!r} in the tenant config (known: {', '.join(sorted(tenants))})")
    return tenants[name]


@app.command("connect")
def connect(
    tenant: str = typer.Option(..., "--tenant", "-t", help="tenant name from the tenant config"),
    redirect_uri: str | None = typer.Option(
        None,
        "--redirect-uri",
        help="redirect URI registered for the app (default: the connection's redirect_uri, else urn:mlc:paste)",
    ),
) -> None:
    """Print the Exact Online consent link for TENANT (valid 15 minutes, usable once)."""
    from ml_connector.exact import oauth
    from ml_connector.exact.connection import load_app
    from ml_connector.store.db import get_engine

    try:
        cfg = _tenant(tenant)
        exact_app = load_app(cfg.exact.conn_id)
        uri = redirect_uri or exact_app.redirect_uri or oauth.PASTE_REDIRECT_URI
        url = oauth.start_consent(get_engine(), exact_app, tenant, cfg.exact.conn_id, uri)
    except ConfigError as exc:
        raise _fail("\n".join(exc.problems)) from None
    except ConnectorError as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"Open this link in a browser and sign in to Exact Online as a user of divisions "
        f"{', '.join(map(str, cfg.exact.divisions))}:\n"
    )
    typer.echo(url)
    typer.echo(
        "\nThen finish with:\n"
        f"  mlc exact authorize --tenant {tenant} --redirect-url '<the address the browser ended on>'\n"
        f"(or --code CODE if Exact showed you a code). The link expires in "
        f"{int(oauth.STATE_TTL.total_seconds() // 60)} minutes; the code Exact returns in 3."
    )


@app.command("authorize")
def authorize(
    tenant: str = typer.Option(..., "--tenant", "-t", help="tenant name from the tenant config"),
    code: str | None = typer.Option(None, "--code", help="the authorization code Exact returned"),
    redirect_url: str | None = typer.Option(None, "--redirect-url", help="the whole address the browser ended on"),
    state: str | None = typer.Option(None, "--state", help="the state of the consent (with --code)"),
) -> None:
    """Exchange the code for tokens, store them, then check current/Me and the tenant's divisions."""
    from ml_connector.exact import oauth
    from ml_connector.exact.client import ExactClient
    from ml_connector.exact.connection import load_app
    from ml_connector.store.db import get_engine

    if bool(code) == bool(redirect_url):
        raise _fail("give either --code or --redirect-url")
    try:
        cfg = _tenant(tenant)
        exact_app = load_app(cfg.exact.conn_id)
        engine = get_engine()
        if redirect_url:
            code, state = oauth.parse_redirect(redirect_url)
        if state:
            pending = oauth.consume_state(engine, state)
            if pending.tenant != tenant:
                raise _fail(f"this consent was started for tenant {pending.tenant!r}, not {tenant!r}")
            redirect_uri = pending.redirect_uri
        else:
            found = oauth.latest_pending(engine, tenant)
            if found is None:
                raise _fail(f"no consent in progress for tenant {tenant!r}: run mlc exact connect --tenant {tenant}")
            redirect_uri = found
            oauth.discard_pending(engine, tenant)
        assert code is not None
        client = ExactClient(exact_app, tenant, cfg.exact.conn_id, engine=engine)
        client.tokens.exchange_code(code, redirect_uri)
        typer.echo(f"tokens stored for tenant {tenant} (connection {cfg.exact.conn_id})")
        me = client.me()
        typer.echo(f"connected as {me.get('FullName') or '?'} <{me.get('UserName') or me.get('Email') or '?'}>")
        client.check_divisions(list(cfg.exact.divisions))
    except ConfigError as exc:
        raise _fail("\n".join(exc.problems)) from None
    except ConnectorError as exc:
        raise _fail(str(exc)) from None
    for division in cfg.exact.divisions:
        typer.echo(f"division {division}: accessible")
    typer.secho(f"tenant {tenant} is connected to Exact Online", fg=typer.colors.GREEN)


# --------------------------------------------------------------------------------------------------- webhooks
webhooks_app = typer.Typer(no_args_is_help=True, help="Exact webhook subscriptions (real-time PO push).")
app.add_typer(webhooks_app, name="webhooks")

_CALLBACK_HELP = (
    "the receiver's public https address, e.g. https://airflow.example.com/ml-connector/webhooks/exact/TENANT "
    "(default: [ml_connector] webhook_base_url + /ml-connector/webhooks/exact/TENANT)"
)


def _webhook_client(tenant: str) -> tuple[TenantConfig, object, object, dict[str, object]]:
    """(tenant config, Exact client, engine, connection extra)."""
    from ml_connector.exact.client import ExactClient
    from ml_connector.exact.connection import app_from_connection, get_connection
    from ml_connector.store.db import get_engine

    cfg = _tenant(tenant)
    conn = get_connection(cfg.exact.conn_id)
    engine = get_engine()
    client = ExactClient(app_from_connection(conn), tenant, cfg.exact.conn_id, engine=engine)
    return cfg, client, engine, dict(getattr(conn, "extra_dejson", None) or {})


def _callback(tenant: str, given: str | None, sandbox: bool) -> str:
    from ml_connector.settings import get_setting
    from ml_connector.webhooks import callback_url

    url = given
    if not url:
        base = get_setting("webhook_base_url")
        if not base:
            raise _fail(
                "no callback URL: give --callback-url, or set [ml_connector] webhook_base_url (env "
                "MLC_WEBHOOK_BASE_URL) to the public https address of the Airflow api-server"
            )
        url = callback_url(base, tenant)
    if not url.startswith("https://") and not (sandbox and url.startswith("http://")):
        raise _fail(f"callback URL {url!r}: Exact delivers webhooks to https addresses only")
    return url


def _print_changes(changes: list) -> None:  # list[subscriptions.Change]
    if not changes:
        typer.echo("no subscriptions")
    for c in changes:
        typer.echo(f"division {c.division}: {c.action} {c.topic} -> {c.callback_url} (id {c.subscription_id})")


@webhooks_app.command("subscribe")
def webhooks_subscribe(
    tenant: str = typer.Option(..., "--tenant", "-t", help="tenant name from the tenant config"),
    callback_url: str | None = typer.Option(None, "--callback-url", help=_CALLBACK_HELP),
) -> None:
    """Subscribe every pinned PO division of TENANT to PurchaseOrders notifications (an existing one is kept)."""
    from ml_connector.net_policy import is_sandbox
    from ml_connector.webhooks import SECRET_FIELD, subscriptions

    try:
        cfg, client, engine, extra = _webhook_client(tenant)
        if not extra.get(SECRET_FIELD):
            raise _fail(
                f"connection {cfg.exact.conn_id} has no '{SECRET_FIELD}': copy the webhook secret of the app from "
                "Exact's App Center into that field first (the receiver refuses every notification without it)"
            )
        url = _callback(tenant, callback_url, is_sandbox(extra))
        changes = subscriptions.subscribe(client, engine, list(cfg.po_divisions), url)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise _fail("\n".join(exc.problems)) from None
    except ConnectorError as exc:
        raise _fail(str(exc)) from None
    _print_changes(changes)


@webhooks_app.command("list")
def webhooks_list(tenant: str = typer.Option(..., "--tenant", "-t", help="tenant name from the tenant config")) -> None:
    """The tenant's subscriptions at Exact, per pinned PO division."""
    from ml_connector.webhooks import subscriptions

    try:
        cfg, client, engine, _extra = _webhook_client(tenant)
        changes = subscriptions.list_subscriptions(client, engine, list(cfg.po_divisions))  # type: ignore[arg-type]
    except ConfigError as exc:
        raise _fail("\n".join(exc.problems)) from None
    except ConnectorError as exc:
        raise _fail(str(exc)) from None
    _print_changes(changes)


@webhooks_app.command("unsubscribe")
def webhooks_unsubscribe(
    tenant: str = typer.Option(..., "--tenant", "-t", help="tenant name from the tenant config"),
    callback_url: str | None = typer.Option(
        None, "--callback-url", help="only the subscriptions to this address (default: every PurchaseOrders one)"
    ),
) -> None:
    """Delete the tenant's PurchaseOrders subscriptions (the scheduled runs go on as before)."""
    from ml_connector.webhooks import subscriptions

    try:
        cfg, client, engine, _extra = _webhook_client(tenant)
        changes = subscriptions.unsubscribe(client, engine, list(cfg.po_divisions), callback_url)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise _fail("\n".join(exc.problems)) from None
    except ConnectorError as exc:
        raise _fail(str(exc)) from None
    _print_changes(changes)
