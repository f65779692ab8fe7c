"""mlc reconcile: the JAGGAER ⇄ Exact reconciliation of one division and period, saved like the daily task's
(the console's Reconciliation page shows it too), printed, and optionally written as XLSX and/or CSV."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

# pandas, the store and the hooks are imported when the command runs: `mlc --help` stays fast.


def _date(value: str, label: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=label) from None


def reconcile(
    tenant: str = typer.Option(..., help="tenant name from the tenant file"),
    division: int = typer.Option(..., help="Exact division (one of the tenant's)"),
    date_from: str = typer.Option(..., "--from", help="first invoice date (YYYY-MM-DD)"),
    date_to: str = typer.Option(..., "--to", help="last invoice date (YYYY-MM-DD), included"),
    xlsx: Path | None = typer.Option(None, "--xlsx", help="also write the reconciliation to this XLSX file"),
    csv: Path | None = typer.Option(None, "--csv", help="also write the reconciliation to this CSV file"),
    alert: bool = typer.Option(False, "--alert", help="send the tenant's alert when anything is off"),
) -> None:
    """Approved JAGGAER invoices against Exact purchase entries (matched by supplier and YourRef); exits 1 when
    anything is off (amount or date differs, in one system only, posted but no longer in Exact)."""
    from ml_connector.errors import ConnectorError
    from ml_connector.flows.runtime import FLOW_INVOICE_POLL, FlowContext, load_tenant
    from ml_connector.reconcile import CATEGORIES, MATCHED, export
    from ml_connector.reconcile.run import page_url
    from ml_connector.reconcile.run import reconcile as run
    from ml_connector.reconcile.sources import Period
    from ml_connector.reconcile.store import get
    from ml_connector.store.db import get_engine

    start, end = _date(date_from, "--from"), _date(date_to, "--to")
    if end < start:
        raise typer.BadParameter(f"the period ends ({end}) before it starts ({start})", param_hint="--to")
    try:
        cfg = load_tenant(tenant)
        engine = get_engine()
        ctx = FlowContext.for_test(cfg, FLOW_INVOICE_POLL, engine, run_id="mlc reconcile")
        outcome = run(
            cfg,
            division,
            Period(start, end),
            engine=engine,
            exact_hook=ctx.exact_hook(),
            jaggaer_hook=ctx.jaggaer_hook(),
            trigger="mlc reconcile",
            alert=alert,
        )
    except ConnectorError as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from None
    saved = get(engine, outcome.id)
    assert saved is not None
    typer.echo(f"Reconciliation {outcome.id}: {outcome.summary()}")
    for row in saved.rows:
        if row["category"] == MATCHED:
            continue
        typer.echo(
            f"  [{CATEGORIES[row['category']]}] JAGGAER {row['jaggaer_invoice_number'] or '-'} "
            f"(id {row['jaggaer_invoice_id'] or '-'}), YourRef {row['your_ref'] or '-'}, Exact entry "
            f"{row['exact_entry_number'] or '-'}: {row['note'] or ''}"
        )
    for path, write in ((xlsx, export.xlsx_bytes), (csv, export.csv_bytes)):
        if path is not None:
            path.write_bytes(write(saved))
            typer.echo(f"written: {path}")
    typer.echo(f"In the UI: {page_url(cfg.name, outcome.id)}")
    if outcome.off:
        raise typer.Exit(1)
