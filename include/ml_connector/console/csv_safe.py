"""The console's CSV downloads, streamed a line at a time through the product's one CSV writer
(:mod:`ml_connector.csvsafe`: cells that a spreadsheet would run as a formula are escaped, numbers stay numbers)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ml_connector import csvsafe


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The CSV text, one line at a time (for a streamed download); ``None`` cells are empty."""
    buffer = io.StringIO()
    writer = csvsafe.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(["" if v is None else v for v in row])
        yield buffer.getvalue()
