"""Reconciliation, JAGGAER ⇄ Exact: for a tenant, an Exact division and a period of invoice dates, the approved
JAGGAER invoices against the purchase entries in Exact, matched by supplier and ``YourRef``.

Every row lands in one category (:data:`CATEGORIES`):

``matched``                 the same invoice on both sides, same amount (to the cent) and date
``amount_or_date_differs``  found on both sides, but the gross amount or the date differs (edited in Exact or JAGGAER)
``jaggaer_only``            approved in JAGGAER, not in Exact; the note carries the ledger's state and reason (held,
                            quarantined, not read yet, …)
``exact_only``              an entry of the purchase journal that no approved JAGGAER invoice of the period explains:
                            keyed by hand (no JAGGAER reference) or posted elsewhere
``posted_not_in_exact``     the ledger says the connector posted it, but the entry is no longer in Exact (deleted)

Modules: :mod:`.sources` reads the three sides (JAGGAER list pages, Exact's ``bulk/Financial/TransactionLines``
paged 1,000 rows a call, the ledger), :mod:`.compare` classifies with pandas, :mod:`.store` keeps results in the
connector database, :mod:`.export` writes CSV and XLSX, :mod:`.run` ties them together (CLI, UI, the daily task).
Importing this package imports neither pandas nor Airflow (DAG files import the task builder).
"""

from __future__ import annotations

MATCHED = "matched"
DIFFERS = "amount_or_date_differs"
JAGGAER_ONLY = "jaggaer_only"
EXACT_ONLY = "exact_only"
POSTED_MISSING = "posted_not_in_exact"

#: Category -> what the page and the files call it, in report order.
CATEGORIES: dict[str, str] = {
    MATCHED: "matched",
    DIFFERS: "amount or date differs",
    JAGGAER_ONLY: "in JAGGAER only",
    EXACT_ONLY: "in Exact only",
    POSTED_MISSING: "posted by us but no longer in Exact",
}
#: Categories that mean something is off (alerted).
OFF = (DIFFERS, JAGGAER_ONLY, EXACT_ONLY, POSTED_MISSING)

#: The columns of a reconciliation, in file order.
COLUMNS = (
    "category",
    "division",
    "jaggaer_invoice_number",
    "jaggaer_invoice_id",
    "supplier",
    "exact_supplier_code",
    "your_ref",
    "jaggaer_date",
    "exact_date",
    "jaggaer_amount",
    "exact_amount",
    "currency",
    "exact_entry_number",
    "exact_entry_id",
    "ledger_state",
    "note",
)
