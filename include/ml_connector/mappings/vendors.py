"""The vendor map: JAGGAER vendors ↔ Exact supplier accounts, per tenant and Exact division.

A link is found, in order: a ``VendorMap`` row for the JAGGAER vendor id; a row an admin made by JAGGAER supplier
number (no vendor id yet); then a match against Exact's supplier list on the tenant's ``vendor_match.keys``:

``supplier_number``  JAGGAER supplier number == Exact account ``Code`` (Exact pads codes to 18 characters)
``vat_number``       VAT numbers equal, ignoring spaces, dots and case
``coc_number``       chamber-of-commerce numbers equal, same normalisation
``name``             names equal, ignoring case and repeated spaces

A key that matches more than one Exact supplier is not a match (an admin must decide). A match is stored
(``source = matched:<key>``) so later runs need no look-up.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ml_connector.crypto import get_crypto
from ml_connector.store.models import VendorMap

VENDOR_KEYS: tuple[str, ...] = ("supplier_number", "vat_number", "coc_number", "name")
_ID_CHARS = re.compile(r"[\s.\-/]")


def norm_id(value: str | None) -> str | None:
    """VAT / chamber-of-commerce / code normalisation: no spaces, dots, dashes or slashes; upper case."""
    if value is None:
        return None
    out = _ID_CHARS.sub("", str(value)).upper()
    return out or None


def norm_name(value: str | None) -> str | None:
    if value is None:
        return None
    out = " ".join(str(value).split()).casefold()
    return out or None


def norm_code(value: str | None) -> str | None:
    """Exact account codes are right-aligned in 18 characters: compare them stripped."""
    if value is None:
        return None
    out = str(value).strip()
    return out or None


@dataclass(frozen=True)
class JaggaerVendor:
    """What is known of a JAGGAER vendor (VAT/CoC come from its company profile, when read)."""

    id: str
    name: str
    supplier_number: str | None = None
    vat_number: str | None = None
    coc_number: str | None = None
    email: str | None = None

    def label(self) -> str:
        return f"JAGGAER vendor {self.name!r} (id {self.id})"


@dataclass(frozen=True)
class ExactSupplier:
    id: str
    code: str | None  # stripped
    name: str | None
    vat_number: str | None = None
    coc_number: str | None = None
    email: str | None = None
    blocked: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ExactSupplier:
        return cls(
            id=str(row.get("ID")),
            code=norm_code(row.get("Code")),
            name=row.get("Name"),
            vat_number=row.get("VATNumber") or None,
            coc_number=row.get("ChamberOfCommerce") or None,
            email=row.get("Email") or None,
            blocked=bool(row.get("Blocked") or False),
        )


ACCOUNT_SELECT = "ID,Code,Name,VATNumber,ChamberOfCommerce,Email,Blocked"


@dataclass
class SupplierIndex:
    """Exact's suppliers of one division, indexed by every match key."""

    suppliers: list[ExactSupplier] = field(default_factory=list)
    by_key: dict[str, dict[str, list[ExactSupplier]]] = field(default_factory=dict)
    by_id: dict[str, ExactSupplier] = field(default_factory=dict)

    @classmethod
    def build(cls, rows: Iterable[Mapping[str, Any]]) -> SupplierIndex:
        index = cls()
        for row in rows:
            index.add(ExactSupplier.from_row(row))
        return index

    def add(self, supplier: ExactSupplier) -> None:
        self.suppliers.append(supplier)
        self.by_id[supplier.id.lower()] = supplier
        keys = {
            "supplier_number": norm_code(supplier.code),
            "vat_number": norm_id(supplier.vat_number),
            "coc_number": norm_id(supplier.coc_number),
            "name": norm_name(supplier.name),
        }
        for key, value in keys.items():
            if value:
                self.by_key.setdefault(key, defaultdict(list))[value].append(supplier)

    def find(self, key: str, value: str | None) -> list[ExactSupplier]:
        if value is None:
            return []
        normalized = {
            "supplier_number": norm_code,
            "vat_number": norm_id,
            "coc_number": norm_id,
            "name": norm_name,
        }[key](value)
        if not normalized:
            return []
        return list(self.by_key.get(key, {}).get(normalized, []))

    def by_code(self, code: str | None) -> ExactSupplier | None:
        found = self.find("supplier_number", code)
        return found[0] if len(found) == 1 else None


def vendor_value(vendor: JaggaerVendor, key: str) -> str | None:
    return {
        "supplier_number": vendor.supplier_number,
        "vat_number": vendor.vat_number,
        "coc_number": vendor.coc_number,
        "name": vendor.name,
    }[key]


@dataclass(frozen=True)
class Match:
    supplier: ExactSupplier
    key: str


