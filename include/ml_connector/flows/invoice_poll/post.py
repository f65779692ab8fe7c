"""Stage 4 — post (per division, under the division's pool): each valid invoice becomes one Exact purchase entry,
exactly once.

For every invoice:

1. ``ledger.begin_post`` commits ``posting`` *before* the POST goes out;
2. ``POST purchaseentry/PurchaseEntries`` (one audit row per attempt: source = JAGGAER invoiceId and number);
3. success: ``ledger.finish(posted, target_id=EntryID, target_ref=EntryNumber)``;
4. Exact refused it (a validation error, HTTP 500 with Exact's body, or 400): ``quarantined`` with Exact's message
   — never sent again blindly (Exact blocks apps that collect errors); any other refusal (403 no division access,
   404, 409, ...): ``failed`` with Exact's message, not picked up again either (``POST_STATES``) until the invoice
   changes in JAGGAER or an admin requeues it;
5. outcome unknown (dropped connection, timeout, 5xx without a body): Exact is searched by
   ``YourRef`` + ``Supplier``; found ⇒ posted, not found ⇒ posted again (once in this run; else left ``posting``).

An invoice found in ``posting`` when a run starts (a worker died mid-post, a response was lost) is searched the
same way before anything is sent. The search recognises our entry by ``ExternalLinkReference`` =
``JAGGAER:<invoiceId>``; an entry with that ``YourRef`` and supplier but no external reference (keyed by hand)
counts as the invoice being there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from ml_connector.errors import (
    AmbiguousWriteError,
    RateBudgetExhausted,
    RejectedError,
    TokenChainBroken,
    TransientError,
)
from ml_connector.exact import odata
from ml_connector.flows.invoice_poll.build import EntryInvalid, PlannedEntry, external_ref, plan_entry
from ml_connector.flows.invoice_poll.common import (
    CHECK_PREFIX,
    DATA_PREFIX,
    EXACT_PREFIX,
    FLOW,
    INVOICE_ENDPOINT,
    id_filter,
)
from ml_connector.flows.invoice_poll.invoice import Invoice, InvoiceDataError, parse_invoice
from ml_connector.flows.invoice_poll.master import MasterData
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.mappings.codes import CodeRules
from ml_connector.mappings.vendors import JaggaerVendor, find_link
from ml_connector.store import ledger
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry, StagedRecord

#: What post picks up: new and released invoices, and those an earlier attempt left ``posting`` (looked up in Exact
#: before anything is sent). Never ``failed``: Exact refused those (403, 404, 409, ...) and the same request would be
#: refused again, so they wait until the invoice changes in JAGGAER or an admin requeues them (invariant 5).
POST_STATES = ("posting", "pending")
SEARCH_SELECT = "EntryID,EntryNumber,YourRef,Supplier,ExternalLinkReference,Description"
#: Exact's answers that mean "this entry is wrong" (a validation error): quarantine, never resend as is.
VALIDATION_STATUSES = (400, 500)


def find_entry(hook: Any, division: int, your_refs: list[str], supplier_id: str, ext_ref: str) -> dict[str, Any] | None:
    """The purchase entry of this invoice in Exact, if there is one (see the module docstring)."""
    for your_ref in your_refs:
        flt = f"YourRef eq {odata.string(your_ref)} and Supplier eq {odata.guid(supplier_id)}"
        rows = list(hook.iter_collection(division, INVOICE_ENDPOINT, select=SEARCH_SELECT, filter=flt))
        ours = [r for r in rows if (r.get("ExternalLinkReference") or "") == ext_ref]
        if ours:
            return ours[0]
        by_hand = [r for r in rows if not r.get("ExternalLinkReference")]
        if by_hand:
            return by_hand[0]
    return None


def _your_refs(ctx: FlowContext, source_id: str, current: str | None) -> list[str]:
    """Every ``YourRef`` this invoice had (the current one first): a version posted before an edit is found too."""
    refs: list[str] = [current] if current else []
    with session_scope(ctx.engine) as s:
        for payload in s.scalars(
            select(StagedRecord.payload).where(
                StagedRecord.tenant == ctx.tenant.name,
                StagedRecord.flow == FLOW,
                StagedRecord.source_id == source_id,
            )
        ):
            ref = ((payload or {}).get("header") or {}).get("supplierInvoiceNumber")
            if ref and str(ref).strip() not in refs:
                refs.append(str(ref).strip())
    return refs


class Poster:
    def __init__(self, ctx: FlowContext, division: int, master: MasterData | None) -> None:
        self.ctx = ctx
        self.division = division
        self._master = master
        self.out = Outcomes()
        with session_scope(ctx.engine) as s:
            self.rules = CodeRules.load(s, ctx.tenant)

    @property
    def hook(self) -> Any:
        return self.ctx.exact_hook()

    def master(self) -> MasterData:
        if self._master is None:
            self._master = MasterData.load(self.hook, self.division)
        return self._master

    # -- one invoice ---------------------------------------------------------------------------------------------
    def found(self, entry_id: int, number: str, row: Mapping[str, Any], how: str) -> None:
        target_ref = str(row.get("EntryNumber")) if row.get("EntryNumber") is not None else None
        ledger.finish(
            self.ctx.engine,
            entry_id,
            "posted",
            reason=how,
            target_id=str(row.get("EntryID")),
            target_ref=target_ref,
            run_id=self.ctx.run_id,
        )
        self.out.add("posted", number, detail=f"invoice {number}: {how} (entry {target_ref})")

    def search(self, source_id: str, invoice: Invoice, supplier_id: str) -> dict[str, Any] | None:
        refs = _your_refs(self.ctx, source_id, invoice.supplier_invoice_number)
        return find_entry(self.hook, self.division, refs, supplier_id, external_ref(invoice.invoice_id))

    def post_one(self, entry_id: int, source_id: str, state: str, invoice: Invoice, supplier_id: str) -> None:
        ctx, number = self.ctx, invoice.invoice_number
        searched = False
        if state == "posting":
            # a previous attempt's outcome is unknown: look before sending anything
            row = self.search(source_id, invoice, supplier_id)
            searched = True
            if row is not None:
                self.found(entry_id, number, row, "found in Exact after an interrupted attempt")
                return
        try:
            planned = plan_entry(
                invoice, division=self.division, supplier_id=supplier_id, rules=self.rules, master=self.master()
            )
        except EntryInvalid as exc:
            with session_scope(ctx.engine) as s:
                entry = s.get(LedgerEntry, entry_id)
                ledger.transition(s, entry, "quarantined", reason=f"{CHECK_PREFIX}{exc}", run_id=ctx.run_id)
            self.out.add("quarantined", number, detail=f"invoice {number}: {exc}")
            return

        begun, was_posting = ledger.begin_post(ctx.engine, entry_id, ctx.run_id)
        if was_posting and not searched:
            row = self.search(source_id, invoice, supplier_id)
            if row is not None:
                self.found(entry_id, number, row, "found in Exact after an interrupted attempt")
                return
        self._send(entry_id, source_id, invoice, supplier_id, planned, was_posting=was_posting, attempt=begun.attempts)

    def _send(
        self,
        entry_id: int,
        source_id: str,
        invoice: Invoice,
        supplier_id: str,
        planned: PlannedEntry,
        *,
        was_posting: bool,
        attempt: int,
    ) -> None:
        ctx, number = self.ctx, invoice.invoice_number
        audit_ctx = ctx.audit_ctx(
            "post_purchase_entry", division=self.division, source_id=invoice.invoice_id, source_ref=number
        )
        audit_ctx.attempt = attempt  # the ledger's attempt number for this invoice
        for attempt in (1, 2):
            try:
                created = self.hook.post(self.division, INVOICE_ENDPOINT, planned.body(), audit_ctx=audit_ctx)
            except RejectedError as exc:
                if exc.status in VALIDATION_STATUSES:
                    reason = (
                        f"{EXACT_PREFIX}{exc.message} — fix the cause in Exact (or the invoice in JAGGAER), then "
                        f"`mlc ledger requeue --tenant {ctx.tenant.name} --flow {FLOW} {source_id}`"
                    )
                    state, outcome = "quarantined", "quarantined"
                else:
                    reason = (
                        f"Exact answered HTTP {exc.status}: {exc.message} — not sent again as is; fix the cause, then "
                        f"`mlc ledger requeue --tenant {ctx.tenant.name} --flow {FLOW} {source_id}`"
                    )
                    state, outcome = "failed", "failed"
                ledger.finish(ctx.engine, entry_id, state, reason=reason, run_id=ctx.run_id)
                self.out.add(outcome, number, detail=f"invoice {number}: {reason}")
                return
            except AmbiguousWriteError as exc:
                ctx.logger.warning("invoice %s: %s; looking in Exact before sending again", number, exc)
                row = self.search(source_id, invoice, supplier_id)
                if row is not None:
                    self.found(entry_id, number, row, "posted; the answer was lost, found in Exact")
                    return
                if attempt == 1:
                    continue
                self.out.add(
                    "ambiguous",
                    number,
                    detail=f"invoice {number}: outcome unknown twice ({exc}); the next run looks in Exact first",
                )
                return
            except (TokenChainBroken, RateBudgetExhausted):
                # nothing was processed by Exact (a 401 or a budget stop): the invoice simply waits - unless an
                # earlier attempt's outcome is still unknown, which the next run must look up first
                if not was_posting and attempt == 1:
                    ledger.finish(ctx.engine, entry_id, "pending", reason="not sent", run_id=ctx.run_id)
                raise
            except TransientError:
                # outcome unknown (e.g. still rate limited after waiting): stays posting, looked up next time
                raise
            entry_number = created.get("EntryNumber")
            ledger.finish(
                ctx.engine,
                entry_id,
                "posted",
                target_id=str(created.get("EntryID")),
                target_ref=str(entry_number) if entry_number is not None else None,
                run_id=ctx.run_id,
            )
            self.out.add("posted", number)
            return


def post(ctx: FlowContext, master: Mapping[str, Any] | None = None) -> Outcomes:
    """The post stage for ``ctx.division``. ``master``: the validate task's master data (read again if absent)."""
    out = Outcomes()
    if ctx.dry_run:
        return out
    division = ctx.division
    assert division is not None, "post runs per division"
    tenant = ctx.tenant.name
    work: list[tuple[int, str, str, dict[str, Any], str | None]] = []
    with session_scope(ctx.engine) as s:
        found = ledger.entries(s, tenant, FLOW, states=POST_STATES, division=division, source_ids=id_filter(ctx))
        found.sort(key=lambda e: (e.state != "posting", e.id))  # resolve the ambiguous ones first
        for e in found:
            payload = ledger.staged_payload(s, e)
            supplier = (payload.get("header") or {}).get("supplier") or {}
            link = find_link(
                s,
                tenant,
                division,
                JaggaerVendor(
                    id=str(supplier.get("id")),
                    name=str(supplier.get("name") or ""),
                    supplier_number=str(supplier["supplierNumber"]).strip() if supplier.get("supplierNumber") else None,
                ),
            )
            work.append((e.id, e.source_id, e.state, payload, link.exact_account_id if link is not None else None))
    if not work:
        return out
    poster = Poster(ctx, division, MasterData.from_dict(dict(master)) if master else None)
    for entry_id, source_id, state, payload, account in work:
        try:
            invoice = parse_invoice(payload)
        except InvoiceDataError as exc:
            with session_scope(ctx.engine) as s:
                entry = s.get(LedgerEntry, entry_id)
                ledger.transition(s, entry, "quarantined", reason=f"{DATA_PREFIX}{exc}", run_id=ctx.run_id)
            poster.out.add("quarantined", source_id, detail=f"invoice {source_id}: {exc}")
            continue
        if not account:
            ctx.logger.warning("invoice %s: vendor not mapped yet; left for the map stage", invoice.invoice_number)
            continue
        poster.post_one(entry_id, source_id, state, invoice, account)
    return poster.out
