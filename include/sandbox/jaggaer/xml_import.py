"""eProcurement XML imports: ``POXMLImport`` (PurchaseOrderMessage 2.0) here and ``TSMSupplierXMLImport``
(SupplierSyncMessage 1.0, in ``supplier_import``), their validation, their effect on a tenant, the KFS-style response
documents, and the XML helpers both use.

Status codes (HTTP status always equals ``StatusCode``):

====  =========================================================================================================
200   success (supplier sync: 200 or 202, setting ``supplier_success_status``)
400   ``Error processing XML``: well-formed but not acceptable (wrong root, missing PONumber, unknown or inactive
      supplier, duplicate PONumber, update/cancel of an unknown PO, PO line errors in ``ObjectErrors``)
401   ``Unauthorized``: missing or wrong ``Identity``/``SharedSecret``
406   supplier sync only: some suppliers refused, each in ``SupplierErrors`` (the others were applied)
429   rate limited (setting ``rate_limit_per_minute``)
500   the body is not well-formed XML (parser message in ``ErrorMessage``)
====  =========================================================================================================
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from lxml import etree

from sandbox.jaggaer.model import PurchaseOrder, Supplier, Tenant, fmt_ts, money
from sandbox.jaggaer.settings import PoCustomFields

if TYPE_CHECKING:
    from sandbox.jaggaer.state import JaggaerSandbox

_PARSER_KW: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "remove_comments": True,
    "huge_tree": False,
}

STATUS_TEXT = {
    200: "Success",
    202: "Accepted",
    400: "Error processing XML",
    401: "Unauthorized",
    406: "Not Acceptable",
    429: "Too Many Requests",
    500: "Internal Server Error",
}

TRUE_WORDS = {"true", "t", "yes", "y", "1"}
FALSE_WORDS = {"false", "f", "no", "n", "0"}


class XmlReject(Exception):
    def __init__(self, status: int, errors: list[str], line_errors: dict[str, list[str]] | None = None) -> None:
        super().__init__("; ".join(errors))
        self.status = status
        self.errors = errors
        self.line_errors = line_errors or {}


# ---------------------------------------------------------------------------------------------------------------
# helpers


def parse(body: bytes) -> etree._Element:
    if not body or not body.strip():
        raise XmlReject(500, ["Unable to parse XML document: empty request body"])
    parser = etree.XMLParser(**_PARSER_KW)
    try:
        return etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise XmlReject(500, [f"Unable to parse XML document: {exc}"]) from exc


def text(el: etree._Element | None, path: str | None = None, trim: bool = False) -> str | None:
    """The text of ``el`` (or of its descendant ``path``) exactly as sent; ``None`` when absent, empty or only
    whitespace (XML formatting). ``trim`` (setting ``trim_values``) strips the value first, as a lenient parser
    would; JAGGAER compares and stores what it was sent, so ``"              2001"`` is not ``"2001"``."""
    if el is None:
        return None
    node = el.find(path) if path else el
    if node is None or node.text is None:
        return None
    value = node.text
    if not value.strip():
        return None
    return value.strip() if trim else value


def to_dict(el: etree._Element, trim: bool = False) -> Any:
    """An element as plain data: leaves become text (as sent; whitespace-only is empty), repeated children lists,
    attributes ``@name``."""
    children = [c for c in el if isinstance(c.tag, str)]
    attrs = {f"@{k}": v for k, v in el.attrib.items()}
    if not children:
        value = text(el, trim=trim) or ""
        if attrs:
            return {**attrs, "#text": value} if value else attrs
        return value
    out: dict[str, Any] = dict(attrs)
    for c in children:
        v = to_dict(c, trim)
        if c.tag in out:
            if not isinstance(out[c.tag], list):
                out[c.tag] = [out[c.tag]]
            out[c.tag].append(v)
        else:
            out[c.tag] = v
    return out


def custom_fields(el: etree._Element, trim: bool = False) -> dict[str, str | None]:
    """``CustomFieldValueSet[@name]`` children → {name: first value}."""
    out: dict[str, str | None] = {}
    for cf in el.findall("CustomFieldValueSet"):
        name = cf.get("name") or cf.get("label")
        if not name:
            continue
        value = (
            text(cf, "CustomFieldValue/Value", trim) or text(cf, "CustomFieldValue", trim) or text(cf, "Value", trim)
        )
        out[name] = value
    return out


def unknown_custom_fields(el: etree._Element, allowed: list[str]) -> list[str]:
    """The ``CustomFieldValueSet`` names of ``el`` that the customer's configuration does not know."""
    known = set(allowed)
    out: list[str] = []
    for cf in el.findall("CustomFieldValueSet"):
        name = cf.get("name") or cf.get("label") or ""
        if name not in known and name not in out:
            out.append(name)
    return out


