"""Stage 1 — extract: approved JAGGAER invoices of the run window into the ledger.

- Reads every invoice header whose ``lastUpdate`` lies in the run window extended backwards by
  ``overlap_hours`` (all pages), de-duplicated by ``invoiceId``; or exactly the invoices the ``ids`` param names.
- Scheduled runs (and manual runs without dates) also read back to where the last window read successfully ended
  (the cursor ``invoice_poll/window_end``), so days the scheduler was down, the DAG was paused or an extract failed
  are read too (``catchup=False`` only creates the latest run). At most :data:`MAX_CATCH_UP` is read back; an
  older gap is named in the report (red run, alert) with the manual run that reads it, and the cursor stays
  where it is until that run (or a backfill from the cursor on) has read it. The cursor moves forward only after
  an extract that staged everything and read every detail; date-range and backfill runs move it forward only when
  they read on from it (never backwards, never past a gap).
- Lists headers without an ``invoiceId`` are counted (``missing_invoice_id``) and named in the report.
- Keeps only the tenant's post states (default: workflow ``Completed``, payment ``Payable`` or ``Paid``).
- Fetches an invoice's detail only when the ledger does not already hold this version (same ``lastUpdate``):
  re-reading the overlap costs list pages, not detail calls.
- A detail JAGGAER does not serve readably (HTML maintenance page with HTTP 200, truncated JSON, an error that
  outlived the retries, a refusal) quarantines that invoice alone (:func:`quarantine_unreadable`, reason prefix
  ``unreadable:``); the run goes on and the cursor stays, so the next run reads it again. Only an unreadable list
  page stops the extract.
- Routes the invoice's business unit to an Exact division; an unknown one is quarantined with what to configure
  (and picked up again by itself once the tenant file or a code map routes it).
- Stages each version with ``repost_changed=False``: an invoice edited after it was posted is never posted again
  (the change is audited and reported).
- An invoice still waiting in the ledger that is no longer approved in JAGGAER is cancelled (revived when it is
  approved again). One already **posted** (or being posted) that JAGGAER no longer shows as approved is
  ``withdrawn_after_post``: audited once per JAGGAER version, reported and alerted, so a person can reverse the
  Exact entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ml_connector.errors import ConfigError, RejectedError, TransientError
from ml_connector.flows.invoice_poll.common import FLOW, ROUTE_PREFIX, divisions_of, short
from ml_connector.flows.invoice_poll.invoice import UNREADABLE_KEY, jsonable
from ml_connector.flows.runtime import FlowContext, Outcomes, http_policy
from ml_connector.http import backoff_delay
from ml_connector.jaggaer import j1p
from ml_connector.mappings.codes import CodeRules
from ml_connector.store import ledger
from ml_connector.store.cursors import get_cursor, set_cursor
from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog, LedgerEntry, StagedRecord

CURSOR_SCOPE = "window_end"
#: Ledger states in which an invoice has not reached Exact yet (and may be cancelled when JAGGAER withdraws it).
OPEN_STATES = ("pending", "held", "quarantined", "failed", "skipped")
#: Ledger states of an invoice that reached Exact (or was sent there): withdrawn in JAGGAER ⇒ a person must look.
DONE_STATES = ("posted", "posting")
#: How far a scheduled run reads back to the last window read (cursor) at most; an older gap is reported, not
#: read (a manual date-range run reads it). Override: setting ``invoice_poll_max_catch_up_days``
#: (``MLC_INVOICE_POLL_MAX_CATCH_UP_DAYS``).
MAX_CATCH_UP = timedelta(days=14)
#: Outcomes the report turns into problems (red run, alert).
MISSING_ID = "missing_invoice_id"
WINDOW_NOT_READ = "window_not_read"
WITHDRAWN = "withdrawn_after_post"
#: An invoice whose detail JAGGAER did not serve readably (after retries): quarantined on its own, cursor held.
UNREADABLE = "unreadable"
#: Reason prefix of such a quarantine: extract lifts it by itself once a run reads the detail.
UNREADABLE_PREFIX = "unreadable: "
#: List-header fields kept in the placeholder staged for an unreadable invoice (no ``lastUpdate``: the next run
#: must not take the placeholder for the listed version and skip the detail).
PLACEHOLDER_FIELDS = ("invoiceId", "invoiceNumber", "supplierInvoiceNumber", "invoiceType", "businessUnit", "supplier")


def postable(header: Mapping[str, Any], ctx: FlowContext) -> bool:
    states = ctx.tenant.invoice_poll.post_states
    workflow = str(header.get("workflowStatus") or "").strip().casefold()
    payment = str(header.get("paymentStatus") or "").strip().casefold()
    return workflow in {w.casefold() for w in states.workflow} and payment in {p.casefold() for p in states.payment}


def _now() -> datetime:
    return datetime.now(UTC)


def max_catch_up() -> timedelta:
    from ml_connector.settings import get_setting

    raw = get_setting("invoice_poll_max_catch_up_days")
    if not raw:
        return MAX_CATCH_UP
    try:
        days = float(raw)
    except ValueError:
        raise ConfigError(f"setting invoice_poll_max_catch_up_days: {raw!r} is not a number of days") from None
    return timedelta(days=max(days, 0.0))


def run_window(ctx: FlowContext, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The run's window; a manual run without dates or data interval reads since the last window read (cursor),
    else the last day."""
    if ctx.window is not None:
        return ctx.window
    now = now or _now()
    with session_scope(ctx.engine) as s:
        raw = get_cursor(s, ctx.tenant.name, FLOW, CURSOR_SCOPE)
    start = datetime.fromisoformat(raw) if raw else now - timedelta(days=1)
    return min(start, now), now