def match_vendor(
    vendor: JaggaerVendor,
    index: SupplierIndex,
    keys: Sequence[str],
    enrich: Callable[[], JaggaerVendor] | None = None,
) -> tuple[Match | None, list[str]]:
    """The first key (in the configured order) that names exactly one Exact supplier. ``enrich`` is called once,
    when a key needs a value the vendor lacks (VAT/CoC numbers come from a JAGGAER look-up that costs a call).
    Returns the match and notes on keys that were ambiguous (more than one supplier)."""
    notes: list[str] = []
    enriched = enrich is None
    for key in keys:
        value = vendor_value(vendor, key)
        if value is None and not enriched:
            vendor = enrich()  # type: ignore[misc]
            enriched = True
            value = vendor_value(vendor, key)
        found = index.find(key, value)
        if len(found) == 1:
            return Match(found[0], key), notes
        if len(found) > 1:
            codes = ", ".join(sorted(s.code or s.id for s in found))
            notes.append(f"{key} matches {len(found)} Exact suppliers ({codes})")
    return None, notes


# ---------------------------------------------------------------------------------------------------------------
# the stored map


def find_link(session: Session, tenant: str, division: int, vendor: JaggaerVendor) -> VendorMap | None:
    """The active map row for this vendor: by JAGGAER vendor id, else an admin row by supplier number."""
    row = session.scalar(
        select(VendorMap).where(
            VendorMap.tenant == tenant,
            VendorMap.division == division,
            VendorMap.jaggaer_supplier_id == vendor.id,
            VendorMap.active.is_(True),
        )
    )
    if row is not None:
        return row
    if vendor.supplier_number:
        row = session.scalar(
            select(VendorMap).where(
                VendorMap.tenant == tenant,
                VendorMap.division == division,
                VendorMap.jaggaer_supplier_id.is_(None),
                VendorMap.jaggaer_supplier_number == vendor.supplier_number,
                VendorMap.active.is_(True),
            )
        )
    return row


def link_for_account(session: Session, tenant: str, division: int, account_id: str) -> VendorMap | None:
    return session.scalar(
        select(VendorMap).where(
            VendorMap.tenant == tenant,
            VendorMap.division == division,
            VendorMap.exact_account_id == account_id,
        )
    )


def save_link(
    session: Session,
    tenant: str,
    division: int,
    vendor: JaggaerVendor,
    supplier: ExactSupplier,
    source: str,
    row: VendorMap | None = None,
) -> VendorMap:
    """Create or complete the map row linking ``vendor`` to ``supplier``."""
    crypto = get_crypto()
    if row is None:
        row = VendorMap(tenant=tenant, division=division, source=source, active=True)
        session.add(row)
    row.jaggaer_supplier_id = vendor.id
    row.jaggaer_supplier_number = row.jaggaer_supplier_number or vendor.supplier_number
    row.exact_account_id = supplier.id
    row.exact_code = supplier.code or row.exact_code
    row.name = row.name or vendor.name or supplier.name
    vat = vendor.vat_number or supplier.vat_number
    if vat and not row.vat_number:
        row.vat_number = vat
        row.vat_bidx = crypto.blind_index(vat)
    coc = vendor.coc_number or supplier.coc_number
    if coc and not row.coc_number:
        row.coc_number = coc
        row.coc_bidx = crypto.blind_index(coc)
    session.flush()
    return row


def set_link(
    session: Session,
    *,
    tenant: str,
    division: int,
    jaggaer_id: str | None,
    jaggaer_number: str | None = None,
    exact_code: str | None = None,
    exact_account_id: str | None = None,
    name: str | None = None,
    vat_number: str | None = None,
    coc_number: str | None = None,
    email: str | None = None,
    source: str = "admin",
) -> VendorMap:
    """Admin link (CLI / import): replaces whatever this JAGGAER vendor was linked to in this division.

    The Exact side may be given by code only; the invoice poll fills in the account GUID on its next run."""
    if not jaggaer_id and not jaggaer_number:
        raise ValueError("name the JAGGAER vendor: its id or its supplier number")
    if not exact_code and not exact_account_id:
        raise ValueError("name the Exact supplier: its account code or its account ID (GUID)")
    crypto = get_crypto()
    query = select(VendorMap).where(VendorMap.tenant == tenant, VendorMap.division == division)
    if jaggaer_id:
        row = session.scalar(query.where(VendorMap.jaggaer_supplier_id == jaggaer_id))
    else:
        row = session.scalar(
            query.where(VendorMap.jaggaer_supplier_id.is_(None), VendorMap.jaggaer_supplier_number == jaggaer_number)
        )
    if exact_account_id:
        other = link_for_account(session, tenant, division, exact_account_id)
        if other is not None and other is not row:
            code_of = norm_code(exact_code) or other.exact_code
            raise ValueError(
                f"Exact account {exact_account_id}{f' (supplier code {code_of})' if code_of else ''} is already "
                f"linked to JAGGAER vendor {other.jaggaer_supplier_id or other.jaggaer_supplier_number}"
                f"{f' ({other.name})' if other.name else ''} in division {division}; delete that link first"
            )
    wanted_code = norm_code(exact_code)
    if wanted_code:
        # one Exact supplier, one JAGGAER vendor per division (the docs promise it; a code-only link has no GUID yet)
        for other in session.scalars(
            select(VendorMap).where(
                VendorMap.tenant == tenant, VendorMap.division == division, VendorMap.exact_code == wanted_code
            )
        ):
            if other is not row:
                raise ValueError(
                    f"Exact account {wanted_code} (supplier code) is already linked to JAGGAER vendor "
                    f"{other.jaggaer_supplier_id or other.jaggaer_supplier_number}"
                    f"{f' ({other.name})' if other.name else ''} in division {division}; delete that link first"
                )
    if row is None:
        row = VendorMap(tenant=tenant, division=division)
        session.add(row)
    row.jaggaer_supplier_id = jaggaer_id or row.jaggaer_supplier_id
    row.jaggaer_supplier_number = jaggaer_number or row.jaggaer_supplier_number
    code = norm_code(exact_code)
    if code is not None and code != row.exact_code:
        # a new Exact code: its GUID is looked up again unless given
        row.exact_account_id = None
    row.exact_code = code or row.exact_code
    row.exact_account_id = exact_account_id or row.exact_account_id
    row.name = name or row.name
    if vat_number is not None:
        row.vat_number = vat_number or None
        row.vat_bidx = crypto.blind_index(vat_number) if vat_number else None
    if coc_number is not None:
        row.coc_number = coc_number or None
        row.coc_bidx = crypto.blind_index(coc_number) if coc_number else None
    if email is not None:
        row.email = email or None
    row.source = source
    row.active = True
    session.flush()
    return row


