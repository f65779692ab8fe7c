"""JAGGAER eProcurement XML: build ``PurchaseOrderMessage`` / ``SupplierSyncMessage`` documents, parse the responses.

Documents are built with lxml's element API only (lxml escapes every text and attribute value), never by string
concatenation. Responses are parsed tolerantly: namespaces are ignored, errors are collected wherever they sit, and a
response that is not well-formed because of an unescaped ``&`` (seen in the wild) is repaired before parsing.

Element names follow docs/sandbox-jaggaer.md ("Purchase-order import", "Supplier upsert"; cu-kfs, KFS
``PurchaseOrderResponse``). Names the customer configures (the accounting custom fields) are parameters.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

from lxml import etree

__all__ = [
    "DEFAULT_ALREADY_EXISTS_PATTERN",
    "Address",
    "PoLine",
    "PurchaseOrder",
    "Supplier",
    "XmlImportResult",
    "build_po_message",
    "build_supplier_sync",
    "format_money",
    "format_quantity",
    "parse_po_response",
    "parse_supplier_response",
    "parse_xml_tolerant",
    "redact",
]

PoAction = Literal["new", "update", "cancel"]

#: What JAGGAER says when a ``PONumber`` is sent again without ``type="update"``. The wording is not documented
#: ([guess]); this matches the common phrasings. Override per connection (extra ``already_exists_pattern``).
DEFAULT_ALREADY_EXISTS_PATTERN = (
    r"already\s+exists?"
    r"|already\s+(?:been\s+)?(?:used|imported|submitted|received|processed)"
    r"|duplicate\s+(?:po\b|po\s*number|ponumber|purchase\s*order)"
    r"|(?:po\s*number|ponumber)\b.*\bnot\s+unique"
)


# ---------------------------------------------------------------------------------------------------------------
# what we send


@dataclass
class PoLine:
    line_number: int
    description: str
    quantity: Decimal
    unit_price: Decimal
    uom: str = "EA"
    item_code: str | None = None
    commodity_code: str | None = None
    gl_account: str | None = None
    cost_center: str | None = None
    need_by: date | None = None


@dataclass
class PurchaseOrder:
    po_number: str
    action: PoAction
    supplier_number: str
    currency: str
    order_date: date
    lines: list[PoLine]
    description: str | None = None
    your_ref: str | None = None
    bill_to: str | None = None
    ship_to: str | None = None
    payment_terms: str | None = None
    custom_fields: dict[str, str] = field(default_factory=dict)


@dataclass
class Address:
    line1: str | None = None
    line2: str | None = None
    line3: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    type: str = "remitto"


@dataclass
class Supplier:
    erp_number: str
    name: str
    active: bool = True
    vat_number: str | None = None
    tax_id: str | None = None
    duns: str | None = None
    email: str | None = None
    address: Address | None = None


# ---------------------------------------------------------------------------------------------------------------
# formatting


def _check_finite(value: Decimal, what: str) -> Decimal:
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value}")
    return value


def format_money(value: Decimal | int | str) -> str:
    """A money amount as plain decimal text: at least two decimals, never an exponent, never rounded.

    ``Decimal("12.5")`` → ``"12.50"``; ``Decimal("0.1234")`` → ``"0.1234"``; ``Decimal("1E+3")`` → ``"1000.00"``.
    (String operations only: no arithmetic context can round a long value.)
    """
    text = f"{_check_finite(Decimal(value), 'money'):f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def format_quantity(value: Decimal | int | str) -> str:
    """A quantity as plain decimal text without trailing zeros or exponent (``Decimal("2.500")`` → ``"2.5"``)."""
    text = f"{_check_finite(Decimal(value), 'quantity'):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _timestamp(ts: datetime | None) -> str:
    ts = ts or datetime.now(UTC)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------------------------------------------
# building


def _sub(parent: etree._Element, tag: str, value: str | None = None, **attrib: str) -> etree._Element:
    el = etree.SubElement(parent, tag, {k: v for k, v in attrib.items() if v is not None})
    if value is not None:
        el.text = value
    return el


def _opt(parent: etree._Element, tag: str, value: str | None) -> None:
    if value is not None and str(value) != "":
        _sub(parent, tag, str(value))


def _custom_field(parent: etree._Element, name: str, value: str) -> None:
    cf = _sub(parent, "CustomFieldValueSet", name=name)
    _sub(_sub(cf, "CustomFieldValue"), "Value", value)


def _header(root: etree._Element, identity: str, shared_secret: str, message_id: str | None, ts: datetime | None):
    if not identity or not shared_secret:
        raise ValueError("XML Identity and SharedSecret are both required")
    header = _sub(root, "Header")
    _sub(header, "MessageId", message_id or str(uuid.uuid4()))
    _sub(header, "Timestamp", _timestamp(ts))
    auth = _sub(header, "Authentication")
    _sub(auth, "Identity", identity)
    _sub(auth, "SharedSecret", shared_secret)


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def build_po_message(
    po: PurchaseOrder,
    identity: str,
    shared_secret: str,
    message_id: str | None = None,
    timestamp: datetime | None = None,
    *,
    gl_field: str = "GLAccount",
    cost_center_field: str = "CostCenter",
) -> bytes:
    """``PurchaseOrderMessage version="2.0"`` for one purchase order (``POXMLImport``).

    ``po.action`` ``update``/``cancel`` set ``POHeader type=…``; ``new`` sends no type attribute. GL account and cost
    centre travel as line custom fields named ``gl_field`` / ``cost_center_field`` (customer configuration).
    """
    if po.action not in ("new", "update", "cancel"):
        raise ValueError(f"unknown PO action {po.action!r} (new, update, cancel)")
    if not po.po_number:
        raise ValueError("PONumber is required")
    root = etree.Element("PurchaseOrderMessage", version="2.0")
    _header(root, identity, shared_secret, message_id, timestamp)
    order = _sub(root, "PurchaseOrder")
    head = _sub(order, "POHeader", type=None if po.action == "new" else po.action)
    _sub(head, "PONumber", po.po_number)
    _sub(head, "OrderDate", po.order_date.isoformat())
    _opt(head, "Description", po.description)
    _opt(head, "ExternalReference", po.your_ref)
    supplier = _sub(head, "Supplier")
    _sub(supplier, "SupplierNumber", po.supplier_number)
    if po.bill_to:
        _sub(_sub(head, "BillTo"), "AddressCode", po.bill_to)
    if po.ship_to:
        _sub(_sub(head, "ShipTo"), "AddressCode", po.ship_to)
    if po.payment_terms:
        _sub(_sub(head, "PaymentInfo"), "Terms", po.payment_terms)
    for name, value in po.custom_fields.items():
        _custom_field(head, name, str(value))
    seen: set[int] = set()
    for line in po.lines:
        if line.line_number in seen:
            raise ValueError(f"duplicate PO line number {line.line_number}")
        seen.add(line.line_number)
        el = _sub(order, "POLine", linenumber=str(int(line.line_number)))
        item = _sub(el, "Item")
        _sub(item, "Description", line.description)
        _opt(item, "CatalogNumber", line.item_code)
        _sub(item, "ProductUnitOfMeasure", line.uom or "EA")
        _opt(item, "CommodityCode", line.commodity_code)
        _sub(el, "Quantity", format_quantity(line.quantity))
        price = _sub(_sub(el, "LineCharges"), "UnitPrice")
        _sub(price, "Money", format_money(line.unit_price), currency=po.currency)
        if line.need_by is not None:
            _sub(el, "NeedByDate", line.need_by.isoformat())
        if line.gl_account:
            _custom_field(el, gl_field, line.gl_account)
        if line.cost_center:
            _custom_field(el, cost_center_field, line.cost_center)
    return _serialize(root)


def build_supplier_sync(
    suppliers: list[Supplier],
    identity: str,
    shared_secret: str,
    message_id: str | None = None,
    timestamp: datetime | None = None,
) -> bytes:
    """``SupplierSyncMessage version="1.0"`` upserting every supplier (keyed on ``ERPNumber``).

    An empty list gives a message without ``Supplier`` elements: it creates nothing (``test_connection`` uses it to
    check the XML credentials).
    """
    root = etree.Element("SupplierSyncMessage", version="1.0")
    _header(root, identity, shared_secret, message_id, timestamp)
    request = _sub(root, "SupplierRequestMessage")
    for s in suppliers:
        if not s.erp_number:
            raise ValueError("Supplier.erp_number is required")
        el = _sub(request, "Supplier")
        _sub(el, "ERPNumber", s.erp_number)
        _sub(el, "Name", s.name)
        _sub(el, "Active", "true" if s.active else "false")
        _opt(el, "VatIdentificationNumber", s.vat_number)
        _opt(el, "TaxIdentificationNumber", s.tax_id)
        _opt(el, "DUNS", s.duns)
        if s.address is not None:
            a = s.address
            addr = _sub(_sub(el, "AddressList"), "Address", type=a.type or "remitto")
            _opt(addr, "AddressLine1", a.line1)
            _opt(addr, "AddressLine2", a.line2)
            _opt(addr, "AddressLine3", a.line3)
            _opt(addr, "City", a.city)
            _opt(addr, "State", a.state)
            _opt(addr, "PostalCode", a.postal_code)
            _opt(addr, "IsoCountryCode", a.country)
        if s.email:
            contact = _sub(_sub(el, "ContactList"), "Contact", type="primary")
            _sub(contact, "Email", s.email)
    return _serialize(root)


# ---------------------------------------------------------------------------------------------------------------
# redaction

_SECRET_RE = re.compile(rb"(<(?:[\w.-]+:)?SharedSecret\b[^>]*>)(.*?)(</(?:[\w.-]+:)?SharedSecret\s*>)", re.S | re.I)


def redact(xml_bytes: bytes | str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """The document as text with every ``SharedSecret`` value (and each of ``secrets``, raw or XML-escaped)
    replaced by ``***``. Works on documents that are not well-formed, too."""
    raw = xml_bytes.encode("utf-8") if isinstance(xml_bytes, str) else bytes(xml_bytes)
    raw = _SECRET_RE.sub(rb"\1***\3", raw)
    out = raw.decode("utf-8", "replace")
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, _xml_escape(secret)}:
            out = out.replace(form, "***")
    return out


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# ---------------------------------------------------------------------------------------------------------------
# parsing

_BARE_AMP = re.compile(rb"&(?!(?:[A-Za-z_][\w.-]*|#[0-9]+|#x[0-9A-Fa-f]+);)")
_PARSER_KW = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}


def _strip_ns(root: etree._Element) -> etree._Element:
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def parse_xml_tolerant(body: bytes | str) -> etree._Element | None:
    """Parse a response document; repair unescaped ``&`` first if needed, then fall back to lxml's recovering
    parser. ``None`` when nothing usable is in ``body``."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
    if not raw.strip():
        return None
    for candidate in (raw, _BARE_AMP.sub(b"&amp;", raw)):
        try:
            return _strip_ns(etree.fromstring(candidate, etree.XMLParser(**_PARSER_KW)))
        except etree.XMLSyntaxError:
            continue
    try:
        root = etree.fromstring(_BARE_AMP.sub(b"&amp;", raw), etree.XMLParser(recover=True, **_PARSER_KW))
    except etree.XMLSyntaxError:
        return None
    return _strip_ns(root) if root is not None else None


