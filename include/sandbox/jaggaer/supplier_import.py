"""``TSMSupplierXMLImport`` (SupplierSyncMessage 1.0): the supplier upsert keyed on ``ERPNumber``, its per-supplier
errors (406 when some were refused, the others applied) and its response document. Status codes: ``xml_import``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from lxml import etree

from sandbox.jaggaer.model import Supplier, Tenant, fmt_ts
from sandbox.jaggaer.xml_import import (
    FALSE_WORDS,
    STATUS_TEXT,
    TRUE_WORDS,
    XmlReject,
    serialize,
    sub_element,
    text,
    to_dict,
    write_header,
)

if TYPE_CHECKING:
    from sandbox.jaggaer.state import JaggaerSandbox


def supplier_response(
    status: int,
    now: datetime,
    status_text: str | None = None,
    *,
    errors: list[str] | None = None,
    supplier_errors: list[tuple[str | None, list[str]]] | None = None,
    related: str | None = None,
) -> bytes:
    root = etree.Element("SupplierSyncMessage", version="1.0")
    write_header(root, now, related)
    rm = sub_element(root, "SupplierResponseMessage")
    st = sub_element(rm, "Status")
    sub_element(st, "StatusCode", str(status))
    sub_element(st, "StatusText", status_text or STATUS_TEXT.get(status, "Error"))
    if errors:
        errs = sub_element(st, "Errors")
        for message in errors:
            sub_element(errs, "ErrorMessage", message)
    for erp, messages in supplier_errors or []:
        se = sub_element(rm, "SupplierErrors")
        ref = sub_element(se, "SupplierRef")
        sub_element(ref, "ERPNumber", erp or "")
        for message in messages:
            sub_element(se, "ErrorMessage", message)
    return serialize(root)


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    raise ValueError(value)


def _address(sup_el: etree._Element, trim: bool = False) -> dict[str, Any] | None:
    addresses = sup_el.findall("AddressList/Address")
    chosen = None
    for a in addresses:
        if (a.get("type") or "").lower() == "remitto":
            chosen = a
            break
    if chosen is None and addresses:
        chosen = addresses[0]
    if chosen is None:
        return None
    out: dict[str, Any] = {"type": chosen.get("type") or "remitto"}
    for tag, key in (
        ("AddressLine1", "addressLine1"),
        ("AddressLine2", "addressLine2"),
        ("AddressLine3", "addressLine3"),
        ("City", "city"),
        ("State", "state"),
        ("PostalCode", "postalCode"),
        ("IsoCountryCode", "isoCountryCode"),
    ):
        v = text(chosen, tag, trim)
        if v:
            out[key] = v
    return out


def _contacts(sup_el: etree._Element, trim: bool = False) -> list[dict[str, Any]]:
    out = []
    for c in sup_el.findall("ContactList/Contact"):
        d = to_dict(c, trim)
        out.append(d if isinstance(d, dict) else {"#text": d})
    return out


def sync_suppliers(sandbox: JaggaerSandbox, tenant: Tenant, root: etree._Element, now: datetime) -> tuple[int, bytes]:
    """Upsert every ``Supplier`` keyed on ``ERPNumber`` (the caller holds the lock). Raises ``XmlReject``."""
    if root.tag != "SupplierSyncMessage":
        raise XmlReject(400, [f"Unexpected root element <{root.tag}>: expected <SupplierSyncMessage>"])
    related = text(root, "Header/MessageId")
    sup_els = root.findall("SupplierRequestMessage/Supplier")
    if root.find("SupplierRequestMessage") is None or not sup_els:
        raise XmlReject(400, ["SupplierRequestMessage with at least one Supplier is required"])
    failures: list[tuple[str | None, list[str]]] = []
    completed = 0
    trim = sandbox.settings.trim_values
    for sup_el in sup_els:
        erp = text(sup_el, "ERPNumber", trim)
        problems: list[str] = []
        if not erp:
            problems.append("ERPNumber is required")
        name = text(sup_el, "Name", trim)
        existing = tenant.supplier_by_number(erp, trim) if erp else None
        if existing is None and not name:
            problems.append("Name is required for a new supplier")
        try:
            active = _bool(text(sup_el, "Active"))
        except ValueError:
            problems.append(f"Active must be true or false (got '{text(sup_el, 'Active')}')")
            active = None
        duns = text(sup_el, "DUNS", trim)
        if duns is not None and not (duns.isdigit() and len(duns) == 9):
            problems.append(f"DUNS must be 9 digits (got '{duns}')")
        if problems:
            failures.append((erp, problems))
            continue
        assert erp is not None
        vat = text(sup_el, "VatIdentificationNumber", trim)
        tax = text(sup_el, "TaxIdentificationNumber", trim)
        address = _address(sup_el, trim)
        contacts = _contacts(sup_el, trim)
        fields = {
            "name": name,
            "active": active,
            "duns": duns,
            "vat": vat,
            "taxId": tax,
            "address": address,
            "contacts": contacts or None,
        }
        if existing is None:
            sup = Supplier(
                id=tenant.new_supplier_id(),
                name=name or erp,
                supplier_number=erp,
                duns=duns,
                vat_number=vat,
                tax_id=tax,
                active=True if active is None else active,
                address=address or {},
                contacts=contacts,
                source="xml",
                created_at=now,
                updated_at=now,
            )
            tenant.suppliers[sup.id] = sup
            action = "created"
        else:
            sup = existing
            if name:
                sup.name = name
            if active is not None:
                sup.active = active
            if duns:
                sup.duns = duns
            if vat:
                sup.vat_number = vat
            if tax:
                sup.tax_id = tax
            if address:
                sup.address = address
            if contacts:
                sup.contacts = contacts
            sup.updated_at = now
            action = "updated"
        completed += 1
        tenant.supplier_sync_log.append(
            {
                "at": fmt_ts(now),
                "messageId": related,
                "erpNumber": erp,
                "supplierId": sup.id,
                "action": action,
                "fields": {k: v for k, v in fields.items() if v is not None},
            }
        )
    attempted = len(sup_els)
    counts = (
        f"(Counts: Total documents attempted={attempted}, Total documents completed={completed}. "
        f"Total documents failed={attempted - completed}.)"
    )
    if failures:
        for erp, problems in failures:
            tenant.supplier_sync_log.append(
                {"at": fmt_ts(now), "messageId": related, "erpNumber": erp, "action": "rejected", "errors": problems}
            )
        return 406, supplier_response(
            406,
            now,
            f"Not Acceptable {counts}",
            errors=[f"{attempted - completed} of {attempted} suppliers were not accepted"],
            supplier_errors=failures,
            related=related,
        )
    status = sandbox.settings.supplier_success_status
    return status, supplier_response(status, now, f"Success {counts}", related=related)
