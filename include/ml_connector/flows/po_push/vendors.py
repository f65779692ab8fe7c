"""Map vendors: every order's Exact supplier must be a JAGGAER supplier before its PO can be imported.

For the distinct suppliers of the division's open orders (``pending`` and ``held``):

1. the ``VendorMap`` row of the Exact account (tenant, division, account GUID) — the common case, no call;
2. a map row an admin (or the mapping import) made without the account GUID, matched on the tenant's
   ``vendor_match.keys`` in order (``supplier_number`` = the order's supplier code; ``vat_number`` /
   ``coc_number`` through their blind indexes; ``name``) — exactly one row must match;
3. otherwise the supplier is read from Exact (``crm/Accounts`` by ``ID``, 20 per call) and upserted into JAGGAER
   with one ``TSMSupplierXMLImport`` per 50 suppliers (``ERPNumber`` = the Exact code, unpadded; each attempt is
   audited once per supplier it carries), then mapped with ``source = "created_in_jaggaer"``. The next run finds
   it in step 1: a vendor is created once.

Orders whose supplier cannot be resolved are ``held`` with a reason naming the supplier (retried every run);
orders that were held and now resolve go back to ``pending``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ml_connector.crypto import get_crypto
from ml_connector.errors import AmbiguousWriteError, RejectedError, TransientError
from ml_connector.exact import odata
from ml_connector.flows.po_push import model
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.store import ledger
from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog, LedgerEntry, VendorMap

FLOW = "po_push"
ACCOUNTS_PER_CALL = 20
SUPPLIERS_PER_IMPORT = 50
SOURCE_CREATED = "created_in_jaggaer"


@dataclass(frozen=True)
class Resolution:
    """How an Exact supplier appears in JAGGAER: its supplier number, or why it cannot be used yet."""

    supplier_number: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.supplier_number is not None


def _norm(value: str | None) -> str:
    return " ".join(str(value or "").split()).casefold()


def supplier_number_of(row: VendorMap) -> str | None:
    """The JAGGAER supplier number a map row stands for (ours are the Exact code)."""
    if row.jaggaer_supplier_number:
        return row.jaggaer_supplier_number.strip()
    if row.source == SOURCE_CREATED and row.exact_code:
        return row.exact_code.strip()
    return None


def _from_row(row: VendorMap, label: str) -> Resolution:
    if not row.active:
        return Resolution(reason=f"the vendor map link of {label} is deactivated; reactivate or relink it")
    number = supplier_number_of(row)
    if number is None:
        return Resolution(
            reason=(
                f"the vendor map links {label} to JAGGAER vendor id {row.jaggaer_supplier_id} but holds no JAGGAER "
                "supplier number; set it in the vendor map"
            )
        )
    return Resolution(supplier_number=number)


def known_links(session: Any, tenant: str, division: int, account_ids: list[str]) -> dict[str, VendorMap]:
    if not account_ids:
        return {}
    rows = session.scalars(
        select(VendorMap).where(
            VendorMap.tenant == tenant,
            VendorMap.division == division,
            VendorMap.exact_account_id.in_(account_ids),
        )
    )
    return {str(r.exact_account_id).lower(): r for r in rows}


def _unlinked_rows(session: Any, tenant: str, division: int) -> list[VendorMap]:
    return list(
        session.scalars(
            select(VendorMap).where(
                VendorMap.tenant == tenant,
                VendorMap.division == division,
                VendorMap.exact_account_id.is_(None),
                VendorMap.active.is_(True),
            )
        )
    )


def _match(rows: list[VendorMap], key: str, value: str | None) -> list[VendorMap]:
    if not value or not str(value).strip():
        return []
    if key == "supplier_number":
        code = str(value).strip()
        return [r for r in rows if (r.exact_code or "").strip() == code or (r.jaggaer_supplier_number or "") == code]
    if key in ("vat_number", "coc_number"):
        bidx = get_crypto().blind_index(str(value))
        attr = "vat_bidx" if key == "vat_number" else "coc_bidx"
        return [r for r in rows if getattr(r, attr) == bidx]
    if key == "name":
        return [r for r in rows if _norm(r.name) == _norm(value)]
    return []


def _link_existing(
    ctx: FlowContext, division: int, wanted: dict[str, dict[str, Any]], accounts: dict[str, dict[str, Any]] | None
) -> dict[str, Resolution]:
    """Step 2: complete admin rows that match on the tenant's keys. ``accounts`` (Exact data) enables the VAT,
    chamber-of-commerce and name keys; without it only ``supplier_number`` (the order's code) is tried."""
    out: dict[str, Resolution] = {}
    keys = list(ctx.tenant.vendor_match.keys)
    with session_scope(ctx.engine) as session:
        rows = _unlinked_rows(session, ctx.tenant.name, division)
        if not rows:
            return out
        for account_id, info in wanted.items():
            acct = (accounts or {}).get(account_id)
            values = {
                "supplier_number": model.unpadded(info.get("code")) or model.unpadded((acct or {}).get("Code")),
                "vat_number": (acct or {}).get("VATNumber"),
                "coc_number": (acct or {}).get("ChamberOfCommerce"),
                "name": (acct or {}).get("Name") or (info.get("name") if accounts is not None else None),
            }
            for key in keys:
                if key != "supplier_number" and acct is None:
                    continue
                found = _match(rows, key, values.get(key))
                if len(found) == 1:
                    row = found[0]
                    row.exact_account_id = account_id
                    row.exact_code = row.exact_code or values["supplier_number"]
                    rows.remove(row)
                    out[account_id] = _from_row(row, info["label"])
                    session.add(
                        AuditLog(
                            tenant=ctx.tenant.name,
                            flow=FLOW,
                            action="vendor_linked",
                            division=division,
                            source_id=account_id,
                            source_ref=values["supplier_number"],
                            target_ref=row.jaggaer_supplier_number,
                            outcome=f"matched:{key}",
                            message=f"Exact supplier {info['label']} linked to an existing vendor map row by {key}",
                            run_id=ctx.run_id,
                        )
                    )
                    break
                if len(found) > 1:
                    ctx.logger.warning("%s: %s matches %d vendor map rows; not linked", info["label"], key, len(found))
    return out


def read_accounts(ctx: FlowContext, division: int, account_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Exact accounts by GUID, 20 per call (``crm/Accounts`` needs a filter on an allowed field: ``ID`` is one)."""
    hook = ctx.exact_hook()
    out: dict[str, dict[str, Any]] = {}
    literals = [odata.guid(a) for a in account_ids]
    for flt in model.batched_or_filters("ID", literals, max_terms=ACCOUNTS_PER_CALL):
        for row in hook.iter_collection(division, model.ACCOUNTS_PATH, select=model.ACCOUNT_SELECT, filter=flt):
            out[str(row.get("ID") or "").lower()] = row
    return out


def jaggaer_supplier(acct: dict[str, Any]) -> Any:
    """The JAGGAER ``Supplier`` for an Exact account (``ERPNumber`` = the Exact code without padding)."""
    from ml_connector.jaggaer.xml import Address, Supplier

    address = None
    if any(acct.get(k) for k in ("AddressLine1", "City", "Postcode", "Country")):
        address = Address(
            line1=acct.get("AddressLine1") or None,
            city=acct.get("City") or None,
            postal_code=acct.get("Postcode") or None,
            country=(acct.get("Country") or "").strip() or None,
        )
    return Supplier(
        erp_number=str(acct.get("Code") or "").strip(),
        name=str(acct.get("Name") or "").strip() or str(acct.get("Code") or "").strip(),
        active=not bool(acct.get("Blocked")),
        vat_number=(acct.get("VATNumber") or "").strip() or None,
        tax_id=(acct.get("ChamberOfCommerce") or "").strip() or None,
        email=(acct.get("Email") or "").strip() or None,
        address=address,
    )


def _save_created(ctx: FlowContext, division: int, created: list[tuple[str, dict[str, Any]]]) -> None:
    crypto = get_crypto()
    with session_scope(ctx.engine) as session:
        existing = known_links(session, ctx.tenant.name, division, [a for a, _ in created])
        for account_id, acct in created:
            code = str(acct.get("Code") or "").strip()
            vat = (acct.get("VATNumber") or "").strip() or None
            coc = (acct.get("ChamberOfCommerce") or "").strip() or None
            row = existing.get(account_id)
            if row is None:
                row = VendorMap(tenant=ctx.tenant.name, division=division, exact_account_id=account_id, active=True)
                session.add(row)
            row.exact_code = code
            row.jaggaer_supplier_number = code
            row.name = acct.get("Name")
            row.vat_number = vat
            row.vat_bidx = crypto.blind_index(vat)
            row.coc_number = coc
            row.coc_bidx = crypto.blind_index(coc)
            row.email = (acct.get("Email") or "").strip() or None
            row.source = SOURCE_CREATED
            row.active = True
            session.add(
                AuditLog(
                    tenant=ctx.tenant.name,
                    flow=FLOW,
                    action="vendor_created",
                    division=division,
                    source_id=account_id,
                    source_ref=code,
                    target_ref=code,
                    outcome=SOURCE_CREATED,
                    message=f"supplier {code} upserted into JAGGAER (ERPNumber {code}) and mapped",
                    run_id=ctx.run_id,
                )
            )


def _create_in_jaggaer(
    ctx: FlowContext, division: int, accounts: dict[str, dict[str, Any]], outcomes: Outcomes
) -> dict[str, Resolution]:
    """Step 3: one supplier import per 50 suppliers; map the ones JAGGAER took."""
    out: dict[str, Resolution] = {}
    items = sorted(accounts.items(), key=lambda kv: str(kv[1].get("Code") or "").strip())
    hook = ctx.jaggaer_hook()
    for start in range(0, len(items), SUPPLIERS_PER_IMPORT):
        batch = items[start : start + SUPPLIERS_PER_IMPORT]
        suppliers = [jaggaer_supplier(acct) for _, acct in batch]
        # One audit row per supplier of the batch for each attempt (Exact account GUID as source_id, ERPNumber as
        # source_ref and target_ref), so ``store.audit.history`` of an account shows the import that carried it; a
        # single row could name at most a few of the 50 ERPNumbers in its 128-character columns.
        audit_ctx = ctx.audit_ctx("supplier_upsert", division=division)
        audit_ctx.subjects = tuple(
            (account_id, s.erp_number, s.erp_number) for (account_id, _), s in zip(batch, suppliers, strict=True)
        )
        try:
            result = hook.sync_suppliers(suppliers, audit_ctx=audit_ctx)
        except (AmbiguousWriteError, TransientError, RejectedError) as exc:
            for account_id, acct in batch:
                out[account_id] = Resolution(
                    reason=f"creating supplier {str(acct.get('Code') or '').strip()} in JAGGAER failed for now "
                    f"({exc}); retried on the next run"
                )
            continue
        refused: dict[str, list[str]] = {}
        for key, messages in result.object_errors.items():
            refused[str(key).strip()] = messages
        general = None if result.ok or result.object_errors else result.summary()
        created: list[tuple[str, dict[str, Any]]] = []
        for (account_id, acct), supplier in zip(batch, suppliers, strict=True):
            if general is not None:
                out[account_id] = Resolution(reason=f"JAGGAER refused supplier {supplier.erp_number}: {general}")
            elif supplier.erp_number in refused:
                out[account_id] = Resolution(
                    reason=f"JAGGAER refused supplier {supplier.erp_number}: {'; '.join(refused[supplier.erp_number])}"
                )
            else:
                created.append((account_id, acct))
                out[account_id] = Resolution(supplier_number=supplier.erp_number)
                outcomes.add("vendor_created", supplier.erp_number)
        if created:
            _save_created(ctx, division, created)
    return out


def resolve_suppliers(
    ctx: FlowContext, division: int, wanted: dict[str, dict[str, Any]], outcomes: Outcomes, *, create: bool = True
) -> dict[str, Resolution]:
    """``{account GUID: Resolution}`` for ``wanted`` (``{guid: {"code", "name", "label"}}``), creating missing
    suppliers in JAGGAER unless ``create`` is false (dry run: they are reported as to be created)."""
    resolved: dict[str, Resolution] = {}
    with session_scope(ctx.engine) as session:
        for account_id, row in known_links(session, ctx.tenant.name, division, list(wanted)).items():
            resolved[account_id] = _from_row(row, wanted[account_id]["label"])
    missing = {a: info for a, info in wanted.items() if a not in resolved}
    if missing and create:
        resolved.update(_link_existing(ctx, division, missing, None))
        missing = {a: info for a, info in missing.items() if a not in resolved}
    if not missing:
        return resolved
    accounts = read_accounts(ctx, division, sorted(missing))
    for account_id, info in missing.items():
        acct = accounts.get(account_id)
        if acct is None:
            resolved[account_id] = Resolution(
                reason=f"Exact supplier {info['label']} was not found in division {division} (crm/Accounts)"
            )
        elif not str(acct.get("Code") or "").strip():
            resolved[account_id] = Resolution(reason=f"Exact supplier {info['label']} has no account code")
    to_create = {a: accounts[a] for a in missing if a not in resolved}
    if not create:
        for account_id, acct in to_create.items():
            code = str(acct.get("Code") or "").strip()
            outcomes.add("would_create_vendor", code)
            resolved[account_id] = Resolution(supplier_number=code)
        return resolved
    resolved.update(_link_existing(ctx, division, {a: missing[a] for a in to_create}, to_create))
    to_create = {a: acct for a, acct in to_create.items() if a not in resolved}
    if to_create:
        resolved.update(_create_in_jaggaer(ctx, division, to_create, outcomes))
    return resolved


def wanted_suppliers(payloads: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    wanted: dict[str, dict[str, Any]] = {}
    for p in payloads:
        sid = p.get("supplier_id")
        if not sid or model.is_cancelled(p):
            continue
        code = model.unpadded(p.get("supplier_code"))
        label = f"{code or sid} ({p.get('supplier_name') or 'no name'})"
        wanted.setdefault(sid, {"code": code, "name": p.get("supplier_name"), "label": label})
    return wanted


def selected(ctx: FlowContext, entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """The entries the run's ``ids`` param names (all when it names none)."""
    if not ctx.params.ids:
        return entries
    wanted = {i.strip() for i in ctx.params.ids}
    return [e for e in entries if (e.source_ref or "") in wanted]


def map_vendors(ctx: FlowContext) -> Outcomes:
    """Resolve the suppliers of the division's pending and held orders (module docstring)."""
    if ctx.division is None:
        raise ValueError("map_vendors needs a division")
    outcomes = Outcomes()
    if ctx.dry_run:
        return outcomes  # the preview (extract task) did the read-only part
    division = ctx.division
    tenant = ctx.tenant.name
    with session_scope(ctx.engine) as session:
        work = selected(ctx, ledger.entries(session, tenant, FLOW, states=("pending", "held"), division=division))
        payloads = {e.id: ledger.staged_payload(session, e) for e in work}
    wanted = wanted_suppliers(list(payloads.values()))
    resolved = resolve_suppliers(ctx, division, wanted, outcomes) if wanted else {}
    with session_scope(ctx.engine) as session:
        for entry_id, payload in payloads.items():
            entry = session.get(LedgerEntry, entry_id)
            if entry is None or entry.state not in ("pending", "held"):
                continue
            sid = payload.get("supplier_id")
            res = resolved.get(sid) if sid else None
            if res is not None and not res.ok:
                reason = f"order {entry.source_ref}: {res.reason}"
                if entry.state != "held" or entry.reason != reason:
                    ledger.transition(session, entry, "held", reason=reason, run_id=ctx.run_id)
                outcomes.add("held", entry.source_ref, detail=reason)
            elif entry.state == "held":
                ledger.transition(session, entry, "pending", reason="supplier resolved", run_id=ctx.run_id)
                outcomes.add("released", entry.source_ref)
    outcomes.add("vendors_checked", n=len(wanted))
    return outcomes
