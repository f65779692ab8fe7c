"""mlc config check"""

from __future__ import annotations

from pathlib import Path

import typer

from ml_connector.errors import ConfigError

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check(
    path: Path | None = typer.Argument(None, help="tenant file (default: the configured one)"),
    connections: bool = typer.Option(
        False,
        "--connections",
        help="also read the connections that are not AIRFLOW_CONN_* environment variables, through Airflow (slower)",
    ),
) -> None:
    """Validate the tenant file and the hosts of its connections; one line per problem, exit code 1 if any."""
    from ml_connector.config import load_tenants
    from ml_connector.connection_check import check_connections

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
    report = check_connections(tenants, from_airflow=connections)
    for line in report.lines:
        typer.echo(line)
    for problem in report.problems:
        typer.echo(problem, err=True)
    if report.problems:
        raise typer.Exit(1)
