"""CSV export and import of the vendor map and the code maps.

Import is all or nothing: every row is checked first and every problem is reported with its row number (the
header is row 1) and column; only a file without problems is written, in one transaction.

Vendor map columns (``VENDOR_COLUMNS``)::

    division,jaggaer_supplier_id,jaggaer_supplier_number,exact_code,exact_account_id,name,vat_number,coc_number,
    email,source,active

A row needs ``division``, one of ``jaggaer_supplier_id``/``jaggaer_supplier_number`` and one of
``exact_code``/``exact_account_id``. VAT and chamber-of-commerce numbers and e-mail addresses are stored encrypted;
the export writes them in clear (it is meant for the admin who owns the data), or blanks them with
``redact=True``.

Code map columns (``CODE_COLUMNS``): ``kind,source_value,target_value,note``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from ml_connector.csvsafe import read_table, writer
from ml_connector.mappings.codes import KINDS, normalize_source, validate_target
from ml_connector.mappings.vendors import norm_code, set_link
from ml_connector.store.models import CodeMap, VendorMap

VENDOR_COLUMNS = (
    "division",
    "jaggaer_supplier_id",
    "jaggaer_supplier_number",
    "exact_code",
    "exact_account_id",
    "name",
    "vat_number",
    "coc_number",
    "email",
    "source",
    "active",
)
CODE_COLUMNS = ("kind", "source_value", "target_value", "note")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


class ImportProblems(ValueError):
    """The file was not imported; ``problems`` lists every problem (``row N, column C: ...``)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    #: one line per row written (``vendor_label`` / ``kind 'source' -> 'target'``), no sensitive values
    changed: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.created + self.updated


# ---------------------------------------------------------------------------------------------------------------
# export


def export_vendors(session: Session, tenant: str, out: TextIO, *, redact: bool = False) -> int:
    csv_out = writer(out)
    csv_out.writerow(VENDOR_COLUMNS)
    rows = session.scalars(
        select(VendorMap).where(VendorMap.tenant == tenant).order_by(VendorMap.division, VendorMap.id)
    ).all()
    for row in rows:
        csv_out.writerow(
            [
                row.division,
                row.jaggaer_supplier_id or "",
                row.jaggaer_supplier_number or "",
                row.exact_code or "",
                row.exact_account_id or "",
                row.name or "",
                "" if redact else (row.vat_number or ""),
                "" if redact else (row.coc_number or ""),
                "" if redact else (row.email or ""),
                row.source or "",
                "true" if row.active else "false",
            ]
        )
    return len(rows)


def export_codes(session: Session, tenant: str, out: TextIO) -> int:
    csv_out = writer(out)
    csv_out.writerow(CODE_COLUMNS)
    rows = session.scalars(
        select(CodeMap).where(CodeMap.tenant == tenant).order_by(CodeMap.kind, CodeMap.source_value)
    ).all()
    for row in rows:
        csv_out.writerow([row.kind, row.source_value, row.target_value, row.note or ""])
    return len(rows)


# ---------------------------------------------------------------------------------------------------------------
# import


def _read(
    text: str, columns: tuple[str, ...], required: Iterable[str]
) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """Rows as ``{column: stripped value}`` and every problem; strict (``ml_connector.csvsafe.read_table``): an
    unterminated quote, a value running over lines or a row whose number of values is not the header's are
    errors naming the row."""
    table, structure = read_table(text)
    if not table:
        if structure:
            return [], structure
        return [], ["row 1: the file is empty (expected a header: " + ",".join(columns) + ")"]
    (_, header), records = table[0], table[1:]
    header = [h.strip().lower() for h in header]
    problems: list[str] = []
    unknown = [h for h in header if h and h not in columns]
    for name in unknown:
        problems.append(f"row 1, column {name!r}: unknown column (known: {', '.join(columns)})")
    for name in required:
        if name not in header:
            problems.append(f"row 1: column {name!r} is missing")
    duplicates = {h for h in header if header.count(h) > 1 and h}
    for name in sorted(duplicates):
        problems.append(f"row 1, column {name!r}: appears more than once")
    problems.extend(structure)
    rows = [(number, {h: raw[i].strip() for i, h in enumerate(header) if h}) for number, raw in records]
    return rows, problems


def _bool(value: str) -> bool | None:
    if value == "":
        return True
    folded = value.lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    return None


