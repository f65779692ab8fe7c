"""mlc ledger list | requeue, mlc audit: what happened to each record, and putting records back in the queue."""

from __future__ import annotations

import json
from typing import Any

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
    search: str = typer.Option(
        None,
        "--search",
        "-q",
        help="only the record(s) with this id or number: JAGGAER invoice number (I00071) or id (2428071), Exact "
        "order number, PONumber, Exact entry number; '111111/1001' names a division",
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Records of one flow with their state, both source identifiers (number and id), target ids and the reason of
    the last failure."""
    from sqlalchemy import select

    from ml_connector.store import ledger
    from ml_connector.store.db import get_engine, session_scope
    from ml_connector.store.models import LedgerEntry

    with session_scope(get_engine()) as session:
        query = select(LedgerEntry).where(LedgerEntry.tenant == tenant, LedgerEntry.flow == flow)
        if search and search.strip():
            from ml_connector.console.queries import search_clause

            query = query.where(search_clause(search))
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
    if search and not rows:
        typer.echo(f"no {flow} record of tenant {tenant!r} has {search!r} as its id or number", err=True)
        raise typer.Exit(1)
    for r in rows:
        target = r.target_ref or r.target_id or "-"
        reason = f"  {r.reason}" if r.reason else ""
        typer.echo(f"{r.state:<11} {record_label(r):<40} -> {target:<20} tries={r.attempts}{reason}")


def record_label(entry: Any) -> str:
    """How every command names a record: division-qualified number and id, ``111111/I00071 (id 2428071)``."""
    where = f"{entry.division}/" if entry.division is not None else ""
    number = entry.source_ref or entry.source_id
    same = not entry.source_ref or entry.source_ref == entry.source_id
    return f"{where}{number}" + ("" if same else f" (id {entry.source_id})")


def _resolve(tenant: str, flow: str, idents: list[str]) -> tuple[list[Any], list[str]]:
    """The ledger records named by ``idents`` (each a number or id, as the report and the console print them), and
    one hint per identifier that names none or several."""
    from ml_connector.console.queries import find, resolve_source_id
    from ml_connector.store.db import get_engine

    engine = get_engine()
    found: list[Any] = []
    hints: list[str] = []
    for ident in idents:
        source_id, hint = resolve_source_id(engine, tenant, flow, ident)
        if source_id is None:
            hints.append(hint)
            continue
        found.extend(e for e in find(engine, tenant, flow, source_id) if e.source_id == source_id)
    return found, hints


@app.command("requeue")
def requeue(
    tenant: str = typer.Option(...),
    flow: str = typer.Option(..., callback=_check_flow),
    source_id: list[str] = typer.Argument(
        ...,
        help="records by id or number: JAGGAER invoice number (I00071) or id (2428071); Exact order number or "
        "PurchaseOrderID; '111111/1001' names a division",
    ),
) -> None:
    """Put quarantined, failed, skipped or held records back to pending; the next run processes them again.

    A record already posted is never requeued: the ledger is what keeps it from being posted twice.
    """
    from ml_connector.store import ledger
    from ml_connector.store.db import get_engine

    found, hints = _resolve(tenant, flow, source_id)
    for hint in hints:
        typer.echo(hint, err=True)
    if not found:
        raise typer.Exit(1)
    count = ledger.requeue(get_engine(), tenant, flow, [e.source_id for e in found], by="mlc ledger requeue")
    typer.echo(f"requeued {count} of {len(source_id)} record(s); trigger the DAG or wait for its next run")
    for entry in found:
        typer.echo(f"  {record_label(entry)}: was {entry.state}")
    if count < len(found):
        typer.echo(
            "records not requeued were pending already, in flight or posted (only held, quarantined, failed and "
            "skipped records are requeued)",
            err=True,
        )
    if hints:
        raise typer.Exit(1)


@app.command("resolve")
def resolve(
    tenant: str = typer.Option(...),
    flow: str = typer.Option(..., callback=_check_flow),
    source_id: str = typer.Argument(..., help="the record's id or number (as for requeue)"),
    note: str = typer.Option(..., help="how it was settled, e.g. 'keyed by hand in Exact as entry 2026-104'"),
) -> None:
    """Mark a held, quarantined or failed record as settled by hand (it becomes skipped; nothing more is sent).
    Audited with the note, like *Mark resolved by hand* on the record's page in the UI."""
    import getpass

    from ml_connector.console.queries import NotResolvable, resolve_by_hand
    from ml_connector.store.db import get_engine

    found, hints = _resolve(tenant, flow, [source_id])
    if not found:
        typer.echo(hints[0], err=True)
        raise typer.Exit(1)
    try:
        entry = resolve_by_hand(get_engine(), found[0].id, note, who=f"{getpass.getuser()} with mlc ledger resolve")
    except NotResolvable as exc:
        typer.echo(f"not resolved: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{record_label(entry)}: resolved by hand (skipped); nothing more is sent")


def audit(
    tenant: str = typer.Option(...),
    flow: str = typer.Option(..., callback=_check_flow),
    source_id: str = typer.Argument(
        ...,
        help="the record's id or number: JAGGAER invoice number (I00071) or id (2428071), Exact order number or "
        "PurchaseOrderID, PONumber, Exact entry number; '111111/1001' names a division",
    ),
) -> None:
    """Every attempt and state change of one record, oldest first."""
    from ml_connector.store.audit import history
    from ml_connector.store.db import get_engine

    found, hints = _resolve(tenant, flow, [source_id])
    if not found:
        # not in the ledger (or ambiguous): audit rows may still exist under the id as given
        rows = history(get_engine(), tenant, flow, source_id)
        if not rows:
            typer.echo(f"no audit rows for {flow} record {source_id!r} of tenant {tenant!r}: {hints[0]}", err=True)
            raise typer.Exit(1)
    else:
        entry = found[0]
        rows = history(get_engine(), tenant, flow, entry.source_id)
        target = entry.target_ref or entry.target_id or "-"
        typer.echo(f"{flow} record {record_label(entry)}: {entry.state}, target {target}")
        if not rows:
            typer.echo("no audit rows yet", err=True)
            raise typer.Exit(1)
    for r in rows:
        status = r.http_status if r.http_status is not None else "-"
        target = r.target_ref or r.target_id or "-"
        typer.echo(
            f"{r.at.isoformat(timespec='seconds')}  try {r.attempt}  {r.action:<24} {r.outcome:<11} "
            f"HTTP {status:<4} -> {target}  {r.message or ''}".rstrip()
        )
