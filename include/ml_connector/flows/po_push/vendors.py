"""Map vendors: every order's Exact supplier must be a JAGGAER supplier before its PO can be imported.

Two steps, so that a supplier code used in several divisions is upserted into JAGGAER **once per tenant and run**
(its ``ERPNumber`` is the Exact code, so the divisions' accounts with one code are one JAGGAER supplier):

``collect_suppliers`` (per division, in the division's pool: the only step that calls Exact), for the distinct
suppliers of the division's open orders (``pending`` and ``held``):

1. the ``VendorMap`` row of the Exact account (tenant, division, account GUID) — the common case, no call;
2. a map row an admin (or the mapping import) made without the account GUID, matched on the tenant's
   ``vendor_match.keys`` in order (``supplier_number`` = the order's supplier code; ``vat_number`` /
   ``coc_number`` through their blind indexes; ``name``) — exactly one row must match;
3. otherwise the supplier is read from Exact (``crm/Accounts`` by ``ID``, 20 per call) and left as a *candidate*
   for the tenant step: a ``StagedRecord`` of flow ``po_push_supplier`` (the account encrypted, like the vendor
   map's sensitive columns), tagged with the run id.

``upsert_suppliers`` (per tenant, after every division's ``collect_suppliers``; JAGGAER and the database only)
groups this run's candidates by supplier code. Per code, the account of the *master* division wins
(``po_push.supplier_master_division``; default the first PO division; then the others in the tenant's order);
when the divisions' accounts would give JAGGAER different data, the report names the supplier and the fields
(outcome ``supplier_data_differs``). A code that an earlier run already upserted from a division that ranks as high
as the winner is only linked (``vendor_linked``): no upsert, so a lower-ranked division never overwrites the
master's data. The rest go out in one ``TSMSupplierXMLImport`` per 50 codes (each attempt audited once per
account it stands for), and every division's account of a code is mapped with ``source = "created_in_jaggaer"``.
The next run finds them in step 1: a vendor is created once.

Orders whose supplier cannot be resolved are ``held`` with a reason naming the supplier (retried every run);
orders that were held and now resolve go back to ``pending``. ``map_vendors`` runs both steps for one division
(what a caller without the tenant-level DAG task uses).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ml_connector.crypto import get_crypto
from ml_connector.errors import AmbiguousWriteError, RateBudgetExhausted, RejectedError, TransientError
from ml_connector.exact import odata
from ml_connector.flows.po_push import batches, model
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.store import ledger
from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog, LedgerEntry, StagedRecord, VendorMap

FLOW = "po_push"
CANDIDATE_FLOW = "po_push_supplier"  # StagedRecord.flow of the suppliers a division hands to upsert_suppliers
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


def _save_created(ctx: FlowContext, items: list[tuple[int, str, dict[str, Any]]], *, action: str, message: str) -> None:
    """Map every ``(division, account GUID, Exact account)`` to the JAGGAER supplier of its code."""
    crypto = get_crypto()
    with session_scope(ctx.engine) as session:
        existing: dict[tuple[int, str], VendorMap] = {}
        for division in {d for d, _, _ in items}:
            ids = [a for d, a, _ in items if d == division]
            existing.update({(division, a): r for a, r in known_links(session, ctx.tenant.name, division, ids).items()})
        for division, account_id, acct in items:
            code = str(acct.get("Code") or "").strip()
            vat = (acct.get("VATNumber") or "").strip() or None
            coc = (acct.get("ChamberOfCommerce") or "").strip() or None
            row = existing.get((division, account_id))
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
                    action=action,
                    division=division,
                    source_id=account_id,
                    source_ref=code,
                    target_ref=code,
                    outcome=SOURCE_CREATED,
                    message=message.format(code=code),
                    run_id=ctx.run_id,
                )
            )


# --- one supplier per code: the master division's account wins ------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """An Exact supplier account one division needs in JAGGAER."""

    division: int
    account_id: str
    account: dict[str, Any]

    @property
    def code(self) -> str:
        return str(self.account.get("Code") or "").strip()


def division_rank(ctx: FlowContext) -> dict[int, int]:
    """Whose master data wins, as ``{division: rank}`` (0 wins): ``po_push.supplier_master_division`` (default:
    the first PO division), then the other PO divisions in the tenant's order."""
    divisions = list(ctx.tenant.po_divisions)
    master = ctx.tenant.po_push.supplier_master_division
    if master is not None and master in divisions:
        divisions.remove(master)
        divisions.insert(0, master)
    return {d: i for i, d in enumerate(divisions)}