def check_vendor_row(
    row: Mapping[str, str], divisions: Iterable[int] | None = None
) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """Check one vendor-map row on its own (keys: ``VENDOR_COLUMNS``, values stripped; a missing key is empty).

    Returns the keyword arguments :func:`~ml_connector.mappings.vendors.set_link` takes plus ``active``, and every
    problem as ``(column, what is wrong)``. The values are ``None`` when the division cannot be read. Used by the
    CSV import and by the mappings page, so both accept exactly the same rows."""
    problems: list[tuple[str, str]] = []
    try:
        division = int(row.get("division", ""))
    except ValueError:
        return None, [("division", f"{row.get('division', '')!r} is not a division number")]
    allowed = set(divisions) if divisions is not None else None
    if allowed is not None and division not in allowed:
        problems.append(("division", f"{division} is not one of the tenant's divisions {sorted(allowed)}"))
    jid, jnum = row.get("jaggaer_supplier_id", ""), row.get("jaggaer_supplier_number", "")
    code, account = row.get("exact_code", ""), row.get("exact_account_id", "")
    if not jid and not jnum:
        problems.append(("jaggaer_supplier_id", "empty (give it or jaggaer_supplier_number)"))
    if not code and not account:
        problems.append(("exact_code", "empty (give it or exact_account_id)"))
    if code and len(code) > 18:
        problems.append(("exact_code", f"{code!r} is longer than Exact's 18 characters"))
    if account and not _GUID.match(account):
        problems.append(("exact_account_id", f"{account!r} is not a GUID"))
    active = _bool(row.get("active", ""))
    if active is None:
        problems.append(("active", f"{row.get('active')!r} is not true/false"))
    item: dict[str, Any] = {
        "division": division,
        "jaggaer_id": jid or None,
        "jaggaer_number": jnum or None,
        "exact_code": norm_code(code),
        "exact_account_id": account.lower() or None,
        "name": row.get("name") or None,
        "vat_number": row.get("vat_number") or None,
        "coc_number": row.get("coc_number") or None,
        "email": row.get("email") or None,
        "source": row.get("source") or "import",
        "active": active if active is not None else True,
    }
    return item, problems


def vendor_label(item: Mapping[str, Any]) -> str:
    """``division D: JAGGAER <id or number> -> Exact <code or account>`` (no sensitive values)."""
    jaggaer = item.get("jaggaer_id") or f"number {item.get('jaggaer_number')}"
    exact = item.get("exact_code") or item.get("exact_account_id")
    return f"division {item.get('division')}: JAGGAER {jaggaer} -> Exact {exact}"


def import_vendors(session: Session, tenant: str, text: str, *, divisions: Iterable[int] | None = None) -> ImportResult:
    """Check every row, then write them all (or nothing: raises :class:`ImportProblems`)."""
    rows, problems = _read(text, VENDOR_COLUMNS, ("division",))
    checked: list[dict[str, Any]] = []
    seen_vendor: dict[tuple[int, str], int] = {}
    seen_account: dict[tuple[int, str], int] = {}
    for number, row in rows:
        where = f"row {number}"
        item, row_problems = check_vendor_row(row, divisions)
        problems.extend(f"{where}, column {column!r}: {message}" for column, message in row_problems)
        if item is None:
            continue
        jid, jnum, account = item["jaggaer_id"] or "", item["jaggaer_number"] or "", item["exact_account_id"] or ""
        key = (item["division"], jid or f"#{jnum}")
        if key in seen_vendor:
            problems.append(f"{where}: the same JAGGAER vendor as row {seen_vendor[key]} (division {key[0]})")
        seen_vendor[key] = number
        if account:
            akey = (item["division"], account)
            if akey in seen_account:
                problems.append(f"{where}, column 'exact_account_id': also used by row {seen_account[akey]}")
            seen_account[akey] = number
        item["row"] = number
        checked.append(item)
    if problems:
        raise ImportProblems(problems)
    created = updated = 0
    changed: list[str] = []
    with session.begin_nested():  # an exception inside rolls every row of this import back
        for item in checked:
            number = item.pop("row")
            existing = session.scalar(
                select(VendorMap.id).where(
                    VendorMap.tenant == tenant,
                    VendorMap.division == item["division"],
                    (VendorMap.jaggaer_supplier_id == item["jaggaer_id"])
                    if item["jaggaer_id"]
                    else (VendorMap.jaggaer_supplier_number == item["jaggaer_number"]),
                )
            )
            active = item.pop("active")
            try:
                row = set_link(session, tenant=tenant, **item)
            except ValueError as exc:
                problems.append(f"row {number}: {exc}")
                continue
            row.active = active
            changed.append(vendor_label(item))
            if existing is None:
                created += 1
            else:
                updated += 1
        if problems:
            raise ImportProblems(problems)
    return ImportResult(created=created, updated=updated, changed=tuple(changed))


#: What ``exact_codes`` names per code-map kind, for messages.
_EXACT_WHAT = {"gl_account": "GL account", "cost_center": "cost centre", "vat_code": "VAT code"}