@dataclass(frozen=True)
class ReadRange:
    """What a run lists: ``[read_from, end)``; ``start`` is the run's own window start."""

    start: datetime
    end: datetime
    read_from: datetime
    cursor: datetime | None  # where the last window read successfully ended (before this run)
    incremental: bool  # scheduled / manual without dates: reads back to the cursor and starts or advances it
    caught_up: bool = False  # read_from was moved back to the cursor (missed runs or a failed extract)
    unread: tuple[datetime, datetime] | None = None  # a gap older than the catch-up limit: not read
    started: datetime | None = None  # when the listing began (a window ending later was not read past this)

    def cursor_after(self, kind: str) -> datetime | None:
        """The cursor value after this range was read completely (``None``: leave the cursor alone)."""
        end = self.end
        if kind not in ("scheduled", "backfill") and self.started is not None:
            end = min(end, self.started)  # a date range ending today was read only up to now
        if self.cursor is not None and end <= self.cursor:
            return None  # never backwards
        if self.incremental:
            return None if self.unread is not None else end  # never past a gap that was not read
        # a date range / backfill: only when it reads on from the cursor (else it would hide a gap before it)
        if self.cursor is not None and self.read_from <= self.cursor:
            return end
        return None


def read_range(ctx: FlowContext, now: datetime | None = None) -> ReadRange:
    """The range a run lists (module docstring: window + overlap, back to the cursor for scheduled runs)."""
    now = now or _now()
    start, end = run_window(ctx, now)
    overlap = timedelta(hours=float(ctx.tenant.invoice_poll.overlap_hours))
    read_from = start - overlap
    with session_scope(ctx.engine) as s:
        raw = get_cursor(s, ctx.tenant.name, FLOW, CURSOR_SCOPE)
    cursor = datetime.fromisoformat(raw) if raw else None
    if cursor is not None and cursor.tzinfo is None:
        cursor = cursor.replace(tzinfo=UTC)
    kind = ctx.run_type
    incremental = not ctx.params.has_dates and kind != "backfill"
    if not incremental or cursor is None or cursor >= read_from:
        return ReadRange(start, end, read_from, cursor, incremental, started=now)
    limit = read_from - max_catch_up()
    if cursor >= limit:
        return ReadRange(start, end, cursor, cursor, incremental, caught_up=True, started=now)
    return ReadRange(start, end, limit, cursor, incremental, caught_up=True, unread=(cursor, limit), started=now)