def differing_fields(a: Any, b: Any) -> list[str]:
    """The JAGGAER ``Supplier`` fields in which two accounts' suppliers differ (``address`` as one field)."""
    return [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]


def _upsert(ctx: FlowContext, groups: dict[str, list[Candidate]], outcomes: Outcomes) -> dict[str, Resolution]:
    """One ``TSMSupplierXMLImport`` per 50 codes, each code with its winning account (``groups[code][0]``); maps
    every division's account of the codes JAGGAER took. ``{code: Resolution}``."""
    out: dict[str, Resolution] = {}
    codes = sorted(groups)
    hook = ctx.jaggaer_hook()
    for start in range(0, len(codes), SUPPLIERS_PER_IMPORT):
        batch = codes[start : start + SUPPLIERS_PER_IMPORT]
        suppliers = [jaggaer_supplier(groups[code][0].account) for code in batch]
        # One audit row per account the batch stands for, in every division (Exact account GUID as source_id,
        # ERPNumber as source_ref and target_ref): each account's history shows the import that carried its code.
        # The division column is the batch's division when all its winners come from one.
        winners = {groups[code][0].division for code in batch}
        audit_ctx = ctx.audit_ctx("supplier_upsert", division=winners.pop() if len(winners) == 1 else None)
        audit_ctx.subjects = tuple((c.account_id, code, code) for code in batch for c in groups[code])
        try:
            result = hook.sync_suppliers(suppliers, audit_ctx=audit_ctx)
        except (AmbiguousWriteError, TransientError, RejectedError) as exc:
            for code in batch:
                out[code] = Resolution(
                    reason=f"creating supplier {code} in JAGGAER failed for now ({exc}); retried on the next run"
                )
            continue
        refused = {str(key).strip(): messages for key, messages in result.object_errors.items()}
        general = None if result.ok or result.object_errors else result.summary()
        created: list[tuple[int, str, dict[str, Any]]] = []
        for code in batch:
            if general is not None:
                out[code] = Resolution(reason=f"JAGGAER refused supplier {code}: {general}")
            elif code in refused:
                out[code] = Resolution(reason=f"JAGGAER refused supplier {code}: {'; '.join(refused[code])}")
            else:
                out[code] = Resolution(supplier_number=code)
                outcomes.add("vendor_created", code)
                created += [(c.division, c.account_id, c.account) for c in groups[code]]
        if created:
            _save_created(
                ctx,
                created,
                action="vendor_created",
                message="supplier {code} upserted into JAGGAER (ERPNumber {code}) and mapped",
            )
    return out


def _upserted_before(ctx: FlowContext, codes: Iterable[str]) -> dict[str, int]:
    """``{code: division}`` of codes an earlier run upserted into JAGGAER (a created map row; the best-ranked
    division that did)."""
    wanted = set(codes)
    if not wanted:
        return {}
    rank = division_rank(ctx)
    out: dict[str, int] = {}
    with session_scope(ctx.engine) as session:
        rows = session.execute(
            select(VendorMap.exact_code, VendorMap.division).where(
                VendorMap.tenant == ctx.tenant.name,
                VendorMap.source == SOURCE_CREATED,
                VendorMap.active.is_(True),
                VendorMap.exact_code.in_(sorted(wanted)),
            )
        ).all()
    for code, division in rows:
        code = (code or "").strip()
        if division is None or code not in wanted:
            continue
        best = out.get(code)
        if best is None or rank.get(division, len(rank)) < rank.get(best, len(rank)):
            out[code] = division
    return out


