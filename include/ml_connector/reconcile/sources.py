"""The three sides of a reconciliation, each read once, as plain rows (dicts) for :mod:`.compare`.

- **JAGGAER**: the invoice list (header only, every page; no detail calls) of the invoices updated since the period
  began (``lastUpdate`` ≥ first day; an invoice is updated on or after the day it is dated), kept when approved in
  the tenant's post states, dated (``invoiceDate``) in the period, and routed to the division by its business unit.
  Its Exact supplier comes from the vendor map of that division.
- **Exact**: ``bulk/Financial/TransactionLines`` of the division's purchase journal dated in the period (a day of
  slack either side, trimmed here), 1,000 rows a call, following ``__next``; grouped by ``EntryID`` into entries.
  The gross amount of an entry is the sum of its lines' ``AmountFC`` + ``AmountVATFC`` over ``LineNumber`` ≥ 1 (a
  creditor line 0, if Exact returns one, is not counted). At most :data:`MAX_PAGES` calls per division.
- **Ledger**: the invoice-poll records of the division (and those not routed to any division yet) with their state,
  reason, target entry and the invoice date of their staged version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Engine, select

from ml_connector.errors import ConnectorError

TRANSACTION_LINES = "bulk/Financial/TransactionLines"
LINE_SELECT = (
    "EntryID",
    "EntryNumber",
    "Date",
    "JournalCode",
    "Account",
    "AccountCode",
    "AccountName",
    "YourRef",
    "ExternalLinkReference",
    "LineNumber",
    "AmountFC",
    "AmountVATFC",
    "Currency",
)
#: Calls per division at most (1,000 lines each): 200,000 purchase-journal lines in one period.
MAX_PAGES = 200
PAGE_ROWS = 1000


class TooManyLines(ConnectorError):
    """The period holds more purchase-journal lines than :data:`MAX_PAGES` calls read."""


@dataclass(frozen=True)
class Period:
    """Invoice dates ``date_from`` .. ``date_to``, both included."""

    date_from: date
    date_to: date

    def __post_init__(self) -> None:
        if self.date_to < self.date_from:
            raise ValueError(f"the period ends ({self.date_to}) before it starts ({self.date_from})")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.date_from <= day <= self.date_to

    def __str__(self) -> str:
        return f"{self.date_from.isoformat()}..{self.date_to.isoformat()}"


def money(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def norm_ref(value: Any) -> str:
    """``YourRef`` as both sides are compared: trimmed, case-folded."""
    return str(value or "").strip().casefold()


def _day(value: Any) -> date | None:
    from ml_connector.jaggaer import j1p

    try:
        return j1p.parse_date(value)
    except ValueError:
        return None


def _exact_day(value: Any) -> date | None:
    """Exact's ``/Date(ms)/`` as a calendar day: the nearest midnight (Exact may mean its own time zone)."""
    from ml_connector.exact import odata

    try:
        when = odata.parse_date(value)
    except ValueError:
        return None
    return None if when is None else (when + timedelta(hours=12)).date()


# ------------------------------------------------------------------------------------------------- JAGGAER
def jaggaer_invoices(jag: Any, tenant: Any, engine: Engine, division: int, period: Period) -> list[dict[str, Any]]:
    from ml_connector.mappings.codes import CodeRules
    from ml_connector.mappings.vendors import JaggaerVendor, find_link
    from ml_connector.store.db import session_scope

    states = tenant.invoice_poll.post_states
    workflows = {w.casefold() for w in states.workflow}
    payments = {p.casefold() for p in states.payment}
    start = datetime.combine(period.date_from, time(0), tzinfo=UTC)
    # up to now (an invoice of the period may be approved any time later), and at least past the period's end
    end = max(datetime.now(UTC), datetime.combine(period.date_to + timedelta(days=1), time(0), tzinfo=UTC))
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    with session_scope(engine) as s:
        rules = CodeRules.load(s, tenant)
        for header in jag.iter_invoices(start, end + timedelta(minutes=1)):
            invoice_id = str(header.get("invoiceId") or "").strip()
            if not invoice_id or invoice_id in seen:
                continue
            seen.add(invoice_id)
            workflow = str(header.get("workflowStatus") or "").strip().casefold()
            payment = str(header.get("paymentStatus") or "").strip().casefold()
            if workflow not in workflows or payment not in payments:
                continue
            day = _day(header.get("invoiceDate"))
            if day not in period:
                continue
            bu = str(header.get("businessUnit") or "").strip() or None
            if rules.division_for_bu(bu) != division:
                continue
            supplier = header.get("supplier") or {}
            vendor = JaggaerVendor(
                id=str(supplier.get("id") or ""),
                name=str(supplier.get("name") or ""),
                supplier_number=str(supplier.get("supplierNumber") or "").strip() or None,
            )
            link = find_link(s, tenant.name, division, vendor) if vendor.id else None
            total = header.get("total") or {}
            out.append(
                {
                    "jaggaer_invoice_id": invoice_id,
                    "jaggaer_invoice_number": str(header.get("invoiceNumber") or "").strip() or None,
                    "your_ref": str(header.get("supplierInvoiceNumber") or "").strip() or None,
                    "supplier": vendor.name or None,
                    "jaggaer_supplier_id": vendor.id or None,
                    "account_id": (link.exact_account_id or "").lower() or None if link is not None else None,
                    "exact_supplier_code": (link.exact_code or "").strip() or None if link is not None else None,
                    "jaggaer_date": day,
                    "jaggaer_amount": money(total.get("value")),
                    "currency": total.get("currency"),
                }
            )
    return out