def delete_link(session: Session, *, tenant: str, division: int, jaggaer_id: str) -> bool:
    row = session.scalar(
        select(VendorMap).where(
            VendorMap.tenant == tenant,
            VendorMap.division == division,
            VendorMap.jaggaer_supplier_id == jaggaer_id,
        )
    )
    if row is None:
        row = session.scalar(
            select(VendorMap).where(
                VendorMap.tenant == tenant,
                VendorMap.division == division,
                VendorMap.jaggaer_supplier_id.is_(None),
                VendorMap.jaggaer_supplier_number == jaggaer_id,
            )
        )
    if row is None:
        return False
    session.delete(row)
    return True


def links_by_vat(session: Session, tenant: str, vat_number: str) -> list[VendorMap]:
    """Map rows whose (encrypted) VAT number equals ``vat_number`` (through the blind index)."""
    bidx = get_crypto().blind_index(vat_number)
    return list(session.scalars(select(VendorMap).where(VendorMap.tenant == tenant, VendorMap.vat_bidx == bidx)))


#: Looks an Exact supplier up in a division by code (``code``) or account ID (``account_id``); raises when Exact
#: cannot be asked (no token chain, network, refusal).
SupplierLookup = Callable[[int, str | None, str | None], ExactSupplier | None]


def check_exact_supplier(
    engine: Engine,
    lookup: SupplierLookup,
    *,
    tenant: str,
    division: int,
    code: str | None,
    account_id: str | None,
) -> tuple[ExactSupplier | None, str | None]:
    """Check the Exact side of a link before it is saved: ``(supplier, None)`` when Exact has the supplier (its
    account ID fills in a code-only link), else ``(None, what is wrong and what to do)``.

    When Exact cannot be asked, a supplier a run has already read from Exact (a stored link in this division
    with that code or ID and its account ID) is accepted; anything else is refused with the reason."""
    code = norm_code(code)
    named = f"code {code!r}" if code else f"account ID {account_id}"
    try:
        found = lookup(division, code, account_id)
    except Exception as exc:  # any failure to ask Exact: fall back to what runs have read
        query = select(VendorMap).where(
            VendorMap.tenant == tenant, VendorMap.division == division, VendorMap.exact_account_id.is_not(None)
        )
        query = (
            query.where(VendorMap.exact_code == code) if code else query.where(VendorMap.exact_account_id == account_id)
        )
        from ml_connector.store.db import session_scope

        with session_scope(engine) as session:  # not held while Exact is asked (the token chain writes)
            known = session.scalars(query).first()
            if known is not None:
                return ExactSupplier(id=str(known.exact_account_id), code=known.exact_code, name=known.name), None
        return None, (
            f"could not check the Exact supplier with {named} in division {division}: Exact could not be asked "
            f"({exc}) and no run has read that supplier yet. Nothing was saved: check the tenant's Exact "
            f"connection (/ml-connector/exact/connect?tenant={tenant}, or `mlc status --tenant {tenant}`), then "
            "save again"
        )
    if found is None:
        return None, (
            f"Exact has no supplier with {named} in division {division} (looked up in Exact just now). Nothing was "
            "saved: check the code in Exact (Purchase > Suppliers; the code, not the name), or create the supplier "
            "there first, then save again"
        )
    if code and account_id and found.id.lower() != account_id.lower():
        return None, (
            f"Exact supplier code {code!r} in division {division} is account {found.id}, not {account_id}: give "
            "one of the two, or both of the same supplier"
        )
    return found, None