def upsert_candidates(
    ctx: FlowContext, candidates: list[Candidate], outcomes: Outcomes
) -> dict[tuple[int, str], Resolution]:
    """Resolve candidates across divisions: one upsert per code, the master division's data winning (module
    docstring). ``{(division, account GUID): Resolution}``."""
    rank = division_rank(ctx)
    groups: dict[str, list[Candidate]] = {}
    for c in candidates:
        groups.setdefault(c.code, []).append(c)
    for code, group in groups.items():
        group.sort(key=lambda c: (rank.get(c.division, len(rank)), c.division, c.account_id))
        winner = group[0]
        ours = jaggaer_supplier(winner.account)
        for other in group[1:]:
            fields = differing_fields(ours, jaggaer_supplier(other.account))
            if fields:
                outcomes.add(
                    "supplier_data_differs",
                    code,
                    detail=(
                        f"supplier {code}: divisions {winner.division} and {other.division} hold different "
                        f"{', '.join(fields)}; JAGGAER got division {winner.division}'s "
                        "(po_push.supplier_master_division, default the first PO division, decides)"
                    ),
                )
    before = _upserted_before(ctx, groups)
    linked: list[tuple[int, str, dict[str, Any]]] = []
    resolved_codes: dict[str, Resolution] = {}
    for code, group in list(groups.items()):
        done_by = before.get(code)
        if done_by is not None and rank.get(done_by, len(rank)) <= rank.get(group[0].division, len(rank)):
            # JAGGAER already holds this code with data of a division that ranks at least as high: link only.
            resolved_codes[code] = Resolution(supplier_number=code)
            linked += [(c.division, c.account_id, c.account) for c in group]
            outcomes.add("vendor_linked", code)
            del groups[code]
    if linked:
        _save_created(
            ctx,
            linked,
            action="vendor_linked",
            message="supplier {code} linked to the JAGGAER supplier already upserted with ERPNumber {code}",
        )
    if groups:
        resolved_codes.update(_upsert(ctx, groups, outcomes))
    return {(c.division, c.account_id): resolved_codes[c.code] for c in candidates if c.code in resolved_codes}


# --- resolving a division's suppliers -----------------------------------------------------------------------------
def _resolve_known(
    ctx: FlowContext, division: int, wanted: dict[str, dict[str, Any]], *, link: bool
) -> tuple[dict[str, Resolution], dict[str, dict[str, Any]]]:
    """Steps 1 and 2 (by supplier code) and the Exact read of step 3: ``(resolved, accounts to create)``."""
    resolved: dict[str, Resolution] = {}
    with session_scope(ctx.engine) as session:
        for account_id, row in known_links(session, ctx.tenant.name, division, list(wanted)).items():
            resolved[account_id] = _from_row(row, wanted[account_id]["label"])
    missing = {a: info for a, info in wanted.items() if a not in resolved}
    if missing and link:
        resolved.update(_link_existing(ctx, division, missing, None))
        missing = {a: info for a, info in missing.items() if a not in resolved}
    if not missing:
        return resolved, {}
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
    if link and to_create:
        resolved.update(_link_existing(ctx, division, {a: missing[a] for a in to_create}, to_create))
        to_create = {a: acct for a, acct in to_create.items() if a not in resolved}
    return resolved, to_create


def resolve_suppliers(
    ctx: FlowContext, division: int, wanted: dict[str, dict[str, Any]], outcomes: Outcomes, *, create: bool = True
) -> dict[str, Resolution]:
    """``{account GUID: Resolution}`` for ``wanted`` (``{guid: {"code", "name", "label"}}``) of one division,
    creating missing suppliers in JAGGAER unless ``create`` is false (dry run: they are reported as to be
    created)."""
    resolved, to_create = _resolve_known(ctx, division, wanted, link=create)
    if not create:
        for account_id, acct in to_create.items():
            code = str(acct.get("Code") or "").strip()
            outcomes.add("would_create_vendor", code)
            resolved[account_id] = Resolution(supplier_number=code)
        return resolved
    candidates = [Candidate(division, a, acct) for a, acct in to_create.items()]
    for (_, account_id), res in upsert_candidates(ctx, candidates, outcomes).items():
        resolved[account_id] = res
    return resolved


def want_supplier(wanted: dict[str, dict[str, Any]], payload: dict[str, Any]) -> str | None:
    """Add an order's supplier to ``wanted`` (``{guid: {"code", "name", "label"}}``); its GUID, ``None`` for an
    order that needs none (no supplier, or cancelled)."""
    sid = payload.get("supplier_id")
    if not sid or model.is_cancelled(payload):
        return None
    if sid not in wanted:
        code = model.unpadded(payload.get("supplier_code"))
        label = f"{code or sid} ({payload.get('supplier_name') or 'no name'})"
        wanted[sid] = {"code": code, "name": payload.get("supplier_name"), "label": label}
    return str(sid)


