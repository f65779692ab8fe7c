"""Look before the first POST: the Exact purchase entries that may already be the run's invoices.

Before a division's batch posts anything, the purchase entries of **the run's suppliers** dated from **31 days before
the earliest invoice date** of the batch are read in one paged request (60 entries a page)::

    purchaseentry/PurchaseEntries?$filter=(Supplier eq guid'…' or Supplier eq guid'…') and EntryDate ge datetime'…'
        &$select=EntryID,EntryNumber,YourRef,Supplier,ExternalLinkReference,Description,AmountFC,EntryDate

(40 suppliers per request at most, to keep the URL short: a batch with more suppliers costs one request more per
40). They are indexed by supplier and ``YourRef``; the post stage compares each new invoice with the entries that
carry its supplier and supplier invoice number (``post.classify``). Only new invoices are looked up this way: an
invoice whose earlier write may have reached Exact is searched on its own first, where that write went.

Why E (the entries read) stays small: only entries of suppliers that have an invoice in this batch, and only from a
month before the batch's oldest invoice date — a daily run reads about a month of purchase entries of a few suppliers,
not the division's ledger. A backfill of old dates reads the entries since its oldest invoice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ml_connector.exact import odata
from ml_connector.flows.invoice_poll.common import INVOICE_ENDPOINT

#: The properties read (all in Exact's published reference of ``purchaseentry/PurchaseEntries``).
LOOK_SELECT = "EntryID,EntryNumber,YourRef,Supplier,ExternalLinkReference,Description,AmountFC,EntryDate"
#: How far before the batch's oldest invoice date entries are read (a person keys an invoice on or after its date;
#: a month covers a wrong date typed by hand).
LOOK_BACK_DAYS = 31
#: Suppliers per request (each GUID term is ~50 characters of URL).
SUPPLIERS_PER_READ = 40
#: Exact's page size for this endpoint.
PAGE_SIZE = 60


def _key(supplier: Any, your_ref: Any) -> tuple[str, str]:
    return str(supplier or "").strip().lower(), str(your_ref or "").strip()


@dataclass
class Lookup:
    """The entries read, by ``(supplier, YourRef)``; ``read`` counts them (E) and ``requests`` the suppliers'
    chunks asked for."""

    since: date | None = None
    suppliers: int = 0
    read: int = 0
    requests: int = 0
    rows: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def candidates(self, supplier: str, your_ref: str | None) -> list[dict[str, Any]]:
        if not your_ref or not your_ref.strip():
            return []
        return list(self.rows.get(_key(supplier, your_ref), []))

    def describe(self) -> str:
        since = self.since.isoformat() if self.since else "-"
        return (
            f"looked in Exact before posting: {self.read} purchase entries of {self.suppliers} supplier(s) since "
            f"{since} ({self.requests} request(s))"
        )


def look_up(hook: Any, division: int, suppliers: Iterable[str], since: date) -> Lookup:
    """Read the purchase entries of ``suppliers`` dated ``since`` or later (module docstring)."""
    wanted = sorted({s.strip().lower() for s in suppliers if s and s.strip()})
    out = Lookup(since=since, suppliers=len(wanted))
    for start in range(0, len(wanted), SUPPLIERS_PER_READ):
        chunk = wanted[start : start + SUPPLIERS_PER_READ]
        who = " or ".join(f"Supplier eq {odata.guid(s)}" for s in chunk)
        flt = f"({who}) and EntryDate ge {odata.datetime_literal(since)}"
        out.requests += 1
        for row in hook.iter_collection(division, INVOICE_ENDPOINT, select=LOOK_SELECT, filter=flt):
            out.read += 1
            if row.get("YourRef"):
                out.rows.setdefault(_key(row.get("Supplier"), row.get("YourRef")), []).append(row)
    return out


def since_for(dates: Iterable[date]) -> date | None:
    known = [d for d in dates if d is not None]
    return (min(known) - timedelta(days=LOOK_BACK_DAYS)) if known else None