def _cursor_note(ctx: FlowContext, rng: ReadRange, out: Outcomes) -> None:
    """Say (log, report) when a run read back to the cursor, and name a gap it could not read."""
    if rng.unread is not None:
        gap_from, gap_to = rng.unread
        dag = f"jaggaer_invoice_poll__{ctx.tenant.name}"
        # from the cursor up to this run's window end: such a run reads on from the cursor, so it moves it forward
        # (a range ending at the gap's end would leave a new gap, as the limit moves with every run)
        date_to = (rng.end - timedelta(microseconds=1)).date()
        conf = f'{{"date_from": "{gap_from.date().isoformat()}", "date_to": "{date_to.isoformat()}"}}'
        limit_days = max_catch_up().total_seconds() / 86400
        text = (
            f"JAGGAER invoices updated between {gap_from.isoformat()} and {gap_to.isoformat()} were NOT read: the "
            f"last window read successfully ended at {gap_from.isoformat()}, more than {limit_days:g} day(s) "
            f"before this run's window (scheduler down, DAG paused or extract failing). Read them (and move the cursor "
            "on) with a manual run: "
            f"`airflow dags trigger {dag} --conf '{conf}'` (or trigger it in the UI with those dates); until then "
            "every run reports this gap"
        )
        ctx.logger.error("%s", text)
        out.add(WINDOW_NOT_READ, f"{gap_from.isoformat()}/{gap_to.isoformat()}", detail=text)
    elif rng.caught_up:
        text = (
            f"read back to {rng.read_from.isoformat()} (where the last window read successfully ended), not only "
            f"from {(rng.start).isoformat()}: runs were missed or an extract failed"
        )
        ctx.logger.warning("JAGGAER: %s", text)
        out.add("caught_up", detail=text)


def _advance_cursor(ctx: FlowContext, rng: ReadRange) -> None:
    new = rng.cursor_after(ctx.run_type)
    if new is None:
        return
    with session_scope(ctx.engine) as s:
        raw = get_cursor(s, ctx.tenant.name, FLOW, CURSOR_SCOPE)
        if raw is None or datetime.fromisoformat(raw) < new:
            set_cursor(s, ctx.tenant.name, FLOW, CURSOR_SCOPE, new.astimezone(UTC).isoformat())


#: Invoices handled per step: their ledger states read in one query, their details read, then staged in one
#: transaction (issue 12: streamed in chunks; nothing of the whole window is held but the ids seen).
CHUNK = 500


