"""mlc status: health of every tenant's connections and tokens (exit code 1 when anything is unhealthy)."""

from __future__ import annotations

import json

import typer

from ml_connector.errors import ConfigError


def _when(value: object) -> str:
    if value is None:
        return "-"
    return value.isoformat(timespec="minutes") if hasattr(value, "isoformat") else str(value)


def status(
    json_output: bool = typer.Option(False, "--json", help="machine-readable output"),
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="only this tenant"),
    offline: bool = typer.Option(False, "--offline", help="read the token store only; call neither API"),
    skip_jaggaer: bool = typer.Option(False, "--skip-jaggaer", help="do not check the JAGGAER connections"),
) -> None:
    """Exact connection, token refresh times and JAGGAER connection per tenant."""
    from ml_connector.config import load_tenants
    from ml_connector.status import collect
    from ml_connector.store.db import get_engine

    try:
        tenants = load_tenants()
        if tenant is not None:
            if tenant not in tenants:
                raise ConfigError(f"no tenant {tenant!r} in the tenant config")
            tenants = {tenant: tenants[tenant]}
        report = collect(tenants, get_engine(), live=not offline, check_jaggaer=not (offline or skip_jaggaer))
    except ConfigError as exc:
        typer.secho("error: " + "\n".join(exc.problems), err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    from ml_connector.webhooks.store import status_lines

    engine = get_engine()
    hooks = {r.tenant: status_lines(engine, r.tenant) for r in report}
    healthy = all(r.healthy for r in report)
    if json_output:
        tenants_out = [{**r.as_dict(), "webhooks": hooks[r.tenant]} for r in report]
        typer.echo(json.dumps({"healthy": healthy, "tenants": tenants_out}, indent=2, default=str))
    else:
        for r in report:
            mark = "OK " if r.healthy else "BAD"
            typer.echo(f"[{mark}] tenant {r.tenant}")
            typer.echo(f"  Exact ({r.exact_conn_id}): {r.exact}" + (f" - {r.exact_detail}" if r.exact_detail else ""))
            typer.echo(
                f"    last refreshed: {_when(r.last_refreshed)}; refresh token lapses if unused: "
                f"{_when(r.refresh_lapses_at)}; token calls today: {r.token_calls_today}"
            )
            typer.echo(
                f"  JAGGAER ({r.jaggaer_conn_id}): {r.jaggaer}" + (f" - {r.jaggaer_detail}" if r.jaggaer_detail else "")
            )
            for line in hooks[r.tenant]:
                typer.echo(f"  {line}")
    if not healthy:
        raise typer.Exit(1)
