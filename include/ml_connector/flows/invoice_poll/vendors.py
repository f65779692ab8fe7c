"""Stage 2 — map vendors (per division): each waiting invoice's JAGGAER vendor → an Exact supplier account.

A vendor is resolved once per run: the vendor map first; on a miss, Exact's supplier list of the division (read
once per run, paged, only when there is a miss) matched on the tenant's ``vendor_match.keys``; a match is stored
(``matched:<key>``). No match follows ``invoice_poll.unmatched_vendor``:

- ``halt`` (default): the invoices are ``held`` with the command that maps the vendor; every later run tries
  again, so they go through on the first run after the mapping exists;
- ``create``: the supplier is created in Exact (``POST crm/Accounts``) exactly once — under its own ledger
  record (flow ``invoice_poll_vendor``): ``posting`` is committed before the POST, and an interrupted creation
  is looked up in Exact (by code, else by name) before anything is sent again;
- ``skip``: the invoices are ``skipped``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select

from ml_connector.errors import AmbiguousWriteError, RateBudgetExhausted, RejectedError, TokenChainBroken
from ml_connector.exact import odata
from ml_connector.flows import budget_plan
from ml_connector.flows.invoice_poll.common import (
    ACCOUNTS_ENDPOINT,
    DATA_PREFIX,
    EXACT_PREFIX,
    FLOW,
    VENDOR_FLOW,
    id_filter,
)
from ml_connector.flows.invoice_poll.invoice import InvoiceDataError, Vendor, parse_invoice
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.mappings.vendors import (
    ACCOUNT_SELECT,
    ExactSupplier,
    JaggaerVendor,
    SupplierIndex,
    find_link,
    link_for_account,
    match_vendor,
    norm_code,
    norm_name,
    save_link,
)
from ml_connector.store import ledger
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry, VendorMap

#: States the map stage looks at: new invoices and invoices waiting on a vendor. Not ``failed`` (Exact refused the
#: post: it waits for a change or a requeue, which makes it ``pending`` again).
MAP_STATES = ("pending", "held")


@dataclass(frozen=True)
class Resolution:
    action: str  # mapped | held | skipped
    account_id: str | None = None
    reason: str = ""
    created: bool = False


def set_vendor_command(tenant: str, division: int, vendor: JaggaerVendor) -> str:
    return (
        f"mlc mappings set vendor --tenant {tenant} --division {division} --jaggaer-id {vendor.id} "
        "--exact-code <Exact supplier code>"
    )


class VendorResolver:
    """Resolves JAGGAER vendors of one tenant and division; Exact's supplier list is read at most once."""

    def __init__(self, ctx: FlowContext, division: int, *, dry_run: bool = False) -> None:
        self.ctx = ctx
        self.division = division
        self.dry_run = dry_run
        self._index: SupplierIndex | None = None
        self._profiles: dict[str, dict[str, Any] | None] = {}
        self.created: list[str] = []

    # -- Exact's suppliers ---------------------------------------------------------------------------------------
    def index(self) -> SupplierIndex:
        if self._index is None:
            budget_plan.check_room(self.ctx, self.division, "the supplier list")
            rows = self.ctx.exact_hook().iter_collection(
                self.division, ACCOUNTS_ENDPOINT, select=ACCOUNT_SELECT, filter="IsSupplier eq true"
            )
            self._index = SupplierIndex.build(rows)
            self.ctx.logger.info(
                "Exact division %s: %d supplier(s) read for vendor matching", self.division, len(self._index.suppliers)
            )
        return self._index

    # -- JAGGAER's side ------------------------------------------------------------------------------------------
    def identity(self, vendor: Vendor) -> JaggaerVendor:
        """The vendor, with VAT/CoC numbers from its JAGGAER company profile when the match keys or a creation
        need them (one call per vendor and run, only for vendors without a stored link)."""
        jv = JaggaerVendor(id=vendor.id, name=vendor.name, supplier_number=vendor.supplier_number)
        needs = {"vat_number", "coc_number"} & set(self.ctx.tenant.vendor_match.keys)
        if not needs and self.ctx.tenant.invoice_poll.unmatched_vendor != "create":
            return jv
        if not vendor.supplier_number:
            return jv  # the company-profile lookup is by external code only
        if vendor.id not in self._profiles:
            try:
                self._profiles[vendor.id] = self.ctx.jaggaer_hook().find_company(vendor.supplier_number)
            except RejectedError as exc:
                self.ctx.logger.warning("JAGGAER company profile of vendor %s: %s", vendor.id, exc)
                self._profiles[vendor.id] = None
            except ValueError as exc:
                # a supplier number the profile search cannot express (e.g. one with , ; ( ) ' "): no profile, so
                # no VAT / chamber-of-commerce number; the vendor goes on to the other keys and the unmatched policy
                self.ctx.logger.warning(
                    "JAGGAER company profile of vendor %s (supplier number %r) cannot be looked up: %s; going on "
                    "without its VAT / chamber-of-commerce number",
                    vendor.id,
                    vendor.supplier_number,
                    exc,
                )
                self._profiles[vendor.id] = None
        profile = self._profiles[vendor.id] or {}
        return replace(
            jv,
            vat_number=(str(profile.get("euVat")).strip() or None) if profile.get("euVat") else None,
            coc_number=(str(profile.get("fiscalCode")).strip() or None) if profile.get("fiscalCode") else None,
        )

    # -- resolution ----------------------------------------------------------------------------------------------
    def resolve(self, vendor: Vendor) -> Resolution:
        ctx, tenant, division = self.ctx, self.ctx.tenant.name, self.division
        base = JaggaerVendor(id=vendor.id, name=vendor.name, supplier_number=vendor.supplier_number)
        with session_scope(ctx.engine) as s:
            link = find_link(s, tenant, division, base)
            link_id = link.id if link is not None else None
            link_account = link.exact_account_id if link is not None else None
            link_code = link.exact_code if link is not None else None
            deactivated = link is None and s.scalar(
                select(VendorMap.id).where(
                    VendorMap.tenant == tenant,
                    VendorMap.division == division,
                    VendorMap.jaggaer_supplier_id == vendor.id,
                    VendorMap.active.is_(False),
                )
            )
        if deactivated:
            return Resolution(
                "held",
                reason=(
                    f"the vendor map link of {base.label()} in division {division} is deactivated: relink it with "
                    f"`{set_vendor_command(tenant, division, base)}`"
                ),
            )
        if link_account:
            return Resolution("mapped", link_account)
        if link_id is not None and link_code:
            supplier = self.index().by_code(link_code)
            if supplier is None:
                return Resolution(
                    "held",
                    reason=(
                        f"{base.label()} is mapped to Exact code {link_code!r}, which is not a supplier in Exact "
                        f"division {division}: fix the mapping with `{set_vendor_command(tenant, division, base)}`"
                    ),
                )
            with session_scope(ctx.engine) as s:
                other = link_for_account(s, tenant, division, supplier.id)
                if other is not None and other.id != link_id:
                    who = other.jaggaer_supplier_id or f"with supplier number {other.jaggaer_supplier_number}"
                    return Resolution(
                        "held",
                        reason=(
                            f"{base.label()} is mapped to Exact code {link_code!r}, but that supplier is already "
                            f"linked to JAGGAER vendor {who} in division {division} (one link per supplier): remove "
                            f"one with `mlc mappings delete vendor --tenant {tenant} --division {division} "
                            "--jaggaer-id <id>`"
                        ),
                    )
                if not self.dry_run:
                    row = s.get(VendorMap, link_id)
                    save_link(s, tenant, division, base, supplier, source=row.source if row else "admin", row=row)
            return Resolution("mapped", supplier.id)

        keys = list(ctx.tenant.vendor_match.keys)
        match, notes = match_vendor(base, self.index(), keys, enrich=lambda: self.identity(vendor))
        jv = self.identity(vendor) if match is None or vendor.id in self._profiles else base
        if match is not None:
            with session_scope(ctx.engine) as s:
                other = link_for_account(s, tenant, division, match.supplier.id)
                if other is not None and other.jaggaer_supplier_id not in (None, jv.id):
                    return Resolution(
                        "held",
                        reason=(
                            f"{jv.label()} matches Exact supplier {match.supplier.code} on {match.key}, but that "
                            f"supplier is already mapped to JAGGAER vendor {other.jaggaer_supplier_id} in division "
                            f"{division}: decide with `{set_vendor_command(tenant, division, jv)}`"
                        ),
                    )
                if not self.dry_run:
                    save_link(s, tenant, division, jv, match.supplier, source=f"matched:{match.key}", row=other)
            ctx.logger.info("%s matched Exact supplier %s on %s", jv.label(), match.supplier.code, match.key)
            return Resolution("mapped", match.supplier.id)

        why = f"no Exact supplier in division {division} matches on {', '.join(keys)}"
        if notes:
            why += f" ({'; '.join(notes)})"
        policy = ctx.tenant.invoice_poll.unmatched_vendor
        if policy == "skip":
            return Resolution("skipped", reason=f"{jv.label()}: {why}; policy unmatched_vendor=skip")
        if policy == "create":
            return self.create(jv)
        return Resolution(
            "held",
            reason=(
                f"map {jv.label()} to an Exact supplier: `{set_vendor_command(tenant, division, jv)}` ({why}); "
                "the invoice goes through on the next run after that"
            ),
        )

    # -- policy create: exactly once ----------------------------------------------------------------------------
    def _find_created(self, jv: JaggaerVendor, code: str | None) -> ExactSupplier | None:
        """Look in Exact for a supplier an interrupted creation may have made (by its code, else by name)."""
        hook = self.ctx.exact_hook()
        if code:
            flt = f"Code eq {odata.string(odata.pad_code(code))}"
        else:
            flt = f"Name eq {odata.string(jv.name)} and IsSupplier eq true"
        rows = list(hook.iter_collection(self.division, ACCOUNTS_ENDPOINT, select=ACCOUNT_SELECT, filter=flt))
        wanted = norm_name(jv.name)
        found = [ExactSupplier.from_row(r) for r in rows if code or norm_name(r.get("Name")) == wanted]
        return found[-1] if found else None

    def create(self, jv: JaggaerVendor) -> Resolution:
        ctx, tenant, division = self.ctx, self.ctx.tenant.name, self.division
        index = self.index()
        code = norm_code(jv.supplier_number)
        if code and index.by_code(code) is not None:
            code = None  # taken by another supplier: let Exact number the new one
        if self.dry_run:
            return Resolution("mapped", "(to be created)", reason=f"would create supplier {jv.name!r}", created=True)
        source_id = f"{division}:{jv.id}"
        payload = {"vendor_id": jv.id, "name": jv.name, "supplier_number": jv.supplier_number, "code": code}
        with session_scope(ctx.engine) as s:
            ledger.stage(
                s,
                tenant=tenant,
                flow=VENDOR_FLOW,
                source_id=source_id,
                payload=payload,
                source_ref=jv.name[:128],
                division=division,
                run_id=ctx.run_id,
                repost_changed=False,
            )
            entry = ledger.get_entry(s, tenant, VENDOR_FLOW, source_id)
            assert entry is not None
            entry_id, state, target_id, reason = entry.id, entry.state, entry.target_id, entry.reason
        if state == "posted" and target_id:
            supplier = index.by_id.get(target_id.lower()) or ExactSupplier(id=target_id, code=code, name=jv.name)
            return self._link_created(jv, supplier)
        if state == "quarantined":
            return Resolution(
                "held",
                reason=(
                    f"creating {jv.label()} in Exact division {division} was refused ({reason}); create or map it "
                    f"by hand: `{set_vendor_command(tenant, division, jv)}`"
                ),
            )
        if state == "posting":
            found = self._find_created(jv, code)
            if found is not None:
                ledger.finish(
                    ctx.engine, entry_id, "posted", target_id=found.id, target_ref=found.code, run_id=ctx.run_id
                )
                return self._link_created(jv, found)
        try:
            begun, was_posting = ledger.begin_post(
                ctx.engine, entry_id, ctx.run_id, states=("pending", "posting", "failed")
            )
        except ledger.StateChanged as exc:  # another run moved it meanwhile: leave it to that run, retry next time
            return Resolution(
                "held",
                reason=f"creating {jv.label()} in Exact division {division} is being handled by another run "
                f"(state {exc.state}); it is retried on the next run",
            )
        if was_posting and state != "posting":  # someone else started it meanwhile
            found = self._find_created(jv, code)
            if found is not None:
                ledger.finish(
                    ctx.engine, entry_id, "posted", target_id=found.id, target_ref=found.code, run_id=ctx.run_id
                )
                return self._link_created(jv, found)
        body: dict[str, Any] = {"Name": jv.name, "IsSupplier": True}
        if code:
            body["Code"] = code
        if jv.vat_number:
            body["VATNumber"] = jv.vat_number
        if jv.coc_number:
            body["ChamberOfCommerce"] = jv.coc_number
        if jv.email:
            body["Email"] = jv.email
        audit_ctx = ctx.audit_ctx("create_supplier", division=division, source_id=jv.id, source_ref=jv.name[:128])
        audit_ctx.attempt = begun.attempts
        try:
            created = ctx.exact_hook().post(division, ACCOUNTS_ENDPOINT, body, audit_ctx=audit_ctx)
        except RejectedError as exc:
            ledger.finish(ctx.engine, entry_id, "quarantined", reason=f"{EXACT_PREFIX}{exc.message}", run_id=ctx.run_id)
            return Resolution(
                "held",
                reason=(
                    f"creating {jv.label()} in Exact division {division} was refused: {exc.message}; create or map "
                    f"it by hand: `{set_vendor_command(tenant, division, jv)}`"
                ),
            )
        except AmbiguousWriteError:
            found = self._find_created(jv, code)
            if found is None:
                return Resolution(
                    "held",
                    reason=(
                        f"creating {jv.label()} in Exact division {division} got no answer and it is not there (yet); "
                        "the next run looks again before creating it"
                    ),
                )
            created = {"ID": found.id, "Code": found.code, "Name": found.name}
        except (TokenChainBroken, RateBudgetExhausted):
            if state != "posting" and not was_posting:  # an unresolved earlier attempt stays to be looked up
                ledger.finish(ctx.engine, entry_id, "pending", reason="not sent", run_id=ctx.run_id)
            raise
        supplier = ExactSupplier.from_row(created)
        ledger.finish(
            ctx.engine, entry_id, "posted", target_id=supplier.id, target_ref=supplier.code, run_id=ctx.run_id
        )
        index.add(supplier)
        self.created.append(jv.name)
        return self._link_created(jv, supplier)

    def _link_created(self, jv: JaggaerVendor, supplier: ExactSupplier) -> Resolution:
        with session_scope(self.ctx.engine) as s:
            row = link_for_account(s, self.ctx.tenant.name, self.division, supplier.id)
            save_link(s, self.ctx.tenant.name, self.division, jv, supplier, source="created_in_exact", row=row)
        return Resolution("mapped", supplier.id, created=True)