def _known(ctx: FlowContext, ids: list[str]) -> dict[str, tuple[str, datetime | None]]:
    """``source_id -> (ledger state, staged lastUpdate)`` of the invoices the ledger already holds (only the staged
    version's ``lastUpdate`` is read from its payload, not the payload)."""
    out: dict[str, tuple[str, datetime | None]] = {}
    if not ids:
        return out
    last_update = StagedRecord.payload[("header", "lastUpdate")].as_string()
    with session_scope(ctx.engine) as s:
        for chunk_start in range(0, len(ids), CHUNK):
            chunk = ids[chunk_start : chunk_start + CHUNK]
            rows = s.execute(
                select(LedgerEntry.source_id, LedgerEntry.state, last_update)
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
            for source_id, state, raw in rows:
                if isinstance(raw, str) and raw.strip().lstrip("-").replace(".", "", 1).isdigit():
                    raw = float(raw)  # epoch milliseconds, stored as a JSON number (the cast made it text)
                try:
                    updated = j1p.parse_datetime(raw)
                except ValueError:
                    updated = None
                out[source_id] = (state, updated)
    return out


def _iter_window(ctx: FlowContext, jag: Any, out: Outcomes, rng: ReadRange) -> Iterator[dict[str, Any]]:
    """Every header listed in the run's read range, as the pages arrive, de-duplicated by ``invoiceId`` (the first
    listing wins; only the ids are kept); headers without one are counted (``missing_invoice_id``) and named, never
    dropped silently."""
    seen: set[str] = set()
    for header in jag.iter_invoices(rng.read_from, rng.end):
        invoice_id = str(header.get("invoiceId") or "").strip()
        if not invoice_id:
            number = str(header.get("invoiceNumber") or "").strip() or None
            out.add(
                MISSING_ID,
                number or "(no number)",
                detail=(
                    f"JAGGAER listed an invoice header without an invoiceId (invoice number {number or 'none'}, "
                    f"supplier invoice number {header.get('supplierInvoiceNumber') or 'none'}, lastUpdate "
                    f"{header.get('lastUpdate') or 'none'}): it cannot be read or posted; have it checked in JAGGAER"
                ),
            )
            continue
        if invoice_id not in seen:
            seen.add(invoice_id)
            yield header
    ctx.logger.info(
        "JAGGAER: %d invoice(s) with lastUpdate in [%s, %s) (window %s .. %s, overlap %s h%s)",
        len(seen),
        rng.read_from.isoformat(),
        rng.end.isoformat(),
        rng.start.isoformat(),
        rng.end.isoformat(),
        ctx.tenant.invoice_poll.overlap_hours,
        ", read back to the cursor" if rng.caught_up else "",
    )
    if out[MISSING_ID]:
        ctx.logger.error("JAGGAER: %d listed invoice header(s) had no invoiceId", out[MISSING_ID])


def _list_window(
    ctx: FlowContext, jag: Any, out: Outcomes, rng: ReadRange | None = None
) -> tuple[list[dict[str, Any]], ReadRange]:
    """:func:`_iter_window` as a list (the dry run's preview)."""
    rng = rng or read_range(ctx)
    return list(_iter_window(ctx, jag, out, rng)), rng


def _chunks(items: Iterator[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def iter_details(
    ctx: FlowContext, jag: Any, out: Outcomes, rng: ReadRange | None = None
) -> Iterator[tuple[dict[str, Any], bool]]:
    """``(detail, postable)`` of every invoice this run must look at (details fetched only when needed), listed
    page by page and looked up in the ledger :data:`CHUNK` invoices at a time.

    An invoice already posted (or being posted) that JAGGAER no longer shows as approved is audited and reported
    here (:func:`withdrawn_after_post`), not yielded."""
    if ctx.params.ids:
        known_ids = _known(ctx, list(ctx.params.ids))
        for invoice_id in ctx.params.ids:
            got = read_detail(jag, invoice_id)
            if isinstance(got, str):
                quarantine_unreadable(ctx, {"invoiceId": invoice_id}, got, out)
                continue
            detail = got
            header = detail.get("header") or {}
            ok = postable(header, ctx)
            state = known_ids.get(str(invoice_id), (None, None))[0]
            if not ok and state in DONE_STATES:
                withdrawn_after_post(ctx, str(invoice_id), header, out)
                continue
            if not ok and state not in OPEN_STATES:
                out.add("not_approved", invoice_id)
                continue
            yield detail, ok
        return
    rng = rng or read_range(ctx)
    for headers in _chunks(_iter_window(ctx, jag, out, rng)):
        known = {} if ctx.dry_run else _known(ctx, [str(h["invoiceId"]).strip() for h in headers])
        for header in headers:
            invoice_id = str(header["invoiceId"]).strip()
            state, staged_update = known.get(invoice_id, (None, None))
            ok = postable(header, ctx)
            if not ok and state in DONE_STATES:
                withdrawn_after_post(ctx, invoice_id, header, out)
                continue
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
            got = read_detail(jag, invoice_id)
            if isinstance(got, str):  # this invoice only: the run goes on, the cursor stays (read again next run)
                quarantine_unreadable(ctx, header, got, out)
                continue
            yield got, postable(got.get("header") or {}, ctx)


def read_detail(jag: Any, invoice_id: str, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | str:
    """The invoice's detail, or what was wrong with JAGGAER's answer (a sentence) after the usual retries.

    The hook already retried 5xx, 429 and network errors; an HTTP 200 whose body is not JSON (a maintenance page,
    a truncated answer) is retried here with the same backoff, up to ``http_max_attempts`` reads in all. A
    ``returnCode`` refusal (e.g. the invoice does not exist) is not retried: the same request is refused again.
    Still rate limited (429) after the hook's waits is raised: it concerns every invoice, not this one.
    """
    policy = http_policy()
    attempts = max(1, policy.max_attempts)
    for attempt in range(1, attempts + 1):
        try:
            return jag.get_invoice(invoice_id)
        except RejectedError as exc:  # a returnCode refusal, or an answer without a header: asked again next run
            return str(exc)
        except TransientError as exc:
            if exc.status == 429:
                raise  # still rate limited after the waits: that is JAGGAER and this tenant, not this invoice
            served = exc.status is not None and exc.status < 400  # a 2xx/3xx body that is not JSON
            if not served or attempt == attempts:
                tries = f" ({attempt} reads)" if served else " (after the HTTP retries)"
                return f"{exc}{tries}"
            sleep(backoff_delay(attempt, policy))
    raise AssertionError("unreachable")  # pragma: no cover


def quarantine_unreadable(ctx: FlowContext, header: Mapping[str, Any], why: str, out: Outcomes) -> None:
    """Record against this invoice that its detail could not be read; every other invoice of the run goes on.

    A new invoice is staged as a placeholder (its list header, without ``lastUpdate``) so the ledger holds it;
    one the ledger already holds keeps its last readable version. Either way it is ``quarantined`` with
    :data:`UNREADABLE_PREFIX` (nothing is posted from it) and the window cursor stays, so the next run reads the
    detail again and stages it (``stage`` makes it ``pending`` as a changed version). An invoice already posted
    (or being posted) is left as it is and only reported.
    """
    invoice_id = str(header.get("invoiceId")).strip()
    number = str(header.get("invoiceNumber") or "").strip() or invoice_id
    reason = (
        f"{UNREADABLE_PREFIX}JAGGAER's detail of invoice {number} (id {invoice_id}) could not be read: {why}; it is "
        "read again on the next run and goes on by itself once JAGGAER serves it (if it stays unreadable, check the "
        "invoice in JAGGAER)"
    )
    ctx.logger.error("invoice %s: %s", number, reason)
    out.add(UNREADABLE, number)
    with session_scope(ctx.engine) as s:
        entry = ledger.get_entry(s, ctx.tenant.name, FLOW, invoice_id)
        if entry is None:
            rules = CodeRules.load(s, ctx.tenant)
            placeholder = {
                "header": {k: header[k] for k in PLACEHOLDER_FIELDS if header.get(k) is not None},
                UNREADABLE_KEY: True,
            }
            ledger.stage(
                s,
                tenant=ctx.tenant.name,
                flow=FLOW,
                source_id=invoice_id,
                payload=jsonable(placeholder),
                source_ref=number,
                division=route(ctx, rules, header.get("businessUnit")),
                run_id=ctx.run_id,
                repost_changed=False,
            )
            entry = ledger.get_entry(s, ctx.tenant.name, FLOW, invoice_id)
            assert entry is not None
        if entry.state in DONE_STATES:
            out.add(
                "changed_unreadable",
                number,
                detail=f"invoice {number} (id {invoice_id}), already {entry.state} in Exact: {reason}",
            )
            return
        if not (entry.state == "quarantined" and entry.reason == reason):
            ledger.transition(s, entry, "quarantined", reason=reason, run_id=ctx.run_id)
    out.add("quarantined", number, detail=f"invoice {number}: {reason}")


def withdrawn_after_post(ctx: FlowContext, invoice_id: str, header: Mapping[str, Any], out: Outcomes) -> None:
    """An invoice Exact has (or may have) that JAGGAER no longer shows as approved: one ``withdrawn_after_post``
    audit row per JAGGAER version, counted with a detail (the report alerts); nothing is changed in Exact."""
    if ctx.dry_run:
        out.add("not_approved")
        return
    last_update = str(header.get("lastUpdate") or "unknown")
    workflow, payment = header.get("workflowStatus"), header.get("paymentStatus")
    marker = f"[lastUpdate {last_update}]"
    with session_scope(ctx.engine) as s:
        entry = ledger.get_entry(s, ctx.tenant.name, FLOW, invoice_id)
        if entry is None or entry.state not in DONE_STATES:
            out.add("not_approved")
            return
        seen = s.scalar(
            select(AuditLog.id).where(
                AuditLog.tenant == ctx.tenant.name,
                AuditLog.flow == FLOW,
                AuditLog.source_id == invoice_id,
                AuditLog.action == WITHDRAWN,
                AuditLog.message.contains(marker, autoescape=True),
            )
        )
        if seen is not None:  # this version was reported by an earlier run
            out.add("not_approved")
            return
        number = entry.source_ref or str(header.get("invoiceNumber") or invoice_id)
        where = f"Exact division {entry.division}" if entry.division is not None else "Exact"
        if entry.state == "posted":
            what = f"was posted to {where} as entry {entry.target_ref or entry.target_id or '(number unknown)'}"
            todo = "reverse it in Exact if needed"
        else:
            what = f"was being posted to {where} (outcome not confirmed yet)"
            todo = "check Exact for it once the run has finished and reverse the entry if needed"
        text = (
            f"invoice {number} (id {invoice_id}) {what} and has since been withdrawn in JAGGAER (workflow "
            f"{workflow}, payment {payment}): {todo}"
        )
        s.add(
            AuditLog(
                tenant=ctx.tenant.name,
                flow=FLOW,
                action=WITHDRAWN,
                division=entry.division,
                source_id=invoice_id,
                source_ref=entry.source_ref,
                target_id=entry.target_id,
                target_ref=entry.target_ref,
                outcome=entry.state,
                message=f"{text} {marker}",
                run_id=ctx.run_id,
                attempt=entry.attempts or 1,
            )
        )
    ctx.logger.error("%s", text)
    out.add(WITHDRAWN, number, detail=text)


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


def route_reason(ctx: FlowContext, business_unit: Any, rules: CodeRules | None = None) -> str:
    """Why an invoice's business unit routes to no division, with the fix: a stored code map that points outside
    the tenant's divisions is named as the cause when there is one."""
    bad_map = (
        rules.bad_route(str(business_unit).strip() if business_unit else None, list(ctx.tenant.exact.divisions))
        if rules
        else None
    )
    if bad_map:
        return f"{ROUTE_PREFIX}JAGGAER business unit {business_unit!r} is not routed to an Exact division: {bad_map}"
    known = short(f"{bu} -> {div}" for bu, div in ctx.tenant.jaggaer.business_units.items())
    return (
        f"{ROUTE_PREFIX}JAGGAER business unit {business_unit!r} is not routed to an Exact division: add it to "
        f"jaggaer.business_units in the tenant file (known: {known or 'none'}), or run `mlc mappings set code "
        f"--tenant {ctx.tenant.name} --kind business_unit --source '{business_unit}' --target <division>`; "
        "the invoice is picked up again on the next run"
    )


def extract(ctx: FlowContext) -> Outcomes:
    """The extract stage (see the module docstring). The DAG calls it through the package's :func:`extract`, which
    sends a dry run to :func:`dry_run.preview` instead."""
    if ctx.dry_run:
        raise ValueError("a dry run's extract is dry_run.preview: call ml_connector.flows.invoice_poll.extract")
    if ctx.window is None and not ctx.params.ids and ctx.run_type == "backfill":
        raise ConfigError("a backfill run has no data interval: the DAG needs a CronDataIntervalTimetable")
    out = Outcomes()
    jag = ctx.jaggaer_hook()
    with session_scope(ctx.engine) as s:
        rules = CodeRules.load(s, ctx.tenant)
    rng = None if ctx.params.ids else read_range(ctx)
    if rng is not None:
        _cursor_note(ctx, rng, out)
    for chunk in _chunks(iter_details(ctx, jag, out, rng)):
        _stage_chunk(ctx, rules, chunk, out)
    if rng is not None:
        if out["failed"] or out[UNREADABLE]:
            # the invoices JAGGAER would not give are read again by the next run (from the cursor)
            ctx.logger.warning(
                "extract: %d invoice(s) could not be read: the window cursor stays", out["failed"] + out[UNREADABLE]
            )
        else:
            _advance_cursor(ctx, rng)
    ctx.logger.info("extract: %s", dict(out.counts))
    return out


def _stage_chunk(ctx: FlowContext, rules: CodeRules, chunk: list[tuple[dict[str, Any], bool]], out: Outcomes) -> None:
    """Stage up to :data:`CHUNK` invoice versions in one transaction (the details were read before it began, so no
    write lock is held during HTTP calls)."""
    withdrawn: list[tuple[str, Mapping[str, Any]]] = []
    with session_scope(ctx.engine) as s:
        for detail, ok in chunk:
            if _stage_in_session(ctx, s, rules, detail, ok, out):
                header = detail.get("header") or {}
                withdrawn.append((str(header.get("invoiceId")), header))
    # posted (or being posted) and no longer approved: the staged versions are committed; each audit row goes in
    # a transaction of its own
    for invoice_id, header in withdrawn:
        withdrawn_after_post(ctx, invoice_id, header, out)


def _stage_in_session(
    ctx: FlowContext, s: Session, rules: CodeRules, detail: dict[str, Any], ok: bool, out: Outcomes
) -> bool:
    """Stage one invoice version in ``s``; ``True`` when it reached Exact and JAGGAER no longer shows it as
    approved."""
    header = detail.get("header") or {}
    invoice_id = str(header.get("invoiceId"))
    number = str(header.get("invoiceNumber") or invoice_id)
    business_unit = header.get("businessUnit")
    division = route(ctx, rules, business_unit)
    payload = jsonable(detail)
    result, entry = ledger.stage_entry(
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
    if not ok:
        if entry.state in DONE_STATES:
            return True
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
        return False
    if entry.state == "cancelled":
        ledger.transition(s, entry, "pending", reason="approved again in JAGGAER", run_id=ctx.run_id)
    if result == "unchanged":
        out.add("unchanged")
        return False
    if entry.state in DONE_STATES and result == "changed":
        out.add(
            "changed_after_post",
            number,
            detail=(
                f"invoice {number} (id {invoice_id}) changed in JAGGAER after it was posted to Exact"
                + (f" (entry {entry.target_ref})" if entry.target_ref else "")
                + "; it is not posted again: check whether the Exact entry needs a manual correction"
            ),
        )
        return False
    if division is None:
        reason = route_reason(ctx, business_unit, rules)
        ledger.transition(s, entry, "quarantined", reason=reason, run_id=ctx.run_id)
        out.add("quarantined", number, detail=f"invoice {number}: {reason}")
        return False
    out.add("extracted", number)
    return False