def decimal_or_none(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        d = Decimal(value.replace(",", ""))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def authenticate(root: etree._Element, sandbox: JaggaerSandbox) -> Tenant:
    trim = sandbox.settings.trim_values
    identity = text(root, "Header/Authentication/Identity", trim)
    secret = text(root, "Header/Authentication/SharedSecret", trim)
    if not identity or not secret:
        raise XmlReject(401, ["Authentication failed: Identity and SharedSecret are required"])
    tenant = sandbox.tenant_by_identity(identity)
    if tenant is None or tenant.shared_secret != secret:
        raise XmlReject(401, ["Authentication failed: invalid Identity or SharedSecret"])
    return tenant


def sub_element(parent: etree._Element, tag: str, value: str | None = None, **attrib: str) -> etree._Element:
    e = etree.SubElement(parent, tag, **attrib)
    if value is not None:
        e.text = value
    return e


def write_header(root: etree._Element, now: datetime, related: str | None) -> None:
    h = sub_element(root, "Header")
    sub_element(h, "MessageId", str(uuid.uuid4()))
    if related:
        sub_element(h, "RelatedMessageId", related)
    sub_element(h, "Timestamp", fmt_ts(now))


def serialize(root: etree._Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(
        root, xml_declaration=False, encoding="UTF-8", pretty_print=True
    )


# ---------------------------------------------------------------------------------------------------------------
# purchase orders


def po_response(
    status: int,
    now: datetime,
    *,
    errors: list[str] | None = None,
    line_errors: dict[str, list[str]] | None = None,
    related: str | None = None,
    po: PurchaseOrder | None = None,
) -> bytes:
    root = etree.Element("PurchaseOrderMessage", version="2.0")
    write_header(root, now, related)
    rm = sub_element(root, "ResponseMessage")
    st = sub_element(rm, "Status")
    sub_element(st, "StatusCode", str(status))
    sub_element(st, "StatusText", STATUS_TEXT.get(status, "Error"))
    if errors or line_errors:
        errs = sub_element(st, "Errors")
        for message in errors or []:
            sub_element(sub_element(errs, "Error"), "ErrorMessage", message)
        if line_errors:
            obj = sub_element(errs, "ObjectErrors")
            for linenumber, messages in line_errors.items():
                ref = sub_element(obj, "PurchaseOrderLineRef", linenumber=linenumber)
                for message in messages:
                    sub_element(sub_element(ref, "Error"), "ErrorMessage", message)
    if po is not None and status == 200:
        ref = sub_element(rm, "PurchaseOrderRef")
        sub_element(ref, "PONumber", po.po_number)
        sub_element(ref, "POId", str(po.po_id))
        sub_element(ref, "Status", po.status)
    return serialize(root)


@dataclass
class _ParsedPO:
    action: str  # new | update | cancel
    po_number: str
    header: dict[str, Any]
    supplier_keys: dict[str, str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    line_errors: dict[str, list[str]] = field(default_factory=dict)
    message_id: str | None = None
    header_field_errors: list[str] = field(default_factory=list)


def _unknown_field_message(names: list[str], allowed: list[str], where: str) -> str:
    listed = ", ".join(f"'{n}'" for n in names)
    known = ", ".join(allowed) or "none"
    noun = "field" if len(names) == 1 else "fields"
    return f"Unknown {where} custom {noun} {listed}: not configured for this customer (configured: {known})"


def _parse_po(root: etree._Element, trim: bool = False, fields: PoCustomFields | None = None) -> _ParsedPO:
    if root.tag != "PurchaseOrderMessage":
        raise XmlReject(400, [f"Unexpected root element <{root.tag}>: expected <PurchaseOrderMessage>"])
    po_el = root.find("PurchaseOrder")
    header_el = po_el.find("POHeader") if po_el is not None else None
    if po_el is None or header_el is None:
        raise XmlReject(400, ["PurchaseOrder/POHeader is required"])
    po_number = text(header_el, "PONumber", trim)
    if not po_number:
        raise XmlReject(400, ["POHeader/PONumber is required"])
    action = (header_el.get("type") or "new").strip().lower()
    if action not in {"new", "update", "cancel"}:
        raise XmlReject(400, [f"POHeader type '{header_el.get('type')}' is not supported (new, update, cancel)"])
    supplier_keys = {}
    sup_el = header_el.find("Supplier")
    if sup_el is not None:
        for tag, key in (("SupplierNumber", "SupplierNumber"), ("DUNS", "DUNS"), ("Name", "Name")):
            v = text(sup_el, tag, trim)
            if v:
                supplier_keys[key] = v
        if sup_el.get("id"):
            supplier_keys["id"] = sup_el.get("id", "")
    header = {k: v for k, v in to_dict(header_el, trim).items() if k not in {"CustomFieldValueSet"}}
    if isinstance(header, dict):
        header["CustomFields"] = custom_fields(header_el, trim)
        if header_el.get("type"):
            header.pop("@type", None)
    parsed = _ParsedPO(
        action=action,
        po_number=po_number,
        header=header,
        supplier_keys=supplier_keys,
        message_id=text(root, "Header/MessageId"),
    )
    if fields is not None:
        unknown = unknown_custom_fields(header_el, fields.header)
        if unknown:
            parsed.header_field_errors.append(_unknown_field_message(unknown, fields.header, "POHeader"))
    seen: set[str] = set()
    for idx, line_el in enumerate(po_el.findall("POLine"), start=1):
        ln_raw = line_el.get("linenumber") or ""
        if trim:
            ln_raw = ln_raw.strip()
        key = ln_raw or f"#{idx}"
        problems: list[str] = []
        if not ln_raw.isdigit() or int(ln_raw) < 1:
            problems.append("POLine linenumber must be a positive integer")
        elif ln_raw in seen:
            problems.append(f"Duplicate POLine linenumber {ln_raw}")
        seen.add(ln_raw)
        description = text(line_el, "Item/Description", trim)
        if not description:
            problems.append("Item/Description is required")
        if fields is not None:
            unknown = unknown_custom_fields(line_el, fields.line)
            if unknown:
                problems.append(_unknown_field_message(unknown, fields.line, "POLine"))
        qty_raw = text(line_el, "Quantity", trim)
        qty = decimal_or_none(qty_raw)
        if qty is None or qty <= 0:
            problems.append(f"Quantity must be a positive number (got '{qty_raw or ''}')")
        money_el = line_el.find("LineCharges/UnitPrice/Money")
        price_raw = text(money_el, trim=trim)
        price = decimal_or_none(price_raw)
        currency = money_el.get("currency") if money_el is not None else None
        if price is None or price < 0:
            problems.append(f"LineCharges/UnitPrice/Money must be a number >= 0 (got '{price_raw or ''}')")
        if not currency:
            problems.append("LineCharges/UnitPrice/Money currency attribute is required")
        if problems:
            parsed.line_errors[key] = problems
            continue
        assert qty is not None and price is not None
        parsed.lines.append(
            {
                "linenumber": int(ln_raw),
                "description": description,
                "catalogNumber": text(line_el, "Item/CatalogNumber", trim),
                "unitOfMeasure": text(line_el, "Item/ProductUnitOfMeasure", trim),
                "commodityCode": text(line_el, "Item/CommodityCode", trim),
                "quantity": qty,
                "unit_price": price,
                "currency": currency,
                "customFields": custom_fields(line_el, trim),
            }
        )
    return parsed


def _resolve_supplier(tenant: Tenant, keys: dict[str, str], trim: bool = False) -> Supplier:
    if not keys:
        raise XmlReject(400, ["POHeader/Supplier is required (SupplierNumber, DUNS or Name)"])
    if "SupplierNumber" in keys:
        found = tenant.supplier_by_number(keys["SupplierNumber"], trim)
        what = f"SupplierNumber '{keys['SupplierNumber']}'"
    elif "DUNS" in keys:
        found = tenant.supplier_by_duns(keys["DUNS"], trim)
        what = f"DUNS '{keys['DUNS']}'"
    elif "Name" in keys:
        found = tenant.supplier_by_name(keys["Name"])
        what = f"Name '{keys['Name']}'"
    else:
        raise XmlReject(400, ["POHeader/Supplier must carry SupplierNumber, DUNS or Name"])
    if found is None:
        raise XmlReject(400, [f"Supplier not found: {what}"])
    if not found.active:
        raise XmlReject(400, [f"Supplier {what} is inactive"])
    return found


def import_po(sandbox: JaggaerSandbox, tenant: Tenant, root: etree._Element, raw: bytes, now: datetime) -> bytes:
    """Apply one PurchaseOrderMessage to ``tenant`` (the caller holds the sandbox lock). Raises ``XmlReject``."""
    settings = sandbox.settings
    parsed = _parse_po(root, settings.trim_values, settings.po_fields_for(tenant.key))
    existing = tenant.purchase_orders.get(parsed.po_number)
    entry_base = {"at": fmt_ts(now), "messageId": parsed.message_id, "poNumber": parsed.po_number}
    try:
        if parsed.action == "cancel":
            if existing is None:
                raise XmlReject(400, [f"Purchase order {parsed.po_number} does not exist"])
            if existing.status == "Cancelled":
                existing.history.append({**entry_base, "action": "cancel", "result": "already cancelled"})
            else:
                existing.status = "Cancelled"
                existing.updated_at = now
                existing.history.append({**entry_base, "action": "cancel", "result": "cancelled"})
            existing.last_xml = raw.decode("utf-8", "replace")
            tenant.po_log.append({**entry_base, "action": "cancel", "status": 200})
            return po_response(200, now, related=parsed.message_id, po=existing)

        if parsed.action == "new" and existing is not None:
            message = sandbox.settings.po_duplicate_message.format(po_number=parsed.po_number)
            raise XmlReject(400, [message])
        if parsed.action == "update" and existing is None:
            raise XmlReject(400, [f"Purchase order {parsed.po_number} does not exist: cannot update"])
        if parsed.action == "update" and existing is not None and existing.status == "Cancelled":
            raise XmlReject(400, [f"Purchase order {parsed.po_number} is cancelled: cannot update"])
        supplier = _resolve_supplier(tenant, parsed.supplier_keys, settings.trim_values)
        if parsed.line_errors:
            raise XmlReject(
                400, [*parsed.header_field_errors, "One or more purchase order lines are invalid"], parsed.line_errors
            )
        if parsed.header_field_errors:
            raise XmlReject(400, parsed.header_field_errors)
        if not parsed.lines:
            raise XmlReject(400, ["PurchaseOrder must contain at least one POLine"])
        lines = sorted(parsed.lines, key=lambda ln: ln["linenumber"])
        total = sum((money(ln["quantity"] * ln["unit_price"]) for ln in lines), Decimal(0))
        summary = {"lines": len(lines), "total": str(total), "supplierId": supplier.id}
        if existing is None:
            po = PurchaseOrder(
                po_number=parsed.po_number,
                po_id=tenant.new_po_id(),
                supplier=supplier,
                status="Open",
                header=parsed.header,
                lines=lines,
                created_at=now,
                updated_at=now,
            )
            po.history.append({**entry_base, "action": "create", **summary})
            tenant.purchase_orders[po.po_number] = po
        else:
            po = existing
            before = {"lines": len(po.lines), "total": str(po.total), "supplierId": po.supplier.id}
            po.supplier = supplier
            po.header = parsed.header
            po.lines = lines
            po.updated_at = now
            po.history.append({**entry_base, "action": "update", "before": before, **summary})
        po.last_xml = raw.decode("utf-8", "replace")
        tenant.po_log.append({**entry_base, "action": "create" if existing is None else "update", "status": 200})
        return po_response(200, now, related=parsed.message_id, po=po)
    except XmlReject as rej:
        tenant.po_log.append(
            {**entry_base, "action": parsed.action, "status": rej.status, "errors": rej.errors + _flat(rej)}
        )
        raise


def _flat(rej: XmlReject) -> list[str]:
    return [f"line {k}: {m}" for k, msgs in rej.line_errors.items() for m in msgs]


# ---------------------------------------------------------------------------------------------------------------
# fault: malformed XML


def corrupt_xml(body: bytes, kind: str) -> bytes:
    """The real response ``body`` made not well-formed by an unescaped ``&`` (what the fault ``malformed_xml``
    sends): inside ``StatusText`` when there is one (``Success`` → ``Success & done``), so a tolerant parser that
    repairs the ``&`` reads the true outcome; a canned document when there is no body."""
    marker = b"</StatusText>"
    if marker in body:
        return body.replace(marker, b" & done" + marker, 1)
    end = body.rstrip().rfind(b"</")
    if end > 0:
        return body[:end] + b"<Note>Smith & Sons Ltd</Note>" + body[end:]
    return malformed_xml_body(kind)


def malformed_xml_body(kind: str) -> bytes:
    """A response as seen in the wild: an unescaped ``&`` makes it not well-formed."""
    if kind == "supplier":
        return (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<SupplierSyncMessage version="1.0"><SupplierResponseMessage>'
            b"<Status><StatusCode>200</StatusCode><StatusText>Success & done</StatusText></Status>"
            b"</SupplierResponseMessage></SupplierSyncMessage>\n"
        )
    if kind == "invoice":
        return (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<BuyerInvoiceExportMessage version="1.0"><Invoice>'
            b"<InvoiceHeader><Supplier><Name>Smith & Sons Ltd</Name></Supplier></InvoiceHeader>"
            b"</Invoice></BuyerInvoiceExportMessage>\n"
        )
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<PurchaseOrderMessage version="2.0"><ResponseMessage>'
        b"<Status><StatusCode>200</StatusCode><StatusText>Success & done</StatusText></Status>"
        b"</ResponseMessage></PurchaseOrderMessage>\n"
    )