@dataclass
class XmlImportResult:
    """The outcome of one XML import as JAGGAER reported it."""

    ok: bool
    status_code: int
    status_text: str
    errors: list[str] = field(default_factory=list)
    line_errors: dict[int, list[str]] = field(default_factory=dict)
    object_errors: dict[str, list[str]] = field(default_factory=dict)
    already_exists: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    #: False when the body held no ``Status`` we could read (the fields then come from the HTTP status alone).
    parsed: bool = True
    #: JAGGAER's id of the imported object when the response names one (``PurchaseOrderRef/POId``).
    target_id: str | None = None

    @property
    def all_errors(self) -> list[str]:
        """Every message, flattened (for logs, audit rows, quarantine reasons)."""
        out = list(self.errors)
        out += [f"line {n}: {m}" for n, msgs in sorted(self.line_errors.items()) for m in msgs]
        out += [f"{k}: {m}" for k, msgs in self.object_errors.items() for m in msgs]
        return out

    def summary(self) -> str:
        head = f"{self.status_code} {self.status_text}".strip()
        errors = self.all_errors
        return f"{head}: {'; '.join(errors)}" if errors else head


def _text(el: etree._Element | None) -> str:
    if el is None:
        return ""
    return " ".join("".join(el.itertext()).split())


def _first(root: etree._Element, tag: str) -> etree._Element | None:
    return next(root.iter(tag), None)


