"""Stage 1 — extract: approved JAGGAER invoices of the run window into the ledger.

- Reads every invoice header whose ``lastUpdate`` lies in the run window extended backwards by
  ``overlap_hours`` (all pages), de-duplicated by ``invoiceId``; or exactly the invoices the ``ids`` param names.
- Keeps only the tenant's post states (default: workflow ``Completed``, payment ``Payable`` or ``Paid``).
- Fetches an invoice's detail only when the ledger does not already hold this version (same ``lastUpdate``):
  re-reading the overlap costs list pages, not detail calls.
- Routes the invoice's business unit to an Exact division; an unknown one is quarantined with what to configure
  (and picked up again by itself once the tenant file or a code map routes it).
- Stages each version with ``repost_changed=False``: an invoice edited after it was posted is never posted again
  (the change is audited and reported).
- An invoice still waiting in the ledger that is no longer approved in JAGGAER is cancelled (revived when it is
  approved again).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from ml_connector.errors import ConfigError, RejectedError
from ml_connector.flows.invoice_poll.common import FLOW, ROUTE_PREFIX, divisions_of, short
from ml_connector.flows.invoice_poll.invoice import jsonable
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.jaggaer import j1p
from ml_connector.mappings.codes import CodeRules
from ml_connector.store import ledger
from ml_connector.store.cursors import get_cursor, set_cursor
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry, StagedRecord

CURSOR_SCOPE = "window_end"
#: Ledger states in which an invoice has not reached Exact yet (and may be cancelled when JAGGAER withdraws it).
OPEN_STATES = ("pending", "held", "quarantined", "failed", "skipped")


def postable(header: Mapping[str, Any], ctx: FlowContext) -> bool:
    states = ctx.tenant.invoice_poll.post_states
    workflow = str(header.get("workflowStatus") or "").strip().casefold()
    payment = str(header.get("paymentStatus") or "").strip().casefold()
    return workflow in {w.casefold() for w in states.workflow} and payment in {p.casefold() for p in states.payment}


def run_window(ctx: FlowContext, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The run's window; a manual run without dates or data interval reads since the last window read (cursor),
    else the last day."""
    if ctx.window is not None:
        return ctx.window
    now = now or datetime.now(UTC)
    with session_scope(ctx.engine) as s:
        raw = get_cursor(s, ctx.tenant.name, FLOW, CURSOR_SCOPE)
    start = datetime.fromisoformat(raw) if raw else now - timedelta(days=1)
    return min(start, now), now


def _advance_cursor(ctx: FlowContext, end: datetime) -> None:
    with session_scope(ctx.engine) as s:
        raw = get_cursor(s, ctx.tenant.name, FLOW, CURSOR_SCOPE)
        if raw is None or datetime.fromisoformat(raw) < end:
            set_cursor(s, ctx.tenant.name, FLOW, CURSOR_SCOPE, end.astimezone(UTC).isoformat())


def _known(ctx: FlowContext, ids: list[str]) -> dict[str, tuple[str, datetime | None]]:
    """``source_id -> (ledger state, staged lastUpdate)`` of the invoices the ledger already holds."""
    out: dict[str, tuple[str, datetime | None]] = {}
    if not ids:
        return out
    with session_scope(ctx.engine) as s:
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            rows = s.execute(
                select(LedgerEntry.source_id, LedgerEntry.state, StagedRecord.payload)
                .join(
                    StagedRecord,
                    (StagedRecord.tenant == LedgerEntry.tenant)
                    & (StagedRecord.flow == LedgerEntry.flow)
                    & (StagedRecord.source_id == LedgerEntry.source_id)
                    & (StagedRecord.payload_hash == LedgerEntry.staged_hash),
                    isouter=True,
                )
                .where(
                    LedgerEntry.tenant == ctx.tenant.name,
                    LedgerEntry.flow == FLOW,
                    LedgerEntry.source_id.in_(chunk),
                )
            )
            for source_id, state, payload in rows:
                header = (payload or {}).get("header") or {}
                try:
                    updated = j1p.parse_datetime(header.get("lastUpdate"))
                except ValueError:
                    updated = None
                out[source_id] = (state, updated)
    return out


