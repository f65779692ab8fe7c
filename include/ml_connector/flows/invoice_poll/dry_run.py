"""Dry run: show the purchase entries a run would post — post nothing, change nothing.

Runs inside the extract task: reads the invoices like extract does, resolves vendors read-only (the vendor map,
else a match against Exact's suppliers; nothing is stored or created), reads each division's master data and
builds every entry exactly as the post stage would. Each would-be entry is logged as JSON (codes next to GUIDs);
the counts say what would happen (``would_post``, ``would_quarantine``, ``would_hold``, ``would_skip``,
``would_create_supplier``). No ledger row, vendor-map row, cursor or audit row is written and Exact gets only GETs.
"""

from __future__ import annotations

import json
from typing import Any

from ml_connector.flows.invoice_poll.build import EntryInvalid, plan_entry
from ml_connector.flows.invoice_poll.common import FLOW
from ml_connector.flows.invoice_poll.extract import iter_details, route, route_reason
from ml_connector.flows.invoice_poll.invoice import InvoiceDataError, parse_invoice
from ml_connector.flows.invoice_poll.master import MasterData
from ml_connector.flows.invoice_poll.vendors import VendorResolver
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.mappings.codes import CodeRules
from ml_connector.store import ledger
from ml_connector.store.db import session_scope

DONE_STATES = ("posted", "posting")


def preview(ctx: FlowContext) -> Outcomes:
    out = Outcomes()
    jag = ctx.jaggaer_hook()
    with session_scope(ctx.engine) as s:
        rules = CodeRules.load(s, ctx.tenant)
    resolvers: dict[int, VendorResolver] = {}
    masters: dict[int, MasterData] = {}
    entries: list[dict[str, Any]] = []
    for detail, ok in iter_details(ctx, jag, out):
        header = detail.get("header") or {}
        invoice_id = str(header.get("invoiceId"))
        number = str(header.get("invoiceNumber") or invoice_id)
        if not ok:
            out.add("not_approved")
            continue
        with session_scope(ctx.engine) as s:
            entry = ledger.get_entry(s, ctx.tenant.name, FLOW, invoice_id)
            done = entry is not None and entry.state in DONE_STATES
        if done:
            out.add("already_posted", number)
            continue
        division = route(ctx, rules, header.get("businessUnit"))
        if division is None:
            out.add(
                "would_quarantine", number, detail=f"invoice {number}: {route_reason(ctx, header.get('businessUnit'))}"
            )
            continue
        try:
            invoice = parse_invoice(detail)
        except InvoiceDataError as exc:
            out.add("would_quarantine", number, detail=f"invoice {number}: {exc}")
            continue
        resolver = resolvers.setdefault(division, VendorResolver(ctx, division, dry_run=True))
        resolution = resolver.resolve(invoice.vendor)
        if resolution.action == "held":
            out.add("would_hold", number, detail=f"invoice {number}: {resolution.reason}")
            continue
        if resolution.action == "skipped":
            out.add("would_skip", number, detail=f"invoice {number}: {resolution.reason}")
            continue
        if resolution.created:
            out.add("would_create_supplier", invoice.vendor.name)
        if division not in masters:
            masters[division] = MasterData.load(ctx.exact_hook(), division)
        try:
            planned = plan_entry(
                invoice,
                division=division,
                supplier_id=str(resolution.account_id),
                rules=rules,
                master=masters[division],
            )
        except EntryInvalid as exc:
            out.add("would_quarantine", number, detail=f"invoice {number}: {exc}")
            continue
        shown = planned.preview()
        entries.append(shown)
        ctx.logger.info(
            "DRY RUN: would post invoice %s to division %s:\n%s", number, division, json.dumps(shown, indent=2)
        )
        out.add("would_post", number, detail=f"invoice {number} -> division {division}: {json.dumps(shown['body'])}")
    ctx.logger.info("DRY RUN: nothing was posted and nothing was stored (%s)", dict(out.counts))
    return out
