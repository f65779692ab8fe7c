"""The financial side of the sandbox's purchase entries: ``bulk/Financial/TransactionLines`` rows, and an edit a
person makes in Exact's UI (an admin control for tests).

Exact books every purchase entry as transaction lines of its journal. The sandbox serves one row per purchase-entry
line (``LineNumber`` 1, 2, …): the entry's header facts (``EntryID``, ``EntryNumber``, ``Date`` = ``EntryDate``,
``JournalCode``, ``Account`` = the supplier, ``YourRef``, ``ExternalLinkReference``) on every row, the line's net
``AmountFC`` and its VAT in ``AmountVATFC``. Real Exact may also return the supplier's (creditor) line and separate
VAT lines [guess]; the connector's reconciliation reads only ``LineNumber`` ≥ 1 rows and their VAT, so it is not
thrown by them. Rows are built on each request from the stored entries, so a deleted or edited entry shows at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.exact.store import Division


def transaction_lines(div: Division) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entry in div.purchase_entries:
        account = div.accounts.get(str(entry["Supplier"])) or {}
        for ln in entry["_lines"]:
            out.append(
                {
                    "ID": ln["ID"],
                    "EntryID": entry["EntryID"],
                    "EntryNumber": entry["EntryNumber"],
                    "InvoiceNumber": entry.get("InvoiceNumber"),
                    "Date": entry["EntryDate"],
                    "DueDate": entry.get("DueDate"),
                    "FinancialYear": entry.get("ReportingYear"),
                    "FinancialPeriod": entry.get("ReportingPeriod"),
                    "JournalCode": entry["Journal"],
                    "JournalDescription": entry.get("JournalDescription"),
                    "Type": entry.get("Type"),
                    "Status": entry.get("Status"),
                    "Account": entry["Supplier"],
                    "AccountCode": account.get("Code"),
                    "AccountName": entry.get("SupplierName"),
                    "YourRef": entry.get("YourRef"),
                    "Description": ln.get("Description") or entry.get("Description"),
                    "ExternalLinkReference": entry.get("ExternalLinkReference"),
                    "PaymentReference": entry.get("PaymentReference"),
                    "Currency": entry.get("Currency"),
                    "ExchangeRate": entry.get("Rate"),
                    "LineNumber": ln["LineNumber"],
                    "GLAccount": ln.get("GLAccount"),
                    "GLAccountCode": ln.get("GLAccountCode"),
                    "GLAccountDescription": ln.get("GLAccountDescription"),
                    "AmountFC": ln.get("AmountFC"),
                    "AmountDC": ln.get("AmountDC"),
                    "AmountVATFC": ln.get("VATAmountFC"),
                    "AmountVATBaseFC": ln.get("VATBaseAmountFC"),
                    "VATCode": ln.get("VATCode"),
                    "VATPercentage": ln.get("VATPercentage"),
                    "CostCenter": ln.get("CostCenter"),
                    "CostUnit": ln.get("CostUnit"),
                    "Quantity": ln.get("Quantity"),
                    "Notes": ln.get("Notes"),
                    "Division": div.code,
                    "Created": entry.get("Created"),
                    "Modified": entry.get("Modified"),
                }
            )
    return out


def edit_entry(body: dict[str, Any], now_ms: int) -> Callable[[dict[str, Any]], None]:
    """A mutation for ``Table.update``: ``{"line": n, "AmountFC": x}`` sets line ``n``'s net amount (VAT recomputed
    at the line's percentage, totals follow); any other known header field is replaced as given."""
    patch = dict(body)
    line_no = patch.pop("line", None)
    amount = patch.pop("AmountFC", None)

    def mutate(entry: dict[str, Any]) -> None:
        if amount is not None:
            wanted = int(line_no or 1)
            for ln in entry["_lines"]:
                if ln["LineNumber"] == wanted:
                    rate = float(entry.get("Rate") or 1.0)
                    ln["AmountFC"] = round(float(amount), 2)
                    ln["AmountDC"] = round(ln["AmountFC"] * rate, 2)
                    ln["VATBaseAmountFC"] = ln["AmountFC"]
                    ln["VATAmountFC"] = round(ln["AmountFC"] * float(ln.get("VATPercentage") or 0.0), 2)
                    ln["VATAmountDC"] = round(ln["VATAmountFC"] * rate, 2)
            net = round(sum(ln["AmountFC"] for ln in entry["_lines"]), 2)
            vat = round(sum(ln["VATAmountFC"] for ln in entry["_lines"]), 2)
            rate = float(entry.get("Rate") or 1.0)
            entry.update(
                AmountFC=round(net + vat, 2),
                AmountDC=round((net + vat) * rate, 2),
                VATAmountFC=vat,
                VATAmountDC=round(vat * rate, 2),
            )
        for key, value in patch.items():
            if key in entry and not key.startswith("_") and key not in ("EntryID", "Division"):
                entry[key] = value
        entry["Modified"] = now_ms

    return mutate
