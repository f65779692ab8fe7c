"""mlc config check"""

from __future__ import annotations

from pathlib import Path

import typer

from ml_connector.config import load_tenants
from ml_connector.errors import ConfigError

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check(path: Path | None = typer.Argument(None, help="tenant file (default: the configured one)")) -> None:
    """Validate the tenant file; one line per problem, exit code 1 if any."""
    try:
        tenants = load_tenants(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(1) from None
    for name, tenant in tenants.items():
        typer.echo(
            f"ok: tenant {name!r}: Exact divisions {tenant.exact.divisions}, "
            f"JAGGAER business units {sorted(tenant.jaggaer.business_units)}"
        )
