"""mlc ledger list | requeue, mlc audit: what happened to each record, and putting records back in the queue."""

from __future__ import annotations

import json

import typer

# The store (SQLAlchemy) is imported inside each command: `mlc --help` and `mlc config check` stay fast.

app = typer.Typer(no_args_is_help=True)

FLOWS = ("po_push", "invoice_poll")


def _check_flow(flow: str) -> str:
    if flow not in FLOWS:
        raise typer.BadParameter(f"unknown flow {flow!r}; use one of: {', '.join(FLOWS)}")
    return flow


@app.command("list")
def list_entries(
    tenant: str = typer.Option(..., help="tenant name from the tenant file"),
    flow: str = typer.Option(..., callback=_check_flow, help="po_push or invoice_poll"),
    state: list[str] = typer.Option(None, help="only these states (repeatable); default: all"),
    limit: int = typer.Option(50, help="at most this many rows (newest first)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Records of one flow with their state, target ids and the reason of the last failure."""
    from sqlalchemy import select

    from ml_connector.store import ledger
    from ml_connector.store.db import get_engine, session_scope
    from ml_connector.store.models import LedgerEntry

    with session_scope(get_engine()) as session:
        query = select(LedgerEntry).where(LedgerEntry.tenant == tenant, LedgerEntry.flow == flow)
        if state:
            unknown = set(state) - set(ledger.STATES)
            if unknown:
                raise typer.BadParameter(f"unknown state(s) {sorted(unknown)}; states are {', '.join(ledger.STATES)}")
            query = query.where(LedgerEntry.state.in_(state))
        rows = list(session.scalars(query.order_by(LedgerEntry.updated_at.desc()).limit(limit)))
        counts = ledger.counts(session, tenant, flow)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "counts": counts,
                    "entries": [
                        {
                            "source_id": r.source_id,
                            "source_ref": r.source_ref,
                            "division": r.division,
                            "state": r.state,
                            "target_id": r.target_id,
                            "target_ref": r.target_ref,
                            "attempts": r.attempts,
                            "reason": r.reason,
                            "updated_at": r.updated_at.isoformat(),
                        }
                        for r in rows
                    ],
                },
                indent=2,
            )
        )
        return
    typer.echo("  ".join(f"{k}={v}" for k, v in counts.items() if v) or "no records yet")
    for r in rows:
        target = r.target_ref or r.target_id or "-"
        reason = f"  {r.reason}" if r.reason else ""
        typer.echo(f"{r.state:<11} {r.source_ref or r.source_id:<24} -> {target:<20} tries={r.attempts}{reason}")


@app.command("requeue")
def requeue(
    tenant: str = typer.Option(...),
    flow: str = typer.Option(..., callback=_check_flow),
    source_id: list[str] = typer.Argument(..., help="source ids (Exact PurchaseOrderID / JAGGAER invoiceId)"),
) -> None:
    """Put quarantined, failed, skipped or held records back to pending; the next run processes them again.

    A record already posted is never requeued: the ledger is what keeps it from being posted twice.
    """
    from ml_connector.store import ledger
    from ml_connector.store.db import get_engine

    count = ledger.requeue(get_engine(), tenant, flow, source_id, by="mlc ledger requeue")
    typer.echo(f"requeued {count} of {len(source_id)} record(s); trigger the DAG or wait for its next run")
    if count < len(source_id):
        typer.echo("records not requeued are unknown, pending already, in flight or posted", err=True)


def audit(
    tenant: str = typer.Option(...),
    flow: str = typer.Option(..., callback=_check_flow),
    source_id: str = typer.Argument(..., help="the source record's id"),
) -> None:
    """Every attempt and state change of one record, oldest first."""
    from ml_connector.store.audit import history
    from ml_connector.store.db import get_engine

    rows = history(get_engine(), tenant, flow, source_id)
    if not rows:
        typer.echo(f"no audit rows for {flow} record {source_id!r} of tenant {tenant!r}", err=True)
        raise typer.Exit(1)
    for r in rows:
        status = r.http_status if r.http_status is not None else "-"
        target = r.target_ref or r.target_id or "-"
        typer.echo(
            f"{r.at.isoformat(timespec='seconds')}  try {r.attempt}  {r.action:<24} {r.outcome:<11} "
            f"HTTP {status:<4} -> {target}  {r.message or ''}".rstrip()
        )
