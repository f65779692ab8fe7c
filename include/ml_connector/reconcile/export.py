"""A saved reconciliation as CSV or XLSX (pandas builds the sheets; openpyxl writes the workbook).

Both files carry the same columns (:data:`ml_connector.reconcile.COLUMNS`), with the category's label; amounts are
numbers. Text cells that a spreadsheet would run as a formula are escaped the way every CSV of the product is
(:func:`ml_connector.csvsafe.escape_cell`): in the workbook as well, since openpyxl would store ``=…`` as a formula.
The XLSX has a *Summary* sheet (tenant, division, period, counts per category, calls made) before the rows.
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ml_connector import csvsafe
from ml_connector.reconcile import CATEGORIES, COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from ml_connector.reconcile.store import Saved

AMOUNTS = ("jaggaer_amount", "exact_amount")


def _cells(saved: Saved, escape: bool) -> list[dict[str, Any]]:
    rows = []
    for row in saved.rows:
        out: dict[str, Any] = {}
        for col in COLUMNS:
            value = row.get(col)
            if col == "category":
                value = CATEGORIES.get(str(value), value)
            elif col in AMOUNTS and value not in (None, ""):
                value = float(Decimal(str(value)))
            elif isinstance(value, str) and escape:
                value = csvsafe.escape_cell(value)
            out[col] = value
        rows.append(out)
    return rows


def frame(saved: Saved) -> pd.DataFrame:
    """The rows as a DataFrame, text cells escaped (for the workbook)."""
    import pandas as pd

    return pd.DataFrame(_cells(saved, escape=True), columns=list(COLUMNS))


def file_name(saved: Saved, ext: str) -> str:
    return f"mlc-reconciliation-{saved.tenant}-{saved.division}-{saved.date_from}-{saved.date_to}.{ext}"


def csv_bytes(saved: Saved) -> bytes:
    """Through the product's one CSV writer (it escapes the cells)."""
    from ml_connector.csvsafe import csv_lines

    rows = ([row[c] for c in COLUMNS] for row in _cells(saved, escape=False))
    return "".join(csv_lines(COLUMNS, rows)).encode("utf-8")


def summary(saved: Saved) -> list[tuple[str, Any]]:
    lines: list[tuple[str, Any]] = [
        ("tenant", saved.tenant),
        ("division", saved.division),
        ("invoice dates from", saved.date_from),
        ("invoice dates to", saved.date_to),
        ("reconciled at (UTC)", saved.created_at.strftime("%Y-%m-%d %H:%M:%S")),
        ("run by", csvsafe.escape_cell(saved.trigger)),
    ]
    lines += [(label, int(saved.counts.get(key, 0))) for key, label in CATEGORIES.items()]
    lines += [("Exact calls", saved.exact_calls), ("JAGGAER calls", saved.jaggaer_calls)]
    return lines


def xlsx_bytes(saved: Saved) -> bytes:
    import pandas as pd

    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        pd.DataFrame(summary(saved), columns=["what", "value"]).to_excel(writer, sheet_name="Summary", index=False)
        frame(saved).to_excel(writer, sheet_name="Reconciliation", index=False)
    return buffer.getvalue()