def map_vendors(ctx: FlowContext) -> Outcomes:
    """The map-vendors stage for ``ctx.division`` (see the module docstring). Streams the division's waiting invoices
    :data:`ledger.CHUNK` at a time (each vendor is resolved once per run); a chunk's changes go in one transaction."""
    out = Outcomes()
    if ctx.dry_run:
        return out
    division = ctx.division
    assert division is not None, "map_vendors runs per division"
    resolver = VendorResolver(ctx, division)
    resolved: dict[str, Resolution] = {}
    for ids in ledger.iter_id_chunks(
        ctx.engine, ctx.tenant.name, FLOW, states=MAP_STATES, division=division, source_ids=id_filter(ctx)
    ):
        _map_chunk(ctx, ids, resolver, resolved, out)
    if resolver.created:
        out.add("suppliers_created", n=len(resolver.created), detail=f"created in Exact: {', '.join(resolver.created)}")
    return out


def _map_chunk(
    ctx: FlowContext, ids: list[int], resolver: VendorResolver, resolved: dict[str, Resolution], out: Outcomes
) -> None:
    with session_scope(ctx.engine) as s:
        work = [
            (e.id, e.source_ref or e.source_id, e.state, e.reason, payload)
            for e, payload in ledger.entries_with_payloads(
                s, ctx.tenant.name, FLOW, states=MAP_STATES, division=resolver.division, ids=ids
            )
        ]
    by_vendor: dict[str, list[tuple[int, str, str, str | None]]] = defaultdict(list)
    unreadable: list[tuple[int, str, str]] = []
    refused: dict[str, RateBudgetExhausted] = {}
    for entry_id, number, state, reason, payload in work:
        try:
            invoice = parse_invoice(payload)
        except (ValueError, ArithmeticError) as exc:  # InvoiceDataError is a ValueError
            why = str(exc) if isinstance(exc, InvoiceDataError) else f"cannot be read ({type(exc).__name__}: {exc})"
            why += "; correct the invoice in JAGGAER: it is read again when it changes there"
            unreadable.append((entry_id, number, why))
            continue
        if invoice.vendor.id not in resolved and invoice.vendor.id not in refused:
            try:
                resolved[invoice.vendor.id] = resolver.resolve(invoice.vendor)
            except RateBudgetExhausted as spent:
                refused[invoice.vendor.id] = spent
        by_vendor[invoice.vendor.id].append((entry_id, number, state, reason))
    with session_scope(ctx.engine) as s:
        for entry_id, number, why in unreadable:
            ledger.transition(
                s, s.get(LedgerEntry, entry_id), "quarantined", reason=f"{DATA_PREFIX}{why}", run_id=ctx.run_id
            )
            out.add("quarantined", number, detail=f"invoice {number}: {why}")
        for vendor_id, items in by_vendor.items():
            if vendor_id in refused:
                # the day's Exact share is spent (refused before sending): these invoices stay as they are; the
                # post stage, which knows it without a call, leaves the pending ones for tomorrow (flows.budget_plan)
                budget_plan.stage_refused(ctx, "map vendors", refused[vendor_id], len(items))
                continue
            resolution = resolved[vendor_id]
            for entry_id, number, state, reason in items:
                if resolution.action == "mapped":
                    if state == "held":
                        ledger.transition(
                            s, s.get(LedgerEntry, entry_id), "pending", reason="vendor mapped", run_id=ctx.run_id
                        )
                        out.add("vendor_mapped", number)
                elif resolution.action == "held":
                    if state != "held" or reason != resolution.reason:
                        ledger.transition(
                            s, s.get(LedgerEntry, entry_id), "held", reason=resolution.reason, run_id=ctx.run_id
                        )
                    out.add("held", number)
                else:
                    ledger.transition(
                        s, s.get(LedgerEntry, entry_id), "skipped", reason=resolution.reason, run_id=ctx.run_id
                    )
                    out.add("skipped", number, detail=f"invoice {number}: {resolution.reason}")
    for vendor_id, items in by_vendor.items():
        resolution = resolved.get(vendor_id)
        if resolution is not None and resolution.action == "held":
            ctx.logger.error("invoice(s) %s held: %s", ", ".join(i[1] for i in items), resolution.reason)