# --------------------------------------------------------------------------------------------------- Exact
def exact_entries(hook: Any, division: int, journal: str, period: Period) -> list[dict[str, Any]]:
    """The purchase entries of ``journal`` dated in the period, one dict per entry (see the module docstring)."""
    from ml_connector.exact import odata

    flt = " and ".join(
        (
            f"JournalCode eq {odata.string(journal)}",
            f"Date ge {odata.datetime_literal(period.date_from - timedelta(days=1))}",
            f"Date lt {odata.datetime_literal(period.date_to + timedelta(days=2))}",
        )
    )
    entries: dict[str, dict[str, Any]] = {}
    rows = 0
    for row in hook.iter_collection(division, TRANSACTION_LINES, select=list(LINE_SELECT), filter=flt):
        rows += 1
        if rows > MAX_PAGES * PAGE_ROWS:
            raise TooManyLines(
                f"Exact division {division}: more than {MAX_PAGES * PAGE_ROWS:,} lines in purchase journal {journal} "
                f"between {period.date_from} and {period.date_to} ({MAX_PAGES} calls): reconcile a shorter period"
            )
        entry_id = str(row.get("EntryID") or "").lower()
        if not entry_id:
            continue
        day = _exact_day(row.get("Date"))
        entry = entries.setdefault(
            entry_id,
            {
                "exact_entry_id": entry_id,
                "exact_entry_number": row.get("EntryNumber"),
                "exact_date": day,
                "account_id": str(row.get("Account") or "").lower() or None,
                "exact_supplier_code": str(row.get("AccountCode") or "").strip() or None,
                "exact_supplier": row.get("AccountName"),
                "exact_your_ref": str(row.get("YourRef") or "").strip() or None,
                "external_ref": str(row.get("ExternalLinkReference") or "").strip() or None,
                "exact_currency": row.get("Currency"),
                "exact_amount": Decimal("0.00"),
            },
        )
        if int(row.get("LineNumber") or 0) >= 1:
            entry["exact_amount"] += (money(row.get("AmountFC")) or Decimal(0)) + (
                money(row.get("AmountVATFC")) or Decimal(0)
            )
    return [e for e in entries.values() if e["exact_date"] in period]


# -------------------------------------------------------------------------------------------------- ledger
def ledger_records(engine: Engine, tenant: str, division: int) -> list[dict[str, Any]]:
    from ml_connector.flows.invoice_poll.common import FLOW
    from ml_connector.store.db import session_scope
    from ml_connector.store.models import LedgerEntry, StagedRecord

    out: list[dict[str, Any]] = []
    with session_scope(engine) as s:
        rows = s.execute(
            select(
                LedgerEntry.source_id,
                LedgerEntry.source_ref,
                LedgerEntry.state,
                LedgerEntry.reason,
                LedgerEntry.target_id,
                LedgerEntry.target_ref,
                StagedRecord.payload,
            )
            .join(
                StagedRecord,
                (StagedRecord.tenant == LedgerEntry.tenant)
                & (StagedRecord.flow == LedgerEntry.flow)
                & (StagedRecord.source_id == LedgerEntry.source_id)
                & (StagedRecord.payload_hash == LedgerEntry.staged_hash),
                isouter=True,
            )
            .where(
                LedgerEntry.tenant == tenant,
                LedgerEntry.flow == FLOW,
                # an invoice quarantined before it was routed has no division yet: its reason still belongs here
                (LedgerEntry.division == division) | LedgerEntry.division.is_(None),
            )
        )
        for source_id, source_ref, state, reason, target_id, target_ref, payload in rows:
            header: Mapping[str, Any] = (payload or {}).get("header") or {}
            total = header.get("total") or {}
            out.append(
                {
                    "jaggaer_invoice_id": str(source_id),
                    "ledger_number": source_ref,
                    "ledger_state": state,
                    "ledger_reason": reason,
                    "target_id": (target_id or "").lower() or None,
                    "target_ref": target_ref,
                    "staged_date": _day(header.get("invoiceDate")),
                    "staged_ref": str(header.get("supplierInvoiceNumber") or "").strip() or None,
                    "staged_amount": money(total.get("value")),
                    "staged_supplier": (header.get("supplier") or {}).get("name"),
                }
            )
    return out