def _list_window(ctx: FlowContext, jag: Any) -> tuple[list[dict[str, Any]], tuple[datetime, datetime]]:
    start, end = run_window(ctx)
    overlap = timedelta(hours=float(ctx.tenant.invoice_poll.overlap_hours))
    read_from = start - overlap
    headers: dict[str, dict[str, Any]] = {}
    for header in jag.iter_invoices(read_from, end):
        invoice_id = str(header.get("invoiceId") or "").strip()
        if invoice_id and invoice_id not in headers:
            headers[invoice_id] = header
    ctx.logger.info(
        "JAGGAER: %d invoice(s) with lastUpdate in [%s, %s) (window %s .. %s, overlap %s h)",
        len(headers),
        read_from.isoformat(),
        end.isoformat(),
        start.isoformat(),
        end.isoformat(),
        ctx.tenant.invoice_poll.overlap_hours,
    )
    return list(headers.values()), (start, end)


def iter_details(ctx: FlowContext, jag: Any, out: Outcomes) -> Iterator[tuple[dict[str, Any], bool]]:
    """``(detail, postable)`` of every invoice this run must look at (details fetched only when needed).

    Used by extract and by dry runs (which pass ``known`` nothing and stage nothing)."""
    if ctx.params.ids:
        known_ids = _known(ctx, list(ctx.params.ids))
        for invoice_id in ctx.params.ids:
            try:
                detail = jag.get_invoice(invoice_id)
            except RejectedError as exc:
                out.add("failed", invoice_id, detail=f"JAGGAER invoice {invoice_id}: {exc}")
                continue
            ok = postable(detail.get("header") or {}, ctx)
            if not ok and known_ids.get(str(invoice_id), (None, None))[0] not in OPEN_STATES:
                out.add("not_approved", invoice_id)
                continue
            yield detail, ok
        return
    headers, _window = _list_window(ctx, jag)
    known = {} if ctx.dry_run else _known(ctx, [str(h["invoiceId"]) for h in headers])
    for header in headers:
        invoice_id = str(header["invoiceId"])
        state, staged_update = known.get(invoice_id, (None, None))
        ok = postable(header, ctx)
        if not ok and state not in OPEN_STATES:
            out.add("not_approved")
            continue
        try:
            listed_update = j1p.parse_datetime(header.get("lastUpdate"))
        except ValueError:
            listed_update = None
        if state is not None and listed_update is not None and listed_update == staged_update:
            _unchanged(ctx, invoice_id, state, header, ok, out)
            continue
        try:
            detail = jag.get_invoice(invoice_id)
        except RejectedError as exc:
            out.add("failed", invoice_id, detail=f"JAGGAER invoice {invoice_id}: {exc}")
            continue
        yield detail, postable(detail.get("header") or {}, ctx)


def _unchanged(
    ctx: FlowContext, invoice_id: str, state: str, header: Mapping[str, Any], ok: bool, out: Outcomes
) -> None:
    """An invoice the ledger holds in this very version: only a routing quarantine may heal by itself."""
    if state == "quarantined" and ok:
        with session_scope(ctx.engine) as s:
            rules = CodeRules.load(s, ctx.tenant)
            entry = ledger.get_entry(s, ctx.tenant.name, FLOW, invoice_id)
            division = route(ctx, rules, header.get("businessUnit"))
            if entry is not None and (entry.reason or "").startswith(ROUTE_PREFIX) and division is not None:
                entry.division = division
                ledger.transition(s, entry, "pending", reason="business unit now routed", run_id=ctx.run_id)
                out.add("extracted", invoice_id)
                return
    out.add("unchanged")


