"""The ``mlc`` command. Each concern has its own module; this one only assembles them."""

from __future__ import annotations

import logging
import os

import typer

from ml_connector.cli import (
    config_cmd,
    db_cmd,
    exact_cmd,
    keys_cmd,
    ledger_cmd,
    mappings_cmd,
    pools_cmd,
    reconcile_cmd,
    sandbox_cmd,
    status_cmd,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ml-connector: Exact Online <-> JAGGAER")
app.add_typer(config_cmd.app, name="config", help="Check the tenant configuration.")
app.add_typer(db_cmd.app, name="db", help="Create or upgrade the connector database.")
app.add_typer(keys_cmd.app, name="keys", help="Encryption keys: generate, rotate.")
app.add_typer(mappings_cmd.app, name="mappings", help="Vendor map and code maps: list, export, import, set, delete.")
app.add_typer(pools_cmd.app, name="pools", help="Airflow pools: one slot per Exact division.")
app.add_typer(exact_cmd.app, name="exact", help="Connect a tenant to Exact Online (OAuth consent).")
app.add_typer(ledger_cmd.app, name="ledger", help="Records per flow: state, targets, requeue.")
app.command("audit", help="Every attempt on one record (timestamp, HTTP status, target id).")(ledger_cmd.audit)
app.command("reconcile", help="JAGGAER ⇄ Exact reconciliation of a division and period (CSV/XLSX).")(
    reconcile_cmd.reconcile
)
app.command("status", help="Health of every tenant's connections and tokens.")(status_cmd.status)
app.command("sandbox", help="Run the Exact Online and JAGGAER sandbox servers.")(sandbox_cmd.sandbox)


def main() -> None:
    # mlc is an admin tool run next to the scheduler/api-server: let Airflow's SDK read connections from the
    # metadata database (outside a task it otherwise only looks at AIRFLOW_CONN_* environment variables).
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    # A command prints its own result; Alembic's per-migration progress lines are noise here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    app()