def _ancestor(el: etree._Element, tags: tuple[str, ...]) -> etree._Element | None:
    parent = el.getparent()
    while parent is not None:
        if parent.tag in tags:
            return parent
        parent = parent.getparent()
    return None


_COUNT_RE = re.compile(r"([A-Za-z][A-Za-z ]*?)\s*=\s*(\d+)")


def _counts(status_text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in _COUNT_RE.findall(status_text):
        words = key.split()
        if words:
            out[words[-1].lower()] = int(value)
    return out


def _status_code(value: str, fallback: int) -> int:
    m = re.search(r"\d{3}", value)
    return int(m.group(0)) if m else fallback


_LINE_REFS = ("PurchaseOrderLineRef", "POLineRef", "LineRef")
_OBJECT_REFS = ("SupplierErrors", "SupplierError", "ObjectError")


def _parse(
    body: bytes | str,
    http_status: int,
    ok_codes: tuple[int, ...],
    ok_words: tuple[str, ...],
    already_exists_pattern: str | re.Pattern[str] | None,
) -> XmlImportResult:
    root = parse_xml_tolerant(body)
    status_el = None
    if root is not None:
        status_el = next((s for s in root.iter("Status") if s.find("StatusCode") is not None), None)
    if status_el is None:
        snippet = redact(body if isinstance(body, bytes | str) else b"")[:500].strip()
        return XmlImportResult(
            ok=False,
            status_code=http_status,
            status_text=f"HTTP {http_status} without a readable Status",
            errors=[snippet] if snippet else [],
            parsed=False,
        )
    assert root is not None
    code = _status_code(_text(status_el.find("StatusCode")), http_status)
    status_text = _text(status_el.find("StatusText"))
    errors: list[str] = []
    line_errors: dict[int, list[str]] = {}
    object_errors: dict[str, list[str]] = {}
    for msg_el in root.iter("ErrorMessage"):
        message = _text(msg_el)
        if not message:
            continue
        line_ref = _ancestor(msg_el, _LINE_REFS)
        if line_ref is not None:
            raw_ln = (line_ref.get("linenumber") or line_ref.get("lineNumber") or "").strip()
            if raw_ln.isdigit():
                line_errors.setdefault(int(raw_ln), []).append(message)
            else:
                object_errors.setdefault(f"line {raw_ln or '?'}", []).append(message)
            continue
        obj = _ancestor(msg_el, _OBJECT_REFS)
        if obj is not None:
            key = _text(_first(obj, "ERPNumber")) or _text(_first(obj, "SupplierNumber")) or "?"
            object_errors.setdefault(key, []).append(message)
            continue
        errors.append(message)
    first_word = (re.findall(r"[A-Za-z]+", status_text) or [""])[0].lower()
    # Success is what Status says; messages that come with a success are kept (warnings), not turned into failure:
    # calling a PO that JAGGAER created "failed" would strand it.
    ok = code in ok_codes and first_word in ok_words
    already = False
    if already_exists_pattern is not None and not ok:
        pattern = (
            already_exists_pattern
            if isinstance(already_exists_pattern, re.Pattern)
            else re.compile(already_exists_pattern, re.I)
        )
        already = any(pattern.search(m) for m in errors)
    target_id = _text(_first(root, "POId")) or None
    return XmlImportResult(
        ok=ok,
        status_code=code,
        status_text=status_text,
        errors=errors,
        line_errors=line_errors,
        object_errors=object_errors,
        already_exists=already,
        counts=_counts(status_text),
        parsed=True,
        target_id=target_id,
    )


def parse_po_response(
    body: bytes | str,
    http_status: int,
    *,
    already_exists_pattern: str | re.Pattern[str] | None = DEFAULT_ALREADY_EXISTS_PATTERN,
) -> XmlImportResult:
    """A ``POXMLImport`` response. ``ok`` needs StatusCode 200 and a StatusText starting with "Success"
    (any case). ``already_exists`` is set when a general error matches ``already_exists_pattern``."""
    return _parse(body, http_status, (200,), ("success",), already_exists_pattern)


def parse_supplier_response(body: bytes | str, http_status: int) -> XmlImportResult:
    """A ``TSMSupplierXMLImport`` response: ``ok`` for StatusCode 200/202 with StatusText "Success …" (or
    "Accepted" on 202); ``counts`` from "(Counts: Total documents attempted=1, …)"; per-supplier errors in
    ``object_errors`` keyed by ERPNumber (a 406 applied the suppliers not listed there)."""
    return _parse(body, http_status, (200, 202), ("success", "accepted"), None)