def check_code_target(
    kind: str,
    target: str,
    *,
    divisions: Collection[int] | None = None,
    exact_codes: Mapping[str, Collection[str]] | None = None,
) -> str | None:
    """What is wrong with a (validated) code-map target for this tenant, or ``None``.

    ``divisions``: the tenant's Exact divisions (a business unit must route to one of them).
    ``exact_codes``: kind -> the codes Exact has (``gl_account``, ``cost_center``, ``vat_code``), as a collection
    or as code -> usable (:func:`known_exact_codes`), when the caller has read the master data; a kind it does not
    name is not checked."""
    if kind == "business_unit" and divisions is not None and int(target) not in set(divisions):
        return (
            f"division {target} is not one of the tenant's divisions {sorted(divisions)}: its invoices could not be "
            "routed; use one of them, or add the division to exact.divisions in the tenant file"
        )
    known = (exact_codes or {}).get(kind)
    if known is None:
        return None
    what = _EXACT_WHAT.get(kind, kind)
    codes = {str(c).strip(): (known[c] if isinstance(known, Mapping) else True) for c in known}
    if target.strip() not in codes:
        return f"{what} {target!r} does not exist in Exact (not in its master data)"
    if codes[target.strip()] is False:
        return f"{what} {target!r} is blocked (or inactive) in Exact: entries on it would be refused"
    return None


def known_exact_codes(masters: Iterable[Any]) -> dict[str, dict[str, bool]]:
    """``exact_codes`` for :func:`import_codes` from the invoice poll's ``MasterData`` of each division: per kind,
    code -> usable (not blocked / active). A code usable in any division counts as usable; each run still checks
    every invoice against its own division."""
    out: dict[str, dict[str, bool]] = {"gl_account": {}, "cost_center": {}, "vat_code": {}}

    def add(kind: str, code: str, usable: bool) -> None:
        out[kind][code] = out[kind].get(code, False) or usable

    for master in masters:
        for code, gl in master.gl.items():
            add("gl_account", code, not gl.blocked)
        for code, (_, active) in master.cost_centers.items():
            add("cost_center", code, active)
        for code, (_, blocked) in master.vat_codes.items():
            add("vat_code", code, not blocked)
    return out


def import_codes(
    session: Session,
    tenant: str,
    text: str,
    *,
    divisions: Collection[int] | None = None,
    exact_codes: Mapping[str, Collection[str]] | None = None,
) -> ImportResult:
    """Check every row (``divisions`` / ``exact_codes``: see :func:`check_code_target`), then write them all (or
    nothing: raises :class:`ImportProblems`)."""
    rows, problems = _read(text, CODE_COLUMNS, ("kind", "source_value", "target_value"))
    checked: list[tuple[str, str, str, str | None]] = []
    seen: dict[tuple[str, str], int] = {}
    for number, row in rows:
        where = f"row {number}"
        kind = row.get("kind", "")
        if kind not in KINDS:
            problems.append(f"{where}, column 'kind': {kind!r} is not one of {', '.join(KINDS)}")
            continue
        source = row.get("source_value", "")
        if not source:
            problems.append(f"{where}, column 'source_value': empty")
            continue
        try:
            source = normalize_source(kind, source)
        except ValueError as exc:
            problems.append(f"{where}, column 'source_value': {exc}")
            continue
        try:
            target = validate_target(kind, row.get("target_value", ""))
        except ValueError as exc:
            problems.append(f"{where}, column 'target_value': {exc}")
            continue
        wrong = check_code_target(kind, target, divisions=divisions, exact_codes=exact_codes)
        if wrong:
            problems.append(f"{where}, column 'target_value': {wrong}")
            continue
        if (kind, source) in seen:
            problems.append(f"{where}: {kind} {source!r} is also in row {seen[(kind, source)]}")
            continue
        seen[(kind, source)] = number
        checked.append((kind, source, target, row.get("note") or None))
    if problems:
        raise ImportProblems(problems)
    created = updated = 0
    with session.begin_nested():
        for kind, source, target, note in checked:
            if set_code(session, tenant, kind, source, target, note):
                created += 1
            else:
                updated += 1
    return ImportResult(
        created=created, updated=updated, changed=tuple(f"{k} {s!r} -> {t!r}" for k, s, t, _ in checked)
    )


def set_code(session: Session, tenant: str, kind: str, source: str, target: str, note: str | None = None) -> bool:
    """Create or replace one code map row (values already validated). True when created."""
    row = session.scalar(
        select(CodeMap).where(CodeMap.tenant == tenant, CodeMap.kind == kind, CodeMap.source_value == source)
    )
    if row is None:
        session.add(CodeMap(tenant=tenant, kind=kind, source_value=source, target_value=target, note=note))
        session.flush()
        return True
    row.target_value = target
    row.note = note if note is not None else row.note
    session.flush()
    return False


def delete_code(session: Session, tenant: str, kind: str, source: str) -> bool:
    """Delete one code map row (``source`` already normalised); the tenant file's mapping applies again. True when
    there was one."""
    row = session.scalar(
        select(CodeMap).where(CodeMap.tenant == tenant, CodeMap.kind == kind, CodeMap.source_value == source)
    )
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