def route(ctx: FlowContext, rules: CodeRules, business_unit: Any) -> int | None:
    division = rules.division_for_bu(str(business_unit).strip() if business_unit else None)
    if division is None or division not in divisions_of(ctx):
        return None
    return division


def route_reason(ctx: FlowContext, business_unit: Any) -> str:
    known = short(f"{bu} -> {div}" for bu, div in ctx.tenant.jaggaer.business_units.items())
    return (
        f"{ROUTE_PREFIX}JAGGAER business unit {business_unit!r} is not routed to an Exact division: add it to "
        f"jaggaer.business_units in the tenant file (known: {known or 'none'}), or run `mlc mappings set code "
        f"--tenant {ctx.tenant.name} --kind business_unit --source '{business_unit}' --target <division>`; "
        "the invoice is picked up again on the next run"
    )


def extract(ctx: FlowContext) -> Outcomes:
    """The extract stage (see the module docstring). Dry runs go to :func:`dry_run.preview` instead."""
    if ctx.dry_run:
        from ml_connector.flows.invoice_poll.dry_run import preview

        return preview(ctx)
    if ctx.window is None and not ctx.params.ids and ctx.run_type == "backfill":
        raise ConfigError("a backfill run has no data interval: the DAG needs a CronDataIntervalTimetable")
    out = Outcomes()
    jag = ctx.jaggaer_hook()
    with session_scope(ctx.engine) as s:
        rules = CodeRules.load(s, ctx.tenant)
    window = None if ctx.params.ids else run_window(ctx)
    for detail, ok in iter_details(ctx, jag, out):
        _stage_one(ctx, rules, detail, ok, out)
    if window is not None:
        _advance_cursor(ctx, window[1])
    ctx.logger.info("extract: %s", dict(out.counts))
    return out


def _stage_one(ctx: FlowContext, rules: CodeRules, detail: dict[str, Any], ok: bool, out: Outcomes) -> None:
    header = detail.get("header") or {}
    invoice_id = str(header.get("invoiceId"))
    number = str(header.get("invoiceNumber") or invoice_id)
    business_unit = header.get("businessUnit")
    division = route(ctx, rules, business_unit)
    payload = jsonable(detail)
    with session_scope(ctx.engine) as s:
        result = ledger.stage(
            s,
            tenant=ctx.tenant.name,
            flow=FLOW,
            source_id=invoice_id,
            payload=payload,
            source_ref=number,
            division=division,
            run_id=ctx.run_id,
            repost_changed=False,
        )
        entry = ledger.get_entry(s, ctx.tenant.name, FLOW, invoice_id)
        assert entry is not None
        if not ok:
            # no longer approved in JAGGAER while still waiting here: stop it before it is posted
            if entry.state in OPEN_STATES:
                ledger.transition(
                    s,
                    entry,
                    "cancelled",
                    reason=(
                        f"no longer approved in JAGGAER (workflow {header.get('workflowStatus')}, payment "
                        f"{header.get('paymentStatus')}); picked up again when it is"
                    ),
                    run_id=ctx.run_id,
                )
                out.add("cancelled", number)
            else:
                out.add("not_approved")
            return
        if entry.state == "cancelled":
            ledger.transition(s, entry, "pending", reason="approved again in JAGGAER", run_id=ctx.run_id)
        if result == "unchanged":
            out.add("unchanged")
            return
        if entry.state in ("posted", "posting") and result == "changed":
            out.add(
                "changed_after_post",
                number,
                detail=(
                    f"invoice {number} (id {invoice_id}) changed in JAGGAER after it was posted to Exact"
                    + (f" (entry {entry.target_ref})" if entry.target_ref else "")
                    + "; it is not posted again: check whether the Exact entry needs a manual correction"
                ),
            )
            return
        if division is None:
            ledger.transition(s, entry, "quarantined", reason=route_reason(ctx, business_unit), run_id=ctx.run_id)
            out.add("quarantined", number, detail=f"invoice {number}: {route_reason(ctx, business_unit)}")
            return
        out.add("extracted", number)
