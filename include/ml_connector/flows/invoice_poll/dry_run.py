"""Dry run: show the purchase entries a run would post — post nothing, change nothing.

Split like a real run, so Exact is only ever called under the division's pool (``mlc_exact__<tenant>__<division>``,
shared with the PO push):

- :func:`preview` runs in the ``extract`` task and reads **JAGGAER only**: it lists the invoices like extract does,
  counts the ones not approved and the ones whose business unit routes to no division (``would_quarantine``), and
  names how many each division will preview;
- :func:`preview_division` runs in each division's ``validate`` task (pooled): it reads the invoices routed to its
  division (the same window or ``ids``), resolves vendors read-only (the vendor map, else a match against Exact's
  suppliers; nothing is stored or created), reads the division's master data and builds every entry exactly as
  the post stage would. Each would-be entry is logged as JSON (codes next to GUIDs).

The counts say what would happen (``would_post``, ``would_quarantine``, ``would_hold``, ``would_skip``,
``would_create_supplier``, ``already_posted``). No ledger row, vendor-map row, cursor or audit row is written and
Exact gets only GETs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from ml_connector.errors import RejectedError
from ml_connector.flows.invoice_poll.build import EntryInvalid, plan_entry
from ml_connector.flows.invoice_poll.common import FLOW
from ml_connector.flows.invoice_poll.extract import _list_window, postable, route, route_reason
from ml_connector.flows.invoice_poll.invoice import InvoiceDataError, parse_invoice
from ml_connector.flows.invoice_poll.master import MasterData
from ml_connector.flows.invoice_poll.vendors import VendorResolver
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.mappings.codes import CodeRules
from ml_connector.store import ledger
from ml_connector.store.db import session_scope

DONE_STATES = ("posted", "posting")


def _invoices(
    ctx: FlowContext, jag: Any, out: Outcomes, *, count_failures: bool
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """``(header, detail or None)`` of every invoice the run would look at: the ``ids`` (details) or the window's
    list (headers; details are fetched by the division that previews them)."""
    if ctx.params.ids:
        for invoice_id in ctx.params.ids:
            try:
                detail = jag.get_invoice(invoice_id)
            except RejectedError as exc:
                if count_failures:
                    out.add("failed", invoice_id, detail=f"JAGGAER invoice {invoice_id}: {exc}")
                continue
            yield detail.get("header") or {}, detail
        return
    headers, _rng = _list_window(ctx, jag, out if count_failures else Outcomes())
    for header in headers:
        yield header, None


def preview(ctx: FlowContext) -> Outcomes:
    """The extract task's part of a dry run: JAGGAER only (no Exact call, no pool needed)."""
    out = Outcomes()
    jag = ctx.jaggaer_hook()
    with session_scope(ctx.engine) as s:
        rules = CodeRules.load(s, ctx.tenant)
    per_division: Counter[int] = Counter()
    for header, _detail in _invoices(ctx, jag, out, count_failures=True):
        number = str(header.get("invoiceNumber") or header.get("invoiceId"))
        if not postable(header, ctx):
            out.add("not_approved")
            continue
        division = route(ctx, rules, header.get("businessUnit"))
        if division is None:
            out.add(
                "would_quarantine",
                number,
                detail=f"invoice {number}: {route_reason(ctx, header.get('businessUnit'), rules)}",
            )
            continue
        per_division[division] += 1
    for division, n in sorted(per_division.items()):
        ctx.logger.info("DRY RUN: %d invoice(s) for Exact division %s: previewed by its validate task", n, division)
    ctx.logger.info("DRY RUN (extract): nothing was stored (%s)", dict(out.counts))
    return out


def preview_division(ctx: FlowContext) -> Outcomes:
    """The dry run of ``ctx.division`` (its ``validate`` task, in the division's pool): every entry it would post."""
    division = ctx.division
    assert division is not None, "preview_division runs per division"
    out = Outcomes()
    jag = ctx.jaggaer_hook()
    with session_scope(ctx.engine) as s:
        rules = CodeRules.load(s, ctx.tenant)
    resolver: VendorResolver | None = None
    master: MasterData | None = None
    for header, detail in _invoices(ctx, jag, out, count_failures=False):
        if not postable(header, ctx) or route(ctx, rules, header.get("businessUnit")) != division:
            continue  # counted by the extract task / another division
        invoice_id = str(header.get("invoiceId"))
        number = str(header.get("invoiceNumber") or invoice_id)
        with session_scope(ctx.engine) as s:
            entry = ledger.get_entry(s, ctx.tenant.name, FLOW, invoice_id)
            done = entry is not None and entry.state in DONE_STATES
        if done:
            out.add("already_posted", number)
            continue
        if detail is None:
            try:
                detail = jag.get_invoice(invoice_id)
            except RejectedError as exc:
                out.add("failed", invoice_id, detail=f"JAGGAER invoice {invoice_id}: {exc}")
                continue
        if not postable(detail.get("header") or {}, ctx):
            out.add("not_approved")
            continue
        try:
            invoice = parse_invoice(detail)
        except (ValueError, ArithmeticError) as exc:  # InvoiceDataError is a ValueError
            what = str(exc) if isinstance(exc, InvoiceDataError) else f"cannot be read ({type(exc).__name__}: {exc})"
            out.add("would_quarantine", number, detail=f"invoice {number}: {what}")
            continue
        resolver = resolver or VendorResolver(ctx, division, dry_run=True)
        resolution = resolver.resolve(invoice.vendor)
        if resolution.action == "held":
            out.add("would_hold", number, detail=f"invoice {number}: {resolution.reason}")
            continue
        if resolution.action == "skipped":
            out.add("would_skip", number, detail=f"invoice {number}: {resolution.reason}")
            continue
        if resolution.created:
            out.add("would_create_supplier", invoice.vendor.name)
        if master is None:
            master = MasterData.load(ctx.exact_hook(), division)
        try:
            planned = plan_entry(
                invoice, division=division, supplier_id=str(resolution.account_id), rules=rules, master=master
            )
        except EntryInvalid as exc:
            out.add("would_quarantine", number, detail=f"invoice {number}: {exc}")
            continue
        except (ValueError, ArithmeticError) as exc:
            out.add(
                "would_quarantine", number, detail=f"invoice {number}: cannot be built ({type(exc).__name__}: {exc})"
            )
            continue
        shown = planned.preview()
        ctx.logger.info(
            "DRY RUN: would post invoice %s to division %s:\n%s", number, division, json.dumps(shown, indent=2)
        )
        out.add("would_post", number, detail=f"invoice {number} -> division {division}: {json.dumps(shown['body'])}")
    ctx.logger.info("DRY RUN (division %s): nothing was posted and nothing was stored (%s)", division, dict(out.counts))
    return out
