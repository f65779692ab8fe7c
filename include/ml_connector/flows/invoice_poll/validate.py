"""Stage 3 — validate (per division): check every waiting invoice against the tenant's mappings and Exact's master
data (read once per run and division, only when there is something to check) before anything is posted.

An invoice that fails is ``quarantined`` with every problem and what to change (see ``build.plan_entry``); one
that cannot be processed at all (an unexpected ``ValueError`` / ``ArithmeticError``) is quarantined on its own,
so the other invoices of the division go on. Such
an invoice is checked again on every run, so fixing the mapping or the master data lets it through by itself;
invoices Exact itself refused are not (they wait for a change in JAGGAER or an admin requeue).

Returns the counts plus the master data (codes and GUIDs only) for the post task, so it is not read twice. In a
dry run this task previews its division's entries instead (``dry_run.preview_division``), so the dry run's Exact
reads happen under the division's pool too.
"""

from __future__ import annotations

from typing import Any

from ml_connector.errors import RateBudgetExhausted
from ml_connector.flows import budget_plan
from ml_connector.flows.invoice_poll.build import EntryInvalid, plan_entry
from ml_connector.flows.invoice_poll.common import CHECK_PREFIX, DATA_PREFIX, FLOW, id_filter
from ml_connector.flows.invoice_poll.invoice import InvoiceDataError, parse_invoice
from ml_connector.flows.invoice_poll.master import MasterData
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.mappings.codes import CodeRules
from ml_connector.mappings.vendors import JaggaerVendor, find_link
from ml_connector.store import ledger
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry

#: New invoices and those quarantined by our own checks (re-checked every run). Not ``failed``: Exact refused those
#: and they are not posted again until they change or are requeued (then they are ``pending``).
VALIDATE_STATES = ("pending", "quarantined")


Work = tuple[int, str, str, str | None, dict[str, Any], str | None]


def _work(ctx: FlowContext, division: int, ids: list[int], links: dict[str, str | None]) -> list[Work]:
    """``(entry id, number, state, reason, payload, supplier account id)`` of the chunk ``ids`` this division must
    check, read in one query; ``links`` caches each vendor's Exact supplier for the run."""
    out = []
    with session_scope(ctx.engine) as s:
        for e, payload in ledger.entries_with_payloads(
            s, ctx.tenant.name, FLOW, states=VALIDATE_STATES, division=division, ids=ids
        ):
            if e.state == "quarantined" and not (e.reason or "").startswith(CHECK_PREFIX):
                continue
            supplier = (payload.get("header") or {}).get("supplier") or {}
            vendor = JaggaerVendor(
                id=str(supplier.get("id")),
                name=str(supplier.get("name") or ""),
                supplier_number=str(supplier["supplierNumber"]).strip() if supplier.get("supplierNumber") else None,
            )
            if vendor.id not in links:
                link = find_link(s, ctx.tenant.name, division, vendor)
                links[vendor.id] = link.exact_account_id if link is not None else None
            out.append((e.id, e.source_ref or e.source_id, e.state, e.reason, payload, links[vendor.id]))
    return out


def validate(ctx: FlowContext) -> dict[str, Any]:
    """The validate stage for ``ctx.division``: counts (``Outcomes.to_dict()``) plus ``"master"``. Streams the
    division's invoices :data:`ledger.CHUNK` at a time; each chunk's decisions are written in one transaction."""
    if ctx.dry_run:  # the division's part of a dry run (Exact reads under this task's pool)
        from ml_connector.flows.invoice_poll.dry_run import preview_division

        return preview_division(ctx).to_dict()
    out = Outcomes()
    division = ctx.division
    assert division is not None, "validate runs per division"
    master: MasterData | None = None
    rules: CodeRules | None = None
    links: dict[str, str | None] = {}
    for ids in ledger.iter_id_chunks(
        ctx.engine, ctx.tenant.name, FLOW, states=VALIDATE_STATES, division=division, source_ids=id_filter(ctx)
    ):
        work = [w for w in _work(ctx, division, ids, links) if w[5]]
        if not work:
            continue
        if master is None or rules is None:
            try:  # read only when there is something to check
                budget_plan.check_room(ctx, division, "the master data")
                master = MasterData.load(ctx.exact_hook(), division)
            except RateBudgetExhausted as spent:
                # the day's Exact share is spent (refused before sending): nothing is checked now, nothing changes;
                # the post stage leaves the pending invoices for tomorrow without a call (flows.budget_plan)
                budget_plan.stage_refused(ctx, "validate", spent, len(work))
                return out.to_dict()
            with session_scope(ctx.engine) as s:
                rules = CodeRules.load(s, ctx.tenant)
        _check_chunk(ctx, division, work, master, rules, out)
    if master is None:
        return out.to_dict()
    return {**out.to_dict(), "master": master.to_dict()}


def _check_chunk(
    ctx: FlowContext, division: int, work: list[Work], master: MasterData, rules: CodeRules, out: Outcomes
) -> None:
    changes: list[tuple[int, str, str]] = []  # (entry id, new state, reason)
    for entry_id, number, state, old_reason, payload, account in work:
        try:
            invoice = parse_invoice(payload)
            plan_entry(invoice, division=division, supplier_id=str(account), rules=rules, master=master)
        except InvoiceDataError as exc:
            _quarantine(f"{DATA_PREFIX}{exc}", entry_id, number, state, old_reason, out, changes)
            continue
        except EntryInvalid as exc:
            _quarantine(f"{CHECK_PREFIX}{exc}", entry_id, number, state, old_reason, out, changes)
            continue
        except (ValueError, ArithmeticError) as exc:  # anything else about this one invoice: the others go on
            ctx.logger.warning("invoice %s cannot be checked: %s: %s", number, type(exc).__name__, exc)
            reason = (
                f"{CHECK_PREFIX}the invoice cannot be turned into an Exact entry ({type(exc).__name__}: {exc}); "
                "check its amounts and accounting splits in JAGGAER (amounts in whole cents); it is checked again "
                "on every run"
            )
            _quarantine(reason, entry_id, number, state, old_reason, out, changes)
            continue
        if state == "quarantined":
            changes.append((entry_id, "pending", "checks pass now"))
            out.add("released", number)
        out.add("valid")
    if changes:
        with session_scope(ctx.engine) as s:
            for entry_id, new_state, reason in changes:
                ledger.transition(s, s.get(LedgerEntry, entry_id), new_state, reason=reason, run_id=ctx.run_id)


def _quarantine(
    reason: str,
    entry_id: int,
    number: str,
    state: str,
    old_reason: str | None,
    out: Outcomes,
    changes: list[tuple[int, str, str]],
) -> None:
    if state == "quarantined" and old_reason == reason:
        out.add("still_quarantined", number)
        return
    changes.append((entry_id, "quarantined", reason))
    out.add("quarantined", number, detail=f"invoice {number}: {reason}")
