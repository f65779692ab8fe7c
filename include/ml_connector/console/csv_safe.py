"""CSV for people who open it in a spreadsheet: every cell goes through :func:`safe_cell`.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula by Excel,
LibreOffice and Google Sheets (CSV injection: an audit message or a vendor name coming from JAGGAER could carry
``=HYPERLINK(...)``). Such a cell is prefixed with a single quote, which spreadsheets show as text. Numbers stay
numbers (a negative amount is not a formula).

(The hardening work on ``mappings`` brings a CSV writer with the same rule; this one small function is the console's
until that lands, then one should call the other.)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        value = str(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The CSV text, one line at a time (for a streamed download)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([safe_cell(v) for v in row])
        yield buffer.getvalue()