def wanted_suppliers(payloads: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    wanted: dict[str, dict[str, Any]] = {}
    for p in payloads:
        want_supplier(wanted, p)
    return wanted


def selected(ctx: FlowContext, entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """The entries the run's ``ids`` param names (all when it names none)."""
    if not ctx.params.ids:
        return entries
    wanted = {i.strip() for i in ctx.params.ids}
    return [e for e in entries if (e.source_ref or "") in wanted]


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """What the supplier steps keep of an open order: its ledger id, its supplier's GUID, whether it is held."""

    entry_id: int
    supplier_id: str | None
    held: bool


def _open_orders(ctx: FlowContext, division: int, wanted: dict[str, dict[str, Any]]) -> list[OpenOrder]:
    """The division's open orders (``pending`` and ``held``), read a chunk at a time; their suppliers are added to
    ``wanted``. Only ids and supplier GUIDs stay in memory (one string per supplier, shared by its orders)."""
    out: list[OpenOrder] = []
    states = ("pending", "held")
    for ids in batches.chunks(batches.open_ids(ctx, states, division)):
        with session_scope(ctx.engine) as session:
            for entry, payload in batches.load_chunk(session, ctx, states, ids):
                want_supplier(wanted, payload)
                sid = payload.get("supplier_id") or None
                out.append(OpenOrder(entry.id, sys.intern(str(sid)) if sid else None, entry.state == "held"))
    return out


def _apply(
    ctx: FlowContext,
    orders: list[OpenOrder],
    resolved: dict[str, Resolution],
    outcomes: Outcomes,
    *,
    only: set[str] | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Hold the orders whose supplier did not resolve; release held ones that did (or need none). ``only``: touch
    just the orders of these suppliers; ``skip``: leave the orders of these suppliers alone (decided later).
    Reads and writes only the orders that change, a chunk per transaction."""
    touch: list[int] = []
    for order in orders:
        sid = order.supplier_id
        if (only is not None and sid not in only) or (sid and sid in skip):
            continue
        res = resolved.get(sid) if sid else None
        if (res is not None and not res.ok) or order.held:
            touch.append(order.entry_id)
    by_id = {o.entry_id: o for o in orders} if touch else {}
    for ids in batches.chunks(touch):
        with session_scope(ctx.engine) as session:
            entries = session.scalars(select(LedgerEntry).where(LedgerEntry.id.in_(ids)).order_by(LedgerEntry.id))
            for entry in entries:
                if entry.state not in ("pending", "held"):
                    continue
                sid = by_id[entry.id].supplier_id
                res = resolved.get(sid) if sid else None
                if res is not None and not res.ok:
                    reason = f"order {entry.source_ref}: {res.reason}"
                    if entry.state != "held" or entry.reason != reason:
                        ledger.transition(session, entry, "held", reason=reason, run_id=ctx.run_id)
                    outcomes.add("held", entry.source_ref, detail=reason)
                elif entry.state == "held":
                    ledger.transition(session, entry, "pending", reason="supplier resolved", run_id=ctx.run_id)
                    outcomes.add("released", entry.source_ref)


# --- candidates handed from the division steps to the tenant step ------------------------------------------------
def _candidate_id(division: int, account_id: str) -> str:
    return f"{division}:{account_id}"


def stage_candidates(ctx: FlowContext, division: int, accounts: dict[str, dict[str, Any]]) -> None:
    """Replace the division's candidates with ``accounts`` (this run's). The account is encrypted: it carries the
    supplier's VAT and chamber-of-commerce numbers and e-mail, which the vendor map keeps encrypted too."""
    crypto = get_crypto()
    with session_scope(ctx.engine) as session:
        session.execute(
            StagedRecord.__table__.delete().where(
                StagedRecord.tenant == ctx.tenant.name,
                StagedRecord.flow == CANDIDATE_FLOW,
                StagedRecord.source_id.like(f"{division}:%"),
            )
        )
        for account_id, acct in sorted(accounts.items()):
            source_id = _candidate_id(division, account_id)
            sealed = crypto.encrypt(json.dumps(acct, sort_keys=True, default=str))
            session.add(
                StagedRecord(
                    tenant=ctx.tenant.name,
                    flow=CANDIDATE_FLOW,
                    source_id=source_id,
                    payload_hash=hashlib.sha256(f"{ctx.run_id}\x00{source_id}".encode()).hexdigest(),
                    payload={"division": division, "account_id": account_id, "account": sealed},
                    run_id=ctx.run_id,
                )
            )


def staged_candidates(ctx: FlowContext, divisions: Iterable[int]) -> list[Candidate]:
    """This run's candidates of ``divisions``."""
    crypto = get_crypto()
    wanted = set(divisions)
    out: list[Candidate] = []
    with session_scope(ctx.engine) as session:
        rows = session.scalars(
            select(StagedRecord.payload).where(
                StagedRecord.tenant == ctx.tenant.name,
                StagedRecord.flow == CANDIDATE_FLOW,
                StagedRecord.run_id == ctx.run_id,
            )
        )
        for payload in rows:
            division = int(payload["division"])
            if division in wanted:
                account = json.loads(crypto.decrypt(payload["account"]))
                out.append(Candidate(division, str(payload["account_id"]), account))
    return out


def _drop_candidates(ctx: FlowContext, divisions: Iterable[int]) -> None:
    with session_scope(ctx.engine) as session:
        for division in divisions:
            session.execute(
                StagedRecord.__table__.delete().where(
                    StagedRecord.tenant == ctx.tenant.name,
                    StagedRecord.flow == CANDIDATE_FLOW,
                    StagedRecord.source_id.like(f"{division}:%"),
                )
            )


# --- the stages ----------------------------------------------------------------------------------------------------
def collect_suppliers(ctx: FlowContext) -> Outcomes:
    """Division step (module docstring): resolve what the map knows, read the rest from Exact and hand the
    suppliers to create to ``upsert_suppliers``; hold the orders whose supplier cannot be used."""
    if ctx.division is None:
        raise ValueError("collect_suppliers needs a division")
    outcomes = Outcomes()
    if ctx.dry_run:
        return outcomes  # the preview (extract task) did the read-only part
    division = ctx.division
    wanted: dict[str, dict[str, Any]] = {}
    orders = _open_orders(ctx, division, wanted)
    try:
        resolved, to_create = _resolve_known(ctx, division, wanted, link=True) if wanted else ({}, {})
    except RateBudgetExhausted as spent:  # the day's share is spent (nothing sent): the unread suppliers wait
        return _wait_for_budget(ctx, division, orders, wanted, spent, outcomes)
    stage_candidates(ctx, division, to_create)
    _apply(ctx, orders, resolved, outcomes, skip=set(to_create))
    outcomes.add("vendors_checked", n=len(wanted))
    return outcomes


def _wait_for_budget(
    ctx: FlowContext,
    division: int,
    orders: list[OpenOrder],
    wanted: dict[str, dict[str, Any]],
    spent: RateBudgetExhausted,
    outcomes: Outcomes,
) -> Outcomes:
    """The suppliers the map knows resolve as usual; the orders of those that needed Exact are ``held`` with the
    pause as the reason (so the post does not take them as unmapped), counted ``waiting_for_budget`` (not
    ``held``: nobody needs to act); the next run after the reset reads them and releases the orders."""
    from ml_connector.flows import budget_plan

    line = budget_plan.po_paused(ctx, "map vendors", spent, outcomes)
    with session_scope(ctx.engine) as session:
        known = known_links(session, ctx.tenant.name, division, list(wanted))
        resolved = {a: _from_row(row, wanted[a]["label"]) for a, row in known.items()}
    waiting = set(wanted) - set(resolved)
    _apply(ctx, orders, resolved, outcomes, skip=waiting)
    touch = [o.entry_id for o in orders if o.supplier_id in waiting]
    for ids in batches.chunks(touch):
        with session_scope(ctx.engine) as session:
            entries = session.scalars(select(LedgerEntry).where(LedgerEntry.id.in_(ids)).order_by(LedgerEntry.id))
            for entry in entries:
                if entry.state not in ("pending", "held"):
                    continue
                reason = f"order {entry.source_ref}: {line}"
                if entry.reason != reason:
                    ledger.transition(session, entry, "held", reason=reason, run_id=ctx.run_id)
                outcomes.add("waiting_for_budget", entry.source_ref)
    return outcomes


def upsert_suppliers(ctx: FlowContext) -> Outcomes:
    """Tenant step (module docstring): one upsert per supplier code over every division's candidates of this run
    (only ``ctx.division``'s when set), then hold or release the orders of those suppliers."""
    outcomes = Outcomes()
    if ctx.dry_run:
        return outcomes
    divisions = [ctx.division] if ctx.division is not None else list(ctx.tenant.po_divisions)
    candidates = staged_candidates(ctx, divisions)
    if candidates:
        resolved = upsert_candidates(ctx, candidates, outcomes)
        for division in sorted({c.division for c in candidates}):
            mine = {aid: res for (d, aid), res in resolved.items() if d == division}
            _apply(ctx, _open_orders(ctx, division, {}), mine, outcomes, only=set(mine))
    _drop_candidates(ctx, divisions)
    return outcomes


def map_vendors(ctx: FlowContext) -> Outcomes:
    """Both steps for one division (``collect_suppliers`` then ``upsert_suppliers`` of that division)."""
    if ctx.division is None:
        raise ValueError("map_vendors needs a division")
    return collect_suppliers(ctx).merge(upsert_suppliers(ctx))
